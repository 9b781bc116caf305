"""Digests of the records of a fixed-seed fake-model run and a tiny fixed-seed embedded run (behaviour checks).

Two trees give the same digests when they write the same records byte for byte (every table, rejected rows and dead
letters included), so a refactor can be checked against the commit it started from:

    .venv/bin/python bench/digests.py                       # fake model only (seconds)
    flock /work/helpers/cpu.lock .venv/bin/python bench/digests.py --embedded   # plus SmolLM2-135M (a minute)

The script uses only the generation entry point (``pipelines.generate.run``), the task-type declarations and the
element types, so it runs unchanged on older trees. The last line is the share of tables whose records match
``--expect`` (a digest printed by an earlier run), or of tables written when nothing is expected.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import hashlib
import io
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import fastavro  # noqa: E402
from apache_beam.ml.inference.base import ModelHandler, PredictionResult  # noqa: E402

from pipelines import generate  # noqa: E402
from transforms import recipe  # noqa: E402
from transforms.elements import STAGE_BRAINSTORM, Completion  # noqa: E402

FAKE_ARGS = [
    "--seed",
    "7",
    "--tasks-per-category",
    "3",
    "--examples-per-task",
    "2",
    "--examples-per-symmetric-type",
    "4",
]
EMBEDDED_ARGS = [
    "--seed",
    "11",
    "--categories",
    "text-retrieval,monolingual-triplet,bitext-retrieval",
    "--tasks-per-category",
    "1",
    "--examples-per-task",
    "1",
    "--examples-per-symmetric-type",
    "1",
    "--max-tokens",
    "160",
    "--max-parse-retries",
    "1",
]


def _reply(request) -> str | Completion:
    """Deterministic replies that exercise every path: valid, fenced, truncated once, never JSON, a 400, a duplicate."""
    element = request.element
    if element.stage == STAGE_BRAINSTORM:
        return json.dumps([f"Given a {element.category} need number {i}, find what helps." for i in range(5)])
    keys = recipe.get_task_type(element.category).output_keys
    valid = json.dumps({key: f"{key} text for {element.element_id} with a few words more" for key in keys})
    bucket = int(element.element_id[:2], 16) % 6
    if bucket == 0:
        return "I will not answer in JSON."
    if bucket == 1 and request.attempt == 0:
        return valid[:-5]
    if bucket == 2:
        return Completion(text="", model="fake", finish_reason="error", error="HTTP 400: invalid argument")
    if bucket == 3:
        return json.dumps({key: f"{key} the very same text for every element" for key in keys})
    return "```json\n" + valid + "\n```"


class _FakeModel:
    """Stands in for a loaded model."""


class _FakeHandler(ModelHandler):
    def load_model(self):
        return _FakeModel()

    def run_inference(self, batch, model, inference_args=None):
        results = []
        for request in batch:
            reply = _reply(request)
            if not isinstance(reply, Completion):
                reply = Completion(text=reply, model="fake-model", prompt_tokens=10, completion_tokens=20)
            results.append(PredictionResult(request, reply, "fake-model"))
        return results

    def batch_elements_kwargs(self):
        return {"min_batch_size": 1, "max_batch_size": 3}


def _tables(output: str) -> dict[str, list[str]]:
    """Every table under ``output`` (relative directory) -> its records as canonical JSON, sorted."""
    tables: dict[str, list[str]] = {}
    for path in sorted(glob.glob(os.path.join(output, "**", "*.avro"), recursive=True)):
        table = os.path.relpath(os.path.dirname(path), output)
        with open(path, "rb") as handle:
            records = [json.dumps(r, sort_keys=True, ensure_ascii=False) for r in fastavro.reader(handle)]
        tables.setdefault(table, []).extend(records)
    return {t: sorted(rows) for t, rows in sorted(tables.items())}


def _digest(rows: list[str]) -> str:
    return hashlib.sha256("\n".join(rows).encode()).hexdigest()[:16]


def _run(name: str, argv: list, handler) -> dict[str, str]:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "out")
        with contextlib.redirect_stdout(io.StringIO()) as printed:
            code = generate.run(["--output", out, *argv], handler=handler)
        tables = _tables(out)
    balanced = "requested = written + dead-lettered: yes" in printed.getvalue()
    digests = {t: f"{_digest(rows)} ({len(rows)} records)" for t, rows in tables.items()}
    everything = _digest([f"{t}\t{r}" for t, rows in tables.items() for r in rows])
    print(f"{name}: exit {code}, balanced {balanced}, all records {everything}")
    for table, digest in digests.items():
        print(f"  {table:<34}{digest}")
    digests["all"] = everything
    return digests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--embedded", action="store_true", help="Also run the embedded model (under the CPU lock).")
    parser.add_argument("--expect", nargs="*", default=[], help="Digests of the 'all records' lines to compare with.")
    args = parser.parse_args()
    results = [_run("fake", FAKE_ARGS, _FakeHandler())]
    if args.embedded:
        results.append(_run("embedded", EMBEDDED_ARGS, None))
    if args.expect:
        matching = sum(r["all"] == e for r, e in zip(results, args.expect, strict=False))
        print(f"runs_matching = {matching}/{len(results)} = {matching / len(results):.2f}")
    else:
        tables = sum(len(r) - 1 for r in results)
        print(f"tables_digested = {tables}/{tables} = 1.00")


if __name__ == "__main__":
    main()
