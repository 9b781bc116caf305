"""ParseAndValidate: model text -> validated values or dead letters with reasons (JSON parser only)."""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import apache_beam as beam

from transforms import metrics, recipe
from transforms.elements import STAGE_BRAINSTORM, Completion, DeadLetter, PromptRequest, derive_seed

__all__ = ["ParseFailure", "ParseAndValidate", "extract_json", "validate", "REASONS", "clean_text"]

_LOGGER = logging.getLogger(__name__)

# Every reason a dead letter can carry; metrics are keyed on these.
REASONS = (
    "model_error",  # the call failed (service error, timeout); detail has the message
    "empty_reply",  # the model returned nothing
    "truncated_json",  # the reply stopped inside the JSON value (token limit or cut connection)
    "not_json",  # no JSON value could be read from the reply
    "wrong_type",  # JSON, but not the object/array the task asks for
    "missing_keys",  # a required key is absent
    "empty_field",  # a required value is not a non-empty string
    "invalid_text",  # a value cannot be stored as UTF-8 text (lone surrogates)
    "no_tasks",  # a brainstorm reply held no usable task
    "internal_error",  # a bug in this stage; the element is kept as a dead letter, never lost
)

_FENCE = re.compile(r"```[a-zA-Z0-9_-]*\s*\n?(.*?)(?:```|$)", re.DOTALL)


class ParseFailure(Exception):
    """A reply that cannot become a row; ``reason`` is one of REASONS."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def clean_text(text: Any) -> str:
    """Text that can always be written as UTF-8 (invalid bytes and lone surrogates replaced)."""
    if isinstance(text, bytes):
        return text.decode("utf-8", errors="replace")
    text = str(text)
    return text.encode("utf-8", errors="replace").decode("utf-8")


def extract_json(text: str, finish_reason: str = "stop") -> Any:
    """Read one JSON value from a model reply.

    Accepts a bare JSON value, a value inside a Markdown code fence, or a value preceded by
    prose. Never evaluates anything. Raises ParseFailure with ``empty_reply``,
    ``truncated_json`` or ``not_json``.
    """
    stripped = text.strip()
    if not stripped:
        raise ParseFailure("empty_reply", "the model returned no text")
    fenced = _FENCE.search(stripped)
    candidate = fenced.group(1).strip() if fenced else stripped
    starts = [i for i in (candidate.find("{"), candidate.find("[")) if i >= 0]
    if not starts:
        raise ParseFailure("not_json", f"no JSON object or array in the reply: {candidate[:80]!r}")
    start = min(starts)
    try:
        value, end = json.JSONDecoder().raw_decode(candidate, start)
    except json.JSONDecodeError as err:
        # A prefix of valid JSON fails at the end of the text, or inside a string that never closes.
        at_end = err.pos >= len(candidate.rstrip("`").rstrip()) or err.msg.startswith("Unterminated string")
        if finish_reason == "length" or at_end:
            raise ParseFailure("truncated_json", f"reply ends inside the JSON value ({err.msg})") from None
        raise ParseFailure("not_json", f"{err.msg} at character {err.pos}") from None
    except RecursionError:
        raise ParseFailure("not_json", "JSON nested too deeply") from None
    return value


def _check_text(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ParseFailure("empty_field", f"{key!r} must be a non-empty string, got {type(value).__name__}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ParseFailure("invalid_text", f"{key!r} is not valid UTF-8 text") from None
    return value.strip()


def validate(request: PromptRequest, value: Any) -> Any:
    """Check a parsed value against what the request asked for.

    Returns the list of task strings for a brainstorm request, or a dict of the output keys
    (extra keys dropped) for a generation request. Raises ParseFailure otherwise.
    """
    element = request.element
    if element.stage == STAGE_BRAINSTORM:
        if isinstance(value, dict):  # some services wrap the array: {"tasks": [...]}
            lists = [v for v in value.values() if isinstance(v, list)]
            value = lists[0] if len(lists) == 1 else value
        if not isinstance(value, list):
            raise ParseFailure("wrong_type", f"expected a JSON array of strings, got {type(value).__name__}")
        tasks = []
        for item in value:
            if isinstance(item, str) and item.strip():
                try:
                    tasks.append(_check_text("task", item))
                except ParseFailure:
                    continue
        if not tasks:
            raise ParseFailure("no_tasks", "the array holds no non-empty string")
        return tasks
    task_type = recipe.get_task_type(element.category)
    if not isinstance(value, dict):
        raise ParseFailure("wrong_type", f"expected a JSON object, got {type(value).__name__}")
    missing = [k for k in task_type.output_keys if k not in value]
    if missing:
        raise ParseFailure(
            "missing_keys", f"missing {', '.join(missing)}; got {', '.join(map(str, value)) or 'no keys'}"
        )
    return {k: _check_text(k, value[k]) for k in task_type.output_keys}


def _parse(request: PromptRequest, completion: Completion) -> Any:
    if completion.error is not None:
        raise ParseFailure("model_error", completion.error)
    return validate(request, extract_json(completion.text, completion.finish_reason))


class _ParseDoFn(beam.DoFn):
    RETRY = "retry"
    DEAD = "dead"

    def __init__(self, run_seed: int, max_retries: int):
        self._run_seed = run_seed
        self._max_retries = max_retries

    def setup(self):
        self._dead = {}
        self._retried = metrics.counter(metrics.PARSE_RETRIES)
        # Every reply, whatever becomes of it: what the model calls cost (replies reused by --resume included).
        self._replies = metrics.counter(metrics.REPLIES)
        self._reply_prompt_tokens = metrics.counter(metrics.TOKENS, "replies_prompt")
        self._reply_completion_tokens = metrics.counter(metrics.TOKENS, "replies_completion")

    def _count_dead(self, stage: str, category: str, reason: str):
        key = (stage, category, reason)
        if key not in self._dead:
            self._dead[key] = metrics.counter(metrics.DEAD_LETTER, stage, category, reason)
        self._dead[key].inc()

    def process(self, result):
        request, completion = result.example, result.inference
        self._replies.inc()
        self._reply_prompt_tokens.inc(completion.prompt_tokens)
        self._reply_completion_tokens.inc(completion.completion_tokens)
        try:
            value = _parse(request, completion)
        except ParseFailure as failure:
            reason, detail = failure.reason, failure.detail
        except Exception as err:  # noqa: BLE001 - a parser bug must not lose the element
            _LOGGER.exception("parser failed on element %s", request.element.element_id)
            reason, detail = "internal_error", f"{type(err).__name__}: {err}"
        else:
            yield request, completion, value
            return
        failures = request.failures + (f"attempt {request.attempt}: {reason}: {detail}",)
        retryable = reason != "model_error" or completion.retryable
        if retryable and request.attempt < self._max_retries:
            self._retried.inc()
            attempt = request.attempt + 1
            seed = derive_seed(self._run_seed, request.element.element_id, "model", attempt)
            yield beam.pvalue.TaggedOutput(
                self.RETRY, request._replace(attempt=attempt, sampling_seed=seed, failures=failures)
            )
            return
        self._count_dead(request.element.stage, request.element.category, reason)
        yield beam.pvalue.TaggedOutput(
            self.DEAD,
            DeadLetter(
                element_id=request.element.element_id,
                category=request.element.category,
                stage=request.element.stage,
                reason=reason,
                detail=clean_text(detail),
                prompt=clean_text(request.prompt),
                raw_text=clean_text(completion.text),
                model=completion.model,
                attempts=request.attempt + 1,
                failures=tuple(clean_text(f) for f in failures),
            ),
        )


class ParseAndValidate(beam.PTransform):
    """PredictionResults -> (parsed, retry, dead).

    ``parsed`` holds ``(request, completion, value)``; ``retry`` holds the requests to ask again
    with a new derived seed; ``dead`` holds DeadLetters for replies that failed their last attempt.
    """

    def __init__(self, run_seed: int, max_retries: int):
        super().__init__()
        self._run_seed = run_seed
        self._max_retries = max_retries

    def expand(self, results):
        outputs = results | "Parse" >> beam.ParDo(_ParseDoFn(self._run_seed, self._max_retries)).with_outputs(
            _ParseDoFn.RETRY, _ParseDoFn.DEAD, main="parsed"
        )
        return outputs.parsed, outputs[_ParseDoFn.RETRY], outputs[_ParseDoFn.DEAD]
