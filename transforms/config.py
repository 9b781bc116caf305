"""ConfigError: the one error type for a flag value that cannot run (every command exits 2 on it)."""

from __future__ import annotations

__all__ = ["ConfigError"]


class ConfigError(ValueError):
    """A flag value that cannot run; the message names the flag and the allowed values."""
