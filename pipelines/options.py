"""The flags of `embedgen generate` and their validation into a frozen GenerationConfig.

The flag groups of the model backends (transforms/models/), the attribute sampler (transforms/sampling_options.py)
and the quality stage (transforms/quality/options.py) are declared and validated in their own modules; this
module declares the run's size and output and puts the pieces together.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
from collections.abc import Sequence

from pipelines import dry_run as dry_run_options
from pipelines import incremental, terminal
from transforms import models, recipe, sampling_options
from transforms.bigquery import BigQueryTarget
from transforms.budget import BudgetSpec, budget_spec
from transforms.config import ConfigError, at_least, parse_categories
from transforms.mix import SIZE_DEFAULTS, SizePlan, add_mix_args, plan_sizes
from transforms.models import ModelSettings
from transforms.quality import options as quality_options
from transforms.quality.contamination import ContaminationSettings, add_contamination_arguments, contamination_settings
from transforms.quality.stage import QualityConfig
from transforms.sampling import SamplingSpec
from transforms.templates import TemplateChoice, add_template_arguments, template_choice

__all__ = ["GenerationConfig", "ConfigError", "add_arguments", "parse_args", "to_config", "DESCRIPTION"]

DESCRIPTION = (
    "Generate synthetic (query, positive, hard negative) training data for text-embedding models with an LLM, "
    "as an Apache Beam pipeline. Beam's own pipeline flags (--runner, --project, ...) pass through to Beam."
)


@dataclasses.dataclass(frozen=True)
class GenerationConfig:
    """The validated, immutable settings of one generation run. Transforms never see argv."""

    categories: tuple
    brainstorm_rounds: int
    tasks_per_category: int
    examples_per_task: int
    examples_per_symmetric_type: int
    seed: int
    max_parse_retries: int
    sampling: SamplingSpec
    model: ModelSettings  # the backend --model names and its settings
    output: str
    overwrite: bool
    resume: bool = False
    run_id: str = "run"  # names this run's output shards, so a resumed run never overwrites earlier files
    bigquery: BigQueryTarget | None = None  # --bigquery-dataset
    run_date: str | None = None  # --run-date, YYYY-MM-DD
    quality: QualityConfig = QualityConfig()  # the quality flag group
    templates: TemplateChoice = TemplateChoice()  # --template (transforms/templates.py)
    contamination: ContaminationSettings = ContaminationSettings()  # --contamination-threshold
    incremental: incremental.IncrementalSettings | None = None  # run seed of the day, --exclude-from
    terminal: terminal.TerminalSettings = terminal.TerminalSettings()  # --quiet, --verbose, --log-file
    dry_run: dry_run_options.DryRunSettings | None = None  # --dry-run (pipelines/dry_run.py)
    budget: BudgetSpec = BudgetSpec()  # per-request completion-token caps (transforms/budget.py)
    plan: SizePlan | None = None  # rows per category (transforms/mix.py); None: the size fields above, uniformly

    @property
    def brainstorm_categories(self) -> tuple:
        return tuple(c for c in self.categories if recipe.get_task_type(c).brainstorm)

    @property
    def symmetric_categories(self) -> tuple:
        return tuple(c for c in self.categories if not recipe.get_task_type(c).brainstorm)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Every flag of `embedgen generate`, in groups."""
    size = parser.add_argument_group("what to generate")
    size.add_argument(
        "--categories",
        default=",".join(recipe.CATEGORIES),
        help="Comma-separated task types to generate (default: all six: %(default)s).",
    )
    size.add_argument(
        "--brainstorm-rounds",
        type=int,
        default=None,
        help="Brainstorm model calls per brainstormed category (default: 1, or what --mix needs).",
    )
    size.add_argument(
        "--tasks-per-category",
        type=int,
        default=None,
        help="Brainstormed tasks kept per category after dedup, chosen by a seeded hash (default: 2, or what --mix "
        "needs).",
    )
    size.add_argument(
        "--examples-per-task",
        type=int,
        default=None,
        help="Examples generated per kept task (default: 1, or 2 with --mix).",
    )
    size.add_argument(
        "--examples-per-symmetric-type",
        type=int,
        default=None,
        help="Examples of each task type without a brainstorm step (monolingual-triplet, bitext-retrieval) "
        "(default: 2, or what --mix needs).",
    )
    add_mix_args(size)
    size.add_argument(
        "--seed",
        type=int,
        default=42,
        help="Run seed: ids, attributes and sampling seeds derive from it and each element's id "
        "(default: %(default)s).",
    )
    size.add_argument(
        "--max-parse-retries",
        type=int,
        default=2,
        help="Times a reply that does not validate is asked again, with a new seed, before it is dead-lettered "
        "(default: %(default)s).",
    )
    sampling_options.add_arguments(parser)
    models.add_arguments(parser)

    out = parser.add_argument_group("output")
    out.add_argument(
        "--output",
        default="./output",
        help="Directory (local or gs://) for <category>/*.avro and dead_letter/*.avro (default: %(default)s).",
    )
    out.add_argument(
        "--overwrite", action="store_true", help="Delete earlier embedgen output under --output before writing."
    )
    out.add_argument(
        "--bigquery-dataset",
        default=None,
        help="Also write to BigQuery, PROJECT:DATASET: a table per category plus dead_letter, loaded through "
        "--temp_location (gs://); see docs/dataflow.md.",
    )
    out.add_argument(
        "--run-date",
        default=None,
        help="YYYY-MM-DD or 'today' (UTC): write under <output>/run_date=<date>/ and into that day's BigQuery "
        "partition, so scheduled runs never overwrite each other.",
    )
    out.add_argument(
        "--resume",
        action="store_true",
        help="Finish or extend the run under --output: finished ids are skipped and journaled replies reused. "
        "Use the same --seed and templates.",
    )
    quality_options.add_arguments(parser)
    add_template_arguments(parser)
    add_contamination_arguments(parser)
    incremental.add_flags(parser)
    terminal.add_flags(parser)
    dry_run_options.add_arguments(parser)


def parse_args(argv: Sequence[str] | None) -> tuple[argparse.Namespace, list[str]]:
    """Our flags and the rest (Beam's); ``args.cloud`` is Beam's GoogleCloudOptions view of the rest.

    ``--help`` lists our flags; argparse exits 2 on a bad choice.
    """
    from pipelines import cli

    parser = cli.parser("generate", DESCRIPTION, add_arguments)
    args, rest = parser.parse_known_args(argv)
    args.cloud = cli.cloud_options(rest)
    return args, rest


def _run_date(value: str | None) -> str | None:
    if value is None:
        return None
    if value == "today":
        return datetime.datetime.now(datetime.timezone.utc).date().isoformat()
    try:
        return datetime.date.fromisoformat(value).isoformat()
    except ValueError:
        raise ConfigError(f"--run-date {value!r} is not a date; give YYYY-MM-DD or 'today'") from None


def _bigquery(args: argparse.Namespace, run_date: str | None) -> BigQueryTarget | None:
    if args.bigquery_dataset is None:
        return None
    try:
        target = BigQueryTarget.parse(
            args.bigquery_dataset, args.cloud.project, run_date=run_date, overwrite=args.overwrite
        )
    except ValueError as err:
        raise ConfigError(f"--bigquery-dataset: {err}") from None
    if not (args.cloud.temp_location or "").startswith("gs://"):
        raise ConfigError(
            "--bigquery-dataset loads rows through files in Cloud Storage: pass --temp_location gs://BUCKET/tmp"
        )
    return target


def to_config(args: argparse.Namespace) -> GenerationConfig:
    """Validate parsed flags; ConfigError names the flag and the allowed values."""
    categories = parse_categories(args.categories)
    plan = plan_sizes(args, categories)  # --mix and the size flags
    sizes = {name: getattr(args, name) or default for name, default in SIZE_DEFAULTS.items()}
    at_least("--max-parse-retries", args.max_parse_retries, 0)
    if not 0 <= args.seed < 2**63:
        raise ConfigError(f"--seed must be between 0 and 2**63-1, got {args.seed}")
    if args.resume and args.overwrite:
        raise ConfigError(
            "--resume and --overwrite conflict: --resume keeps the earlier run's files, --overwrite deletes them"
        )
    sampling = sampling_options.spec_from_args(args, categories)
    run_date = _run_date(args.run_date)
    output = f"{args.output.rstrip('/')}/run_date={run_date}" if run_date else args.output
    model = models.settings_from_args(args, output)
    daily = incremental.to_settings(args, run_date, output)
    sampling = dataclasses.replace(sampling, seed=daily.seed)
    return GenerationConfig(
        categories=categories,
        brainstorm_rounds=sizes["brainstorm_rounds"],
        tasks_per_category=sizes["tasks_per_category"],
        examples_per_task=sizes["examples_per_task"],
        examples_per_symmetric_type=sizes["examples_per_symmetric_type"],
        seed=daily.seed,
        max_parse_retries=args.max_parse_retries,
        sampling=sampling,
        model=model,
        output=output,
        overwrite=args.overwrite,
        resume=args.resume,
        run_id=datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ"),
        bigquery=_bigquery(args, run_date),
        run_date=run_date,
        quality=quality_options.settings_from_args(args),
        templates=template_choice(args.template, categories),
        contamination=contamination_settings(args),
        incremental=daily,
        terminal=terminal.to_settings(args),
        dry_run=dry_run_options.settings_from_args(args),
        budget=budget_spec(
            args.model,
            getattr(args, "thinking_budget", None),
            args.max_tokens,
            args.n_ctx if args.model == "embedded" else None,
        ),
        plan=plan,
    )
