"""The attribute flags of `embedgen generate` (pins, the language pool) -> a validated SamplingSpec."""

from __future__ import annotations

import argparse
import difflib

from transforms import recipe
from transforms.config import ConfigError
from transforms.sampling import SamplingSpec

__all__ = ["add_arguments", "spec_from_args", "language"]

# Every attribute name across task types, with the union of its allowed values (per-category sets are checked later).
_ATTRIBUTES: dict[str, recipe.Attribute] = {}
_ATTRIBUTE_VALUES: dict[str, list[str]] = {}
for _t in recipe.TASK_TYPES:
    for _a in _t.attributes:
        _ATTRIBUTES.setdefault(_a.name, _a)
        _values = _ATTRIBUTE_VALUES.setdefault(_a.name, [])
        _values.extend(v for v in _a.values if v not in _values)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The "attributes" flag group: one flag per attribute, the languages, the language pool."""
    group = parser.add_argument_group("attributes (unset: sampled per element)")
    for name, attr in _ATTRIBUTES.items():
        if attr.is_language:
            continue
        group.add_argument(
            attr.flag,
            dest=f"pin_{name}",
            choices=_ATTRIBUTE_VALUES[name],
            default=None,
            help=f"{attr.help} One of: {', '.join(_ATTRIBUTE_VALUES[name])}.",
        )
    group.add_argument(
        "--language",
        dest="pin_language",
        default=None,
        help="Language of every single-language example, as an XLM-R code or English name (sw, Swahili).",
    )
    group.add_argument(
        "--source-language",
        dest="pin_source_language",
        default=None,
        help="Source language of every bitext example.",
    )
    group.add_argument(
        "--target-language",
        dest="pin_target_language",
        default=None,
        help="Target language of every bitext example (must differ from the source).",
    )
    group.add_argument(
        "--languages",
        default=None,
        help="Language pool to sample from: comma-separated codes or names, optionally weighted (sw:2,hi:1). "
        "Default: the 100 XLM-R languages, English 0.431, 13 high-resource ones 0.029 each (README).",
    )


def spec_from_args(args: argparse.Namespace, categories: tuple) -> SamplingSpec:
    """Validated SamplingSpec (run seed, pinned values, language pool); ConfigError names the flag."""
    pool = _language_pool(args.languages)
    return SamplingSpec(seed=args.seed, pinned=_pins(args, categories, pool), languages=pool)


def language(flag: str, value: str) -> str:
    try:
        return recipe.language_code(value)
    except KeyError:
        names = [*recipe.LANGUAGES, *recipe.LANGUAGES.values()]
        close = difflib.get_close_matches(value, names, n=3)
        hint = f" (did you mean {' or '.join(close)}?)" if close else ""
        raise ConfigError(
            f"{flag}: unknown language {value!r}{hint}; allowed: an XLM-R code or English name: "
            + ", ".join(f"{c} ({n})" for c, n in recipe.LANGUAGES.items())
        ) from None


def _language_pool(spec: str | None) -> tuple:
    if spec is None:
        return tuple(recipe.DEFAULT_LANGUAGE_WEIGHTS.items())
    entries = [e.strip() for e in spec.split(",") if e.strip()]
    if not entries:
        raise ConfigError("--languages is empty; give comma-separated codes or names, e.g. en,sw,hi")
    weighted = [":" in e for e in entries]
    if any(weighted) and not all(weighted):
        raise ConfigError("--languages: give a weight to every language (en:2,sw:1) or to none")
    pool: dict[str, float] = {}
    for entry in entries:
        name, _, weight = entry.partition(":")
        code = language("--languages", name)
        if code in pool:
            raise ConfigError(f"--languages lists {code} twice")
        if weight:
            try:
                pool[code] = float(weight)
            except ValueError:
                raise ConfigError(f"--languages: weight of {name!r} is not a number: {weight!r}") from None
            if not pool[code] > 0:
                raise ConfigError(f"--languages: weight of {name!r} must be positive, got {weight}")
        else:
            pool[code] = recipe.DEFAULT_LANGUAGE_WEIGHTS[code]
    return tuple(pool.items())


def _pins(args: argparse.Namespace, categories: tuple, pool: tuple) -> tuple:
    pinned: dict[str, str] = {}
    for name, attr in _ATTRIBUTES.items():
        value = getattr(args, f"pin_{name}")
        if value is None:
            continue
        users = [recipe.get_task_type(c) for c in categories if name in recipe.get_task_type(c).attribute_names]
        if not users:
            owners = [t.name for t in recipe.TASK_TYPES if name in t.attribute_names]
            raise ConfigError(f"{attr.flag} applies only to {', '.join(owners)}, none of which is in --categories")
        if attr.is_language:
            value = language(attr.flag, value)
        else:
            for task_type in users:
                allowed = task_type.attribute(name).values
                if value not in allowed:
                    raise ConfigError(
                        f"{attr.flag} {value!r} is not allowed for {task_type.name} (allowed: {', '.join(allowed)}); "
                        f"narrow --categories to the task types that accept it"
                    )
        pinned[name] = value
    codes = [c for c, _ in pool]
    if args.languages is not None:
        for name in ("language", "source_language", "target_language"):
            if name in pinned and pinned[name] not in codes:
                raise ConfigError(f"{_ATTRIBUTES[name].flag} {pinned[name]} is not in --languages ({', '.join(codes)})")
    for task_type in (recipe.get_task_type(c) for c in categories):  # languages declared differs_from another
        for attr in (a for a in task_type.attributes if a.differs_from):
            flag, other_flag = attr.flag, task_type.attribute(attr.differs_from).flag
            one, other = pinned.get(attr.name), pinned.get(attr.differs_from)
            if one is not None and one == other:
                raise ConfigError(
                    f"{other_flag} and {flag} are both {one}; {task_type.name} pairs two different languages"
                )
            fixed = {code for code in (one, other) if code is not None}
            if len(fixed) < 2 and len(set(codes) | fixed) < 2:
                raise ConfigError(
                    f"{task_type.name} needs two different languages: give --languages at least two, "
                    f"or pin {other_flag} and {flag}"
                )
    return tuple(pinned.items())
