"""Flags and settings of incremental (daily) runs: the run seed of a --run-date, --fixed-seed, --exclude-from."""

from __future__ import annotations

import argparse
import dataclasses
import hashlib

from transforms.config import ConfigError

__all__ = ["IncrementalSettings", "add_flags", "to_settings", "day_seed"]


@dataclasses.dataclass(frozen=True)
class IncrementalSettings:
    """How a run relates to earlier ones.

    Attributes:
        seed: The run seed every id and sampling seed derives from.
        base_seed: ``--seed`` as given.
        fixed_seed: ``--fixed-seed``: the run seed is ``--seed`` even with a ``--run-date``.
        run_date: ``--run-date`` (YYYY-MM-DD) or None.
        exclude_from: ``--exclude-from`` paths as given.
        exclude_files: The earlier example Avro files found under them.
    """

    seed: int
    base_seed: int
    fixed_seed: bool = False
    run_date: str | None = None
    exclude_from: tuple = ()
    exclude_files: tuple = ()

    def describe_seed(self) -> str:
        if self.seed == self.base_seed:
            return f"run seed {self.seed}"
        return f"run seed {self.seed} (from --seed {self.base_seed} and --run-date {self.run_date})"


def day_seed(seed: int, run_date: str) -> int:
    """The run seed of one day: 63 bits of sha256(seed, date), so each date gets its own ids and samples."""
    digest = hashlib.sha256(f"{seed}\x1frun_date\x1f{run_date}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & (2**63 - 1)


def add_flags(parser: argparse.ArgumentParser) -> None:
    """The "incremental runs" flag group of `embedgen generate`."""
    group = parser.add_argument_group("incremental runs (a scheduled daily job)")
    group.add_argument(
        "--fixed-seed",
        action="store_true",
        help="With --run-date: use --seed itself as the run seed. Without it the run seed derives from --seed and "
        "the run date, so each day makes new elements and re-running a day reproduces that day.",
    )
    group.add_argument(
        "--exclude-from",
        nargs="+",
        default=(),
        metavar="PATH",
        help="Earlier outputs (an --output, or the parent of its run_date=... folders; local or gs://): brainstormed "
        "tasks that nearly duplicate one of their tasks are dropped (--task-dedup-threshold), and new examples that "
        "duplicate one of their rows go to rejected/ (--example-dedup-threshold). Earlier rows are only read. "
        "The current --output and, with --run-date, days from the run date on are never read.",
    )


def to_settings(args: argparse.Namespace, run_date: str | None, output: str) -> IncrementalSettings:
    """Validate the incremental flags; ``output`` is the run's own output directory (after --run-date)."""
    fixed = bool(getattr(args, "fixed_seed", False))
    if fixed and run_date is None:
        raise ConfigError("--fixed-seed applies with --run-date only (without it the run seed is --seed already)")
    seed = args.seed if fixed or run_date is None else day_seed(args.seed, run_date)
    paths = tuple(getattr(args, "exclude_from", ()) or ())
    files: list[str] = []
    if paths:
        from transforms.exclude import earlier_files

        try:
            found = earlier_files(paths, output, run_date)
        except (OSError, ValueError) as err:
            raise ConfigError(f"--exclude-from: cannot list {', '.join(paths)}: {err}") from None
        for path, names in found.items():
            # A scheduled job passes the parent of its run_date= folders every day: on the first day it is empty.
            if not names and not output.startswith(path.rstrip("/") + "/"):
                raise ConfigError(
                    f"--exclude-from {path}: no earlier embedgen rows there (looked for <category>/*.avro, "
                    "rejected/<category>/*.avro and run_date=*/<category>/*.avro"
                    + (f" of days before {run_date}" if run_date else "")
                    + ", outside the current --output)"
                )
            files.extend(names)
    return IncrementalSettings(
        seed=seed,
        base_seed=args.seed,
        fixed_seed=fixed,
        run_date=run_date,
        exclude_from=paths,
        exclude_files=tuple(sorted(set(files))),
    )
