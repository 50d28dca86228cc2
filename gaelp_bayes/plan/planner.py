"""Bid schedules that maximise posterior expected conversions under a budget.

Method (docs/planner.md): *dual best response* on the fluid model
(:mod:`gaelp_bayes.plan.fluid`), all posterior draws at once.

1. Linearise the objective ``F`` (mean, CVaR or CAC over draws) and the
   expected spend around the current schedule: by automatic differentiation,
   ``dF/dA``, ``dF/dP``, ``dSpend/dA`` and ``dSpend/dP`` for every draw and
   (day, channel, segment), where ``A`` and ``P`` are the win and payment
   rates of a cell.
2. For every cell (day, hour, channel, segment), the best bid on a grid
   maximises the posterior expected Lagrangian
   ``sum_k opp_k [pwin_k(b) (gF_A - lam gS_A) + pay_k(b) (gF_P - lam gS_P)]``
   (the classic "bid value / lambda" of a second-price auction, with every
   draw's competing-bid landscape, hour effects and first-price auctions
   handled by the same formula), or no bid.
3. The dual price ``lam`` is set by bisection so that the best response's
   expected spend equals the budget (dual pacing); the schedule moves
   part-way to the best response (log-bids), and the loop repeats.

A last bisection on one multiplier of all bids makes the expected spend
exactly the budget (or less, when more spend would not help).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gaelp_bayes.plan import fluid
from gaelp_bayes.sim.params import HOURS, SimParams

jax = fluid.jax
jnp = fluid.jnp

OBJECTIVES = ("conversions", "cac")


@dataclass
class PlanResult:
    """A planned schedule and what the fluid model expects of it."""

    bids: np.ndarray  # (days, 24, C, S)
    channels: tuple[str, ...]
    segments: tuple[str, ...]
    budget: float
    objective: str
    risk_alpha: float
    lam: float
    expected: dict[str, np.ndarray] = field(default_factory=dict)  # fluid totals per draw
    history: list[dict[str, float]] = field(default_factory=list)


@functools.cache
def objective_fn(objective: str, risk_alpha: float):
    """``F(conv_k, spend_k)`` over draws: mean or CVaR of conversions, or minus mean CAC.

    Cached, so that the same objective is the same (static) function for ``jax.jit``.
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
    a = float(risk_alpha)

    def cvar(x):
        k = x.shape[0]
        m = max(1, int(np.ceil(a * k - 1e-9)))
        if m >= k:
            return jnp.mean(x)
        return jnp.mean(jnp.sort(x)[:m])

    if objective == "conversions":

        def f_conv(conv, spend):
            return cvar(conv)

        return f_conv

    def f_cac(conv, spend):
        # spend is pinned to the budget B by the dual price, so E[CAC] = B E[1 / conv]:
        # maximise minus E[1 / conv] (or its upper-tail CVaR)
        return cvar(-1.0 / jnp.maximum(conv, 1e-6))

    return f_cac


def _grid(fd: fluid.FluidData, n: int) -> np.ndarray:
    """Log-bid grid per (channel, hour): (C, 24, n), spanning the competing-bid landscape."""
    loc = np.asarray(fd.bid_loc)  # (K, C, 24, J)
    sig = np.asarray(fd.bid_sigma)[:, :, None, :]
    lo = np.min(loc - 4.5 * sig, axis=(0, 3))
    hi = np.max(loc + 4.0 * sig, axis=(0, 3))
    floor = np.log(np.maximum(np.asarray(fd.floor).max(axis=0), 1e-12))[:, None]
    lo = np.maximum(lo, floor + 1e-3)
    hi = np.maximum(hi, lo + 1.0)
    t = np.linspace(0.0, 1.0, n)
    return (lo[..., None] + (hi - lo)[..., None] * t).astype(np.float32)


@jax.jit
def _grid_rates(fd: fluid.FluidData, grid):
    """P(win) and payment per opportunity on the grid: (K, C, 24, n) each."""
    pw, pay = fluid.auction_rates(fd, jnp.moveaxis(grid, -1, 0))  # (K, n, C, 24)
    return jnp.moveaxis(pw, 1, -1), jnp.moveaxis(pay, 1, -1)


@jax.jit
def _bids_from_index(grid, idx):
    """bids[d, h, c, s] from grid indices idx[d, h, c, s] (-1 = no bid)."""
    D, H, C, S = idx.shape
    gi = jnp.transpose(jnp.maximum(idx, 0), (2, 1, 0, 3)).reshape(C, H, D * S)
    lb = jnp.take_along_axis(grid, gi, axis=-1).reshape(C, H, D, S).transpose(2, 1, 0, 3)
    return jnp.where(idx >= 0, jnp.exp(lb), 0.0)


def _totals_cs(fd, A, P):
    t = fluid.totals_from_rates(fd, A, P)
    return t.conversions, t.spend


@functools.partial(jax.jit, static_argnames=("F",))
def _linearise(fd: fluid.FluidData, bids, F):
    A, P = fluid.cell_rates(fd, bids)
    (conv, spend), vjp = jax.vjp(lambda a, p: _totals_cs(fd, a, p), A, P)
    K = conv.shape[0]
    fval, (gc, gs) = jax.value_and_grad(F, argnums=(0, 1))(conv, spend)
    fA, fP = vjp((gc, gs))
    sA, sP = vjp((jnp.zeros_like(conv), jnp.full_like(spend, 1.0 / K)))
    return fval, conv, spend, fA, fP, sA, sP


@jax.jit
def _scores(opp, pw, pay, fA, fP, sA, sP):
    """U[d, h, c, s, n] = sum_k opp[k, s, c, h] (fA pwin + fP pay); V likewise with sA, sP."""
    ow = opp[..., None] * jnp.transpose(pw, (0, 1, 2, 3))[:, None]  # (K, S, C, 24, n)
    op = opp[..., None] * jnp.transpose(pay, (0, 1, 2, 3))[:, None]
    u = jnp.einsum("kschn,kdcs->dhcsn", ow, fA) + jnp.einsum("kschn,kdcs->dhcsn", op, fP)
    v = jnp.einsum("kschn,kdcs->dhcsn", ow, sA) + jnp.einsum("kschn,kdcs->dhcsn", op, sP)
    return u, v


@jax.jit
def _best_response(u, v, lam):
    val = u - lam * v
    best = jnp.argmax(val, axis=-1)
    top = jnp.max(val, axis=-1)
    return jnp.where(top > 0, best, -1).astype(jnp.int32)


@jax.jit
def _spend_of_idx(fd, grid, idx, fixed, free):
    bids = jnp.where(free[:, None, None, None], _bids_from_index(grid, idx), fixed)
    return jnp.mean(fluid.totals(fd, bids).spend)


@jax.jit
def _mean_spend(fd, bids):
    return jnp.mean(fluid.totals(fd, bids).spend)


def _bisect_lam(fd, grid, u, v, budget, lam_lo, lam_hi, iters, exact, fixed, free):
    """Dual price whose best response spends the budget (the largest spend <= budget)."""

    def spend(idx):
        return float(_spend_of_idx(fd, grid, idx, fixed, free))

    idx_lo = _best_response(u, v, lam_lo)
    s_lo = spend(idx_lo)
    if s_lo <= budget and not exact:
        return lam_lo, idx_lo, s_lo
    lo, hi = lam_lo, lam_hi
    best = (lam_hi, _best_response(u, v, lam_hi), None)
    for _ in range(iters):
        mid = 0.5 * (lo + hi) if lo <= 0 else float(np.sqrt(lo * hi))
        idx = _best_response(u, v, mid)
        s = spend(idx)
        if s > budget:
            lo = mid
        else:
            hi = mid
            best = (mid, idx, s)
        if hi - lo <= 1e-4 * abs(hi):
            break
    lam, idx, s = best
    if s is None:
        s = spend(idx)
    return lam, idx, s


def pace(
    fd: fluid.FluidData,
    bids: np.ndarray,
    budget: float,
    iters: int = 30,
    *,
    allow_up: bool = True,
    free: np.ndarray | None = None,
    _offset: np.ndarray | None = None,
) -> np.ndarray:
    """One multiplier on every bid so that the expected spend is the budget (at most).

    With ``allow_up=False`` bids are only ever shaded down (a schedule that
    already spends less than the budget is kept).
    """

    bids = np.asarray(bids, np.float32)
    scale_days = np.ones(bids.shape[0], np.float32) if free is None else np.asarray(free, bool)

    def spend(b):
        b = b if _offset is None else b + _offset
        return float(_mean_spend(fd, jnp.asarray(b, jnp.float32)))

    if free is not None:  # only the free days are scaled; fixed days keep their bids
        fixed_part = np.where(scale_days[:, None, None, None], 0.0, bids).astype(np.float32)
        free_part = np.where(scale_days[:, None, None, None], bids, 0.0).astype(np.float32)
        out = pace(fd, free_part, budget, iters, allow_up=allow_up, _offset=fixed_part)
        return out + fixed_part
    s0 = spend(bids)
    if s0 <= budget:
        if not allow_up:
            return bids
        lo = 1.0
        for _ in range(12):
            s2 = spend(bids * lo * 2.0)
            if s2 > budget:
                break
            if s2 <= s0 * (1.0 + 1e-4):
                # saturated: higher bids win nothing more, so do not raise them
                return (bids * lo).astype(np.float32)
            lo, s0 = lo * 2.0, s2
        else:
            return (bids * lo).astype(np.float32)
        hi = lo * 2.0
    else:
        lo, hi = 0.0, 1.0
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        if spend(bids * mid) > budget:
            hi = mid
        else:
            lo = mid
        if hi - lo <= 1e-4 * hi:
            break
    return (bids * lo).astype(np.float32)


def plan_schedule(
    params: SimParams,
    budget: float,
    days: int,
    *,
    objective: str = "conversions",
    risk_alpha: float = 1.0,
    iterations: int = 8,
    n_grid: int = 64,
    step: float = 0.5,
    fluid_kwargs: dict[str, Any] | None = None,
    progress=None,
    fixed_bids: np.ndarray | None = None,
    fixed_days: int = 0,
) -> PlanResult:
    """Plan ``bids[day, hour, channel, segment]`` for ``days`` days under ``budget``.

    Parameters
    ----------
    params
        One parameter set (a plug-in or the truth) or stacked posterior draws.
    budget
        Total budget; the plan's expected spend (over draws) is at most this.
    objective
        ``"conversions"``: maximise expected eventual conversions (or their
        lower CVaR at level ``risk_alpha`` over draws); ``"cac"``: minimise
        the expected cost per conversion among plans that spend the budget.
    risk_alpha
        CVaR level in (0, 1]: the objective averages the worst
        ``risk_alpha`` fraction of draws (1 = the posterior mean).
    fixed_bids, fixed_days
        Days ``< fixed_days`` keep ``fixed_bids`` (already executed, in a
        closed loop); the budget covers them too.

    Examples
    --------
    >>> from gaelp_bayes.sim import from_world
    >>> res = plan_schedule(from_world("world"), 1000.0, 14)  # doctest: +SKIP
    >>> res.bids.shape  # doctest: +SKIP
    (14, 24, 5, 6)
    """
    if not budget > 0:
        raise ValueError("budget must be > 0")
    if not 0 < risk_alpha <= 1:
        raise ValueError("risk_alpha must be in (0, 1]")
    F = objective_fn(objective, float(risk_alpha))
    fd = fluid.prepare(params, days, **(fluid_kwargs or {}))
    grid = jnp.asarray(_grid(fd, n_grid))
    pw, pay = _grid_rates(fd, grid)
    C, S = params.n_channels, params.n_segments
    exact = False
    lo_grid = np.asarray(grid[..., 0]).T[None, :, :, None] - 1.0  # (1, 24, C, 1)
    # start: no ads (marginal values of a fresh population)
    log_b = None
    bids = np.zeros((days, HOURS, C, S), np.float32)
    free = np.arange(days) >= fixed_days
    fixed = np.zeros((days, HOURS, C, S), np.float32)
    if fixed_bids is not None and fixed_days > 0:
        fixed[:fixed_days] = np.asarray(fixed_bids, np.float32)[:fixed_days]
    free_j, fixed_j = jnp.asarray(free), jnp.asarray(fixed)
    bids = np.where(free[:, None, None, None], bids, fixed).astype(np.float32)
    lam = 0.0
    history = []
    for it in range(iterations):
        fval, conv, spend, fA, fP, sA, sP = _linearise(fd, jnp.asarray(bids), F)
        u, v = _scores(fd.opp, pw, pay, fA, fP, sA, sP)
        # bracket of the dual price: nothing is worth bidding above lam_hi
        lam_hi = float(jnp.max(jnp.where(v > 0, u / jnp.maximum(v, 1e-30), 0.0))) * 1.01 + 1e-12
        if exact:
            lam_lo = -abs(lam_hi)
        else:
            lam_lo = lam_hi * 1e-9
        lam, idx, s = _bisect_lam(
            fd, grid, u, v, budget, lam_lo, lam_hi, 40, exact, fixed_j, free_j
        )
        br = np.asarray(_bids_from_index(grid, idx))
        br = np.where(free[:, None, None, None], br, fixed)
        lbr = np.where(br > 0, np.log(np.maximum(br, 1e-30)), -np.inf)
        if log_b is None:
            log_b = lbr
        else:
            eta = step if it < iterations - 1 else 1.0
            a_ = np.where(np.isfinite(log_b), log_b, lo_grid)
            b_ = np.where(np.isfinite(lbr), lbr, lo_grid)
            new = (1 - eta) * a_ + eta * b_
            log_b = np.where(new <= lo_grid + 1e-6, -np.inf, new)
        bids = np.where(np.isfinite(log_b), np.exp(log_b), 0.0).astype(np.float32)
        history.append(
            {
                "iteration": it,
                "objective": float(fval),
                "conversions": float(jnp.mean(conv)),
                "spend": float(jnp.mean(spend)),
                "lam": float(lam),
                "br_spend": float(s),
            }
        )
        if progress is not None:
            progress(it + 1, iterations)
    bids = np.where(free[:, None, None, None], bids, fixed).astype(np.float32)
    bids = pace(fd, bids, budget, free=None if fixed_days <= 0 else free)
    # never above the top of the competing-bid landscape (where P(win) is ~1): a
    # higher bid wins nothing more in a second-price auction, only risk
    ceiling = np.exp(np.asarray(grid[..., -1])).T[None, :, :, None]  # (1, 24, C, 1)
    bids = np.where(free[:, None, None, None], np.minimum(bids, ceiling), bids).astype(np.float32)
    t = fluid.totals_jit(fd, jnp.asarray(bids))
    expected = {
        "spend": np.asarray(t.spend),
        "conversions": np.asarray(t.conversions),
        "conversions_noads": np.asarray(t.conversions_noads),
    }
    return PlanResult(
        bids=np.asarray(bids, np.float32),
        channels=tuple(params.channels),
        segments=tuple(params.segments),
        budget=float(budget),
        objective=objective,
        risk_alpha=float(risk_alpha),
        lam=float(lam),
        expected=expected,
        history=history,
    )
