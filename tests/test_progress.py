"""Progress lines: job-wide model calls of those planned, tokens, rate and time left; --quiet turns them off."""

import logging
import re
import time

from pipelines import generate, progress
from pipelines.options import parse_args, to_config
from tests.support.fakes import FakeHandler, valid_reply

ARGS = ["--categories", "text-retrieval,monolingual-triplet", "--tasks-per-category", "3"]
ARGS += ["--examples-per-task", "2", "--examples-per-symmetric-type", "30"]


def _slow(request):
    time.sleep(0.02)
    return valid_reply(request)


def test_planned_calls_count_first_attempts():
    args, _ = parse_args([*ARGS, "--output", "/tmp/unused"])
    assert progress.planned_calls(to_config(args)) == (1, 3 * 2 + 30)


def test_a_run_logs_progress_lines_with_the_jobs_replies(tmp_path, caplog, monkeypatch):
    monkeypatch.setattr(progress, "INTERVAL_SECONDS", 0.3)
    with caplog.at_level(logging.INFO, logger="pipelines.progress"):
        assert generate.run([*ARGS, "--output", str(tmp_path / "out")], handler=FakeHandler(_slow)) == 0
    lines = [r.getMessage() for r in caplog.records if r.name == "pipelines.progress"]
    assert lines, "no progress line"
    done = [int(re.search(r"model calls ([\d,]+)/37 planned", line)[1].replace(",", "")) for line in lines]
    assert done == sorted(done) and 0 < done[-1] <= 37
    assert any(re.search(r"tokens [\d,]+, [\d.]+ calls/s", line) for line in lines)
    assert "rows and dead letters: at the end" in lines[0]  # this runner reports counters at the end


def test_quiet_turns_progress_off(tmp_path, caplog, monkeypatch):
    monkeypatch.setattr(progress, "INTERVAL_SECONDS", 0.3)
    with caplog.at_level(logging.INFO, logger="pipelines.progress"):
        code = generate.run([*ARGS, "--output", str(tmp_path / "out"), "--quiet"], handler=FakeHandler(_slow))
    assert code == 0
    assert not [r for r in caplog.records if r.name == "pipelines.progress"]


def test_progress_line_from_runner_metrics_names_rows_and_dead_letters(tmp_path):
    class _Result:
        def metrics(self):
            return self

        def query(self, _filter):
            class _Key:
                def __init__(self, name):
                    self.metric = type("M", (), {"namespace": "embedgen", "name": name})

            def counter(name, value):
                return type("C", (), {"key": _Key(name), "committed": value, "attempted": value})

            names = {"replies": 40, "tokens/replies_prompt": 300, "written/text-retrieval": 30}
            names["dead_letter/generate/text-retrieval/not_json"] = 2
            return {"counters": [counter(k, v) for k, v in names.items()]}

    args, _ = parse_args([*ARGS, "--output", str(tmp_path / "out")])
    reporter = progress.ProgressReporter(to_config(args))
    reporter.attach(_Result())
    reporter._poll()
    line = reporter.format_line(elapsed=10.0)
    assert line.startswith("progress: model calls 40/37 planned")
    assert "rows 30, dead letters 2, tokens 300, 4.0 calls/s" in line
