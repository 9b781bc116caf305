"""RemoteHandler: the shared machinery of the remote backends (one request per element, sent concurrently).

A batch from RunInference becomes one request per element, handed to a :class:`~transforms.models.call_pool.CallPool`
that is shared by every handler of the same settings in the worker process, and by every bundle that runs there at
the same time (on the DirectRunner a remote backend runs several bundles at once unless ``--direct_num_workers``
says otherwise; Dataflow runs many bundle threads per process). At most ``max_concurrent_requests`` calls are in
flight per process, fewer while the service throttles (adaptive concurrency), and a finished call frees its slot
for the next queued call at once, whichever batch it belongs to. The results come back in the batch's order,
exactly one per element.

Failures are sorted per call. A retryable failure (429, 5xx, timeout, dropped connection) retries that call alone
after its own backoff (at least what ``Retry-After`` asked), without holding the others; after
``max_request_retries`` retries it comes back as an error Completion marked retryable (ParseAndValidate may ask it
once more in its next attempt, then dead-letters it). Any other failure (a 400, an unusable reply) comes back at
once as a non-retryable error Completion carrying the service's message: it becomes a ``model_error`` dead letter
without another call.
"""

from __future__ import annotations

import abc
import argparse
import dataclasses
import email.utils
import functools
import logging
import math
import threading
import time
from collections.abc import Sequence
from typing import Any

from apache_beam.ml.inference.base import PredictionResult, RemoteModelHandler

from transforms import metrics
from transforms.elements import Completion, PromptRequest
from transforms.models import Decoding
from transforms.models.call_pool import CallPool

__all__ = [
    "RemoteSettings",
    "RemoteHandler",
    "CallFailed",
    "Connection",
    "add_concurrency_flags",
    "direct_runner_args",
    "direct_bundles",
    "is_retryable_status",
    "is_throttling_status",
    "is_transport_error",
    "retry_after_seconds",
    "strip_schema",
]

_LOGGER = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class RemoteSettings:
    """Picklable settings shared by the remote backends; clients are created on the worker.

    Attributes:
        model: The model id sent to the service (``gemini-2.5-flash``, the name a server knows).
        max_tokens: Upper bound of tokens per reply.
        temperature: Sampling temperature.
        top_p: Nucleus sampling threshold.
        max_concurrent_requests: Most calls in flight per worker process (a ceiling when adaptive).
        requests_per_minute: Optional cap on calls started per minute per worker process.
        max_request_retries: Retries of one call, each after its own backoff, for 429, 5xx and timeouts.
        request_timeout: Seconds before one call is abandoned (and counted as retryable).
        batch_size: Elements RunInference hands the handler at once (their calls go to the shared pool).
        adaptive_concurrency: Grow the calls in flight while calls succeed, shrink them on 429 / 503
            (``--request-concurrency adaptive``); False keeps ``max_concurrent_requests`` in flight.
        initial_backoff: Seconds before a call's first retry (doubling per retry, with jitter).
    """

    model: str
    max_tokens: int = Decoding.max_tokens
    temperature: float = Decoding.temperature
    top_p: float = Decoding.top_p
    max_concurrent_requests: int = 32
    requests_per_minute: float | None = None
    max_request_retries: int = 5
    request_timeout: float = 120.0
    batch_size: int = 32
    adaptive_concurrency: bool = True
    initial_backoff: float = 1.0


REQUEST_CONCURRENCY = ("adaptive", "fixed")
# Bundles a remote backend runs at once on the DirectRunner when the user set none: one per 8 slots of the pool,
# 4 to 16. Each bundle thread waits for the slowest call of its RunInference batch (4 x the slots) before it hands
# the pool its next batch, and the slowest of a batch grows with the batch: with LLM-like latencies (lognormal,
# sigma 1) 4 bundles keep a 32-slot pool full but left a 128-slot pool 18% idle, and 16 keep it full
# (bench/concurrency.py). More bundles are not free: every stage runs that many DoFn instances (a small run took
# 34 s with 16 bundles against 15 s with 4), so they follow the pool's size.
_SLOTS_PER_BUNDLE = 8
_DIRECT_BUNDLES = (4, 16)


def add_concurrency_flags(group: argparse._ArgumentGroup) -> None:
    """The flags of the call pool that are not shared with other settings (added to the remote-models group)."""
    group.add_argument(
        "--request-concurrency",
        choices=REQUEST_CONCURRENCY,
        default="adaptive",
        help="adaptive (default): requests in flight per worker process grow while calls succeed and shrink on "
        "429/503, up to --max-concurrent-requests; fixed: always that many.",
    )


def direct_bundles(max_concurrent_requests: int) -> int:
    """Bundles at once on the DirectRunner for a pool of ``max_concurrent_requests`` slots (see _SLOTS_PER_BUNDLE)."""
    low, high = _DIRECT_BUNDLES
    return min(high, max(low, math.ceil(max_concurrent_requests / _SLOTS_PER_BUNDLE)))


def direct_runner_args(beam_args: Sequence[str], max_concurrent_requests: int = 32) -> list[str]:
    """``beam_args`` plus several bundles at once on the DirectRunner, unless the user chose a runner or workers.

    The call pool of a process serves every bundle running there; with enough bundles for its size
    (:func:`direct_bundles`), the ones waiting for the slowest call of their batch never leave it without queued calls.
    """
    args = list(beam_args)
    given = {a.split("=")[0] for a in args if a.startswith("--")}
    if given & {"--runner", "--direct_num_workers", "--direct_running_mode"}:
        return args
    bundles = direct_bundles(max_concurrent_requests)
    return [*args, "--direct_running_mode=multi_threading", f"--direct_num_workers={bundles}"]


class CallFailed(Exception):
    """One call failed; ``retryable`` says whether the same call may succeed later.

    Attributes:
        message: What the service or the client said.
        retryable: Whether the same call may succeed later.
        throttled: The service asked us to slow down (429, RESOURCE_EXHAUSTED, 503): the pool sends fewer calls.
        retry_after: Seconds the service asked to wait (``Retry-After``), if it said.
    """

    def __init__(self, message: str, retryable: bool, throttled: bool = False, retry_after: float | None = None):
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.throttled = throttled
        self.retry_after = retry_after


def is_retryable_status(status: int | None) -> bool:
    """429 (rate limited), 408 (request timeout) and 5xx may succeed on retry; other statuses never do."""
    return status is not None and (status in (408, 429) or status >= 500)


def is_throttling_status(status: int | None) -> bool:
    """429 (rate limited, RESOURCE_EXHAUSTED) and 503 (unavailable, overloaded): send fewer calls."""
    return status in (429, 503)


_MAX_RETRY_AFTER = 600.0


def retry_after_seconds(response: Any) -> float | None:
    """The wait an HTTP response asks for: ``retry-after-ms``, or ``Retry-After`` in seconds or as a date."""
    headers = getattr(response, "headers", None)
    if not headers:
        return None
    try:
        if headers.get("retry-after-ms"):
            return min(_MAX_RETRY_AFTER, max(0.0, float(headers["retry-after-ms"]) / 1000))
        value = headers.get("retry-after")
        if not value:
            return None
        try:
            seconds = float(value)
        except ValueError:
            seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return min(_MAX_RETRY_AFTER, max(0.0, seconds))


def _transport_errors() -> tuple:
    """Connection-level failures of the HTTP stacks the clients use (timeouts, refused or dropped connections)."""
    errors = []
    for module_name in ("httpx", "httpx2"):
        try:
            module = __import__(module_name)
        except ImportError:
            continue
        errors.append(module.TransportError)
    try:
        from google.auth.exceptions import TransportError

        errors.append(TransportError)
    except ImportError:
        pass
    return tuple(errors)


_TRANSPORT_ERRORS = _transport_errors()


def is_transport_error(err: BaseException) -> bool:
    """Whether ``err`` is a timeout or a connection that failed or was dropped (worth a retry)."""
    return isinstance(err, (TimeoutError, ConnectionError, *_TRANSPORT_ERRORS))


# JSON-schema keywords every remote backend understands; length bounds are left to --max-tokens because
# OpenAI's strict mode rejects them and llama.cpp's grammar converter expands large maxLength until it crashes.
_PORTABLE_KEYWORDS = {"type", "properties", "required", "items", "minItems", "maxItems", "additionalProperties"}


def strip_schema(schema: Any, keep: tuple = ()) -> Any:
    """``schema`` with only the keywords every backend accepts (no minLength/maxLength), plus those in ``keep``."""
    if isinstance(schema, dict):
        return {
            key: (
                {k: strip_schema(v, keep) for k, v in value.items()}
                if key == "properties"
                else strip_schema(value, keep)
            )
            for key, value in schema.items()
            if key in _PORTABLE_KEYWORDS or key in keep
        }
    if isinstance(schema, list):
        return [strip_schema(v, keep) for v in schema]
    return schema


class _RateLimiter:
    """Spaces call starts at least ``60 / per_minute`` seconds apart (thread-safe)."""

    def __init__(self, per_minute: float):
        self._interval = 60.0 / per_minute
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self._interval
        if start > now:
            time.sleep(start - now)


class _Shared:
    """Process-wide call pool and rate limiter for one backend and its settings."""

    def __init__(self, settings: RemoteSettings, namespace: str):
        self.limiter = _RateLimiter(settings.requests_per_minute) if settings.requests_per_minute else None
        self.pool = CallPool(
            settings.max_concurrent_requests,
            settings.max_request_retries,
            adaptive=settings.adaptive_concurrency,
            initial_backoff=settings.initial_backoff,
            namespace=namespace,
            before_call=self.limiter.wait if self.limiter else None,
        )


_SHARED: dict = {}
_SHARED_LOCK = threading.Lock()


def _shared(key, namespace: str) -> _Shared:
    with _SHARED_LOCK:
        shared = _SHARED.get(key)
        if shared is None:
            shared = _SHARED[key] = _Shared(key[1], namespace)
        return shared


class Connection:
    """The loaded "model" of a remote backend: its client and the process's shared call pool."""

    def __init__(self, client: Any, shared: _Shared):
        self.client = client
        self.shared = shared


class RemoteHandler(RemoteModelHandler[PromptRequest, PredictionResult, Connection]):
    """Base of the remote backends: one PromptRequest in, one PredictionResult(request, Completion) out.

    Subclasses set ``backend`` and implement ``_connect()`` (the service client, created on the worker) and
    ``_call(client, request)`` (one call; returns a Completion or raises CallFailed).
    """

    backend = "remote"

    def __init__(self, settings: RemoteSettings):
        # Retries and client-side throttling happen per call in the pool: request() never raises for a failed
        # call, so Beam's batch-level retry (num_retries=0) and throttler never hold a batch.
        super().__init__(namespace=f"embedgen_{self.backend}", num_retries=0, retry_filter=lambda err: False)
        self._settings = settings

    @property
    def model_name(self) -> str:
        """The name written into rows: ``<backend>:<model>``."""
        return f"{self.backend}:{self._settings.model}"

    @abc.abstractmethod
    def _connect(self) -> Any:
        """The service client (called once per worker process and handler)."""

    @abc.abstractmethod
    def _call(self, client: Any, request: PromptRequest) -> Completion:
        """One call to the service; raises CallFailed (or a transport error) when it fails."""

    def create_client(self) -> Connection:
        return Connection(self._connect(), _shared((type(self).__name__, self._settings), self.get_metrics_namespace()))

    def _call_one(self, connection: Connection, request: PromptRequest):
        """A Completion, or the CallFailed that says why there is none (never raises)."""
        started = time.monotonic()
        try:
            completion = self._call(connection.client, request)
        except CallFailed as failed:
            return failed
        except Exception as err:  # noqa: BLE001 - one element's failure must not fail the batch
            if is_transport_error(err):
                return CallFailed(f"{type(err).__name__}: {err or 'connection failed'}", retryable=True)
            _LOGGER.warning(
                "element %s: unexpected %s from the %s client",
                request.element.element_id,
                type(err).__name__,
                self.backend,
            )
            return CallFailed(f"{type(err).__name__}: {err}", retryable=False)
        _LOGGER.debug(
            "element %s attempt %d: %.2f s", request.element.element_id, request.attempt, time.monotonic() - started
        )
        return completion

    def _completion(self, result: Any) -> Completion:
        if isinstance(result, Completion):
            return result
        if isinstance(result, CallFailed):
            return Completion(
                text="", model=self.model_name, finish_reason="error", error=result.message, retryable=result.retryable
            )
        return Completion(
            text="", model=self.model_name, finish_reason="error", error=f"{type(result).__name__}: {result}"
        )

    def request(
        self, batch: Sequence[PromptRequest], model: Connection, inference_args: dict | None = None
    ) -> list[PredictionResult]:
        pool = model.shared.pool
        futures = [pool.submit(functools.partial(self._call_one, model, request)) for request in batch]
        outcomes = [future.result() for future in futures]
        # Counted here, in the bundle's thread: Beam's metrics are not recorded from the pool's threads.
        namespace = self.get_metrics_namespace()
        metrics.counter(metrics.REMOTE_CALLS, namespace=namespace).inc(sum(o.calls for o in outcomes))
        failures = sum(o.retryable_failures for o in outcomes)
        if failures:
            metrics.counter(metrics.REMOTE_RETRYABLE_FAILURES, namespace=namespace).inc(failures)
        throttled = sum(o.throttled_seconds for o in outcomes)
        if throttled:
            pool.throttler.throttling_signaler.signal_throttled(int(round(throttled)))
        return [
            PredictionResult(request, self._completion(outcome.result), self.model_name)
            for request, outcome in zip(batch, outcomes, strict=True)
        ]

    def get_num_bytes(self, batch: Sequence[PromptRequest]) -> int:
        return sum(len(r.prompt) for r in batch)

    def get_metrics_namespace(self) -> str:
        return f"embedgen_{self.backend}"

    def batch_elements_kwargs(self) -> dict:
        # Full batches: a batch's calls go to the shared pool at once, so a small batch only keeps fewer queued.
        size = self._settings.batch_size
        return {"min_batch_size": size, "max_batch_size": size}
