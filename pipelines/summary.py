"""The end-of-run summary, read from Beam metrics: rows by category and language, dead letters, tokens, time."""

from __future__ import annotations

import collections
import dataclasses

from apache_beam.metrics.metric import MetricsFilter

from transforms.mix import size_plan

__all__ = ["RunReport", "from_metrics", "format_summary"]


@dataclasses.dataclass
class RunReport:
    """Counts of one run; ``balanced`` is requested == written + dead-lettered for every category."""

    requested: dict
    written: dict
    skipped: dict
    dead: dict  # (stage, category, reason) -> count
    rows_by_language: dict  # (category, language) -> count
    brainstorm_calls: int
    tasks_returned: int
    parse_retries: int
    tokens: dict
    replies: int
    journal_reused: int
    model_seconds: float
    wall_seconds: float
    replies_at_cap: int = 0  # replies that stopped at their completion-token cap
    target_shares: dict = dataclasses.field(default_factory=dict)  # category -> share asked for (--mix)
    target_total: int | None = None  # --examples

    def dead_for(self, category: str, stage: str = "generate") -> int:
        return sum(n for (s, c, _), n in self.dead.items() if s == stage and c == category)

    @property
    def balanced(self) -> bool:
        return all(self.requested.get(c, 0) == self.written.get(c, 0) + self.dead_for(c) for c in self.categories)

    @property
    def categories(self) -> list:
        return sorted(set(self.requested) | set(self.written) | {c for _, c, _ in self.dead})


def _value(result) -> int:
    value = result.committed if result.committed is not None else result.attempted
    return value or 0


def from_metrics(pipeline_result, config, wall_seconds: float) -> RunReport:
    """Read the run's counters (committed values where the runner reports them)."""
    query = pipeline_result.metrics().query(MetricsFilter())
    counters = collections.Counter()
    for result in query["counters"]:
        if result.key.metric.namespace == "embedgen":
            counters[result.key.metric.name] += _value(result)
    model_micros = 0
    for result in query["distributions"]:
        if result.key.metric.name == "inference_batch_latency_micro_secs":
            value = result.committed if result.committed is not None else result.attempted
            model_micros += value.sum if value else 0
    requested, written, skipped, dead, by_language = {}, {}, {}, {}, {}
    for name, value in counters.items():
        parts = name.split("/")
        if parts[0] == "requested":
            requested[parts[1]] = value
        elif parts[0] == "written":
            written[parts[1]] = value
        elif parts[0] == "skipped":
            skipped[parts[1]] = value
        elif parts[0] == "dead_letter":
            dead[(parts[1], parts[2], parts[3])] = value
        elif parts[0] == "rows_by_language":
            by_language[(parts[1], parts[2])] = value
    return RunReport(
        requested=requested,
        written=written,
        skipped=skipped,
        dead=dead,
        rows_by_language=by_language,
        brainstorm_calls=sum(n for _, n in size_plan(config).rounds),
        tasks_returned=counters["brainstorm/tasks_returned"],
        parse_retries=counters["parse_retries"],
        tokens={
            k: counters[f"tokens/{k}"]
            for k in ("prompt", "completion", "brainstorm", "replies_prompt", "replies_completion")
        },
        replies=counters["replies"],
        journal_reused=counters["journal/reused"],
        model_seconds=model_micros / 1e6,
        wall_seconds=wall_seconds,
        replies_at_cap=counters["replies_at_cap"],
        target_shares=dict(size_plan(config).target),
        target_total=size_plan(config).total,
    )


def format_summary(report: RunReport) -> str:
    """A plain-text table for the terminal."""
    lines = ["", "embedgen summary", "================"]
    lines.append("(written: rows produced, including any the quality stage moved to rejected/)")
    lines.append(f"{'category':<22}{'requested':>10}{'written':>10}{'dead':>8}")
    for c in report.categories:
        lines.append(f"{c:<22}{report.requested.get(c, 0):>10}{report.written.get(c, 0):>10}{report.dead_for(c):>8}")
    total_req = sum(report.requested.values())
    total_written = sum(report.written.values())
    total_dead = sum(report.dead_for(c) for c in report.categories)
    lines.append(f"{'total':<22}{total_req:>10}{total_written:>10}{total_dead:>8}")
    lines.append(
        "requested = written + dead-lettered: " + ("yes" if report.balanced else "NO (see the dead-letter output)")
    )
    brainstorm_dead = sum(n for (s, _, _), n in report.dead.items() if s == "brainstorm")
    lines.append(
        f"brainstorm: {report.brainstorm_calls} call(s), {report.tasks_returned} task(s) returned, "
        f"{brainstorm_dead} dead-lettered call(s)"
    )
    if report.rows_by_language:
        lines.append("rows by language:")
        for (c, lang), n in sorted(report.rows_by_language.items()):
            lines.append(f"  {c:<22}{lang:<16}{n:>6}")
    if report.dead:
        lines.append("dead letters by reason:")
        for (s, c, reason), n in sorted(report.dead.items()):
            lines.append(f"  {s:<11}{c:<22}{reason:<16}{n:>6}")
    if report.target_shares:
        lines.append(
            f"category mix (--mix, --examples {report.target_total}): share of requested rows, target / achieved"
        )
        for c, share in report.target_shares.items():
            achieved = report.requested.get(c, 0) / total_req if total_req else 0.0
            lines.append(f"  {c:<22}{share:>8.1%}{achieved:>9.1%}")
    lines.append(f"parse retries: {report.parse_retries}")
    if report.skipped or report.journal_reused:
        lines.append(
            f"resume: {sum(report.skipped.values())} element(s) already finished under --output were skipped; "
            f"{report.journal_reused} logged repl(ies) reused without a model call"
        )
    t = report.tokens
    lines.append(
        f"tokens: {t['replies_prompt']} prompt + {t['replies_completion']} completion over {report.replies} model "
        f"replies (brainstorm calls, re-asks and dead letters included); in written rows: {t['prompt']} prompt + "
        f"{t['completion']} completion"
    )
    decoded = t["replies_completion"]
    kept = f"{t['completion'] / decoded:.0%}" if decoded else "n/a"
    lines.append(
        f"completion tokens kept in written rows: {kept}; replies that hit their token cap: {report.replies_at_cap}"
    )
    lines.append(f"time: {report.wall_seconds:.1f} s wall, {report.model_seconds:.1f} s in model calls")
    return "\n".join(lines)
