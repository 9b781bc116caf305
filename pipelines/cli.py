"""The `embedgen` command: one subcommand per job, each a module of `pipelines` with a main(argv)."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Sequence

__all__ = ["main", "COMMANDS", "configure_logging"]

# command -> (module, one-line description). A command is offered once its module exists.
COMMANDS = {
    "generate": ("pipelines.generate", "generate synthetic embedding training data (Beam pipeline)"),
    "report": ("pipelines.report", "write an HTML quality report of a generated output directory"),
    "export": ("pipelines.export", "turn generated data into training rows (jsonl or parquet)"),
    "train": ("pipelines.train", "fine-tune a small embedding model on exported rows"),
}


def configure_logging(settings=None) -> None:
    """The log format every command uses on the terminal; library noise is left out (pipelines/terminal.py)."""
    from pipelines import terminal

    terminal.configure(settings)


def _available() -> dict:
    return {name: entry for name, entry in COMMANDS.items() if importlib.util.find_spec(entry[0]) is not None}


def _usage() -> str:
    lines = ["usage: embedgen <command> [flags]", "", "commands:"]
    lines += [f"  {name:<10} {description}" for name, (_, description) in _available().items()]
    lines += ["", "Run 'embedgen <command> --help' for the flags of a command."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    entry = _available().get(command)
    if entry is None:
        print(f"embedgen: unknown command {command!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    return importlib.import_module(entry[0]).main(rest)


if __name__ == "__main__":
    sys.exit(main())
