"""Closed loop: plan, execute days in a TRUE world, observe, update, re-plan.

The true world is the journey simulator under true parameters, stepped day
by day (``sim.step``) over one population of persons arriving during the
horizon (the plan population of data contract section 6), so every policy
meets the same persons. A policy is called at the start of each day with
what an advertiser observes so far (daily spend and won impressions per
day; conversions arrive late and are not used) and returns that day's bids
``(24, C, S)``.

The posterior update (:class:`SpendCalibratedPlanner`) is deliberately
cheap: one multiplicative scale ``r`` on every draw's opportunity rates,
with a conjugate Gamma posterior from the observed spend, counted in units
of the expected price of a win (so that it behaves like a Poisson count of
wins): day ``d`` adds ``spend_observed[d] / unit`` to the shape and the
fluid model's expected spend of that day (posterior draws at ``r = 1``,
the bids actually executed) ``/ unit`` to the rate. Re-planning every ``replan_every``
days samples one ``r`` per draw (posterior sampling), keeps the executed
days' bids fixed, and re-optimises the remaining days for the whole budget.
It targets the measured weakness of plans from a bundle (docs/planner.md):
a spend forecast far off the truth.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gaelp_bayes.plan import fluid
from gaelp_bayes.plan.planner import plan_schedule
from gaelp_bayes.sim.params import HOURS, SimParams

jax = fluid.jax
jnp = fluid.jnp

Policy = Callable[[int, Any], np.ndarray]


@dataclass
class LoopResult:
    conversions_by_day: np.ndarray  # (days + follow_days,) first conversions per day
    spend_by_day: np.ndarray  # (days,)
    wins_by_day: np.ndarray  # (days,)

    @property
    def conversions(self) -> float:
        return float(self.conversions_by_day.sum())

    @property
    def spend(self) -> float:
        return float(self.spend_by_day.sum())


def run_loop(
    truth: SimParams,
    policy: Policy,
    budget: float,
    days: int,
    *,
    seed: int = 0,
    follow_days: int = 30,
) -> LoopResult:
    """Execute ``policy`` day by day in the true world (sample mode, budget stop).

    A daily policy is called as ``policy(day, obs)`` and returns the day's
    bids ``(24, C, S)``. A policy with ``hourly = True`` (e.g. the PPO
    baseline) is called every hour as ``policy(t, history)`` with the hourly
    spend, wins, clicks and conversions so far ``(4, t)`` and returns
    ``(C, S)``; both kinds use the same random numbers.
    """
    from gaelp_bayes.sim import as_jax, capacity, init_state, sample_persons, step

    p = as_jax(truth)
    n_max = capacity(truth, days)
    k_pop, k_ads = jax.random.split(jax.random.key(seed))
    persons = sample_persons(p, k_pop, days, n_max, "sample")
    state = init_state(p, persons)
    b = jnp.float32(budget)

    @jax.jit
    def one_day(state, bids_day, key):
        keys = jax.random.split(key, HOURS)

        def body(s, x):
            return step(p, persons, s, x[0], x[1], b, mode="sample")

        return jax.lax.scan(body, state, (bids_day, keys))

    @jax.jit
    def follow(state):
        def body(s, _):
            zero = jnp.zeros((truth.n_channels, truth.n_segments), jnp.float32)
            return step(p, persons, s, zero, k_ads, mode="sample", ads=False)

        return jax.lax.scan(body, state, None, length=follow_days * HOURS)

    @jax.jit
    def one_hour(state, bids_hour, key):
        return step(p, persons, state, bids_hour, key, b, mode="sample")

    hourly = bool(getattr(policy, "hourly", False))
    history = np.zeros((4, days * HOURS))  # spend, wins, clicks, conversions per hour
    obs: dict[str, list[float]] = {"spend": [], "wins": []}
    conv, spend, wins = [], [], []
    day_keys = jax.random.split(k_ads, days)
    for d in range(days):
        if hourly:  # same keys as the daily scan: common random numbers with daily policies
            hour_keys = jax.random.split(day_keys[d], HOURS)
            for h in range(HOURS):
                t = d * HOURS + h
                bids_h = jnp.asarray(policy(t, history[:, :t]), jnp.float32)
                state, o = one_hour(state, bids_h, hour_keys[h])
                history[:, t] = [float(x) for x in o]
            out = type(o)(*(history[i, d * HOURS : (d + 1) * HOURS] for i in range(4)))
        else:
            bids = jnp.asarray(policy(d, obs), jnp.float32)
            state, out = one_day(state, bids, day_keys[d])
        spend.append(float(out.spend.sum()))
        wins.append(float(out.wins.sum()))
        conv.append(float(out.conversions.sum()))
        obs["spend"].append(spend[-1])
        obs["wins"].append(wins[-1])
    state, out = follow(state)
    conv.extend(np.asarray(out.conversions).reshape(follow_days, HOURS).sum(axis=1).tolist())
    return LoopResult(np.asarray(conv), np.asarray(spend), np.asarray(wins))


def static_policy(bids: np.ndarray) -> Policy:
    """Execute a fixed schedule ``bids[day, hour, channel, segment]``."""
    b = np.asarray(bids, np.float32)
    return lambda d, obs: b[d]


@dataclass
class SpendCalibratedPlanner:
    """Re-planning policy with the cheap conjugate opportunity-scale update (module docstring)."""

    params: SimParams  # stacked posterior draws
    budget: float
    days: int
    replan_every: int = 7
    prior_shape: float = 2.0
    prior_rate: float = 2.0
    seed: int = 0
    plan_kw: dict[str, Any] = field(default_factory=dict)
    bids: np.ndarray | None = None
    shape_: float = 0.0
    rate_: float = 0.0
    scales_: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.shape_, self.rate_ = self.prior_shape, self.prior_rate
        self._fd = fluid.prepare(self.params, self.days)
        self._rng = np.random.default_rng(self.seed)

    def _replan(self, d: int) -> None:
        k = int(self.params.n_draws or 1)
        r = self._rng.gamma(self.shape_, 1.0 / self.rate_, size=k)
        r = r if d > 0 else np.ones(k)  # day 0: the bundle's own forecast
        opp = np.asarray(self.params.opp_rate) * r.reshape((k,) + (1,) * 3)
        p = self.params.replace(opp_rate=opp.astype(np.float32))
        res = plan_schedule(
            p, self.budget, self.days, fixed_bids=self.bids, fixed_days=d, **self.plan_kw
        )
        self.bids = res.bids
        self.scales_.append(float(np.mean(r)))

    def __call__(self, d: int, obs: dict[str, list[float]]) -> np.ndarray:
        if d > 0:
            sp, wn = fluid.daily(self._fd, jnp.asarray(self.bids))
            pred_spend = float(np.asarray(sp).mean(axis=0)[d - 1])
            pred_wins = float(np.asarray(wn).mean(axis=0)[d - 1])
            # spend in units of the expected price of a win: Poisson-like counts
            unit = pred_spend / max(pred_wins, 1e-9) if pred_wins > 0 else 1.0
            if unit > 0:
                self.shape_ += obs["spend"][d - 1] / unit
                self.rate_ += pred_spend / unit
        if self.bids is None or d % self.replan_every == 0:
            self._replan(d)
        return self.bids[d]


class AlignedPolicy:
    """Execute a policy written in one channel/segment order in another world's order.

    ``channels``/``segments`` are index lists: position ``i`` of the world
    takes the policy's ``channels[i]`` (e.g. a bundle's plan in the true
    world, whose order may differ). Works for daily and hourly policies.
    """

    def __init__(self, policy: Policy, channels: list[int], segments: list[int]):
        self.policy, self.ci, self.si = policy, list(channels), list(segments)
        self.hourly = bool(getattr(policy, "hourly", False))

    def __call__(self, t: int, obs: Any) -> np.ndarray:
        b = np.asarray(self.policy(t, obs))
        return b[..., self.ci, :][..., self.si]
