"""Attribution results: incremental and attributed conversions per channel next to baselines.

From the ``attribution`` block of summary.json (data contract section 5):
``channels -> {incremental: I, attributed: I}`` and ``baselines -> {method:
{channel: float}}`` (last touch, Markov, Shapley, ...).
"""

from __future__ import annotations

import numpy as np

from gaelp_bayes.report.context import ReportContext
from gaelp_bayes.report.figures import figure_html, pyplot
from gaelp_bayes.report.html import esc, fmt_interval, fmt_num, note, section, table

__all__ = ["attribution_section"]


def _figure(channels: dict, baselines: dict) -> str:
    plt = pyplot()
    names = list(channels)
    y = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(7.5, 0.55 * len(names) + 1.4))
    for off, key, color in ((-0.15, "incremental", "C0"), (0.15, "attributed", "C3")):
        for i, ch in enumerate(names):
            iv = channels[ch].get(key)
            if not isinstance(iv, dict):
                continue
            ax.plot([iv["q05"], iv["q95"]], [i + off] * 2, color=color, lw=3, alpha=0.6)
            ax.plot(iv["mean"], i + off, "o", color=color, label=key if i == 0 else None)
    markers = "sD^vP*X<>"
    for k, (method, vals) in enumerate(baselines.items()):
        xs = [(i, vals[ch]) for i, ch in enumerate(names) if ch in vals]
        if xs:
            ax.scatter(
                [v for _, v in xs],
                [i for i, _ in xs],
                marker=markers[k % len(markers)],
                facecolors="none",
                edgecolors=f"C{(k + 4) % 10}",
                label=method,
                zorder=3,
            )
    ax.set_yticks(y, names)
    ax.invert_yaxis()
    ax.set_xlabel("conversions")
    ax.grid(alpha=0.3, axis="x")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    return figure_html(
        fig,
        "attribution per channel",
        "Per channel: incremental and attributed conversions (posterior mean and 90% interval); "
        "open markers: baseline attributions.",
    )


def attribution_section(ctx: ReportContext) -> str:
    s = ctx.bundle.summary.get("attribution")
    if not isinstance(s, dict) or not (s.get("channels") or {}):
        return ""
    channels = s["channels"]
    baselines = {m: v for m, v in (s.get("baselines") or {}).items() if isinstance(v, dict)}
    body = _figure(channels, baselines)
    rows = [
        [
            esc(ch),
            fmt_interval(v.get("incremental")),
            fmt_interval(v.get("attributed")),
            *[fmt_num(baselines[m].get(ch)) for m in baselines],
        ]
        for ch, v in channels.items()
    ]
    body += table(["channel", "incremental", "attributed", *baselines], rows, raw=True)
    base = s.get("baseline", {}).get("attributed")
    if isinstance(base, dict):
        body += note(f"Credited to the segment baselines (no touch): {fmt_interval(base)}.")
    body += note(
        "Incremental: conversions that would not have happened without the channel's touches; "
        "attributed: credit that sums to conversions. Posterior mean [5%, 95%]; baselines are "
        "point values."
    )
    counts = s.get("counts")
    if isinstance(counts, dict) and counts:
        labels = {
            "persons": "persons",
            "conversions": "conversions",
            "touches": "touches",
            "touches_after_conversion_ignored": "touches after a conversion (ignored)",
            "session_visits_ignored": "conversion-session visits (ignored)",
            "converters_without_touches": "converters without a touch (credited to baseline)",
        }
        parts = [f"{lbl}: {fmt_num(counts[k])}" for k, lbl in labels.items() if k in counts]
        body += note("Data: " + "; ".join(parts) + ".")
    return section("attribution", "Attribution: channels and baselines", body)
