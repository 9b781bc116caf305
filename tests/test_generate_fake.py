"""The whole generation graph on the DirectRunner with a fake model: counts, schemas, dead letters, determinism."""

import json

import fastavro
import pytest

from pipelines import generate
from tests.support.fakes import FakeHandler, valid_reply
from tests.support.helpers import read_all, read_table
from transforms import recipe
from transforms.elements import STAGE_BRAINSTORM, Completion
from transforms.records import avro_schema, example_fields

SMALL = ["--tasks-per-category", "3", "--examples-per-task", "2", "--examples-per-symmetric-type", "4"]


def _flaky(request):
    """Deterministic mix: some elements always fail, some fail on the first attempt only."""
    if request.element.stage == STAGE_BRAINSTORM:
        return valid_reply(request)
    bucket = int(request.element.element_id[:2], 16) % 5
    if bucket == 0:
        return "I will not answer in JSON."  # always fails
    if bucket == 1 and request.attempt == 0:
        return valid_reply(request)[:-5]  # truncated once, fine on retry
    if bucket == 2:
        return Completion(text="", model="fake", finish_reason="error", error="HTTP 400: invalid argument")
    return "```json\n" + valid_reply(request) + "\n```"


def _run(tmp_path, name, handler, extra=()):
    out = str(tmp_path / name)
    code = generate.run(["--output", out, *SMALL, *extra], handler=handler)
    return code, out


def test_all_categories_written_with_their_schemas(tmp_path, capsys):
    code, out = _run(tmp_path, "ok", FakeHandler())
    assert code == 0
    tables = read_all(out, recipe.CATEGORIES)
    for t in recipe.TASK_TYPES:
        rows = tables[t.name]
        expected = 3 * 2 if t.brainstorm else 4
        assert len(rows) == expected, t.name
        fields = [f.name for f in example_fields(t)]
        for row in rows:
            assert list(row) == fields
            assert row["category"] == t.name and row["model"] == "fake-model"
            assert all(row[k] for k in t.output_keys)
        with open(next((tmp_path / "ok" / t.name).glob("*.avro")), "rb") as handle:
            schema = fastavro.reader(handle).writer_schema
        expected_schema = avro_schema(t.name, example_fields(t))
        assert schema["name"] == "embedgen." + expected_schema["name"]
        assert [f["name"] for f in schema["fields"]] == [f["name"] for f in expected_schema["fields"]]
    assert read_table(out, "dead_letter") == []
    printed = capsys.readouterr().out
    assert "requested = written + dead-lettered: yes" in printed
    assert "text-retrieval" in printed and "tokens:" in printed


def test_counts_add_up_with_failures_and_dead_letters_say_why(tmp_path, capsys):
    code, out = _run(tmp_path, "flaky", FakeHandler(_flaky), ["--max-parse-retries", "1"])
    assert code == 0
    dead = read_table(out, "dead_letter")
    written = {c: read_table(out, c) for c in recipe.CATEGORIES}
    ids = [r["example_id"] for rows in written.values() for r in rows] + [d["element_id"] for d in dead]
    assert len(ids) == len(set(ids)), "an element was both written and dead-lettered, or written twice"
    requested = 4 * 3 * 2 + 2 * 4
    assert len(ids) == requested
    assert {d["reason"] for d in dead} == {"not_json", "model_error"}
    for d in dead:
        assert d["prompt"] and d["element_id"] and d["category"] and d["failures"]
        if d["reason"] == "not_json":
            assert d["attempts"] == 2 and d["raw_text"] == "I will not answer in JSON."
        else:
            assert d["attempts"] == 1 and "400" in d["detail"]  # a 400 is never retried
    retried = [r for rows in written.values() for r in rows if r["attempts"] == 2]
    assert retried, "truncated-once replies should succeed on their retry"
    assert "requested = written + dead-lettered: yes" in capsys.readouterr().out


def test_same_seed_same_records_and_other_seed_other_records(tmp_path):
    _, a = _run(tmp_path, "a", FakeHandler())
    _, b = _run(tmp_path, "b", FakeHandler())
    _, c = _run(tmp_path, "c", FakeHandler(), ["--seed", "43"])
    ra, rb, rc = (read_all(x, recipe.CATEGORIES) for x in (a, b, c))
    assert ra == rb
    assert ra != rc


def test_brainstorm_duplicates_are_removed_and_capped(tmp_path):
    def duplicated(request):
        if request.element.stage == STAGE_BRAINSTORM:
            return json.dumps(["Given X, find Y."] * 5 + ["given x,  find y"] + ["Given Z, find W."])
        return valid_reply(request)

    _, out = _run(tmp_path, "dups", FakeHandler(duplicated), ["--categories", "text-matching-short"])
    rows = read_table(out, "text-matching-short")
    assert sorted({r["task"] for r in rows}) == ["Given X, find Y.", "Given Z, find W."]
    assert len(rows) == 2 * 2


def test_refuses_to_mix_runs_without_overwrite(tmp_path, capsys):
    code, out = _run(tmp_path, "again", FakeHandler())
    assert code == 0
    code, _ = _run(tmp_path, "again", FakeHandler())
    assert code == 2
    assert "--overwrite" in capsys.readouterr().err
    code, _ = _run(tmp_path, "again", FakeHandler(), ["--overwrite"])
    assert code == 0


@pytest.mark.parametrize("extra", [["--categories", "bitext-retrieval", "--languages", "en,sw"]])
def test_bitext_languages_differ_in_output(tmp_path, extra):
    _, out = _run(tmp_path, "bitext", FakeHandler(), extra)
    rows = read_table(out, "bitext-retrieval")
    assert len(rows) == 4
    assert all({r["source_language"], r["target_language"]} == {"en", "sw"} for r in rows)
