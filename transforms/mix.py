"""How many rows of each category a run asks for: uniform flags, or the paper's category mix (--mix paper)."""

from __future__ import annotations

import argparse
import dataclasses
import math
from collections.abc import Mapping

from transforms import recipe
from transforms.config import ConfigError

__all__ = [
    "MIXES",
    "PAPER_MIX",
    "SizePlan",
    "add_mix_args",
    "plan_sizes",
    "size_plan",
    "SIZE_DEFAULTS",
    "TASKS_PER_BRAINSTORM_CALL",
]

MIXES = ("none", "paper")
# Rows per category of the paper's ~500k (Fig. 2, thousands): short-long, long-short, STS, bitext, long-long,
# short-short.
PAPER_MIX: Mapping[str, int] = {
    "text-retrieval": 167,
    "text-classification": 122,
    "monolingual-triplet": 99,
    "bitext-retrieval": 89,
    "text-matching-long": 17,
    "text-matching-short": 13,
}
# Defaults of the size flags when neither they nor --mix set them.
SIZE_DEFAULTS = {
    "brainstorm_rounds": 1,
    "tasks_per_category": 2,
    "examples_per_task": 1,
    "examples_per_symmetric_type": 2,
}
TASKS_PER_BRAINSTORM_CALL = 20  # what one brainstorm call asks for (recipe.BRAINSTORM_MAX_TASKS)
# The paper's 500k examples came from 150k unique tasks, about 2 examples per brainstormed task.
_PAPER_EXAMPLES_PER_TASK = 2
# Brainstorm calls are planned with this much room for near-duplicate and short lists.
_BRAINSTORM_HEADROOM = 1.5


@dataclasses.dataclass(frozen=True)
class SizePlan:
    """Per category: brainstorm rounds, tasks kept, examples per task (brainstormed), or examples (symmetric).

    Attributes:
        rounds / tasks / examples_per_task / symmetric: ``(category, count)`` pairs.
        target: ``(category, share)`` pairs of the mix asked for (empty without --mix).
        total: The --examples asked for (None without --mix).
    """

    rounds: tuple = ()
    tasks: tuple = ()
    examples_per_task: tuple = ()
    symmetric: tuple = ()
    target: tuple = ()
    total: int | None = None

    def requested(self) -> dict:
        """Rows the plan asks for per category (brainstormed: if every planned task is found)."""
        per_task = dict(self.examples_per_task)
        rows = {c: n * per_task[c] for c, n in self.tasks}
        rows.update(dict(self.symmetric))
        return rows


def add_mix_args(group: argparse._ArgumentGroup) -> None:
    """Add --mix and --examples to ``group`` (the "what to generate" group)."""
    group.add_argument(
        "--mix",
        choices=MIXES,
        default="none",
        help="paper: split --examples over the categories in the paper's shares (retrieval 167k, classification "
        "122k, STS 99k, bitext 89k, long matching 17k, short matching 13k of 507k), deriving brainstorm rounds, "
        "tasks per category and examples per task; explicit size flags still override (default: %(default)s).",
    )
    group.add_argument(
        "--examples",
        type=int,
        default=None,
        help="With --mix paper: the total number of examples to ask for.",
    )


def _shares(categories: tuple) -> dict:
    weights = {c: PAPER_MIX.get(c, 0) for c in categories}
    total = sum(weights.values())
    return {c: w / total for c, w in weights.items()}


def _apportion(total: int, shares: Mapping[str, float]) -> dict:
    """Integer counts summing to ``total`` in ``shares`` (largest remainder, ties in declaration order)."""
    exact = {c: total * s for c, s in shares.items()}
    counts = {c: math.floor(v) for c, v in exact.items()}
    left = total - sum(counts.values())
    for c in sorted(exact, key=lambda c: counts[c] - exact[c])[:left]:
        counts[c] += 1
    return counts


def plan_sizes(args: argparse.Namespace, categories: tuple) -> SizePlan:
    """The per-category sizes of a run; ConfigError names the flag of a bad combination.

    ``args`` holds the size flags (None when not given), ``mix`` and ``examples``.
    """
    explicit = {name: getattr(args, name) for name in SIZE_DEFAULTS if getattr(args, name) is not None}
    for name, value in explicit.items():
        if value < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    brainstormed = [c for c in categories if recipe.get_task_type(c).brainstorm]
    symmetric = [c for c in categories if not recipe.get_task_type(c).brainstorm]
    if args.mix == "none":
        if args.examples is not None:
            raise ConfigError("--examples needs --mix paper (without a mix, size the run with --tasks-per-category "
                              "and --examples-per-task)")  # fmt: skip
        return _uniform(brainstormed, symmetric, {**SIZE_DEFAULTS, **explicit})
    if args.examples is None:
        raise ConfigError("--mix paper needs --examples N, the total number of examples to split over categories")
    unknown = [c for c in categories if c not in PAPER_MIX]
    if unknown:
        raise ConfigError(
            f"--mix paper: the paper has no share for {', '.join(unknown)}; narrow --categories to "
            f"{', '.join(PAPER_MIX)}"
        )
    shares = _shares(categories)
    smallest = min(shares, key=shares.get)
    least = math.ceil(1 / shares[smallest])
    if args.examples < least:
        raise ConfigError(
            f"--examples {args.examples} is too small for the paper's mix over {len(categories)} categories: "
            f"{smallest} gets {shares[smallest]:.1%}; give at least {least}"
        )
    counts = _apportion(args.examples, shares)
    rounds, tasks, per_task = [], [], []
    for c in brainstormed:
        e = explicit.get("examples_per_task", min(_PAPER_EXAMPLES_PER_TASK, counts[c]))
        t = explicit.get("tasks_per_category", math.ceil(counts[c] / e))
        r = explicit.get("brainstorm_rounds", math.ceil(t * _BRAINSTORM_HEADROOM / TASKS_PER_BRAINSTORM_CALL))
        rounds.append((c, r))
        tasks.append((c, t))
        per_task.append((c, e))
    sym = [(c, explicit.get("examples_per_symmetric_type", counts[c])) for c in symmetric]
    return SizePlan(
        rounds=tuple(rounds),
        tasks=tuple(tasks),
        examples_per_task=tuple(per_task),
        symmetric=tuple(sym),
        target=tuple(shares.items()),
        total=args.examples,
    )


def size_plan(config) -> SizePlan:
    """The plan of a GenerationConfig: its own, or the uniform one of its size fields (configs built by hand)."""
    plan = getattr(config, "plan", None)
    if plan is not None:
        return plan
    sizes = {name: getattr(config, name) for name in SIZE_DEFAULTS}
    return _uniform(config.brainstorm_categories, config.symmetric_categories, sizes)


def _uniform(brainstormed, symmetric, sizes: Mapping[str, int]) -> SizePlan:
    """The same sizes (SIZE_DEFAULTS' names) for every category."""
    return SizePlan(
        rounds=tuple((c, sizes["brainstorm_rounds"]) for c in brainstormed),
        tasks=tuple((c, sizes["tasks_per_category"]) for c in brainstormed),
        examples_per_task=tuple((c, sizes["examples_per_task"]) for c in brainstormed),
        symmetric=tuple((c, sizes["examples_per_symmetric_type"]) for c in symmetric),
    )
