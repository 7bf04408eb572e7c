"""`newsflow report`: one self-contained HTML file (inline CSS and SVG, no script, nothing fetched).

Sections: headline counts, articles per day per source, unique stories vs duplicates, top entities
with their trend, source health (silent sources highlighted), recent failures. Every number shown is
also in a data-* attribute, so tests can compare the page with SQL. The numbers come from
warehouse/report.py; this module only renders.
"""

from __future__ import annotations

from datetime import date, datetime
from html import escape
from pathlib import Path
from typing import Any

# Colour-blind-safe palette (Okabe-Ito), then greys.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000", "#999999", "#666666"]
UNIQUE_COLOUR, DUPLICATE_COLOUR = "#0072B2", "#E69F00"

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
header{background:#1d2330;color:#fff;padding:18px 32px}header h1{margin:0;font-size:22px}header p{margin:4px 0 0;color:#c5cad3}
main{padding:16px 32px 40px;max-width:1200px}
section{background:#fff;border:1px solid #e1e4e8;border-radius:8px;padding:16px 20px;margin:16px 0}
h2{font-size:17px;margin:0 0 10px}
.kpis{display:flex;flex-wrap:wrap;gap:12px}.kpi{background:#fff;border:1px solid #e1e4e8;border-radius:8px;padding:10px 16px;min-width:120px}
.kpi b{display:block;font-size:24px}.kpi span{color:#5b6472}
table{border-collapse:collapse;width:100%;font-size:13px}th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #eef0f3;vertical-align:top}
th{color:#5b6472;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.silent td{background:#fdecea}.badge{display:inline-block;padding:1px 7px;border-radius:9px;font-size:12px;font-weight:600}
.badge.silent{background:#c62828;color:#fff}.badge.ok{background:#e3f2e6;color:#1b5e20}
.legend{display:flex;flex-wrap:wrap;gap:14px;margin:6px 0 0;font-size:12px;color:#3a4150}.legend i{display:inline-block;width:11px;height:11px;margin-right:5px;vertical-align:-1px;border-radius:2px}
.note{color:#5b6472;font-size:12px;margin:6px 0 0}.url{word-break:break-all;color:#3a4150}
svg text{font:11px system-ui,sans-serif;fill:#5b6472}
"""


def _a(**attrs: Any) -> str:
    """HTML attributes (data_x -> data-x), values escaped."""
    return " ".join(f'{k.replace("_", "-")}="{escape(str(v), quote=True)}"' for k, v in attrs.items())


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, datetime):
        return v.strftime("%Y-%m-%d %H:%M")
    if isinstance(v, date):
        return v.isoformat()
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def stacked_bars(chart: str, days: list[date], series: dict[str, list[int]], colours: dict[str, str], height: int = 220) -> str:
    """An SVG stacked bar chart: one bar per day, one segment per series (each <rect> carries its numbers)."""
    if not days:
        return '<p class="note">No articles yet.</p>'
    totals = [sum(s[i] for s in series.values()) for i in range(len(days))]
    top = max(max(totals), 1)
    left, bottom, width = 36, 28, max(360, min(1100, 26 * len(days) + 60))
    plot_w, plot_h = width - left - 8, height - bottom - 10
    step = plot_w / len(days)
    bar = max(2.0, step * 0.72)
    out = [f'<svg role="img" width="{width}" height="{height}" viewBox="0 0 {width} {height}" {_a(data_chart=chart)}>']
    for frac in (0, 0.5, 1):
        y = 10 + plot_h * (1 - frac)
        out.append(f'<line x1="{left}" x2="{width - 8}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e6e8ec"/>')
        out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{round(top * frac)}</text>')
    label_every = max(1, len(days) // 12)
    for i, d in enumerate(days):
        x = left + i * step + (step - bar) / 2
        y = 10 + plot_h
        for name, values in series.items():
            v = values[i]
            if v <= 0:
                continue
            h = plot_h * v / top
            y -= h
            attrs = _a(data_day=d.isoformat(), data_series=name, data_value=v)
            out.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" fill="{colours[name]}" {attrs}>'
                f"<title>{escape(d.isoformat())} · {escape(name)}: {v}</title></rect>"
            )
        if i % label_every == 0:
            out.append(f'<text x="{x + bar / 2:.1f}" y="{height - 10}" text-anchor="middle">{d.strftime("%m-%d")}</text>')
    out.append("</svg>")
    legend = "".join(f'<span><i style="background:{colours[n]}"></i>{escape(n)}</span>' for n in series)
    return "".join(out) + f'<div class="legend">{legend}</div>'


def sparkline(values: list[int], width: int = 160, height: int = 28) -> str:
    """A small SVG line of values (the entity's articles per day)."""
    if not values:
        return ""
    top = max(max(values), 1)
    step = width / max(1, len(values) - 1)
    pts = " ".join(f"{i * step:.1f},{height - 3 - (height - 6) * v / top:.1f}" for i, v in enumerate(values))
    return (
        f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" {_a(data_trend=",".join(map(str, values)))}>'
        f'<polyline points="{pts}" fill="none" stroke="#0072B2" stroke-width="1.6"/></svg>'
    )


def _kpis(totals: dict[str, int]) -> str:
    labels = {
        "articles": "articles", "unique_stories": "unique stories", "duplicates": "duplicates", "sources": "sources",
        "entities": "entities", "runs": "runs", "failing_urls": "failing URLs",
    }
    return '<div class="kpis">' + "".join(
        f'<div class="kpi" {_a(data_metric=k, data_value=totals[k])}><b>{totals[k]}</b><span>{escape(label)}</span></div>'
        for k, label in labels.items()
    ) + "</div>"


def _per_day_section(data: dict[str, Any]) -> str:
    days: list[date] = data["days"]
    sources = sorted({r["source"] for r in data["articles_per_day"]})
    idx = {d: i for i, d in enumerate(days)}
    series = {s: [0] * len(days) for s in sources}
    for r in data["articles_per_day"]:
        series[r["source"]][idx[r["day"]]] = int(r["articles"])
    colours = {s: PALETTE[i % len(PALETTE)] for i, s in enumerate(sources)}
    note = f"Days with articles (publication day, else the day first seen): the latest {len(days)} of {data['all_days']}."
    return f"<section><h2>Articles per day and source</h2>{stacked_bars('articles-per-day', days, series, colours)}<p class=\"note\">{escape(note)}</p></section>"


def _stories_section(data: dict[str, Any]) -> str:
    days: list[date] = data["days"]
    idx = {d: i for i, d in enumerate(days)}
    series = {"unique stories": [0] * len(days), "duplicates": [0] * len(days)}
    for r in data["stories_per_day"]:
        series["unique stories"][idx[r["day"]]] = int(r["unique_stories"])
        series["duplicates"][idx[r["day"]]] = int(r["duplicates"])
    colours = {"unique stories": UNIQUE_COLOUR, "duplicates": DUPLICATE_COLOUR}
    return f"<section><h2>Unique stories vs duplicates</h2>{stacked_bars('stories-per-day', days, series, colours)}<p class=\"note\">A duplicate is an article recorded as a copy (same URL, same text, or near-identical text) of an earlier one.</p></section>"


def _entities_section(data: dict[str, Any]) -> str:
    rows = "".join(
        f'<tr {_a(data_entity=e["name"], data_type=e["type"], data_articles=e["articles"], data_mentions=e["mentions"])}>'
        f'<td>{escape(e["name"])}</td><td>{escape(e["type"])}</td><td class="num">{e["articles"]}</td>'
        f'<td class="num">{e["mentions"]}</td><td>{sparkline(e.get("trend", []))}</td></tr>'
        for e in data["top_entities"]
    )
    return (
        "<section><h2>Top entities</h2><table><thead><tr><th>entity</th><th>type</th><th>articles</th><th>mentions</th>"
        f"<th>articles per day (same days as above)</th></tr></thead><tbody>{rows}</tbody></table></section>"
    )


def _health_section(data: dict[str, Any]) -> str:
    rows = []
    for h in data["source_health"]:
        silent = bool(h["silent"])
        badge = '<span class="badge silent">silent</span>' if silent else '<span class="badge ok">ok</span>'
        attrs = _a(
            data_source=h["source"], data_silent=str(silent).lower(), data_articles=h["articles"], data_runs=h["runs"],
            data_failures=h["failures"], data_failure_rate=_fmt(h["failure_rate"]),
        )
        rows.append(
            f'<tr class="{"silent" if silent else ""}" {attrs}><td>{escape(h["source"])}</td><td>{escape(h["kind"])}</td><td>{badge}</td>'
            f'<td>{escape(_fmt(h["last_success_at"]))}</td><td class="num">{h["runs"]}</td><td class="num">{h["articles"]}</td>'
            f'<td class="num">{escape(_fmt(h["items_per_run"]))}</td><td class="num">{escape(_fmt(h["not_modified_share"]))}</td>'
            f'<td class="num">{escape(_fmt(h["failure_rate"]))}</td><td>{escape(_fmt(h["newest_item_at"]))}</td>'
            f'<td class="num">{escape(_fmt(h["usual_gap_hours"]))}</td></tr>'
        )
    silent_n = sum(1 for h in data["source_health"] if h["silent"])
    return (
        f"<section><h2>Source health <span {_a(data_metric='silent_sources', data_value=silent_n)}>({silent_n} silent)</span></h2>"
        "<table><thead><tr><th>source</th><th>kind</th><th>state</th><th>last success</th><th>runs</th><th>articles</th>"
        "<th>items/run</th><th>not-modified share</th><th>failure rate</th><th>newest item</th><th>usual gap (h)</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table><p class=\"note\">Silent: no new item for more than three times the source's "
        "usual gap between items, as of its last successful check.</p></section>"
    )


def _failures_section(data: dict[str, Any]) -> str:
    if not data["failures"]:
        return '<section><h2>Recent failures</h2><p class="note">No failures recorded.</p></section>'
    rows = "".join(
        f'<tr {_a(data_failure_reason=f["reason"], data_source=f["source"], data_stage=f["stage"])}>'
        f'<td>{escape(_fmt(f["failed_at"]))}</td><td>{escape(f["source"])}</td><td>{escape(f["stage"])}</td>'
        f'<td>{escape(f["reason"])}</td><td>{"yes" if f["retryable"] else "no"}</td><td class="url">{escape(f["url"])}</td></tr>'
        for f in data["failures"]
    )
    return (
        f"<section><h2>Recent failures</h2><table {_a(data_failures=len(data['failures']))}><thead><tr><th>when</th><th>source</th>"
        f"<th>stage</th><th>reason</th><th>retryable</th><th>URL</th></tr></thead><tbody>{rows}</tbody></table></section>"
    )


def render_html(data: dict[str, Any], *, title: str = "newsflow report") -> str:
    """The whole report as one HTML document (no external resources, no script)."""
    generated = _fmt(data["generated_at"])
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>"
        f"<header><h1>{escape(title)}</h1><p {_a(data_generated_at=generated)}>Generated {escape(generated)}</p></header><main>"
        f"{_kpis(data['totals'])}{_per_day_section(data)}{_stories_section(data)}{_entities_section(data)}"
        f"{_health_section(data)}{_failures_section(data)}</main></body></html>"
    )


def write_report(settings: Any, out: Path) -> dict[str, Any]:
    """Read the warehouse (read-only) and write the report to `out`; returns the data shown."""
    from warehouse import db
    from warehouse.report import report_data

    with db.session(settings, read_only=True) as con:
        data = report_data(con)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(render_html(data), encoding="utf-8")
    tmp.replace(out)
    return data
