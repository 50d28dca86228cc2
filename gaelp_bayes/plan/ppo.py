"""Model-free baseline: a PPO agent trained in the posterior simulator (``rl`` extra).

The agent never sees the model's parameters: it learns hourly bid
multipliers per channel x segment from the rewards of the Gymnasium
environment ``gaelp_bayes/BidPlanning-v0`` (:mod:`gaelp_bayes.sim.env`), in
which each episode draws one posterior draw of the bundle and a fresh
population. It is then executed in the true world by
:func:`gaelp_bayes.plan.loop.run_loop` as an *hourly* policy: every hour it
gets the advertiser's view (:func:`gaelp_bayes.sim.env.observation`: spend,
wins and clicks so far, conversions reported with a delay) and returns the
next hour's bids. This is the issue's model-free RL baseline; it shows what
the same simulator buys without planning (docs/planner.md).

stable-baselines3 and torch come with the ``rl`` extra
(``pip install -e ".[rl]"``; torch is pinned to the CPU wheel).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gaelp_bayes.sim.params import HOURS, SimParams


def _require_sb3():
    try:
        import stable_baselines3 as sb3
    except ImportError as e:  # pragma: no cover - depends on the optional extra
        from gaelp_bayes.errors import GaelpError

        raise GaelpError(
            'the PPO baseline needs the "rl" extra: pip install -e ".[rl]" '
            "(stable-baselines3 and the CPU build of torch)"
        ) from e
    return sb3


@dataclass
class PPOPolicy:
    """A trained agent as an hourly policy of :func:`~gaelp_bayes.plan.loop.run_loop`."""

    model: Any  # stable_baselines3.PPO
    normalizer: Any  # VecNormalize with frozen statistics (observations)
    base: np.ndarray  # (24, C) bid for multiplier 1
    budget: float
    days: int
    arrivals: float  # expected persons per day under the posterior (observation scale)
    delay: int  # hours before a conversion is reported
    max_multiplier: float
    hourly: bool = field(default=True, init=False)

    def __call__(self, t: int, history: np.ndarray) -> np.ndarray:
        """Bids ``(C, S)`` for hour ``t`` given hourly ``history`` ``(4, t)``.

        ``history`` rows: spend, wins, clicks, conversions of the hours so far.
        """
        from gaelp_bayes.sim.env import observation

        hist = np.zeros((4, 1, self.days * HOURS))
        hist[:, 0, :t] = history[:, :t]
        obs = observation(
            hist, t, np.array([history[0, :t].sum()]), self.budget, self.days,
            self.arrivals, self.delay,
        )  # fmt: skip
        obs = self.normalizer.normalize_obs(obs)
        a, _ = self.model.predict(obs, deterministic=True)
        mult = self.max_multiplier * (np.clip(np.asarray(a, float)[0], -1.0, 1.0) + 1.0) / 2.0
        return (mult * self.base[t % HOURS][:, None]).astype(np.float32)


def train_ppo(
    params: SimParams,
    budget: float,
    days: int,
    *,
    steps: int = 20_000,
    seed: int = 0,
    follow_days: int = 30,
    report_delay_hours: int = 6,
    max_multiplier: float = 4.0,
    gamma: float = 0.999,
    max_persons: float | None = 1500.0,
    verbose: int = 0,
) -> PPOPolicy:
    """Train PPO for ``steps`` hourly steps on episodes of posterior draws of ``params``.

    Actions are rescaled to ``[-1, 1]`` (multiplier ``0 .. max_multiplier``
    of the posterior's competing-bid median, so the untrained policy bids
    about twice that median); observations and rewards are normalised
    (``VecNormalize``). One rollout is one episode (``days x 24`` steps);
    ``gamma`` close to one because conversions come days after the touch,
    and the last step also collects ``follow_days`` days of conversions.

    Training episodes simulate at most ``max_persons`` expected persons: a
    fraction ``f`` of every arrival rate and of the budget
    (:func:`gaelp_bayes.plan.evaluate.subsample`, as the plan summary does). The observations
    are relative to the budget and to the arrivals, so they keep their
    scale; the returned policy acts at full scale.
    """
    sb3 = _require_sb3()
    import gymnasium as gym
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    from gaelp_bayes.plan.evaluate import subsample
    from gaelp_bayes.sim.env import BidPlanningEnv

    small, f = subsample(params, days, max_persons)

    def make():
        env = BidPlanningEnv(
            small, days=days, budget=budget * f, max_multiplier=max_multiplier,
            follow_days=follow_days, report_delay_hours=report_delay_hours,
        )  # fmt: skip
        return gym.wrappers.RescaleAction(env, np.float32(-1.0), np.float32(1.0))

    venv = VecNormalize(DummyVecEnv([make]), norm_obs=True, norm_reward=True, gamma=gamma)
    venv.seed(seed)
    inner = venv.venv.envs[0].unwrapped
    horizon = days * HOURS
    n_steps = horizon
    batch = next(b for b in (96, 64, 48, 32, 24, 16, 8, 1) if n_steps % b == 0)
    model = sb3.PPO(
        "MlpPolicy", venv, n_steps=n_steps, batch_size=batch, gamma=gamma,
        gae_lambda=0.98, seed=seed, verbose=verbose, device="cpu",
    )  # fmt: skip
    # a logger of our own: SB3's default one creates a folder under /tmp on every run
    from stable_baselines3.common.logger import HumanOutputFormat, Logger

    model.set_logger(Logger(None, [HumanOutputFormat(sys.stdout)] if verbose else []))
    model.learn(total_timesteps=max(int(steps), n_steps))
    venv.training = False
    return PPOPolicy(
        model=model,
        normalizer=venv,
        base=np.asarray(inner._ep.base, np.float32),
        budget=float(budget),
        days=int(days),
        arrivals=float(inner._ep.arrivals) / f,
        delay=int(report_delay_hours),
        max_multiplier=float(max_multiplier),
    )
