"""The quality flags of `embedgen generate` (docs/quality.md) -> a validated QualityConfig (their defaults' source)."""

from __future__ import annotations

import argparse
import importlib.util

from transforms.config import ConfigError, at_least
from transforms.quality.stage import FILTERS, QualityConfig

__all__ = ["add_arguments", "settings_from_args"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The "quality" flag group; every default is QualityConfig's."""
    group = parser.add_argument_group("quality (docs/quality.md)")
    group.add_argument(
        "--quality-filter",
        choices=FILTERS,
        default=QualityConfig.filter,
        help="flag (default): keep rows that fail a check, marked in quality_pass and quality_failures; "
        "reject: write them to <output>/rejected/ instead. Duplicates go to rejected/ either way.",
    )
    group.add_argument(
        "--word-count-tolerance",
        type=float,
        default=QualityConfig.word_count_tolerance,
        help="'at least N words' passes from N*(1-t) up, 'about N words' within N*(1-t)..N*(1+t) "
        "(default: %(default)s).",
    )
    group.add_argument(
        "--task-dedup-threshold",
        type=float,
        default=QualityConfig.task_dedup_threshold,
        help="Word-bigram Jaccard similarity at which two brainstormed tasks are near-duplicates (default: "
        "%(default)s; 1 keeps all but exact repeats).",
    )
    group.add_argument(
        "--example-dedup-threshold",
        type=float,
        default=QualityConfig.example_dedup_threshold,
        help="Word-trigram Jaccard similarity (anchor + positive) at which two examples are duplicates "
        "(default: %(default)s).",
    )
    group.add_argument(
        "--embedding-checks",
        action="store_true",
        default=QualityConfig.embedding_checks,
        help="Store query-positive and query-negative similarities and flag rows whose negative wins. "
        "Needs the quality extra.",
    )
    group.add_argument(
        "--embedding-model",
        default=QualityConfig.embedding_model,
        help="Installed package that ships a sentence-transformers model, or a model directory (default: %(default)s).",
    )
    group.add_argument(
        "--mine-negatives",
        type=int,
        default=QualityConfig.mine_negatives,
        help="With --embedding-checks: extra hard negatives mined per anchor from other rows (default: %(default)s).",
    )
    group.add_argument(
        "--mined-negative-ceiling",
        type=float,
        default=QualityConfig.mined_negative_ceiling,
        help="Mined candidates above this fraction of sim(anchor, positive) are dropped (default: %(default)s).",
    )


def settings_from_args(args: argparse.Namespace) -> QualityConfig:
    """Validated QualityConfig from the parsed flags; ConfigError names the flag."""
    for flag, value in (
        ("--task-dedup-threshold", args.task_dedup_threshold),
        ("--example-dedup-threshold", args.example_dedup_threshold),
        ("--mined-negative-ceiling", args.mined_negative_ceiling),
    ):
        if not 0.0 < value <= 1.0:
            raise ConfigError(f"{flag} must be in (0, 1], got {value}")
    if not 0.0 <= args.word_count_tolerance < 1.0:
        raise ConfigError(f"--word-count-tolerance must be in [0, 1), got {args.word_count_tolerance}")
    at_least("--mine-negatives", args.mine_negatives, 0)
    if args.mine_negatives and not args.embedding_checks:
        raise ConfigError("--mine-negatives needs --embedding-checks (negatives are mined by embedding similarity)")
    if args.embedding_checks:
        if importlib.util.find_spec("sentence_transformers") is None:
            raise ConfigError("--embedding-checks needs the quality extra: pip install -e '.[quality]'")
        from transforms.quality.embeddings import resolve_model_path

        try:
            resolve_model_path(args.embedding_model)
        except FileNotFoundError as err:
            raise ConfigError(f"--embedding-model: {err}") from None
    return QualityConfig(
        filter=args.quality_filter,
        word_count_tolerance=args.word_count_tolerance,
        task_dedup_threshold=args.task_dedup_threshold,
        example_dedup_threshold=args.example_dedup_threshold,
        embedding_checks=args.embedding_checks,
        embedding_model=args.embedding_model,
        mine_negatives=args.mine_negatives,
        mined_negative_ceiling=args.mined_negative_ceiling,
        seed=args.seed,
    )
