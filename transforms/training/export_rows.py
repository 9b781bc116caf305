"""Generated rows -> training rows (anchor, positive, negative), filtered, balanced, split, written as jsonl/parquet."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging

import apache_beam as beam
from apache_beam.io.avroio import ReadFromAvro
from apache_beam.io.filesystems import FileSystems

from transforms import metrics, recipe
from transforms.records import row_language, table_name

__all__ = [
    "TRAINING_COLUMNS",
    "FORMATS",
    "SPLITS",
    "BALANCE_BY",
    "QUALITY_PASS_FIELD",
    "QUALITY_CHECKS_FIELD",
    "MissingQualityField",
    "ExportSpec",
    "instruction",
    "task_definition",
    "training_row",
    "split_of",
    "balance_rank",
    "avro_pattern",
    "bigquery_table",
    "ReadExamples",
    "ToTrainingRows",
    "BalanceGroups",
    "SPLIT_BY",
    "split_group",
    "SplitByHash",
    "WriteTrainingRows",
    "parquet_schema",
]

_LOGGER = logging.getLogger(__name__)

# Input columns first (sentence-transformers treats the leading text columns as the model inputs), then metadata.
TRAINING_COLUMNS = ("anchor", "positive", "negative", "category", "language", "example_id")
FORMATS = ("jsonl", "parquet")
SPLITS = ("train", "validation")
BALANCE_BY = ("none", "category", "language")
SPLIT_BY = ("example_id", "task")
_SPLIT_GROUP = "_split_group"  # carried between ToTrainingRows and SplitByHash, never written
QUALITY_PASS_FIELD = "quality_pass"
QUALITY_CHECKS_FIELD = "quality_checks"

# Independent salts: the split must not decide which rows balancing keeps, or a balanced set would be all validation.
_SPLIT_SALT = "embedgen/export/split"
_BALANCE_SALT = "embedgen/export/balance"


class MissingQualityField(ValueError):
    """``--only-passed`` was given but a row has no ``quality_pass`` field."""


@dataclasses.dataclass(frozen=True)
class ExportSpec:
    """What an export keeps and how it splits, as plain picklable values.

    Attributes:
        only_passed: Keep only rows whose ``quality_pass`` is true.
        balance: ``none``, ``category`` or ``language``: the grouping whose groups are made equal in size.
        balance_cap: Rows kept per group when balancing (None: the size of the smallest group).
        validation_fraction: Share of split groups that go to the validation split, in [0, 1).
        split_by: ``example_id`` (each example on its own) or ``task`` (all examples of a brainstormed task in one
            split, so no task instruction is seen in both; symmetric categories, which have no task, by example id).
    """

    only_passed: bool = False
    balance: str = "none"
    balance_cap: int | None = None
    validation_fraction: float = 0.1
    split_by: str = "example_id"


def _unit(salt: str, example_id: str) -> float:
    """A number in [0, 1) fixed by ``salt`` and ``example_id`` (sha256; never Python's salted hash())."""
    digest = hashlib.sha256(f"{salt}\x00{example_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def split_of(key: str, validation_fraction: float) -> str:
    """``validation`` or ``train`` for a split key (an example id).

    A key only ever moves from train to validation as the fraction grows.
    """
    return "validation" if _unit(_SPLIT_SALT, key) < validation_fraction else "train"


def split_group(row: dict, split_by: str) -> str:
    """The key a generated row is split by: its example id, or its category and task (see ExportSpec.split_by)."""
    if split_by not in SPLIT_BY:
        raise ValueError(f"split by {split_by!r}; allowed: {', '.join(SPLIT_BY)}")
    if split_by == "task" and row.get("task"):
        return f"task\x00{row['category']}\x00{row['task'].strip()}"
    return row["example_id"]


def balance_rank(example_id: str) -> str:
    """Rank of an example within its balancing group (lower is kept first); hex so ties are impossible."""
    return hashlib.sha256(f"{_BALANCE_SALT}\x00{example_id}".encode()).hexdigest()


def instruction(task: str, query: str) -> str:
    """The query-side text of the recipe: ``Instruct: {task}\\nQuery: {query}``."""
    return f"Instruct: {task.strip()}\nQuery: {query}"


def task_definition(row: dict) -> str | None:
    """The task the anchor is trained with: the brainstormed task, else the type's declared instruction."""
    task_type = recipe.get_task_type(row["category"])
    if task_type.brainstorm:
        return row["task"]
    return task_type.instruction


def training_row(row: dict) -> dict:
    """One generated row -> one training row with exactly TRAINING_COLUMNS.

    The anchor carries its task definition as an instruction: the brainstormed task, or for the symmetric types
    the paper's ("Retrieve semantically similar text.", "Retrieve parallel sentences."); documents never do.
    ``negative`` is None for categories without a hard negative.
    """
    task_type = recipe.get_task_type(row["category"])
    anchor = row[task_type.role("anchor")]
    task = task_definition(row)
    if task:
        anchor = instruction(task, anchor)
    negative_key = task_type.role("negative")
    return {
        "anchor": anchor,
        "positive": row[task_type.role("positive")],
        "negative": row[negative_key] if negative_key else None,
        "category": row["category"],
        "language": row_language(row),
        "example_id": row["example_id"],
    }


def avro_pattern(input_dir: str, category: str) -> str:
    """Glob of one category's Avro table under a generate output directory."""
    return FileSystems.join(input_dir, category, "*.avro")


def bigquery_table(dataset: str, category: str) -> str:
    """``project:dataset.table`` of one category's table (hyphens become underscores, as in the Avro record names)."""
    return f"{dataset}.{table_name(category)}"


class ReadExamples(beam.PTransform):
    """Generated rows of the given categories, from Avro files (``input_dir``) or BigQuery tables (``dataset``)."""

    def __init__(self, categories, input_dir: str | None = None, dataset: str | None = None):
        super().__init__()
        if (input_dir is None) == (dataset is None):
            raise ValueError("give exactly one of input_dir and dataset")
        self._categories = tuple(categories)
        self._input_dir = input_dir
        self._dataset = dataset

    def expand(self, pbegin):
        reads = []
        for category in self._categories:
            if self._input_dir is not None:
                read = ReadFromAvro(avro_pattern(self._input_dir, category))
            else:
                read = beam.io.ReadFromBigQuery(
                    table=bigquery_table(self._dataset, category), method=beam.io.ReadFromBigQuery.Method.DIRECT_READ
                )
            reads.append(pbegin | f"Read[{category}]" >> read)
        return reads | "AllCategories" >> beam.Flatten()


class _KeepPassed(beam.DoFn):
    """Keeps rows whose ``quality_pass`` is true; counts kept rows on which no check ran (empty ``quality_checks``)."""

    def setup(self):
        self._counters = metrics.Counters(metrics.EXPORT_NAMESPACE)

    def process(self, row):
        if QUALITY_PASS_FIELD not in row:
            raise MissingQualityField(
                f"--only-passed: row {row.get('example_id')!r} of {row.get('category')!r} has no "
                f"{QUALITY_PASS_FIELD!r} field; run the quality checks first or drop --only-passed"
            )
        if not row[QUALITY_PASS_FIELD]:
            return
        if QUALITY_CHECKS_FIELD in row and not row[QUALITY_CHECKS_FIELD]:
            self._counters.inc(metrics.EXPORT_UNCHECKED, row["category"])
        self._counters.inc(metrics.EXPORT_PASSED, row["category"])
        yield row


class _Count(beam.DoFn):
    """Passes rows through, counting them per ``<prefix>/<category>``."""

    def __init__(self, prefix: str):
        self._prefix = prefix

    def setup(self):
        self._counters = metrics.Counters(metrics.EXPORT_NAMESPACE)

    def process(self, row):
        self._counters.inc(self._prefix, row["category"])
        yield row


class ToTrainingRows(beam.PTransform):
    """Generated rows -> training rows; with ``only_passed``, rows that failed the quality checks are dropped first.

    A row on which no quality check ran (``quality_checks`` empty) has ``quality_pass`` true and is kept; such rows
    are counted as ``unchecked`` so that the summary can say the filter had nothing to act on.
    """

    def __init__(self, only_passed: bool = False, split_by: str = "example_id"):
        super().__init__()
        self._only_passed = only_passed
        self._split_by = split_by

    def expand(self, rows):
        rows = rows | "CountRead" >> beam.ParDo(_Count(metrics.EXPORT_READ))
        if self._only_passed:
            rows = rows | "KeepPassed" >> beam.ParDo(_KeepPassed())
        split_by = self._split_by
        return rows | "MapRoles" >> beam.Map(
            lambda row: {**training_row(row), _SPLIT_GROUP: split_group(row, split_by)}
        )


def _group_key(by: str):
    column = {"category": "category", "language": "language"}[by]
    return lambda row: row[column]


def _threshold(group_ranks, keep: int):
    """(group, ranks) -> (group, highest rank among the ``keep`` lowest)."""
    group, ranks = group_ranks
    return group, sorted(ranks)[: max(keep, 1)][-1]


class BalanceGroups(beam.PTransform):
    """Keeps the same number of rows in every category (or language): the rows of lowest balance_rank in each group.

    Only (group, rank) pairs are grouped, never whole rows: each group's rank threshold is computed where its ranks
    are grouped, and the thresholds (one per group) filter the rows as a side input. The choice depends on the ids
    only, so it is the same on every runner and every run.
    """

    def __init__(self, by: str, cap: int | None = None):
        super().__init__()
        if by not in BALANCE_BY or by == "none":
            raise ValueError(f"balance by {by!r}; allowed: category, language")
        self._by = by
        self._cap = cap

    def expand(self, rows):
        key = _group_key(self._by)
        ranks = rows | "RankInGroup" >> beam.Map(lambda row: (key(row), balance_rank(row["example_id"])))
        if self._cap is None:
            keep = (
                ranks
                | "GroupSizes" >> beam.combiners.Count.PerKey()
                | "SizesOnly" >> beam.Values()
                | "SmallestGroup" >> beam.CombineGlobally(min).without_defaults()
            )
        else:
            keep = rows.pipeline | "Cap" >> beam.Create([self._cap])
        thresholds = (
            ranks
            | "GroupRanks" >> beam.GroupByKey()
            | "Thresholds" >> beam.Map(_threshold, beam.pvalue.AsSingleton(keep, default_value=0))
        )
        return (
            rows
            | "KeepLowestRanks"
            >> beam.Filter(
                lambda row, limits: balance_rank(row["example_id"]) <= limits.get(key(row), ""),
                beam.pvalue.AsDict(thresholds),
            )
            | "CountKept" >> beam.ParDo(_Count(metrics.EXPORT_BALANCED))
        )


class SplitByHash(beam.PTransform):
    """Rows -> ``{"train": ..., "validation": ...}`` by a sha256 of each row's split group (see split_of).

    The group is what ToTrainingRows recorded (the example id, or the task with ``split_by="task"``); rows that did
    not come through it are split by example id.
    """

    def __init__(self, validation_fraction: float):
        super().__init__()
        self._fraction = validation_fraction

    def expand(self, rows):
        fraction = self._fraction
        parts = rows | "HashExampleId" >> beam.Partition(
            lambda row, _: SPLITS.index(split_of(row.get(_SPLIT_GROUP, row["example_id"]), fraction)), len(SPLITS)
        )
        return {name: parts[i] | f"Count[{name}]" >> beam.ParDo(_Count(name)) for i, name in enumerate(SPLITS)}


def parquet_schema():
    """The pyarrow schema of a training table (``negative`` is null for categories without one)."""
    import pyarrow

    return pyarrow.schema([pyarrow.field(c, pyarrow.string(), nullable=(c == "negative")) for c in TRAINING_COLUMNS])


def _to_json(row: dict) -> str:
    return json.dumps({c: row[c] for c in TRAINING_COLUMNS}, ensure_ascii=False)


class WriteTrainingRows(beam.PTransform):
    """Training rows of one split -> ``<out>/<split>/part-SSSSS-of-NNNNN.<jsonl|parquet>``.

    That layout is what Hugging Face ``datasets`` reads as named splits: ``load_dataset("json", data_dir=out)``.
    """

    def __init__(self, out: str, split: str, fmt: str, num_shards: int = 0):
        super().__init__()
        if fmt not in FORMATS:
            raise ValueError(f"format {fmt!r}; allowed: {', '.join(FORMATS)}")
        self._prefix = FileSystems.join(out, split, "part")
        self._format = fmt
        self._num_shards = num_shards

    def expand(self, rows):
        if self._format == "jsonl":
            return (
                rows
                | "ToJson" >> beam.Map(_to_json)
                | "WriteJsonl"
                >> beam.io.WriteToText(self._prefix, file_name_suffix=".jsonl", num_shards=self._num_shards)
            )
        return (
            rows
            | "SelectColumns" >> beam.Map(lambda row: {c: row[c] for c in TRAINING_COLUMNS})
            | "WriteParquet"
            >> beam.io.WriteToParquet(
                self._prefix, parquet_schema(), file_name_suffix=".parquet", num_shards=self._num_shards
            )
        )
