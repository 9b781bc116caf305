"""The stand-in's HTTP handler: routes generateContent, chat completions, /token and stats to its StandIn."""

from __future__ import annotations

import http.server
import json
import re
import time
from typing import Any

from tests.support.standins.behaviour import (
    STATUS,
    Call,
    digest,
    gemini_prompt,
    gemini_schema,
    openai_prompt,
    openai_schema,
)

__all__ = ["StandInHandler"]


class StandInHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real services
    disable_nagle_algorithm = True  # headers and body go out at once (else delayed ACKs add ~40 ms per answer)
    standin: Any  # the StandIn this handler serves (set on the bound subclass)

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
            self._send(200, {"access_token": self.standin.TOKEN, "expires_in": 3600, "token_type": "Bearer"})
            return
        found = re.search(r"models/([^/:]+):generateContent$", path)
        if found:
            call = Call(
                "gemini",
                path,
                found.group(1),
                gemini_prompt(body),
                (body.get("generationConfig") or {}).get("seed"),
                gemini_schema(body),
                body,
                {k.lower(): v for k, v in self.headers.items()},
            )
        elif path.endswith("/chat/completions"):
            call = Call(
                "openai",
                path,
                str(body.get("model", "")),
                openai_prompt(body),
                body.get("seed"),
                openai_schema(body),
                body,
                {k.lower(): v for k, v in self.headers.items()},
            )
        else:
            self._send(404, {"error": {"code": 404, "message": f"no route {path}", "status": "NOT_FOUND"}})
            return
        call.started = time.monotonic()
        if call.protocol == "gemini" and self.standin.require_auth:
            if call.headers.get("authorization") != f"Bearer {self.standin.TOKEN}":
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
            self._error(call, *STATUS["429"])
            return
        if fault in STATUS:
            status, google_status, openai_code, message = STATUS[fault]
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
        delay = call.delay = self.standin._delay(call)
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
                "id": f"chatcmpl-standin-{digest(call.prompt, call.seed, call.started)[:12]}",
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
