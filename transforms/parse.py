"""ParseAndValidate: model text -> validated values or dead letters with reasons (JSON parser only)."""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import apache_beam as beam

from transforms import metrics, recipe
from transforms.elements import STAGE_BRAINSTORM, Completion, DeadLetter, PromptRequest, derive_seed

__all__ = [
    "ParseFailure",
    "ParseAndValidate",
    "extract_json",
    "validate",
    "degenerate",
    "salvage_array",
    "REASONS",
    "clean_text",
]

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
    "echoed_field",  # a value is a field name of the reply ({"S1": "S1"}, "user_query")
    "placeholder",  # a value is placeholder junk ("...", "<text>", "string", "T1.4")
    "same_fields",  # two values that must differ are equal (the query is the document, both labels alike)
    "copied_field",  # a value is mostly another value copied (the document is the query, repeated)
    "no_tasks",  # a brainstorm reply held no usable task
    "internal_error",  # a bug in this stage; the element is kept as a dead letter, never lost
)

_FENCE = re.compile(r"```[a-zA-Z0-9_-]*\s*\n?(.*?)(?:```|$)", re.DOTALL)

# A whole value that is only punctuation ("...", "-"), a bracketed slot ("<text>", "{language}", "[insert]"),
# or an outline number ("T1.4", "S2.1"): what a model writes when it fills in the form instead of the task.
_PLACEHOLDER = re.compile(r"^(?:[\W_]*|<[^<>]*>|\{[^{}]*\}|\[[^\[\]]*\]|[A-Za-z]{1,3}\d+(?:\.\d+)+)$")
_PLACEHOLDER_WORDS = frozenset(
    {
        "string", "str", "text", "value", "placeholder", "example", "sample", "todo", "tbd", "xxx", "n/a",
        "null", "undefined", "lorem ipsum", "your text here", "text here", "insert text here", "your answer",
    }
)  # fmt: skip
_EDGES = re.compile(r"^[\W_]+|[\W_]+$")


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


def _plain(text: str) -> str:
    """The form values are compared in: case-folded, whitespace collapsed, edge punctuation dropped."""
    return " ".join(_EDGES.sub("", token) for token in text.casefold().split() if _EDGES.sub("", token))


def _field_names(task_type: recipe.TaskType) -> frozenset:
    return frozenset(_plain(k.replace("_", " ")) for k in task_type.output_keys) | frozenset(
        _plain(k) for k in task_type.output_keys
    )


def degenerate(value: str, names: frozenset = frozenset()) -> str | None:
    """``echoed_field`` or ``placeholder`` when ``value`` is one, else None (``names``: field names, plain form)."""
    plain = _plain(value.replace("_", " "))
    if plain in names or _plain(value) in names:
        return "echoed_field"
    tokens = [_EDGES.sub("", t) for t in re.split(r"[\s:=,;]+", value.casefold())]
    tokens = [t for t in tokens if t]
    if names and len(tokens) > 1 and all(t in names for t in tokens):  # "S1: S1: S2: S3"
        return "echoed_field"
    if _PLACEHOLDER.match(value.strip()) or plain in _PLACEHOLDER_WORDS:
        return "placeholder"
    return None


def _check_outputs(task_type: recipe.TaskType, outputs: dict) -> dict:
    """Refuse replies that fill in the form instead of the task (see REASONS); subtler defects are left to checks."""
    names = _field_names(task_type)
    for key, text in outputs.items():
        reason = degenerate(text, names)
        if reason is not None:
            raise ParseFailure(reason, f"{key!r} is {text[:40]!r}")
    plain = {key: _plain(text) for key, text in outputs.items()}
    for a, b in task_type.distinct_pairs:
        if plain[a] == plain[b]:
            raise ParseFailure("same_fields", f"{a!r} and {b!r} are the same text: {outputs[a][:40]!r}")
    for rule in task_type.copy_rules:
        needle, haystack = plain[rule.needle], plain[rule.haystack]
        if needle and needle in haystack and 2 * len(needle.split()) >= len(haystack.split()):
            raise ParseFailure("copied_field", f"{rule.haystack!r} is mostly {rule.needle!r} copied")
    return outputs


def salvage_array(text: str) -> list:
    """The complete items of a JSON array cut off by the token cap (``[`` "a", "b", "c...`` -> ["a", "b"])."""
    decoder = json.JSONDecoder()
    start = text.find("[")
    items: list = []
    if start < 0:
        return items
    pos = start + 1
    while True:
        while pos < len(text) and text[pos] in " \t\r\n,":
            pos += 1
        try:
            item, pos = decoder.raw_decode(text, pos)
        except (json.JSONDecodeError, RecursionError):
            return items
        items.append(item)


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
            if isinstance(item, str) and item.strip() and degenerate(item) is None:
                try:
                    tasks.append(_check_text("task", item))
                except ParseFailure:
                    continue
        if not tasks:
            raise ParseFailure("no_tasks", "the array holds no usable task (empty strings or placeholders)")
        return tasks
    task_type = recipe.get_task_type(element.category)
    if not isinstance(value, dict):
        raise ParseFailure("wrong_type", f"expected a JSON object, got {type(value).__name__}")
    missing = [k for k in task_type.output_keys if k not in value]
    if missing:
        raise ParseFailure(
            "missing_keys", f"missing {', '.join(missing)}; got {', '.join(map(str, value)) or 'no keys'}"
        )
    return _check_outputs(task_type, {k: _check_text(k, value[k]) for k in task_type.output_keys})


def _parse(request: PromptRequest, completion: Completion) -> Any:
    if completion.error is not None:
        raise ParseFailure("model_error", completion.error)
    try:
        value = extract_json(completion.text, completion.finish_reason)
    except ParseFailure as failure:
        # A brainstorm list cut off by its token cap still holds the tasks written before the cut.
        cut_list = failure.reason == "truncated_json" and request.element.stage == STAGE_BRAINSTORM
        value = salvage_array(completion.text) if cut_list else []
        if not value:
            raise
    return validate(request, value)


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
        self._at_cap = metrics.counter(metrics.REPLIES_AT_CAP)  # finish_reason "length": the reply hit its cap

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
        if completion.finish_reason == "length":
            self._at_cap.inc()
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
