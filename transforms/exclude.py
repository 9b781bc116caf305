"""Exclusion of earlier runs (--exclude-from): their tasks and rows, and new items split against them."""

from __future__ import annotations

import logging

import apache_beam as beam
from apache_beam.io.avroio import ReadAllFromAvro
from apache_beam.io.filesystems import FileSystems

from transforms import metrics, recipe
from transforms.quality.dedup import DedupItem, NearDuplicates
from transforms.records import DEAD_LETTER
from transforms.sinks import REJECTED

__all__ = [
    "earlier_files",
    "ReadEarlierRows",
    "EarlierTasks",
    "SplitAgainstEarlier",
    "exclusion_summary",
    "earlier_example_items",
    "earlier_task_item",
]

_LOGGER = logging.getLogger(__name__)

_EARLIER = "0"  # rank prefix of earlier items: they sort before every new item ("1")
_NEW = "1"


def _tables() -> list[tuple]:
    return [(c,) for c in recipe.CATEGORIES] + [(REJECTED, c) for c in recipe.CATEGORIES]


def _run_date_of(path: str) -> str | None:
    marker = "run_date="
    at = path.rfind(marker)
    return path[at + len(marker) : at + len(marker) + 10] if at >= 0 else None


def earlier_files(paths, current_output: str, run_date: str | None = None) -> dict[str, list[str]]:
    """The example Avro files of earlier runs under each of ``paths`` (a run's --output, or the parent of its
    ``run_date=`` folders, local or gs://), by path.

    Files under ``current_output`` are left out (a resumed or re-run day never excludes itself), and so are
    ``run_date=`` folders of ``run_date`` or later: a day is reproducible whatever later days wrote since.
    Dead letters are never read (they hold no accepted row).
    """
    current = current_output.rstrip("/") + "/"
    found = {}
    for path in paths:
        root = path.rstrip("/")
        if root.endswith(".avro") or any(ch in root for ch in "*?["):
            patterns = [root]
        else:
            patterns = [FileSystems.join(root, *t, "*.avro") for t in _tables()]
            patterns += [FileSystems.join(root, "run_date=*", *t, "*.avro") for t in _tables()]
        files = set()
        for result in FileSystems.match(patterns):
            for meta in result.metadata_list:
                name = meta.path
                if name.startswith(current) or f"/{DEAD_LETTER}/" in name:
                    continue
                day = _run_date_of(name)
                if run_date is not None and day is not None and day >= run_date:
                    continue
                files.add(name)
        found[path] = sorted(files)
    return found


def _tag(file_and_row):
    path, row = file_and_row
    metrics.inc(metrics.EXCLUDE_EARLIER_ROWS)
    return f"/{REJECTED}/" not in path, row


class ReadEarlierRows(beam.PTransform):
    """PBegin -> (kept, row) for every example row in ``files``; ``kept`` is False for rows of rejected/."""

    def __init__(self, files):
        super().__init__()
        self._files = sorted(files)

    def expand(self, pbegin):
        return (
            pbegin
            | "ListFiles" >> beam.Create(self._files)
            | "ReadRows" >> ReadAllFromAvro(with_filename=True)
            | "TagKept" >> beam.Map(_tag)
        )


def _task_pairs(kept_and_row):
    _, row = kept_and_row
    task = row.get("task")
    if task:
        yield row["category"], task


class EarlierTasks(beam.PTransform):
    """(kept, row) of earlier runs -> (category, task), each distinct task once (kept and rejected rows alike)."""

    def expand(self, tagged):
        return tagged | "Tasks" >> beam.FlatMap(_task_pairs) | "Distinct" >> beam.Distinct()


def _mark(joined, duplicate_counter: str, excluded_counter: str):
    _, groups = joined
    items = list(groups["item"])
    marks = list(groups["earlier"])
    for scope, payload in items:
        if not marks:
            yield payload
        elif marks[0].startswith(_EARLIER):
            metrics.inc(excluded_counter, scope)
            yield beam.pvalue.TaggedOutput("excluded", (payload, marks[0][1:]))
        else:
            metrics.inc(duplicate_counter, scope)
            yield beam.pvalue.TaggedOutput("duplicates", (payload, marks[0][1:]))


class SplitAgainstEarlier(beam.PTransform):
    """New DedupItems, compared among themselves and with earlier ones ->
    {"kept": payloads, "duplicates": (payload, earlier rank) within the run, "excluded": (payload, earlier rank)}.

    The rule is SplitNearDuplicates' (MinHash bands, exact Jaccard >= ``threshold`` on word ``ngram``s), with every
    earlier item ranked before every new one: a new item near an earlier item is excluded, a new item near a
    better-ranked new item is a duplicate. Earlier items are never output. Ranks of the returned marks are the
    original ones (of a new item, or of the earlier item as given, e.g. its example id).
    """

    def __init__(self, earlier, threshold: float, ngram: int, duplicate_counter: str, excluded_counter: str):
        super().__init__()
        self._earlier = earlier
        self._near = NearDuplicates(threshold, ngram)
        self._counters = (duplicate_counter, excluded_counter)

    def expand(self, items):
        new = items | "RankNew" >> beam.Map(lambda i: i._replace(rank=_NEW + i.rank))
        earlier = (
            self._earlier
            | "RankEarlier" >> beam.Map(lambda i: (_EARLIER + i.rank, (i.scope, i.text)))
            | "OnePerRank" >> beam.CombinePerKey(min)
            | "EarlierItems" >> beam.MapTuple(lambda rank, st: DedupItem(rank, st[0], st[1], None))
        )
        marks = (new, earlier) | "AllItems" >> beam.Flatten() | "FindNearDuplicates" >> self._near
        by_rank = new | "KeyByRank" >> beam.Map(lambda i: (i.rank, (i.scope, i.payload)))
        split = (
            {"item": by_rank, "earlier": marks}
            | "JoinMarks" >> beam.CoGroupByKey()
            | "Split" >> beam.FlatMap(_mark, *self._counters).with_outputs("duplicates", "excluded", main="kept")
        )
        return {"kept": split.kept, "duplicates": split.duplicates, "excluded": split.excluded}


def exclusion_summary(pipeline_result) -> str | None:
    """One line for the end-of-run summary: earlier rows read, tasks and examples excluded (None: no exclusion)."""
    counts = metrics.read(pipeline_result)

    def counted(prefix, what):
        parts = sorted((keys[0], v) for k, v in counts.items() if (keys := metrics.parse(k, prefix)))
        detail = " (" + ", ".join(f"{c} {n}" for c, n in parts) + ")" if parts else ""
        return f"{sum(v for _, v in parts)} {what}{detail}"

    return (
        f"exclusion (--exclude-from): {counts.get(metrics.EXCLUDE_EARLIER_ROWS, 0)} earlier row(s) read; "
        + counted(metrics.EXCLUDED_TASKS, "brainstormed task(s) dropped as near-duplicates of earlier tasks")
        + "; "
        + counted(metrics.EXCLUDED_EXAMPLES, "example(s) rejected as duplicates of earlier rows")
    )


def earlier_example_items(kept_and_row):
    """(kept, row) of an earlier run -> its DedupItem for the example check (rows of rejected/ are not compared)."""
    kept, row = kept_and_row
    if not kept:
        return
    task_type = recipe.get_task_type(row["category"])
    anchor, positive = row.get(task_type.role("anchor")), row.get(task_type.role("positive"))
    if anchor and positive:
        yield DedupItem(row["example_id"], row["category"], anchor + "\n" + positive, None)


def earlier_task_item(pair) -> DedupItem:
    """(category, task) of an earlier run -> its DedupItem for the task check (rank: category and normalized task)."""
    from transforms.brainstorm import normalize_task

    category, task = pair
    return DedupItem(f"{category}\x1f{normalize_task(task)}", category, task, None)
