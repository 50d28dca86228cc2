"""Identity results: persons, the distribution of link probabilities, and their calibration.

Uses the ``identity`` block of summary.json and, when the bundle has it,
``links.parquet`` (``device_a``, ``device_b``, ``p_link``; optional ``known``:
1 / -1 for pairs fixed by a shared / different ``user_id``). Calibration needs
the true device -> person map (``truth/devices.parquet`` of a synthetic
world, passed as ``--truth``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from gaelp_bayes.report.context import ReportContext
from gaelp_bayes.report.figures import figure_html, pyplot
from gaelp_bayes.report.html import esc, fmt_interval, fmt_num, note, section, table

__all__ = ["calibration", "identity_section"]

BINS = 10


def calibration(p: np.ndarray, y: np.ndarray, bins: int = BINS) -> pd.DataFrame:
    """Per equal-width bin of ``p``: pairs, mean predicted P(link), observed link rate."""
    p, y = np.asarray(p, float), np.asarray(y, float)
    b = np.minimum((p * bins).astype(int), bins - 1)
    n = np.bincount(b, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_p = np.bincount(b, weights=p, minlength=bins) / n
        rate = np.bincount(b, weights=y, minlength=bins) / n
    return pd.DataFrame(
        {"lo": np.arange(bins) / bins, "pairs": n, "mean_p": mean_p, "observed": rate}
    )


def _unlabelled(links: pd.DataFrame) -> pd.DataFrame:
    return links[links["known"] == 0] if "known" in links else links


def _histogram(links: pd.DataFrame) -> str:
    plt = pyplot()
    free = _unlabelled(links)
    fig, ax = plt.subplots(figsize=(6.0, 3.0))
    counts, _, _ = ax.hist(free["p_link"].to_numpy(float), bins=40, range=(0, 1), color="C4")
    nz = counts[counts > 0]
    if nz.size and nz.max() > 50 * nz.min():  # most pairs sit near 0: show the tail too
        ax.set_yscale("log")
    ax.set_xlabel("posterior mean P(link)")
    ax.set_ylabel("candidate pairs")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    what = "candidate pairs not fixed by user_id" if "known" in links else "candidate pairs"
    return figure_html(fig, "link probability histogram", f"P(link) of the {len(free)} {what}.")


def _calibration(links: pd.DataFrame, devices: pd.DataFrame) -> str:
    person = devices.set_index(devices["device_id"].astype(str))["person_id"]
    free = _unlabelled(links)
    pa = free["device_a"].astype(str).map(person)
    pb = free["device_b"].astype(str).map(person)
    ok = pa.notna() & pb.notna()
    if not ok.any():
        return note("Calibration: no candidate pair's devices are in the truth table.")
    p = free["p_link"].to_numpy(float)[ok.to_numpy()]
    y = (pa[ok] == pb[ok]).to_numpy(float)
    cal = calibration(p, y)
    ece = float((cal["pairs"] * (cal["mean_p"] - cal["observed"]).abs()).fillna(0).sum() / len(p))
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4.2, 4.0))
    ax.plot([0, 1], [0, 1], color="0.6", ls="--", lw=1)
    used = cal[cal["pairs"] > 0]
    ax.scatter(used["mean_p"], used["observed"], s=15 + 60 * np.sqrt(used["pairs"] / len(p)))
    ax.plot(used["mean_p"], used["observed"], lw=1)
    ax.set_xlim(-0.03, 1.03)  # points at 0 or 1 stay visible
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel("predicted P(link)")
    ax.set_ylabel("observed share of true links")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    rows = [
        [f"{lo:.1f}–{lo + 1 / BINS:.1f}", int(n), fmt_num(mp), fmt_num(o)]
        for lo, n, mp, o in cal.itertuples(index=False)
        if n > 0
    ]
    return figure_html(
        fig,
        "link probability calibration",
        f"Calibration against the truth on {len(p)} unlabelled pairs "
        f"(expected calibration error {ece:.3f}); points sized by pairs.",
    ) + table(["P(link) bin", "pairs", "mean predicted", "observed"], rows)


def identity_section(ctx: ReportContext) -> str:
    if not ctx.has("identity"):
        return ""
    s = ctx.bundle.summary.get("identity") or {}
    body = table(
        ["devices", "candidate pairs", "persons"],
        [
            [
                esc(s.get("devices", "n/a")),
                esc(s.get("candidate_pairs", "n/a")),
                fmt_interval(s.get("persons")),
            ]
        ],
        raw=True,
    )
    if ctx.has_table("links"):
        links = ctx.bundle.table("links")
        if "known" in links:
            k = links["known"]
            body += note(
                f"{int((k == 1).sum())} pairs share a user_id (known links), "
                f"{int((k == -1).sum())} have different user_ids (known non-links), "
                f"{int((k == 0).sum())} are inferred."
            )
        body += "<h3>Link probabilities</h3>" + _histogram(links)
        devices = ctx.truth_table("devices.parquet")
        body += "<h3>Calibration</h3>"
        if devices is not None:
            body += _calibration(links, devices)
        else:
            body += note(
                "Calibration needs the true device → person map: pass --truth DIR "
                "(the truth/ folder of gaelp-bayes example-data, or any folder with "
                "devices.parquet: device_id, person_id)."
            )
    else:
        body += note("The bundle has no links.parquet: no link-probability plots.")
    if ctx.has_table("persons"):
        persons = ctx.bundle.table("persons")
        if "p_assignment" in persons:
            pa = persons["p_assignment"].to_numpy(float)
            body += note(
                f"Device → person assignments: {len(pa)} devices; "
                f"{np.mean(pa >= 0.9):.0%} hold in at least 90% of the posterior maps, "
                f"{np.mean(pa < 0.5):.0%} in fewer than half."
            )
    return section("identity", "Identity: devices to persons", body)
