"""A run killed with SIGKILL half-way and finished with --resume ends with exactly the ids of an uninterrupted run.

Runs `embedgen generate` against the local stand-in (tests/standins/server.py, an OpenAI-compatible server) three
times in subprocesses: an uninterrupted reference run, a run killed (SIGKILL, the whole process group) once about
half of its replies are in the journal, and `--resume` of the killed run. Prints the counts; the LAST line is the
ratio of ids shared by the finished and the reference run to the reference's ids (1.000 when nothing was lost).

    flock /work/helpers/cpu.lock python bench/kill_resume.py --elements 3000
"""

from __future__ import annotations

import argparse
import glob
import os
import signal
import subprocess
import sys
import tempfile
import time

import fastavro

_TABLES = ("monolingual-triplet", "bitext-retrieval", "dead_letter")


def _ids(output: str) -> list[str]:
    ids = []
    for table in _TABLES:
        for path in glob.glob(os.path.join(output, table, "*.avro")):
            with open(path, "rb") as handle:
                ids += [r.get("example_id") or r["element_id"] for r in fastavro.reader(handle)]
    return ids


def _journal_lines(output: str) -> int:
    total = 0
    for path in glob.glob(os.path.join(output, "_journal", "*.jsonl")):
        with open(path, "rb") as handle:
            total += handle.read().count(b"\n")
    return total


def _command(api_base: str, output: str, per_type: int, workers: int, extra=()) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pipelines.cli",
        "generate",
        "--model",
        "openai:standin",
        "--api-base",
        api_base,
        "--categories",
        "monolingual-triplet,bitext-retrieval",
        "--examples-per-symmetric-type",
        str(per_type),
        "--output",
        output,
        "--direct_num_workers",
        str(workers),
        "--direct_running_mode",
        "multi_processing" if workers > 1 else "in_memory",
        "--quiet",
        *extra,
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--elements", type=int, default=3000, help="Elements in all (half per task type).")
    parser.add_argument("--workers", type=int, default=2, help="DirectRunner worker processes.")
    parser.add_argument("--latency", type=float, default=0.02, help="Stand-in seconds per reply.")
    parser.add_argument("--kill-at", type=float, default=0.5, help="Kill once this share of replies is journaled.")
    args = parser.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root, HF_HUB_OFFLINE="1")
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.support.standins.server", "--latency", str(args.latency)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
        cwd=root,
    )
    api_base = server.stdout.readline().split()[0] + "/v1"
    per_type = args.elements // 2
    work = tempfile.mkdtemp(prefix="kill_resume_")
    try:
        reference, killed = os.path.join(work, "reference"), os.path.join(work, "killed")
        started = time.monotonic()
        subprocess.run(_command(api_base, reference, per_type, args.workers), env=env, cwd=root, check=True,
                       stdout=subprocess.DEVNULL)  # fmt: skip
        print(f"reference run: {time.monotonic() - started:.1f} s")
        child = subprocess.Popen(_command(api_base, killed, per_type, args.workers), env=env, cwd=root,
                                 stdout=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
        target = int(args.kill_at * 2 * per_type)
        while _journal_lines(killed) < target and child.poll() is None:
            time.sleep(0.05)
        os.killpg(child.pid, signal.SIGKILL)  # the launcher and its worker processes, as a lost machine would
        child.wait()
        at_kill = _journal_lines(killed)
        rows_at_kill = len(_ids(killed))
        print(f"killed with SIGKILL at {at_kill} journaled replies of {2 * per_type}; {rows_at_kill} rows finalised")
        done = subprocess.run(_command(api_base, killed, per_type, args.workers, ["--resume"]), env=env, cwd=root,
                              capture_output=True, text=True)  # fmt: skip
        if done.returncode != 0:
            print(done.stderr[-3000:])
            raise SystemExit(f"--resume exited {done.returncode}")
        resumed_note = [line for line in done.stdout.splitlines() if line.startswith("resume:")]
        expected, finished = _ids(reference), _ids(killed)
        shared = set(expected) & set(finished)
        print(f"reference: {len(expected)} ids ({len(set(expected))} distinct)")
        print(f"killed + --resume: {len(finished)} ids ({len(set(finished))} distinct)")
        print(f"missing: {len(set(expected) - set(finished))}, extra: {len(set(finished) - set(expected))}, "
              f"duplicated: {len(finished) - len(set(finished))}")  # fmt: skip
        print(resumed_note[0] if resumed_note else "resume: (no resume line in the summary)")
        print(f"ids of the finished run shared with the uninterrupted run: {len(shared) / len(set(expected)):.3f}")
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
