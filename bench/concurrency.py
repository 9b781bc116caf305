"""Remote-model throughput: the pipeline against a stand-in with a set mean latency, at several concurrencies.

A Gemini call takes seconds, so throughput comes from keeping many calls in flight. This runs the real
generation pipeline (DirectRunner, ``--model gemini:...`` through google-genai) against the local generateContent
stand-in, which runs in its own process and answers every call after ``--latency`` seconds, fixed or drawn from
a lognormal spread with the same mean (``--latency-spread SIGMA``; real LLM latencies spread with output length).
Every combination of ``--concurrency`` and ``--latency-spread`` is one pipeline run of ``concurrency x --rounds``
calls; ``--sequential-calls N`` adds a run one call at a time. Each run prints, over the ideal
``concurrency / mean latency``:

- steady: calls answered per second from the first call's arrival to the last call's arrival, while the client
  still had calls waiting for a slot. This is the throughput a long job gets, and the goal's measure.
- in flight: the mean number of calls in flight over that span, over the concurrency (Little's law: the same
  figure, counted from the slots instead of the answers).
- whole run: calls per second from the first arrival to the last answer. With a spread this is bounded by the
  run's own tail whatever the client does (the last calls sent include some many times the mean, and the run
  waits for them), so each run also prints what a perfect pool of the same size reaches on the same latencies,
  in the same order.

    .venv/bin/python bench/concurrency.py [--latency 0.5] [--concurrency 32,128] [--latency-spread 0,1] [--rounds 40]

The last line is the smallest steady or in-flight ratio of all the runs (goal: at least 0.9). Each has a small
start-up bias (a renewal count started at 0: the steady count gains about a third of an answer per slot at sigma 1
and loses about half of one when latencies are fixed), so the smaller of the two is the one counted.
"""

from __future__ import annotations

import argparse
import contextlib
import heapq
import io
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pipelines import generate  # noqa: E402


def _measure(latency: float, spread: float, concurrency: int, calls: int, workdir: str, extra=()) -> dict:
    """One pipeline run of ``calls`` elements; the stand-in's stats and the wall time."""
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.support.standins.server",
            "--latency",
            str(latency),
            "--latency-spread",
            str(spread),
            "--adc-dir",
            workdir,
        ],  # fmt: skip
        stdout=subprocess.PIPE,
        text=True,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )
    try:
        url, adc = server.stdout.readline().split()
        os.environ["GOOGLE_APPLICATION_CREDENTIALS"] = adc
        os.environ["NO_GCE_CHECK"] = "True"
        argv = [
            "--output", os.path.join(workdir, f"out-{concurrency}"), "--overwrite",
            "--model", "gemini:bench-model", "--api-base", url, "--project", "bench-project", "--region", "us-central1",
            "--categories", "monolingual-triplet", "--examples-per-symmetric-type", str(calls),
            "--max-concurrent-requests", str(concurrency), "--max-parse-retries", "0", *extra,
        ]  # fmt: skip
        started = time.monotonic()
        with contextlib.redirect_stdout(io.StringIO()):  # the run's summary
            code = generate.run(argv)
        wall = time.monotonic() - started
        with urllib.request.urlopen(url + "/_standin/stats") as response:
            stats = json.load(response)
    finally:
        server.terminate()
        server.wait(timeout=30)
    if code != 0 or stats["calls"] != calls:
        raise SystemExit(f"run failed: exit {code}, {stats['calls']} calls for {calls} elements")
    window = stats["last_finished"] - stats["first_started"]
    fed = stats["last_started"] - stats["first_started"]  # while calls were still waiting to be sent
    return {
        "calls": calls,
        "window": window,
        "steady_rps": stats["answered_by_last_start"] / fed if fed > 0 else 0.0,
        "in_flight": stats["in_flight_by_last_start"],
        "wall": wall,
        "rps": calls / window,
        "perfect_window": _perfect_pool_window(stats["delays"], concurrency),
        "max_in_flight": stats["max_in_flight"],
    }


def _perfect_pool_window(delays: list, slots: int) -> float:
    """Seconds a pool of ``slots`` that never leaves a slot idle takes for calls of these latencies, in order."""
    free_at = [0.0] * slots
    for delay in delays:
        heapq.heappush(free_at, heapq.heappop(free_at) + delay)
    return max(free_at)


def _numbers(kind):
    def parse(text: str) -> list:
        return [kind(v) for v in text.split(",") if v.strip()]

    return parse


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.5, help="Mean seconds per call (default: 0.5).")
    parser.add_argument(
        "--latency-spread",
        type=_numbers(float),
        default=[0.0, 1.0],
        help="Comma-separated sigmas of the lognormal latency (same mean; 0 = fixed) (default: 0,1).",
    )
    parser.add_argument(
        "--concurrency",
        type=_numbers(int),
        default=[32, 128],
        help="Comma-separated --max-concurrent-requests values (default: 32,128).",
    )
    parser.add_argument("--rounds", type=int, default=40, help="Calls per run = concurrency x this (default: 40).")
    parser.add_argument(
        "--sequential-calls", type=int, default=0, help="Also run this many calls one at a time (default: 0, skip)."
    )
    parser.add_argument(
        "--pipeline-args", default="", help="Extra generate flags for every run, space-separated (default: none)."
    )
    args = parser.parse_args(argv)
    extra = args.pipeline_args.split()
    runs = []
    with tempfile.TemporaryDirectory() as workdir:
        if args.sequential_calls:
            one = _measure(args.latency, 0.0, 1, args.sequential_calls, workdir, extra)
            runs.append(("one call at a time", 1, 0.0, one, False))
        for sigma in args.latency_spread:
            for concurrency in args.concurrency:
                run = _measure(args.latency, sigma, concurrency, concurrency * args.rounds, workdir, extra)
                runs.append((f"{concurrency} concurrent, sigma {sigma:g}", concurrency, sigma, run, True))
    print(f"stand-in mean latency {args.latency:g} s")
    ratios = []
    for name, concurrency, _sigma, run, counted in runs:
        ideal = concurrency / args.latency
        steady = run["steady_rps"] / ideal
        if counted:
            ratios.append(min(steady, run["in_flight"] / concurrency))
        print(
            f"{name:>26}: {run['calls']} calls in {run['window']:.2f} s at the stand-in "
            f"({run['wall']:.1f} s pipeline wall), max in flight {run['max_in_flight']}; over {ideal:g} calls/s: "
            f"steady {steady:.3f}, in flight {run['in_flight'] / concurrency:.3f}, whole run "
            f"{run['rps'] / ideal:.3f} (a perfect {concurrency}-slot pool on these latencies: "
            f"{run['calls'] / run['perfect_window'] / ideal:.3f})"
        )
    print(f"{min(ratios):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
