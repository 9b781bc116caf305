"""BrainstormTasks: per category and round, one model call that lists tasks; flattened, deduplicated, capped."""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Mapping

import apache_beam as beam

from transforms import metrics
from transforms.elements import STAGE_BRAINSTORM, Element, stable_id
from transforms.inference import CallModel, ModelCalls
from transforms.quality.contamination import CheckContamination, ContaminationSettings
from transforms.quality.dedup import DedupItem, SplitNearDuplicates
from transforms.render import RenderPrompts
from transforms.resume import DropFinished

__all__ = [
    "BrainstormTasks",
    "DedupTasks",
    "DropNearDuplicateTasks",
    "CapPerCategory",
    "brainstorm_elements",
    "normalize_task",
]

_SPACE = re.compile(r"\s+")


def _per_category(value, category: str) -> int:
    """``value`` itself, or its entry for ``category`` when it is a mapping (a per-category plan)."""
    return value[category] if isinstance(value, Mapping) else value


def brainstorm_elements(categories, rounds, run_seed: int) -> list[Element]:
    """One element per (category, round), with a stable id; ``rounds``: an int or a per-category mapping."""
    return [
        Element(stable_id(run_seed, category, STAGE_BRAINSTORM, r), category, STAGE_BRAINSTORM)
        for category in categories
        for r in range(_per_category(rounds, category))
    ]


def normalize_task(task: str) -> str:
    """The form two tasks are compared in: case-folded, whitespace collapsed, final period dropped."""
    return _SPACE.sub(" ", task).strip().rstrip(".").casefold()


def _flatten(parsed):
    request, completion, tasks = parsed
    metrics.inc(metrics.BRAINSTORM_TASKS_RETURNED, n=len(tasks))
    metrics.inc(metrics.TOKENS, "brainstorm", n=completion.prompt_tokens + completion.completion_tokens)
    for task in tasks:
        yield (request.element.category, normalize_task(task)), task


def _rank(run_seed: int, category_and_task) -> str:
    # Deterministic pseudo-random rank: which tasks survive the cap never depends on arrival order.
    category, task = category_and_task
    return hashlib.sha256(f"{run_seed}\x1f{category}\x1f{normalize_task(task)}".encode()).hexdigest()


class DedupTasks(beam.PTransform):
    """((category, normalized), task) -> (category, task), one per exact duplicate group."""

    def expand(self, keyed):
        return (
            keyed
            # Among spellings that normalize alike, keep the smallest: independent of order.
            | "OneSpellingPerTask" >> beam.CombinePerKey(min)
            | "DropNormalizedKey" >> beam.MapTuple(lambda key, task: (key[0], task))
        )


class CapPerCategory(beam.PTransform):
    """(category, task) -> (category, task), at most ``cap`` per category, chosen by a seeded hash.

    ``cap`` is an int or a per-category mapping.
    """

    def __init__(self, cap, run_seed: int):
        super().__init__()
        self._cap = dict(cap) if isinstance(cap, Mapping) else cap
        self._run_seed = run_seed

    def expand(self, pairs):
        rank = functools.partial(_rank, self._run_seed)
        cap = self._cap
        most = max(cap.values(), default=1) if isinstance(cap, dict) else cap
        return (
            pairs
            | "KeyByCategory" >> beam.Map(lambda pair: (pair[0], pair))
            | "LowestRanks" >> beam.combiners.Top.PerKey(most, key=rank, reverse=True)
            # Top keeps the lowest ranks first, so each category's own cap is a prefix.
            | "Unpack" >> beam.FlatMap(lambda kv: kv[1][: _per_category(cap, kv[0])])
        )


class DropNearDuplicateTasks(beam.PTransform):
    """(category, task) -> (category, task) minus near-duplicates within a category (MinHash/LSH, see dedup.py).

    Of near-duplicate tasks (word-bigram Jaccard >= ``threshold``) the one with the lowest seeded rank is kept,
    the same order CapPerCategory uses, so the outcome never depends on arrival order.
    """

    def __init__(self, threshold: float, run_seed: int, earlier=None):
        super().__init__()
        self._threshold = threshold
        self._run_seed = run_seed
        self._earlier = earlier  # (category, task) of earlier runs (--exclude-from), or None

    def expand(self, pairs):
        rank = functools.partial(_rank, self._run_seed)
        items = pairs | "ToDedupItems" >> beam.Map(lambda pair: DedupItem(rank(pair), pair[0], pair[1], pair))
        if self._earlier is not None:
            from transforms.exclude import SplitAgainstEarlier, earlier_task_item

            split = items | "SplitAgainstEarlier" >> SplitAgainstEarlier(
                self._earlier | "EarlierDedupItems" >> beam.Map(earlier_task_item),
                self._threshold,
                2,
                metrics.BRAINSTORM_NEAR_DUPLICATES,
                metrics.EXCLUDED_TASKS,
            )
            return split["kept"]
        split = items | "SplitNearDuplicates" >> SplitNearDuplicates(
            self._threshold, ngram=2, counter=metrics.BRAINSTORM_NEAR_DUPLICATES
        )
        return split["kept"]


class BrainstormTasks(beam.PTransform):
    """PBegin -> (tasks as (category, task) pairs, brainstorm dead letters).

    Args:
        categories: The brainstormed categories.
        rounds: Brainstorm calls per category (an int, or a per-category mapping).
        cap: Tasks kept per category (an int, or a per-category mapping).
        calls: What the model calls need (ModelCalls).
        finished: Ids an earlier run finished (``--resume``), or None.
        near_dup_threshold: Word-bigram Jaccard at which two tasks of a category are near-duplicates.
        templates: The template choice (--template), or None for the default draw.
        contamination: Settings of the evaluation-instruction check (default: its defaults).
        remove_contaminated: Remove contaminated tasks before the cap (else they are flagged after it).
        earlier_tasks: (category, task) of earlier runs (--exclude-from): new tasks near one are dropped.
        budget: How the brainstorm requests' token caps are sized (transforms/budget.py), or None for the default.
    """

    def __init__(
        self,
        categories,
        rounds: int,
        cap: int,
        calls: ModelCalls,
        finished=None,
        near_dup_threshold: float = 0.7,
        templates=None,
        contamination: ContaminationSettings | None = None,
        remove_contaminated: bool = False,
        earlier_tasks=None,
        budget=None,
    ):
        super().__init__()
        self._earlier_tasks = earlier_tasks  # (category, task) of earlier runs (--exclude-from), or None
        self._budget = budget
        self._templates = templates
        self._contamination = contamination or ContaminationSettings()
        self._remove_contaminated = remove_contaminated
        self._categories = tuple(categories)
        self._rounds = rounds
        self._cap = cap
        self._calls = calls
        self._finished = finished
        self._near_dup_threshold = near_dup_threshold

    def expand(self, pbegin):
        seed = self._calls.run_seed
        calls = pbegin | "CreateBrainstormCalls" >> beam.Create(
            brainstorm_elements(self._categories, self._rounds, seed)
        )
        if self._finished is not None:  # --resume: a call dead-lettered by the earlier run stays dead-lettered
            calls = calls | "DropFinished" >> DropFinished(self._finished)
        requests = calls | "RenderBrainstormPrompts" >> RenderPrompts(seed, self._templates, self._budget)
        parsed, dead = requests | "AskForTasks" >> CallModel(self._calls)
        tasks = (
            parsed
            | "OneTaskPerElement" >> beam.FlatMap(_flatten)
            | "DedupTasks" >> DedupTasks()
            | "DropNearDuplicateTasks" >> DropNearDuplicateTasks(self._near_dup_threshold, seed, self._earlier_tasks)
        )
        # Removed before the cap, so other tasks take their places; flagged after it, so only kept tasks count.
        if self._remove_contaminated:
            tasks = tasks | "RemoveContaminatedTasks" >> CheckContamination(self._contamination, remove=True)
        tasks = tasks | "CapPerCategory" >> CapPerCategory(self._cap, seed)
        if not self._remove_contaminated:
            tasks = tasks | "FlagContaminatedTasks" >> CheckContamination(self._contamination, remove=False)
        return tasks, dead
