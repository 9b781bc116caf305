"""Shared quota: fixed vs adaptive concurrency, 2 worker processes against a stand-in that allows N requests/s.

The local OpenAI-compatible stand-in runs in its own process with a token bucket shared by all callers
(``--quota`` requests per second, one second's worth saved up, 429 with ``Retry-After`` beyond it) and a fixed
latency. The generation pipeline runs twice in the same invocation, each time on the DirectRunner with
``--direct_num_workers 2 --direct_running_mode multi_processing`` (two worker processes, each with its own call
pool) and ``--max-concurrent-requests`` per process: once with ``--request-concurrency fixed`` (that many in flight
per process, as before adaptive concurrency) and once with ``adaptive``. For each it prints the achieved rate of
answered calls over the quota (at the stand-in, first call to last answer), the share of calls answered 429, and
the elements lost or duplicated in the output (every element must be a row or a dead letter, once).

    .venv/bin/python bench/quota.py [--n 3000] [--quota 20] [--latency 0.5] [--concurrency 32]

The last line is the adaptive run's ``achieved/quota=... share_429=... lost=... duplicated=...`` (goal: >= 0.9,
<= 0.05, 0, 0).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from pipelines import generate  # noqa: E402
from tests.support.helpers import read_table  # noqa: E402

CATEGORY = "monolingual-triplet"


def _run(mode: str, args: argparse.Namespace, workdir: str) -> dict:
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.support.standins.server",
            "--latency",
            str(args.latency),
            "--quota-rate",
            str(args.quota),
        ],  # fmt: skip
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    out = os.path.join(workdir, mode)
    try:
        url = server.stdout.readline().split()[0]
        argv = [
            "--output", out, "--model", "openai:bench-model", "--api-base", url + "/v1",
            "--api-key-env", "EMBEDGEN_BENCH_KEY", "--categories", CATEGORY,
            "--examples-per-symmetric-type", str(args.n), "--max-parse-retries", "0",
            "--max-concurrent-requests", str(args.concurrency), "--request-concurrency", mode,
            "--direct_num_workers", "2", "--direct_running_mode", "multi_processing",
        ]  # fmt: skip
        started = time.monotonic()
        with contextlib.redirect_stdout(io.StringIO()):
            code = generate.run(argv)
        wall = time.monotonic() - started
        with urllib.request.urlopen(url + "/_standin/stats") as response:
            stats = json.load(response)
    finally:
        server.terminate()
        server.wait(timeout=30)
    rows = read_table(out, CATEGORY)
    dead = read_table(out, "dead_letter")
    ids = [r["example_id"] for r in rows] + [d["element_id"] for d in dead]
    answered = stats["by_fault"].get("ok", 0)
    refused = stats["by_fault"].get("quota", 0)
    window = stats["last_finished"] - stats["first_started"]
    return {
        "mode": mode,
        "code": code,
        "wall": wall,
        "calls": stats["calls"],
        "answered": answered,
        "refused": refused,
        "window": window,
        "ratio": answered / window / args.quota,
        "share_429": refused / max(1, stats["calls"]),
        "rows": len(rows),
        "dead": len(dead),
        "lost": args.n - len(set(ids)),
        "duplicated": len(ids) - len(set(ids)),
        "max_in_flight": stats["max_in_flight"],
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3000, help="Elements (one call each when answered; default: 3000).")
    parser.add_argument("--quota", type=float, default=20.0, help="Requests/s the stand-in allows (default: 20).")
    parser.add_argument("--latency", type=float, default=0.5, help="Seconds per answered call (default: 0.5).")
    parser.add_argument(
        "--concurrency", type=int, default=32, help="--max-concurrent-requests per worker process (default: 32)."
    )
    parser.add_argument(
        "--modes", default="fixed,adaptive", help="--request-concurrency values to run, in order (default: both)."
    )
    args = parser.parse_args(argv)
    # The worker processes import this checkout's code and read the key variable.
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")]))
    os.environ.setdefault("EMBEDGEN_BENCH_KEY", "bench-key")
    with tempfile.TemporaryDirectory() as workdir:
        runs = [_run(mode, args, workdir) for mode in args.modes.split(",")]
    print(
        f"quota {args.quota:g} requests/s, latency {args.latency:g} s, {args.n} elements, 2 worker processes, "
        f"--max-concurrent-requests {args.concurrency}"
    )
    for run in runs:
        print(
            f"{run['mode']:>9}: {run['calls']} calls ({run['answered']} answered, {run['refused']} answered 429) in "
            f"{run['window']:.1f} s at the stand-in ({run['wall']:.1f} s pipeline wall, exit {run['code']}), "
            f"max in flight {run['max_in_flight']}; rows {run['rows']}, dead letters {run['dead']}"
        )
    for run in runs:
        print(
            f"{run['mode']}: achieved/quota={run['ratio']:.3f} share_429={run['share_429']:.3f} "
            f"lost={run['lost']} duplicated={run['duplicated']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
