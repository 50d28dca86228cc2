"""Convergence diagnostics: the policy table of every model, and rank plots.

The table comes from the manifest (what ``fit`` measured, the same numbers as
the CLI warnings); rank plots come from each model's InferenceData, limited to
the parameters that converged worst so that the page stays readable.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from gaelp_bayes.diagnostics import MAX_RHAT, MIN_ESS
from gaelp_bayes.models.latency import FREE_SITES as LATENCY_SITES
from gaelp_bayes.report.context import ReportContext
from gaelp_bayes.report.figures import figure_html, grid
from gaelp_bayes.report.html import alert, esc, fmt_num, note, section, table

__all__ = [
    "MAIN_PARAMS",
    "PARAM_FUNCS",
    "diagnostics_section",
    "failing_models",
    "rank_plot",
    "worst_params",
]

#: Fallback for bundles whose manifest does not record which variables the
#: diagnostics covered. Sampled parameters worth a rank plot, per model (others: every posterior variable):
#: those the model's diagnostics policy checks, so the plots match the table.
MAIN_PARAMS: dict[str, list[str]] = {
    "market": ["mu", "sigma", "hour_sd", "cell_raw", "ctr_intercept", "ctr_segment_sd", "ctr_z"],
    "latency": list(LATENCY_SITES),
}


def _identity_params(posterior) -> list[str]:
    """``lambda`` and ``m_<field>``/``u_<field>``: what the identity model's policy checks."""
    fields = [str(d)[len("level_") :] for d in posterior.dims if str(d).startswith("level_")]
    return ["lambda", *(f"{c}_{f}" for f in fields for c in ("m", "u"))]


#: Or a function of the posterior giving those names, when they depend on the data.
PARAM_FUNCS: dict[str, Callable[[Any], list[str]]] = {"identity": _identity_params}

#: Without a list, variables with more elements per draw than this are skipped.
MAX_ELEMENTS = 1000


def _diag(ctx: ReportContext, model: str) -> dict[str, Any] | None:
    d = (ctx.bundle.manifest.get("diagnostics") or {}).get(model)
    return d if isinstance(d, dict) else None


def failing_models(ctx: ReportContext) -> dict[str, list[str]]:
    """Model -> its policy problems, for every model that fails (or has no diagnostics)."""
    out = {}
    for model in ctx.bundle.models:
        d = _diag(ctx, model)
        if d is None:
            out[model] = ["no diagnostics recorded in the manifest"]
        elif not d.get("ok", False):
            out[model] = list(d.get("problems") or ["fails the diagnostics policy"])
    return out


def _policy_cell(value: Any, bad: bool) -> str:
    return f"<span class='fail-flag'>{value}</span>" if bad else str(value)


def _table(ctx: ReportContext) -> str:
    rows, classes = [], []
    for model in ctx.bundle.models:
        d = _diag(ctx, model)
        if d is None:
            rows.append([esc(model), "n/a", "n/a", "n/a", "n/a", "n/a", _fail("no diagnostics")])
            classes.append("fail")
            continue
        rhat = _num(d.get("max_rhat"))
        eb, et = _num(d.get("min_ess_bulk")), _num(d.get("min_ess_tail"))
        div = int(d.get("divergences") or 0)
        ok = bool(d.get("ok", False))
        rows.append(
            [
                esc(model),
                _policy_cell(fmt_num(rhat, 4), not math.isfinite(rhat) or rhat > MAX_RHAT),
                _policy_cell(fmt_num(eb, 3), not eb >= MIN_ESS),
                _policy_cell(fmt_num(et, 3), not et >= MIN_ESS),
                _policy_cell(div, div > 0),
                f"{esc(d.get('chains', '?'))} × {esc(d.get('draws', '?'))}",
                "<span class='ok-flag'>OK</span>" if ok else _fail("FAIL"),
            ]
        )
        classes.append("" if ok else "fail")
    headers = [
        "model",
        f"max R-hat (≤ {MAX_RHAT})",
        f"min ESS bulk (≥ {MIN_ESS})",
        f"min ESS tail (≥ {MIN_ESS})",
        "divergences (0)",
        "chains × draws",
        "policy",
    ]
    return table(headers, rows, row_classes=classes, raw=True)


def _fail(text: str) -> str:
    return f"<span class='fail-flag'>{esc(text)}</span>"


def _num(x: Any) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return float("nan")


def policy_alert(ctx: ReportContext) -> str:
    """The loud banner at the top of the page when any model fails the policy."""
    bad = failing_models(ctx)
    if not bad:
        return ""
    items = "".join(f"<li><b>{esc(m)}</b>: {esc('; '.join(p))}</li>" for m, p in bad.items())
    return alert(
        f"<b>⚠ {len(bad)} of {len(ctx.bundle.models)} model(s) fail the diagnostics policy "
        f"(R-hat ≤ {MAX_RHAT}, bulk and tail ESS ≥ {MIN_ESS}, no divergences).</b> "
        "Their results below may be unreliable; refit with more <code>--tune</code>/"
        "<code>--draws</code> or chains before using them."
        f"<ul>{items}</ul>"
    )


def worst_params(
    idata, var_names: Sequence[str] | None = None, k: int = 6
) -> list[tuple[str, np.ndarray, float, float]]:
    """The ``k`` scalar parameters that converged worst: ``(label, draws, rhat, ess_bulk)``.

    Ranked by R-hat (highest first), ties (e.g. one chain, where R-hat is
    undefined) by bulk ESS (lowest first). ``draws`` has shape (chain, draw).
    """
    import arviz as az

    post = idata.posterior
    names = [v for v in (var_names or []) if v in post.data_vars]
    if not names:
        names = [
            v
            for v in post.data_vars
            if not str(v).startswith("_")
            and np.prod([post[v].sizes[d] for d in post[v].dims[2:]], dtype=int) <= MAX_ELEMENTS
        ]
    if not names:
        return []
    sub = post[names]
    rhat = az.rhat(sub)
    ess = az.ess(sub, method="bulk")
    out = []
    for v in names:
        da = sub[v]
        extra = [d for d in da.dims if d not in ("chain", "draw")]
        r = np.asarray(rhat[v].values, dtype=float)
        e = np.asarray(ess[v].values, dtype=float)
        for idx in np.ndindex(*r.shape):
            sel = {d: i for d, i in zip(extra, idx, strict=True)}
            labels = [str(da[d].values[i]) for d, i in sel.items()]
            label = f"{v}[{', '.join(labels)}]" if labels else str(v)
            out.append((label, np.asarray(da.isel(sel).values), float(r[idx]), float(e[idx])))

    def key(t):
        rh = t[2] if math.isfinite(t[2]) else math.inf
        es = t[3] if math.isfinite(t[3]) else -math.inf
        return (-rh, es)

    out.sort(key=key)
    return out[:k]


def rank_plot(idata, model: str, k: int = 6, checked: list[str] | None = None) -> str:
    """Rank plots (ArviZ) of the ``k`` worst-converged parameters of a model, as HTML.

    ``checked`` are the variables the model's diagnostics covered, as the
    manifest records them; bundles written before that was recorded fall
    back to the per-model lists above.
    """
    import arviz as az

    names = MAIN_PARAMS.get(model)
    if model in PARAM_FUNCS:
        names = PARAM_FUNCS[model](idata.posterior)
    if checked:
        names = [n for n in checked if n in idata.posterior]
    worst = worst_params(idata, names, k)
    if not worst:
        return note(f"{model}: no posterior variables to plot.")
    chains = worst[0][1].shape[0]
    data = {label: d for label, d, _, _ in worst}
    fig, axes = grid(len(data), ncols=3, panel=(3.8, 2.4))
    az.plot_rank(data, ax=np_array(axes), kind="bars")
    for ax, (_, _, rh, es) in zip(axes, worst, strict=True):
        ax.set_xlabel(f"R-hat {fmt_num(rh, 4)}, ESS {fmt_num(es, 3)}", fontsize=8)
        ax.title.set_fontsize(9)
    fig.tight_layout()
    what = "chains" if chains > 1 else "chain (one chain: R-hat undefined)"
    return figure_html(
        fig,
        f"{model} rank plots",
        f"{model}: rank plots of the {len(data)} parameters with the highest R-hat "
        f"(lowest ESS on ties), {chains} {what}. Well-mixed chains give flat, "
        "overlapping histograms.",
    )


def np_array(axes):
    return np.asarray(axes, dtype=object)


def diagnostics_section(ctx: ReportContext) -> str:
    body = _table(ctx)
    body += note(
        "Numbers measured at fit time over each model's sampled parameters "
        "(manifest.json). A model is flagged when any threshold is missed."
    )
    for model in ctx.bundle.models:
        body += f"<h3>{esc(model)}</h3>"
        checked = (_diag(ctx, model) or {}).get("var_names")
        body += rank_plot(ctx.idata(model), model, ctx.max_panels, checked)
    return section("diagnostics", "Diagnostics", body)
