"""--dry-run: the model calls, tokens and cost a generate run would make, counted from its rendered prompts."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import math
from collections.abc import Callable, Sequence

from transforms import recipe
from transforms.config import ConfigError

__all__ = [
    "DryRunSettings",
    "StageEstimate",
    "add_arguments",
    "settings_from_args",
    "plan_counts",
    "estimate",
    "cost",
    "run",
    "CHARS_PER_TOKEN",
    "STAND_IN_TASKS",
]

_LOGGER = logging.getLogger(__name__)

# Remote backends: characters per token of English prompt text (Gemini's and OpenAI's documented rule of thumb).
CHARS_PER_TOKEN = 4.0
# Brainstormed tasks are only known after the brainstorm call; generation prompts are rendered with these instead,
# one sentence of about the length the brainstorm prompts ask for.
STAND_IN_TASKS = {
    "text-retrieval": "Given a question about a common household repair, retrieve guides that explain how to do it.",
    "text-classification": "Given a short product review, classify whether its overall sentiment is positive or "
    "negative.",
    "text-matching-short": "Given a short news headline, find another headline that reports the same event.",
    "text-matching-long": "Given a scientific abstract, find another abstract that studies the same research question.",
}
_GENERIC_STAND_IN = "Given a short description of a need, find the texts that best meet it."


@dataclasses.dataclass(frozen=True)
class DryRunSettings:
    """What --dry-run prints.

    Attributes:
        price_input: Price in dollars per million input tokens, or None.
        price_output: Price in dollars per million output tokens, or None.
    """

    price_input: float | None = None
    price_output: float | None = None

    @property
    def priced(self) -> bool:
        return self.price_input is not None or self.price_output is not None


def add_arguments(parser) -> None:
    """The --dry-run flag group."""
    group = parser.add_argument_group("cost estimate (--dry-run)")
    group.add_argument(
        "--dry-run",
        action="store_true",
        help="Build the graph and print, per category, the model calls it would make and their input and output "
        "tokens (from the rendered prompts and each request's token budget), then stop: no model is called and "
        "nothing is written under --output.",
    )
    group.add_argument(
        "--price-input",
        type=float,
        default=None,
        help="With --dry-run: dollars per million input tokens, to print the cost (batch prediction: halved).",
    )
    group.add_argument(
        "--price-output",
        type=float,
        default=None,
        help="With --dry-run: dollars per million output tokens (thinking tokens are billed as output).",
    )


def settings_from_args(args) -> DryRunSettings | None:
    """Validated settings, None without --dry-run; ConfigError names the flag."""
    prices = (("--price-input", args.price_input), ("--price-output", args.price_output))
    for flag, value in prices:
        if value is None:
            continue
        if not args.dry_run:
            raise ConfigError(f"{flag} applies only with --dry-run (it prices the estimate; a real run is not priced)")
        if not math.isfinite(value) or value < 0:
            raise ConfigError(f"{flag} must be a non-negative number of dollars per million tokens, got {value}")
    if not args.dry_run:
        return None
    return DryRunSettings(price_input=args.price_input, price_output=args.price_output)


# ----- what the run would ask -----
@dataclasses.dataclass
class StageEstimate:
    """The first-attempt calls of one stage of one category and their tokens."""

    category: str
    stage: str
    calls: int = 0
    input_tokens: int = 0
    output_cap: int = 0
    output_expected: int = 0
    online: bool = True  # False: sent as batch prediction jobs (half price)

    def add(self, input_tokens: int, cap: int, expected: int) -> None:
        self.calls += 1
        self.input_tokens += input_tokens
        self.output_cap += cap
        self.output_expected += min(expected, cap)


def plan_counts(config) -> dict:
    """Per category: ``(brainstorm rounds, tasks kept, examples per task)`` or, symmetric, ``(0, 0, examples)``.

    From the run's size plan (``transforms.mix.size_plan``: --mix, or the size flags).
    """
    from transforms.mix import size_plan

    plan = size_plan(config)
    rounds, tasks, per_task = dict(plan.rounds), dict(plan.tasks), dict(plan.examples_per_task)
    counts = {c: (rounds[c], tasks[c], per_task[c]) for c in config.brainstorm_categories}
    counts.update({c: (0, 0, n) for c, n in plan.symmetric})
    return {c: counts[c] for c in config.categories}


def _elements(config, counts: dict):
    """Every element the run would render, brainstorm calls first; brainstormed tasks are stand-ins."""
    from transforms.brainstorm import brainstorm_elements
    from transforms.sampling import generation_elements, sample_attributes, symmetric_elements

    seed = config.seed
    for category, (rounds, _, _) in counts.items():
        if rounds:
            yield from brainstorm_elements([category], rounds, seed)
    for category, (_, tasks, per_task) in counts.items():
        if recipe.get_task_type(category).brainstorm:
            stand_in = STAND_IN_TASKS.get(category, _GENERIC_STAND_IN)
            # Ids from a distinct stand-in per task, so attributes are drawn as for distinct tasks.
            planned = (
                e._replace(task=stand_in)
                for t in range(tasks)
                for e in generation_elements(category, f"{stand_in} #{t}", per_task, seed)
            )
        else:
            planned = symmetric_elements(category, per_task, seed)
        for element in planned:
            yield sample_attributes(element, config.sampling)


def _renderer(config) -> Callable:
    """The job's own render(), with the run's template choice and token budgets."""
    from transforms.render import render

    return functools.partial(render, run_seed=config.seed, choice=config.templates, budget=config.budget)


def _expected_tokens(request, cap: int) -> int:
    """Completion tokens the prompt asks for, without the budget's margin (transforms/budget.py); 0 gives the cap."""
    from transforms.budget import BudgetSpec, token_budget_for

    return token_budget_for(request.element, BudgetSpec(margin=1.0, floor=0)) or cap


def estimate(config, count_tokens: Callable[[str], int], batch_generation: bool = False) -> list[StageEstimate]:
    """First-attempt calls per (category, stage), with input tokens and output tokens (cap and expected)."""
    from transforms.elements import STAGE_BRAINSTORM, STAGE_GENERATE, token_budget

    render = _renderer(config)
    ceiling = max_tokens(config)
    counts = plan_counts(config)
    rows: dict = {}
    for category in counts:
        if counts[category][0]:
            rows[(category, STAGE_BRAINSTORM)] = StageEstimate(category, STAGE_BRAINSTORM)
        rows[(category, STAGE_GENERATE)] = StageEstimate(category, STAGE_GENERATE, online=not batch_generation)
    for element in _elements(config, counts):
        request = render(element)
        cap = token_budget(request, ceiling)
        rows[(element.category, element.stage)].add(count_tokens(request.prompt), cap, _expected_tokens(request, cap))
    return list(rows.values())


def cost(rows: Sequence[StageEstimate], settings: DryRunSettings, output: str = "expected", calls: int = 1) -> float:
    """Dollars of ``rows`` at the settings' prices; batch (not online) rows at half price.

    Args:
        rows: The estimates.
        settings: The prices (a missing price counts as 0).
        output: ``expected`` or ``cap``: which output tokens to price.
        calls: Attempts per call (1: first attempts; 1 + --max-parse-retries: every call asked again each time).
    """
    price_in, price_out = settings.price_input or 0.0, settings.price_output or 0.0
    total = 0.0
    for row in rows:
        out_tokens = row.output_cap if output == "cap" else row.output_expected
        dollars = (row.input_tokens * price_in + out_tokens * price_out) / 1e6
        total += calls * (dollars if row.online else dollars / 2)
    return total


# ----- config accessors (one place to follow the options' structure) -----
def max_tokens(config) -> int:
    settings = config.model.settings
    remote = getattr(settings, "remote", None)
    return remote.max_tokens if remote is not None else settings.max_tokens


def _model_path(config) -> str | None:
    return config.model.settings.model_path if config.model.backend == "embedded" else None


def _batch_generation(config) -> bool:
    return getattr(config.model.settings, "batch", None) is not None


# ----- counting tokens -----
def token_counter(config) -> tuple[Callable[[str], int], str]:
    """(count, how) for ``config``'s model: the embedded model's tokenizer, else characters per token."""
    model_path = _model_path(config)
    if model_path is not None:
        try:
            return _llama_counter(model_path), (
                "the embedded model's own tokenizer (llama.cpp, vocabulary only), chat template included"
            )
        except Exception as err:  # noqa: BLE001 - any failure to load the vocabulary falls back to the estimate
            _LOGGER.warning(
                "could not load the tokenizer of %s (%s); estimating tokens from characters", model_path, err
            )
    return (
        _char_counter,
        f"an estimate of {CHARS_PER_TOKEN:g} characters per token (the model's tokenizer is not loaded)",
    )


def _char_counter(text: str) -> int:
    return max(1, math.ceil(len(text) / CHARS_PER_TOKEN))


def _quiet():
    """llama.cpp prints a context warning on a vocabulary-only load even when not verbose: silence its output."""
    try:
        from llama_cpp._utils import suppress_stdout_stderr
    except ImportError:
        return contextlib.nullcontext()
    return suppress_stdout_stderr(disable=False)


def _llama_counter(model_path: str) -> Callable[[str], int]:
    from llama_cpp import Llama
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    with _quiet():
        llama = Llama(model_path=model_path, vocab_only=True, verbose=False)
    template = llama.metadata.get("tokenizer.chat_template")
    formatter = None
    if template:

        def _token(token_id: int) -> str:
            return llama.detokenize([token_id], special=True).decode("utf-8", errors="ignore") if token_id >= 0 else ""

        formatter = Jinja2ChatFormatter(
            template, eos_token=_token(llama.token_eos()), bos_token=_token(llama.token_bos())
        )

    @functools.lru_cache(maxsize=65536)  # prompts repeat (a stand-in task, few attribute combinations)
    def count(text: str) -> int:
        if formatter is None:
            return len(llama.tokenize(text.encode("utf-8"), add_bos=True, special=False))
        chat = formatter(messages=[{"role": "user", "content": text}]).prompt
        return len(llama.tokenize(chat.encode("utf-8"), add_bos=False, special=True))

    return count


# ----- the graph -----
def _graph_stages(config, handler) -> tuple[int, int]:
    """Build the generation graph (never run) on a DirectRunner pipeline: (steps, model-call stages)."""
    import apache_beam as beam
    from apache_beam.ml.inference.base import RunInference

    from pipelines.generate import build_pipeline

    pipeline = beam.Pipeline(runner="DirectRunner")
    build_pipeline(pipeline, config, handler)
    steps, calls = [], []

    class _Visitor(beam.pipeline.PipelineVisitor):
        def enter_composite_transform(self, node):
            self.visit_transform(node)

        def visit_transform(self, node):
            steps.append(node.full_label)
            if isinstance(node.transform, RunInference) or node.full_label.rsplit("/", 1)[-1] == "RunInference":
                calls.append(node.full_label)

    pipeline.visit(_Visitor())
    # A model-call stage is the outermost of them: a backend may wrap Beam's RunInference in its own step.
    outer = {label for label in calls if not any(label.startswith(f"{other}/") for other in calls)}
    return len(steps), len(outer)


def run(config, settings: DryRunSettings, handler=None) -> int:
    """Print the estimate of ``config``'s run; calls no model and writes nothing. Returns the exit code (0)."""
    from transforms.models import make_handler
    from transforms.resume import has_journal
    from transforms.sinks import existing_outputs

    graph = _graph_stages(config, handler or make_handler(config))
    count, how = token_counter(config)
    rows = estimate(config, count, batch_generation=_batch_generation(config))
    from pipelines.dry_run_report import format_report

    print(format_report(rows, config, settings, how, graph))
    try:
        earlier = existing_outputs(config.output) or has_journal(config.output)
    except OSError:
        earlier = False
    if earlier and not (config.overwrite or config.resume):
        print(f"note: --output {config.output} holds an earlier run; the real run needs --resume or --overwrite")
    elif earlier and config.resume:
        print("note: --resume: the counts are the whole plan; what the earlier run finished would be skipped")
    return 0
