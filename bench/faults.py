"""Nothing lost, nothing doubled: 1,000 requests through a faulty local model service.

The whole generation pipeline runs against the local OpenAI-compatible stand-in (tests/support/standins), which fails
about 30% of the prompts' first calls with a transient fault (429, 500, 503, dropped connection, hang past the
timeout) and about 10% with a malformed reply (prose, truncated JSON, missing keys, empty text). Every request
must end as exactly one row or one dead letter. The last line printed is:
``requested=… written=… dead_lettered=… duplicates=… lost=…``.

    .venv/bin/python bench/faults.py [--n 1000]
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import hashlib
import io
import os
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pipelines import generate  # noqa: E402
from tests.support.helpers import read_table  # noqa: E402
from tests.support.standins import Fault, StandIn  # noqa: E402

CATEGORIES = ("monolingual-triplet", "bitext-retrieval")

# (fault, share of prompts whose first call gets it)
TRANSIENT = (("429", 0.10), ("500", 0.07), ("503", 0.07), ("drop", 0.03), ("hang", 0.03))
MALFORMED = (("non_json", 0.025), ("truncated", 0.025), ("missing_keys", 0.025), ("empty", 0.025))


def _first_call_in_slice(low: float, high: float):
    """The first call of each request (prompt and seed) whose hash falls in [low, high).

    Several elements can share a prompt text (symmetric types have only their attributes in the prompt), so a
    request is the prompt together with its sampling seed; a retry of the same request is not faulted again.
    Disjoint slices give each request at most one fault kind.
    """
    seen, lock = set(), threading.Lock()

    def chosen(call) -> bool:
        key = f"{call.prompt}\x1f{call.seed}"
        value = int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:4], "big") / 2**32
        if not low <= value < high:
            return False
        with lock:
            if key in seen:
                return False
            seen.add(key)
            return True

    return chosen


def _faults() -> list:
    faults, low = [], 0.0
    for kind, share in TRANSIENT + MALFORMED:
        faults.append(Fault(kind, match=_first_call_in_slice(low, low + share)))
        low += share
    return faults


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="requests (split over two task types)")
    args = parser.parse_args()
    per_type = args.n // len(CATEGORIES)
    requested = per_type * len(CATEGORIES)
    os.environ.setdefault("EMBEDGEN_BENCH_KEY", "bench-key")
    with tempfile.TemporaryDirectory() as tmp, StandIn(faults=_faults(), latency=0.01, hang_seconds=3) as standin:
        argv = [
            "--output",
            tmp,
            "--categories",
            ",".join(CATEGORIES),
            "--examples-per-symmetric-type",
            str(per_type),
            "--model",
            "openai:standin",
            "--api-base",
            standin.openai_base_url,
            "--api-key-env",
            "EMBEDGEN_BENCH_KEY",
            "--request-timeout",
            "1",
            "--max-concurrent-requests",
            "32",
            "--max-parse-retries",
            "2",
        ]
        started = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            code = generate.run(argv)
        elapsed = time.perf_counter() - started
        faults = collections.Counter(c.fault for c in standin.model_calls() if c.fault)
        calls = len(standin.model_calls())
        rows = [r for c in CATEGORIES for r in read_table(tmp, c)]
        dead = read_table(tmp, "dead_letter")
    ids = [r["example_id"] for r in rows] + [d["element_id"] for d in dead]
    duplicates = len(ids) - len(set(ids))
    lost = requested - len(set(ids))
    print(f"{calls} model calls in {elapsed:.1f} s; injected faults: {dict(sorted(faults.items()))}")
    print(
        f"first calls with a transient fault: {sum(faults[k] for k, _ in TRANSIENT) / requested:.1%}, "
        f"with a malformed reply: {sum(faults[k] for k, _ in MALFORMED) / requested:.1%}; run exit code {code}"
    )
    print(f"requested={requested} written={len(rows)} dead_lettered={len(dead)} duplicates={duplicates} lost={lost}")


if __name__ == "__main__":
    main()
