"""ConfigError (the one error type for a flag value that cannot run; every command exits 2 on it) and its checks."""

from __future__ import annotations

__all__ = ["ConfigError", "at_least", "parse_categories"]


class ConfigError(ValueError):
    """A flag value that cannot run; the message names the flag and the allowed values."""


def at_least(flag: str, value, minimum=1) -> None:
    """Raise ConfigError naming ``flag`` unless ``value >= minimum``."""
    if value < minimum:
        raise ConfigError(f"{flag} must be at least {minimum}, got {value}")


def parse_categories(spec: str, flag: str = "--categories") -> tuple:
    """A comma-separated list of task types -> a tuple in declaration order; ConfigError names the flag."""
    from transforms import recipe

    names = [c.strip() for c in spec.split(",") if c.strip()]
    if not names:
        raise ConfigError(f"{flag} is empty; allowed: {', '.join(recipe.CATEGORIES)}")
    for name in names:
        if name not in recipe.CATEGORIES:
            raise ConfigError(f"{flag}: unknown category {name!r}; allowed: {', '.join(recipe.CATEGORIES)}")
    if len(set(names)) != len(names):
        raise ConfigError(f"{flag} lists a category twice")
    return tuple(c for c in recipe.CATEGORIES if c in names)
