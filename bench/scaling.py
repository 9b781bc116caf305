"""How time and peak memory grow with the number of examples: runs at N, 2N and 4N with a fast stand-in model.

Each run is a separate process (the whole generation graph on the DirectRunner, all six task types, Avro output),
answered by the deterministic fake model of the tests, so the figures are the pipeline's own cost. Time is the
child's wall time; peak memory is its maximum resident set size. Goals: at most 2.1x time per doubling and at most
1.2x peak memory from N to 4N. The last line printed holds the ratios.

    .venv/bin/python bench/scaling.py [--n 1000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _child(n: int, output: str) -> None:
    sys.path.insert(0, ROOT)
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    from pipelines.generate import build_pipeline
    from pipelines.options import parse_args, to_config
    from tests.fakes import FakeHandler

    # The fake brainstorms 5 tasks per category: 4 categories x 5 tasks x (n / 40) = n / 2 examples,
    # plus n / 4 of each symmetric type.
    argv = [
        "--output",
        output,
        "--tasks-per-category",
        "5",
        "--examples-per-task",
        str(n // 40),
        "--examples-per-symmetric-type",
        str(n // 4),
    ]
    args, beam_args = parse_args(argv)
    with beam.Pipeline(options=PipelineOptions(beam_args)) as p:
        build_pipeline(p, to_config(args), FakeHandler())


def _measure(n: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, __file__, "--child", str(n), tmp],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - started
        if status != 0:
            raise SystemExit(f"run with N={n} failed:\n{proc.stderr.read().decode()[-3000:]}")
        return elapsed, usage.ru_maxrss / 1024.0  # MiB (ru_maxrss is in KiB on Linux)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="examples in the smallest run")
    parser.add_argument("--child", nargs=2, metavar=("N", "OUTPUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(int(args.child[0]), args.child[1])
        return
    results = {}
    for n in (args.n, 2 * args.n, 4 * args.n):
        results[n] = _measure(n)
        print(f"N = {n:6d}: {results[n][0]:7.1f} s wall, peak RSS {results[n][1]:7.1f} MiB")
    n1, n2, n4 = args.n, 2 * args.n, 4 * args.n
    t21, t42 = results[n2][0] / results[n1][0], results[n4][0] / results[n2][0]
    m41 = results[n4][1] / results[n1][1]
    print(f"time ratios per doubling: {t21:.2f}x (N->2N), {t42:.2f}x (2N->4N); peak memory ratio N->4N: {m41:.2f}x")


if __name__ == "__main__":
    main()
