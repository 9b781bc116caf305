"""WriteExamples and WriteDeadLetters: Avro files (fastavro) under <output>/<category>/ and <output>/dead_letter/."""

from __future__ import annotations

import logging

import apache_beam as beam
from apache_beam.io.avroio import WriteToAvro
from apache_beam.io.filesystems import FileSystems

from transforms import recipe
from transforms.records import DEAD_LETTER, avro_schema, dead_letter_fields, dead_letter_row, example_fields

__all__ = ["WriteExamples", "WriteDeadLetters", "REJECTED", "output_prefix", "existing_outputs", "delete_outputs"]

_LOGGER = logging.getLogger(__name__)


REJECTED = "rejected"  # <output>/rejected/<category>/: rows the quality policy routed away, same schema


def output_prefix(output: str, table: str, run_id: str) -> str:
    """Shard prefix of one table: ``<output>/<table>/part-<run id>`` (a resumed run adds files, never replaces)."""
    return FileSystems.join(output, table, f"part-{run_id}")


def existing_outputs(output: str) -> list[str]:
    """Avro files an earlier run left under ``output``: example tables, dead letters and rejected tables."""
    tables = [(c,) for c in recipe.CATEGORIES] + [(DEAD_LETTER,)] + [(REJECTED, c) for c in recipe.CATEGORIES]
    found = []
    for table in tables:
        pattern = FileSystems.join(output, *table, "*.avro")
        found += [match.path for match in FileSystems.match([pattern])[0].metadata_list]
    return sorted(found)


def delete_outputs(output: str) -> int:
    """Delete the Avro files of an earlier run under ``output``; returns how many."""
    paths = existing_outputs(output)
    if paths:
        FileSystems.delete(paths)
    return len(paths)


class _ByCategory:
    def __init__(self, categories):
        self._index = {c: i for i, c in enumerate(categories)}

    def __call__(self, row, num_partitions):
        return self._index[row["category"]]


class WriteExamples(beam.PTransform):
    """Rows -> one Avro table per category, each with the schema derived from its declaration."""

    def __init__(self, output: str, categories, run_id: str):
        super().__init__()
        self._output = output
        self._categories = tuple(categories)
        self._run_id = run_id

    def expand(self, rows):
        parts = rows | "SplitByCategory" >> beam.Partition(_ByCategory(self._categories), len(self._categories))
        results = {}
        for index, category in enumerate(self._categories):
            task_type = recipe.get_task_type(category)
            results[category] = parts[index] | f"Write[{category}]" >> WriteToAvro(
                output_prefix(self._output, category, self._run_id),
                schema=avro_schema(category, example_fields(task_type)),
                file_name_suffix=".avro",
            )
        return results


class WriteDeadLetters(beam.PTransform):
    """DeadLetters -> the dead_letter Avro table."""

    def __init__(self, output: str, run_id: str):
        super().__init__()
        self._output = output
        self._run_id = run_id

    def expand(self, dead):
        return (
            dead
            | "ToRows" >> beam.Map(dead_letter_row)
            | "Write"
            >> WriteToAvro(
                output_prefix(self._output, DEAD_LETTER, self._run_id),
                schema=avro_schema(DEAD_LETTER, dead_letter_fields()),
                file_name_suffix=".avro",
            )
        )
