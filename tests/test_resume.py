"""Interrupted runs, resume, and bundle retries: nothing lost, nothing doubled, no reply paid for twice."""

import os

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from pipelines import generate
from pipelines.options import parse_args, to_config
from tests.support.fakes import FakeHandler, valid_reply
from tests.support.helpers import read_all
from transforms import recipe
from transforms.resume import journal_key

SMALL = ["--tasks-per-category", "2", "--examples-per-task", "2", "--examples-per-symmetric-type", "3"]
TABLES = [*recipe.CATEGORIES, "dead_letter"]


class _LoggingReply:
    """Answers validly, logs the journal key of every call to a file, and can crash after N calls (or once)."""

    def __init__(self, log_path, crash_after=None, crash_once_marker=None):
        self._log = str(log_path)
        self._crash_after = crash_after
        self._marker = crash_once_marker

    def __call__(self, request):
        calls = _calls(self._log)
        if self._crash_after is not None and len(calls) >= self._crash_after:
            raise RuntimeError("worker lost (simulated interruption)")
        if self._marker is not None and len(calls) == 5 and not os.path.exists(self._marker):
            open(self._marker, "w").close()
            raise RuntimeError("transient worker crash (simulated, once)")
        with open(self._log, "a") as handle:
            handle.write(journal_key(request) + "\n")
        return valid_reply(request)


def _calls(path):
    if not os.path.exists(path):
        return []
    with open(path) as handle:
        return handle.read().split()


def _ids(records):
    return [r.get("example_id") or r["element_id"] for table in TABLES for r in records[table]]


def test_interrupted_run_is_finished_by_resume_without_repeating_calls(tmp_path, capsys):
    reference = str(tmp_path / "reference")
    assert generate.run(["--output", reference, *SMALL], handler=FakeHandler()) == 0
    expected = read_all(reference, TABLES)
    total_calls = len(_ids(expected)) + 4  # every example plus one brainstorm call per brainstormed category

    out = str(tmp_path / "out")
    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
    with pytest.raises(Exception, match="simulated interruption"):
        generate.run(["--output", out, *SMALL], handler=FakeHandler(_LoggingReply(first_log, crash_after=10)))
    first = _calls(first_log)
    assert len(first) == 10
    assert generate.run(["--output", out], handler=FakeHandler()) == 2  # refuses to mix runs without a word
    assert "--resume" in capsys.readouterr().err

    assert generate.run(["--output", out, *SMALL, "--resume"], handler=FakeHandler(_LoggingReply(second_log))) == 0
    second = _calls(second_log)
    # A reply is journaled when its RunInference batch returns (the fake's batches hold up to 3 prompts), so
    # only the calls of the batch that was cut short may be asked again; every earlier reply is reused.
    repeated = set(first) & set(second)
    assert len(repeated) <= 2 and all(first.index(key) >= len(first) - 2 for key in repeated), repeated
    assert len(first) + len(second) - len(repeated) == total_calls
    finished = read_all(out, TABLES)
    ids = _ids(finished)
    assert len(ids) == len(set(ids)), "duplicate rows after resume"
    assert finished == expected  # the same records as an uninterrupted run
    assert "logged repl(ies) reused without a model call" in capsys.readouterr().out


def test_resume_extends_a_finished_run_with_only_the_new_ids(tmp_path):
    out = str(tmp_path / "out")
    args = ["--categories", "monolingual-triplet,bitext-retrieval", "--output", out]
    assert generate.run([*args, "--examples-per-symmetric-type", "2"], handler=FakeHandler()) == 0
    log = tmp_path / "calls.log"
    code = generate.run(
        [*args, "--examples-per-symmetric-type", "5", "--resume"], handler=FakeHandler(_LoggingReply(log))
    )
    assert code == 0
    assert len(_calls(log)) == 2 * 3  # only the new elements were asked for
    records = read_all(out, TABLES)
    assert len(records["monolingual-triplet"]) == 5 and len(records["bitext-retrieval"]) == 5
    ids = _ids(records)
    assert len(ids) == len(set(ids))


def test_resume_conflicts_with_overwrite(tmp_path, capsys):
    code = generate.run(["--output", str(tmp_path / "o"), "--resume", "--overwrite"], handler=FakeHandler())
    assert code == 2
    assert "--resume and --overwrite" in capsys.readouterr().err


def test_a_bundle_that_crashes_once_is_retried_without_duplicates_or_losses(tmp_path):
    # The BundleBasedDirectRunner retries a failed bundle (up to 4 times), as Dataflow does. Its user counters
    # are incomplete when a DoFn reads a Flatten of stages, so this test checks the written data itself.
    out = str(tmp_path / "out")
    marker = str(tmp_path / "crashed")
    handler = FakeHandler(_LoggingReply(tmp_path / "calls.log", crash_once_marker=marker))
    args, _ = parse_args(["--output", out, *SMALL])
    with beam.Pipeline(options=PipelineOptions(["--runner", "BundleBasedDirectRunner"])) as p:
        generate.build_pipeline(p, to_config(args), handler)
    assert os.path.exists(marker), "the simulated crash did not happen"
    reference = str(tmp_path / "reference")
    assert generate.run(["--output", reference, *SMALL], handler=FakeHandler()) == 0
    assert read_all(out, TABLES) == read_all(reference, TABLES)
