"""Posterior-sampled journey simulator in JAX and its Gymnasium environment (issue 8).

Public API (see docs/simulator.md):

- :class:`SimParams`, :func:`from_world`, :func:`from_bundle`, :func:`as_jax`,
  :func:`stack`, :func:`take`, :func:`mean_params` — parameters;
- :func:`simulate`, :func:`simulate_draws`, :func:`rollout`, :func:`step`,
  :func:`follow_up` (closed-form days without ads), :func:`kernel_ops`,
  :func:`init_state`, :func:`sample_persons`, :func:`capacity`, :func:`totals`,
  :class:`Outcome` — the simulator (JAX; importing it configures JAX for the CPU);
- :func:`read_schedule`, :func:`schedule_array` — schedule CSV <-> bids array;
- :class:`BidPlanningEnv`, :class:`BidPlanningVectorEnv` — the Gymnasium
  environment, registered as ``gaelp_bayes/BidPlanning-v0`` when this package
  is imported (``gymnasium.make("gaelp_bayes/BidPlanning-v0")``).

The simulator functions are imported lazily so that ``import gaelp_bayes.sim``
does not start JAX.
"""

from __future__ import annotations

from typing import Any

from gaelp_bayes.sim.params import (
    SimParams,
    as_jax,
    from_world,
    logged_policy,
    mean_params,
    stack,
    take,
    world_params,
)

_CORE = {
    "simulate",
    "simulate_draws",
    "rollout",
    "step",
    "follow_up",
    "kernel_ops",
    "init_state",
    "sample_persons",
    "capacity",
    "totals",
    "Outcome",
    "HourOutcome",
    "PersonOutcome",
    "Persons",
    "SimState",
    "FOLLOW_DAYS",
}
_LAZY = {
    "from_bundle": "gaelp_bayes.sim.bundle",
    "read_schedule": "gaelp_bayes.sim.schedule",
    "schedule_array": "gaelp_bayes.sim.schedule",
    "summarize": "gaelp_bayes.sim.bundle",
    "BidPlanningEnv": "gaelp_bayes.sim.env",
    "BidPlanningVectorEnv": "gaelp_bayes.sim.env",
}

ENV_ID = "gaelp_bayes/BidPlanning-v0"


def register_env() -> None:
    """Register ``gaelp_bayes/BidPlanning-v0`` with Gymnasium (idempotent, no JAX import)."""
    try:
        import gymnasium
    except ImportError:  # pragma: no cover - gymnasium is a core dependency
        return
    if ENV_ID not in gymnasium.registry:
        gymnasium.register(
            id=ENV_ID,
            entry_point="gaelp_bayes.sim.env:BidPlanningEnv",
            vector_entry_point="gaelp_bayes.sim.env:BidPlanningVectorEnv",
        )


register_env()


def __getattr__(name: str) -> Any:
    import importlib

    if name in _CORE:
        return getattr(importlib.import_module("gaelp_bayes.sim.core"), name)
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'gaelp_bayes.sim' has no attribute {name!r}")


__all__ = [
    "ENV_ID",
    "register_env",
    "SimParams",
    "as_jax",
    "from_world",
    "logged_policy",
    "mean_params",
    "stack",
    "take",
    "world_params",
    *sorted(_CORE),
    *sorted(_LAZY),
]
