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


def prompt_requests(n: int, category: str, language: str, run_seed: int, id_prefix: str = "element") -> list:
    """``n`` rendered generate-stage PromptRequests of one brainstormed category, in one language."""
    from transforms.elements import Element
    from transforms.render import render

    elements = [
        Element(
            f"{id_prefix}-{i:03d}",
            category,
            "generate",
            task=f"Given topic {i}, find a paraphrase.",
            attributes=(("language", language),),
        )
        for i in range(n)
    ]
    return [render(e, run_seed) for e in elements]
