"""The end-of-run summary, read from Beam metrics: rows per category and language, dead letters, tokens, quality."""

from __future__ import annotations

import dataclasses

from transforms import metrics
from transforms.mix import size_plan
from transforms.quality.contamination import CHECK_NAME as CONTAMINATION
from transforms.sinks import REJECTED

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
    quality: dict = dataclasses.field(default_factory=dict)  # quality family -> {key: count}
    output: str | None = None  # --output, named in the quality lines
    batch_jobs: str | None = None  # the batch prediction jobs of a --vertex-batch run
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


def from_metrics(pipeline_result, config, wall_seconds: float) -> RunReport:
    """Read the run's counters (committed values where the runner reports them)."""
    counters = metrics.read(pipeline_result)
    plan = size_plan(config)
    families = {
        metrics.REQUESTED: {},
        metrics.WRITTEN: {},
        metrics.SKIPPED: {},
        metrics.DEAD_LETTER: {},
        metrics.ROWS_BY_LANGUAGE: {},
    }
    for counter_name, value in counters.items():
        for family, found in families.items():
            keys = metrics.parse(counter_name, family)
            if keys is not None:
                found[keys if len(keys) > 1 else keys[0]] = value
    quality = {}
    for family in (
        metrics.BRAINSTORM_CONTAMINATED,
        metrics.BRAINSTORM_CONTAMINATED_REMOVED,
        metrics.QUALITY_CHECKED,
        metrics.QUALITY_DUPLICATES,
        metrics.QUALITY_FLAGGED,
        metrics.QUALITY_REJECTED,
        metrics.QUALITY_FAILED,
    ):
        quality[family] = {
            keys[0]: value
            for counter_name, value in counters.items()
            if (keys := metrics.parse(counter_name, family)) is not None
        }
    return RunReport(
        requested=families[metrics.REQUESTED],
        written=families[metrics.WRITTEN],
        skipped=families[metrics.SKIPPED],
        dead=families[metrics.DEAD_LETTER],
        rows_by_language=families[metrics.ROWS_BY_LANGUAGE],
        brainstorm_calls=sum(n for _, n in plan.rounds),
        tasks_returned=counters[metrics.BRAINSTORM_TASKS_RETURNED],
        parse_retries=counters[metrics.PARSE_RETRIES],
        tokens={
            k: counters[metrics.name(metrics.TOKENS, k)]
            for k in ("prompt", "completion", "brainstorm", "replies_prompt", "replies_completion")
        },
        replies=counters[metrics.REPLIES],
        journal_reused=counters[metrics.JOURNAL_REUSED],
        model_seconds=metrics.model_seconds(pipeline_result),
        wall_seconds=wall_seconds,
        quality=quality,
        output=config.output,
        batch_jobs=_batch_jobs(config, counters),
        replies_at_cap=counters[metrics.REPLIES_AT_CAP],
        target_shares=dict(plan.target),
        target_total=plan.total,
    )


def _batch_jobs(config, counters) -> str | None:
    """The batch prediction jobs of a --vertex-batch run, as recorded in its journal, and this run's outcomes."""
    if getattr(config.model.settings, "batch", None) is None:
        return None
    from transforms.models.gemini_batch import format_jobs, read_job_records

    outcomes = {k[0]: n for name, n in counters.items() if (k := metrics.parse(name, metrics.BATCH_JOBS)) is not None}
    return format_jobs(read_job_records(config.output), outcomes)


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
    lines += _quality_lines(report)
    if report.batch_jobs is not None:
        lines.append(report.batch_jobs)
    return "\n".join(lines)


def _quality_lines(report: RunReport) -> list[str]:
    """What the quality stage did, from the ``quality/...`` and contamination counters."""

    def total(family):
        return sum(report.quality.get(family, {}).values())

    checked = total(metrics.QUALITY_CHECKED)
    flagged, removed = total(metrics.BRAINSTORM_CONTAMINATED), total(metrics.BRAINSTORM_CONTAMINATED_REMOVED)
    contamination = (
        f"contamination: {flagged} brainstormed task(s) nearly restate an evaluation-set instruction; "
        f"{removed} removed, {flagged - removed} kept (their rows fail the {CONTAMINATION} check)"
    )
    if not checked:
        return ["quality: no rows checked", contamination]
    lines = [
        f"quality: {checked} row(s) checked; {total(metrics.QUALITY_DUPLICATES)} duplicate(s) removed, "
        f"{total(metrics.QUALITY_FLAGGED)} kept with failed checks, {total(metrics.QUALITY_REJECTED)} rejected"
        + (f" (see {report.output}/{REJECTED}/)" if report.output else ""),
    ]
    failed = sorted(report.quality.get(metrics.QUALITY_FAILED, {}).items())
    if failed:
        lines.append("failed checks: " + ", ".join(f"{name} {n}" for name, n in failed))
    lines.append(contamination)
    return lines
