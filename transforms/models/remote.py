"""RemoteHandler: the shared machinery of the remote backends (one request per element, sent concurrently).

A batch from RunInference becomes one request per element, sent at the same time through a thread pool that
is shared by every handler of the same settings in the worker process, so at most
``max_concurrent_requests`` calls are in flight per process whatever the batch size or the number of
stages. The results come back in the batch's order, exactly one per element.

Failures are sorted per element. A retryable failure (429, 5xx, timeout, dropped connection) makes
``request()`` raise, so that Beam's RemoteModelHandler backs off, counts the failure for its client-side
throttler and calls again; the elements that already have an answer are kept and not sent again. After
``max_request_retries`` such rounds the still-failing elements come back as error Completions marked
retryable (ParseAndValidate may ask them once more in its next attempt, then dead-letters them). Any other
failure (a 400, an unusable reply) comes back at once as a non-retryable error Completion carrying the
service's message: it becomes a ``model_error`` dead letter without another call.
"""

from __future__ import annotations

import abc
import concurrent.futures
import dataclasses
import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

from apache_beam.metrics import Metrics
from apache_beam.ml.inference.base import PredictionResult, RemoteModelHandler

from transforms.elements import Completion, PromptRequest
from transforms.models import Decoding

__all__ = [
    "RemoteSettings",
    "RemoteHandler",
    "CallFailed",
    "RetryableBatch",
    "Connection",
    "is_retryable_status",
    "is_transport_error",
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
        max_concurrent_requests: Most calls in flight per worker process.
        requests_per_minute: Optional cap on calls started per minute per worker process.
        max_request_retries: Rounds of Beam's retry with backoff for 429, 5xx and timeouts.
        request_timeout: Seconds before one call is abandoned (and counted as retryable).
        batch_size: Elements RunInference hands the handler at once (requests are sent concurrently).
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


class CallFailed(Exception):
    """One call failed; ``retryable`` says whether the same call may succeed later."""

    def __init__(self, message: str, retryable: bool):
        super().__init__(message)
        self.message = message
        self.retryable = retryable


class RetryableBatch(Exception):
    """Raised by ``request()`` so that Beam retries the batch; only the failed elements are sent again."""


def _retry_batch(err: Exception) -> bool:
    """Beam's retry filter: only the batches our own request() marked for a retry (never a bug's exception)."""
    return isinstance(err, RetryableBatch)


def is_retryable_status(status: int | None) -> bool:
    """429 (rate limited), 408 (request timeout) and 5xx may succeed on retry; other statuses never do."""
    return status is not None and (status in (408, 429) or status >= 500)


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
    """Process-wide pool and rate limiter for one backend and its settings."""

    def __init__(self, settings: RemoteSettings):
        self.pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=settings.max_concurrent_requests, thread_name_prefix="embedgen-remote"
        )
        self.limiter = _RateLimiter(settings.requests_per_minute) if settings.requests_per_minute else None


_SHARED: dict = {}
_SHARED_LOCK = threading.Lock()


def _shared(key) -> _Shared:
    with _SHARED_LOCK:
        shared = _SHARED.get(key)
        if shared is None:
            shared = _SHARED[key] = _Shared(key[1])
        return shared


@dataclasses.dataclass
class _Pending:
    """What is known about one batch across Beam's retries of it."""

    batch: Sequence[PromptRequest]
    results: list
    rounds: int = 0


class Connection:
    """The loaded "model" of a remote backend: its client, the shared pool, and the batches being retried."""

    def __init__(self, client: Any, shared: _Shared):
        self.client = client
        self.shared = shared
        self._pending: dict = {}
        self._lock = threading.Lock()

    def pending(self, batch: Sequence[PromptRequest]) -> _Pending:
        """The state of ``batch``: new, or the one a retry of this same batch left."""
        with self._lock:
            state = self._pending.get(id(batch))
            if state is None or state.batch is not batch:
                state = self._pending[id(batch)] = _Pending(batch, [None] * len(batch))
            return state

    def finish(self, batch: Sequence[PromptRequest]) -> None:
        with self._lock:
            self._pending.pop(id(batch), None)


class RemoteHandler(RemoteModelHandler[PromptRequest, PredictionResult, Connection]):
    """Base of the remote backends: one PromptRequest in, one PredictionResult(request, Completion) out.

    Subclasses set ``backend`` and implement ``_connect()`` (the service client, created on the worker) and
    ``_call(client, request)`` (one call; returns a Completion or raises CallFailed).
    """

    backend = "remote"

    def __init__(self, settings: RemoteSettings):
        super().__init__(
            namespace=f"embedgen_{self.backend}",
            num_retries=settings.max_request_retries,
            retry_filter=_retry_batch,
        )
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
        return Connection(self._connect(), _shared((type(self).__name__, self._settings)))

    def _call_one(self, connection: Connection, request: PromptRequest):
        """A Completion, or the CallFailed that says why there is none."""
        if connection.shared.limiter is not None:
            connection.shared.limiter.wait()
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

    def _error(self, failed: CallFailed) -> Completion:
        return Completion(
            text="", model=self.model_name, finish_reason="error", error=failed.message, retryable=failed.retryable
        )

    def request(
        self, batch: Sequence[PromptRequest], model: Connection, inference_args: dict | None = None
    ) -> list[PredictionResult]:
        state = model.pending(batch)
        todo = [i for i, result in enumerate(state.results) if result is None]
        futures = {i: model.shared.pool.submit(self._call_one, model, batch[i]) for i in todo}
        failed = {}
        for i, future in futures.items():
            outcome = future.result()
            if isinstance(outcome, CallFailed) and outcome.retryable:
                failed[i] = outcome
            else:
                state.results[i] = self._error(outcome) if isinstance(outcome, CallFailed) else outcome
        Metrics.counter(self.get_metrics_namespace(), "calls").inc(len(todo))
        if failed:
            Metrics.counter(self.get_metrics_namespace(), "retryable_failures").inc(len(failed))
            state.rounds += 1
            if state.rounds <= self._settings.max_request_retries:
                first = next(iter(failed.values()))
                raise RetryableBatch(
                    f"{len(failed)} of {len(batch)} calls failed and will be retried (e.g. {first.message})"
                )
            for i, outcome in failed.items():
                state.results[i] = self._error(outcome)
        model.finish(batch)
        return [PredictionResult(request, state.results[i], self.model_name) for i, request in enumerate(batch)]

    def get_num_bytes(self, batch: Sequence[PromptRequest]) -> int:
        return sum(len(r.prompt) for r in batch)

    def get_metrics_namespace(self) -> str:
        return f"embedgen_{self.backend}"

    def batch_elements_kwargs(self) -> dict:
        # Always full batches: a batch's calls run concurrently, so a small batch only wastes concurrency.
        size = self._settings.batch_size
        return {"min_batch_size": size, "max_batch_size": size}
