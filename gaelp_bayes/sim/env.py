"""Gymnasium environment ``gaelp_bayes/BidPlanning-v0`` on top of the JAX simulator.

Each episode draws one parameter set (a posterior draw when the parameters
carry a ``draws`` axis) and a fresh population, then runs ``days x 24``
hourly steps. The agent sets bid multipliers per channel x segment for the
next hour; the bid is ``multiplier x base_bids[hour, channel]`` (default base:
the competing bid's median at that hour). The reward is the number of first
conversions that happen during the hour (organic ones included); the last
step also collects the conversions of ``follow_days`` more days without ads,
so that delayed effects of the episode's touches count.

Observation (float32, :data:`OBS_FIELDS`), as an advertiser sees it:
hour of day, progress through the episode, remaining budget share, spend in
the last hour and last 24 hours (relative to even pacing), wins and clicks
(per expected arrival per day), and conversions as reported with a delay of
``report_delay_hours`` (the 24 hours ending then, and the total so far).

:class:`BidPlanningEnv` is a ``gymnasium.Env``; :class:`BidPlanningVectorEnv`
is a ``gymnasium.vector.VectorEnv`` that runs ``num_envs`` draws at once with
``jax.vmap`` (all copies share the horizon, so they end together; next-step
autoreset).
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv

from gaelp_bayes.sim.params import HOURS, SimParams, as_jax, stack, take, world_params

ENV_ID = "gaelp_bayes/BidPlanning-v0"
OBS_FIELDS = (
    "hour_of_day",
    "progress",
    "budget_left",
    "spend_last_hour",
    "spend_last_day",
    "wins_last_hour",
    "wins_last_day",
    "clicks_last_day",
    "conversions_reported_last_day",
    "conversions_reported_total",
)
_OBS_HIGH = 1e6


def default_params(persons_per_day: float = 100.0) -> SimParams:
    """The example world's true parameters with a small arrival rate (fast episodes)."""
    from gaelp_bayes.world import get_world

    return world_params(
        {"spec": get_world("parental-controls").to_dict(), "persons": persons_per_day, "days": 1}
    )


def median_bids(params: SimParams) -> np.ndarray:
    """(24, C) competing-bid median proxy per hour: exp of the weighted component location."""
    loc = np.asarray(params.bid_loc, float)
    w = np.asarray(params.bid_weight, float)
    if loc.ndim == 4:  # draws axis: average over draws
        loc, w = loc.mean(axis=0), w.mean(axis=0)
    return np.exp((loc * w[:, None, :]).sum(axis=-1)).T.astype(np.float32)


def rough_spend(params: SimParams, days: int, base: np.ndarray) -> float:
    """A rough expected spend of bidding ``base`` everywhere (for the default budget).

    Persons active over the episode (arrivals x mean active days, at most
    half the episode), times opportunities per person-hour, times half the
    base bid as the price of a win with probability one half.
    """
    p = params if params.n_draws is None else take(params, 0)
    arrival = np.asarray(p.arrival_rate, float)
    window = np.minimum(np.asarray(p.window_mean, float), days / 2)
    opp = (np.asarray(p.profile_prob) @ np.asarray(p.profile_opp))[:, :, None] * np.asarray(
        p.opp_rate
    )  # (S, C, 24)
    person_hours_per_hour = arrival * days * window / days  # active persons on average
    per_hour = np.einsum("s,sch,hc->", person_hours_per_hour, opp, 0.25 * base) / HOURS
    return float(per_hour * days * HOURS)


def observation(
    hist: np.ndarray,
    t: int,
    spend: np.ndarray,
    budget: float,
    days: int,
    arrivals: float,
    delay: int,
) -> np.ndarray:
    """The advertiser's view after ``t`` hours (:data:`OBS_FIELDS`), shape ``(n, F)``.

    ``hist`` is ``(4, n, days x 24)``: spend, wins, clicks and conversions per
    hour so far; ``spend`` the total spend ``(n,)``; conversions are seen
    ``delay`` hours late. Spend is relative to even pacing of ``budget``,
    counts to ``arrivals`` (expected persons per day).
    """
    horizon = days * HOURS
    n = hist.shape[1]
    pace_h = budget / horizon
    pace_d = budget / days
    scale = max(arrivals, 1e-9)
    last = slice(max(t - 1, 0), t)
    day = slice(max(t - HOURS, 0), t)
    rep_end = max(t - delay, 0)
    rep = slice(max(rep_end - HOURS, 0), rep_end)
    obs = np.stack(
        [
            np.full(n, (t % HOURS) / (HOURS - 1)),
            np.full(n, t / horizon),
            np.maximum(budget - spend, 0.0) / budget,
            hist[0, :, last].sum(axis=-1) / pace_h,
            hist[0, :, day].sum(axis=-1) / pace_d,
            hist[1, :, last].sum(axis=-1) / scale,
            hist[1, :, day].sum(axis=-1) / scale,
            hist[2, :, day].sum(axis=-1) / scale,
            hist[3, :, rep].sum(axis=-1) / scale,
            hist[3, :, :rep_end].sum(axis=-1) / scale,
        ],
        axis=-1,
    )
    return np.clip(obs, 0.0, _OBS_HIGH).astype(np.float32)


class _Batch:
    """Jitted, vmapped reset/step/follow-up functions for a batch of draws."""

    def __init__(self, n_max: int, days: int, follow_days: int, mode: str):
        import jax

        from gaelp_bayes.sim import core

        self.days, self.follow_days = days, follow_days

        def reset_one(p, key):
            k_pop, _ = jax.random.split(key)
            persons = core.sample_persons(p, k_pop, days, n_max, mode)
            return persons, core.init_state(p, persons)

        def step_one(p, persons, state, bids_hour, key, budget):
            return core.step(p, persons, state, bids_hour, key, budget, mode=mode)

        def follow_one(p, persons, state):
            conv, _ = core.follow_up(p, persons, state, follow_days, mode=mode)
            return conv.sum()

        self.reset = jax.jit(jax.vmap(reset_one))
        self.step = jax.jit(jax.vmap(step_one))
        self.follow = jax.jit(jax.vmap(follow_one))


class _Episodes:
    """Host-side bookkeeping shared by the single and the vector environment."""

    def __init__(
        self,
        params: SimParams | None,
        num_envs: int,
        days: int,
        budget: float | None,
        base_bids: np.ndarray | None,
        max_multiplier: float,
        follow_days: int,
        report_delay_hours: int,
        mode: str,
    ):
        from gaelp_bayes.errors import GaelpError
        from gaelp_bayes.sim.core import MODES, capacity

        if days < 1 or follow_days < 0 or report_delay_hours < 0 or max_multiplier <= 0:
            raise GaelpError(
                "BidPlanning-v0 needs days >= 1, follow_days >= 0, report_delay_hours >= 0 "
                f"and max_multiplier > 0; got {days}, {follow_days}, {report_delay_hours}, "
                f"{max_multiplier}"
            )
        if mode not in MODES:
            raise GaelpError(f"mode must be one of {MODES}, got {mode!r}")
        self.params = default_params() if params is None else params
        self.n = num_envs
        self.days, self.follow_days = days, follow_days
        self.delay = report_delay_hours
        self.max_multiplier = float(max_multiplier)
        self.C, self.S = self.params.n_channels, self.params.n_segments
        self.base = (
            median_bids(self.params)
            if base_bids is None
            else np.broadcast_to(np.asarray(base_bids, np.float32), (HOURS, self.C)).copy()
        )
        if budget is None:
            budget = 0.5 * rough_spend(self.params, days, self.base)
        if not budget > 0:
            raise GaelpError(f"budget must be > 0, got {budget}")
        self.budget = float(budget)
        self.arrivals = float(np.mean(np.sum(np.asarray(self.params.arrival_rate), axis=-1)))
        self.batch = _Batch(capacity(self.params, days), days, follow_days, mode)
        self.horizon = days * HOURS

    def reset(self, rng: np.random.Generator) -> None:
        import jax

        nd = self.params.n_draws
        self.draw = rng.integers(0, nd, self.n) if nd else np.zeros(self.n, int)
        one = [self.params if nd is None else take(self.params, int(i)) for i in self.draw]
        self.p = as_jax(stack(one))
        seed = int(rng.integers(0, 2**31 - 1))
        k_reset, self.key = jax.random.split(jax.random.key(seed))
        keys = jax.random.split(k_reset, self.n)
        self.persons, self.state = self.batch.reset(self.p, keys)
        self.t = 0
        self.hist = np.zeros((4, self.n, self.horizon))  # spend, wins, clicks, conversions
        self.spend = np.zeros(self.n)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        import jax
        import jax.numpy as jnp

        mult = np.clip(np.asarray(action, np.float32), 0.0, self.max_multiplier)
        mult = mult.reshape(self.n, self.C, self.S)
        bids = mult * self.base[self.t % HOURS][None, :, None]
        keys = jax.random.split(jax.random.fold_in(self.key, self.t), self.n)
        budget = jnp.full(self.n, self.budget, jnp.float32)
        self.state, out = self.batch.step(self.p, self.persons, self.state, bids, keys, budget)
        h = np.stack([np.asarray(x, float) for x in out])  # (4, n)
        self.hist[:, :, self.t] = h
        self.spend += h[0]
        reward = h[3].copy()
        self.t += 1
        done = self.t >= self.horizon
        if done and self.follow_days > 0:
            reward += np.asarray(self.batch.follow(self.p, self.persons, self.state), float)
        return reward, np.full(self.n, done)

    def observe(self) -> np.ndarray:
        return observation(
            self.hist, self.t, self.spend, self.budget, self.days, self.arrivals, self.delay
        )

    def info(self, i: int) -> dict[str, Any]:
        return {
            "draw": int(self.draw[i]),
            "hour": int(self.t),
            "spend": float(self.spend[i]),
            "conversions": float(self.hist[3, i, : self.t].sum()),
        }


_DOC_ARGS = """
    Parameters
    ----------
    params
        A :class:`SimParams` (one set, or draws: each episode picks one at
        random); default: the example world's true parameters at 100
        arrivals per day.
    days
        Hours of decisions = ``days x 24`` steps per episode.
    budget
        Total budget per episode (default: half a rough estimate of what
        bidding ``base_bids`` everywhere would spend).
    base_bids
        ``(24, C)`` bid for multiplier 1 (default: competing-bid median).
    max_multiplier
        Upper bound of the action box.
    follow_days
        Days without ads whose conversions are added to the last reward.
    report_delay_hours
        Conversions are observed this many hours after they happen.
    mode
        Simulator mode (``"sample"``, ``"rb"`` or ``"mean"``).
"""


class BidPlanningEnv(gym.Env):
    __doc__ = "Hourly bid multipliers per channel x segment against a simulated market.\n" + (
        _DOC_ARGS
    )

    metadata: ClassVar[dict] = {"render_modes": []}

    def __init__(
        self,
        params: SimParams | None = None,
        *,
        days: int = 7,
        budget: float | None = None,
        base_bids: np.ndarray | None = None,
        max_multiplier: float = 3.0,
        follow_days: int = 7,
        report_delay_hours: int = 6,
        mode: str = "sample",
    ):
        self._ep = _Episodes(
            params, 1, days, budget, base_bids, max_multiplier, follow_days,
            report_delay_hours, mode,
        )  # fmt: skip
        C, S = self._ep.C, self._ep.S
        self.action_space = spaces.Box(0.0, self._ep.max_multiplier, (C, S), np.float32)
        self.observation_space = spaces.Box(0.0, _OBS_HIGH, (len(OBS_FIELDS),), np.float32)
        self.channels, self.segments = self._ep.params.channels, self._ep.params.segments
        self._started = False

    @property
    def budget(self) -> float:
        return self._ep.budget

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._ep.reset(self.np_random)
        self._started = True
        return self._ep.observe()[0], self._ep.info(0)

    def step(self, action):
        if not self._started:
            raise RuntimeError("call reset() before step()")
        reward, done = self._ep.step(np.asarray(action)[None])
        terminated = bool(done[0])
        if terminated:
            self._started = False
        return self._ep.observe()[0], float(reward[0]), terminated, False, self._ep.info(0)


class BidPlanningVectorEnv(VectorEnv):
    __doc__ = "``num_envs`` posterior draws at once (jax.vmap), next-step autoreset.\n" + (
        _DOC_ARGS
    )

    metadata: ClassVar[dict] = {"render_modes": [], "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(
        self,
        num_envs: int = 4,
        params: SimParams | None = None,
        *,
        days: int = 7,
        budget: float | None = None,
        base_bids: np.ndarray | None = None,
        max_multiplier: float = 3.0,
        follow_days: int = 7,
        report_delay_hours: int = 6,
        mode: str = "sample",
    ):
        self._ep = _Episodes(
            params, num_envs, days, budget, base_bids, max_multiplier, follow_days,
            report_delay_hours, mode,
        )  # fmt: skip
        self.num_envs = num_envs
        C, S = self._ep.C, self._ep.S
        self.single_action_space = spaces.Box(0.0, self._ep.max_multiplier, (C, S), np.float32)
        self.single_observation_space = spaces.Box(0.0, _OBS_HIGH, (len(OBS_FIELDS),), np.float32)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, num_envs)
        self.observation_space = gym.vector.utils.batch_space(
            self.single_observation_space, num_envs
        )
        self._autoreset = False

    def _infos(self) -> dict[str, Any]:
        rows = [self._ep.info(i) for i in range(self.num_envs)]
        return {k: np.array([r[k] for r in rows]) for k in rows[0]}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self._np_random, self._np_random_seed = gym.utils.seeding.np_random(seed)
        self._ep.reset(self.np_random)
        self._autoreset = False
        return self._ep.observe(), self._infos()

    def step(self, actions):
        n = self.num_envs
        if self._autoreset:  # next-step autoreset: every copy ended together
            self._ep.reset(self.np_random)
            self._autoreset = False
            zeros = np.zeros(n, bool)
            return self._ep.observe(), np.zeros(n), zeros, zeros.copy(), self._infos()
        reward, done = self._ep.step(np.asarray(actions))
        self._autoreset = bool(done.all())
        return self._ep.observe(), reward, done, np.zeros(n, bool), self._infos()
