"""Generate (embedded model, small) -> export -> train on this machine; prints held-out retrieval before and after."""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time

__all__ = ["main"]

_LOGGER = logging.getLogger(__name__)
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_METRICS = (("recall@1", "recall@1"), ("mrr@10", "MRR@10"), ("ndcg@10", "nDCG@10"))


def _step(name: str, argv: list) -> float:
    """Runs ``python -m <module> argv`` from the repository root; returns its wall time. Exits if it fails."""
    started = time.monotonic()
    print(f"[{name}] {' '.join(argv)}", flush=True)
    code = subprocess.call([sys.executable, "-m", *argv], cwd=_ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    elapsed = time.monotonic() - started
    print(f"[{name}] exit {code} after {elapsed:.0f} s", flush=True)
    if code != 0:
        sys.exit(f"train_eval: {name} failed with exit code {code}")
    return elapsed


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--work-dir",
        default="/tmp/embedgen-train-eval",
        help="Where generated data, export and model go (default: %(default)s).",
    )
    parser.add_argument(
        "--reuse-generated", action="store_true", help="Skip generation when --work-dir/generated already holds a run."
    )
    parser.add_argument(
        "--brainstorm-rounds",
        type=int,
        default=1,
        help="Generate: brainstorm calls per category; the 135M model lists few tasks per call (default: %(default)s).",
    )
    parser.add_argument(
        "--tasks-per-category",
        type=int,
        default=6,
        help="Generate: tasks kept per brainstormed category (default: %(default)s).",
    )
    parser.add_argument(
        "--examples-per-task", type=int, default=2, help="Generate: examples per task (default: %(default)s)."
    )
    parser.add_argument(
        "--examples-per-symmetric-type",
        type=int,
        default=6,
        help="Generate: STS and bitext examples each (default: %(default)s).",
    )
    parser.add_argument(
        "--languages",
        default="en,de",
        help="Generate: language pool; the base model is English-centred (default: %(default)s).",
    )
    parser.add_argument(
        "--max-tokens", type=int, default=256, help="Generate: tokens per reply (default: %(default)s)."
    )
    parser.add_argument("--seed", type=int, default=42, help="Generate: run seed (default: %(default)s).")
    parser.add_argument(
        "--validation-fraction", type=float, default=0.3, help="Export: held-out share (default: %(default)s)."
    )
    parser.add_argument(
        "--split-by",
        choices=("example_id", "task"),
        default="example_id",
        help="Export: split by example id, or by task so that held-out queries are unseen (default: %(default)s).",
    )
    parser.add_argument(
        "--only-passed", action="store_true", help="Export: keep only rows that passed the quality checks."
    )
    parser.add_argument("--epochs", type=float, default=1.0, help="Train: epochs (default: %(default)s).")
    parser.add_argument("--batch-size", type=int, default=8, help="Train: batch size (default: %(default)s).")
    parser.add_argument(
        "--max-seq-length", type=int, default=128, help="Train: tokens per text (default: %(default)s)."
    )
    return parser


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    generated = os.path.join(args.work_dir, "generated")
    exported = os.path.join(args.work_dir, "export")
    model = os.path.join(args.work_dir, "model")
    times = {}
    if args.reuse_generated and os.path.isdir(generated):
        print(f"[generate] reusing {generated}")
    else:
        times["generate"] = _step(
            "generate",
            [
                "pipelines.generate",
                "--output", generated, "--overwrite",
                "--brainstorm-rounds", str(args.brainstorm_rounds),
                "--tasks-per-category", str(args.tasks_per_category),
                "--examples-per-task", str(args.examples_per_task),
                "--examples-per-symmetric-type", str(args.examples_per_symmetric_type),
                "--languages", args.languages,
                "--max-tokens", str(args.max_tokens),
                "--seed", str(args.seed),
            ],
        )  # fmt: skip
    export_argv = ["pipelines.export", "--input", generated, "--out", exported, "--overwrite", "--num-shards", "1"]
    export_argv += ["--validation-fraction", str(args.validation_fraction), "--split-by", args.split_by]
    times["export"] = _step("export", export_argv + (["--only-passed"] if args.only_passed else []))
    train_argv = ["pipelines.train", "--data", exported, "--out", model, "--overwrite", "--epochs", str(args.epochs)]
    train_argv += ["--batch-size", str(args.batch_size), "--max-seq-length", str(args.max_seq_length)]
    times["train"] = _step("train", train_argv)

    with open(os.path.join(model, "embedgen_train.json"), encoding="utf-8") as handle:
        results = json.load(handle)
    before, after = results["before"]["overall"], results["after"]["overall"]
    print(
        f"train_eval: {results['train_rows']} train rows, {results['validation_rows']} held-out queries over "
        f"{results['before']['documents']} documents; " + ", ".join(f"{k} {v:.0f} s" for k, v in times.items())
    )
    for key, label in _METRICS:
        ratio = f"{after[key] / before[key]:.3f}" if before[key] > 0 else "n/a"
        print(f"  {label:<9} before {before[key]:.3f}  after {after[key]:.3f}  after/before {ratio}")
    ratio = after["ndcg@10"] / before["ndcg@10"] if before["ndcg@10"] > 0 else float("nan")
    print(f"nDCG@10 after/before on the held-out split: {ratio:.3f}")
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    sys.exit(main())
