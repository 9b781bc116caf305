"""BrainstormTasks: per category and round, one model call that lists tasks; flattened, deduplicated, capped."""

from __future__ import annotations

import functools
import hashlib
import re

import apache_beam as beam
from apache_beam.metrics import Metrics

from transforms.elements import STAGE_BRAINSTORM, Element, stable_id
from transforms.inference import CallModel
from transforms.prompts import RenderPrompts

__all__ = ["BrainstormTasks", "DedupTasks", "CapPerCategory", "brainstorm_elements", "normalize_task"]

_SPACE = re.compile(r"\s+")


def brainstorm_elements(categories, rounds: int, run_seed: int) -> list[Element]:
    """One element per (category, round), with a stable id."""
    return [
        Element(stable_id(run_seed, category, STAGE_BRAINSTORM, r), category, STAGE_BRAINSTORM)
        for category in categories
        for r in range(rounds)
    ]


def normalize_task(task: str) -> str:
    """The form two tasks are compared in: case-folded, whitespace collapsed, final period dropped."""
    return _SPACE.sub(" ", task).strip().rstrip(".").casefold()


def _flatten(parsed):
    request, completion, tasks = parsed
    Metrics.counter("embedgen", "brainstorm/tasks_returned").inc(len(tasks))
    Metrics.counter("embedgen", "tokens/brainstorm").inc(completion.prompt_tokens + completion.completion_tokens)
    for task in tasks:
        yield (request.element.category, normalize_task(task)), task


def _rank(run_seed: int, category_and_task) -> str:
    # Deterministic pseudo-random rank: which tasks survive the cap never depends on arrival order.
    category, task = category_and_task
    return hashlib.sha256(f"{run_seed}\x1f{category}\x1f{normalize_task(task)}".encode("utf-8")).hexdigest()


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
    """(category, task) -> (category, task), at most ``cap`` per category, chosen by a seeded hash."""

    def __init__(self, cap: int, run_seed: int):
        super().__init__()
        self._cap = cap
        self._run_seed = run_seed

    def expand(self, pairs):
        rank = functools.partial(_rank, self._run_seed)
        return (
            pairs
            | "KeyByCategory" >> beam.Map(lambda pair: (pair[0], pair))
            | "LowestRanks" >> beam.combiners.Top.PerKey(self._cap, key=rank, reverse=True)
            | "Unpack" >> beam.FlatMap(lambda kv: kv[1])
        )


class BrainstormTasks(beam.PTransform):
    """PBegin -> (tasks as (category, task) pairs, brainstorm dead letters)."""

    def __init__(self, categories, rounds: int, cap: int, run_seed: int, handler, max_retries: int):
        super().__init__()
        self._categories = tuple(categories)
        self._rounds = rounds
        self._cap = cap
        self._run_seed = run_seed
        self._handler = handler
        self._max_retries = max_retries

    def expand(self, pbegin):
        requests = (
            pbegin
            | "CreateBrainstormCalls" >> beam.Create(brainstorm_elements(self._categories, self._rounds, self._run_seed))
            | "RenderBrainstormPrompts" >> RenderPrompts(self._run_seed)
        )
        parsed, dead = requests | "AskForTasks" >> CallModel(self._handler, self._run_seed, self._max_retries)
        tasks = (
            parsed
            | "OneTaskPerElement" >> beam.FlatMap(_flatten)
            | "DedupTasks" >> DedupTasks()
            | "CapPerCategory" >> CapPerCategory(self._cap, self._run_seed)
        )
        return tasks, dead
