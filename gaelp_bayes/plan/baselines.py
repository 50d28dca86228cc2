"""Baseline bid schedules, compared with the plan under the same draws and persons.

Every baseline returns ``bids[day, hour, channel, segment]`` and is paced to
the budget the same way as the plan (expected spend under the posterior's
fluid model at most the budget; execution stops at the budget):

* :func:`uniform_logged` — the logged bid of each channel (median observed
  bid) in every cell, shaded by one factor only if it would overspend;
* :func:`flat_bid` — one bid for every cell, the highest whose expected spend
  is within the budget (tuned on the posterior);
* :func:`thompson` — Thompson sampling per cell on *immediate* conversions:
  each day one posterior draw, each (channel, segment) bid proportional to
  the conversions a win brings within a day (the delayed effect ignored);
* :func:`posterior_mean` — the planner given the posterior mean only;
* :func:`oracle` — the planner given the true parameters (evaluation only).

A model-free PPO agent (``rl`` extra) is in :mod:`gaelp_bayes.plan.ppo`: it is
trained for minutes and acts hourly, so it runs in the benchmarks, not in the
plan summary (docs/planner.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from gaelp_bayes.plan import fluid
from gaelp_bayes.plan.planner import pace, plan_schedule
from gaelp_bayes.sim.params import HOURS, SimParams, mean_params, stack

NAMES = ("logged_uniform", "flat_bid", "thompson", "posterior_mean")


def _shape(params: SimParams, days: int) -> tuple[int, int, int, int]:
    return (days, HOURS, params.n_channels, params.n_segments)


def logged_bids(bundle: Any, channels: tuple[str, ...]) -> tuple[np.ndarray, str]:
    """Median logged bid per channel, and where it came from.

    Read from the auction log the bundle was fitted on (its manifest records
    the input paths). When that file is gone or lacks a channel, the market
    posterior's median competing bid of the channel stands in (a bid that
    wins about half the auctions); the source string says which.
    """
    import pandas as pd

    med: dict[str, float] = {}
    source = "auction log"
    for path in bundle.manifest.get("input", {}).get("paths", []):
        p = Path(path)
        if not p.exists():
            continue
        try:
            if p.suffix == ".parquet" or p.is_dir():
                cols = pd.read_parquet(p, columns=None).columns
                if not {"bid", "channel"} <= set(cols):
                    continue
                df = pd.read_parquet(p, columns=["channel", "bid"])
            elif p.suffix == ".csv":
                head = pd.read_csv(p, nrows=0).columns
                if not {"bid", "channel"} <= set(head):
                    continue
                df = pd.read_csv(p, usecols=["channel", "bid"])
            else:
                continue
        except Exception:
            continue
        bid = pd.to_numeric(df["bid"], errors="coerce")
        m = bid[bid > 0].groupby(df["channel"].astype(str)).median()
        med.update({str(k): float(v) for k, v in m.items()})
        break
    out = np.zeros(len(channels))
    missing = [c for c in channels if c not in med]
    if missing:
        source = "auction log" if med else "market posterior"
        post = bundle.idata("market").posterior
        mu = post["mu"].mean(("chain", "draw"))
        eta = post["hour_effect"].mean(("chain", "draw", "hour"))
        for c in missing:
            med[c] = float(np.exp(mu.sel(channel=c) + eta.sel(channel=c)))
        if len(missing) < len(channels):
            source = "auction log (market posterior for " + ", ".join(missing) + ")"
        else:
            source = "market posterior median competing bid (auction log not found)"
    for i, c in enumerate(channels):
        out[i] = med[c]
    return out, source


def uniform_logged(
    params: SimParams, logged: np.ndarray, budget: float, days: int, fd=None
) -> np.ndarray:
    """The logged bid per channel in every cell, shaded by one factor if it would overspend."""
    fd = fd if fd is not None else fluid.prepare(params, days)
    bids = np.broadcast_to(
        np.asarray(logged, np.float32)[None, None, :, None], _shape(params, days)
    ).copy()
    return pace(fd, bids, budget, allow_up=False)


def flat_bid(params: SimParams, budget: float, days: int, fd=None) -> np.ndarray:
    """One bid in every cell: the highest whose expected spend stays within the budget."""
    fd = fd if fd is not None else fluid.prepare(params, days)
    start = float(np.exp(np.median(np.asarray(params.bid_loc))))
    bids = np.full(_shape(params, days), start, np.float32)
    return pace(fd, bids, budget)


def immediate_value(params: SimParams, within_days: float = 1.0) -> np.ndarray:
    """Conversions a win brings within ``within_days`` per draw: (K, C, S)."""
    p = fluid._stacked(params)
    g = fluid._kernel_cdf(
        np.asarray(p.kernel_weight, float),
        np.asarray(p.kernel_rate, float),
        np.array([within_days]),
    )[..., 0]  # (K, C)
    beta = np.asarray(p.beta, float)  # (K, S, C, 2)
    v = (beta[..., 0] + np.asarray(p.ctr, float) * beta[..., 1]) * g[:, None, :]
    return np.transpose(v, (0, 2, 1))


def thompson(params: SimParams, budget: float, days: int, seed: int = 0, fd=None) -> np.ndarray:
    """Thompson sampling per cell on immediate conversions (one posterior draw per day)."""
    fd = fd if fd is not None else fluid.prepare(params, days)
    v = immediate_value(params)  # (K, C, S)
    rng = np.random.default_rng(seed)
    k = rng.integers(0, v.shape[0], size=days)
    bids = np.broadcast_to(v[k][:, None], _shape(params, days)).astype(np.float32)
    return pace(fd, bids, budget)


def posterior_mean(
    params: SimParams, budget: float, days: int, replicate: int = 1, **kw
) -> np.ndarray:
    """The planner's schedule given the posterior mean of every parameter only.

    ``replicate`` copies of the mean give the same plan as one; with the
    planning draws' count they reuse the planner's compiled functions.
    """
    m = mean_params(params)
    if replicate > 1:
        m = stack([m] * replicate)
    return plan_schedule(m, budget, days, **kw).bids


def oracle(true_params: SimParams, budget: float, days: int, **kw) -> np.ndarray:
    """The planner's schedule given the true parameters (``sim.from_world``)."""
    return plan_schedule(true_params, budget, days, **kw).bids


def all_baselines(
    params: SimParams,
    budget: float,
    days: int,
    logged: np.ndarray,
    *,
    seed: int = 0,
    fd=None,
    planner_kw: dict | None = None,
) -> dict[str, np.ndarray]:
    """Every posterior baseline of the plan summary, by name (see :data:`NAMES`)."""
    fd = fd if fd is not None else fluid.prepare(params, days)
    return {
        "logged_uniform": uniform_logged(params, logged, budget, days, fd),
        "flat_bid": flat_bid(params, budget, days, fd),
        "thompson": thompson(params, budget, days, seed, fd),
        "posterior_mean": posterior_mean(
            params, budget, days, replicate=params.n_draws or 1, **(planner_kw or {})
        ),
    }
