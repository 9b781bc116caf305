"""The export job: `embedgen export` / `python -m pipelines.export` (generated rows -> training rows)."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from collections.abc import Sequence

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions

from pipelines import cli
from transforms import recipe
from transforms.bigquery import BigQueryTarget
from transforms.config import ConfigError, at_least, parse_categories
from transforms.training.export_rows import (
    BALANCE_BY,
    FORMATS,
    QUALITY_PASS_FIELD,
    SPLIT_BY,
    SPLITS,
    BalanceGroups,
    ExportSpec,
    ReadExamples,
    SplitByHash,
    ToTrainingRows,
    WriteTrainingRows,
    avro_pattern,
)

__all__ = [
    "COMMAND",
    "ExportConfig",
    "add_arguments",
    "to_config",
    "build_pipeline",
    "run",
    "main",
]

_LOGGER = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Every flag of `embedgen export`, in groups."""
    source = parser.add_argument_group("input (exactly one)")
    source.add_argument(
        "--input",
        default=None,
        help="Output directory of `embedgen generate` (local or gs://), holding <category>/*.avro.",
    )
    source.add_argument(
        "--bigquery-dataset",
        default=None,
        help="Read the per-category tables of a BigQuery dataset instead, as PROJECT:DATASET.",
    )
    source.add_argument(
        "--categories",
        default=None,
        help="Comma-separated categories to export (default: every category found in the input).",
    )

    shape = parser.add_argument_group("what to export")
    shape.add_argument(
        "--validation-fraction",
        type=float,
        default=0.1,
        help="Share of example ids put in the validation split, chosen by a hash of the id (default: %(default)s).",
    )
    shape.add_argument(
        "--split-by",
        choices=SPLIT_BY,
        default="example_id",
        help="What the split hashes: example_id (default), or task, so that validation measures unseen tasks "
        "(docs/training.md).",
    )
    shape.add_argument(
        "--only-passed",
        action="store_true",
        help=f"Keep only rows whose {QUALITY_PASS_FIELD} is true (needs input that went through the quality checks).",
    )
    shape.add_argument(
        "--balance",
        choices=BALANCE_BY,
        default="none",
        help="Make every category (or language) the same size, keeping the lowest id hashes (default: %(default)s).",
    )
    shape.add_argument(
        "--balance-cap",
        type=int,
        default=None,
        help="Rows kept per group with --balance (default: the size of the smallest group).",
    )

    out = parser.add_argument_group("output")
    out.add_argument(
        "--out",
        default=None,
        help="Directory (local or gs://) for <split>/part-*.<format>; splits: train, validation.",
    )
    out.add_argument("--format", choices=FORMATS, default="jsonl", help="File format (default: %(default)s).")
    out.add_argument(
        "--num-shards",
        type=int,
        default=0,
        help="Files per split; 0 lets the runner choose (default: %(default)s).",
    )
    out.add_argument(
        "--overwrite", action="store_true", help="Delete an earlier export's files under --out before writing."
    )


@dataclasses.dataclass(frozen=True)
class ExportConfig:
    """The validated, immutable settings of one export run."""

    categories: tuple
    input: str | None
    bigquery_dataset: str | None
    spec: ExportSpec
    out: str
    format: str
    num_shards: int
    overwrite: bool


DESCRIPTION = (
    "Turn generated examples into training rows (anchor with its instruction, positive, hard negative) split into "
    "train and validation, as jsonl or parquet that sentence-transformers and Hugging Face datasets load directly. "
    "A Beam pipeline: Beam's flags (--runner, --project, ...) pass through."
)


def _files(pattern: str) -> list[str]:
    return sorted(m.path for m in FileSystems.match([pattern])[0].metadata_list)


def _avro_fields(path: str) -> set:
    import fastavro

    with FileSystems.open(path) as handle:
        return {f["name"] for f in fastavro.reader(handle).writer_schema["fields"]}


def _categories(args: argparse.Namespace) -> tuple:
    names = recipe.CATEGORIES if args.categories is None else parse_categories(args.categories)
    if args.input is None:
        return names
    found = tuple(c for c in names if _files(avro_pattern(args.input, c)))
    missing = [c for c in names if c not in found]
    if args.categories is not None and missing:
        raise ConfigError(f"--categories: --input {args.input} has no table for {', '.join(missing)}")
    if not found:
        raise ConfigError(
            f"--input {args.input} holds no <category>/*.avro table (looked for {', '.join(names)}); "
            "give the --output directory of `embedgen generate`"
        )
    if missing:
        _LOGGER.info("no table for %s in %s; exporting %s", ", ".join(missing), args.input, ", ".join(found))
    return found


def _check_quality_field(input_dir: str, categories: tuple) -> None:
    for category in categories:
        for path in _files(avro_pattern(input_dir, category)):
            if QUALITY_PASS_FIELD not in _avro_fields(path):
                raise ConfigError(
                    f"--only-passed: {path} has no {QUALITY_PASS_FIELD!r} field; run the quality checks on this "
                    "output first, or export without --only-passed"
                )


def _existing_export(out: str) -> list[str]:
    return [p for split in SPLITS for p in _files(FileSystems.join(out, split, "part-*"))]


def to_config(args: argparse.Namespace) -> ExportConfig:
    """Validate parsed flags before anything runs; ConfigError names the flag and the allowed values."""
    if (args.input is None) == (args.bigquery_dataset is None):
        raise ConfigError(
            "give exactly one of --input (a generate output directory) and --bigquery-dataset (project:dataset)"
        )
    dataset = None
    if args.bigquery_dataset is not None:
        try:
            dataset = BigQueryTarget.parse(args.bigquery_dataset, args.cloud.project).dataset_spec
        except ValueError as err:
            raise ConfigError(f"--bigquery-dataset: {err}") from None
    if args.out is None:
        raise ConfigError("--out is required: the directory to write train/ and validation/ into")
    if not 0.0 <= args.validation_fraction < 1.0:
        raise ConfigError(f"--validation-fraction must be in [0, 1), got {args.validation_fraction}")
    if args.balance_cap is not None:
        if args.balance == "none":
            raise ConfigError("--balance-cap needs --balance category or --balance language")
        at_least("--balance-cap", args.balance_cap)
    if args.num_shards < 0:
        raise ConfigError(f"--num-shards must be 0 (runner chooses) or more, got {args.num_shards}")
    if args.input is not None and not FileSystems.exists(args.input):
        raise ConfigError(f"--input {args.input} does not exist")
    categories = _categories(args)
    if args.only_passed and args.input is not None:
        _check_quality_field(args.input, categories)
    earlier = _existing_export(args.out)
    if earlier and not args.overwrite:
        raise ConfigError(
            f"--out {args.out} already holds {len(earlier)} file(s) of an earlier export; pass --overwrite to "
            "replace them, or choose another --out"
        )
    return ExportConfig(
        categories=categories,
        input=args.input,
        bigquery_dataset=dataset,
        spec=ExportSpec(
            only_passed=args.only_passed,
            balance=args.balance,
            balance_cap=args.balance_cap,
            validation_fraction=args.validation_fraction,
            split_by=args.split_by,
        ),
        out=args.out,
        format=args.format,
        num_shards=args.num_shards,
        overwrite=args.overwrite,
    )


def build_pipeline(p: beam.Pipeline, config: ExportConfig) -> dict:
    """Build the export graph on ``p``.

    Returns:
        ``{"train": PCollection[dict], "validation": PCollection[dict]}``: the training rows of each split.
    """
    rows = (
        p
        | "ReadExamples" >> ReadExamples(config.categories, input_dir=config.input, dataset=config.bigquery_dataset)
        | "ToTrainingRows" >> ToTrainingRows(config.spec.only_passed, config.spec.split_by)
    )
    if config.spec.balance != "none":
        rows = rows | f"Balance[{config.spec.balance}]" >> BalanceGroups(config.spec.balance, config.spec.balance_cap)
    splits = rows | "SplitByHash" >> SplitByHash(config.spec.validation_fraction)
    for name in SPLITS:
        splits[name] | f"Write[{name}]" >> WriteTrainingRows(config.out, name, config.format, config.num_shards)
    return splits


def _counts(result) -> dict:
    """{stage: {category: n}} from the job's ``export`` counters."""
    counts: dict = {}
    for counter in result.metrics().query(beam.metrics.MetricsFilter().with_namespace("export"))["counters"]:
        stage, _, category = counter.key.metric.name.partition("/")
        value = counter.committed if counter.committed is not None else counter.attempted
        counts.setdefault(stage, {})[category] = counts.get(stage, {}).get(category, 0) + value
    return counts


def format_summary(counts: dict, config: ExportConfig) -> str:
    """A table of rows per category: read, (passed, unchecked), (balanced), train, validation."""
    stages = ["read"]
    if config.spec.only_passed:
        stages += ["passed"] + (["unchecked"] if counts.get("unchecked") else [])
    stages += (["balanced"] if config.spec.balance != "none" else []) + list(SPLITS)
    width = max(len(c) for c in (*config.categories, "total"))
    lines = [
        f"export -> {config.out} ({config.format})",
        f"  {'category':<{width}} " + " ".join(f"{s:>10}" for s in stages),
    ]
    for category in (*config.categories, "total"):
        if category == "total":
            values = [sum(counts.get(s, {}).values()) for s in stages]
        else:
            values = [counts.get(s, {}).get(category, 0) for s in stages]
        lines.append(f"  {category:<{width}} " + " ".join(f"{v:>10}" for v in values))
    unchecked = sum(counts.get("unchecked", {}).values())
    if unchecked:
        lines.append(
            f"  warning: --only-passed kept {unchecked} row(s) on which no quality check ran (quality_checks empty); "
            "run the quality stage first for the filter to mean anything"
        )
    return "\n".join(lines)


def _execute(config: ExportConfig, beam_args) -> int:
    if config.overwrite:
        earlier = _existing_export(config.out)
        if earlier:
            FileSystems.delete(earlier)
            _LOGGER.info("--overwrite: deleted %d file(s) of an earlier export", len(earlier))
    pipeline = beam.Pipeline(options=PipelineOptions(beam_args))
    build_pipeline(pipeline, config)
    result = pipeline.run()
    result.wait_until_finish()
    print(format_summary(_counts(result), config))
    return 0


COMMAND = cli.Command("export", DESCRIPTION, add_arguments, to_config, _execute)


def run(argv: Sequence[str] | None = None) -> int:
    """Parse flags, validate, run the export, print the counts. Returns the process exit code."""
    return cli.run_command(COMMAND, argv)


def main(argv: Sequence[str] | None = None) -> int:
    return cli.main_of(COMMAND, argv)


if __name__ == "__main__":
    sys.exit(main())
