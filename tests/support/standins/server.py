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
import json
import math
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable, Sequence

from tests.support.standins.behaviour import (
    ARRAY_ITEMS,
    FAULTS,
    Call,
    Fault,
    FaultCycle,
    TokenBucket,
    digest,
    reply_for_schema,
)
from tests.support.standins.handler import StandInHandler
from tests.support.standins.local import LocalServer

__all__ = ["FAULTS", "Call", "Fault", "FaultCycle", "StandIn", "reply_for_schema"]


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
        self._quota = TokenBucket(quota_rate, quota_burst or max(1.0, quota_rate)) if quota_rate else None
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
        return self._serve(StandInHandler, self._port)

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
        """Counts and timings: calls, answered, first and last start, last finish, max in flight, by fault.

        ``answered_by_last_start``: calls answered by the time the last call arrived (while the client still had
        calls to send, so its throughput there is its steady state); ``in_flight_by_last_start``: the mean number
        of calls in flight over that same span; ``delays``: each call's chosen latency, in arrival order.
        """
        with self._lock:
            calls = list(self._calls)
            max_in_flight = self._max_in_flight
        finished = [c for c in calls if c.finished]
        by_fault: dict = {}
        for c in calls:
            by_fault[c.fault or "ok"] = by_fault.get(c.fault or "ok", 0) + 1
        first_started = min((c.started for c in calls), default=0.0)
        last_started = max((c.started for c in calls), default=0.0)
        span = last_started - first_started
        busy = sum(max(0.0, min(c.finished or last_started, last_started) - c.started) for c in calls)
        return {
            "calls": len(calls),
            "answered": len(finished),
            "answered_by_last_start": sum(1 for c in finished if c.finished <= last_started),
            "in_flight_by_last_start": busy / span if span > 0 else 0.0,
            "delays": [c.delay for c in calls],
            "first_started": first_started,
            "last_started": last_started,
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
            uniform = (int(digest("latency", call.prompt, call.seed, call.prompt_calls)[:13], 16) + 0.5) / 16**13
            delay *= math.exp(sigma * statistics.NormalDist().inv_cdf(uniform) - sigma * sigma / 2)
        return delay

    def _text(self, call: Call) -> str:
        text = self.reply(call) if self.reply is not None else None
        return text if text is not None else reply_for_schema(call.schema, call.prompt, call.seed)


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
    ARRAY_ITEMS["min"] = max(1, args.array_items)
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
