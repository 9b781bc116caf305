"""Row field lists, derived from the task-type declarations, and the Avro and BigQuery schemas built from them."""

from __future__ import annotations

import dataclasses
from typing import Any

from transforms import recipe
from transforms.elements import Completion, DeadLetter, PromptRequest

__all__ = [
    "Field",
    "example_fields",
    "quality_fields",
    "dead_letter_fields",
    "avro_schema",
    "bigquery_schema",
    "example_row",
    "dead_letter_row",
    "DEAD_LETTER",
    "table_name",
    "row_language",
]

DEAD_LETTER = "dead_letter"

_AVRO_TYPES = {"string": "string", "long": "long", "boolean": "boolean", "double": "double"}
_BQ_TYPES = {"string": "STRING", "long": "INTEGER", "boolean": "BOOLEAN", "double": "FLOAT"}


@dataclasses.dataclass(frozen=True)
class Field:
    """One column: name, scalar type (``string``/``long``/``boolean``/``double``), nullable, repeated, description."""

    name: str
    type: str
    description: str
    nullable: bool = False
    repeated: bool = False


def example_fields(task_type: recipe.TaskType) -> tuple[Field, ...]:
    """The columns of a category's example table, in order."""
    fields = [
        Field("example_id", "string", "Stable id: hash of run seed, category, task and repetition."),
        Field("category", "string", "Task type."),
    ]
    if task_type.brainstorm:
        fields.append(Field("task", "string", "The brainstormed task description."))
    for attr in task_type.attributes:
        kind = "XLM-R language code" if attr.is_language else "attribute"
        fields.append(Field(attr.name, "string", f"{kind}: {attr.help}"))
    for out in task_type.outputs:
        fields.append(Field(out.key, "string", f"Model output ({out.role})."))
    fields += [
        Field("model", "string", "Model that generated the example."),
        Field("template", "string", "Prompt template name."),
        Field("template_sha256", "string", "First 16 hex digits of the template text's SHA-256."),
        Field("run_seed", "long", "The run seed (--seed)."),
        Field("sampling_seed", "long", "Seed given to the model for this example's accepted attempt."),
        Field("attempts", "long", "Model calls made for this example."),
        Field("prompt_tokens", "long", "Prompt tokens of the accepted attempt."),
        Field("completion_tokens", "long", "Completion tokens of the accepted attempt."),
    ]
    fields += quality_fields()
    return tuple(fields)


def quality_fields() -> list[Field]:
    """The columns the quality stage (transforms/quality/stage.py) sets on every example row."""
    return [
        Field("quality_pass", "boolean", "True when every quality check that ran passed."),
        Field("quality_checks", "string", "Names of the quality checks that ran on this row.", repeated=True),
        Field("quality_failures", "string", "Names of the checks that failed (see docs/quality.md).", repeated=True),
        Field(
            "duplicate_of",
            "string",
            "example_id of the earlier row this one duplicates (rejected rows only).",
            nullable=True,
        ),
        Field(
            "sim_query_positive",
            "double",
            "Cosine similarity of anchor and positive (embedding checks).",
            nullable=True,
        ),
        Field(
            "sim_query_negative",
            "double",
            "Cosine similarity of anchor and negative (embedding checks).",
            nullable=True,
        ),
        Field("mined_negatives", "string", "Extra hard negatives mined from other rows' documents.", repeated=True),
        Field(
            "mined_negative_scores", "double", "Cosine similarity of the anchor and each mined negative.", repeated=True
        ),
    ]


def dead_letter_fields() -> tuple[Field, ...]:
    """The columns of the dead-letter table."""
    return (
        Field("element_id", "string", "Id of the element that did not become a row."),
        Field("category", "string", "Task type."),
        Field("stage", "string", "brainstorm or generate."),
        Field("reason", "string", "Reason of the last attempt (see README)."),
        Field("detail", "string", "Human-readable detail of the last failure."),
        Field("prompt", "string", "The prompt sent to the model."),
        Field("raw_text", "string", "The model's raw reply to the last attempt."),
        Field("model", "string", "Model that was called."),
        Field("attempts", "long", "Model calls made for this element."),
        Field("failures", "string", "Every attempt's reason, oldest first.", repeated=True),
    )


def table_name(name: str) -> str:
    """The Avro record name and BigQuery table of a category or dead_letter (``text-retrieval``: ``text_retrieval``)."""
    return name.replace("-", "_")


def row_language(row: dict, category: str | None = None) -> str:
    """A row's language (or its element's attributes', with ``category``): the code, or ``source->target`` when
    its outputs are in two languages (bitext), as its task type declares."""
    return recipe.get_task_type(category or row["category"]).language_label(row)


def avro_schema(name: str, fields: tuple[Field, ...]) -> dict:
    """An Avro record schema (a dict fastavro parses) for ``fields``."""
    avro_fields = []
    for f in fields:
        avro_type: Any = _AVRO_TYPES[f.type]
        if f.repeated:
            avro_type = {"type": "array", "items": avro_type}
        elif f.nullable:
            avro_type = ["null", avro_type]
        avro_fields.append({"name": f.name, "type": avro_type, "doc": f.description})
    return {"type": "record", "name": table_name(name), "namespace": "embedgen", "fields": avro_fields}


def bigquery_schema(fields: tuple[Field, ...]) -> dict:
    """A BigQuery table schema (the JSON form WriteToBigQuery takes) for ``fields``."""
    return {
        "fields": [
            {
                "name": f.name,
                "type": _BQ_TYPES[f.type],
                "mode": "REPEATED" if f.repeated else ("NULLABLE" if f.nullable else "REQUIRED"),
                "description": f.description,
            }
            for f in fields
        ]
    }


def example_row(request: PromptRequest, completion: Completion, outputs: dict, run_seed: int) -> dict:
    """The output row of one validated example, with exactly the fields of example_fields()."""
    element = request.element
    task_type = recipe.get_task_type(element.category)
    row: dict[str, Any] = {"example_id": element.element_id, "category": element.category}
    if task_type.brainstorm:
        row["task"] = element.task
    row.update(dict(element.attributes))
    row.update(outputs)
    row.update(
        model=completion.model,
        template=request.template,
        template_sha256=request.template_sha256,
        run_seed=run_seed,
        sampling_seed=request.sampling_seed,
        attempts=request.attempt + 1,
        prompt_tokens=completion.prompt_tokens,
        completion_tokens=completion.completion_tokens,
    )
    # Until the quality stage has run on it, a row has no checks (so none failed) and no similarities.
    row.update(
        quality_pass=True,
        quality_checks=[],
        quality_failures=[],
        duplicate_of=None,
        sim_query_positive=None,
        sim_query_negative=None,
        mined_negatives=[],
        mined_negative_scores=[],
    )
    return row


def dead_letter_row(dead: DeadLetter) -> dict:
    """The dead-letter row of one DeadLetter."""
    row = dead._asdict()
    row["failures"] = list(dead.failures)
    return row
