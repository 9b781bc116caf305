"""The task-type declarations of the recipe: the single source of truth for every stage."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

__all__ = [
    "Attribute",
    "OutputField",
    "TaskType",
    "TASK_TYPES",
    "CATEGORIES",
    "BRAINSTORM_CATEGORIES",
    "SYMMETRIC_CATEGORIES",
    "LANGUAGES",
    "DEFAULT_LANGUAGE_WEIGHTS",
    "get_task_type",
    "language_name",
    "BRAINSTORM_SCHEMA",
    "BRAINSTORM_MAX_TASKS",
]


@dataclasses.dataclass(frozen=True)
class Attribute:
    """One attribute sampled per element (or pinned by the user).

    Attributes:
        name: Template variable and record field name.
        values: The closed set of allowed values; empty for language attributes,
            whose values come from the language pool.
        help: One line for ``--help``.
    """

    name: str
    values: tuple[str, ...]
    help: str

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
            so that generation always terminates.
    """

    key: str
    role: str
    max_chars: int


@dataclasses.dataclass(frozen=True)
class TaskType:
    """Everything about one task type of the recipe."""

    name: str
    brainstorm: bool
    attributes: tuple[Attribute, ...]
    outputs: tuple[OutputField, ...]
    summary: str
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

    def json_schema(self) -> dict:
        """The JSON schema the model's reply must satisfy (all keys required strings)."""
        return {
            "type": "object",
            "properties": {f.key: {"type": "string", "minLength": 1, "maxLength": f.max_chars} for f in self.outputs},
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
            OutputField("user_query", "anchor", 400),
            OutputField("positive_document", "positive", 4000),
            OutputField("hard_negative_document", "negative", 4000),
        ),
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
            OutputField("input_text", "anchor", 2400),
            OutputField("label", "positive", 200),
            OutputField("misleading_label", "negative", 200),
        ),
    ),
    TaskType(
        name="text-matching-short",
        brainstorm=True,
        summary="short text <-> short text",
        templates=_TEMPLATES,
        brainstorm_templates=_TEMPLATES,
        attributes=(_LANGUAGE,),
        outputs=(
            OutputField("input", "anchor", 400),
            OutputField("positive_document", "positive", 400),
        ),
    ),
    TaskType(
        name="text-matching-long",
        brainstorm=True,
        summary="long text <-> long text",
        templates=_TEMPLATES,
        brainstorm_templates=_TEMPLATES,
        attributes=(_LANGUAGE,),
        outputs=(
            OutputField("input", "anchor", 3000),
            OutputField("positive_document", "positive", 3000),
        ),
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
            OutputField("S1", "anchor", 1500),
            OutputField("S2", "positive", 1500),
            OutputField("S3", "negative", 1500),
        ),
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
            Attribute("target_language", (), "Language of S2 and S3 (never the source language)."),
        ),
        outputs=(
            OutputField("S1", "anchor", 1500),
            OutputField("S2", "positive", 1500),
            OutputField("S3", "negative", 1500),
        ),
    ),
)

CATEGORIES: tuple[str, ...] = tuple(t.name for t in TASK_TYPES)
BRAINSTORM_CATEGORIES: tuple[str, ...] = tuple(t.name for t in TASK_TYPES if t.brainstorm)
SYMMETRIC_CATEGORIES: tuple[str, ...] = tuple(t.name for t in TASK_TYPES if not t.brainstorm)
_BY_NAME: Mapping[str, TaskType] = {t.name: t for t in TASK_TYPES}

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


# XLM-R's 100 languages (Conneau et al. 2020, Appendix A): code -> English name used in prompts.
LANGUAGES: Mapping[str, str] = {
    "af": "Afrikaans", "am": "Amharic", "ar": "Arabic", "as": "Assamese", "az": "Azerbaijani",
    "be": "Belarusian", "bg": "Bulgarian", "bn": "Bengali", "bn-rom": "Bengali (romanized)",
    "br": "Breton", "bs": "Bosnian", "ca": "Catalan", "cs": "Czech", "cy": "Welsh", "da": "Danish",
    "de": "German", "el": "Greek", "en": "English", "eo": "Esperanto", "es": "Spanish",
    "et": "Estonian", "eu": "Basque", "fa": "Persian", "fi": "Finnish", "fr": "French",
    "fy": "Western Frisian", "ga": "Irish", "gd": "Scottish Gaelic", "gl": "Galician",
    "gu": "Gujarati", "ha": "Hausa", "he": "Hebrew", "hi": "Hindi", "hi-rom": "Hindi (romanized)",
    "hr": "Croatian", "hu": "Hungarian", "hy": "Armenian", "id": "Indonesian", "is": "Icelandic",
    "it": "Italian", "ja": "Japanese", "jv": "Javanese", "ka": "Georgian", "kk": "Kazakh",
    "km": "Khmer", "kn": "Kannada", "ko": "Korean", "ku": "Kurdish", "ky": "Kyrgyz", "la": "Latin",
    "lo": "Lao", "lt": "Lithuanian", "lv": "Latvian", "mg": "Malagasy", "mk": "Macedonian",
    "ml": "Malayalam", "mn": "Mongolian", "mr": "Marathi", "ms": "Malay", "my": "Burmese",
    "my-zawgyi": "Burmese (Zawgyi encoding)", "ne": "Nepali", "nl": "Dutch", "no": "Norwegian",
    "om": "Oromo", "or": "Odia", "pa": "Punjabi", "pl": "Polish", "ps": "Pashto", "pt": "Portuguese",
    "ro": "Romanian", "ru": "Russian", "sa": "Sanskrit", "sd": "Sindhi", "si": "Sinhala",
    "sk": "Slovak", "sl": "Slovenian", "so": "Somali", "sq": "Albanian", "sr": "Serbian",
    "su": "Sundanese", "sv": "Swedish", "sw": "Swahili", "ta": "Tamil", "ta-rom": "Tamil (romanized)",
    "te": "Telugu", "te-rom": "Telugu (romanized)", "th": "Thai", "tl": "Tagalog", "tr": "Turkish",
    "ug": "Uyghur", "uk": "Ukrainian", "ur": "Urdu", "ur-rom": "Urdu (romanized)", "uz": "Uzbek",
    "vi": "Vietnamese", "xh": "Xhosa", "yi": "Yiddish", "zh-Hans": "Chinese (Simplified)",
    "zh-Hant": "Chinese (Traditional)",
}  # fmt: skip

_ENGLISH_WEIGHT = 0.431
_HIGH_RESOURCE = ("ar", "zh-Hans", "nl", "fr", "de", "id", "it", "ja", "fa", "pl", "pt", "ru", "es")
_HIGH_RESOURCE_WEIGHT = 0.029


def _default_weights() -> dict[str, float]:
    rest = [c for c in LANGUAGES if c != "en" and c not in _HIGH_RESOURCE]
    rest_weight = (1.0 - _ENGLISH_WEIGHT - _HIGH_RESOURCE_WEIGHT * len(_HIGH_RESOURCE)) / len(rest)
    weights = {c: rest_weight for c in rest}
    weights.update({c: _HIGH_RESOURCE_WEIGHT for c in _HIGH_RESOURCE})
    weights["en"] = _ENGLISH_WEIGHT
    return {c: weights[c] for c in LANGUAGES}


# English 0.431, thirteen high-resource languages 0.029 each, the other 86 share the rest uniformly.
DEFAULT_LANGUAGE_WEIGHTS: Mapping[str, float] = _default_weights()

_BY_LOWER = {**{c.lower(): c for c in LANGUAGES}, **{n.lower(): c for c, n in LANGUAGES.items()}}


def language_code(value: str) -> str:
    """Resolve a code (``sw``) or English name (``Swahili``) to its XLM-R code; KeyError if unknown."""
    code = _BY_LOWER.get(value.strip().lower())
    if code is None:
        raise KeyError(value)
    return code


def language_name(code: str) -> str:
    """English name of an XLM-R language code, as written into prompts."""
    return LANGUAGES[code]
