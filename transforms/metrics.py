"""The metrics vocabulary: every embedgen counter is named, built and parsed here (nowhere else).

A counter name is a family and its keys joined by ``/``: ``written/<category>``,
``dead_letter/<stage>/<category>/<reason>``. DoFns count through `Counters` (one cached Beam counter per
name); the end-of-run summaries read them back with `read` and `parse`.
"""

from __future__ import annotations

import collections

from apache_beam.metrics import Metrics
from apache_beam.metrics.metric import MetricsFilter

__all__ = [
    "NAMESPACE",
    "EXPORT_NAMESPACE",
    "Counters",
    "name",
    "parse",
    "split_family",
    "read",
    "inc",
    "counter",
    "model_seconds",
    "REQUESTED",
    "WRITTEN",
    "SKIPPED",
    "DEAD_LETTER",
    "ROWS_BY_LANGUAGE",
    "PARSE_RETRIES",
    "REPLIES",
    "REPLIES_AT_CAP",
    "TOKENS",
    "BRAINSTORM_TASKS_RETURNED",
    "BRAINSTORM_NEAR_DUPLICATES",
    "BRAINSTORM_CONTAMINATED",
    "BRAINSTORM_CONTAMINATED_REMOVED",
    "BATCH_JOBS",
    "JOURNAL_REUSED",
    "JOURNAL_WRITTEN",
    "DEDUP_EMPTY_TEXTS",
    "DEDUP_DUPLICATES",
    "QUALITY_CHECKED",
    "QUALITY_FAILED",
    "QUALITY_FLAGGED",
    "QUALITY_REJECTED",
    "QUALITY_DUPLICATES",
    "QUALITY_MINED_NEGATIVES",
    "EXCLUDE_EARLIER_ROWS",
    "EXCLUDED_TASKS",
    "EXCLUDED_EXAMPLES",
    "JOURNAL_CUT_LINES",
    "REMOTE_CALLS",
    "REMOTE_RETRYABLE_FAILURES",
    "EXPORT_READ",
    "EXPORT_PASSED",
    "EXPORT_UNCHECKED",
    "EXPORT_BALANCED",
]

NAMESPACE = "embedgen"  # the generation job's counters
EXPORT_NAMESPACE = "export"  # the export job's counters: <stage>/<category>

# Families of the generation job; the comment gives the keys that follow the family in the name.
REQUESTED = "requested"  # <category>: elements that entered the graph
WRITTEN = "written"  # <category>: rows produced (including rows later moved to rejected/)
SKIPPED = "skipped"  # <category>: elements already finished under --output (--resume)
DEAD_LETTER = "dead_letter"  # <stage>/<category>/<reason>
ROWS_BY_LANGUAGE = "rows_by_language"  # <category>/<language>
PARSE_RETRIES = "parse_retries"
REPLIES = "replies"  # every model reply, whatever became of it
REPLIES_AT_CAP = "replies_at_cap"  # replies that stopped at their completion-token cap (finish_reason "length")
TOKENS = "tokens"  # <kind>: prompt, completion (written rows), brainstorm, replies_prompt, replies_completion
BRAINSTORM_TASKS_RETURNED = "brainstorm/tasks_returned"
BRAINSTORM_NEAR_DUPLICATES = "brainstorm/near_duplicates"  # <category>
BRAINSTORM_CONTAMINATED = "brainstorm/contaminated"  # <category>: tasks that nearly restate an eval instruction
BRAINSTORM_CONTAMINATED_REMOVED = "brainstorm/contaminated_removed"  # <category>: of those, removed
BATCH_JOBS = "batch_jobs"  # <outcome>: Vertex AI batch prediction jobs (submitted, adopted, reused, succeeded, ...)
JOURNAL_REUSED = "journal/reused"
JOURNAL_WRITTEN = "journal/written"
DEDUP_EMPTY_TEXTS = "dedup/empty_texts"
DEDUP_DUPLICATES = "dedup/duplicates"  # <scope>: the default family of SplitNearDuplicates
QUALITY_CHECKED = "quality/checked"  # <category>
QUALITY_FAILED = "quality/failed"  # <check kind>
QUALITY_FLAGGED = "quality/flagged"  # <category>
QUALITY_REJECTED = "quality/rejected"  # <category>
QUALITY_DUPLICATES = "quality/duplicates"  # <category>
QUALITY_MINED_NEGATIVES = "quality/mined_negatives"
EXCLUDE_EARLIER_ROWS = "exclude/earlier_rows"  # example rows of earlier runs read for --exclude-from
EXCLUDED_TASKS = "exclude/tasks"  # <category>: brainstormed tasks near a task of an earlier run (dropped)
EXCLUDED_EXAMPLES = "exclude/examples"  # <category>: new examples duplicating an earlier row (rejected)
JOURNAL_CUT_LINES = "journal/cut_lines"  # journal lines cut by an interruption (their elements are asked again)

# Counters of a remote backend's own namespace (embedgen_<backend>).
REMOTE_CALLS = "calls"
REMOTE_RETRYABLE_FAILURES = "retryable_failures"

# Families of the export job (EXPORT_NAMESPACE), each keyed by <category>.
EXPORT_READ = "read"
EXPORT_PASSED = "passed"
EXPORT_UNCHECKED = "unchecked"
EXPORT_BALANCED = "balanced"

_SEPARATOR = "/"


def name(family: str, *keys: str) -> str:
    """The counter name of ``family`` and its keys: ``name(WRITTEN, "text-retrieval")`` is ``written/text-retrieval``.

    Args:
        family: One of this module's family constants.
        *keys: The family's keys, in order (category, reason, ...).
    """
    return _SEPARATOR.join((family, *keys))


def parse(counter_name: str, family: str) -> tuple[str, ...] | None:
    """The keys of a counter of ``family`` (``parse("written/x", WRITTEN)`` -> ``("x",)``), None for another family.

    A category or check name never holds the separator; a reason or language is the last key and keeps it.
    """
    prefix = family + _SEPARATOR
    if not counter_name.startswith(prefix):
        return None
    rest = counter_name[len(prefix) :]
    arity = _ARITY.get(family)
    return tuple(rest.split(_SEPARATOR, arity - 1)) if arity else (rest,)


def split_family(counter_name: str) -> tuple[str, str]:
    """A counter name of one key -> (family, key): ``read/text-retrieval`` -> ``("read", "text-retrieval")``."""
    family, _, key = counter_name.rpartition(_SEPARATOR)
    return family, key


# Keys per family, where there is more than one.
_ARITY = {DEAD_LETTER: 3, ROWS_BY_LANGUAGE: 2}


class Counters:
    """Beam counters of one namespace created on first use, for a DoFn's ``setup()``."""

    def __init__(self, namespace: str = NAMESPACE):
        self._namespace = namespace
        self._counters: dict = {}

    def inc(self, family: str, *keys: str, n: int = 1) -> None:
        """Add ``n`` to the counter ``name(family, *keys)``."""
        counter_name = name(family, *keys)
        counter = self._counters.get(counter_name)
        if counter is None:
            counter = self._counters[counter_name] = Metrics.counter(self._namespace, counter_name)
        counter.inc(n)


def counter(family: str, *keys: str, namespace: str = NAMESPACE):
    """The Beam counter ``name(family, *keys)`` (for a DoFn's ``setup()``)."""
    return Metrics.counter(namespace, name(family, *keys))


def inc(family: str, *keys: str, n: int = 1) -> None:
    """Add ``n`` to the counter ``name(family, *keys)`` of the generation job (outside a DoFn's setup)."""
    Metrics.counter(NAMESPACE, name(family, *keys)).inc(n)


def read(pipeline_result, namespace: str = NAMESPACE) -> collections.Counter:
    """Counter name -> value of a finished pipeline (committed values where the runner reports them)."""
    values: collections.Counter = collections.Counter()
    query = pipeline_result.metrics().query(MetricsFilter().with_namespace(namespace))
    for result in query["counters"]:
        value = result.committed if result.committed is not None else result.attempted
        values[result.key.metric.name] += value or 0
    return values


def model_seconds(pipeline_result) -> float:
    """Seconds RunInference spent in model calls (its batch-latency distributions, over every handler)."""
    micros = 0
    for result in pipeline_result.metrics().query(MetricsFilter())["distributions"]:
        if result.key.metric.name == "inference_batch_latency_micro_secs":
            value = result.committed if result.committed is not None else result.attempted
            micros += value.sum if value else 0
    return micros / 1e6
