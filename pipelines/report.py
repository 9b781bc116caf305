"""`embedgen report`: read a generated output directory's Avro tables, print the key numbers, write an HTML page."""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import logging
import sys
from collections.abc import Sequence

import fastavro
from apache_beam.io.filesystems import FileSystems

from pipelines import cli
from transforms import recipe
from transforms.config import ConfigError
from transforms.quality.checks import count_words, field_language
from transforms.quality.stage import DUPLICATE, REJECTED
from transforms.records import DEAD_LETTER, row_language

__all__ = [
    "COMMAND",
    "ReportConfig",
    "add_arguments",
    "to_config",
    "main",
    "read_rows",
    "compute_stats",
    "format_numbers",
    "histogram",
]

_LOGGER = logging.getLogger(__name__)

_LENGTH_BINS = (0, 5, 10, 15, 25, 50, 75, 100, 150, 200, 300, 400, 500, 750, 1000)
_SIM_BINS = tuple(round(-0.2 + 0.1 * i, 1) for i in range(13))  # -0.2 .. 1.0


def _read_table(pattern: str) -> list[dict]:
    rows = []
    for match in FileSystems.match([pattern])[0].metadata_list:
        with FileSystems.open(match.path) as handle:
            rows.extend(fastavro.reader(handle))
    return rows


def read_rows(input_dir: str) -> dict:
    """Every row under ``input_dir``: ``{"written": {category: rows}, "rejected": {...}, "dead": rows}``."""
    written = {c: _read_table(FileSystems.join(input_dir, c, "*.avro")) for c in recipe.CATEGORIES}
    rejected = {c: _read_table(FileSystems.join(input_dir, REJECTED, c, "*.avro")) for c in recipe.CATEGORIES}
    dead = _read_table(FileSystems.join(input_dir, DEAD_LETTER, "*.avro"))
    return {"written": written, "rejected": rejected, "dead": dead}


def histogram(values, edges) -> dict:
    """Counts of ``values`` in [edges[i], edges[i+1]); the last bin also takes everything above it."""
    counts = [0] * len(edges)
    for value in values:
        index = 0
        while index + 1 < len(edges) and value >= edges[index + 1]:
            index += 1
        counts[index] += 1
    return {"edges": list(edges), "counts": counts}


def compute_stats(tables: dict) -> dict:
    """The report's numbers, all counted directly from the rows (a JSON-serializable dict)."""
    by_category, by_language, attributes, lengths = {}, {}, {}, {}
    checks = {}
    sims = {"sim_query_positive": [], "sim_query_negative": []}
    passed = generated = beaten = both = duplicates = with_mined = mined = 0
    for category in recipe.CATEGORIES:
        task_type = recipe.get_task_type(category)
        written, rejected = tables["written"][category], tables["rejected"][category]
        if not written and not rejected:
            continue
        by_category[category] = {"written": len(written), "rejected": len(rejected)}
        languages = collections.defaultdict(lambda: {"written": 0, "rejected": 0})
        values = {a.name: collections.Counter() for a in task_type.attributes if not a.is_language}
        words = {key: [] for key in task_type.output_keys}
        category_checks = collections.defaultdict(lambda: {"ran": 0, "failed": 0})
        for table, rows in (("written", written), ("rejected", rejected)):
            for row in rows:
                generated += 1
                passed += bool(row["quality_pass"])
                languages[row_language(row)][table] += 1
                for name in values:
                    values[name][row[name]] += 1
                for key in task_type.output_keys:
                    n = count_words(row[key], field_language(row, task_type, key))
                    if n is not None:
                        words[key].append(n)
                failures = set(row["quality_failures"])
                for name in row["quality_checks"]:
                    category_checks[name]["ran"] += 1
                    category_checks[name]["failed"] += name in failures
                duplicates += row.get("duplicate_of") is not None and DUPLICATE in failures
                for name in sims:
                    if row.get(name) is not None:
                        sims[name].append(row[name])
                if row.get("sim_query_positive") is not None and row.get("sim_query_negative") is not None:
                    both += 1
                    beaten += row["sim_query_negative"] > row["sim_query_positive"]
                with_mined += bool(row.get("mined_negatives"))
                mined += len(row.get("mined_negatives") or [])
        by_language[category] = dict(sorted(languages.items()))
        attributes[category] = {name: dict(sorted(c.items())) for name, c in values.items()}
        lengths[category] = {key: histogram(n, _LENGTH_BINS) for key, n in words.items() if n}
        checks[category] = {name: dict(v) for name, v in sorted(category_checks.items())}
    dead_reasons = collections.Counter(f"{d['stage']}/{d['reason']}" for d in tables["dead"])
    return {
        "rows_written": sum(c["written"] for c in by_category.values()),
        "rows_rejected": sum(c["rejected"] for c in by_category.values()),
        "rows_generated": generated,
        "rows_passing": passed,
        "duplicates": duplicates,
        "dead_letters": len(tables["dead"]),
        "dead_letters_by_reason": dict(sorted(dead_reasons.items())),
        "by_category": by_category,
        "by_language": by_language,
        "attributes": attributes,
        "lengths": lengths,
        "checks": checks,
        "check_kinds": _by_kind(checks),
        "similarity": {name: histogram(v, _SIM_BINS) for name, v in sims.items() if v},
        "rows_with_both_similarities": both,
        "negative_beats_positive": beaten,
        "rows_with_mined_negatives": with_mined,
        "mined_negatives": mined,
    }


def _rate(part: int, whole: int) -> str:
    return f"{100.0 * part / whole:.1f}%" if whole else "n/a"


def _by_kind(checks: dict) -> dict:
    """Check results of every category summed by kind (``language``, ``length``, ...): {kind: {"ran", "failed"}}."""
    kinds = collections.defaultdict(lambda: {"ran": 0, "failed": 0})
    for per_category in checks.values():
        for name, counts in per_category.items():
            kind = name.split(":", 1)[0]
            kinds[kind]["ran"] += counts["ran"]
            kinds[kind]["failed"] += counts["failed"]
    return dict(sorted(kinds.items()))


def format_numbers(stats: dict) -> str:
    """The key numbers as plain text for the terminal."""
    s = stats
    lines = [
        f"rows: {s['rows_written']} written, {s['rows_rejected']} rejected ({s['duplicates']} duplicates), "
        f"{s['dead_letters']} dead-lettered",
        f"quality: {s['rows_passing']} of {s['rows_generated']} generated rows pass every check "
        f"({_rate(s['rows_passing'], s['rows_generated'])})",
    ]
    if s["by_category"]:
        lines.append("rows per category (written/rejected): " + ", ".join(
            f"{c} {v['written']}/{v['rejected']}" for c, v in s["by_category"].items()
        ))  # fmt: skip
    if s["check_kinds"]:
        lines.append("pass rate per check:")
        for kind, counts in s["check_kinds"].items():
            ok = counts["ran"] - counts["failed"]
            lines.append(f"  {kind:<26}{_rate(ok, counts['ran']):>8}  ({ok}/{counts['ran']})")
    if s["rows_with_both_similarities"]:
        lines.append(
            f"negative beats positive: {s['negative_beats_positive']} of {s['rows_with_both_similarities']} rows "
            f"({_rate(s['negative_beats_positive'], s['rows_with_both_similarities'])})"
        )
    if s["mined_negatives"]:
        lines.append(f"mined negatives: {s['mined_negatives']} on {s['rows_with_mined_negatives']} rows")
    return "\n".join(lines)


DESCRIPTION = (
    "Read the Avro tables of an `embedgen generate` output directory (examples, rejected, dead letters), print the "
    "key numbers and write a self-contained HTML page with plots."
)


@dataclasses.dataclass(frozen=True)
class ReportConfig:
    """The validated settings of one report: the run's output directory and where to write."""

    input: str
    out: str
    json: str | None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Every flag of `embedgen report`."""
    parser.add_argument("--input", required=True, help="The --output directory of a generation run (local or gs://).")
    parser.add_argument("--out", default=None, help="HTML file to write (default: <input>/report.html).")
    parser.add_argument("--json", default=None, help="Also write the numbers as JSON to this file.")


def to_config(args: argparse.Namespace) -> ReportConfig:
    """Validate parsed flags; ConfigError names the flag."""
    if not FileSystems.exists(args.input):
        raise ConfigError(f"--input {args.input} does not exist")
    return ReportConfig(args.input, args.out or FileSystems.join(args.input, "report.html"), args.json)


def _execute(config: ReportConfig, beam_args=()) -> int:
    from pipelines.report_html import render

    stats = compute_stats(read_rows(config.input))
    if not stats["rows_generated"] and not stats["dead_letters"]:
        raise ConfigError(f"--input {config.input} holds no embedgen Avro tables")
    with FileSystems.create(config.out) as handle:
        handle.write(render(stats, config.input).encode("utf-8"))
    if config.json:
        with FileSystems.create(config.json) as handle:
            handle.write(json.dumps(stats, indent=1).encode("utf-8"))
    print(f"embedgen report: {config.input}")
    print(format_numbers(stats))
    print(f"report: {config.out}")
    return 0


COMMAND = cli.Command("report", DESCRIPTION, add_arguments, to_config, _execute, beam=False)


def main(argv: Sequence[str] | None = None) -> int:
    return cli.main_of(COMMAND, argv)


if __name__ == "__main__":
    sys.exit(main())
