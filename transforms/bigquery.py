"""WriteExamplesToBigQuery and WriteDeadLettersToBigQuery: one table per category plus dead_letter, by file loads."""

from __future__ import annotations

import dataclasses
import logging
import re

import apache_beam as beam

from transforms import recipe
from transforms.records import (
    DEAD_LETTER,
    bigquery_schema,
    dead_letter_fields,
    dead_letter_row,
    example_fields,
    table_name,
)

__all__ = ["BigQueryTarget", "WriteExamplesToBigQuery", "WriteDeadLettersToBigQuery", "table_name"]

_LOGGER = logging.getLogger(__name__)

_PROJECT = re.compile(r"^(?:[a-z0-9.-]+:)?[a-z][a-z0-9-]{4,28}[a-z0-9]$")  # optional domain, 6-30 characters
_DATASET = re.compile(r"^\w{1,1024}$")


@dataclasses.dataclass(frozen=True)
class BigQueryTarget:
    """Where and how rows are loaded.

    Attributes:
        project: Project of the dataset.
        dataset: Dataset that holds (or will hold) the tables.
        run_date: ``YYYY-MM-DD``: tables are partitioned by day and rows go to this day's partition.
        overwrite: Replace the table (or, with ``run_date``, that day's partition) instead of appending.
    """

    project: str
    dataset: str
    run_date: str | None = None
    overwrite: bool = False

    @classmethod
    def parse(cls, spec: str, default_project: str | None, run_date: str | None = None, overwrite: bool = False):
        """``PROJECT:DATASET`` (or ``DATASET`` with ``default_project``); ValueError says what is wrong."""
        project, colon, dataset = spec.rpartition(":") if ":" in spec else (default_project, "", spec)
        if not project:
            raise ValueError(f"{spec!r} names no project; give PROJECT:DATASET, or pass --project")
        if not _PROJECT.match(project):
            raise ValueError(f"{project!r} is not a Google Cloud project id (6-30 lower-case letters, digits, hyphens)")
        if not _DATASET.match(dataset):
            raise ValueError(f"{dataset!r} is not a dataset name (letters, digits and underscores)")
        return cls(project, dataset, run_date, overwrite)

    @property
    def dataset_spec(self) -> str:
        """``PROJECT:DATASET``."""
        return f"{self.project}:{self.dataset}"

    def table(self, name: str) -> str:
        """The table spec of a category or dead_letter, with the day's partition decorator when partitioned."""
        spec = f"{self.dataset_spec}.{table_name(name)}"
        return spec + "$" + self.run_date.replace("-", "") if self.run_date else spec

    @property
    def write_disposition(self) -> str:
        """``WRITE_TRUNCATE`` with ``overwrite`` (BigQueryDisposition's values), else ``WRITE_APPEND``."""
        return "WRITE_TRUNCATE" if self.overwrite else "WRITE_APPEND"

    @property
    def table_parameters(self) -> dict:
        """Parameters of tables created by the load: daily partitions when rows carry a run date."""
        return {"timePartitioning": {"type": "DAY"}} if self.run_date else {}

    def write(self, table, schema) -> beam.PTransform:
        """A WriteToBigQuery by batch file loads, tables created from ``schema`` if missing.

        ``table`` and ``schema`` are a table spec and its schema, or functions (row -> spec, spec -> schema).
        """
        from apache_beam.io.gcp.bigquery import BigQueryDisposition, WriteToBigQuery  # needs apache-beam[gcp]

        return WriteToBigQuery(
            table,
            schema=schema,
            method=WriteToBigQuery.Method.FILE_LOADS,
            create_disposition=BigQueryDisposition.CREATE_IF_NEEDED,
            write_disposition=self.write_disposition,
            additional_bq_parameters=self.table_parameters,
        )


class _TableOfRow:
    """Picklable: the table spec of an example row (its category's table)."""

    def __init__(self, target: BigQueryTarget):
        self._target = target

    def __call__(self, row: dict) -> str:
        return self._target.table(row["category"])


class _SchemaOfTable:
    """Picklable: the schema of a category table, from its spec (``project:dataset.table[$partition]``)."""

    def __init__(self, categories):
        self._schemas = {table_name(c): bigquery_schema(example_fields(recipe.get_task_type(c))) for c in categories}

    def __call__(self, destination) -> dict:
        table = getattr(destination, "tableId", None) or str(destination).rsplit(".", 1)[-1]
        return self._schemas[table.split("$")[0]]


class WriteExamplesToBigQuery(beam.PTransform):
    """Rows -> one BigQuery table per category, its schema derived from the same field list as the Avro schema.

    One WriteToBigQuery with a table per row's category (building the file-load graph once, not per category).
    """

    def __init__(self, target: BigQueryTarget, categories):
        super().__init__()
        self._target = target
        self._categories = tuple(categories)

    def expand(self, rows):
        return rows | "Load" >> self._target.write(_TableOfRow(self._target), _SchemaOfTable(self._categories))


class WriteDeadLettersToBigQuery(beam.PTransform):
    """DeadLetters -> the dead_letter BigQuery table."""

    def __init__(self, target: BigQueryTarget):
        super().__init__()
        self._target = target

    def expand(self, dead):
        return (
            dead
            | "ToRows" >> beam.Map(dead_letter_row)
            | "Load" >> self._target.write(self._target.table(DEAD_LETTER), bigquery_schema(dead_letter_fields()))
        )
