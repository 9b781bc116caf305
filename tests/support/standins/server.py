"""StandIn: a local HTTP server that answers like Vertex AI generateContent and OpenAI chat completions, with faults.

One server speaks both protocols, chosen by the request path:

- ``POST .../models/<model>:generateContent``: Vertex AI / Gemini API (needs ``Authorization: Bearer <token>``);
- ``POST .../chat/completions``: an OpenAI-compatible server;
- ``POST /token``: an OAuth token endpoint, so that Application Default Credentials can be pointed at the stand-in
  (:meth:`StandIn.write_adc_file` writes a service-account key file) and the real google-auth flow runs;
- ``GET /_standin/stats``: counts and timings (used by a benchmark that runs the stand-in in another process).

Latency can be fixed or drawn from a lognormal spread with the same mean (``latency_spread``), and a shared quota
(a token bucket over all callers, ``quota_rate`` requests per second) answers 429 with ``Retry-After`` beyond it.

A valid reply is derived from the JSON schema the request carries (every required key gets a non-empty string,
arrays get distinct strings), so any task type works without configuration. Faults are injected by a list of
:class:`Fault` rules; the first rule that applies to a call decides what the call gets::

    standin = StandIn(latency=0.2, faults=[Fault("429", times=1), Fault("400", match="Swahili")])
    with standin:
        client = openai.OpenAI(base_url=standin.openai_base_url, api_key="unused")
        ...
        assert standin.model_calls()[0].fault == "429"

Run it alone with ``python -m tests.support.standins.server --port 8088 --latency 0.5`` (it prints its URL).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import http.server
import json
import math
import os
import re
import statistics
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from tests.support.standins.local import LocalServer

__all__ = ["FAULTS", "Call", "Fault", "FaultCycle", "StandIn", "reply_for_schema"]

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

_STATUS = {
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


class _TokenBucket:
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


def _digest(*parts: object) -> str:
    return hashlib.sha256("\x1f".join(map(str, parts)).encode("utf-8")).hexdigest()


# Items a schema-driven array reply holds at least (brainstorm lists); a standalone stand-in can be told to answer
# like a model that lists what the prompt asks for (``--array-items 20``).
_ARRAY_ITEMS = {"min": 3}


def _example(schema: dict, tag: str, key: str) -> Any:
    kind = str(schema.get("type", "string")).lower()
    if kind == "object":
        props = schema.get("properties") or {}
        keys = schema.get("required") or list(props)
        return {k: _example(props.get(k, {}), tag, k) for k in keys}
    if kind == "array":
        count = max(int(schema.get("minItems", schema.get("min_items", 1)) or 1), _ARRAY_ITEMS["min"])
        most = schema.get("maxItems", schema.get("max_items"))
        count = min(count, int(most)) if most is not None else count
        return [_example(schema.get("items") or {}, _digest(tag, i), key) for i in range(count)]
    if kind in ("integer", "number"):
        return int(tag[:4], 16) % 100
    if kind == "boolean":
        return True
    return f"{key} {tag[:12]}".strip()


def reply_for_schema(schema: dict | None, prompt: str, seed: int | None) -> str:
    """A JSON text that satisfies ``schema`` (our shapes), deterministic in (prompt, seed).

    Strings are ``"<key> <hash>"``, array items distinct. Without a schema: ``{"text": ...}``.
    """
    tag = _digest(prompt, seed)
    if not schema:
        return json.dumps({"text": f"text {tag[:12]}"})
    return json.dumps(_example(schema, tag, "item"))


def _openai_schema(body: dict) -> dict | None:
    fmt = body.get("response_format") or {}
    if fmt.get("type") == "json_schema":
        return (fmt.get("json_schema") or {}).get("schema")
    return fmt.get("schema")


def _gemini_schema(body: dict) -> dict | None:
    config = body.get("generationConfig") or {}
    return config.get("responseJsonSchema") or config.get("responseSchema")


def _gemini_prompt(body: dict) -> str:
    for content in body.get("contents") or []:
        texts = [p.get("text", "") for p in content.get("parts") or [] if isinstance(p, dict)]
        if texts:
            return "".join(texts)
    return ""


def _openai_prompt(body: dict) -> str:
    for message in body.get("messages") or []:
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                return "".join(part.get("text", "") for part in content if isinstance(part, dict))
            return str(content or "")
    return ""


class StandIn(LocalServer):
    """A stand-in model service on 127.0.0.1. Use as a context manager, or call start() and stop().

    Args:
        faults: Rules, tried in order; the first that applies to a call decides its fault.
        latency: Seconds before each model answer (status faults and drops answer at once), or a
            function of the Call giving the seconds.
        latency_spread: Sigma of a lognormal factor applied to ``latency`` (mean 1, so the mean latency stays
            the same); 0 keeps it fixed. The factor is drawn per call from (prompt, seed, earlier calls of the
            prompt), so a run's latencies are reproducible.
        quota_rate: Requests per second that the shared quota admits over all callers (a token bucket);
            a call beyond it is answered 429 at once with ``Retry-After`` (whole seconds, as HTTP has it).
            None: no quota.
        quota_burst: Tokens the quota saves up (default: one second's worth, ``quota_rate``).
        reply: Optional function of the Call giving the model's text for a valid answer (default:
            :func:`reply_for_schema` of the request's schema).
        hang_seconds: How long a ``hang`` fault keeps the call open.
        openai_formats: The ``response_format`` types the OpenAI endpoint accepts; any other type is
            answered with a 400 naming ``response_format`` (like servers without structured output).
        require_auth: Whether Gemini calls must carry the bearer token that ``/token`` hands out.
        port: Port to listen on (0: any free port).
    """

    TOKEN = "standin-access-token"

    def __init__(
        self,
        faults: Sequence[Fault] = (),
        latency: float | Callable[[Call], float] = 0.0,
        latency_spread: float = 0.0,
        quota_rate: float | None = None,
        quota_burst: float | None = None,
        reply: Callable[[Call], str | None] | None = None,
        hang_seconds: float = 30.0,
        openai_formats: Sequence[str] = ("json_schema", "json_object", "text"),
        require_auth: bool = True,
        port: int = 0,
    ):
        self.faults = list(faults)
        self.latency = latency
        self.latency_spread = latency_spread
        self._quota = _TokenBucket(quota_rate, quota_burst or max(1.0, quota_rate)) if quota_rate else None
        self.reply = reply
        self.hang_seconds = hang_seconds
        self.openai_formats = tuple(openai_formats)
        self.require_auth = require_auth
        self._port = port
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._calls: list[Call] = []
        self._fault_counts: dict = {}
        self._prompt_counts: dict = {}
        self._in_flight = 0
        self._max_in_flight = 0
        self._token_requests = 0

    # ----- lifecycle -----
    def start(self) -> StandIn:
        return self._serve(_Handler, self._port)

    def stop(self) -> None:
        self._stopping.set()
        super().stop()

    # ----- addresses -----
    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``: the base URL to give the google-genai client."""
        assert self._server is not None, "start() the stand-in first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def openai_base_url(self) -> str:
        """``<url>/v1``: the base URL to give an OpenAI client (``--api-base``)."""
        return self.url + "/v1"

    def write_adc_file(self, directory: str, project: str | None = "standin-project") -> str:
        """Write a service-account key file whose token endpoint is this stand-in; returns its path.

        Point ``GOOGLE_APPLICATION_CREDENTIALS`` at it and google-auth signs a JWT with the (fresh, throw-away)
        key and exchanges it for an access token at the stand-in, as it would at Google. ``project`` is the
        file's ``project_id`` (None: the file names no project).
        """
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode("ascii")
        info = {
            "type": "service_account",
            "private_key_id": "standin-key",
            "private_key": pem,
            "client_email": "standin@standin-project.iam.gserviceaccount.com",
            "client_id": "1",
            "token_uri": self.url + "/token",
        }
        if project is not None:
            info["project_id"] = project
        path = os.path.join(str(directory), "standin-adc.json")
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(info, handle)
        return path

    # ----- what happened -----
    @property
    def calls(self) -> list[Call]:
        """Every model call so far, in arrival order (a copy)."""
        with self._lock:
            return list(self._calls)

    def model_calls(self, protocol: str | None = None) -> list[Call]:
        return [c for c in self.calls if protocol is None or c.protocol == protocol]

    @property
    def token_requests(self) -> int:
        return self._token_requests

    def stats(self) -> dict:
        """Counts and timings: calls, answered, first start, last finish, max in flight, by fault."""
        with self._lock:
            calls = list(self._calls)
            max_in_flight = self._max_in_flight
        finished = [c for c in calls if c.finished]
        by_fault: dict = {}
        for c in calls:
            by_fault[c.fault or "ok"] = by_fault.get(c.fault or "ok", 0) + 1
        return {
            "calls": len(calls),
            "answered": len(finished),
            "first_started": min((c.started for c in calls), default=0.0),
            "last_started": max((c.started for c in calls), default=0.0),
            "last_finished": max((c.finished for c in finished), default=0.0),
            "max_in_flight": max_in_flight,
            "by_fault": by_fault,
        }

    def reset(self) -> None:
        """Forget calls and fault counts (rules stay)."""
        with self._lock:
            self._calls.clear()
            self._fault_counts.clear()
            self._prompt_counts.clear()
            self._max_in_flight = self._in_flight

    # ----- used by the request handler -----
    def _admit(self, call: Call, refused: str | None = None) -> str | None:
        """Record the call and choose its fault (``refused``: the call is refused for that reason instead)."""
        with self._lock:
            call.prompt_calls = self._prompt_counts.get(call.prompt, 0)
            self._prompt_counts[call.prompt] = call.prompt_calls + 1
            self._calls.append(call)
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
            if refused is not None:
                call.fault = refused
                return refused
            if self._quota is not None:
                wait = self._quota.take(call.started)
                if wait > 0:
                    call.fault, call.retry_after = "quota", float(max(1, math.ceil(wait)))
                    return "quota"
            for index, rule in enumerate(self.faults):
                if not rule.matches(call):
                    continue
                key = (index, call.prompt if rule.per_prompt else None)
                used = self._fault_counts.get(key, 0)
                if rule.times is not None and used >= rule.times:
                    continue
                self._fault_counts[key] = used + 1
                call.fault = rule.kind
                call.retry_after = rule.retry_after
                return rule.kind
        return None

    def _done(self, call: Call, status: int) -> None:
        with self._lock:
            call.status = status
            call.finished = time.monotonic()
            self._in_flight -= 1

    def _delay(self, call: Call) -> float:
        delay = float(self.latency(call) if callable(self.latency) else self.latency)
        if self.latency_spread > 0:
            sigma = self.latency_spread
            uniform = (int(_digest("latency", call.prompt, call.seed, call.prompt_calls)[:13], 16) + 0.5) / 16**13
            delay *= math.exp(sigma * statistics.NormalDist().inv_cdf(uniform) - sigma * sigma / 2)
        return delay

    def _text(self, call: Call) -> str:
        text = self.reply(call) if self.reply is not None else None
        return text if text is not None else reply_for_schema(call.schema, call.prompt, call.seed)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real services
    disable_nagle_algorithm = True  # headers and body go out at once (else delayed ACKs add ~40 ms per answer)
    standin: StandIn  # set on the bound subclass

    def log_message(self, format, *args):  # noqa: A002 - quiet: tests read calls, not logs
        pass

    # ----- plumbing -----
    def _send(self, status: int, payload: Any, content_type: str = "application/json", headers=()) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode("utf-8")
        try:
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (its timeout fired)

    def _body(self) -> dict:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            return json.loads(raw or b"{}")
        except ValueError:
            return {}

    def do_GET(self):  # noqa: N802 - http.server's naming
        if self.path.startswith("/_standin/stats"):
            self._send(200, self.standin.stats())
        elif self.path.rstrip("/").endswith("/models"):
            self._send(200, {"object": "list", "data": [{"id": "standin", "object": "model", "owned_by": "standin"}]})
        else:
            self._send(404, {"error": {"code": 404, "message": f"no route {self.path}", "status": "NOT_FOUND"}})

    def do_POST(self):  # noqa: N802
        body = self._body()
        path = self.path.split("?")[0]
        if path.rstrip("/").endswith("/token"):
            with self.standin._lock:
                self.standin._token_requests += 1
            self._send(200, {"access_token": StandIn.TOKEN, "expires_in": 3600, "token_type": "Bearer"})
            return
        found = re.search(r"models/([^/:]+):generateContent$", path)
        if found:
            call = Call(
                "gemini",
                path,
                found.group(1),
                _gemini_prompt(body),
                (body.get("generationConfig") or {}).get("seed"),
                _gemini_schema(body),
                body,
                {k.lower(): v for k, v in self.headers.items()},
            )
        elif path.endswith("/chat/completions"):
            call = Call(
                "openai",
                path,
                str(body.get("model", "")),
                _openai_prompt(body),
                body.get("seed"),
                _openai_schema(body),
                body,
                {k.lower(): v for k, v in self.headers.items()},
            )
        else:
            self._send(404, {"error": {"code": 404, "message": f"no route {path}", "status": "NOT_FOUND"}})
            return
        call.started = time.monotonic()
        if call.protocol == "gemini" and self.standin.require_auth:
            if call.headers.get("authorization") != f"Bearer {StandIn.TOKEN}":
                self.standin._admit(call, refused="unauthenticated")
                self._error(
                    call,
                    401,
                    "UNAUTHENTICATED",
                    "authentication_error",
                    "Request had invalid authentication credentials.",
                )
                return
        if call.protocol == "openai":
            kind = (body.get("response_format") or {}).get("type")
            if kind is not None and kind not in self.standin.openai_formats:
                self.standin._admit(call, refused="unsupported_format")
                self._error(
                    call,
                    400,
                    "INVALID_ARGUMENT",
                    "invalid_request_error",
                    f"response_format type {kind!r} is not supported by this server",
                )
                return
        fault = self.standin._admit(call)
        if fault == "quota":
            self._error(call, *_STATUS["429"])
            return
        if fault in _STATUS:
            status, google_status, openai_code, message = _STATUS[fault]
            self._error(call, status, google_status, openai_code, message)
            return
        if fault == "drop":
            self.close_connection = True
            self.standin._done(call, 0)
            return
        if fault == "hang":
            self.standin._stopping.wait(self.standin.hang_seconds)
            self.close_connection = True
            self.standin._done(call, 0)
            return
        delay = self.standin._delay(call)
        if delay > 0:
            self.standin._stopping.wait(delay)
        if fault == "bad_body":
            self._send(200, b"<html>upstream proxy error</html>", "text/html")
            self.standin._done(call, 200)
            return
        text, finish = self._model_text(call, fault)
        self._answer(call, text, finish)

    def _model_text(self, call: Call, fault: str | None) -> tuple[str, str]:
        valid = self.standin._text(call)
        if fault == "non_json":
            return "Sure! Here is what you asked for, in plain words rather than JSON.", "stop"
        if fault == "truncated":
            return valid[: max(1, len(valid) // 2)], "length"
        if fault == "empty":
            return "", "stop"
        if fault == "missing_keys":
            value = json.loads(valid)
            if isinstance(value, dict) and value:
                value.pop(list(value)[-1])
            else:
                value = {"unexpected": "shape"}
            return json.dumps(value), "stop"
        return valid, "stop"

    def _answer(self, call: Call, text: str, finish: str) -> None:
        prompt_tokens = max(1, len(call.prompt.split()))
        completion_tokens = max(1, len(text) // 4)
        if call.protocol == "gemini":
            payload = {
                "candidates": [
                    {
                        "content": {"role": "model", "parts": [{"text": text}]},
                        "finishReason": "MAX_TOKENS" if finish == "length" else "STOP",
                    }
                ],
                "usageMetadata": {
                    "promptTokenCount": prompt_tokens,
                    "candidatesTokenCount": completion_tokens,
                    "totalTokenCount": prompt_tokens + completion_tokens,
                },
                "modelVersion": call.model,
            }
        else:
            payload = {
                "id": f"chatcmpl-standin-{_digest(call.prompt, call.seed, call.started)[:12]}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": call.model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
            }
        self._send(200, payload)
        self.standin._done(call, 200)

    def _error(self, call: Call, status: int, google_status: str, openai_code: str, message: str) -> None:
        if call.protocol == "gemini":
            payload = {"error": {"code": status, "message": message, "status": google_status}}
        else:
            payload = {"error": {"message": message, "type": openai_code, "param": None, "code": openai_code}}
        headers = [] if call.retry_after is None else [("Retry-After", f"{call.retry_after:g}")]
        self._send(status, payload, headers=headers)
        self.standin._done(call, status)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve the stand-in model service until interrupted.")
    parser.add_argument("--port", type=int, default=0, help="Port on 127.0.0.1 (0: any free port).")
    parser.add_argument("--latency", type=float, default=0.0, help="Seconds before each model answer.")
    parser.add_argument("--array-items", type=int, default=3, help="Items in each array reply (brainstorm lists).")
    parser.add_argument(
        "--latency-spread",
        type=float,
        default=0.0,
        help="Sigma of a lognormal latency factor with mean 1 (default: 0).",
    )
    parser.add_argument("--quota-rate", type=float, default=None, help="Shared quota in requests/s (default: none).")
    parser.add_argument("--quota-burst", type=float, default=None, help="Tokens the quota saves up (default: 1 s).")
    parser.add_argument("--adc-dir", default=None, help="Also write a credentials file for this stand-in there.")
    args = parser.parse_args(argv)
    _ARRAY_ITEMS["min"] = max(1, args.array_items)
    standin = StandIn(
        latency=args.latency,
        latency_spread=args.latency_spread,
        quota_rate=args.quota_rate,
        quota_burst=args.quota_burst,
        port=args.port,
    ).start()
    adc = standin.write_adc_file(args.adc_dir) if args.adc_dir else ""
    print(standin.url, adc, flush=True)  # the parent process reads the address (and the file) from the first line
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        standin.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
