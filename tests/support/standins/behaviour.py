"""What the stand-in answers: fault rules, the recorded calls, the shared quota, and replies derived from schemas."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Callable, Sequence
from typing import Any

__all__ = [
    "FAULTS",
    "STATUS",
    "ARRAY_ITEMS",
    "Call",
    "Fault",
    "FaultCycle",
    "TokenBucket",
    "digest",
    "reply_for_schema",
    "gemini_prompt",
    "gemini_schema",
    "openai_prompt",
    "openai_schema",
]


# Every fault a rule can inject. Status faults answer at once; the others answer after the latency.
FAULTS = (
    "429",  # rate limited (RESOURCE_EXHAUSTED / rate_limit_exceeded)
    "500",  # internal server error
    "503",  # service unavailable
    "400",  # invalid argument: never succeeds on retry
    "hang",  # no answer for hang_seconds (the client's timeout fires first)
    "drop",  # the connection is closed without an answer
    "non_json",  # HTTP 200, the model's text is prose, not JSON
    "truncated",  # HTTP 200, the model's text stops inside the JSON value (finish reason: length)
    "missing_keys",  # HTTP 200, valid JSON without the last required key
    "empty",  # HTTP 200, the model's text is empty
    "bad_body",  # HTTP 200, the response body itself is not JSON
)

STATUS = {
    "429": (429, "RESOURCE_EXHAUSTED", "rate_limit_exceeded", "Resource exhausted (stand-in): too many requests."),
    "500": (500, "INTERNAL", "server_error", "Internal error encountered (stand-in)."),
    "503": (503, "UNAVAILABLE", "server_error", "The service is currently unavailable (stand-in)."),
    "400": (400, "INVALID_ARGUMENT", "invalid_request_error", "Request contains an invalid argument (stand-in)."),
}


@dataclasses.dataclass
class Call:
    """One request the stand-in received.

    Attributes:
        protocol: ``gemini`` or ``openai``.
        path: The request path.
        model: The model named by the request.
        prompt: The text of the first user message.
        seed: The sampling seed the request carried, if any.
        schema: The JSON schema the request asked the reply to follow, if any.
        body: The parsed request body.
        headers: Request headers, names lower-cased.
        prompt_calls: How many earlier calls carried the same prompt.
        started: ``time.monotonic()`` when the request was read.
        finished: ``time.monotonic()`` when the answer was written (0 while in flight).
        status: HTTP status of the answer (0 for a dropped or hung call).
        fault: The injected fault, None for a valid answer, or why the call was refused before any rule:
            ``unauthenticated`` (no valid bearer token), ``unsupported_format`` (a response_format type the
            stand-in was told not to accept) or ``quota`` (answered 429: the shared quota had no token left).
        retry_after: The ``Retry-After`` seconds the answer carried, if any.
        delay: The latency the stand-in chose for the call (seconds; 0 until chosen).
    """

    protocol: str
    path: str
    model: str
    prompt: str
    seed: int | None
    schema: dict | None
    body: dict
    headers: dict
    prompt_calls: int = 0
    started: float = 0.0
    finished: float = 0.0
    status: int = 0
    fault: str | None = None
    retry_after: float | None = None
    delay: float = 0.0


class TokenBucket:
    """A shared quota: ``rate`` tokens per second, at most ``burst`` saved up; one token per call (not thread-safe)."""

    def __init__(self, rate: float, burst: float):
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._updated = time.monotonic()

    def take(self, now: float) -> float:
        """0 when a token was taken, else the seconds until the next token."""
        self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
        self._updated = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / self.rate


@dataclasses.dataclass
class Fault:
    """A rule: give ``kind`` to calls that ``match``, at most ``times`` times.

    Attributes:
        kind: One of FAULTS.
        match: None (every call), a substring of the prompt, or a predicate on the Call.
        times: How many matching calls get the fault; None for all of them.
        per_prompt: Count ``times`` separately for each distinct prompt (``times=1``: each prompt's first call
            fails, its retry succeeds) or over all calls together.
        protocol: Restrict the rule to ``gemini`` or ``openai`` calls.
        retry_after: Seconds sent in a ``Retry-After`` header with a status fault (None: no header).
    """

    kind: str
    match: None | str | Callable[[Call], bool] = None
    times: int | None = None
    per_prompt: bool = True
    protocol: str | None = None
    retry_after: float | None = None

    def __post_init__(self):
        if self.kind not in FAULTS:
            raise ValueError(f"unknown fault {self.kind!r}; allowed: {', '.join(FAULTS)}")

    def matches(self, call: Call) -> bool:
        if self.protocol is not None and call.protocol != self.protocol:
            return False
        if self.match is None:
            return True
        if isinstance(self.match, str):
            return self.match in call.prompt
        return bool(self.match(call))


class FaultCycle:
    """Faults by order of arrival: each distinct prompt, when first seen, gets the next kind of ``kinds``.

    ``None`` in ``kinds`` means a valid answer. A prompt's fault is given on its first ``times`` calls (its
    retries then succeed), or on every call for the kinds in ``always``::

        cycle = FaultCycle(["429", "400", "non_json", None], always=("400",))
        standin = StandIn(faults=cycle.rules)
        ...
        cycle.assigned  # {prompt: kind}, to check what became of each prompt

    Attributes:
        rules: The Fault rules to give the stand-in.
        assigned: The kind each prompt got, in order of first arrival.
    """

    def __init__(self, kinds: Sequence[str | None], times: int = 1, always: Sequence[str] = ()):
        self.kinds = tuple(kinds)
        self.assigned: dict = {}
        self.rules = [
            Fault(kind, match=self._is(kind), times=None if kind in always else times)
            for kind in dict.fromkeys(k for k in self.kinds if k is not None)
        ]

    def _is(self, kind: str) -> Callable[[Call], bool]:
        def match(call: Call) -> bool:  # called under the stand-in's lock
            if call.prompt not in self.assigned:
                self.assigned[call.prompt] = self.kinds[len(self.assigned) % len(self.kinds)]
            return self.assigned[call.prompt] == kind

        return match

    def prompts(self, kind: str | None) -> set:
        """The prompts that were given ``kind``."""
        return {prompt for prompt, given in self.assigned.items() if given == kind}


def digest(*parts: object) -> str:
    return hashlib.sha256("\x1f".join(map(str, parts)).encode("utf-8")).hexdigest()


# Items a schema-driven array reply holds at least (brainstorm lists); a standalone stand-in can be told to answer
# like a model that lists what the prompt asks for (``--array-items 20``).
ARRAY_ITEMS = {"min": 3}


def _example(schema: dict, tag: str, key: str) -> Any:
    kind = str(schema.get("type", "string")).lower()
    if kind == "object":
        props = schema.get("properties") or {}
        keys = schema.get("required") or list(props)
        return {k: _example(props.get(k, {}), tag, k) for k in keys}
    if kind == "array":
        count = max(int(schema.get("minItems", schema.get("min_items", 1)) or 1), ARRAY_ITEMS["min"])
        most = schema.get("maxItems", schema.get("max_items"))
        count = min(count, int(most)) if most is not None else count
        return [_example(schema.get("items") or {}, digest(tag, i), key) for i in range(count)]
    if kind in ("integer", "number"):
        return int(tag[:4], 16) % 100
    if kind == "boolean":
        return True
    return f"{key} {tag[:12]}".strip()


def reply_for_schema(schema: dict | None, prompt: str, seed: int | None) -> str:
    """A JSON text that satisfies ``schema`` (our shapes), deterministic in (prompt, seed).

    Strings are ``"<key> <hash>"``, array items distinct. Without a schema: ``{"text": ...}``.
    """
    tag = digest(prompt, seed)
    if not schema:
        return json.dumps({"text": f"text {tag[:12]}"})
    return json.dumps(_example(schema, tag, "item"))


def openai_schema(body: dict) -> dict | None:
    fmt = body.get("response_format") or {}
    if fmt.get("type") == "json_schema":
        return (fmt.get("json_schema") or {}).get("schema")
    return fmt.get("schema")


def gemini_schema(body: dict) -> dict | None:
    config = body.get("generationConfig") or {}
    return config.get("responseJsonSchema") or config.get("responseSchema")


def gemini_prompt(body: dict) -> str:
    for content in body.get("contents") or []:
        texts = [p.get("text", "") for p in content.get("parts") or [] if isinstance(p, dict)]
        if texts:
            return "".join(texts)
    return ""


def openai_prompt(body: dict) -> str:
    for message in body.get("messages") or []:
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                return "".join(part.get("text", "") for part in content if isinstance(part, dict))
            return str(content or "")
    return ""
