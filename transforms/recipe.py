"""The task-type declarations of the recipe: the single source of truth for every stage."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Mapping

from transforms.languages import DEFAULT_LANGUAGE_WEIGHTS, LANGUAGES, language_code, language_name

__all__ = [
    "Attribute",
    "OutputField",
    "CopyRule",
    "TaskType",
    "TASK_TYPES",
    "CATEGORIES",
    "BRAINSTORM_CATEGORIES",
    "SYMMETRIC_CATEGORIES",
    "LANGUAGES",
    "DEFAULT_LANGUAGE_WEIGHTS",
    "get_task_type",
    "language_code",
    "language_name",
    "BRAINSTORM_SCHEMA",
    "BRAINSTORM_MAX_TASKS",
    "register_task_type",
]


@dataclasses.dataclass(frozen=True)
class Attribute:
    """One attribute sampled per element (or pinned by the user).

    Attributes:
        name: Template variable and record field name.
        values: The closed set of allowed values; empty for language attributes,
            whose values come from the language pool.
        help: One line for ``--help``.
        differs_from: A language attribute whose value this one must never take (bitext: the target is never
            the source); the sampler draws around it and the flags are checked against it.
    """

    name: str
    values: tuple[str, ...]
    help: str
    differs_from: str | None = None

    @property
    def is_language(self) -> bool:
        return not self.values

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


@dataclasses.dataclass(frozen=True)
class OutputField:
    """One JSON key the model must return.

    Attributes:
        key: The JSON key (also the record field name).
        role: Training role: ``anchor``, ``positive`` or ``negative``.
        max_chars: Upper bound on the string length, given to constrained decoding
            so that generation always terminates; room for the longest text the prompt can ask for.
        length: The length the prompt asks for, in the recipe's words, with ``{attribute}`` read from the
            element: ``"at least {num_words} words"``, ``"{query_length}"``, ``"{unit}"``, ``"very short"``
            (see transforms/quality/checks.py length_bounds); None: no length is asked (a label).
        language: The attribute that holds the language this output is written in.
    """

    key: str
    role: str
    max_chars: int
    length: str | None = None
    language: str = "language"

    def length_rule(self, attributes: Mapping[str, str]) -> str | None:
        """The length asked of this output for an element with ``attributes``, e.g. "at least 300 words"."""
        return None if self.length is None else self.length.format(**attributes)


@dataclasses.dataclass(frozen=True)
class CopyRule:
    """The text of ``needle`` must not appear verbatim in ``haystack``.

    Attributes:
        needle: Output key that must not be copied.
        haystack: Output key it must not be copied into.
        min_words: Below this many words the needle only counts as copied when the haystack equals it
            (a one-word label inside a long text is a copy; a two-word query inside a document is not).
    """

    needle: str
    haystack: str
    min_words: int = 4


@dataclasses.dataclass(frozen=True)
class TaskType:
    """Everything about one task type of the recipe.

    Attributes:
        name: Category name (output table, ``--categories`` value).
        brainstorm: Whether tasks are brainstormed first (False: symmetric types, one element per example).
        attributes: What is sampled per element.
        outputs: The JSON keys of the reply, with their roles, lengths and languages.
        summary: One line for docs and ``--help``.
        copy_rules: Which outputs must not be copied into which.
        distinct: Pairs of outputs that must differ (None: every pair).
        instruction: The task definition of training rows when there is no brainstormed task
            (the paper's, for the symmetric types).
    """

    name: str
    brainstorm: bool
    attributes: tuple[Attribute, ...]
    outputs: tuple[OutputField, ...]
    summary: str
    copy_rules: tuple[CopyRule, ...] = ()
    distinct: tuple[tuple[str, str], ...] | None = None
    instruction: str | None = None
    # Names of the generate templates (prompts/generate/<type>/<name>.jinja2), one drawn per element;
    # empty: the single file prompts/generate/<type>.jinja2.
    templates: tuple[str, ...] = ()
    # Names of the brainstorm templates (prompts/brainstorm/<type>/<name>.jinja2); empty: brainstorm/<type>.jinja2.
    brainstorm_templates: tuple[str, ...] = ()

    @property
    def template_paths(self) -> tuple[str, ...]:
        """Paths (under prompts/) of the generate templates, in declaration order."""
        if not self.templates:
            return (f"generate/{self.name}.jinja2",)
        return tuple(f"generate/{self.name}/{t}.jinja2" for t in self.templates)

    @property
    def brainstorm_template_paths(self) -> tuple[str, ...]:
        """Paths (under prompts/) of the brainstorm templates; empty for the symmetric types."""
        if not self.brainstorm:
            return ()
        if not self.brainstorm_templates:
            return (f"brainstorm/{self.name}.jinja2",)
        return tuple(f"brainstorm/{self.name}/{t}.jinja2" for t in self.brainstorm_templates)

    @property
    def template(self) -> str:
        """The first generate template (the default when one is needed without an element)."""
        return self.template_paths[0]

    @property
    def brainstorm_template(self) -> str | None:
        return self.brainstorm_template_paths[0] if self.brainstorm else None

    @property
    def attribute_names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.attributes)

    @property
    def output_keys(self) -> tuple[str, ...]:
        return tuple(f.key for f in self.outputs)

    @property
    def distinct_pairs(self) -> tuple[tuple[str, str], ...]:
        """The pairs of output keys that must differ, in declaration order."""
        if self.distinct is not None:
            return self.distinct
        keys = self.output_keys
        return tuple((a, b) for i, a in enumerate(keys) for b in keys[i + 1 :])

    @property
    def language_attributes(self) -> tuple[str, ...]:
        """The language attributes the outputs are written in, in output order, without repeats."""
        return tuple(dict.fromkeys(f.language for f in self.outputs))

    def language_label(self, values: Mapping[str, str]) -> str:
        """The language(s) of an element or row with attribute ``values``: ``sw``, or ``en->sw`` for two."""
        return "->".join(values[name] for name in self.language_attributes)

    def output(self, key: str) -> OutputField:
        for f in self.outputs:
            if f.key == key:
                return f
        raise KeyError(f"{self.name} has no output {key!r}")

    def attribute(self, name: str) -> Attribute:
        for a in self.attributes:
            if a.name == name:
                return a
        raise KeyError(f"{self.name} has no attribute {name!r}")

    def role(self, role: str) -> str | None:
        """The output key that plays ``role`` (anchor/positive/negative), or None."""
        for f in self.outputs:
            if f.role == role:
                return f.key
        return None

    def json_schema(self, max_chars: Mapping[str, int] | None = None) -> dict:
        """The JSON schema the model's reply must satisfy (all keys required strings).

        ``max_chars`` narrows the string lengths of one request (what its prompt asks for); default: the declared.
        """
        limits = {f.key: f.max_chars for f in self.outputs} | dict(max_chars or {})
        return {
            "type": "object",
            "properties": {f.key: {"type": "string", "minLength": 1, "maxLength": limits[f.key]} for f in self.outputs},
            "required": list(self.output_keys),
            "additionalProperties": False,
        }


_CLARITY = Attribute(
    "clarity", ("clear", "understandable with some effort", "ambiguous"), "How clear the query or text is."
)
_DIFFICULTY_ADVANCED = ("high school", "college", "PhD")
_DIFFICULTY_BASIC = ("elementary school", "high school", "college")
_LANGUAGE = Attribute("language", (), "Language of the generated texts.")
_UNIT = Attribute("unit", ("sentence", "phrase", "passage"), "Length unit of the symmetric texts.")
_HIGH_SCORE = Attribute("high_score", ("4", "4.5", "5"), "Similarity score S1 and S2 should have (1-5).")
# Template names per type (the paper mixes several templates per type); the same three framings everywhere.
_TEMPLATES = ("brief", "checklist", "scenario")

TASK_TYPES: tuple[TaskType, ...] = (
    TaskType(
        name="text-retrieval",
        brainstorm=True,
        summary="short query -> long document",
        templates=_TEMPLATES,
        brainstorm_templates=_TEMPLATES,
        attributes=(
            Attribute("query_type", ("extremely long-tail", "long-tail", "common"), "How common the query is."),
            Attribute(
                "query_length", ("less than 5 words", "5 to 15 words", "at least 10 words"), "Length of the query."
            ),
            Attribute("difficulty", _DIFFICULTY_ADVANCED, "Education level needed to understand the query."),
            _CLARITY,
            Attribute("num_words", ("50", "100", "200", "300", "400", "500"), "Length of the documents in words."),
            _LANGUAGE,
        ),
        outputs=(
            OutputField("user_query", "anchor", 400, length="{query_length}"),
            OutputField("positive_document", "positive", 6000, length="at least {num_words} words"),
            OutputField("hard_negative_document", "negative", 6000, length="at least {num_words} words"),
        ),
        copy_rules=(CopyRule("user_query", "positive_document"), CopyRule("user_query", "hard_negative_document")),
    ),
    TaskType(
        name="text-classification",
        brainstorm=True,
        summary="long text -> short label",
        templates=_TEMPLATES,
        brainstorm_templates=_TEMPLATES,
        attributes=(
            Attribute(
                "num_words",
                ("less than 10", "at least 10", "at least 50", "at least 100", "at least 200"),
                "Length of the input text in words.",
            ),
            Attribute("difficulty", _DIFFICULTY_ADVANCED, "Education level needed to understand the text."),
            _CLARITY,
            _LANGUAGE,
        ),
        outputs=(
            OutputField("input_text", "anchor", 3000, length="{num_words} words"),
            OutputField("label", "positive", 200),
            OutputField("misleading_label", "negative", 200),
        ),
        # Neither label appears in the text.
        copy_rules=(CopyRule("label", "input_text", 1), CopyRule("misleading_label", "input_text", 1)),
    ),
    TaskType(
        name="text-matching-short",
        brainstorm=True,
        summary="short text <-> short text",
        templates=_TEMPLATES,
        brainstorm_templates=_TEMPLATES,
        attributes=(_LANGUAGE,),
        outputs=(
            OutputField("input", "anchor", 400, length="very short"),
            OutputField("positive_document", "positive", 400, length="very short"),
        ),
        copy_rules=(CopyRule("input", "positive_document"),),
    ),
    TaskType(
        name="text-matching-long",
        brainstorm=True,
        summary="long text <-> long text",
        templates=_TEMPLATES,
        brainstorm_templates=_TEMPLATES,
        attributes=(_LANGUAGE,),
        outputs=(
            OutputField("input", "anchor", 4500, length="at least 300 words"),
            OutputField("positive_document", "positive", 4500, length="at least 300 words"),
        ),
        copy_rules=(CopyRule("input", "positive_document"),),
    ),
    TaskType(
        name="monolingual-triplet",
        brainstorm=False,
        summary="semantic textual similarity triplets in one language",
        templates=_TEMPLATES,
        attributes=(
            _UNIT,
            Attribute("difficulty", _DIFFICULTY_BASIC, "Education level needed to understand the texts."),
            _HIGH_SCORE,
            Attribute("low_score", ("2.5", "3", "3.5"), "Similarity score S1 and S3 should have (1-5)."),
            _LANGUAGE,
        ),
        outputs=(
            OutputField("S1", "anchor", 1500, length="{unit}"),
            OutputField("S2", "positive", 1500, length="{unit}"),
            OutputField("S3", "negative", 1500, length="{unit}"),
        ),
        instruction="Retrieve semantically similar text.",
    ),
    TaskType(
        name="bitext-retrieval",
        brainstorm=False,
        summary="translation pairs with a flawed translation as hard negative",
        templates=_TEMPLATES,
        attributes=(
            _UNIT,
            Attribute("difficulty", _DIFFICULTY_BASIC, "Education level needed to understand the texts."),
            _HIGH_SCORE,
            Attribute("low_score", ("1.5", "2", "2.5"), "Similarity score S1 and S3 should have (1-5)."),
            Attribute("source_language", (), "Language of S1."),
            Attribute(
                "target_language",
                (),
                "Language of S2 and S3 (never the source language).",
                differs_from="source_language",
            ),
        ),
        outputs=(
            OutputField("S1", "anchor", 1500, length="{unit}", language="source_language"),
            OutputField("S2", "positive", 1500, length="{unit}", language="target_language"),
            OutputField("S3", "negative", 1500, length="{unit}", language="target_language"),
        ),
        instruction="Retrieve parallel sentences.",
    ),
)

CATEGORIES: tuple[str, ...] = ()
BRAINSTORM_CATEGORIES: tuple[str, ...] = ()
SYMMETRIC_CATEGORIES: tuple[str, ...] = ()
_BY_NAME: dict[str, TaskType] = {}


def _index(task_types: tuple[TaskType, ...]) -> None:
    """Set TASK_TYPES and the name tuples every stage reads (module attributes, read at call time)."""
    global TASK_TYPES, CATEGORIES, BRAINSTORM_CATEGORIES, SYMMETRIC_CATEGORIES
    TASK_TYPES = task_types
    CATEGORIES = tuple(t.name for t in task_types)
    BRAINSTORM_CATEGORIES = tuple(t.name for t in task_types if t.brainstorm)
    SYMMETRIC_CATEGORIES = tuple(t.name for t in task_types if not t.brainstorm)
    _BY_NAME.clear()
    _BY_NAME.update({t.name: t for t in task_types})


_index(TASK_TYPES)


@contextlib.contextmanager
def register_task_type(task_type: TaskType) -> Iterator[TaskType]:
    """Add a task type for the duration of a ``with`` block (tests declare toy types with it).

    Every stage reads the declarations through this module at call time, so the new type is sampled, rendered,
    parsed, written, checked and exported like the six of the recipe. Its templates must exist (see
    transforms/render.py). The process-local registry is restored on exit; the DirectRunner runs in-process.
    """
    if task_type.name in _BY_NAME:
        raise ValueError(f"task type {task_type.name!r} is already declared")
    for f in task_type.outputs:
        if f.language not in task_type.attribute_names:
            raise ValueError(f"{task_type.name}: output {f.key!r} is in {f.language!r}, which is not an attribute")
    before = TASK_TYPES
    _index((*before, task_type))
    try:
        yield task_type
    finally:
        _index(before)


BRAINSTORM_MAX_TASKS = 20
BRAINSTORM_SCHEMA: dict = {
    "type": "array",
    "items": {"type": "string", "minLength": 1, "maxLength": 300},
    "minItems": 1,
    "maxItems": BRAINSTORM_MAX_TASKS,
}


def get_task_type(name: str) -> TaskType:
    """The declaration of category ``name``; KeyError names the allowed categories."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown category {name!r}; allowed: {', '.join(CATEGORIES)}") from None
