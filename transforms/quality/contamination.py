"""Contamination check: brainstormed tasks that nearly restate a well-known evaluation-set instruction."""

from __future__ import annotations

import argparse
import dataclasses
import functools
import importlib.resources
import logging
from typing import NamedTuple

import apache_beam as beam

from transforms import metrics
from transforms.config import ConfigError
from transforms.quality.dedup import jaccard, shingles

__all__ = [
    "ContaminationSettings",
    "EvaluationInstruction",
    "evaluation_instructions",
    "nearest_instruction",
    "contaminated",
    "CheckContamination",
    "add_contamination_arguments",
    "contamination_settings",
    "DATA_FILE",
    "NGRAM",
    "CHECK_NAME",
]

_LOGGER = logging.getLogger(__name__)

DATA_FILE = "evaluation_instructions.tsv"  # in the prompts package
NGRAM = 2  # word bigrams, as the near-duplicate check of brainstormed tasks
DEFAULT_THRESHOLD = 0.5
CHECK_NAME = "contamination"  # the quality check name on rows of a flagged task ("contamination:<set>")


class EvaluationInstruction(NamedTuple):
    """One evaluation-set instruction of the shipped list."""

    source: str  # the evaluation set, e.g. SciFact
    instruction: str


@dataclasses.dataclass(frozen=True)
class ContaminationSettings:
    """Settings of the contamination check.

    Attributes:
        threshold: Word-bigram Jaccard with a shipped evaluation instruction at or above which a task is flagged.
    """

    threshold: float = DEFAULT_THRESHOLD


@functools.cache
def evaluation_instructions() -> tuple[EvaluationInstruction, ...]:
    """The shipped list (prompts/evaluation_instructions.tsv): '#' lines are comments, others 'source<TAB>text'."""
    text = importlib.resources.files("prompts").joinpath(DATA_FILE).read_text(encoding="utf-8")
    entries = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        source, instruction = line.split("\t", 1)
        entries.append(EvaluationInstruction(source.strip(), instruction.strip()))
    return tuple(entries)


@functools.cache
def _fingerprints():
    return tuple((entry, shingles(entry.instruction, NGRAM)) for entry in evaluation_instructions())


def nearest_instruction(task: str) -> tuple[EvaluationInstruction, float]:
    """The shipped evaluation instruction closest to ``task`` and their word-bigram Jaccard similarity."""
    grams = shingles(task, NGRAM)
    return max(((entry, jaccard(grams, fp)) for entry, fp in _fingerprints()), key=lambda pair: pair[1])


@functools.lru_cache(maxsize=4096)
def contaminated(task: str | None, threshold: float = DEFAULT_THRESHOLD) -> EvaluationInstruction | None:
    """The evaluation instruction ``task`` nearly duplicates (Jaccard >= ``threshold``), or None."""
    if not task:
        return None
    entry, score = nearest_instruction(task)
    return entry if score >= threshold else None


class _Check(beam.DoFn):
    def __init__(self, threshold: float, remove: bool):
        self._threshold = threshold
        self._remove = remove

    def setup(self):
        self._counters = metrics.Counters()

    def process(self, pair):
        category, task = pair
        if contaminated(task, self._threshold) is not None:
            self._counters.inc(metrics.BRAINSTORM_CONTAMINATED, category)
            if self._remove:
                self._counters.inc(metrics.BRAINSTORM_CONTAMINATED_REMOVED, category)
                return
        yield pair


class CheckContamination(beam.PTransform):
    """(category, task) -> (category, task): counts tasks that nearly restate an evaluation instruction.

    Args:
        settings: The threshold.
        remove: Drop flagged tasks (``--quality-filter reject``); otherwise they are kept, and their rows carry a
            ``contamination:<set>`` quality failure (transforms/quality/stage.py).
    """

    def __init__(self, settings: ContaminationSettings, remove: bool):
        super().__init__()
        self._settings = settings
        self._remove = remove

    def expand(self, pairs):
        return pairs | "FlagEvaluationInstructions" >> beam.ParDo(_Check(self._settings.threshold, self._remove))


def add_contamination_arguments(parser: argparse.ArgumentParser) -> None:
    """The "contamination" flag group of `embedgen generate`."""
    group = parser.add_argument_group("contamination (brainstormed tasks vs evaluation-set instructions)")
    group.add_argument(
        "--contamination-threshold",
        type=float,
        default=DEFAULT_THRESHOLD,
        help=(
            "Word-bigram Jaccard similarity at which a brainstormed task restates an evaluation-set instruction "
            f"(prompts/{DATA_FILE}); see docs/flags.md (default: %(default)s)."
        ),
    )


def contamination_settings(args: argparse.Namespace) -> ContaminationSettings:
    """Validate the contamination flags; ConfigError names the flag and the allowed range."""
    value = args.contamination_threshold
    if not 0.0 < value <= 1.0:
        raise ConfigError(f"--contamination-threshold must be in (0, 1], got {value}")
    return ContaminationSettings(threshold=value)
