"""What reaches the terminal: --quiet, --verbose, --log-file, and the filter that keeps library noise off stderr."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import re
import sys

from transforms.config import ConfigError

__all__ = ["TerminalSettings", "add_flags", "to_settings", "configure", "TerminalFilter", "OURS"]

# Loggers (and, for records on the root logger, source files) of this project: their INFO lines are for the user.
OURS = ("pipelines", "transforms", "bench", "__main__")
_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# A worker's log entry relayed to the launching process by Beam's portable runner (str() of a LogEntry proto).
_RELAYED = re.compile(
    r'severity: (?P<severity>\w+).*?message: "(?P<message>(?:[^"\\]|\\.)*)".*?log_location: "(?P<where>[^"]*)"', re.S
)
_SEVERITY = {"TRACE": 5, "DEBUG": 10, "INFO": 20, "NOTICE": 20, "WARN": 30, "ERROR": 40, "CRITICAL": 50}
# Lines Beam writes for its own reasons at WARNING, once per worker or per bundle; they mean nothing to a user.
_BEAM_NOISE = (
    "Resource module is not available",
    "apitools not found",
    "No semi_persistent_directory found",
    "Discarding unparseable args",
    "Discarding invalid overrides",
    "Missing pipeline option (runner)",
    "Make sure that locally built Python SDK docker image",
    "Deleting 0 existing files in target path matching",
)


@dataclasses.dataclass(frozen=True)
class TerminalSettings:
    """Attributes: quiet (no progress lines, warnings only), verbose (every library line), log_file (all lines)."""

    quiet: bool = False
    verbose: bool = False
    log_file: str | None = None


def add_flags(parser: argparse.ArgumentParser) -> None:
    """The "terminal" flag group."""
    group = parser.add_argument_group("terminal")
    group.add_argument(
        "--quiet", action="store_true", help="No progress lines; only warnings, errors and the final summary."
    )
    group.add_argument(
        "--verbose",
        action="store_true",
        help="Show every log line on the terminal, Beam's and the HTTP clients' per-request lines included.",
    )
    group.add_argument(
        "--log-file",
        default=None,
        metavar="PATH",
        help="Also write every log line (INFO and up, all libraries, worker processes included) to this file.",
    )


def to_settings(args: argparse.Namespace) -> TerminalSettings:
    """Validate the terminal flags."""
    quiet, verbose, log_file = getattr(args, "quiet", False), getattr(args, "verbose", False), args.log_file
    if quiet and verbose:
        raise ConfigError("--quiet and --verbose conflict: give one of them")
    if log_file is not None:
        directory = os.path.dirname(os.path.abspath(log_file))
        if os.path.isdir(log_file) or not os.path.isdir(directory) or not os.access(directory, os.W_OK):
            raise ConfigError(f"--log-file {log_file!r} is not a writable file path (its directory must exist)")
    return TerminalSettings(quiet=quiet, verbose=verbose, log_file=log_file)


def _origin(record: logging.LogRecord) -> tuple[str, int, str]:
    """(where the line comes from, its level, its text), looking inside lines relayed from worker processes."""
    message = record.getMessage()
    if "severity:" in message and "log_location:" in message:
        match = _RELAYED.search(message)
        if match:
            return match["where"], _SEVERITY.get(match["severity"], record.levelno), match["message"]
    where = record.name if record.name != "root" else record.pathname
    return where, record.levelno, message


def _is_ours(where: str) -> bool:
    if where.split(".")[0] in OURS:
        return True
    return any(f"{os.sep}{name}{os.sep}" in where for name in OURS[:3]) and "site-packages" not in where


class TerminalFilter(logging.Filter):
    """Our INFO lines; other libraries' warnings and errors, each distinct text once; never Beam's known noise.

    Lines the workers of a multi-process runner relay to the launching process are judged by their own origin
    and level, so they follow the same rules as lines of the launching process.
    """

    def __init__(self, quiet: bool = False):
        super().__init__()
        self._quiet = quiet
        self._seen: set = set()

    def filter(self, record: logging.LogRecord) -> bool:
        where, level, text = _origin(record)
        if level >= logging.ERROR:
            return True
        if _is_ours(where):
            return level >= (logging.WARNING if self._quiet else logging.INFO)
        if level < logging.WARNING or any(noise in text for noise in _BEAM_NOISE):
            return False
        key = (where, text[:200])
        if key in self._seen:
            return False
        self._seen.add(key)
        return True


class _Relayed(logging.Formatter):
    """Shows a relayed worker line as its own text, not the whole log-entry proto."""

    def format(self, record: logging.LogRecord) -> str:
        where, _, text = _origin(record)
        if text != record.getMessage():
            record = logging.makeLogRecord(dict(record.__dict__, msg=f"worker: {text} ({where})", args=()))
        return super().format(record)


def configure(settings: TerminalSettings | None = None) -> None:
    """Install the terminal handler (and the --log-file handler) on the root logger, replacing earlier ones."""
    settings = settings or TerminalSettings()
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_embedgen", False):
            root.removeHandler(handler)
            handler.close()
    root.setLevel(logging.INFO)
    logging.getLogger("apache_beam").setLevel(logging.NOTSET)  # handlers decide (an earlier setup set WARNING)
    terminal = logging.StreamHandler(sys.stderr)
    terminal.setFormatter(_Relayed(_FORMAT))
    if not settings.verbose:
        terminal.addFilter(TerminalFilter(settings.quiet))
    terminal._embedgen = True
    root.addHandler(terminal)
    if settings.log_file:
        to_file = logging.FileHandler(settings.log_file, encoding="utf-8")
        to_file.setFormatter(logging.Formatter(_FORMAT))
        to_file._embedgen = True
        root.addHandler(to_file)


def from_argv(argv) -> TerminalSettings:
    """The terminal flags of a command line, read leniently before the full validation (which reports errors)."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    add_flags(parser)
    args, _ = parser.parse_known_args(list(argv))
    try:
        return to_settings(args)
    except ConfigError:
        return TerminalSettings(quiet=args.quiet, verbose=args.verbose and not args.quiet)
