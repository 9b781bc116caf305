"""The HTML page of `embedgen report`: one self-contained file, plots as inline SVG, no scripts, no network."""

from __future__ import annotations

import datetime
import html
import json
import logging

__all__ = ["render", "bar_chart", "histogram_chart"]

_LOGGER = logging.getLogger(__name__)

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
h1{font-size:1.6em}h2{margin-top:2em;border-bottom:1px solid #ddd}h3{font-size:1.05em;margin:1.2em 0 .3em}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ddd;padding:3px 8px;text-align:right}
th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}
.cards{display:flex;flex-wrap:wrap;gap:12px}.card{border:1px solid #ddd;border-radius:6px;padding:10px 16px}
.card b{display:block;font-size:1.5em}.grid{display:flex;flex-wrap:wrap;gap:16px}
.bad{color:#b00020}.note{color:#666}svg text{font:11px system-ui,sans-serif;fill:#333}
"""
_BLUE, _RED, _GREEN = "#4e79a7", "#e15759", "#59a14f"


def _e(value) -> str:
    return html.escape(str(value))


def bar_chart(title: str, items, color: str = _BLUE, fmt=str, width: int = 520) -> str:
    """Horizontal bars: one per (label, value)."""
    items = list(items)
    if not items:
        return ""
    peak = max(v for _, v in items) or 1
    label_w, bar_w, row_h = 190, width - 190 - 70, 18
    height = row_h * len(items) + 24
    parts = [f'<svg role="img" width="{width}" height="{height}" viewBox="0 0 {width} {height}">']
    parts.append(f'<text x="0" y="12" font-weight="bold">{_e(title)}</text>')
    for i, (label, value) in enumerate(items):
        y = 20 + i * row_h
        w = max(1.0, bar_w * value / peak) if value else 0
        parts.append(f'<text x="{label_w - 6}" y="{y + 12}" text-anchor="end">{_e(label)}</text>')
        parts.append(f'<rect x="{label_w}" y="{y + 2}" width="{w:.1f}" height="{row_h - 5}" fill="{color}"/>')
        parts.append(f'<text x="{label_w + w + 4:.1f}" y="{y + 12}">{_e(fmt(value))}</text>')
    parts.append("</svg>")
    return "".join(parts)


def histogram_chart(title: str, hist: dict, color: str = _BLUE, width: int = 520, height: int = 190) -> str:
    """Vertical bars of a histogram dict (``edges``, ``counts``); the last bin is open-ended."""
    edges, counts = hist["edges"], hist["counts"]
    peak = max(counts) or 1
    left, bottom, top = 34, 36, 22
    plot_w, plot_h = width - left - 8, height - bottom - top
    bar = plot_w / len(counts)
    parts = [f'<svg role="img" width="{width}" height="{height}" viewBox="0 0 {width} {height}">']
    parts.append(f'<text x="0" y="12" font-weight="bold">{_e(title)}</text>')
    parts.append(f'<text x="{left - 4}" y="{top + 8}" text-anchor="end">{peak}</text>')
    parts.append(f'<text x="{left - 4}" y="{top + plot_h}" text-anchor="end">0</text>')
    for i, count in enumerate(counts):
        h = plot_h * count / peak
        x = left + i * bar
        parts.append(
            f'<rect x="{x + 1:.1f}" y="{top + plot_h - h:.1f}" width="{bar - 2:.1f}" height="{h:.1f}" fill="{color}">'
            f"<title>{_e(edges[i])}{'+' if i == len(counts) - 1 else '–' + _e(edges[i + 1])}: {count}</title></rect>"
        )
        if i % max(1, len(counts) // 8) == 0 or i == len(counts) - 1:
            parts.append(
                f'<text x="{x + bar / 2:.1f}" y="{top + plot_h + 14}" text-anchor="middle">{_e(edges[i])}</text>'
            )
    parts.append(f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#999"/>')
    parts.append("</svg>")
    return "".join(parts)


def _pct(part, whole) -> str:
    return f"{100.0 * part / whole:.1f}%" if whole else "n/a"


def _cards(s: dict) -> str:
    cards = [
        ("rows written", s["rows_written"]),
        ("rows rejected", s["rows_rejected"]),
        ("duplicates removed", s["duplicates"]),
        ("dead letters", s["dead_letters"]),
        ("pass every check", f"{s['rows_passing']} ({_pct(s['rows_passing'], s['rows_generated'])})"),
    ]
    if s["rows_with_both_similarities"]:
        share = _pct(s["negative_beats_positive"], s["rows_with_both_similarities"])
        cards.append(("negative beats positive", f"{s['negative_beats_positive']} ({share})"))
    body = "".join(f'<div class="card" data-key="{_e(k)}"><b>{_e(v)}</b>{_e(k)}</div>' for k, v in cards)
    return f'<div class="cards">{body}</div>'


def _categories(s: dict) -> str:
    rows = "".join(
        f"<tr><td>{_e(c)}</td><td>{v['written']}</td><td>{v['rejected']}</td></tr>" for c, v in s["by_category"].items()
    )
    table = f"<table><tr><th>category</th><th>written</th><th>rejected</th></tr>{rows}</table>"
    per_category = bar_chart(
        "rows per category", [(c, v["written"] + v["rejected"]) for c, v in s["by_category"].items()]
    )
    languages: dict = {}
    for counts in s["by_language"].values():
        for lang, v in counts.items():
            languages[lang] = languages.get(lang, 0) + v["written"] + v["rejected"]
    top = sorted(languages.items(), key=lambda kv: (-kv[1], kv[0]))[:25]
    per_language = bar_chart(f"rows per language (top {len(top)} of {len(languages)})", top)
    detail = "".join(
        f"<h3>{_e(c)}</h3><table><tr><th>language</th><th>written</th><th>rejected</th></tr>"
        + "".join(
            f"<tr><td>{_e(lang)}</td><td>{v['written']}</td><td>{v['rejected']}</td></tr>" for lang, v in langs.items()
        )
        + "</table>"
        for c, langs in s["by_language"].items()
    )
    return f'{table}<div class="grid">{per_category}{per_language}</div><details><summary>rows per category and language</summary>{detail}</details>'  # noqa: E501


def _check_table(checks: dict) -> str:
    rows = []
    for name, v in checks.items():
        ok = v["ran"] - v["failed"]
        cls = ' class="bad"' if v["failed"] else ""
        rows.append(
            f"<tr><td>{_e(name)}</td><td>{v['ran']}</td><td{cls}>{v['failed']}</td><td>{_pct(ok, v['ran'])}</td></tr>"
        )
    return "<table><tr><th>check</th><th>ran</th><th>failed</th><th>pass rate</th></tr>" + "".join(rows) + "</table>"


def _checks(s: dict) -> str:
    if not s["check_kinds"]:
        return '<p class="note">No quality checks recorded on these rows.</p>'
    chart = bar_chart(
        "pass rate per check, all categories (%)",
        [(kind, 100.0 * (v["ran"] - v["failed"]) / v["ran"]) for kind, v in s["check_kinds"].items() if v["ran"]],
        color=_GREEN,
        fmt=lambda x: f"{x:.1f}",
    )
    tables = "".join(
        f"<div><h3>{_e(category)}</h3>{_check_table(checks)}</div>"
        for category, checks in s["checks"].items()
        if checks
    )
    legend = (
        '<p class="note">language: text not in the requested language; echo: text is a prompt field name; length: word count outside what was '  # noqa: E501
        "asked (num_words, query_length, unit, prompt wording); copied: first text found verbatim in the second; "
        "same: two texts that must differ do not; "
        "duplicate: near-duplicate of an earlier example; negative_beats_positive: the embedding model ranks the "
        "negative above the positive. See docs/quality.md.</p>"
    )
    return f'{chart}{legend}<div class="grid">{tables}</div>'


def _attributes(s: dict) -> str:
    charts = [
        bar_chart(f"{c}: {name}", sorted(values.items()))
        for c, attrs in s["attributes"].items()
        for name, values in attrs.items()
    ]
    return f'<div class="grid">{"".join(charts)}</div>' if charts else '<p class="note">No sampled attributes.</p>'


def _lengths(s: dict) -> str:
    charts = [
        histogram_chart(f"{c}: words in {key}", hist) for c, keys in s["lengths"].items() for key, hist in keys.items()
    ]
    note = '<p class="note">Whitespace-separated words; languages written without spaces are left out.</p>'
    return note + f'<div class="grid">{"".join(charts)}</div>'


def _similarity(s: dict) -> str:
    if not s["similarity"]:
        return '<p class="note">No similarities: run generate with --embedding-checks to record them.</p>'
    colors = {"sim_query_positive": _GREEN, "sim_query_negative": _RED}
    charts = [histogram_chart(f"{name} (cosine)", h, colors.get(name, _BLUE)) for name, h in s["similarity"].items()]
    mined = f"<p>Mined negatives: {s['mined_negatives']} on {s['rows_with_mined_negatives']} rows.</p>"
    return f'<div class="grid">{"".join(charts)}</div>{mined}'


def _dead(s: dict) -> str:
    if not s["dead_letters_by_reason"]:
        return '<p class="note">No dead letters.</p>'
    return bar_chart("dead letters by stage/reason", s["dead_letters_by_reason"].items(), color=_RED)


def render(stats: dict, input_dir: str) -> str:
    """The whole page. The numbers are also embedded as JSON (a non-executed data block) for tools and tests."""
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    data = json.dumps(stats, sort_keys=True).replace("</", "<\\/")
    sections = [
        ("Overview", _cards(stats)),
        ("Rows per category and language", _categories(stats)),
        ("Quality checks", _checks(stats)),
        ("Attribute distributions", _attributes(stats)),
        ("Lengths", _lengths(stats)),
        ("Embedding similarity", _similarity(stats)),
        ("Dead letters", _dead(stats)),
    ]
    body = "".join(f"<h2>{_e(title)}</h2>{content}" for title, content in sections)
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<link rel="icon" href="data:,">'
        f"<title>embedgen report: {_e(input_dir)}</title><style>{_CSS}</style></head><body>"
        f'<h1>embedgen data report</h1><p class="note">{_e(input_dir)} · {stamp}</p>{body}'
        f'<script type="application/json" id="embedgen-stats">{data}</script></body></html>'
    )
