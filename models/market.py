"""Market model: the competing-bid landscape, click-through and opportunity rates.

Three independent parts, fitted together in one NumPyro model (one
InferenceData, ``market.nc``):

**Bid landscape.** The highest competing bid for one impression in channel
``c`` at hour ``h`` is log-normal, ``log b ~ Normal(mu_c + eta_ch, sigma_c)``,
with hour effects partially pooled per channel (``mu_c + eta_ch ~
Normal(mu_c, tau_c)``, centred: cells are usually data-rich). Each auction row says something different about ``b``:

=====================  =====================================  ==================
auction                what it reveals                        likelihood term
=====================  =====================================  ==================
second price, won      ``b = price`` (when price > floor)     log-normal density
second price, won      ``b <= floor`` (price at the floor)    log CDF at floor
second price, lost     ``b >= bid`` (when bid > floor)        log survival at bid
first price, won       ``b <= bid``                           log CDF at bid
first price, lost      ``b >= bid`` (when bid > floor)        log survival at bid
lost with bid <= floor nothing about ``b``                    (not used)
=====================  =====================================  ==================

Exact prices enter through per-cell sufficient statistics (count, sum and
sum of squares of log price), so the cost does not grow with the number of
auctions. Censoring bounds are binned on the log scale (``price_bin``,
default 0.05) per cell and direction, and counted, for the same reason. A
bin enters at the mean of its log bounds, with a second-order correction for
their spread (``cens_var``; single log-normal landscape), so its error is of
fourth order in the spread: at width 0.05 the example world's landscape
posterior moves by under 0.05 posterior sd against width 0.01 (measured),
and the bound error itself is tested. A mixture landscape (``components >
1``) bins exact prices too (``exact_price_bin``, default 0.01) and uses bin
means without the correction.

**Click-through.** ``clicks ~ Binomial(impressions, p_sc)`` per segment x
channel with ``logit p_sc = a_c + s_c z_sc``: partially pooled across
segments within a channel.

**Opportunity rates.** Auctions per day per segment x channel x hour,
Poisson with a conjugate Gamma prior: posterior draws are exact
(``Gamma(a + n, b + days)``) and are added to the posterior group.

A PyMC builder of the landscape and CTR parts, written on the raw rows
with ``pm.logp``/``pm.logcdf`` rather than on the aggregates, is the
reference: its log-density equals the NumPyro one (tested).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from gaelp_bayes.config import Config
from gaelp_bayes.diagnostics import Diagnostics, diagnose, interval
from gaelp_bayes.errors import ConfigError, DataError, MissingDependencyError

HOURS = 24
ALL_SEGMENTS = "*"


@dataclass(frozen=True)
class MarketConfig:
    """Priors and data settings of the market model (the ``[market]`` config table)."""

    components: int = 1  # log-normal components of the competing-bid distribution
    # width of log-scale bins for censoring bounds (and exact prices, K > 1); a bin
    # enters at its mean bound with a second-order correction for its spread
    price_bin: float = 0.05
    # width of the log-scale bins of exact prices in a mixture landscape (K > 1 only;
    # with K = 1 exact prices enter through exact sufficient statistics)
    exact_price_bin: float = 0.01
    component_gap_scale: float = 1.0  # HalfNormal scale of log-distance between components
    weight_concentration: float = 2.0  # symmetric Dirichlet prior of component weights
    mu_prior_sd: float = 3.0  # around the channel's median observed price/bid (log scale)
    sigma_prior_scale: float = 1.0  # HalfNormal scale of the log-sd of competing bids
    hour_sd_prior_scale: float = 0.5  # HalfNormal scale of hour-effect spread
    ctr_intercept_mean: float = -4.0  # logit scale (about 1.8%)
    ctr_intercept_sd: float = 2.0
    ctr_segment_sd_scale: float = 1.0
    rate_prior_shape: float = 0.5  # Gamma prior of opportunities per day per cell
    rate_prior_rate: float = 0.001

    def validate(self) -> list[str]:
        out = []
        if not 1 <= self.components <= 4:
            out.append(f"market.components must be 1..4, got {self.components!r}")
        for k in (
            "price_bin",
            "exact_price_bin",
            "component_gap_scale",
            "weight_concentration",
            "mu_prior_sd",
            "sigma_prior_scale",
            "hour_sd_prior_scale",
            "ctr_intercept_sd",
            "ctr_segment_sd_scale",
            "rate_prior_shape",
            "rate_prior_rate",
        ):
            if not getattr(self, k) > 0:
                out.append(f"market.{k} must be > 0, got {getattr(self, k)!r}")
        return out


@dataclass
class MarketData:
    """Aggregated inputs of the market model."""

    channels: list[str]
    segments: list[str]
    center: np.ndarray  # (C,) prior centre of mu_c: log of the channel's median bound
    # exact prices, per (channel, hour) cell with at least one
    exact_cell: np.ndarray
    exact_n: np.ndarray
    exact_s1: np.ndarray
    exact_s2: np.ndarray
    exact_logsum: float  # sum of log prices (Jacobian of the log-normal density)
    # exact prices binned like the censoring bounds (used by the mixture, K > 1)
    xbin_cell: np.ndarray
    xbin_logv: np.ndarray
    xbin_weight: np.ndarray
    # censored bounds (binned): cell, log bound, +1 = "b >= bound", -1 = "b <= bound", count
    cens_cell: np.ndarray
    cens_logb: np.ndarray
    cens_sign: np.ndarray
    cens_weight: np.ndarray
    cens_var: np.ndarray  # variance of the log bounds within each bin (second-order term)
    # click-through per (segment, channel)
    impressions: np.ndarray  # (S, C)
    clicks: np.ndarray  # (S, C)
    # opportunities per (segment, channel, hour) and observed days
    opportunities: np.ndarray  # (S, C, 24)
    days: float
    source: str  # "auctions" or "events"
    counts: dict[str, int] = field(default_factory=dict)


def _hour(ts: pd.Series) -> np.ndarray:
    return ts.dt.tz_convert("UTC").dt.hour.to_numpy()


def classify_auctions(auctions: pd.DataFrame) -> pd.DataFrame:
    """One row per informative auction: channel, hour, kind (exact/le/ge) and value.

    ``kind`` is ``"exact"`` (b = value), ``"le"`` (b <= value) or ``"ge"``
    (b >= value). Rows that say nothing about the competing bid (lost with a
    bid at or below the floor) are dropped.
    """
    a = auctions
    won = a["won"].astype(bool).to_numpy()
    bid = a["bid"].to_numpy(float)
    price = a["price"].to_numpy(float) if "price" in a else np.full(len(a), np.nan)
    floor = a["floor"].fillna(0.0).to_numpy(float) if "floor" in a else np.zeros(len(a))
    kind_col = a["auction_type"] if "auction_type" in a else pd.Series("second_price", a.index)
    first = kind_col.fillna("second_price").str.lower().eq("first_price").to_numpy()
    at_floor = won & ~first & (price <= floor * (1 + 1e-9)) & (floor > 0)
    exact = won & ~first & ~at_floor & (price > 0)
    le = (won & first) | at_floor
    ge = ~won & (bid > floor)
    value = np.where(exact, price, np.where(at_floor, floor, bid))
    kind = np.select([exact, le, ge], ["exact", "le", "ge"], default="")
    out = pd.DataFrame(
        {
            "channel": a["channel"].astype(str).to_numpy(),
            "hour": _hour(a["timestamp"]),
            "kind": kind,
            "value": value,
        }
    )
    return out[out["kind"] != ""].reset_index(drop=True)


def _bin_key(logv: np.ndarray, width: float) -> np.ndarray:
    return np.round(logv / width).astype(np.int64)


def bin_censored(rows: pd.DataFrame, cfg: MarketConfig) -> pd.DataFrame:
    """``rows`` (:func:`classify_auctions`) with each censoring bound moved to its bin's value.

    A bin holds the bounds of one channel, hour and direction whose log lies
    within ``price_bin`` of each other; its value is their mean log and
    ``bin_var`` the variance of their logs (the spread the second-order
    correction uses). This is what :func:`market_data` aggregates; the
    row-wise PyMC reference uses it to see the same data.
    """
    out = rows.copy()
    cen = out["kind"] != "exact"
    logv = np.log(out.loc[cen, "value"].to_numpy(float))
    key = pd.DataFrame(
        {
            "channel": out.loc[cen, "channel"].to_numpy(),
            "hour": out.loc[cen, "hour"].to_numpy(),
            "ge": (out.loc[cen, "kind"] == "ge").to_numpy(),
            "key": _bin_key(logv, cfg.price_bin),
            "logv": logv,
        }
    )
    grouped = key.groupby(["channel", "hour", "ge", "key"])["logv"]
    out.loc[cen, "value"] = np.exp(grouped.transform("mean").to_numpy())
    out["bin_var"] = 0.0
    out.loc[cen, "bin_var"] = grouped.transform("var", ddof=0).to_numpy()
    return out


def market_data(
    events: pd.DataFrame,
    auctions: pd.DataFrame | None,
    as_of: pd.Timestamp,
    cfg: MarketConfig,
) -> MarketData:
    """Aggregate events (and the auction log, when given) into model inputs.

    Without an auction log the landscape is fitted on the costs of won
    impressions in ``events`` as if they were exact competing bids: that
    ignores lost auctions and is biased low (``source == "events"``; the
    summary says so).
    """
    touch = events[events["event_type"].isin(["impression", "click"])]
    if touch.empty and (auctions is None or auctions.empty):
        raise DataError(
            "the market model needs impressions or clicks in events; found none",
            hint="fit without 'market' (--models ...) or export ad impressions too",
        )
    if auctions is not None and len(auctions):
        source = "auctions"
        rows = classify_auctions(auctions)
        auc_seg = (
            auctions["segment"].fillna(ALL_SEGMENTS).astype(str)
            if "segment" in auctions
            else pd.Series(ALL_SEGMENTS, auctions.index)
        )
    else:
        source = "events"
        imp = touch[(touch["event_type"] == "impression")]
        cost = imp["cost"] if "cost" in imp else pd.Series(np.nan, imp.index)
        imp = imp[cost.fillna(0) > 0]
        rows = pd.DataFrame(
            {
                "channel": imp["channel"].astype(str).to_numpy(),
                "hour": _hour(imp["timestamp"]),
                "kind": "exact",
                "value": imp["cost"].to_numpy(float),
            }
        )
        auc_seg = None
    seg_col = (
        touch["segment"].fillna(ALL_SEGMENTS).astype(str)
        if "segment" in touch
        else pd.Series(ALL_SEGMENTS, touch.index)
    )
    channels = sorted(set(touch["channel"].dropna().astype(str)) | set(rows["channel"]))
    if not channels:
        raise DataError("the market model found no channel with impressions or auctions")
    segments = sorted(set(seg_col) | (set(auc_seg) if auc_seg is not None else set()))
    cidx = {c: i for i, c in enumerate(channels)}
    C, S = len(channels), len(segments)
    sidx = {s: i for i, s in enumerate(segments)}

    rc = rows["channel"].map(cidx).to_numpy()
    cell = rc * HOURS + rows["hour"].to_numpy()
    logv = np.log(rows["value"].to_numpy(float))
    center = np.array([np.median(logv[rc == i]) if (rc == i).any() else 0.0 for i in range(C)])

    ex = rows["kind"].to_numpy() == "exact"
    ncell = C * HOURS
    n = np.bincount(cell[ex], minlength=ncell)
    s1 = np.bincount(cell[ex], weights=logv[ex], minlength=ncell)
    s2 = np.bincount(cell[ex], weights=logv[ex] ** 2, minlength=ncell)
    keep = np.flatnonzero(n)

    xb = pd.DataFrame(
        {"cell": cell[ex], "key": _bin_key(logv[ex], cfg.exact_price_bin), "v": logv[ex]}
    )
    xb = xb.groupby(["cell", "key"], sort=True)["v"].agg(["mean", "size"]).reset_index()
    xb = xb.rename(columns={"mean": "v", "size": "w"})

    cen = ~ex
    sign = np.where(rows["kind"].to_numpy()[cen] == "ge", 1, -1)
    g = pd.DataFrame(
        {"cell": cell[cen], "key": _bin_key(logv[cen], cfg.price_bin), "sign": sign, "b": logv[cen]}
    )
    g = g.groupby(["cell", "key", "sign"], sort=True)["b"].agg(["mean", "var", "size"])
    g = g.reset_index().rename(columns={"mean": "b", "size": "w"})
    g["var"] = g["var"].fillna(0.0) * (g["w"] - 1) / g["w"]  # population variance

    ti = touch["event_type"].to_numpy()
    tc = touch["channel"].map(cidx)
    ok = tc.notna().to_numpy()
    ts = seg_col.map(sidx).to_numpy()
    impressions = np.zeros((S, C))
    clicks = np.zeros((S, C))
    np.add.at(
        impressions, (ts[ok & (ti == "impression")], tc[ok & (ti == "impression")].astype(int)), 1
    )
    np.add.at(clicks, (ts[ok & (ti == "click")], tc[ok & (ti == "click")].astype(int)), 1)
    clicks = np.minimum(clicks, impressions)  # clicks without a logged impression are not CTR data

    opp = np.zeros((S, C, HOURS))
    if source == "auctions":
        oc = auctions["channel"].astype(str).map(cidx).to_numpy()
        os_ = auc_seg.map(sidx).to_numpy()
        np.add.at(opp, (os_, oc, _hour(auctions["timestamp"])), 1)
        start = auctions["timestamp"].min()
    else:
        imp = touch[touch["event_type"] == "impression"]
        np.add.at(
            opp,
            (
                seg_col[imp.index].map(sidx).to_numpy(),
                imp["channel"].map(cidx).to_numpy().astype(int),
                _hour(imp["timestamp"]),
            ),
            1,
        )
        start = touch["timestamp"].min()
    days = max((pd.Timestamp(as_of) - start).total_seconds() / 86400, 1e-3)
    return MarketData(
        channels=channels,
        segments=segments,
        center=center,
        exact_cell=keep,
        exact_n=n[keep].astype(float),
        exact_s1=s1[keep],
        exact_s2=s2[keep],
        exact_logsum=float(logv[ex].sum()),
        xbin_cell=xb["cell"].to_numpy(),
        xbin_logv=xb["v"].to_numpy(float),
        xbin_weight=xb["w"].to_numpy(float),
        cens_cell=g["cell"].to_numpy(),
        cens_logb=g["b"].to_numpy(float),
        cens_sign=g["sign"].to_numpy(float),
        cens_weight=g["w"].to_numpy(float),
        cens_var=g["var"].to_numpy(float),
        impressions=impressions,
        clicks=clicks,
        opportunities=opp,
        days=days,
        source=source,
        counts={
            "rows": len(rows),
            "exact": int(ex.sum()),
            "censored": int(cen.sum()),
            "censored_bins": len(g),
        },
    )


def _model_inputs(d: MarketData) -> dict[str, Any]:
    return dict(
        center=d.center,
        exact_cell=d.exact_cell,
        exact_n=d.exact_n,
        exact_s1=d.exact_s1,
        exact_s2=d.exact_s2,
        exact_logsum=d.exact_logsum,
        cens_cell=d.cens_cell,
        cens_logb=d.cens_logb,
        cens_sign=d.cens_sign,
        cens_weight=d.cens_weight,
        cens_var=d.cens_var,
        impressions=d.impressions,
        clicks=d.clicks,
        centered=hour_centering(d),
        xbin_cell=d.xbin_cell,
        xbin_logv=d.xbin_logv,
        xbin_weight=d.xbin_weight,
    )


def hour_centering(d: MarketData, min_rows: float = 30.0) -> np.ndarray:
    """Per channel, 1.0 to sample hour effects centred, 0.0 non-centred.

    A computational choice only (the posterior is the same): centred suits a
    channel whose hours carry much data and visibly differ; non-centred suits
    one whose hour effects are small against their noise (a funnel
    otherwise). Decided from the exact prices: centred when the channel has at
    least ``min_rows`` exact prices per hour on average and the spread of its
    hourly mean log prices is more than twice their standard error.
    """
    C = len(d.channels)
    out = np.zeros(C)
    ch = d.exact_cell // HOURS
    for c in range(C):
        m = ch == c
        n = d.exact_n[m]
        if m.sum() < 2 or n.sum() / HOURS < min_rows:
            continue
        mean = d.exact_s1[m] / n
        var = np.maximum(d.exact_s2[m] / n - mean**2, 1e-12)
        se = np.sqrt(np.mean(var / n))
        out[c] = float(np.std(mean) > 2 * se)
    return out


def market_model(impressions, clicks, priors: MarketConfig = MarketConfig(), **landscape):
    """The joint NumPyro model: :func:`landscape_model` and :func:`ctr_model`.

    ``landscape`` holds :func:`landscape_model`'s arrays (``_model_inputs``
    gives all of them by name). The two parts share no parameter and their
    priors are independent, so the joint posterior is the product of the
    parts' posteriors: :func:`fit` samples them separately (the landscape's
    gradient is costly and its geometry easy; the CTR's is cheap and its
    geometry a funnel) and merges the draws. This joint form is what the
    PyMC reference is checked against.
    """
    landscape_model(**landscape, priors=priors)
    ctr_model(impressions, clicks, priors=priors)


def landscape_model(
    center,
    exact_cell,
    exact_n,
    exact_s1,
    exact_s2,
    exact_logsum,
    cens_cell,
    cens_logb,
    cens_sign,
    cens_weight,
    centered,
    xbin_cell=None,
    xbin_logv=None,
    xbin_weight=None,
    cens_var=None,
    priors: MarketConfig = MarketConfig(),
):
    """NumPyro model of the competing-bid landscape (data as aggregated arrays).

    With ``priors.components > 1`` the competing bid of a cell is a mixture
    of log-normals sharing the cell's hour-shifted location: component ``k``
    sits ``offset_k`` above the first (ordered, so labels cannot switch), with
    its own log-sd and weight per channel. Exact prices then enter binned.
    """
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist
    from jax.scipy.special import log_ndtr

    C = center.shape[0]
    with numpyro.plate("channel", C):
        mu = numpyro.sample("mu", dist.Normal(jnp.asarray(center), priors.mu_prior_sd))
        if priors.components == 1:
            sigma = numpyro.sample("sigma", dist.HalfNormal(priors.sigma_prior_scale))
        tau = numpyro.sample("hour_sd", dist.HalfNormal(priors.hour_sd_prior_scale))
        c = jnp.asarray(centered, dtype=mu.dtype)
        with numpyro.plate("hour", HOURS, dim=-2):
            # centred where the channel's hours are data-rich and differ, else
            # non-centred (the same model, two parametrisations; see hour_centering)
            raw = numpyro.sample("cell_raw", dist.Normal(c * mu, tau**c))
    cell_mu = mu + tau ** (1 - c) * (raw - c * mu)  # (24, C)
    numpyro.deterministic("hour_effect", (cell_mu - mu).T)  # (C, 24)
    m = cell_mu.T.reshape(-1)
    K = priors.components
    if K == 1:
        s = jnp.repeat(sigma, HOURS)
        me, se = m[exact_cell], s[exact_cell]
        ll_exact = (
            jnp.sum(
                -exact_n * (jnp.log(se) + 0.5 * jnp.log(2 * jnp.pi))
                - (exact_s2 - 2 * me * exact_s1 + exact_n * me**2) / (2 * se**2)
            )
            - exact_logsum
        )
        numpyro.factor("exact_prices", ll_exact)
        sc = s[cens_cell]
        u = -cens_sign * (cens_logb - m[cens_cell]) / sc
        logcdf = log_ndtr(u)
        ll = logcdf
        if cens_var is not None:
            # a bin's rows sit around its mean bound: E f(x) = f(mean) + f''(mean) var / 2
            # + O(spread^4), with f(x) = log Phi(u(x)), f'' = -lam (u + lam) / s^2 and
            # lam = phi(u) / Phi(u)
            lam = jnp.exp(-0.5 * u**2 - 0.5 * jnp.log(2 * jnp.pi) - logcdf)
            ll = ll - 0.5 * cens_var * lam * (u + lam) / sc**2
        numpyro.factor("censored_bids", jnp.sum(cens_weight * ll))
    else:
        from jax.scipy.special import logsumexp

        with numpyro.plate("channel_mix", C):
            with numpyro.plate("gap", K - 1, dim=-2):
                gap = numpyro.sample("mix_gap", dist.HalfNormal(priors.component_gap_scale))
            with numpyro.plate("component", K, dim=-2):
                ksig = numpyro.sample("mix_sigma", dist.HalfNormal(priors.sigma_prior_scale))
            weight = numpyro.sample(
                "mix_weight", dist.Dirichlet(jnp.full(K, priors.weight_concentration))
            )  # (C, K)
        offset = jnp.concatenate([jnp.zeros((1, C)), jnp.cumsum(gap, axis=0)])  # (K, C)
        logw = jnp.log(weight).T  # (K, C)

        def mix_logp(cell, y, sign):
            ch = cell // HOURS
            z = (y - (m[cell] + offset[:, ch])) / ksig[:, ch]  # (K, n)
            if sign is None:  # density of log b
                comp = -0.5 * z**2 - jnp.log(ksig[:, ch]) - 0.5 * jnp.log(2 * jnp.pi)
            else:
                comp = log_ndtr(-sign * z)
            return logsumexp(logw[:, ch] + comp, axis=0)

        numpyro.factor(
            "exact_prices",
            jnp.sum(xbin_weight * (mix_logp(xbin_cell, xbin_logv, None) - xbin_logv)),
        )
        numpyro.factor(
            "censored_bids",
            jnp.sum(cens_weight * mix_logp(cens_cell, cens_logb, cens_sign)),
        )


def ctr_model(impressions, clicks, priors: MarketConfig = MarketConfig()):
    """NumPyro model of click-through: segments partially pooled within a channel."""
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist

    S, C = impressions.shape
    with numpyro.plate("ctr_channel", C):
        a = numpyro.sample(
            "ctr_intercept", dist.Normal(priors.ctr_intercept_mean, priors.ctr_intercept_sd)
        )
        sd = numpyro.sample("ctr_segment_sd", dist.HalfNormal(priors.ctr_segment_sd_scale))
        with numpyro.plate("ctr_segment", S, dim=-2):
            zs = numpyro.sample("ctr_z", dist.Normal(0.0, 1.0))
    logit = a + sd * zs  # (S, C)
    numpyro.deterministic("ctr", 1 / (1 + jnp.exp(-logit)))
    numpyro.sample(
        "clicks", dist.Binomial(jnp.asarray(impressions), logits=logit), obs=jnp.asarray(clicks)
    )


def build_pymc_model(rows: pd.DataFrame, d: MarketData, priors: MarketConfig = MarketConfig()):
    """PyMC reference of the same model, on raw classified rows (not aggregates).

    ``rows`` is :func:`classify_auctions` output passed through
    :func:`bin_censored`, so that it sees the same censoring bounds and
    within-bin spreads as the aggregated NumPyro data and the two agree
    exactly (raw rows without ``bin_var``: the exact row-wise likelihood).
    """
    try:
        import pymc as pm
        import pytensor.tensor as pt
    except ImportError:  # pragma: no cover - depends on the extra
        raise MissingDependencyError("pymc", "pymc", "The PyMC market model") from None
    C, S = len(d.channels), len(d.segments)
    cidx = {c: i for i, c in enumerate(d.channels)}
    rc = rows["channel"].map(cidx).to_numpy()
    cell = rc * HOURS + rows["hour"].to_numpy()
    kind = rows["kind"].to_numpy()
    val = rows["value"].to_numpy(float)
    with pm.Model() as model:
        mu = pm.Normal("mu", d.center, priors.mu_prior_sd, shape=C)
        sigma = pm.HalfNormal("sigma", priors.sigma_prior_scale, shape=C)
        tau = pm.HalfNormal("hour_sd", priors.hour_sd_prior_scale, shape=C)
        cell_mu = pm.Normal("cell_mu", mu, tau, shape=(HOURS, C))
        m = cell_mu.T.reshape((-1,))
        s = pt.repeat(sigma, HOURS)
        ex = kind == "exact"
        pm.Potential(
            "exact_prices", pm.logp(pm.LogNormal.dist(m[cell[ex]], s[cell[ex]]), val[ex]).sum()
        )
        spread = rows["bin_var"].to_numpy(float) if "bin_var" in rows else np.zeros(len(rows))
        for name, sign, logc in (("le", -1.0, pm.logcdf), ("ge", 1.0, pm.logccdf)):
            r = kind == name
            mr, sr = m[cell[r]], s[cell[r]]
            lc = logc(pm.LogNormal.dist(mr, sr), val[r])  # log Phi(u)
            # the bin's second-order spread term, as in landscape_model
            u = -sign * (np.log(val[r]) - mr) / sr
            lam = pt.exp(-0.5 * u**2 - 0.5 * np.log(2 * np.pi) - lc)
            pm.Potential(name, (lc - 0.5 * spread[r] * lam * (u + lam) / sr**2).sum())
        a = pm.Normal("ctr_intercept", priors.ctr_intercept_mean, priors.ctr_intercept_sd, shape=C)
        sd = pm.HalfNormal("ctr_segment_sd", priors.ctr_segment_sd_scale, shape=C)
        zs = pm.Normal("ctr_z", 0.0, 1.0, shape=(S, C))
        pm.Binomial("clicks", n=d.impressions, logit_p=a + sd * zs, observed=d.clicks)
    return model


@dataclass
class MarketModel:
    """Fitted market model (``fit`` returns one)."""

    config: MarketConfig
    data: MarketData
    idata: Any
    name: str = "market"

    def diagnostics(self) -> Diagnostics:
        names = ["mu", "hour_sd", "cell_raw", "ctr_intercept", "ctr_segment_sd", "ctr_z"]
        if self.config.components == 1:
            names.append("sigma")
        else:
            names += ["mix_gap", "mix_sigma", "mix_weight"]
        return diagnose(self.idata, var_names=names)

    def _draws(self, var: str) -> np.ndarray:
        x = self.idata.posterior[var].values
        return x.reshape((-1, *x.shape[2:]))

    def landscape(self, hour: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Draws of the competing-bid mixture per channel: locations, log-sds, weights.

        Each is ``(draws, channels, components)`` on the log scale, at ``hour``
        or, with ``hour=None``, at a typical hour (the mean of the hour effects).
        """
        eta = self._draws("hour_effect")  # (N, C, 24)
        base = self._draws("mu") + (eta.mean(axis=2) if hour is None else eta[:, :, hour])
        if self.config.components == 1:
            sig = self._draws("sigma")[:, :, None]
            return base[:, :, None], sig, np.ones_like(sig)
        gap = self._draws("mix_gap")  # (N, K-1, C)
        offset = np.concatenate([np.zeros_like(gap[:, :1]), np.cumsum(gap, axis=1)], axis=1)
        loc = base[:, :, None] + offset.transpose(0, 2, 1)
        sig = self._draws("mix_sigma").transpose(0, 2, 1)
        return loc, sig, self._draws("mix_weight")

    def win_probability(self, channel: str, bid: np.ndarray, hour: int | None = None) -> np.ndarray:
        """Posterior draws x bids of P(competing bid < bid) (floor not included)."""
        from scipy.stats import norm

        c = self.data.channels.index(channel)
        loc, sig, w = (x[:, c, :] for x in self.landscape(hour))
        z = (np.log(np.asarray(bid, float))[None, :, None] - loc[:, None, :]) / sig[:, None, :]
        return (w[:, None, :] * norm.cdf(z)).sum(axis=2)

    def competing_bid_median(self, hour: int | None = None) -> np.ndarray:
        """Draws x channels of the competing bid's median (bisection on the mixture CDF)."""
        from scipy.stats import norm

        loc, sig, w = self.landscape(hour)
        lo = (loc - 8 * sig).min(axis=2)
        hi = (loc + 8 * sig).max(axis=2)
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            cdf = (w * norm.cdf((mid[:, :, None] - loc) / sig)).sum(axis=2)
            lo, hi = np.where(cdf < 0.5, mid, lo), np.where(cdf < 0.5, hi, mid)
        return np.exp(0.5 * (lo + hi))

    def summary(self) -> dict[str, Any]:
        med = self.competing_bid_median()
        ctr = self._draws("ctr")  # (N, S, C)
        w = self.data.impressions / np.maximum(self.data.impressions.sum(axis=0), 1)
        rate = self._draws("opportunity_rate")  # (N, S, C, 24)
        channels = {}
        for c, name in enumerate(self.data.channels):
            wc = w[:, c] if self.data.impressions[:, c].sum() else np.full(len(w), 1 / len(w))
            channels[name] = {
                "competing_bid_median": interval(med[:, c]),
                "ctr": interval((ctr[:, :, c] * wc).sum(axis=1)),
                "opportunities_per_day": interval(rate[:, :, c, :].sum(axis=(1, 2))),
            }
        out = {
            "channels": channels,
            "landscape_source": self.data.source,
            "competing_bid_median_definition": "median competing bid at a typical hour "
            "(locations shifted by the mean of the hour effects)",
            "components": self.config.components,
        }
        if self.data.source == "events":
            out["warning"] = (
                "no auction log: the bid landscape was fitted on won impressions' "
                "costs only and is biased low (lost auctions are missing)"
            )
        return out


def fit(
    events: pd.DataFrame,
    as_of: pd.Timestamp,
    config: Config,
    person_map: pd.DataFrame | None = None,
    auctions: pd.DataFrame | None = None,
) -> MarketModel:
    """Fit the market model (NumPyro NUTS; ``backend = "pymc"`` samples the PyMC reference)."""
    from gaelp_bayes.inference import merge_independent, run_nuts

    cfg = config.model("market", MarketConfig)
    d = market_data(events, auctions, as_of, cfg)
    K = cfg.components
    coords = {
        "channel": d.channels,
        "hour": list(range(HOURS)),
        "segment": d.segments,
        "component": list(range(K)),
        "gap": list(range(1, K)),
    }
    dims = {
        "mu": ["channel"],
        "sigma": ["channel"],
        "hour_sd": ["channel"],
        "cell_raw": ["hour", "channel"],
        "hour_effect": ["channel", "hour"],
        "ctr_intercept": ["channel"],
        "ctr_segment_sd": ["channel"],
        "ctr_z": ["segment", "channel"],
        "ctr": ["segment", "channel"],
        "mix_gap": ["gap", "channel"],
        "mix_sigma": ["component", "channel"],
        "mix_weight": ["channel", "component"],
    }
    if config.sampler.backend == "pymc":
        if K > 1:
            raise ConfigError(
                [
                    f"market.components = {K}: the PyMC reference covers the single log-normal; "
                    "use --backend numpyro or components = 1"
                ],
                config.source,
            )
        idata = _sample_pymc(d, auctions, cfg, config, coords)
    else:
        from functools import partial

        inputs = _model_inputs(d)
        ctr_inputs = {k: inputs.pop(k) for k in ("impressions", "clicks")}
        model = partial(landscape_model, priors=cfg)
        init = map_init(model, inputs, config.sampler.seed) if K > 1 else None
        landscape = run_nuts(
            model,
            config.sampler,
            model_kwargs=inputs,
            coords=coords,
            dims=dims,
            init_values=init,
        )
        ctr = run_nuts(
            partial(ctr_model, priors=cfg),
            config.sampler,
            model_kwargs=ctr_inputs,
            coords=coords,
            dims=dims,
        )
        idata = merge_independent(landscape, ctr, prefix="ctr_")
    _add_opportunity_rates(idata, d, cfg, config.sampler.seed)
    return MarketModel(config=cfg, data=d, idata=idata)


def map_init(
    model, inputs: dict[str, Any], seed: int, starts: int = 6, steps: int = 1500
) -> dict[str, Any]:
    """The best of several MAP searches, as NUTS's starting point (mixture landscapes).

    A mixture of log-normals has local optima (a component parked on a minor
    bump of the price distribution); chains started at random points settle
    in different ones and never meet (R-hat far above 1). Each start is an
    Adam search of the log joint (an ``AutoDelta`` guide) from a different
    random point drawn from the prior's neighbourhood; the start with the
    highest log joint wins and every chain begins there, so the chains
    explore the dominant mode. Whether they agree is still checked by the
    diagnostics policy.
    """
    import jax
    import numpyro
    from numpyro.infer import SVI, Trace_ELBO, init_to_sample
    from numpyro.infer.autoguide import AutoDelta

    best, best_loss = None, np.inf
    for k in range(starts):
        guide = AutoDelta(model, init_loc_fn=init_to_sample if k else numpyro.infer.init_to_median)
        svi = SVI(model, guide, numpyro.optim.Adam(0.02), Trace_ELBO())
        res = svi.run(jax.random.PRNGKey(seed + 101 * k), steps, progress_bar=False, **inputs)
        loss = float(np.mean(np.asarray(res.losses[-50:])))
        if np.isfinite(loss) and loss < best_loss:
            best_loss = loss
            best = {k_.removesuffix("_auto_loc"): v for k_, v in res.params.items()}
    return best or {}


def _sample_pymc(d, auctions, cfg, config, coords):  # pragma: no cover - slow path
    import pymc as pm

    rows = classify_auctions(auctions) if auctions is not None else None
    if rows is None:
        raise DataError("--backend pymc for the market model needs an auction log (--auctions)")
    model = build_pymc_model(bin_censored(rows, cfg), d, cfg)
    with model:
        idata = pm.sample(
            draws=config.sampler.draws,
            tune=config.sampler.tune,
            chains=config.sampler.chains,
            target_accept=config.sampler.target_accept,
            random_seed=config.sampler.seed,
            progressbar=config.sampler.progress,
        )
    post = idata.posterior
    post["hour_effect"] = (post["cell_mu"] - post["mu"]).transpose("chain", "draw", "channel", ...)
    logit = post["ctr_intercept"] + post["ctr_segment_sd"] * post["ctr_z"]
    post["ctr"] = 1 / (1 + np.exp(-logit))
    return idata


def _add_opportunity_rates(idata, d: MarketData, cfg: MarketConfig, seed: int) -> None:
    """Exact conjugate Gamma posterior draws of opportunities per day, per cell."""
    import xarray as xr

    post = idata.posterior
    nc, nd = post.sizes["chain"], post.sizes["draw"]
    rng = np.random.default_rng(seed + 7)
    shape = cfg.rate_prior_shape + d.opportunities
    rate = cfg.rate_prior_rate + d.days
    draws = rng.gamma(shape, 1.0 / rate, size=(nc, nd, *d.opportunities.shape))
    post["opportunity_rate"] = xr.DataArray(
        draws,
        dims=("chain", "draw", "segment", "channel", "hour"),
        coords={
            "chain": post["chain"],
            "draw": post["draw"],
            "segment": d.segments,
            "channel": d.channels,
            "hour": list(range(HOURS)),
        },
    )
