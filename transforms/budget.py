"""The completion-token budget of each request, from what its prompt asks (lengths, fields, scripts), and its cap."""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping

from transforms import recipe
from transforms.elements import STAGE_BRAINSTORM, Element
from transforms.quality.langid import NO_SPACE_LANGUAGES, expected_scripts

__all__ = [
    "BudgetSpec",
    "budget_spec",
    "token_budget_for",
    "char_limits",
    "expected_words",
    "tokens_per_word",
    "tokens_per_char",
    "chars_per_word",
    "BRAINSTORM_TOKENS_PER_TASK",
]


# Characters per word, and tokens per character by writing system, for tokenizers trained mostly on Latin-script
# text (generous for larger multilingual ones; ~2.5 characters a token also covers digits, URLs and markup). A
# field's token budget is its character limit times its script's tokens per character, so a reply whose strings
# run to the grammar's limit still closes before its token cap.
_CHARS_PER_WORD = 6.5
_CHARS_PER_WORD_NO_SPACE = {"CJK": 2.0, "HIRAGANA": 2.0, "KATAKANA": 2.0}  # other unspaced scripts: 5
_TOKENS_PER_CHAR = {"LATIN": 0.4, "CYRILLIC": 0.7, "GREEK": 0.8, "ARABIC": 0.7, "HEBREW": 0.7, "CJK": 1.3}
_OTHER_SCRIPT = 1.2  # Indic, Ethiopic, Georgian, Armenian, Thai, Khmer, ...: byte-level tokens, several a letter
# Words a length the recipe names may take at most (an "at least N" text gets room to go past N).
_AT_LEAST_ROOM = 1.5
_NAMED_WORDS = {"phrase": 15, "sentence": 50, "passage": 200, "very short": 40}
_NUMBER = re.compile(r"\d+")
_LABEL_WORDS = 12  # an output without a declared length (a label)
_SLACK_CHARS = 24
_PROMPT_ROOM = 512  # context tokens left for the prompt when the ceiling comes from --n-ctx
_FIELD_OVERHEAD = 8  # the key, quotes, colon, comma and escapes of one JSON field
# One brainstormed task: a sentence of about 20 words, its quotes and comma.
BRAINSTORM_TOKENS_PER_TASK = 40


@dataclasses.dataclass(frozen=True)
class BudgetSpec:
    """How budgets are sized.

    Attributes:
        enabled: False: every request gets 0 (the backend's ``--max-tokens``).
        margin: Factor over the expected length of the reply.
        floor: No generation budget is below this.
        extra: Tokens added to every budget (a model whose thinking counts against its cap).
        ceiling: The backend's ``--max-tokens`` (0: none known). A request whose budget would pass it gets string
            limits scaled down to fit, so that its reply still closes before the cap.
    """

    enabled: bool = True
    margin: float = 1.1
    floor: int = 64
    extra: int = 0
    ceiling: int = 0


def budget_spec(
    model: str, thinking_budget: int | None = None, max_tokens: int = 0, n_ctx: int | None = None
) -> BudgetSpec:
    """The budgets of a run on ``model``: a Gemini model thinks within its cap, so its thinking is added, and
    when its thinking is left to the model (no ``--thinking-budget``) requests keep the whole ``--max-tokens``."""
    if model.startswith("gemini:"):
        if thinking_budget is None:
            return BudgetSpec(enabled=False)
        return BudgetSpec(extra=thinking_budget, ceiling=max(0, max_tokens - thinking_budget))
    if n_ctx:  # the embedded model's context also holds the prompt (a few hundred tokens)
        max_tokens = min(max_tokens, n_ctx - _PROMPT_ROOM) if max_tokens else n_ctx - _PROMPT_ROOM
    return BudgetSpec(ceiling=max_tokens)


def expected_words(length: str | None, default: int) -> float:
    """The most words a text of ``length`` (recipe words: "at least 300 words", "less than 5") should take."""
    if length is None:
        return default
    text = length.casefold().strip()
    text = text[: -len(" words")].strip() if text.endswith(" words") else text
    if text in _NAMED_WORDS:
        return _NAMED_WORDS[text]
    numbers = [int(n) for n in _NUMBER.findall(text)]
    if not numbers:
        return default
    if text.startswith("at least"):
        return numbers[0] * _AT_LEAST_ROOM
    return max(numbers)  # "less than N", "N to M", "about N", "N"


def tokens_per_char(language: str) -> float:
    """Tokens a character of ``language`` (an XLM-R code) takes, the costliest of its writing systems."""
    return max(_TOKENS_PER_CHAR.get(s, _OTHER_SCRIPT) for s in expected_scripts(language))


def chars_per_word(language: str) -> float:
    """Characters a word of ``language`` takes (with its space); languages without spaces count differently."""
    if language not in NO_SPACE_LANGUAGES:
        return _CHARS_PER_WORD
    return min(_CHARS_PER_WORD_NO_SPACE.get(s, 5.0) for s in expected_scripts(language))


def tokens_per_word(language: str) -> float:
    """Tokens a word of ``language`` takes at most: characters a word times tokens a character."""
    return chars_per_word(language) * tokens_per_char(language)


def char_limits(element: Element, spec: BudgetSpec | None = None) -> dict[str, int]:
    """Per output key, the most characters its string may take: room for what the prompt asks, never above the
    declaration's ``max_chars``, and scaled down to fit ``spec.ceiling``. Given to constrained decoding (the
    schema's maxLength), so that a reply that runs on closes its strings instead of running into its token cap."""
    task_type = recipe.get_task_type(element.category)
    values: Mapping[str, str] = dict(element.attributes)
    limits = {}
    for field in task_type.outputs:
        words = expected_words(field.length_rule(values), default=_LABEL_WORDS)
        chars = math.ceil(words * chars_per_word(values[field.language])) + _SLACK_CHARS
        limits[field.key] = min(field.max_chars, chars)
    spec = spec or BudgetSpec()
    if spec.enabled and spec.ceiling:
        overhead = _tokens(task_type, values, dict.fromkeys(limits, 0))
        text = _tokens(task_type, values, limits) - overhead
        room = spec.ceiling / spec.margin - overhead  # tokens left for the strings under the ceiling
        if text > room:
            scale = max(room, 0) / text
            limits = {key: max(16, int(chars * scale)) for key, chars in limits.items()}
    return limits


def _tokens(task_type: recipe.TaskType, values: Mapping[str, str], limits: Mapping[str, int]) -> float:
    total = 16.0  # braces, whitespace, end of reply
    for field in task_type.outputs:
        total += limits[field.key] * tokens_per_char(values[field.language]) + _FIELD_OVERHEAD
    return total


def token_budget_for(element: Element, spec: BudgetSpec | None = None) -> int:
    """Completion tokens the reply to ``element`` needs: what its prompt asks, with a margin.

    A brainstorm reply gets room for ``BRAINSTORM_MAX_TASKS`` one-sentence tasks. A generation reply gets, for each
    output, its character limit (char_limits: the words its declared length allows, a label's few words otherwise)
    times the tokens per character of the output's language, plus JSON overhead, times the margin. The backend's
    ``--max-tokens`` bounds it (elements.token_budget).
    """
    spec = spec or BudgetSpec()
    if not spec.enabled:
        return 0
    if element.stage == STAGE_BRAINSTORM:
        return spec.extra + int(math.ceil(recipe.BRAINSTORM_MAX_TASKS * BRAINSTORM_TOKENS_PER_TASK * spec.margin))
    task_type = recipe.get_task_type(element.category)
    values: Mapping[str, str] = dict(element.attributes)
    total = _tokens(task_type, values, char_limits(element, spec))
    return spec.extra + max(spec.floor, int(math.ceil(total * spec.margin)))
