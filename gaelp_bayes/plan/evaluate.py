"""Outcomes of schedules in the journey simulator, under posterior draws or the truth.

Every number of a plan summary comes from here: :func:`simulate_schedules`
runs :func:`gaelp_bayes.sim.simulate_draws` for each schedule with the same
draws and the same random numbers (common random numbers: every schedule
meets the same persons), and :func:`summary_intervals` turns the per-draw
totals into the contract's intervals.

Population subsampling: a rollout costs time in proportion to its persons,
so at most ``max_persons`` expected persons are simulated per rollout: a
fraction ``f`` of every arrival rate (and of the budget), with totals scaled
back by ``1 / f``. Expectations are unchanged; the population noise of a
total is inflated by ``1 / sqrt(f)``, which widens (never narrows) the
intervals. ``f`` is reported.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np

from gaelp_bayes.sim.params import SimParams, stack


@functools.cache
def _sharded():
    """``simulate_draws`` over the local devices (one compiled function, reused)."""
    import jax

    from gaelp_bayes.sim import simulate_draws

    def run(p, key, bids, budget, n_max, mode):
        return simulate_draws(p, bids, budget, key, n_max=n_max, mode=mode)

    return jax.pmap(run, in_axes=(0, 0, None, None), static_broadcasted_argnums=(4, 5))


@dataclass
class Evaluation:
    """Per-draw totals of each schedule (arrays of shape ``(K,)``)."""

    totals: dict[str, dict[str, np.ndarray]]
    fraction: float
    mode: str
    draws: int


def _as_draws(params: SimParams, replicates: int) -> SimParams:
    if params.n_draws is None:
        return stack([params] * replicates)
    return params


def subsample(params: SimParams, days: int, max_persons: float | None) -> tuple[SimParams, float]:
    """Scale every arrival rate by ``f`` so at most ``max_persons`` are expected in ``days``.

    Returns the scaled parameters and ``f`` (1 when no scaling is needed);
    budgets scale by ``f`` and totals by ``1 / f`` (module docstring).
    """
    lam = float(np.max(np.sum(np.asarray(params.arrival_rate), axis=-1)))
    expected = lam * days
    f = 1.0 if max_persons is None or expected <= max_persons else float(max_persons / expected)
    scaled = params.replace(
        arrival_rate=np.asarray(params.arrival_rate) * f,
        untouched_rate=np.asarray(params.untouched_rate) * f,
    )
    return scaled, f


def simulate_schedules(
    params: SimParams,
    schedules: dict[str, np.ndarray],
    budget: float,
    *,
    seed: int = 0,
    replicates: int = 16,
    mode: str = "mean",
    max_persons: float | None = 1500.0,
) -> Evaluation:
    """Simulate every schedule under every draw of ``params`` (same keys for all).

    ``params`` is stacked draws (one rollout each) or one set (``replicates``
    rollouts with different persons). Budgets apply as in execution: bidding
    stops once spend reaches it.
    """
    import jax
    import jax.numpy as jnp

    from gaelp_bayes.sim import as_jax, capacity, simulate_draws, totals

    p = _as_draws(params, replicates)
    K = int(p.n_draws)
    days = int(next(iter(schedules.values())).shape[0])
    ps, f = subsample(p, days, max_persons)
    pj = as_jax(ps)
    n_max = capacity(ps, days)
    key = jax.random.key(seed)
    n_dev = jax.local_device_count()
    out: dict[str, dict[str, np.ndarray]] = {}
    for name, bids in schedules.items():
        b = jnp.asarray(bids, jnp.float32)
        if n_dev > 1 and K % n_dev == 0:
            shard = jax.tree_util.tree_map(lambda x: x.reshape(n_dev, K // n_dev, *x.shape[1:]), pj)
            keys = jax.random.split(key, n_dev)
            res = _sharded()(shard, keys, b, jnp.float32(budget * f), n_max, mode)
            res = jax.tree_util.tree_map(lambda x: x.reshape(K, *x.shape[2:]), res)
        else:
            res = simulate_draws(pj, b, budget * f, key, n_max=n_max, mode=mode)
        t = {k: np.asarray(v, float) for k, v in totals(res).items()}
        for k in ("spend", "conversions", "incremental_conversions"):
            t[k] = t[k] / f
        t["stop_hour"] = np.asarray(res.stop_hour)
        out[name] = t
    return Evaluation(out, f, mode, K)


def summary_intervals(t: dict[str, np.ndarray], keys=None) -> dict[str, dict[str, float]]:
    """Contract intervals of per-draw totals; ratios over draws with a positive denominator."""
    from gaelp_bayes.diagnostics import interval

    keys = keys or ("spend", "conversions", "incremental_conversions", "cac", "incremental_cac")
    out: dict[str, Any] = {}
    for k in keys:
        x = np.asarray(t[k], float).ravel()
        x = x[np.isfinite(x)]
        if x.size == 0:
            out[k] = None
        else:
            iv = interval(x)
            # identical draws: the mean may differ from the quantiles in the last bit
            iv["mean"] = (
                min(max(iv["mean"], iv["q05"]), iv["q95"])
                if np.ptp(x) < 1e-9 * max(1.0, abs(iv["mean"]))
                else iv["mean"]
            )
            out[k] = iv
    return out
