"""Market results: win probability vs bid, CTR per segment x channel, hour profile of bids.

From the posterior of ``market.nc``: the highest competing bid in channel
``c`` at hour ``h`` is log-normal with log-mean ``mu_c + hour_effect_ch`` and
log-sd ``sigma_c``, so a bid ``b`` wins (floors aside) with probability
``Phi((log b - m) / sigma_c)``; at a typical hour ``m = mu_c + mean_h
hour_effect_ch`` (the summary's definition of the competing-bid median).
"""

from __future__ import annotations

import numpy as np

from gaelp_bayes.report.context import ReportContext, draws
from gaelp_bayes.report.figures import figure_html, grid
from gaelp_bayes.report.html import alert, esc, fmt_interval, fmt_num, note, section, table

__all__ = ["market_section", "win_probability"]


def win_probability(mu: np.ndarray, sigma: np.ndarray, bids: np.ndarray) -> np.ndarray:
    """Draws x bids of P(competing bid < bid) for log-normal competing bids."""
    from scipy.special import ndtr

    return ndtr((np.log(bids)[None, :] - mu[:, None]) / sigma[:, None])


def _band(ax, x, d, color, label=None):
    q05, q50, q95 = np.quantile(d, [0.05, 0.5, 0.95], axis=0)
    ax.fill_between(x, q05, q95, color=color, alpha=0.25, lw=0)
    ax.plot(x, q50, color=color, lw=1.6, label=label)


def _log_bid_axis(ax) -> None:
    """Log x axis labelled at 1-2-5 steps in plain numbers (no crowded minor labels)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _win_figure(channels, mu_t, sigma) -> str:
    fig, axes = grid(len(channels), ncols=3, panel=(3.6, 2.6))
    for c, (ax, ch) in enumerate(zip(axes, channels, strict=True)):
        m, s = mu_t[:, c], sigma[:, c]
        centre, spread = float(np.median(m)), float(np.median(s))
        bids = np.exp(np.linspace(centre - 3 * spread, centre + 3 * spread, 120))
        _band(ax, bids, win_probability(m, s, bids), "C0")
        _log_bid_axis(ax)
        ax.set_ylim(0, 1)
        ax.axhline(0.5, color="0.7", lw=0.8, ls=":")
        ax.set_title(ch, fontsize=10)
        ax.set_xlabel("bid", fontsize=8)
        ax.set_ylabel("P(win)", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return figure_html(
        fig,
        "win probability vs bid per channel",
        "Win probability vs bid per channel at a typical hour: posterior median and 90% band "
        "(floors not included). The dotted line is the competing-bid median.",
    )


def _hour_figure(channels, mu, eta) -> str:
    fig, axes = grid(len(channels), ncols=3, panel=(3.6, 2.4))
    hours = np.arange(eta.shape[-1])
    for c, (ax, ch) in enumerate(zip(axes, channels, strict=True)):
        _band(ax, hours, np.exp(mu[:, c, None] + eta[:, c, :]), "C1")
        ax.set_title(ch, fontsize=10)
        ax.set_xlabel("hour (UTC)", fontsize=8)
        ax.set_ylabel("median competing bid", fontsize=8)
        ax.set_xticks([0, 6, 12, 18, 23])
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return figure_html(
        fig,
        "hour profile of competing bids",
        "Median competing bid by hour of day: posterior median and 90% band.",
    )


def _ctr_table(post, ctr: np.ndarray) -> str:
    segs = [str(s) for s in post["segment"].values]
    chans = [str(c) for c in post["channel"].values]
    rows = []
    for i, s in enumerate(segs):
        cells = [esc(s)]
        for j in range(len(chans)):
            x = ctr[:, i, j] * 100
            cells.append(
                f"{fmt_num(x.mean(), 3)} <span class='ci'>[{fmt_num(np.quantile(x, 0.05), 3)}, "
                f"{fmt_num(np.quantile(x, 0.95), 3)}]</span>"
            )
        rows.append(cells)
    return table(["segment \\ channel", *chans], rows, raw=True)


def _summary_table(summary: dict) -> str:
    chans = summary.get("channels") or {}
    if not chans:
        return ""
    rows = [
        [
            esc(ch),
            fmt_interval(v.get("competing_bid_median")),
            fmt_interval(v.get("ctr"), scale=100),
            fmt_interval(v.get("opportunities_per_day")),
        ]
        for ch, v in chans.items()
    ]
    return table(
        ["channel", "competing bid median", "CTR (%)", "opportunities per day"], rows, raw=True
    )


def market_section(ctx: ReportContext) -> str:
    if not ctx.has("market"):
        return ""
    idata = ctx.idata("market")
    post = idata.posterior
    summary = ctx.bundle.summary.get("market") or {}
    body = ""
    if summary.get("warning"):
        body += alert(esc(summary["warning"]), "warn")
    if summary.get("landscape_source"):
        body += note(f"Bid landscape fitted on: {summary['landscape_source']}.")
    body += _summary_table(summary)
    body += note("Each cell: posterior mean [5%, 95%].")
    channels = [str(c) for c in post["channel"].values]
    n = ctx.max_draws
    have = set(post.data_vars)
    if {"mu", "sigma", "hour_effect"} <= have:
        mu, sigma = draws(idata, "mu", n), draws(idata, "sigma", n)
        eta = draws(idata, "hour_effect", n)  # (N, C, 24)
        body += "<h3>Win probability vs bid</h3>"
        body += _win_figure(channels, mu + eta.mean(axis=2), sigma)
        body += "<h3>Hour profile of competing bids</h3>"
        body += _hour_figure(channels, mu, eta)
    if "ctr" in have:
        body += "<h3>Click-through rate per segment × channel (%)</h3>"
        body += _ctr_table(post, draws(idata, "ctr", n))
        body += note("Posterior mean [5%, 95%] of the CTR in percent.")
    return section("market", "Market: bid landscape and click-through", body)
