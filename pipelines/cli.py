"""The `embedgen` command: one subcommand per job."""

from __future__ import annotations

import sys
from typing import Optional, Sequence

__all__ = ["main"]

_USAGE = """usage: embedgen <command> [flags]

commands:
  generate   generate synthetic embedding training data (see: embedgen generate --help)
"""


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_USAGE)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command == "generate":
        from pipelines import generate

        return generate.main(rest)
    print(f"embedgen: unknown command {command!r}\n\n{_USAGE}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
