"""The `embedgen` command: one subcommand per job, each declared once as a Command and run the same way.

A command module declares its flags (``add_arguments``), turns them into a frozen config (``to_config``, raising
ConfigError) and runs it (``execute``). `run_command` parses, refuses unknown flags, catches ConfigError once (exit
2 with one line ``embedgen <command>: error: ...``) and calls ``execute``.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import importlib
import importlib.util
import logging
import sys
from collections.abc import Callable, Sequence

from transforms.config import ConfigError

__all__ = [
    "main",
    "COMMANDS",
    "Command",
    "run_command",
    "main_of",
    "configure_logging",
    "parser",
    "cloud_options",
    "check_beam_flags",
]

# command -> (module, one-line description). A command is offered once its module exists.
COMMANDS = {
    "generate": ("pipelines.generate", "generate synthetic embedding training data (Beam pipeline)"),
    "report": ("pipelines.report", "write an HTML quality report of a generated output directory"),
    "export": ("pipelines.export", "turn generated data into training rows (jsonl or parquet)"),
    "train": ("pipelines.train", "fine-tune a small embedding model on exported rows"),
}


@dataclasses.dataclass(frozen=True)
class Command:
    """How one subcommand is declared.

    Attributes:
        name: The subcommand (``embedgen <name>``).
        description: The paragraph ``--help`` shows.
        add_arguments: Declares the command's flags on a parser.
        to_config: Parsed flags -> the command's frozen config; raises ConfigError naming the flag.
        execute: ``(config, beam_args, **kwargs)`` -> exit code; may raise ConfigError before anything runs.
        beam: Whether flags that are not ours pass through to Beam (a Beam pipeline), or are refused by argparse.
    """

    name: str
    description: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    to_config: Callable[[argparse.Namespace], object]
    execute: Callable[..., int]
    beam: bool = True


def configure_logging() -> None:
    """The log format every command uses on the terminal; Beam's own INFO lines are left out."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("apache_beam").setLevel(logging.WARNING)


def parser(name: str, description: str, add_arguments: Callable) -> argparse.ArgumentParser:
    """The argument parser of ``embedgen <name>``."""
    result = argparse.ArgumentParser(prog=f"embedgen {name}", description=description, allow_abbrev=False)
    add_arguments(result)
    return result


def cloud_options(beam_args: Sequence[str]):
    """Beam's own --project, --region and --temp_location, read through its GoogleCloudOptions view."""
    from apache_beam.options.pipeline_options import GoogleCloudOptions, PipelineOptions

    return PipelineOptions(list(beam_args)).view_as(GoogleCloudOptions)


def check_beam_flags(beam_args: Sequence[str], ours: argparse.ArgumentParser, command: str) -> None:
    """Refuse flags that are neither ours nor a Beam pipeline option (Beam itself only warns and drops them)."""
    from apache_beam.options.pipeline_options import PipelineOptions

    beam_parser = argparse.ArgumentParser(allow_abbrev=False, add_help=False)
    pending = [PipelineOptions]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if "_add_argparse_args" in vars(cls) and not cls.__module__.startswith(("pipelines.", "transforms.")):
            try:
                cls._add_argparse_args(beam_parser)
            except argparse.ArgumentError:
                pass  # an option registered by two classes
    _, unknown = beam_parser.parse_known_args(list(beam_args))
    flags = [a for a in unknown if a.startswith("--")]
    if flags:
        our_flags = [o for a in ours._actions for o in a.option_strings]
        hints = []
        for flag in flags:
            close = difflib.get_close_matches(flag.split("=")[0], our_flags, n=1)
            hints.append(f"{flag} (did you mean {close[0]}?)" if close else flag)
        raise ConfigError(
            f"unknown flag(s): {', '.join(hints)}; see 'embedgen {command} --help' "
            "(Beam's own pipeline flags are accepted too)"
        )
    if unknown:
        raise ConfigError(f"unexpected argument(s): {' '.join(unknown)}")


def main_of(command: Command, argv: Sequence[str] | None = None, **kwargs) -> int:
    """A command's ``main``: the terminal's log format, then `run_command` on ``argv`` (default: sys.argv)."""
    configure_logging()
    return run_command(command, sys.argv[1:] if argv is None else argv, **kwargs)


def run_command(command: Command, argv: Sequence[str] | None, **kwargs) -> int:
    """Parse, validate and execute ``command``; a ConfigError becomes exit code 2 and one line on stderr."""
    ours = parser(command.name, command.description, command.add_arguments)
    try:
        if command.beam:
            args, beam_args = ours.parse_known_args(argv)
            check_beam_flags(beam_args, ours, command.name)
            args.cloud = cloud_options(beam_args)
        else:
            args, beam_args = ours.parse_args(argv), []
        config = command.to_config(args)
        return command.execute(config, beam_args, **kwargs)
    except ConfigError as err:
        print(f"embedgen {command.name}: error: {err}", file=sys.stderr)
        return 2


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
