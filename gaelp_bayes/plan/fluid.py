"""The planner's fast expected-value ("fluid") model of the journey simulator.

The simulator (:mod:`gaelp_bayes.sim.core`) steps every person hour by hour;
one rollout of a 14-day plan over ~5,000 persons costs about a second, far too
much to evaluate hundreds of candidate schedules under dozens of posterior
draws. The planner therefore optimises against this deterministic
approximation of the simulator's *expected* outcome, and every number it
reports comes from the simulator itself (:mod:`gaelp_bayes.plan.evaluate`).

Approximations (measured against the simulator in tests/test_plan.py):

* the population of each segment is a small stratified grid of
  representative persons: ``arrivals_per_day`` arrival times per day,
  ``windows`` equal-probability quantiles of the active-window gamma, and up
  to ``groups`` groups of device profiles (by opportunity multiplier);
* time runs in days: a person's exposure on a day is the part of the day
  inside their active window, spread over the hours like the opportunities;
  P(not converted yet) that scales spend is taken at mid-day;
* touches are Poisson given the rates (so the effect of ``n`` expected wins
  on P(no conversion) is ``exp(-n (1 - exp(-beta)))``, exact for Poisson
  touches) and a touch's effect is delivered by the channel's kernel CDF.

Everything is a pure JAX function of the bids, vectorised over draws.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from gaelp_bayes.inference import setup_jax

setup_jax()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from jax.scipy.special import ndtr  # noqa: E402

from gaelp_bayes.sim.params import SimParams  # noqa: E402

FOLLOW_DAYS = 30
_TINY = 1e-30


class FluidData(NamedTuple):
    """Arrays of the fluid model (leading axis ``K`` = draws). A JAX pytree."""

    opp: Any  # (K, S, C, 24) opportunities per active person-hour
    bid_loc: Any  # (K, C, 24, J)
    bid_sigma: Any  # (K, C, J)
    bid_weight: Any  # (K, C, J)
    floor: Any  # (K, C)
    first_price: Any  # (K, C)
    expo: Any  # (K, S, P, D) exposure days of representative person p on ad day d
    org_mid: Any  # (K, S, P, D) organic intensity by mid-day d
    org_end: Any  # (K, S, P) organic intensity by the end of the follow-up
    weight: Any  # (K, S, P, G) persons represented (incl. profile-group probability)
    in_market: Any  # (K, S)
    mult: Any  # (K, S, G, C) opportunity multiplier of profile group g
    phi_end: Any  # (K, S, G, C, D) P(conv) loss factor of one win on day d, by the end
    phi_lag: Any  # (K, S, G, C, D) same, ``lag`` days later (lag 0: half a day's touches)
    untouched: Any  # (K,) conversions outside the simulated journeys over the horizon


class FluidTotals(NamedTuple):
    spend: Any  # (K,)
    conversions: Any  # (K,)
    conversions_noads: Any  # (K,)


def _stacked(params: SimParams) -> SimParams:
    if params.n_draws is None:
        return params.replace(**{k: np.asarray(v)[None] for k, v in params.arrays().items()})
    return params.replace(**{k: np.asarray(v) for k, v in params.arrays().items()})


def _profile_groups(p: SimParams, groups: int):
    """Collapse device profiles into ``groups`` groups of equal probability per segment.

    Returns group probabilities (K, S, G), opportunity multipliers (K, S, G, C)
    and effective CTR multipliers (K, S, G, C) (opportunity-weighted).
    """
    prob = np.asarray(p.profile_prob, float)  # (K, S, M)
    popp = np.asarray(p.profile_opp, float)  # (K, M, C)
    pctr = np.asarray(p.profile_ctr, float)  # (K, M, C)
    K, S, M = prob.shape
    C = popp.shape[-1]
    G = max(1, min(groups, M))
    gp = np.zeros((K, S, G))
    gm = np.zeros((K, S, G, C))
    gc = np.zeros((K, S, G, C))
    for k in range(K):
        order = np.argsort(popp[k].sum(axis=1), kind="stable")
        for s in range(S):
            pr = prob[k, s, order]
            mid = np.cumsum(pr) - 0.5 * pr
            g_of = np.minimum((mid * G).astype(int), G - 1)
            for g in range(G):
                sel = order[g_of == g]
                w = prob[k, s, sel]
                tot = w.sum()
                gp[k, s, g] = tot
                if tot <= 0:
                    gm[k, s, g] = popp[k].mean(axis=0)
                    gc[k, s, g] = 1.0
                    continue
                opp = (w[:, None] * popp[k, sel]).sum(axis=0)
                gm[k, s, g] = opp / tot
                gc[k, s, g] = (w[:, None] * popp[k, sel] * pctr[k, sel]).sum(axis=0) / np.maximum(
                    opp, _TINY
                )
    gp = gp / np.maximum(gp.sum(axis=-1, keepdims=True), _TINY)
    return gp, gm, gc


def _kernel_cdf(weight: np.ndarray, rate: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Kernel CDF at ``t`` days: ``weight (K, C, St)``, ``rate (K, C)``, ``t (T,)`` -> (K, C, T)."""
    from scipy.special import gammainc as sp_gammainc

    st = np.arange(1, weight.shape[-1] + 1)
    x = rate[:, :, None, None] * np.maximum(t, 0.0)[None, None, :, None]  # (K, C, T, 1)
    cdf = sp_gammainc(st[None, None, None, :], x)  # (K, C, T, St)
    return np.einsum("kcs,kcts->kct", weight, cdf)


def prepare(
    params: SimParams,
    days: int,
    *,
    follow_days: int = FOLLOW_DAYS,
    arrivals_per_day: int = 2,
    windows: int = 6,
    groups: int = 3,
) -> FluidData:
    """Precompute the fluid model's arrays for ``params`` (one set or stacked draws)."""
    from scipy.special import gammaincinv

    p = _stacked(params)
    K, S = np.shape(p.arrival_rate)
    D = int(days)
    T = float(D + follow_days)
    # representative persons: arrival x window quantile
    arr = (np.arange(D * arrivals_per_day) + 0.5) / arrivals_per_day  # (I,)
    q = (np.arange(windows) + 0.5) / windows
    shape = np.asarray(p.window_shape, float)  # (K, S)
    wq = gammaincinv(shape[..., None], q[None, None, :]) / shape[..., None]
    win = np.asarray(p.window_mean, float)[..., None] * wq  # (K, S, J)
    a = np.broadcast_to(arr[None, None, :, None], (K, S, arr.size, windows))
    e = a + win[:, :, None, :]  # end of window
    a = a.reshape(K, S, -1)
    e = e.reshape(K, S, -1)  # (K, S, P)
    d = np.arange(D, dtype=float)
    expo = np.clip(np.minimum(d + 1, e[..., None]) - np.maximum(d, a[..., None]), 0.0, 1.0)
    alpha = np.asarray(p.alpha, float)[:, :, None]
    mid = d + 0.5
    org_mid = alpha[..., None] * np.clip(np.minimum(mid, e[..., None]) - a[..., None], 0.0, None)
    org_end = alpha * np.clip(np.minimum(T, e) - a, 0.0, None)
    gp, gm, gc = _profile_groups(p, groups)
    n_rep = arr.size * windows
    weight = (np.asarray(p.arrival_rate, float) * D / n_rep)[:, :, None, None] * gp[:, :, None, :]
    weight = np.broadcast_to(weight, (K, S, n_rep, gp.shape[-1]))
    # loss factors of one win: Poisson touches, clicks thinned by the CTR
    ctr = np.minimum(np.asarray(p.ctr, float)[:, :, None, :] * gc, 1.0)  # (K, S, G, C)
    beta = np.asarray(p.beta, float)  # (K, S, C, 2)
    b_imp = beta[:, :, None, :, 0, None]  # (K, S, 1, C, 1)
    b_clk = beta[:, :, None, :, 1, None]
    kw = np.asarray(p.kernel_weight, float)
    kr = np.asarray(p.kernel_rate, float)
    g_end = _kernel_cdf(kw, kr, T - mid)[:, None, None]  # (K, 1, 1, C, D)
    lags = np.concatenate([[0.25], np.arange(1, D, dtype=float)])
    g_lag = _kernel_cdf(kw, kr, lags)[:, None, None]

    def phi(g):
        c = ctr[..., None]
        return (1 - c) * -np.expm1(-b_imp * g) + c * -np.expm1(-(b_imp + b_clk) * g)

    phi_lag = phi(g_lag)
    phi_lag[..., 0] *= 0.5  # only the first half of a day's touches count by its midpoint
    untouched = np.asarray(p.untouched_rate, float).sum(axis=-1) * D
    f32 = np.float32
    return FluidData(
        opp=jnp.asarray(p.opp_rate, f32),
        bid_loc=jnp.asarray(p.bid_loc, f32),
        bid_sigma=jnp.asarray(p.bid_sigma, f32),
        bid_weight=jnp.asarray(p.bid_weight, f32),
        floor=jnp.asarray(p.floor, f32),
        first_price=jnp.asarray(p.first_price, f32),
        expo=jnp.asarray(expo, f32),
        org_mid=jnp.asarray(org_mid, f32),
        org_end=jnp.asarray(org_end, f32),
        weight=jnp.asarray(weight, f32),
        in_market=jnp.asarray(p.in_market, f32),
        mult=jnp.asarray(gm, f32),
        phi_end=jnp.asarray(phi(g_end), f32),
        phi_lag=jnp.asarray(phi_lag, f32),
        untouched=jnp.asarray(untouched, f32),
    )


# ---------------------------------------------------------------------------
# auctions


def auction_rates(fd: FluidData, log_bids):
    """P(win) and expected payment per opportunity, for bids on a per-(c, h) basis.

    ``log_bids`` has shape ``(..., C, 24)`` broadcastable against the draws:
    returns arrays ``(K, ..., C, 24)``. ``-inf`` (or anything at or below the
    floor) means no bid.
    """
    lb = jnp.asarray(log_bids)
    extra = lb.ndim - 2
    ex = (slice(None),) + (None,) * extra

    loc = fd.bid_loc[ex]  # (K, 1.., C, 24, J)
    sig = fd.bid_sigma[ex][..., None, :]  # (K, 1.., C, 1, J)
    w = fd.bid_weight[ex][..., None, :]
    floor = fd.floor[ex][..., None]  # (K, 1.., C, 1)
    first = fd.first_price[ex][..., None]
    lbx = lb[None, ..., None]
    cdf_b = ndtr((lbx - loc) / sig)
    b = jnp.exp(lb)[None]
    ok = (b > floor) & jnp.isfinite(lb)[None]
    pwin = jnp.where(ok, jnp.sum(w * cdf_b, axis=-1), 0.0)
    logf = jnp.log(jnp.maximum(floor, _TINY))[..., None]
    has_floor = (floor > 0)[..., None]
    cdf_f = jnp.where(has_floor, ndtr((logf - loc) / sig), 0.0)
    m1 = jnp.exp(loc + 0.5 * sig**2)
    upper = ndtr((lbx - loc - sig**2) / sig)
    lower = jnp.where(has_floor, ndtr((logf - loc - sig**2) / sig), 0.0)
    second = jnp.sum(w * (floor[..., None] * cdf_f + m1 * jnp.maximum(upper - lower, 0.0)), -1)
    pay = jnp.where(ok, jnp.where(first > 0, b * pwin, second), 0.0)
    return pwin, pay


def cell_rates(fd: FluidData, bids):
    """Wins ``A`` and spend ``P`` per active person-day, ``(K, D, C, S)``, of ``bids[d, h, c, s]``."""
    b = jnp.asarray(bids, jnp.float32)
    lb = jnp.where(b > 0, jnp.log(jnp.maximum(b, _TINY)), -jnp.inf)
    lb = jnp.transpose(lb, (0, 3, 2, 1))  # (D, S, C, 24)
    pwin, pay = auction_rates(fd, lb)  # (K, D, S, C, 24)
    opp = fd.opp[:, None]  # (K, 1, S, C, 24)
    A = jnp.sum(opp * pwin, axis=-1).transpose(0, 1, 3, 2)
    P = jnp.sum(opp * pay, axis=-1).transpose(0, 1, 3, 2)
    return A, P


# ---------------------------------------------------------------------------
# persons


def _totals_one(fd: FluidData, A, P) -> FluidTotals:
    """Totals of one draw (``fd`` without its draws axis; ``A``, ``P``: (D, C, S))."""
    D = A.shape[0]
    As = jnp.transpose(A, (2, 0, 1))  # (S, D, C)
    Ps = jnp.transpose(P, (2, 0, 1))
    # expected wins per exposure day of group g, by channel, times loss factors
    wins = fd.mult[:, :, None, :] * As[:, None]  # (S, G, D, C)
    f_end = jnp.sum(wins * jnp.transpose(fd.phi_end, (0, 1, 3, 2)), axis=-1)  # (S, G, D)
    h_end = fd.org_end[..., None] + jnp.einsum("spd,sgd->spg", fd.expo, f_end)
    q = fd.in_market[:, None, None]
    conv = jnp.sum(fd.weight * q * -jnp.expm1(-h_end))
    noads = jnp.sum(fd.weight * q * -jnp.expm1(-fd.org_end[..., None]))
    # intensity by mid-day t from touches on day u <= t
    idx = jnp.arange(D)
    lag = idx[:, None] - idx[None, :]  # (t, u)
    phl = fd.phi_lag[..., jnp.clip(lag, 0, D - 1)]  # (S, G, C, t, u)
    phl = jnp.where(lag >= 0, phl, 0.0)
    f_lag = jnp.einsum("sguc,sgctu->sgtu", wins, phl)  # (S, G, t, u)
    h_mid = fd.org_mid[..., None] + jnp.einsum("spu,sgtu->sptg", fd.expo, f_lag)  # (S,P,t,G)
    alive = 1.0 - q[..., None] + q[..., None] * jnp.exp(-h_mid)
    pay_day = jnp.sum(fd.mult[:, :, None, :] * Ps[:, None], axis=-1)  # (S, G, D)
    spend = jnp.einsum("spg,spt,sptg,sgt->", fd.weight, fd.expo, alive, pay_day)
    return FluidTotals(spend, conv + fd.untouched, noads + fd.untouched)


def _daily_one(fd: FluidData, A, P):
    """Expected spend and wins per ad day of one draw: (D,), (D,)."""
    D = A.shape[0]
    As = jnp.transpose(A, (2, 0, 1))
    Ps = jnp.transpose(P, (2, 0, 1))
    wins = fd.mult[:, :, None, :] * As[:, None]  # (S, G, D, C)
    idx = jnp.arange(D)
    lag = idx[:, None] - idx[None, :]
    phl = jnp.where(lag >= 0, fd.phi_lag[..., jnp.clip(lag, 0, D - 1)], 0.0)
    f_lag = jnp.einsum("sguc,sgctu->sgtu", wins, phl)
    h_mid = fd.org_mid[..., None] + jnp.einsum("spu,sgtu->sptg", fd.expo, f_lag)
    q = fd.in_market[:, None, None, None]
    alive = 1.0 - q + q * jnp.exp(-h_mid)
    pay_day = jnp.sum(fd.mult[:, :, None, :] * Ps[:, None], axis=-1)  # (S, G, D)
    win_day = jnp.sum(wins, axis=-1)  # (S, G, D)
    spend = jnp.einsum("spg,spt,sptg,sgt->t", fd.weight, fd.expo, alive, pay_day)
    won = jnp.einsum("spg,spt,sptg,sgt->t", fd.weight, fd.expo, alive, win_day)
    return spend, won


@jax.jit
def daily(fd: FluidData, bids):
    """Expected spend and won impressions per ad day and draw: (K, D) each."""
    A, P = cell_rates(fd, bids)
    return jax.vmap(_daily_one)(fd, A, P)


def totals_from_rates(fd: FluidData, A, P) -> FluidTotals:
    """Per-draw totals from per-draw cell rates ``A, P (K, D, C, S)``."""
    return jax.vmap(_totals_one)(fd, A, P)


def totals(fd: FluidData, bids) -> FluidTotals:
    """Expected spend, conversions and no-ads conversions per draw of one schedule."""
    A, P = cell_rates(fd, bids)
    return totals_from_rates(fd, A, P)


totals_jit = jax.jit(totals)
