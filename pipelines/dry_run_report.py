"""The printed --dry-run estimate: one line per (category, stage), totals, the re-ask bound and the cost."""

from __future__ import annotations

from collections.abc import Sequence

from pipelines import dry_run
from transforms import recipe

__all__ = ["format_report"]


def _tokens(n: int) -> str:
    return f"{n:,}"


def format_report(
    rows: Sequence[dry_run.StageEstimate],
    config,
    settings: dry_run.DryRunSettings,
    how: str,
    graph: tuple | None = None,
) -> str:
    """The printed estimate: a table per (category, stage), totals, re-ask bound and cost."""
    retries = config.max_parse_retries
    lines = [f"embedgen generate --dry-run: no model called, nothing written under {config.output}"]
    lines.append(
        f"model: {config.model.spec}, --max-tokens {dry_run.max_tokens(config)}; input tokens counted with {how}"
    )
    if graph is not None:
        lines.append(f"graph: built (not run), {graph[0]} steps, {graph[1]} model-call stages (one per attempt)")
    priced = settings.priced
    head = f"  {'category':<22}{'stage':<12}{'calls':>9}{'input tokens':>15}{'output cap':>14}{'expected':>14}"
    lines += ["", head + (f"{'cost $':>12}" if priced else "")]
    for row in rows:
        stage = row.stage if row.online else f"{row.stage}*"
        line = (
            f"  {row.category:<22}{stage:<12}{row.calls:>9,}{_tokens(row.input_tokens):>15}"
            f"{_tokens(row.output_cap):>14}{_tokens(row.output_expected):>14}"
        )
        lines.append(line + (f"{dry_run.cost([row], settings):>12.4f}" if priced else ""))
    total = dry_run.StageEstimate("total", "")
    for row in rows:
        total.calls += row.calls
        total.input_tokens += row.input_tokens
        total.output_cap += row.output_cap
        total.output_expected += row.output_expected
    line = (
        f"  {'total':<22}{'':<12}{total.calls:>9,}{_tokens(total.input_tokens):>15}"
        f"{_tokens(total.output_cap):>14}{_tokens(total.output_expected):>14}"
    )
    lines += [line + (f"{dry_run.cost(rows, settings):>12.4f}" if priced else ""), ""]
    expected = "what its prompt asks for (lengths and fields, without the budget's margin)"
    lines.append(
        f"output cap: each request's completion-token budget (at most --max-tokens); expected: {expected}. "
        "Gemini thinking tokens count against the cap."
    )
    if any(recipe.get_task_type(r.category).brainstorm and r.stage == "generate" for r in rows):
        lines.append(
            "brainstormed categories: generation prompts rendered with a stand-in task sentence (the real tasks "
            "come from the brainstorm calls); the calls per category are the planned tasks x examples per task."
        )
    bound = total.calls * (1 + retries)
    lines.append(
        f"re-asks: counted are first attempts; a reply that does not validate is asked again up to "
        f"--max-parse-retries {retries} time(s), so at most {bound:,} calls and {1 + retries}x the tokens above."
    )
    if any(not r.online for r in rows):
        lines.append("* sent as Vertex AI batch prediction jobs (--vertex-batch): half price; brainstorm stays online.")
    if priced:
        lines.append(
            f"cost at ${settings.price_input or 0:g}/M input and ${settings.price_output or 0:g}/M output tokens: "
            f"expected ${dry_run.cost(rows, settings):.4f}; first attempts with every output at its cap "
            f"${dry_run.cost(rows, settings, 'cap'):.4f}; "
            f"at most ${dry_run.cost(rows, settings, 'cap', 1 + retries):.4f} "
            "with every re-ask."
        )
    return "\n".join(lines)
