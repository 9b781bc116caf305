"""The BigQuery sink: schemas derived from the Avro field lists, tables, dispositions and partitions in the built graph.

BigQuery itself cannot be reached from the test machine, so the graph is built (not run) and inspected; the
run-date partitioning of the Avro output is checked by real runs.
"""

import apache_beam as beam
import pytest
from apache_beam.io.avroio import WriteToAvro
from apache_beam.io.gcp.bigquery import BigQueryDisposition, WriteToBigQuery
from apache_beam.options.pipeline_options import PipelineOptions

from pipelines import generate
from pipelines.options import parse_args, to_config
from tests.support.fakes import FakeHandler
from tests.support.helpers import read_table
from transforms import recipe
from transforms.bigquery import BigQueryTarget, table_name
from transforms.records import DEAD_LETTER, avro_schema, bigquery_schema, dead_letter_fields, example_fields

BQ_FLAGS = ["--bigquery-dataset", "my-project:embedgen_data", "--temp_location", "gs://my-bucket/tmp"]


def _built(tmp_path, extra):
    """The WriteToBigQuery transforms, and the labels of the WriteToAvro ones, of the graph built from these flags."""
    args, beam_args = parse_args(["--output", str(tmp_path / "out"), *BQ_FLAGS, *extra])
    config = to_config(args)
    pipeline = beam.Pipeline(options=PipelineOptions(beam_args))
    generate.build_pipeline(pipeline, config, handler=FakeHandler())
    found = {"bigquery": [], "avro": []}

    class _Visitor(beam.pipeline.PipelineVisitor):
        def enter_composite_transform(self, node):
            if isinstance(node.transform, WriteToBigQuery):
                found["bigquery"].append(node.transform)
            if isinstance(node.transform, WriteToAvro):
                found["avro"].append(node.full_label)

    pipeline.visit(_Visitor())
    return config, found


# The column type BigQuery must get for each Avro type.
_BQ_FOR_AVRO = {"string": "STRING", "long": "INTEGER", "boolean": "BOOLEAN", "double": "FLOAT"}


def _avro_shape(avro_type):
    """(scalar type, BigQuery mode) of one Avro field type."""
    if isinstance(avro_type, dict):
        return avro_type["items"], "REPEATED"
    if isinstance(avro_type, list):
        return next(t for t in avro_type if t != "null"), "NULLABLE"
    return avro_type, "REQUIRED"


def test_bigquery_schema_follows_the_avro_field_list():
    tables = [(t.name, example_fields(t)) for t in recipe.TASK_TYPES] + [(DEAD_LETTER, dead_letter_fields())]
    for name, fields in tables:
        bq = bigquery_schema(fields)["fields"]
        avro = avro_schema(name, fields)["fields"]
        assert [f["name"] for f in bq] == [f["name"] for f in avro]
        for column, record in zip(bq, avro, strict=True):
            scalar, mode = _avro_shape(record["type"])
            assert (column["type"], column["mode"]) == (_BQ_FOR_AVRO[scalar], mode), column["name"]
            assert column["description"] == record["doc"]


def _tables(writes):
    """{table spec: schema} of every table the built WriteToBigQuery transforms can write."""
    tables = {}
    for write in writes:
        if callable(write.table_reference):  # the examples: a table per row's category
            for category in recipe.CATEGORIES:
                spec = write.table_reference({"category": category})
                tables[spec] = write.schema(spec)
        else:
            ref = write.table_reference
            tables[f"{ref.projectId}:{ref.datasetId}.{ref.tableId}"] = write.schema
    return tables


def test_one_table_per_category_plus_dead_letters_appended_by_file_loads(tmp_path):
    config, found = _built(tmp_path, [])
    tables = _tables(found["bigquery"])
    expected = {
        f"my-project:embedgen_data.{table_name(t.name)}": bigquery_schema(example_fields(t)) for t in recipe.TASK_TYPES
    }
    expected["my-project:embedgen_data.dead_letter"] = bigquery_schema(dead_letter_fields())
    assert tables == expected
    for write in found["bigquery"]:
        assert write.method == WriteToBigQuery.Method.FILE_LOADS
        assert write.create_disposition == BigQueryDisposition.CREATE_IF_NEEDED
        assert write.write_disposition == BigQueryDisposition.WRITE_APPEND
        assert write.additional_bq_parameters == {}
    # Avro is written in the same run: every category's table and the dead letters.
    assert all(any(f"[{c}]" in label for label in found["avro"]) for c in recipe.CATEGORIES), found["avro"]
    assert any(label.startswith("WriteDeadLetters/") for label in found["avro"]), found["avro"]


def test_run_date_writes_to_the_day_partition_and_overwrite_replaces_only_it(tmp_path):
    config, found = _built(tmp_path, ["--run-date", "2026-03-01", "--overwrite"])
    assert config.output.endswith("/out/run_date=2026-03-01")
    tables = _tables(found["bigquery"])
    assert len(tables) == len(recipe.CATEGORIES) + 1
    assert all(spec.endswith("$20260301") for spec in tables)
    for write in found["bigquery"]:
        assert write.write_disposition == BigQueryDisposition.WRITE_TRUNCATE
        assert write.additional_bq_parameters == {"timePartitioning": {"type": "DAY"}}


def test_dataset_spec_parsing():
    assert (
        BigQueryTarget.parse("my-project:data_set", None).table("text-retrieval")
        == "my-project:data_set.text_retrieval"
    )
    assert BigQueryTarget.parse("data_set", "other-project").project == "other-project"
    assert BigQueryTarget.parse("example.com:my-project:ds", None).project == "example.com:my-project"
    for bad in ["data_set", "My_Project:ds", "my-project:bad-name"]:
        with pytest.raises(ValueError):
            BigQueryTarget.parse(bad, None)


@pytest.mark.parametrize(
    "argv,must_say",
    [
        (["--bigquery-dataset", "my-project:embedgen_data"], ["--temp_location", "gs://"]),
        (["--bigquery-dataset", "embedgen_data", "--temp_location", "gs://b/t"], ["--bigquery-dataset", "--project"]),
        (
            ["--bigquery-dataset", "my-project:bad-dataset", "--temp_location", "gs://b/t"],
            ["--bigquery-dataset", "dataset"],
        ),
        (["--run-date", "yesterday"], ["--run-date", "YYYY-MM-DD"]),
    ],
)
def test_bad_output_flags_fail_before_anything_runs(tmp_path, capsys, argv, must_say):
    out = tmp_path / "out"
    code = generate.run(["--output", str(out), *argv], handler=FakeHandler())
    err = capsys.readouterr().err
    assert code == 2
    for text in must_say:
        assert text in err, (text, err)
    assert not out.exists()


def test_runs_of_different_dates_do_not_touch_each_other(tmp_path):
    out = tmp_path / "out"
    small = ["--categories", "monolingual-triplet", "--examples-per-symmetric-type", "2", "--output", str(out)]
    assert generate.run([*small, "--run-date", "2026-03-01"], handler=FakeHandler()) == 0
    assert generate.run([*small, "--run-date", "2026-03-02"], handler=FakeHandler()) == 0
    for day in ("2026-03-01", "2026-03-02"):
        assert len(read_table(str(out / f"run_date={day}"), "monolingual-triplet")) == 2
    assert generate.run([*small, "--run-date", "2026-03-02"], handler=FakeHandler()) == 2, (
        "same day twice needs --overwrite"
    )
