"""Helpers shared by tests: reading a run's Avro output back."""

from __future__ import annotations

import glob
import os

import fastavro


def read_table(output: str, table: str) -> list[dict]:
    """Every record of ``<output>/<table>/*.avro``, read with the schema stored in each file."""
    rows = []
    for path in sorted(glob.glob(os.path.join(output, table, "*.avro"))):
        with open(path, "rb") as handle:
            rows.extend(fastavro.reader(handle))
    return rows


def read_all(output: str, tables) -> dict[str, list[dict]]:
    return {t: sorted(read_table(output, t), key=lambda r: r.get("example_id") or r.get("element_id")) for t in tables}
