"""Latency results: conversion curves per segment with 90% bands, p_convert and median delay.

Everything here comes from the ``latency`` block of summary.json (data
contract section 5), so it works for any bundle that follows the contract.
"""

from __future__ import annotations

from gaelp_bayes.report.context import ReportContext
from gaelp_bayes.report.figures import figure_html, grid
from gaelp_bayes.report.html import esc, fmt_interval, note, section, table

__all__ = ["latency_section"]


def _curves(segments: dict, truth: dict | None) -> str:
    names = [s for s, v in segments.items() if isinstance(v.get("cdf"), dict)]
    if not names:
        return ""
    fig, axes = grid(len(names), ncols=3, panel=(3.6, 2.6), sharey=False)
    ymax = max(max(segments[s]["cdf"].get("q95") or [0]) for s in names)
    for ax, s in zip(axes, names, strict=True):
        cdf = segments[s]["cdf"]
        days = cdf["days"]
        ax.fill_between(days, cdf["q05"], cdf["q95"], color="C2", alpha=0.25, lw=0)
        ax.plot(days, cdf["mean"], color="C2", lw=1.6, label="posterior")
        t = (truth or {}).get(s)
        if isinstance(t, dict):
            td = sorted((int(k), float(v)) for k, v in t.items())
            ax.plot([d for d, _ in td], [v for _, v in td], "k--", lw=1, label="truth")
            ymax = max(ymax, max(v for _, v in td))
        ax.set_title(s, fontsize=10)
        ax.set_xlabel("days since first touch", fontsize=8)
        ax.set_ylabel("P(converted)", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in axes:
        ax.set_ylim(0, min(1.0, ymax * 1.1 + 1e-3))
    axes[0].legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    cap = "P(converted within d days of first touch), all persons: posterior mean and 90% band"
    cap += "; dashed: the true curve." if truth else "."
    return figure_html(fig, "latency curves per segment", cap)


def latency_section(ctx: ReportContext) -> str:
    summary = ctx.bundle.summary.get("latency")
    if not ctx.has("latency") or not isinstance(summary, dict):
        return ""
    segments = summary.get("segments") or {}
    body = _curves(segments, ctx.truth_json("latency.json"))
    rows = [
        [
            esc(s),
            esc(v.get("persons", "n/a")),
            fmt_interval(v.get("p_convert")),
            fmt_interval(v.get("median_days")),
        ]
        for s, v in segments.items()
    ]
    body += table(
        ["segment", "persons", "P(eventual conversion)", "median days to convert"], rows, raw=True
    )
    body += note("Posterior mean [5%, 95%]. Median days: among persons who eventually convert.")
    now = summary.get("nowcast")
    if isinstance(now, dict) and "expected_conversions" in now:
        body += "<h3>Nowcast: conversions still to come from open journeys</h3>"
        body += table(
            ["horizon (days)", "open journeys", "expected", "predicted", "eventual (expected)"],
            [
                [
                    esc(now.get("horizon_days", "n/a")),
                    esc(now.get("open_journeys", "n/a")),
                    fmt_interval(now.get("expected_conversions")),
                    fmt_interval(now.get("predicted_conversions")),
                    fmt_interval(now.get("eventual_expected_conversions")),
                ]
            ],
            raw=True,
        )
    return section("latency", "Latency: time from first touch to conversion", body)
