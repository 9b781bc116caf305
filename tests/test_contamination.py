"""Contamination check: brainstormed tasks that nearly restate a shipped evaluation-set instruction."""

import importlib.resources
import json

import pytest

from pipelines import generate
from tests.support.fakes import FakeHandler, valid_reply
from tests.support.helpers import read_table
from transforms.elements import STAGE_BRAINSTORM
from transforms.quality import contamination

LEAKED = "Given a scientific claim, retrieve documents that support or refute it."  # SciFact's, reworded a little
CLEAN = [
    "Given a bus route number, retrieve timetables and service notices for it.",
    "Given a weather keyword query, retrieve forecast pages for the place it names.",
]
SMALL = ["--tasks-per-category", "5", "--examples-per-task", "2", "--categories", "text-retrieval"]


def test_shipped_list_names_its_source_and_covers_mteb_task_kinds():
    text = importlib.resources.files("prompts").joinpath(contamination.DATA_FILE).read_text(encoding="utf-8")
    header = "\n".join(line for line in text.splitlines() if line.startswith("#"))
    assert "2401.00368" in header and "Table 15" in header and "MTEB" in header
    sources = {e.source for e in contamination.evaluation_instructions()}
    assert {"SciFact", "ArguAna", "MSMARCO", "NQ", "Banking77Classification", "SciDocsRR", "SummEval"} <= sources
    assert len(contamination.evaluation_instructions()) >= 40
    assert all(e.instruction for e in contamination.evaluation_instructions())


def test_near_duplicates_of_an_evaluation_instruction_are_flagged_and_others_are_not():
    assert contamination.contaminated(LEAKED).source == "SciFact"
    assert contamination.contaminated("given a claim, find documents that refute the claim").source == "ArguAna"
    for task in CLEAN:
        assert contamination.contaminated(task) is None, task
    assert contamination.contaminated(None) is None and contamination.contaminated("") is None
    entry, score = contamination.nearest_instruction(LEAKED)
    assert entry.source == "SciFact" and 0.5 <= score < 1.0
    assert contamination.contaminated(LEAKED, threshold=score + 0.01) is None  # the threshold is honoured


def _leaky(request):
    if request.element.stage == STAGE_BRAINSTORM:
        return json.dumps([LEAKED, *CLEAN])
    return valid_reply(request)


def _quality_lines(printed: str) -> str:
    return next(line for line in printed.splitlines() if line.startswith("contamination:"))


def test_flag_mode_keeps_the_task_flags_its_rows_and_counts_it(tmp_path, capsys):
    out = str(tmp_path / "flag")
    assert generate.run(["--output", out, *SMALL], handler=FakeHandler(_leaky)) == 0
    rows = read_table(out, "text-retrieval")
    assert sorted({r["task"] for r in rows}) == sorted([LEAKED, *CLEAN])
    for row in rows:
        assert "contamination" in row["quality_checks"]
        assert ("contamination:SciFact" in row["quality_failures"]) is (row["task"] == LEAKED)
    line = _quality_lines(capsys.readouterr().out)
    assert "1 brainstormed task(s)" in line and "0 removed, 1 kept" in line


def test_reject_mode_removes_the_task_and_counts_it(tmp_path, capsys):
    out = str(tmp_path / "reject")
    code = generate.run(["--output", out, *SMALL, "--quality-filter", "reject"], handler=FakeHandler(_leaky))
    assert code == 0
    rows = read_table(out, "text-retrieval") + read_table(out + "/rejected", "text-retrieval")
    assert sorted({r["task"] for r in rows}) == sorted(CLEAN)
    assert len(rows) == 2 * len(CLEAN)
    printed = capsys.readouterr().out
    assert "requested = written + dead-lettered: yes" in printed
    line = _quality_lines(printed)
    assert "1 brainstormed task(s)" in line and "1 removed, 0 kept" in line


@pytest.mark.parametrize("value", ["0", "1.5", "-0.1"])
def test_bad_threshold_exits_2(tmp_path, capsys, value):
    code = generate.run(["--output", str(tmp_path / "x"), *SMALL, "--contamination-threshold", value], FakeHandler())
    assert code == 2
    assert "--contamination-threshold must be in (0, 1]" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
