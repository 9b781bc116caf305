"""A model, not a measurement: how full a call pool stays when a few bundles feed it in batches.

Each of ``--feeders`` bundles hands the pool a batch of ``--batch-multiple x slots`` calls and waits for the last of
them before it hands over the next batch (RunInference's batch barrier inside one bundle). The pool has ``slots``
places and starts a queued call the moment a place frees. Latencies are lognormal with mean 1 and the given sigma.
The script simulates that queue (no pipeline, no network) and prints, per configuration, the calls answered per
unit time over the ideal ``slots / mean latency``, for a run long enough that its own tail hardly counts.

bench/concurrency.py measures the real pipeline; this explains its figures and shows what a runner that gives a
process fewer bundles (one per process on a Dataflow batch worker, for example) would get.

    .venv/bin/python bench/feeders_model.py [--slots 32,128] [--feeders 1,2,4,8,16] [--sigma 1]

The last line is the modelled ratio for the DirectRunner defaults (one bundle per 8 slots, 4 to 16) at the largest
``--slots``.
"""

from __future__ import annotations

import argparse
import collections
import heapq
import math
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from transforms.models.remote import direct_bundles  # noqa: E402


def utilisation(slots: int, feeders: int, batch: int, calls: int, sigma: float, seed: int = 1) -> float:
    """Calls answered per unit time over ``slots / mean latency`` for one simulated run."""
    rng = random.Random(seed)
    mu = -sigma * sigma / 2  # mean exp(mu + sigma^2 / 2) = 1

    def latency() -> float:
        return math.exp(rng.gauss(mu, sigma))

    left = calls
    waiting: collections.deque = collections.deque()  # feeder of each queued call
    outstanding = {}
    answers: list = []  # (time the call ends, feeder)
    in_flight = 0
    now = 0.0

    def hand_over(feeder: int) -> None:
        nonlocal left
        size = min(batch, left)
        left -= size
        outstanding[feeder] = size
        waiting.extend([feeder] * size)

    def start_calls() -> None:
        nonlocal in_flight
        while waiting and in_flight < slots:
            heapq.heappush(answers, (now + latency(), waiting.popleft()))
            in_flight += 1

    for feeder in range(feeders):
        hand_over(feeder)
    start_calls()
    while answers:
        now, feeder = heapq.heappop(answers)
        in_flight -= 1
        outstanding[feeder] -= 1
        if outstanding[feeder] == 0 and left:
            hand_over(feeder)
        start_calls()
    return calls / now / slots


def _ints(text: str) -> list:
    return [int(v) for v in text.split(",") if v.strip()]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slots", type=_ints, default=[32, 128], help="Pool sizes (default: 32,128).")
    parser.add_argument("--feeders", type=_ints, default=[1, 2, 4, 8, 16], help="Bundles feeding the pool.")
    parser.add_argument(
        "--batch-multiple", type=int, default=4, help="Batch size / slots (default: 4, as --batch-size)."
    )
    parser.add_argument("--sigma", type=float, default=1.0, help="Lognormal sigma of the latency (default: 1).")
    parser.add_argument("--rounds", type=int, default=400, help="Calls per run = slots x this (default: 400).")
    args = parser.parse_args(argv)
    print(f"modelled utilisation, lognormal sigma {args.sigma:g}, batch = {args.batch_multiple} x slots")
    for slots in args.slots:
        row = [
            f"{f} feeders {utilisation(slots, f, args.batch_multiple * slots, slots * args.rounds, args.sigma):.3f}"
            for f in args.feeders
        ]
        print(f"{slots:>4} slots: " + ", ".join(row))
    slots = max(args.slots)
    bundles = direct_bundles(slots)  # what the DirectRunner gets for a pool of this size
    print(f"{utilisation(slots, bundles, args.batch_multiple * slots, slots * args.rounds, args.sigma):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
