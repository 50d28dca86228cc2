"""HTML fragments of the report: escaping, tables, intervals, boxes and the page shell.

Every helper returns a ``str`` of HTML; anything that comes from a bundle is
escaped here, so section code never writes raw user text into the page.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = [
    "alert",
    "details",
    "esc",
    "fmt_interval",
    "fmt_num",
    "note",
    "page",
    "pre_json",
    "section",
    "table",
]


def esc(value: Any) -> str:
    """Text for HTML (quotes escaped too, so it is safe in attributes)."""
    return html.escape(str(value), quote=True)


def fmt_num(x: Any, digits: int = 3) -> str:
    """A number with ``digits`` significant digits; ``n/a`` for missing or NaN."""
    if x is None:
        return "n/a"
    try:
        v = float(x)
    except (TypeError, ValueError):
        return esc(x)
    if math.isnan(v):
        return "n/a"
    if math.isinf(v):
        return "∞" if v > 0 else "-∞"
    if v != 0 and (abs(v) >= 10**6 or abs(v) < 10**-3):
        return f"{v:.{digits - 1}e}"
    return f"{v:.{digits}g}" if abs(v) < 10**digits else f"{v:,.0f}"


def fmt_interval(i: Mapping[str, Any] | None, digits: int = 3, scale: float = 1.0) -> str:
    """The contract's interval object as ``mean [q05, q95]`` (times ``scale``)."""
    if not isinstance(i, Mapping) or "mean" not in i:
        return "n/a"

    def s(k: str) -> str:
        v = i.get(k)
        return fmt_num(None if v is None else float(v) * scale, digits)

    return f"{s('mean')} <span class='ci'>[{s('q05')}, {s('q95')}]</span>"


def table(
    headers: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    cls: str = "",
    row_classes: Sequence[str] | None = None,
    raw: bool = False,
) -> str:
    """A ``<table>`` (no header row when every header is empty).

    Cells are escaped unless ``raw`` (then they must be safe HTML).
    """
    cell = (lambda v: str(v)) if raw else esc
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    thead = f"<thead><tr>{head}</tr></thead>" if any(headers) else ""
    body = []
    for i, row in enumerate(rows):
        rc = row_classes[i] if row_classes and i < len(row_classes) else ""
        attr = f" class='{esc(rc)}'" if rc else ""
        body.append(f"<tr{attr}>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>")
    cattr = f" class='{esc(cls)}'" if cls else ""
    return f"<table{cattr}>{thead}<tbody>{''.join(body)}</tbody></table>"


def section(anchor: str, title: str, body: str) -> str:
    return f"<section id='{esc(anchor)}'><h2>{esc(title)}</h2>{body}</section>"


def note(text: str) -> str:
    """A muted paragraph (``text`` is escaped)."""
    return f"<p class='note'>{esc(text)}</p>"


def alert(html_body: str, level: str = "fail") -> str:
    """A loud box (``fail`` red, ``warn`` amber); ``html_body`` must be safe HTML."""
    return f"<div class='alert {esc(level)}'>{html_body}</div>"


def details(summary: str, html_body: str) -> str:
    return f"<details><summary>{esc(summary)}</summary>{html_body}</details>"


def pre_json(obj: Any) -> str:
    return f"<pre>{esc(json.dumps(obj, indent=2, sort_keys=True, default=str))}</pre>"


CSS = """
:root { --fg:#1d1d1f; --muted:#666; --line:#ddd; --bad:#b00020; --badbg:#fde8eb;
        --warn:#8a5a00; --warnbg:#fff4dc; --ok:#1b7a35; }
* { box-sizing: border-box; }
body { font: 15px/1.45 -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
       color: var(--fg); margin: 0 auto; padding: 1rem 1.5rem 3rem; max-width: 1180px; }
h1 { font-size: 1.6rem; margin: .5rem 0; }
h2 { font-size: 1.3rem; border-bottom: 2px solid var(--line); padding-bottom: .2rem;
     margin-top: 2.2rem; }
h3 { font-size: 1.05rem; margin: 1.4rem 0 .4rem; }
nav { font-size: .9rem; margin: .3rem 0 1rem; }
nav a { margin-right: .9rem; color: #0b57d0; text-decoration: none; }
table { border-collapse: collapse; margin: .5rem 0 1rem; font-size: .9rem; }
th, td { border: 1px solid var(--line); padding: .25rem .55rem; text-align: right;
         vertical-align: top; }
th { background: #f4f4f6; }
td:first-child, th:first-child { text-align: left; }
table.meta td { text-align: left; }
table.meta td:first-child { font-weight: 600; white-space: nowrap; }
.ci { color: var(--muted); font-size: .85em; white-space: nowrap; }
tr.fail td { background: var(--badbg); }
.fail-flag { color: var(--bad); font-weight: 700; }
.ok-flag { color: var(--ok); font-weight: 700; }
.alert { border: 2px solid; border-radius: 6px; padding: .6rem .9rem; margin: .8rem 0; }
.alert.fail { color: var(--bad); background: var(--badbg); border-color: var(--bad); }
.alert.warn { color: var(--warn); background: var(--warnbg); border-color: var(--warn); }
.alert ul { margin: .3rem 0 0; }
.note { color: var(--muted); font-size: .9rem; }
figure { margin: .5rem 0 1rem; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: var(--muted); font-size: .85rem; }
pre { background: #f6f8fa; padding: .6rem; overflow-x: auto; font-size: .8rem; }
code { font-size: .85em; word-break: break-all; }
details summary { cursor: pointer; color: #0b57d0; }
footer { margin-top: 3rem; color: var(--muted); font-size: .8rem; }
"""


def page(title: str, nav: Sequence[tuple[str, str]], body: str, footer: str = "") -> str:
    """The whole self-contained document: inline CSS, no scripts, no external resources."""
    links = "".join(f"<a href='#{esc(a)}'>{esc(t)}</a>" for a, t in nav)
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
        f"<h1>{esc(title)}</h1><nav>{links}</nav>{body}"
        f"<footer>{esc(footer)}</footer></body></html>\n"
    )
