"""CallPool: the per-process pool of remote calls; an adaptive number in flight, each call retried on its own.

Every RunInference bundle of a worker process hands its calls to the same pool, so a call that finishes frees its
slot for the next queued call at once, whichever batch or bundle that call belongs to. A retryable failure
(429, 5xx, timeout, dropped connection) puts that call alone on a timer (exponential backoff with jitter, at
least what ``Retry-After`` asked) without holding a slot or a thread; the other calls go on. Before each attempt
Beam's client-side throttler (``ReactiveThrottler``, the one RemoteModelHandler uses) may delay it, and the
limit on calls in flight follows an :class:`AIMDLimit` (or stays at the ceiling when adaptation is off).
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import heapq
import itertools
import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from apache_beam.io.components.adaptive_throttler import ReactiveThrottler

__all__ = ["AIMDLimit", "CallPool", "Outcome"]

_LOGGER = logging.getLogger(__name__)

_MAX_BACKOFF = 60.0


@dataclasses.dataclass
class Outcome:
    """What became of one element's calls: the last result and what it took.

    Attributes:
        result: The Completion, or the last CallFailed.
        calls: Attempts sent to the service.
        retryable_failures: Attempts that failed with a retryable error.
        throttled_seconds: Time the client-side throttler held the element back.
    """

    result: Any = None
    calls: int = 0
    retryable_failures: int = 0
    throttled_seconds: float = 0.0


class AIMDLimit:
    """How many calls may be in flight: additive increase, multiplicative decrease, never above ``ceiling``.

    It starts at ``initial`` and, until the first congestion signal, grows by one per successful call (doubling
    every window of calls, TCP's slow start). After that it grows by ``increase / limit`` per success (about
    ``increase`` slots per window of calls). A throttling answer (429, RESOURCE_EXHAUSTED, 503) multiplies it by
    ``decrease``, once per window: answers to calls sent before the last decrease are the same congestion and do
    not shrink it again. It grows only from calls that found the limit reached when they started (a pool with
    fewer calls to make than slots learns nothing about the service). Not thread-safe: the pool holds a lock.

    Args:
        ceiling: The most calls in flight (``--max-concurrent-requests``).
        initial: The limit at the start (at most ``ceiling``).
        increase: Slots added per window of successful calls after the first congestion signal.
        decrease: Factor applied on a throttling answer.
        adaptive: False keeps the limit at ``ceiling`` whatever happens.
    """

    def __init__(
        self, ceiling: int, initial: int = 8, increase: float = 0.25, decrease: float = 0.7, adaptive: bool = True
    ):
        self.ceiling = ceiling
        self.adaptive = adaptive
        self._increase = increase
        self._decrease = decrease
        self._value = float(min(ceiling, initial) if adaptive else ceiling)
        self._slow_start = True
        self.epoch = 0  # how many decreases so far; a call remembers the epoch it started in

    @property
    def limit(self) -> int:
        """The calls allowed in flight now (at least 1)."""
        return max(1, int(self._value))

    def on_success(self, was_limited: bool) -> None:
        """A call was answered; ``was_limited``: the limit was reached when it started."""
        if not self.adaptive or not was_limited:
            return
        step = 1.0 if self._slow_start else self._increase / self._value
        self._value = min(float(self.ceiling), self._value + step)

    def on_throttled(self, started_epoch: int) -> None:
        """A call started in ``started_epoch`` was answered with a throttling status."""
        if not self.adaptive or started_epoch != self.epoch:
            return
        self._slow_start = False
        self._value = max(1.0, self._value * self._decrease)
        self.epoch += 1


class _Throttler(ReactiveThrottler):
    """Beam's client-side throttler (as RemoteModelHandler uses it), asked once per attempt instead of per batch.

    Beam records a request when it is sent and a success when it is answered, which is right for one request at
    a time; with many calls in flight, the unanswered ones would count as failures and throttle a healthy pool.
    Here an attempt is recorded when it ends, with whether the service accepted it, or when the throttler holds
    it back (a request that was not accepted, as in Beam). Not thread-safe: the pool holds a lock.
    """

    def hold_back(self, now_ms: float) -> bool:
        """Whether to delay this attempt by ``throttle_delay_secs`` (the SRE client-side throttling rule)."""
        if self._random.uniform(0, 1) < self._throttling_probability(now_ms):
            self._all_requests.add(now_ms, 1)
            return True
        return False

    def record(self, now_ms: float, accepted: bool) -> None:
        """An attempt ended; ``accepted``: the service did not refuse it (no 429, 5xx, timeout)."""
        self._all_requests.add(now_ms, 1)
        if accepted:
            self.successful_request(now_ms)


@dataclasses.dataclass(eq=False)
class _Job:
    call: Callable[[], Any]
    future: concurrent.futures.Future
    outcome: Outcome
    retries: int = 0


class CallPool:
    """Threads that make the calls of every handler with the same settings in this process.

    Args:
        ceiling: Threads, and the most calls in flight.
        max_retries: Retries of one element after a retryable failure (``--max-request-retries``).
        adaptive: Adapt the limit in flight (:class:`AIMDLimit`) or keep it at ``ceiling``.
        initial_backoff: Seconds before the first retry of a call (doubling each time, with jitter).
        namespace: Beam metrics namespace of the client-side throttler.
        before_call: Called in the pool thread before each attempt (e.g. a requests-per-minute limiter).
    """

    def __init__(
        self,
        ceiling: int,
        max_retries: int,
        adaptive: bool = True,
        initial_backoff: float = 1.0,
        namespace: str = "embedgen_remote",
        before_call: Callable[[], None] | None = None,
    ):
        self.limit = AIMDLimit(ceiling, adaptive=adaptive)
        self._max_retries = max_retries
        self._initial_backoff = initial_backoff
        self._before_call = before_call
        # Beam's RemoteModelHandler throttler with its default settings, consulted per attempt instead of per batch.
        self.throttler = _Throttler(window_ms=1_000, bucket_ms=1_000, overload_ratio=2, namespace=namespace)
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)  # a job was queued or a slot was freed
        self._timer_wakeup = threading.Condition(self._lock)  # a job was put on the timer
        self._queue: collections.deque = collections.deque()
        self._timers: list = []
        self._order = itertools.count()
        self._in_flight = 0
        self._jitter = random.Random()  # timing only; no data depends on it
        self._threads = 0
        self.max_in_flight = 0
        threading.Thread(target=self._tick, name="embedgen-remote-timer", daemon=True).start()

    def submit(self, call: Callable[[], Any]) -> concurrent.futures.Future:
        """Queue one element's call; the future gets its :class:`Outcome` once answered or out of retries.

        ``call()`` returns a Completion, or a CallFailed whose ``retryable``, ``throttled`` and ``retry_after``
        decide what happens next; it must not raise.
        """
        job = _Job(call, concurrent.futures.Future(), Outcome())
        with self._lock:
            self._queue.append(job)
            self._start_threads()
            self._ready.notify()
        return job.future

    def _start_threads(self) -> None:
        """As many threads as the limit lets calls fly (started as the limit grows; caller holds the lock)."""
        while self._threads < self.limit.limit:
            self._threads += 1
            threading.Thread(target=self._work, name=f"embedgen-remote-{self._threads}", daemon=True).start()

    def _later(self, job: _Job, delay: float) -> None:
        """Queue ``job`` again after ``delay`` seconds (caller holds the lock)."""
        heapq.heappush(self._timers, (time.monotonic() + delay, next(self._order), job))
        self._timer_wakeup.notify()

    def _tick(self) -> None:
        """Move the jobs whose wait is over to the front of the queue (they have waited already)."""
        with self._lock:
            while True:
                now = time.monotonic()
                while self._timers and self._timers[0][0] <= now:
                    self._queue.appendleft(heapq.heappop(self._timers)[2])
                    self._ready.notify()
                self._timer_wakeup.wait(self._timers[0][0] - now if self._timers else None)

    def _next(self) -> tuple:
        """Wait for a job and a free slot; returns (job, epoch, was_limited)."""
        with self._lock:
            while True:
                if self._queue and self._in_flight < self.limit.limit:
                    job = self._queue.popleft()
                    if self.throttler.hold_back(time.time() * 1000):
                        delay = self.throttler.throttle_delay_secs
                        job.outcome.throttled_seconds += delay
                        self._later(job, delay)
                        continue
                    self._in_flight += 1
                    self.max_in_flight = max(self.max_in_flight, self._in_flight)
                    # Limited: more calls were waiting than the limit let out (a deep queue fills every slot).
                    limited = bool(self._queue) or self._in_flight >= self.limit.limit
                    return job, self.limit.epoch, limited
                self._ready.wait()

    def _work(self) -> None:
        while True:
            job, epoch, was_limited = self._next()
            if self._before_call is not None:
                self._before_call()
            try:
                result = job.call()
            except Exception as err:  # noqa: BLE001 - call() must not raise; the element is not lost if it does
                _LOGGER.exception("a remote call raised instead of returning its failure")
                result = err
            self._finish(job, result, epoch, was_limited)

    def _finish(self, job: _Job, result: Any, epoch: int, was_limited: bool) -> None:
        failed = isinstance(result, BaseException)
        retryable = failed and bool(getattr(result, "retryable", False))
        job.outcome.calls += 1
        with self._lock:
            self._in_flight -= 1
            if getattr(result, "throttled", False):
                self.limit.on_throttled(epoch)
            elif not failed:
                self.limit.on_success(was_limited)
            self.throttler.record(time.time() * 1000, accepted=not retryable)
            self._start_threads()
            free = self.limit.limit - self._in_flight
            if free > 0:
                self._ready.notify(free)
            if retryable:
                job.outcome.retryable_failures += 1
                if job.retries < self._max_retries:
                    job.retries += 1
                    self._later(job, self._backoff(job.retries, result.retry_after))
                    return
        job.outcome.result = result
        job.future.set_result(job.outcome)

    def _backoff(self, retry: int, retry_after: float | None) -> float:
        """Seconds before retry number ``retry``: exponential with jitter, never less than ``Retry-After``."""
        delay = min(_MAX_BACKOFF, self._initial_backoff * 2 ** (retry - 1)) * self._jitter.uniform(0.5, 1.5)
        return max(delay, retry_after or 0.0)
