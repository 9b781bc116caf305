"""`embedgen report` on a generated output: its numbers equal a direct count of the Avro files; the page renders."""

import glob
import json
import os
import re
import shutil
import subprocess

import pytest

from pipelines import generate, report
from tests.support.fakes import FakeHandler, valid_reply
from tests.support.helpers import read_table
from transforms import recipe
from transforms.elements import STAGE_BRAINSTORM

# Near-duplicates of each other, not of an evaluation-set instruction (those the contamination check removes).
CLAIM_TASKS = (
    "Given a recipe name, retrieve cooking blogs that explain how to prepare it",
    "Given a recipe name, retrieve cooking blogs that explain how to prepare the dish.",
)
OTHER_TASKS = (
    "Given a medical question, retrieve relevant research papers",
    "Given a legal question, find court rulings",
)
COPIED = json.dumps(
    {
        "user_query": "why do cats purr when they are happy",
        "positive_document": "Cats purr by vibrating muscles in the larynx. Why do cats purr when they are happy? Mostly to signal comfort.",  # noqa: E501
        "hard_negative_document": "Dogs wag their tails in many situations, not only when they are happy.",
    }
)


def _reply(request):
    """Brainstorm: two near-duplicate tasks and two others. Generate: some rows copy their query, some repeat."""
    element = request.element
    if element.stage == STAGE_BRAINSTORM:
        return json.dumps([*CLAIM_TASKS, *OTHER_TASKS])
    bucket = int(element.element_id[:2], 16) % 4
    if bucket == 0 and element.category == "text-retrieval":
        return COPIED  # the same example for every element of the bucket: duplicates, and a copied query
    if bucket == 1:
        return "not json"  # dead letters
    return valid_reply(request)


@pytest.fixture(scope="module")
def run_output(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("report") / "out")
    argv = [
        "--output", out, "--categories", "text-retrieval,monolingual-triplet", "--tasks-per-category", "4",
        "--examples-per-task", "3", "--examples-per-symmetric-type", "6", "--max-parse-retries", "0",
        "--quality-filter", "reject", "--languages", "en,de",
    ]  # fmt: skip
    assert generate.run(argv, handler=FakeHandler(_reply)) == 0
    return out


def test_near_duplicate_tasks_are_removed_before_generation(run_output):
    rows = read_table(run_output, "text-retrieval") + read_table(os.path.join(run_output, "rejected"), "text-retrieval")
    tasks = {r["task"] for r in rows}
    assert len(tasks & set(CLAIM_TASKS)) == 1, tasks
    assert set(OTHER_TASKS) <= tasks


def _direct_counts(out):
    written = [r for c in recipe.CATEGORIES for r in read_table(out, c)]
    rejected = [r for c in recipe.CATEGORIES for r in read_table(os.path.join(out, "rejected"), c)]
    failed = {}
    for row in written + rejected:
        for name in row["quality_failures"]:
            failed[name] = failed.get(name, 0) + 1
    return written, rejected, read_table(out, "dead_letter"), failed


def test_report_numbers_match_a_direct_count_of_the_avro_files(run_output, tmp_path, capsys):
    html_path, json_path = str(tmp_path / "r.html"), str(tmp_path / "r.json")
    assert report.main(["--input", run_output, "--out", html_path, "--json", json_path]) == 0
    stats = json.load(open(json_path))
    written, rejected, dead, failed = _direct_counts(run_output)
    assert stats["rows_written"] == len(written) and stats["rows_rejected"] == len(rejected)
    assert stats["dead_letters"] == len(dead) > 0
    assert stats["rows_passing"] == sum(r["quality_pass"] for r in written + rejected) == len(written)
    reported = {}
    for checks in stats["checks"].values():
        for name, v in checks.items():
            if v["failed"]:
                reported[name] = reported.get(name, 0) + v["failed"]
    assert reported == failed
    kinds = {}
    for name, n in failed.items():
        kinds[name.split(":")[0]] = kinds.get(name.split(":")[0], 0) + n
    assert {k: v["failed"] for k, v in stats["check_kinds"].items() if v["failed"]} == kinds
    assert stats["duplicates"] == sum(1 for r in rejected if r["duplicate_of"]) > 0
    assert failed["copied:user_query->positive_document"] >= 1
    for category, counts in stats["by_category"].items():
        assert counts["written"] == len(read_table(run_output, category))
    printed = capsys.readouterr().out
    assert f"rows: {len(written)} written, {len(rejected)} rejected" in printed
    page = open(html_path, encoding="utf-8").read()
    embedded = re.search(r'<script type="application/json" id="embedgen-stats">(.*?)</script>', page, re.S).group(1)
    assert json.loads(embedded.replace("<\\/", "</")) == stats
    assert "<svg" in page and not re.search(r"""(src|href)=["']?https?:""", page)  # self-contained


def test_report_refuses_a_directory_without_tables(tmp_path, capsys):
    assert report.main(["--input", str(tmp_path)]) == 2
    assert "no embedgen Avro tables" in capsys.readouterr().err
    assert report.main(["--input", str(tmp_path / "missing")]) == 2


def _chromium():
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(_chromium() is None, reason="headless Chromium not installed (apt-get install chromium)")
def test_report_renders_in_headless_chromium_without_console_errors(run_output, tmp_path):
    page, shot = tmp_path / "r.html", tmp_path / "shot.png"
    assert report.main(["--input", run_output, "--out", str(page)]) == 0
    flags = [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0", "--window-size=1200,1600",
    ]  # fmt: skip
    done = subprocess.run(
        [_chromium(), *flags, f"--screenshot={shot}", page.as_uri()], capture_output=True, text=True, timeout=120
    )
    assert shot.exists() and shot.stat().st_size > 10_000, done.stderr[-2000:]
    console = [line for line in done.stderr.splitlines() if "CONSOLE" in line]
    assert console == [], console
    dom = subprocess.run(
        [_chromium(), *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120
    ).stdout
    assert "embedgen data report" in dom and dom.count("<svg") >= 4
    assert not glob.glob(str(tmp_path / "profile" / "**" / "*.crash"), recursive=True)
