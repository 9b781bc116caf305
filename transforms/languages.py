"""The language pool of the recipe: XLM-R's 100 languages, their English names, and the default weights."""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["LANGUAGES", "DEFAULT_LANGUAGE_WEIGHTS", "language_code", "language_name"]

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
