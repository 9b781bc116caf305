"""Quality of an embedded-model run: pass rate per check, duplicate rates, rows whose negative beats the positive.

Runs `embedgen generate` on the embedded model (SmolLM2-135M) with the embedding checks on, then counts the
Avro output directly (the same counting as `embedgen report`). Or pass --input to measure an existing output.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/quality.py                 # small run, a few minutes here
    .venv/bin/python bench/quality.py --input ./output                  # an earlier run's output
    .venv/bin/python bench/quality.py --languages en                    # any other flag goes to generate

Besides the pass rates it prints the rows with an echoed field name, dead letters by reason, rows per second of
generation (written, and passing every check) and the completion tokens decoded against those in written rows.
The last line is the share of rows (with a negative) whose negative beats their positive.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import apache_beam as beam  # noqa: E402
from apache_beam.metrics.metric import MetricsFilter  # noqa: E402
from apache_beam.options.pipeline_options import PipelineOptions  # noqa: E402

from pipelines.options import parse_args, to_config  # noqa: E402
from pipelines.report import compute_stats, read_rows  # noqa: E402


def _generate(output: str, extra: list[str]) -> dict:
    """Run the generation job into ``output``; returns its embedgen counters."""
    argv = ["--output", output, "--max-tokens", "256", "--embedding-checks", "--mine-negatives", "2", *extra]
    args, beam_args = parse_args(argv)
    config = to_config(args)
    from pipelines.generate import build_pipeline

    pipeline = beam.Pipeline(options=PipelineOptions(beam_args))
    build_pipeline(pipeline, config)
    result = pipeline.run()
    result.wait_until_finish()
    counters = {}
    for item in result.metrics().query(MetricsFilter())["counters"]:
        if item.key.metric.namespace == "embedgen":
            counters[item.key.metric.name] = counters.get(item.key.metric.name, 0) + (item.committed or 0)
    return counters


def _rows_with(tables: dict, prefix: str) -> int:
    """Rows (written or rejected) with at least one failed check whose name starts with ``prefix``."""
    return sum(
        any(name.startswith(prefix) for name in row["quality_failures"])
        for part in ("written", "rejected")
        for rows in tables[part].values()
        for row in rows
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", default=None, help="Measure this existing output directory instead of generating.")
    parser.add_argument("--tasks-per-category", default="3")
    parser.add_argument("--examples-per-symmetric-type", default="3")
    parser.add_argument("--seed", default="7")
    args, generate_flags = parser.parse_known_args(argv)

    counters = {}
    seconds = None
    if args.input:
        output = args.input
    else:
        output = tempfile.mkdtemp(prefix="embedgen-bench-quality-")
        started = time.monotonic()
        extra = [
            "--tasks-per-category", args.tasks_per_category,
            "--examples-per-symmetric-type", args.examples_per_symmetric_type, "--seed", args.seed, *generate_flags,
        ]  # fmt: skip
        counters = _generate(output, extra)
        seconds = time.monotonic() - started
        print(f"generated into {output} in {seconds:.0f} s")

    stats = compute_stats(read_rows(output))
    generated = stats["rows_generated"]
    print(f"rows: {generated} generated ({stats['rows_written']} written, {stats['rows_rejected']} rejected), "
          f"{stats['dead_letters']} dead-lettered")  # fmt: skip
    print(f"rows passing every check: {stats['rows_passing']}/{generated}")
    echoed = _rows_with(read_rows(output), "echo:")
    print(f"rows with an echo: {echoed}/{generated}")
    print("dead letters by reason:")
    for reason, n in stats["dead_letters_by_reason"].items():
        print(f"  {reason:<40}{n:>5}")
    if seconds:
        print(
            f"rows per second: {generated / seconds:.4f} written, {stats['rows_passing'] / seconds:.4f} passing "
            f"every check ({seconds:.0f} s wall)"
        )
    if counters:
        decoded = counters.get("tokens/replies_completion", 0)
        kept = counters.get("tokens/completion", 0)
        capped = sum(v for k, v in counters.items() if k.startswith("replies_at_cap"))
        share = kept / decoded if decoded else float("nan")
        print(
            f"completion tokens: {decoded} decoded, {kept} in written rows = {share:.3f}; "
            f"{counters.get('replies', 0)} replies, {capped} hit their token cap"
        )
    print("pass rate per check kind:")
    for kind, v in stats["check_kinds"].items():
        ok = v["ran"] - v["failed"]
        print(f"  {kind:<26}{ok:>5}/{v['ran']:<5}{ok / v['ran'] if v['ran'] else float('nan'):>8.3f}")
    print("pass rate per check:")
    for category, checks in stats["checks"].items():
        for name, v in checks.items():
            ok = v["ran"] - v["failed"]
            print(f"  {category:<22}{name:<44}{ok:>4}/{v['ran']:<4}{ok / v['ran']:>7.3f}")
    print(f"duplicate examples: {stats['duplicates']}/{generated} = {stats['duplicates'] / max(generated, 1):.3f}")
    if counters:
        returned = counters.get("brainstorm/tasks_returned", 0)
        near = sum(v for k, v in counters.items() if k.startswith("brainstorm/near_duplicates/"))
        print(f"near-duplicate brainstormed tasks: {near}/{returned} = {near / max(returned, 1):.3f}")
    print(f"mined negatives: {stats['mined_negatives']} on {stats['rows_with_mined_negatives']} rows")
    both, beaten = stats["rows_with_both_similarities"], stats["negative_beats_positive"]
    print(f"negative beats positive: {beaten}/{both} = {beaten / both if both else float('nan'):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
