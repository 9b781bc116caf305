"""How time and peak memory grow with the number of examples: runs at N, 2N and 4N with a fast stand-in model.

Each run is a separate process (the whole generation graph on the DirectRunner, all six task types, quality checks,
Avro output), answered by a deterministic fake model whose texts vary per element like real replies, so the figures
are the pipeline's own cost. Time is the
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


def _diverse_reply(request) -> str:
    """A valid reply whose texts differ like real ones: 20-60 words drawn per element from a 5,000-word vocabulary.

    The tests' fake answers every element with the same template sentence; near-identical texts put every row in
    every MinHash band bucket of the duplicate check, which is not what generated text looks like.
    """
    import json

    from transforms import recipe
    from transforms.elements import STAGE_BRAINSTORM, element_rng

    rng = element_rng(0, request.element.element_id, "bench-reply")
    words = [f"w{rng.randrange(5000)}" for _ in range(200)]
    if request.element.stage == STAGE_BRAINSTORM:
        return json.dumps([" ".join(words[i * 10 : i * 10 + 10]) for i in range(5)])
    keys = recipe.get_task_type(request.element.category).output_keys
    return json.dumps({k: " ".join(words[i * 60 : i * 60 + rng.randint(20, 60)]) for i, k in enumerate(keys)})


def _child(n: int, output: str) -> None:
    sys.path.insert(0, ROOT)
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    from pipelines.generate import build_pipeline
    from pipelines.options import parse_args, to_config
    from tests.support.fakes import FakeHandler

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
        build_pipeline(p, to_config(args), FakeHandler(_diverse_reply))


def _measure(n: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp, tempfile.TemporaryFile() as log:
        started = time.perf_counter()
        # The child's log goes to a file: an unread pipe fills up and stalls the child.
        proc = subprocess.Popen(
            [sys.executable, __file__, "--child", str(n), tmp], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log
        )
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - started
        if status != 0:
            log.seek(0)
            raise SystemExit(f"run with N={n} failed:\n{log.read().decode(errors='replace')[-3000:]}")
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
