"""The training job: `embedgen train` / `python -m pipelines.train` (fine-tune an embedding model on exported rows)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import time
from collections.abc import Sequence

from pipelines import cli
from transforms.config import ConfigError, at_least
from transforms.training.export_rows import balance_rank
from transforms.training.trainer import (
    DEFAULT_BASE_MODEL,
    PACKAGED_MODELS,
    TrainSettings,
    resolve_base_model,
    split_files,
)

__all__ = ["COMMAND", "TrainConfig", "add_arguments", "to_config", "run", "main", "format_metrics", "RESULTS_FILE"]

_LOGGER = logging.getLogger(__name__)

RESULTS_FILE = "embedgen_train.json"
_METRICS = (("recall@1", "recall@1"), ("mrr@10", "MRR@10"), ("ndcg@10", "nDCG@10"))


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """The validated, immutable settings of one training run."""

    data: str
    base_model: str
    base_model_path: str
    out: str
    settings: TrainSettings
    max_seq_length: int | None
    max_train_rows: int | None
    eval_batch_size: int
    threads: int | None


DESCRIPTION = (
    "Fine-tune a small sentence-transformers embedding model on the train split of `embedgen export` "
    "(MultipleNegativesRankingLoss: in-batch and hard negatives) on CPU, and measure retrieval on the "
    "validation split before and after (recall@1, MRR@10, nDCG@10). Nothing is fetched from a model hub."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Every flag of `embedgen train`; the hyper-parameters' defaults are TrainSettings'."""
    parser.add_argument(
        "--data",
        required=True,
        help="Directory written by `embedgen export` (train/ and validation/ of jsonl or parquet).",
    )
    parser.add_argument(
        "--base-model",
        default=DEFAULT_BASE_MODEL,
        help=f"A packaged model ({', '.join(PACKAGED_MODELS)}) or a sentence-transformers model directory "
        "(default: %(default)s).",
    )
    parser.add_argument(
        "--out", required=True, help="Directory for the fine-tuned model and its metrics (embedgen_train.json)."
    )
    parser.add_argument("--overwrite", action="store_true", help="Write into --out even if it is not empty.")
    parser.add_argument(
        "--epochs",
        type=float,
        default=TrainSettings.epochs,
        help="Passes over the training rows (default: %(default)s).",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=TrainSettings.batch_size,
        help="Rows per batch; every other row of a batch is an in-batch negative (default: %(default)s).",
    )
    parser.add_argument(
        "--learning-rate",
        type=float,
        default=TrainSettings.learning_rate,
        help="Peak learning rate (default: %(default)s).",
    )
    parser.add_argument(
        "--warmup-fraction",
        type=float,
        default=TrainSettings.warmup_fraction,
        help="Share of the steps spent warming the learning rate up, in [0, 1) (default: %(default)s).",
    )
    parser.add_argument(
        "--no-hard-negatives",
        dest="hard_negatives",
        action="store_false",
        help="Train on (anchor, positive) pairs only, ignoring the negatives.",
    )
    parser.add_argument(
        "--max-seq-length",
        type=int,
        default=None,
        help="Truncate texts to this many tokens (default: the base model's own limit).",
    )
    parser.add_argument(
        "--max-train-rows",
        type=int,
        default=None,
        help="Train on at most this many rows, chosen by a sha256 of the example id (default: all).",
    )
    parser.add_argument(
        "--eval-batch-size",
        type=int,
        default=32,
        help="Texts per encoding batch during evaluation (default: %(default)s).",
    )
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice).")
    parser.add_argument(
        "--seed",
        type=int,
        default=TrainSettings.seed,
        help="Seed of the trainer's shuffling and initialisation (default: %(default)s).",
    )


def _at_least(flag: str, value, minimum) -> None:
    if value is not None:
        at_least(flag, value, minimum)


def to_config(args: argparse.Namespace) -> TrainConfig:
    """Validate parsed flags before anything is loaded; ConfigError names the flag and the allowed values."""
    if not os.path.isdir(args.data):
        raise ConfigError(f"--data {args.data} is not a directory; give the --out directory of `embedgen export`")
    for split in ("train", "validation"):
        if not split_files(args.data, split)[1]:
            raise ConfigError(
                f"--data {args.data} has no {split}/*.jsonl or {split}/*.parquet files; give the --out directory of "
                "`embedgen export`" + (" run with --validation-fraction above 0" if split == "validation" else "")
            )
    if not args.epochs > 0:
        raise ConfigError(f"--epochs must be positive, got {args.epochs}")
    _at_least("--batch-size", args.batch_size, 2)
    if not args.learning_rate > 0:
        raise ConfigError(f"--learning-rate must be positive, got {args.learning_rate}")
    if not 0.0 <= args.warmup_fraction < 1.0:
        raise ConfigError(f"--warmup-fraction must be in [0, 1), got {args.warmup_fraction}")
    _at_least("--max-seq-length", args.max_seq_length, 8)
    _at_least("--max-train-rows", args.max_train_rows, 1)
    _at_least("--eval-batch-size", args.eval_batch_size, 1)
    _at_least("--threads", args.threads, 1)
    try:
        base_path = resolve_base_model(args.base_model)
    except ValueError as err:
        raise ConfigError(f"--base-model: {err}") from None
    if os.path.exists(args.out) and (not os.path.isdir(args.out) or os.listdir(args.out)) and not args.overwrite:
        raise ConfigError(f"--out {args.out} exists and is not empty; pass --overwrite or choose another --out")
    return TrainConfig(
        data=args.data,
        base_model=args.base_model,
        base_model_path=base_path,
        out=args.out,
        settings=TrainSettings(
            epochs=args.epochs,
            batch_size=args.batch_size,
            learning_rate=args.learning_rate,
            warmup_fraction=args.warmup_fraction,
            seed=args.seed,
            hard_negatives=args.hard_negatives,
        ),
        max_seq_length=args.max_seq_length,
        max_train_rows=args.max_train_rows,
        eval_batch_size=args.eval_batch_size,
        threads=args.threads,
    )


def format_metrics(before: dict, after: dict) -> str:
    """A before/after table, overall and per category, with the ratio after/before of each metric."""
    lines = [
        f"held-out retrieval: {before['queries']} validation queries over {before['documents']} documents",
        f"  {'':<28}" + "".join(f"{label:>10}" for _, label in _METRICS),
    ]

    def row(name: str, values: dict) -> str:
        return f"  {name:<28}" + "".join(f"{values[key]:>10.3f}" for key, _ in _METRICS)

    lines += [row("before", before["overall"]), row("after", after["overall"])]
    for category, values in before["by_category"].items():
        lines.append(row(f"{category} before", values) + f"   ({values['queries']} queries)")
        lines.append(row(f"{category} after", after["by_category"][category]))
    return "\n".join(lines)


def _ratio(after: float, before: float) -> str:
    return f"{after / before:.3f}" if before > 0 else "n/a"


def _set_offline() -> None:
    """Nothing is fetched from a model hub: set before transformers / huggingface_hub are imported."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["HF_DATASETS_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _execute(config: TrainConfig, beam_args=()) -> int:
    _set_offline()
    import tempfile

    import torch
    from sentence_transformers import SentenceTransformer

    from transforms.training.trainer import evaluate, fine_tune, read_split

    if config.threads:
        torch.set_num_threads(config.threads)
    started = time.monotonic()
    train_rows = read_split(config.data, "train")
    validation_rows = read_split(config.data, "validation")
    if not train_rows or not validation_rows:
        empty = "train" if not train_rows else "validation"
        raise ConfigError(f"--data {config.data}: the {empty} split has no rows")
    if config.max_train_rows is not None and len(train_rows) > config.max_train_rows:
        train_rows = sorted(train_rows, key=lambda r: balance_rank(r["example_id"]))[: config.max_train_rows]
    model = SentenceTransformer(config.base_model_path, device="cpu")
    if config.max_seq_length is not None:
        model.max_seq_length = config.max_seq_length
    _LOGGER.info("evaluating %s on %d validation rows", config.base_model, len(validation_rows))
    before = evaluate(model, validation_rows, config.eval_batch_size)
    _LOGGER.info("fine-tuning on %d rows", len(train_rows))
    with tempfile.TemporaryDirectory(prefix="embedgen-train-") as work_dir:
        training = fine_tune(model, train_rows, config.settings, work_dir)
    after = evaluate(model, validation_rows, config.eval_batch_size)
    os.makedirs(config.out, exist_ok=True)
    model.save(config.out)
    results = {
        "base_model": config.base_model,
        "data": os.path.abspath(config.data),
        "settings": dataclasses.asdict(config.settings),
        "max_seq_length": model.max_seq_length,
        "train_rows": len(train_rows),
        "validation_rows": len(validation_rows),
        "training": training,
        "before": before,
        "after": after,
        "seconds": round(time.monotonic() - started, 1),
    }
    with open(os.path.join(config.out, RESULTS_FILE), "w", encoding="utf-8") as handle:
        json.dump(results, handle, indent=2)
    print(format_metrics(before, after))
    print(f"trained {training['steps']} steps on {len(train_rows)} rows; model and {RESULTS_FILE} in {config.out}")
    b, a = before["overall"], after["overall"]
    print("after/before: " + ", ".join(f"{label} {_ratio(a[key], b[key])}" for key, label in _METRICS))
    return 0


COMMAND = cli.Command("train", DESCRIPTION, add_arguments, to_config, _execute, beam=False)


def run(argv: Sequence[str] | None = None) -> int:
    """Parse flags, validate, evaluate, fine-tune, evaluate again, save. Returns the process exit code."""
    return cli.run_command(COMMAND, argv)


def main(argv: Sequence[str] | None = None) -> int:
    return cli.main_of(COMMAND, argv)


if __name__ == "__main__":
    sys.exit(main())
