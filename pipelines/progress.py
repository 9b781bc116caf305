"""Progress lines while a job runs: model calls done of those planned, rows, dead letters, tokens, rate, time left.

Two sources, whichever the runner offers:

- **Runner metrics** (``PipelineResult.metrics()`` of a runner whose ``run()`` returns while the job runs:
  Dataflow, the BundleBasedDirectRunner): the job's own counters, summed over all workers.
- **The reply journal** (``<output>/_journal/``), for the local DirectRunner (the FnApiRunner), whose ``run()``
  returns only when the job is done and which keeps counters inside its stages until then. Every worker process
  appends each successful reply there as it arrives, so its lines are the job's replies, whatever the number of
  worker processes. Rows and dead letters are only known when the job ends (they are in the summary): the line
  says so instead of printing a zero.
"""

from __future__ import annotations

import json
import logging
import threading
import time

from transforms import metrics

__all__ = ["ProgressReporter", "planned_calls", "INTERVAL_SECONDS"]

_LOGGER = logging.getLogger(__name__)

INTERVAL_SECONDS = 30.0


def planned_calls(config) -> tuple[int, int]:
    """(brainstorm calls, generation calls) a run plans: first attempts only (re-asks come on top)."""
    brainstorm = len(config.brainstorm_categories) * config.brainstorm_rounds
    generate = len(config.brainstorm_categories) * config.tasks_per_category * config.examples_per_task
    generate += len(config.symmetric_categories) * config.examples_per_symmetric_type
    return brainstorm, generate


class _JournalTail:
    """Reads the new complete lines of every journal file since the last call (a local --output only)."""

    def __init__(self, output: str):
        from transforms.resume import journal_glob

        self._glob = journal_glob(output)
        self._offsets: dict = {}

    def read(self) -> tuple[int, int]:
        """(new replies, their tokens)."""
        import glob

        replies = tokens = 0
        for path in glob.glob(self._glob):
            offset = self._offsets.get(path, 0)
            try:
                with open(path, "rb") as handle:
                    handle.seek(offset)
                    data = handle.read()
            except OSError:
                continue
            end = data.rfind(b"\n") + 1  # a line still being written is read next time
            for line in data[:end].splitlines():
                try:
                    completion = json.loads(line)["completion"]
                    tokens += int(completion.get("prompt_tokens", 0)) + int(completion.get("completion_tokens", 0))
                    replies += 1
                except (ValueError, KeyError, TypeError):
                    continue
            self._offsets[path] = offset + end
        return replies, tokens


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
    if seconds >= 60:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds} s"


class ProgressReporter:
    """A watcher thread on the launching process that logs one progress line every ``interval`` seconds.

    Call ``start()`` before ``pipeline.run()``, ``attach(result)`` when ``run()`` returns, ``stop()`` at the end.
    """

    def __init__(self, config, interval: float | None = None):
        self._output = config.output
        self._brainstorm, self._generate = planned_calls(config)
        self._interval = INTERVAL_SECONDS if interval is None else interval
        self._stop = threading.Event()
        self._thread = None
        self._result = None
        self._journal = None if "://" in config.output else _JournalTail(config.output)
        self._replies = self._tokens = 0
        self._earlier = 0
        self._started = time.monotonic()
        self._brainstorm_reported = False
        self.lines: list[str] = []

    @property
    def planned(self) -> int:
        return self._brainstorm + self._generate

    def start(self) -> ProgressReporter:
        if self._journal is not None:
            self._earlier, _ = self._journal.read()  # replies an interrupted run logged (--resume)
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._loop, name="embedgen-progress", daemon=True)
        self._thread.start()
        return self

    def attach(self, result) -> None:
        """The runner's result: while the job runs, its metrics are the job's counters."""
        self._result = result

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.wait(min(self._interval, 5.0)):
            due = time.monotonic() - self._started
            try:
                self._poll()
                if self._stage_ended() or due >= self._interval * (len(self.lines) + 1):
                    self._report()
            except Exception as err:  # noqa: BLE001 - progress must never stop the job
                _LOGGER.debug("progress: %s", err)

    def _poll(self) -> None:
        if self._result is not None:
            counts = metrics.read(self._result)
            self._replies = counts[metrics.REPLIES]
            self._tokens = sum(
                counts[metrics.name(metrics.TOKENS, k)] for k in ("replies_prompt", "replies_completion")
            )
            self._rows = sum(v for k, v in counts.items() if metrics.parse(k, metrics.WRITTEN))
            self._dead = sum(v for k, v in counts.items() if metrics.parse(k, metrics.DEAD_LETTER))
        elif self._journal is not None:
            replies, tokens = self._journal.read()
            self._replies += replies
            self._tokens += tokens

    def _stage_ended(self) -> bool:
        if self._brainstorm and not self._brainstorm_reported and self._replies >= self._brainstorm:
            self._brainstorm_reported = True
            return self._generate > 0
        return False

    def _report(self) -> None:
        line = self.format_line(time.monotonic() - self._started)
        self.lines.append(line)
        _LOGGER.info("%s", line)

    def format_line(self, elapsed: float) -> str:
        done, planned = self._replies, max(self.planned - self._earlier, 0)
        parts = [f"model calls {done:,}/{planned:,} planned ({100 * done / planned if planned else 100:.0f}%)"]
        if self._earlier:
            parts[0] += f" (+{self._earlier:,} logged by the earlier run)"
        if self._result is not None:
            parts.append(f"rows {getattr(self, '_rows', 0):,}, dead letters {getattr(self, '_dead', 0):,}")
        else:
            parts.append("rows and dead letters: at the end (this runner reports them when the job ends)")
        parts.append(f"tokens {self._tokens:,}")
        rate = done / elapsed if elapsed > 0 else 0.0
        parts.append(f"{rate:.1f} calls/s")
        if rate > 0 and done < planned:
            parts.append(f"~{_duration((planned - done) / rate)} left")
        parts.append(f"{_duration(elapsed)} elapsed")
        return "progress: " + ", ".join(parts)
