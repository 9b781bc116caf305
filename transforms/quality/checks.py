"""Constraint checks of one example row against what its prompt asked for; pure functions, named results."""

from __future__ import annotations

import dataclasses
import functools
import logging
import re

from transforms import recipe
from transforms.quality.dedup import jaccard, shingles
from transforms.quality.langid import NO_SPACE_LANGUAGES

__all__ = [
    "CheckSettings",
    "check_row",
    "check_names",
    "count_words",
    "length_bounds",
    "field_language",
    "is_copied",
    "CHECK_KINDS",
]

_LOGGER = logging.getLogger(__name__)

# Check names are "<kind>:<detail>"; a name in a row's quality_failures names the defect found.
CHECK_KINDS = {
    "language": "the text is not in the requested language (bitext: S1 in the source, S2/S3 in the target)",
    "echo": "the text is, or starts with, a field name of the prompt ('S1: ...', 'S3', 'user_query: ...')",
    "length": "the word count is outside what was asked ('at least N': from N less a tolerance; 'less than N': under)",
    "copied": "the first text appears verbatim in the second (query copied into a document, label in its text)",
    "same": "two texts that must differ are equal or nearly equal",
    "duplicate": "the example nearly duplicates an earlier example of the run (kept: the earlier one)",
    "negative_beats_positive": "the embedding model scores the negative closer to the anchor than the positive",
}

# Word counts of the named lengths a declaration can ask for (transforms/recipe.py OutputField.length).
_NAMED_WORDS = {
    "phrase": (2, 15),
    "sentence": (4, 60),
    "passage": (25, float("inf")),
    "very short": (1, 40),  # "a sentence or a phrase"
}
_PUNCT_EDGES = re.compile(r"^[\W_]+|[\W_]+$", re.UNICODE)
_NUMBER = re.compile(r"\d+")


@dataclasses.dataclass(frozen=True)
class CheckSettings:
    """Tolerances of the light checks.

    Attributes:
        word_count_tolerance: For "about N words", counts within N*(1-t)..N*(1+t) pass; for "at least N words",
            counts from N*(1-t) up.
        same_threshold: Two texts whose word-bigram Jaccard reaches this are "the same".
    """

    word_count_tolerance: float = 0.5
    same_threshold: float = 0.9


def count_words(text: str, language: str) -> int | None:
    """Whitespace-separated tokens that contain a letter or digit; None for languages written without spaces."""
    if language in NO_SPACE_LANGUAGES:
        return None
    return sum(1 for token in text.split() if any(ch.isalnum() for ch in token))


def length_bounds(value: str, tolerance: float) -> tuple[float, float]:
    """(low, high) inclusive word-count bounds of a length in the recipe's words.

    "less than N" passes anything under N; "at least N" anything from N up, with ``tolerance`` below N;
    "N to M" passes N..M; a bare "N" or "about N" passes N*(1-t)..N*(1+t); "phrase", "sentence", "passage" and
    "very short" have fixed ranges. A trailing "words" is optional.
    """
    text = value.casefold().strip()
    text = text[: -len(" words")].strip() if text.endswith(" words") else text
    if text in _NAMED_WORDS:
        return _NAMED_WORDS[text]
    numbers = [int(n) for n in _NUMBER.findall(text)]
    if text.startswith("less than") and numbers:
        return 0, numbers[0] - 1
    if text.startswith("at least") and numbers:
        return numbers[0] * (1 - tolerance), float("inf")
    if " to " in text and len(numbers) == 2:
        return numbers[0], numbers[1]
    if len(numbers) == 1:  # "about N words"
        return numbers[0] * (1 - tolerance), numbers[0] * (1 + tolerance)
    raise ValueError(f"cannot read a word count from {value!r}")


def field_language(row: dict, task_type: recipe.TaskType, key: str) -> str:
    """The XLM-R code the output ``key`` was asked to be in (its declaration names the attribute)."""
    return row[task_type.output(key).language]


def _normalize(text: str) -> str:
    return " ".join(_PUNCT_EDGES.sub("", token) for token in text.casefold().split()).strip()


def _contains(haystack: str, needle: str) -> bool:
    needle = _normalize(needle)
    if not needle:
        return False
    return re.search(r"(?<!\w)" + re.escape(needle) + r"(?!\w)", _normalize(haystack)) is not None


@functools.cache
def _echo_pattern(task_type: recipe.TaskType) -> re.Pattern:
    keys = task_type.output_keys
    spellings = sorted({k for key in keys for k in (key, key.replace("_", " "))}, key=len, reverse=True)
    return re.compile(r"^\W*(?:" + "|".join(map(re.escape, spellings)) + r")(?:\s*[:=.\-]|\W*$)", re.IGNORECASE)


def check_names(task_type: recipe.TaskType) -> tuple[str, ...]:
    """Every light-check name that applies to rows of ``task_type``, in a fixed order."""
    names = [f"language:{key}" for key in task_type.output_keys]
    names += [f"echo:{key}" for key in task_type.output_keys]
    names += [f"length:{f.key}" for f in task_type.outputs if f.length is not None]
    names += [f"copied:{rule.needle}->{rule.haystack}" for rule in task_type.copy_rules]
    names += [f"same:{a}={b}" for a, b in task_type.distinct_pairs]
    return tuple(names)


def is_copied(needle: str, haystack: str, min_words: int) -> bool:
    """Whether ``needle`` is copied into ``haystack``: equal if shorter than ``min_words``, else contained."""
    if len(needle.split()) < min_words:
        return _normalize(needle) == _normalize(haystack)
    return _contains(haystack, needle)


def check_row(row: dict, detector, settings: CheckSettings) -> tuple[list[str], list[str]]:
    """Run the light checks on one example row, as its task type's declaration states them.

    Args:
        row: An example row (as written by the generation job).
        detector: A LanguageDetector, or None to skip the language checks.
        settings: Tolerances.

    Returns:
        (names of the checks that ran, names of those that failed), each in check_names() order.
        A check that cannot apply (a word count in a language written without spaces) is not in either list.
    """
    task_type = recipe.get_task_type(row["category"])
    results: list[tuple[str, bool]] = []
    if detector is not None:
        for key in task_type.output_keys:
            results.append((f"language:{key}", detector.check(row[key], field_language(row, task_type, key))))
    echo = _echo_pattern(task_type)
    for key in task_type.output_keys:
        results.append((f"echo:{key}", echo.match(row[key]) is None))
    attributes = {name: row[name] for name in task_type.attribute_names}
    for field in task_type.outputs:
        rule = field.length_rule(attributes)
        if rule is None:
            continue
        low, high = length_bounds(rule, settings.word_count_tolerance)
        words = count_words(row[field.key], row[field.language])
        if words is not None:
            results.append((f"length:{field.key}", low <= words <= high))
    for rule in task_type.copy_rules:
        copied = is_copied(row[rule.needle], row[rule.haystack], rule.min_words)
        results.append((f"copied:{rule.needle}->{rule.haystack}", not copied))
    for a, b in task_type.distinct_pairs:
        same = _normalize(row[a]) == _normalize(row[b]) or (
            jaccard(shingles(row[a], 2), shingles(row[b], 2)) >= settings.same_threshold
        )
        results.append((f"same:{a}={b}", not same))
    return [name for name, _ in results], [name for name, ok in results if not ok]
