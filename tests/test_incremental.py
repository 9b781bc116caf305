"""Daily runs: a run seed per --run-date (--fixed-seed pins it), and --exclude-from against earlier days."""

import json

import pytest

from pipelines import generate
from pipelines.incremental import day_seed
from tests.support.fakes import FakeHandler, valid_reply
from tests.support.helpers import read_table
from transforms.elements import STAGE_BRAINSTORM, stable_id
from transforms.quality.dedup import jaccard, shingles

SMALL = ["--tasks-per-category", "3", "--examples-per-task", "1", "--examples-per-symmetric-type", "4"]
TWO = ["--categories", "text-retrieval,monolingual-triplet"]

DAY1_TASKS = [
    "Given a question about growing tomatoes on a balcony, retrieve gardening guides that answer it.",
    "Given a legal question about renting an apartment, retrieve tenancy law articles that answer it.",
    "Given a bug report for a mobile app, retrieve the forum threads that describe the same bug.",
    "Given a chemistry homework problem, retrieve textbook sections that explain the needed concept.",
]
DAY2_TASKS = [
    # an exact repeat and two near-duplicates of day 1's tasks ...
    DAY1_TASKS[0],
    "Given a legal question about renting an apartment, retrieve tenancy law articles that answer it well.",
    "Given a bug report for a mobile app, retrieve the forum threads that describe the very same bug.",
    # ... and new tasks.
    "Given a recipe name, retrieve cooking blog posts that explain how to prepare the dish.",
    "Given a symptom description, retrieve medical encyclopedia entries about possible causes.",
    "Given a travel destination, retrieve itineraries written by people who visited it recently.",
]


def _reply(tasks, seed_of_day):
    """Brainstorm: ``tasks``. Monolingual triplets: a text per element *index*, the same on every day."""
    index = {stable_id(seed_of_day, "monolingual-triplet", i): i for i in range(50)}

    def reply(request):
        element = request.element
        if element.stage == STAGE_BRAINSTORM:
            return json.dumps(tasks)
        if element.category == "monolingual-triplet":
            i = index[element.element_id]
            words = f"the harbour town number {i} keeps its old lighthouse painted in red and white stripes"
            return json.dumps({"S1": words, "S2": words + " for ships", "S3": f"a different sentence {i}"})
        return valid_reply(request)

    return reply


def _run(out, date, reply, extra=()):
    return generate.run([*TWO, *SMALL, "--output", out, "--run-date", date, *extra], handler=FakeHandler(reply))


def _ids(day_dir):
    return {r["example_id"] for c in ("text-retrieval", "monolingual-triplet") for r in read_table(day_dir, c)}


def test_each_day_has_its_own_ids_and_a_day_is_reproducible(tmp_path):
    out = str(tmp_path / "out")
    assert _run(out, "2025-03-01", valid_reply) == 0
    assert _run(out, "2025-03-02", valid_reply) == 0
    day1, day2 = _ids(f"{out}/run_date=2025-03-01"), _ids(f"{out}/run_date=2025-03-02")
    assert len(day1) == len(day2) == 3 + 4
    assert not day1 & day2, "two days share element ids"
    rows = read_table(f"{out}/run_date=2025-03-02", "monolingual-triplet")
    assert {r["run_seed"] for r in rows} == {day_seed(42, "2025-03-02")}
    again = str(tmp_path / "again")
    assert _run(again, "2025-03-01", valid_reply) == 0
    assert _ids(f"{again}/run_date=2025-03-01") == day1, "re-running a day does not reproduce it"
    fixed = str(tmp_path / "fixed")
    assert _run(fixed, "2025-03-01", valid_reply, ["--fixed-seed"]) == 0
    assert _run(fixed, "2025-03-02", valid_reply, ["--fixed-seed"]) == 0
    assert _ids(f"{fixed}/run_date=2025-03-01") == _ids(f"{fixed}/run_date=2025-03-02")


def test_second_day_excludes_near_duplicate_tasks_and_rows_of_the_first(tmp_path, capsys):
    out = str(tmp_path / "out")
    assert _run(out, "2025-03-01", _reply(DAY1_TASKS, day_seed(42, "2025-03-01"))) == 0
    capsys.readouterr()
    reply = _reply(DAY2_TASKS, day_seed(42, "2025-03-02"))
    assert _run(out, "2025-03-02", reply, ["--exclude-from", out]) == 0
    printed = capsys.readouterr().out
    day1_dir, day2_dir = f"{out}/run_date=2025-03-01", f"{out}/run_date=2025-03-02"
    assert not _ids(day1_dir) & _ids(day2_dir)

    day1_tasks = {r["task"] for r in read_table(day1_dir, "text-retrieval")}
    day2_tasks = {r["task"] for r in read_table(day2_dir, "text-retrieval")}
    assert len(day2_tasks) == 3, day2_tasks  # the cap is still met, from the new tasks
    for new in day2_tasks:
        for old in day1_tasks:
            assert jaccard(shingles(new, 2), shingles(old, 2)) < 0.7, (new, old)
    assert day2_tasks <= set(DAY2_TASKS[3:])

    # Day 2's triplets repeat day 1's texts: all of them go to rejected/, pointing at the day-1 row.
    assert read_table(day2_dir, "monolingual-triplet") == []
    rejected = read_table(day2_dir, "rejected/monolingual-triplet")
    day1_rows = {r["example_id"] for r in read_table(day1_dir, "monolingual-triplet")}
    assert len(rejected) == 4 and {r["duplicate_of"] for r in rejected} == day1_rows
    assert all("duplicate" in r["quality_failures"] for r in rejected)
    # Earlier rows were only read: day 1 is unchanged.
    assert len(read_table(day1_dir, "monolingual-triplet")) == 4

    assert "exclusion (--exclude-from): 7 earlier row(s) read" in printed
    assert "3 brainstormed task(s) dropped as near-duplicates of earlier tasks (text-retrieval 3)" in printed
    assert "4 example(s) rejected as duplicates of earlier rows (monolingual-triplet 4)" in printed
    assert "requested = written + dead-lettered: yes" in printed


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--exclude-from", "/nonexistent/embedgen-output"], "--exclude-from /nonexistent/embedgen-output"),
        (["--fixed-seed"], "--fixed-seed applies with --run-date only"),
        (["--run-date", "2025-13-01"], "--run-date '2025-13-01' is not a date"),
        (["--quiet", "--verbose"], "--quiet and --verbose conflict"),
        (["--log-file", "/nonexistent/dir/run.log"], "--log-file"),
    ],
)
def test_bad_incremental_and_terminal_flags_exit_2_naming_the_flag(tmp_path, capsys, extra, message):
    out = tmp_path / "out"
    calls = []
    code = generate.run([*TWO, "--output", str(out), *extra], handler=FakeHandler(lambda r: calls.append(r)))
    assert code == 2
    assert message in capsys.readouterr().err
    assert not calls and not list(out.glob("*/*.avro"))


def test_exclude_from_an_output_without_rows_is_refused(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    code = generate.run([*TWO, "--output", str(tmp_path / "out"), "--exclude-from", str(empty)], handler=FakeHandler())
    assert code == 2
    assert "no earlier embedgen rows" in capsys.readouterr().err
