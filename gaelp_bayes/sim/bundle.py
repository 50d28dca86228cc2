"""Simulator parameters from a fitted bundle, and plan summaries with intervals.

:func:`from_bundle` turns ``K`` posterior draws of the bundle's market and
attribution models into a stacked :class:`~gaelp_bayes.sim.params.SimParams`.
What each field is made of (docs/simulator.md repeats this):

* channels: the market model's channels (those we can bid on);
  segments: the attribution model's segments;
* ``arrival_rate[s] = persons[s] / window_days`` (persons with a touch in the
  fitted data, per day of the data window);
* active window: gamma, shape 2, with the mean whose length truncated by the
  data window equals the fitted persons' mean active days: ``touch_span_days[s]
  / persons[s]`` (first to last touch) when the attribution model records it,
  else the mean exposure ``exposure_days[s] / persons[s]`` (first touch to
  conversion or ``as_of``: too long, see docs/simulator.md; see
  :func:`untruncated_window`);
  ``in_market = 1`` (the attribution model has no cure fraction: ``alpha``
  is an average over everyone);
* ``alpha[s]``: the attribution posterior, plus the conversions it credits
  to touches of channels we do not bid on (e.g. ``direct`` visits) per
  exposure day, so that organic journeys keep their effect;
* ``beta[s, c, 0]`` = impression effect, ``beta[s, c, 1]`` = click effect +
  visit effect (a click brings a visit of the same channel); kernel shape and
  scale per channel;
* ``opp_rate[s, c, h] = opportunity_rate[s, c, h] x window_days /
  active_days[s]`` (market opportunities per day in hour ``h``, spread over
  the segment's active days, as above; a market fitted without segments (``*``) shares
  one rate per person-hour across segments), times
  :func:`conversion_exposure_scale` when the attribution model records
  ``conversions`` (the active days end at conversion, and so does bidding);
* CTR from the market posterior; competing bid ``mu[c] + hour_effect[c, h]``,
  ``sigma[c]`` (or the mixture components); ``floor = 0`` and second price
  (the bundle does not record floors or auction types);
* one device profile (the market's rates already include every device);
* ``untouched_rate[s]``: converters without any touch before converting, per
  day of the data window, split across segments by persons.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gaelp_bayes.errors import DataError, InputNotFoundError
from gaelp_bayes.sim.params import HOURS, SimParams, _kernel_arrays, kernel_stages

#: Optional attribution ``constant_data`` (segment): the fitted persons' total active
#: days, estimated from their touches: sum over persons with n >= 2 touches of
#: (last - first touch) x (n + 1) / (n - 1) (unbiased for the length of the period
#: holding n uniform touch times; one-touch persons add 0). When present it sets the
#: active window and spreads the market's opportunities over it (the exposure runs
#: on after activity ends). Measured on a 3,000-person world: windows 3-32 days vs
#: the truth's 4-36, daily-spend PPC coverage 73% (50% from the exposure).
SPAN_VAR = "touch_span_days"
ATTRIBUTION_VARS = ("alpha", "beta", "kernel_scale_days")
MARKET_VARS = ("mu", "hour_effect", "ctr", "opportunity_rate")


def _flat(da) -> np.ndarray:
    """Posterior variable with (chain, draw) flattened into one leading axis."""
    x = np.asarray(da.values)
    return x.reshape((-1, *x.shape[2:]))


def _check_vars(idata, names: Sequence[str], model: str, where: str) -> None:
    post = getattr(idata, "posterior", None)
    missing = [v for v in names if post is None or v not in post]
    if missing:
        raise DataError(
            f"{where}: the {model} posterior lacks {', '.join(missing)}; "
            "it was written by an older or different model",
            hint="refit the bundle with this version: gaelp-bayes fit ...",
        )


def _mean_truncated_exposure(mean: float, span: float, shape: float = 2.0) -> float:
    """E[min(W, span - A)] for W ~ Gamma(shape, mean/shape), A ~ Uniform(0, span)."""
    from scipy import special

    s = np.linspace(0.0, span, 401)
    scale = mean / shape
    # E[min(W, s)] = s P(W > s) + E[W; W <= s]
    e_min = s * special.gammaincc(shape, s / scale) + mean * special.gammainc(shape + 1, s / scale)
    return float(np.trapezoid(e_min, s) / span)


def _mean_converted_share(mean: float, span: float, rate: float, shape: float = 2.0) -> float:
    """E[1 - exp(-rate min(W, span - A))], W ~ Gamma(shape, mean/shape), A ~ Uniform(0, span).

    The share of persons who convert while active and inside the data window
    when conversion comes at a constant ``rate`` per active day.
    """
    from scipy import special

    s = np.linspace(0.0, span, 401)
    scale = mean / shape
    # E[exp(-r min(W, s))] = (1 + r scale)^-k P(Gamma(k, scale / (1 + r scale)) <= s)
    #                        + exp(-r s) P(W > s)
    stay = (1.0 + rate * scale) ** -shape * special.gammainc(
        shape, s * (1.0 / scale + rate)
    ) + np.exp(-rate * s) * special.gammaincc(shape, s / scale)
    return float(np.trapezoid(1.0 - stay, s) / span)


def _bisect_mean(f, target: float, span: float) -> float:
    """The window mean at which the increasing ``f(mean)`` reaches ``target`` (100 T at most)."""
    lo, hi = 1.0 / HOURS, 100.0 * span
    if target >= f(hi):
        return hi
    for _ in range(50):
        mid = np.sqrt(lo * hi)
        if f(mid) < target:
            lo = mid
        else:
            hi = mid
    return float(np.sqrt(lo * hi))


def untruncated_window(observed_mean: np.ndarray, span: float) -> np.ndarray:
    """Mean active window whose exposure, truncated by the data window, has this mean.

    In the fit, a person is followed from first touch to conversion or
    ``as_of``: the mean exposure ``e`` is ``E[min(W, T - A)]`` for arrivals
    ``A`` uniform over the data window ``T``. Solves for the mean of ``W``
    (gamma, shape 2) by bisection; ``e`` at or above the limit ``T / 2``
    gives ``100 T``. (The exposure also ends at conversions, which the
    simulator applies again: :func:`conversion_exposure_scale` makes up for
    that on the opportunity rate.)
    """
    return np.asarray(
        [
            _bisect_mean(lambda m: _mean_truncated_exposure(m, span), e, span)
            for e in np.atleast_1d(np.asarray(observed_mean, float))
        ]
    )


def conversion_exposure_scale(
    window_mean: np.ndarray, exposure: np.ndarray, converted: np.ndarray, span: float
) -> np.ndarray:
    """Factor on the opportunity rate that makes up for the active days conversions end.

    The fitted persons' mean active days ``exposure`` (touch spans) end at a
    conversion, and so does bidding in the simulator, whose windows
    (:func:`untruncated_window`, solved without conversions) then give fewer
    active days before conversion than the data had. With conversion at a
    constant rate ``r`` per active day, ``E[min(W, C, T - A)] = P(convert) /
    r``: the data's ``converted / r = exposure`` gives ``r``, the simulator's
    windows give ``P(convert) = E[1 - exp(-r min(W, T - A))]``, and the
    factor is ``converted / P(convert)`` (at least 1). On a 3,000-person
    example world 4% of the simulated active days were lost to conversions
    and daily spend came out 2-3% low without it.
    """
    out = np.ones(len(np.atleast_1d(window_mean)))
    for i, (m, e, q) in enumerate(
        zip(
            np.atleast_1d(window_mean),
            np.atleast_1d(exposure),
            np.atleast_1d(converted),
            strict=True,
        )
    ):
        if q > 0 and e > 0:
            out[i] = max(1.0, q / max(_mean_converted_share(m, span, q / e), 1e-12))
    return out


def params_from_idata(
    market,
    attribution,
    draws: int = 100,
    seed: int = 0,
    where: str = "bundle",
) -> SimParams:
    """Stacked :class:`SimParams` from market and attribution ``InferenceData``."""
    _check_vars(market, MARKET_VARS, "market", where)
    _check_vars(attribution, ATTRIBUTION_VARS, "attribution", where)
    mp, ap = market.posterior, attribution.posterior
    const = getattr(attribution, "constant_data", None)
    if const is None or "persons" not in const:
        raise DataError(
            f"{where}: the attribution model has no constant_data 'persons'",
            hint="refit the bundle with this version: gaelp-bayes fit ...",
        )
    channels = [str(c) for c in mp["mu"].coords["channel"].values]
    segments = [str(s) for s in ap["alpha"].coords["segment"].values]
    a_channels = [str(c) for c in ap["beta"].coords["channel"].values]
    touch_types = [str(t) for t in ap["beta"].coords["touch_type"].values]
    m_segments = [str(s) for s in mp["ctr"].coords["segment"].values]
    S, C = len(segments), len(channels)

    n_m = mp.sizes["chain"] * mp.sizes["draw"]
    n_a = ap.sizes["chain"] * ap.sizes["draw"]
    rng = np.random.default_rng(seed)
    k = int(draws)
    im = np.linspace(0, n_m - 1, k).round().astype(int)
    ia = rng.permutation(np.linspace(0, n_a - 1, k).round().astype(int))

    # ---- population
    persons = np.asarray(const["persons"].values, float)
    window_days = float(const.attrs.get("window_days", 0.0) or 0.0)
    if not window_days > 0 or not (persons > 0).any():
        raise DataError(
            f"{where}: the attribution model saw no persons or no data window",
            hint="fit on data with touches over at least a day",
        )
    persons = np.maximum(persons, 0.0)
    if "exposure_days" in const:
        exposure = np.asarray(const["exposure_days"].values, float)
    else:  # persons followed, on average, half the data window
        exposure = persons * window_days / 2
    exposure = np.maximum(exposure, 1e-6)
    arrival = persons / window_days
    # days persons were reachable by ads in the data: the span of their touches
    # when the bundle records it (optional ``touch_span_days``), else the exposure
    if SPAN_VAR in const:
        active = np.maximum(np.asarray(const[SPAN_VAR].values, float), 1e-6)
    else:
        active = exposure
    mean_active = active / np.maximum(persons, 1.0)
    window_mean = untruncated_window(mean_active, window_days)
    # the active days above end at conversion; the simulator stops bidding at a
    # conversion too, so spread over them the opportunities would come out short
    opp_scale = np.ones(S)
    if "conversions" in const:
        converted = np.asarray(const["conversions"].values, float) / np.maximum(persons, 1.0)
        opp_scale = conversion_exposure_scale(window_mean, mean_active, converted, window_days)

    # ---- attribution draws
    alpha = _flat(ap["alpha"])[ia]  # (K, S)
    beta_all = _flat(ap["beta"])[ia]  # (K, S, Ca, T)
    kscale_a = _flat(ap["kernel_scale_days"])[ia]  # (K, Ca)
    kshape_a = _flat(ap["kernel_shape"])[ia] if "kernel_shape" in ap else np.ones_like(kscale_a)
    ti = {t: i for i, t in enumerate(touch_types)}

    def tt(name: str) -> np.ndarray:
        return beta_all[..., ti[name]] if name in ti else np.zeros(beta_all.shape[:-1])

    beta_imp_a = tt("impression")
    beta_clk_a = tt("click") + tt("visit")
    beta = np.zeros((k, S, C, 2))
    kshape = np.ones((k, C))
    kscale = np.ones((k, C))
    for c, name in enumerate(channels):
        if name in a_channels:
            j = a_channels.index(name)
            beta[:, :, c, 0] = beta_imp_a[:, :, j]
            beta[:, :, c, 1] = beta_clk_a[:, :, j]
            kshape[:, c] = kshape_a[:, j]
            kscale[:, c] = kscale_a[:, j]
    # touches of channels we cannot bid on (direct visits...) join the baseline
    others = [j for j, name in enumerate(a_channels) if name not in channels]
    if others and "attributed_segment" in ap:
        credited = _flat(ap["attributed_segment"])[ia][:, :, others].sum(axis=-1)  # (K, S)
        alpha = alpha + credited / exposure[None, :]
    stages = kernel_stages(kshape)
    kw, kr = _kernel_arrays(kshape, kscale, stages)

    # ---- market draws
    mu = _flat(mp["mu"])[im]  # (K, C)
    eta = _flat(mp["hour_effect"])[im]  # (K, C, 24)
    if "sigma" in mp:
        bid_loc = (mu[:, :, None] + eta)[..., None]
        bid_sigma = _flat(mp["sigma"])[im][..., None]
        bid_weight = np.ones_like(bid_sigma)
    else:
        gap = _flat(mp["mix_gap"])[im]  # (K, J-1, C)
        offset = np.concatenate([np.zeros_like(gap[:, :1]), np.cumsum(gap, axis=1)], axis=1)
        bid_loc = (mu[:, :, None] + eta)[..., None] + offset.transpose(0, 2, 1)[:, :, None, :]
        bid_sigma = _flat(mp["mix_sigma"])[im].transpose(0, 2, 1)
        bid_weight = _flat(mp["mix_weight"])[im]
    ctr_m = _flat(mp["ctr"])[im]  # (K, Sm, C)
    opp_m = _flat(mp["opportunity_rate"])[im]  # (K, Sm, C, 24)
    ctr = np.zeros((k, S, C))
    opp = np.zeros((k, S, C, HOURS))
    pooled = not any(s in m_segments for s in segments)
    for s, name in enumerate(segments):
        if name in m_segments:
            j = m_segments.index(name)
            ctr[:, s] = ctr_m[:, j]
            opp[:, s] = opp_m[:, j] * window_days / active[s] * opp_scale[s]
        else:
            ctr[:, s] = ctr_m.mean(axis=1)
            if pooled:
                opp[:, s] = opp_m.sum(axis=1) * window_days / active.sum() * opp_scale[s]
    # ---- conversions with no touch before them
    untouched_total = float(const.attrs.get("converters_without_touches", 0) or 0)
    untouched = untouched_total * persons / persons.sum() / window_days

    def rep(x: np.ndarray) -> np.ndarray:
        return np.broadcast_to(x, (k, *np.shape(x))).astype(np.float32)

    return SimParams(
        arrival_rate=rep(arrival),
        in_market=rep(np.ones(S)),
        window_mean=rep(window_mean),
        window_shape=rep(np.full(S, 2.0)),
        alpha=alpha.astype(np.float32),
        beta=beta.astype(np.float32),
        kernel_weight=kw.astype(np.float32),
        kernel_rate=kr.astype(np.float32),
        kernel_shape=kshape.astype(np.float32),
        kernel_scale=kscale.astype(np.float32),
        opp_rate=opp.astype(np.float32),
        profile_prob=rep(np.ones((S, 1))),
        profile_opp=rep(np.ones((1, C))),
        profile_ctr=rep(np.ones((1, C))),
        ctr=ctr.astype(np.float32),
        bid_loc=bid_loc.astype(np.float32),
        bid_sigma=bid_sigma.astype(np.float32),
        bid_weight=bid_weight.astype(np.float32),
        floor=rep(np.zeros(C)),
        first_price=rep(np.zeros(C)),
        untouched_rate=rep(untouched),
        channels=tuple(channels),
        segments=tuple(segments),
        source="bundle",
    )


def from_bundle(bundle: Any, draws: int = 100, seed: int = 0) -> SimParams:
    """``draws`` posterior draws of a bundle's market and attribution models.

    ``bundle`` is a bundle folder or a loaded :class:`gaelp_bayes.bundle.Bundle`.
    Draws are evenly spaced over each posterior; market and attribution
    draws are paired at random (``seed``; the two models are fitted
    independently). Raises a :class:`~gaelp_bayes.errors.GaelpError` naming
    what to do when the bundle lacks either model.
    """
    from gaelp_bayes.bundle import Bundle, load_bundle

    b = bundle if isinstance(bundle, Bundle) else load_bundle(Path(bundle))
    missing = [m for m in ("market", "attribution") if m not in b.models]
    if missing:
        raise InputNotFoundError(
            f"bundle {b.path} has no {' and no '.join(missing)} model "
            f"(it has: {', '.join(b.models) or 'none'}); the simulator needs both. "
            "Refit with them: gaelp-bayes fit EVENTS --auctions AUCTIONS "
            "--models market,attribution --out ..."
        )
    if draws < 1:
        raise DataError(f"draws must be >= 1, got {draws}")
    return params_from_idata(
        b.idata("market"), b.idata("attribution"), draws=draws, seed=seed, where=str(b.path)
    )


def summarize(totals: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Section-6 intervals (mean, q05, q95) over draws of :func:`gaelp_bayes.sim.core.totals`.

    A ratio (``cac``, ``incremental_cac``) is summarised over the draws where
    its denominator is positive; with none it is ``null`` (JSON) / ``nan``.
    """
    from gaelp_bayes.diagnostics import interval

    out = {}
    for key in ("spend", "conversions", "incremental_conversions", "cac", "incremental_cac"):
        x = np.asarray(totals[key], float).ravel()
        x = x[np.isfinite(x)]
        if x.size == 0:
            out[key] = {"mean": float("nan"), "q05": float("nan"), "q95": float("nan")}
        else:
            out[key] = {k: float(v) for k, v in interval(x).items()}
    return out
