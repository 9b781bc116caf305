"""Remote-model throughput: the pipeline against a stand-in with fixed latency, concurrent vs one call at a time.

A Gemini call takes seconds, so throughput comes from keeping many calls in flight. This runs the real
generation pipeline (DirectRunner, ``--model gemini:...`` through google-genai) against the local generateContent
stand-in, which runs in its own process and answers every call after exactly ``--latency`` seconds. It measures,
at the stand-in, calls per second from the first call's arrival to the last answer, and divides by the ideal
``concurrency / latency``. The same is printed for one call at a time (``--max-concurrent-requests 1``).

    .venv/bin/python bench/concurrency.py [--latency 0.5] [--concurrency 32] [--batches 20]

The last line is the ratio at the chosen concurrency (goal: at least 0.8 at 32).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pipelines import generate  # noqa: E402


def _measure(latency: float, concurrency: int, calls: int, workdir: str) -> dict:
    """One pipeline run of ``calls`` elements; the stand-in's stats and the wall time."""
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.support.standins.server", "--latency", str(latency), "--adc-dir", workdir],
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
            "--max-concurrent-requests", str(concurrency), "--max-parse-retries", "0",
        ]  # fmt: skip
        started = time.monotonic()
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
    return {
        "calls": calls,
        "window": window,
        "wall": wall,
        "rps": calls / window,
        "max_in_flight": stats["max_in_flight"],
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--latency", type=float, default=0.5, help="Seconds the stand-in takes per call (default: 0.5)."
    )
    parser.add_argument("--concurrency", type=int, default=32, help="--max-concurrent-requests (default: 32).")
    parser.add_argument(
        "--batches", type=int, default=20, help="Full batches of calls in the concurrent run (default: 20)."
    )
    parser.add_argument(
        "--sequential-calls", type=int, default=32, help="Calls in the one-at-a-time run (default: 32)."
    )
    args = parser.parse_args(argv)
    ideal = args.concurrency / args.latency
    with tempfile.TemporaryDirectory() as workdir:
        one = _measure(args.latency, 1, args.sequential_calls, workdir)
        many = _measure(args.latency, args.concurrency, args.concurrency * args.batches, workdir)
    print(f"stand-in latency {args.latency:g} s; ideal at {args.concurrency} in flight: {ideal:.1f} calls/s")
    for name, run, concurrency in (
        ("one call at a time", one, 1),
        (f"{args.concurrency} concurrent", many, args.concurrency),
    ):
        print(
            f"{name:>20}: {run['calls']} calls in {run['window']:.2f} s at the stand-in "
            f"({run['wall']:.1f} s pipeline wall), {run['rps']:.2f} calls/s, max in flight {run['max_in_flight']}; "
            f"calls/s / ({args.concurrency} / latency) = "
            f"{run['rps'] / ideal:.3f}, / ({concurrency} / latency) = {run['rps'] * args.latency / concurrency:.3f}"
        )
    print(f"{many['rps'] / ideal:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
