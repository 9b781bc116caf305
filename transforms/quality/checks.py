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
    "CHECK_KINDS",
]

_LOGGER = logging.getLogger(__name__)

# Check names are "<kind>:<detail>"; a name in a row's quality_failures names the defect found.
CHECK_KINDS = {
    "language": "the text is not in the requested language (bitext: S1 in the source, S2/S3 in the target)",
    "echo": "the text is, or starts with, a field name of the prompt ('S1: ...', 'S3', 'user_query: ...')",
    "length": "the word count is outside what was asked (num_words, query_length, unit, or the prompt's wording)",
    "copied": "the first text appears verbatim in the second (query copied into a document, label in its text)",
    "same": "two texts that must differ are equal or nearly equal",
    "duplicate": "the example nearly duplicates an earlier example of the run (kept: the earlier one)",
    "negative_beats_positive": "the embedding model scores the negative closer to the anchor than the positive",
}

# What bounds the length of which roles: an attribute's value, or (after "=") what the prompt asks in words.
_LENGTH_RULES: dict[str, tuple] = {
    "text-retrieval": (("query_length", ("anchor",)), ("num_words", ("positive", "negative"))),
    "text-classification": (("num_words", ("anchor",)),),
    "text-matching-short": (("=1 to 40 words", ("anchor", "positive")),),  # "a few words or one sentence"
    "text-matching-long": (("=at least 30 words", ("anchor", "positive")),),  # "at least one paragraph"
    "monolingual-triplet": (("unit", ("anchor", "positive", "negative")),),
    "bitext-retrieval": (("unit", ("anchor", "positive", "negative")),),
}
# Word counts read into the STS "unit" attribute.
_UNIT_WORDS = {"phrase": (2, 15), "sentence": (4, 60), "passage": (25, float("inf"))}
# (needle role, haystack role, minimum needle words for containment to count as copying).
_COPY_RULES: dict[str, tuple] = {
    "text-retrieval": (("anchor", "positive", 4), ("anchor", "negative", 4)),
    "text-classification": (("positive", "anchor", 1),),  # "The text must not contain its label."
    "text-matching-short": (("anchor", "positive", 4),),  # "in different words"
    "text-matching-long": (("anchor", "positive", 4),),
}
_PUNCT_EDGES = re.compile(r"^[\W_]+|[\W_]+$", re.UNICODE)
_NUMBER = re.compile(r"\d+")


@dataclasses.dataclass(frozen=True)
class CheckSettings:
    """Tolerances of the light checks.

    Attributes:
        word_count_tolerance: For "about N words", counts within N*(1-t)..N*(1+t) pass.
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
    """(low, high) inclusive word-count bounds of an attribute value such as "less than 5 words" or "300"."""
    numbers = [int(n) for n in _NUMBER.findall(value)]
    text = value.casefold()
    if text in _UNIT_WORDS:
        return _UNIT_WORDS[text]
    if text.startswith("less than"):
        return 0, numbers[0] - 1
    if text.startswith("at least"):
        return numbers[0], float("inf")
    if " to " in text:
        return numbers[0], numbers[1]
    if len(numbers) == 1:  # "about N words"
        return numbers[0] * (1 - tolerance), numbers[0] * (1 + tolerance)
    raise ValueError(f"cannot read a word count from {value!r}")


def field_language(row: dict, task_type: recipe.TaskType, key: str) -> str:
    """The XLM-R code the output ``key`` was asked to be in (bitext: anchor in the source, others in the target)."""
    if "language" in task_type.attribute_names:
        return row["language"]
    anchor = task_type.role("anchor")
    return row["source_language"] if key == anchor else row["target_language"]


def _normalize(text: str) -> str:
    return " ".join(_PUNCT_EDGES.sub("", token) for token in text.casefold().split()).strip()


def _contains(haystack: str, needle: str) -> bool:
    needle = _normalize(needle)
    if not needle:
        return False
    return re.search(r"(?<!\w)" + re.escape(needle) + r"(?!\w)", _normalize(haystack)) is not None


@functools.cache
def _echo_pattern(category: str) -> re.Pattern:
    keys = recipe.get_task_type(category).output_keys
    spellings = sorted({k for key in keys for k in (key, key.replace("_", " "))}, key=len, reverse=True)
    return re.compile(r"^\W*(?:" + "|".join(map(re.escape, spellings)) + r")(?:\s*[:=.\-]|\W*$)", re.IGNORECASE)


def check_names(task_type: recipe.TaskType) -> tuple[str, ...]:
    """Every light-check name that applies to rows of ``task_type``, in a fixed order."""
    names = [f"language:{key}" for key in task_type.output_keys]
    names += [f"echo:{key}" for key in task_type.output_keys]
    for _attribute, roles in _LENGTH_RULES.get(task_type.name, ()):
        names += [f"length:{task_type.role(role)}" for role in roles]
    for needle, haystack, _ in _COPY_RULES.get(task_type.name, ()):
        names.append(f"copied:{task_type.role(needle)}->{task_type.role(haystack)}")
    keys = task_type.output_keys
    names += [f"same:{a}={b}" for i, a in enumerate(keys) for b in keys[i + 1 :]]
    return tuple(names)


def check_row(row: dict, detector, settings: CheckSettings) -> tuple[list[str], list[str]]:
    """Run the light checks on one example row.

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
    echo = _echo_pattern(task_type.name)
    for key in task_type.output_keys:
        results.append((f"echo:{key}", echo.match(row[key]) is None))
    for source, roles in _LENGTH_RULES.get(task_type.name, ()):
        low, high = length_bounds(source[1:] if source.startswith("=") else row[source], settings.word_count_tolerance)
        for role in roles:
            key = task_type.role(role)
            words = count_words(row[key], field_language(row, task_type, key))
            if words is not None:
                results.append((f"length:{key}", low <= words <= high))
    for needle_role, haystack_role, min_words in _COPY_RULES.get(task_type.name, ()):
        needle, haystack = task_type.role(needle_role), task_type.role(haystack_role)
        short = len(row[needle].split()) < min_words
        copied = (
            _normalize(row[needle]) == _normalize(row[haystack]) if short else _contains(row[haystack], row[needle])
        )
        results.append((f"copied:{needle}->{haystack}", not copied))
    keys = task_type.output_keys
    for i, a in enumerate(keys):
        for b in keys[i + 1 :]:
            same = _normalize(row[a]) == _normalize(row[b]) or (
                jaccard(shingles(row[a], 2), shingles(row[b], 2)) >= settings.same_threshold
            )
            results.append((f"same:{a}={b}", not same))
    return [name for name, _ in results], [name for name, ok in results if not ok]
