"""`embedgen export`: per-category role mapping and instructions, id-hash split, quality filter, balancing, formats."""

import collections
import glob
import json
import os

import apache_beam as beam
import fastavro
import pyarrow.parquet
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines import export
from transforms import recipe
from transforms.records import avro_schema, example_fields
from transforms.training.export_rows import (
    TRAINING_COLUMNS,
    ExportSpec,
    balance_rank,
    instruction,
    split_group,
    split_of,
    training_row,
)

# RECIPE.md, "How the data is used for training", written out independently of transforms/recipe.py.
EXPECTED_ROLES = {
    "text-retrieval": ("user_query", "positive_document", "hard_negative_document"),
    "text-classification": ("input_text", "label", "misleading_label"),
    "text-matching-short": ("input", "positive_document", None),
    "text-matching-long": ("input", "positive_document", None),
    "monolingual-triplet": ("S1", "S2", "S3"),
    "bitext-retrieval": ("S1", "S2", "S3"),
}
LANGUAGES = ("en", "sw", "de")


def _default(field):
    if field.repeated:
        return []
    if field.nullable:
        return None
    return {"string": "x", "long": 0, "boolean": True, "double": 0.0}[field.type]


def _row(category: str, i: int, **overrides) -> dict:
    """A complete generated row of ``category`` with recognisable texts and a language cycling through LANGUAGES."""
    task_type = recipe.get_task_type(category)
    row = {f.name: _default(f) for f in example_fields(task_type)}
    row.update(example_id=f"{category}-{i:04d}", category=category)
    if task_type.brainstorm:
        row["task"] = f"Given a {category} need {i % 3}, find what helps."
    for attr in task_type.attributes:
        row[attr.name] = attr.values[i % len(attr.values)] if attr.values else LANGUAGES[i % len(LANGUAGES)]
    if "target_language" in row:
        row["target_language"] = LANGUAGES[(i + 1) % len(LANGUAGES)]
    for key in task_type.output_keys:
        row[key] = f"{key} of {category} #{i}"
    row.update(overrides)
    return row


def _write(input_dir, category: str, rows: list, drop=()) -> None:
    fields = tuple(f for f in example_fields(recipe.get_task_type(category)) if f.name not in drop)
    os.makedirs(os.path.join(input_dir, category), exist_ok=True)
    with open(os.path.join(input_dir, category, "part-00000-of-00001.avro"), "wb") as handle:
        fastavro.writer(
            handle,
            fastavro.parse_schema(avro_schema(category, fields)),
            [{f.name: r[f.name] for f in fields} for r in rows],
        )


def _generated(tmp_path, sizes: dict, name="gen", **overrides) -> str:
    out = str(tmp_path / name)
    for category, n in sizes.items():
        _write(out, category, [_row(category, i, **overrides) for i in range(n)])
    return out


def _read(out: str) -> dict:
    """{split: [row, ...]} of a jsonl or parquet export, rows sorted by example id."""
    result = {}
    for split in ("train", "validation"):
        rows = []
        for path in sorted(glob.glob(os.path.join(out, split, "part-*"))):
            if path.endswith(".jsonl"):
                with open(path, encoding="utf-8") as handle:
                    rows += [json.loads(line) for line in handle if line.strip()]
            else:
                rows += pyarrow.parquet.read_table(path).to_pylist()
        result[split] = sorted(rows, key=lambda r: r["example_id"])
    return result


def _export(tmp_path, input_dir, *argv, name="out"):
    out = str(tmp_path / name)
    code = export.run(["--input", input_dir, "--out", out, *argv])
    return code, out


@pytest.mark.parametrize("category", recipe.CATEGORIES)
def test_every_category_maps_its_roles_as_in_the_recipe(category):
    anchor_key, positive_key, negative_key = EXPECTED_ROLES[category]
    row = _row(category, 7)
    got = training_row(row)
    assert tuple(got) == TRAINING_COLUMNS
    if recipe.get_task_type(category).brainstorm:
        assert got["anchor"] == f"Instruct: {row['task']}\nQuery: {row[anchor_key]}"
    else:  # the paper's task definitions (Tables 14 and 16)
        definition = {
            "monolingual-triplet": "Retrieve semantically similar text.",
            "bitext-retrieval": "Retrieve parallel sentences.",
        }[category]
        assert got["anchor"] == f"Instruct: {definition}\nQuery: {row[anchor_key]}"
    assert got["positive"] == row[positive_key] and not got["positive"].startswith("Instruct:")
    assert got["negative"] == (row[negative_key] if negative_key else None)
    assert (got["category"], got["example_id"]) == (category, row["example_id"])
    if category == "bitext-retrieval":
        assert got["language"] == f"{row['source_language']}->{row['target_language']}"
    else:
        assert got["language"] == row["language"]


def test_instruction_text_is_the_recipe_format():
    assert instruction("  Given a claim, retrieve evidence. ", "is coffee bad?") == (
        "Instruct: Given a claim, retrieve evidence.\nQuery: is coffee bad?"
    )


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=40), st.floats(0, 0.99), st.floats(0, 0.99))
def test_split_is_a_pure_function_of_the_id_and_monotone_in_the_fraction(example_id, a, b):
    low, high = sorted((a, b))
    assert split_of(example_id, low) == split_of(example_id, low)
    if split_of(example_id, low) == "validation":
        assert split_of(example_id, high) == "validation", "a larger fraction only moves ids into validation"
    assert split_of(example_id, 0.0) == "train"


def test_split_fraction_is_close_to_the_requested_one():
    ids = [f"id-{i}" for i in range(4000)]
    share = sum(split_of(i, 0.2) == "validation" for i in ids) / len(ids)
    assert 0.17 < share < 0.23
    assert balance_rank("a") != balance_rank("b") and len(balance_rank("a")) == 64


def test_export_writes_every_category_once_in_its_split_and_loads_with_datasets(tmp_path, capsys):
    sizes = {c: 6 for c in recipe.CATEGORIES}
    input_dir = _generated(tmp_path, sizes)
    code, out = _export(tmp_path, input_dir, "--validation-fraction", "0.3", "--num-shards", "1")
    assert code == 0
    splits = _read(out)
    every = [r for rows in splits.values() for r in rows]
    assert len(every) == sum(sizes.values()) and len({r["example_id"] for r in every}) == len(every)
    expected = {r["example_id"]: training_row(r) for c, n in sizes.items() for r in (_row(c, i) for i in range(n))}
    for split, rows in splits.items():
        for row in rows:
            assert list(row) == list(TRAINING_COLUMNS)
            assert row == expected[row["example_id"]]
            assert split_of(row["example_id"], 0.3) == split
    assert splits["validation"], "36 ids at 0.3 should put some in validation"
    assert "total" in capsys.readouterr().out

    datasets = pytest.importorskip("datasets")
    loaded = datasets.load_dataset("json", data_dir=out, cache_dir=str(tmp_path / "hf-cache"))
    assert set(loaded) == {"train", "validation"}
    assert loaded["train"].column_names == list(TRAINING_COLUMNS)
    assert loaded["train"].num_rows == len(splits["train"])


def test_split_by_task_keeps_every_example_of_a_task_in_one_split(tmp_path):
    input_dir = str(tmp_path / "tasks")
    retrieval = [_row("text-retrieval", i, task=f"Given topic {i % 8}, find documents.") for i in range(32)]
    _write(input_dir, "text-retrieval", retrieval)
    _write(input_dir, "monolingual-triplet", [_row("monolingual-triplet", i) for i in range(8)])
    code, out = _export(tmp_path, input_dir, "--split-by", "task", "--validation-fraction", "0.4")
    assert code == 0
    splits = _read(out)
    where = {r["example_id"]: split for split, rows in splits.items() for r in rows}
    tasks = collections.defaultdict(set)
    for r in retrieval:
        tasks[r["task"]].add(where[r["example_id"]])
        assert where[r["example_id"]] == split_of(split_group(r, "task"), 0.4)
    assert all(len(s) == 1 for s in tasks.values()), "a task's examples must not straddle the split"
    assert {s for (s,) in tasks.values()} == {"train", "validation"}, "8 tasks at 0.4 fall on both sides"
    for i in range(8):
        row = _row("monolingual-triplet", i)
        assert split_group(row, "task") == row["example_id"]
        assert where[row["example_id"]] == split_of(row["example_id"], 0.4)


def test_parquet_holds_the_same_rows_as_jsonl_and_reruns_are_identical(tmp_path):
    input_dir = _generated(tmp_path, {"text-retrieval": 5, "text-matching-short": 5, "bitext-retrieval": 4})
    _, jsonl = _export(tmp_path, input_dir, "--validation-fraction", "0.4", name="jsonl")
    _, parquet = _export(tmp_path, input_dir, "--validation-fraction", "0.4", "--format", "parquet", name="pq")
    _, again = _export(tmp_path, input_dir, "--validation-fraction", "0.4", name="again")
    assert glob.glob(os.path.join(parquet, "train", "*.parquet"))
    assert _read(jsonl) == _read(parquet) == _read(again)
    schema = pyarrow.parquet.read_schema(glob.glob(os.path.join(parquet, "train", "*.parquet"))[0])
    assert schema.names == list(TRAINING_COLUMNS)
    assert [r["negative"] for r in _read(parquet)["train"] if r["category"] == "text-matching-short"] == [None] * len(
        [r for r in _read(parquet)["train"] if r["category"] == "text-matching-short"]
    )


def test_only_passed_keeps_rows_that_passed(tmp_path):
    input_dir = str(tmp_path / "checked")
    rows = [
        _row(
            "text-retrieval",
            i,
            quality_pass=i % 2 == 0,
            quality_checks=["language"],
            quality_failures=[] if i % 2 == 0 else ["language"],
        )
        for i in range(8)
    ]
    _write(input_dir, "text-retrieval", rows)
    code, out = _export(tmp_path, input_dir, "--only-passed")
    assert code == 0
    kept = sorted(r["example_id"] for rows_ in _read(out).values() for r in rows_)
    assert kept == [r["example_id"] for r in rows if r["quality_pass"]]


def test_only_passed_warns_when_no_check_ran(tmp_path, capsys):
    input_dir = _generated(tmp_path, {"text-retrieval": 3})  # quality_pass true by default, quality_checks empty
    code, _ = _export(tmp_path, input_dir, "--only-passed")
    assert code == 0
    assert "no quality check ran" in capsys.readouterr().out


def test_only_passed_on_input_without_the_field_fails_naming_the_flag(tmp_path, capsys):
    input_dir = str(tmp_path / "old")
    _write(input_dir, "text-retrieval", [_row("text-retrieval", i) for i in range(3)], drop=("quality_pass",))
    code, out = _export(tmp_path, input_dir, "--only-passed")
    assert code == 2
    err = capsys.readouterr().err
    assert "--only-passed" in err and "quality_pass" in err
    assert not os.path.exists(out)


def test_balance_by_category_keeps_the_lowest_ranked_ids_of_each(tmp_path):
    sizes = {"text-retrieval": 9, "text-classification": 4, "monolingual-triplet": 6}
    input_dir = _generated(tmp_path, sizes)
    code, out = _export(tmp_path, input_dir, "--balance", "category", "--validation-fraction", "0.25")
    assert code == 0
    kept = [r for rows in _read(out).values() for r in rows]
    by_category = collections.defaultdict(list)
    for r in kept:
        by_category[r["category"]].append(r["example_id"])
    for category, n in sizes.items():
        ids = [f"{category}-{i:04d}" for i in range(n)]
        assert sorted(by_category[category]) == sorted(sorted(ids, key=balance_rank)[:4]), category


def test_balance_by_language_with_a_cap(tmp_path):
    input_dir = _generated(tmp_path, {"text-matching-short": 12, "text-matching-long": 9})
    code, out = _export(tmp_path, input_dir, "--balance", "language", "--balance-cap", "2")
    assert code == 0
    counts = collections.Counter(r["language"] for rows in _read(out).values() for r in rows)
    assert counts == {lang: 2 for lang in LANGUAGES}


def test_bigquery_input_reads_one_table_per_category(tmp_path):
    config = export.ExportConfig(
        categories=("text-retrieval", "bitext-retrieval"),
        input=None,
        bigquery_dataset="my-project:embedgen_data",
        spec=ExportSpec(),
        out=str(tmp_path / "bq"),
        format="parquet",
        num_shards=0,
        overwrite=False,
    )
    pipeline = beam.Pipeline()
    export.build_pipeline(pipeline, config)
    reads = {}

    class _Visitor(beam.pipeline.PipelineVisitor):
        def enter_composite_transform(self, node):
            if isinstance(node.transform, beam.io.ReadFromBigQuery):
                reads[node.full_label] = node.transform._kwargs["table"]

    pipeline.visit(_Visitor())
    assert reads == {
        "ReadExamples/Read[text-retrieval]": "my-project:embedgen_data.text_retrieval",
        "ReadExamples/Read[bitext-retrieval]": "my-project:embedgen_data.bitext_retrieval",
    }


@pytest.mark.parametrize(
    "argv,must_say",
    [
        (["--out", "{out}"], "--input"),
        (["--input", "{input}", "--bigquery-dataset", "p:d", "--out", "{out}"], "exactly one"),
        (["--input", "{input}"], "--out"),
        (["--input", "{input}", "--out", "{out}", "--validation-fraction", "1"], "--validation-fraction"),
        (["--input", "{input}", "--out", "{out}", "--balance-cap", "3"], "--balance-cap"),
        (["--input", "{input}", "--out", "{out}", "--balance", "category", "--balance-cap", "0"], "--balance-cap"),
        (["--input", "{input}", "--out", "{out}", "--categories", "text-retrieval,poems"], "allowed: text-retrieval"),
        (["--input", "{input}", "--out", "{out}", "--categories", "bitext-retrieval"], "no table for bitext-retrieval"),
        (["--input", "{empty}", "--out", "{out}"], "holds no <category>/*.avro"),
        (["--input", "{missing}", "--out", "{out}"], "does not exist"),
        (["--input", "{input}", "--out", "{out}", "--format", "csv"], "--format"),
        (["--input", "{input}", "--out", "{out}", "--balance", "task"], "--balance"),
        (["--input", "{input}", "--out", "{out}", "--split-by", "language"], "--split-by"),
        (["--bigquery-dataset", "just_a_dataset", "--out", "{out}"], "--bigquery-dataset"),
        (["--input", "{input}", "--out", "{out}", "--validaton-fraction", "0.2"], "did you mean --validation-fraction"),
    ],
)
def test_bad_flags_fail_before_running_and_name_the_flag(tmp_path, capsys, argv, must_say):
    paths = {
        "input": _generated(tmp_path, {"text-retrieval": 2}),
        "out": str(tmp_path / "out"),
        "empty": str(tmp_path / "empty"),
        "missing": str(tmp_path / "missing"),
    }
    os.makedirs(paths["empty"])
    try:
        code = export.run([a.format(**paths) for a in argv])
    except SystemExit as exit_:  # argparse rejects a closed-set value itself
        code = exit_.code
    assert code == 2
    assert must_say in capsys.readouterr().err
    assert not os.path.exists(paths["out"])


def test_refuses_to_mix_exports_without_overwrite(tmp_path, capsys):
    input_dir = _generated(tmp_path, {"text-retrieval": 3})
    assert _export(tmp_path, input_dir)[0] == 0
    assert _export(tmp_path, input_dir)[0] == 2
    assert "--overwrite" in capsys.readouterr().err
    code, out = _export(tmp_path, input_dir, "--overwrite", "--format", "parquet")
    assert code == 0
    assert not glob.glob(os.path.join(out, "*", "*.jsonl")), "the earlier export's files are gone"
