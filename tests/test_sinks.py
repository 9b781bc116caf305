"""WriteExamples and WriteDeadLetters on the DirectRunner: one Avro table per category, with its own schema."""

import apache_beam as beam
import fastavro
from apache_beam.testing.test_pipeline import TestPipeline

from tests.support.helpers import read_table
from transforms import recipe
from transforms.elements import DeadLetter
from transforms.records import avro_schema, example_fields
from transforms.sinks import WriteDeadLetters, WriteExamples, delete_outputs, existing_outputs, output_prefix


def _row(category: str, i: int) -> dict:
    task_type = recipe.get_task_type(category)
    row = {f.name: None for f in example_fields(task_type)}
    for field in example_fields(task_type):
        if field.repeated:
            row[field.name] = []
        elif field.type == "string" and not field.nullable:
            row[field.name] = f"{field.name}-{i}"
        elif field.type == "long":
            row[field.name] = i
        elif field.type == "boolean":
            row[field.name] = True
    row.update(example_id=f"{category}-{i}", category=category)
    return row


def test_rows_land_in_their_category_table_with_its_schema(tmp_path):
    out = str(tmp_path / "out")
    categories = ("text-retrieval", "bitext-retrieval")
    rows = [_row(c, i) for c in categories for i in range(3)]
    with TestPipeline() as p:
        _ = p | beam.Create(rows) | WriteExamples(out, categories, "r1")
    for category in categories:
        written = sorted(read_table(out, category), key=lambda r: r["example_id"])
        assert written == [r for r in rows if r["category"] == category]
        (path,) = (tmp_path / "out" / category).glob("part-r1*.avro")
        with open(path, "rb") as handle:
            names = [f["name"] for f in fastavro.reader(handle).writer_schema["fields"]]
        assert names == [
            f["name"] for f in avro_schema(category, example_fields(recipe.get_task_type(category)))["fields"]
        ]
    assert sorted(existing_outputs(out)) == sorted(str(p) for p in (tmp_path / "out").glob("*/*.avro"))


def test_a_second_run_id_adds_files_and_delete_outputs_removes_them_all(tmp_path):
    out = str(tmp_path / "out")
    dead = DeadLetter("e1", "text-retrieval", "generate", "not_json", "no JSON", "prompt", "raw", "m", 3, ("a", "b"))
    for run_id in ("r1", "r2"):
        with TestPipeline() as p:
            _ = (
                p
                | f"Rows{run_id}" >> beam.Create([_row("text-retrieval", 0)])
                | WriteExamples(out, ("text-retrieval",), run_id)
            )
            _ = p | f"Dead{run_id}" >> beam.Create([dead]) | WriteDeadLetters(out, run_id)
    assert len(read_table(out, "text-retrieval")) == 2
    letters = read_table(out, "dead_letter")
    assert len(letters) == 2 and letters[0]["failures"] == ["a", "b"] and letters[0]["reason"] == "not_json"
    assert output_prefix(out, "dead_letter", "r2").endswith("dead_letter/part-r2")
    assert delete_outputs(out) == 4 and existing_outputs(out) == []
