"""Plans from a fitted bundle vs the oracle, executed in the TRUE world's simulator.

Used by the slow tests (tests/test_plan_slow.py) and benchmarks: the plan
and the baselines are computed from the bundle (as ``gaelp-bayes plan``
does), the oracle by the same planner from the world's true parameters
(:func:`gaelp_bayes.sim.from_world`); every schedule is then executed in the
true world (same persons for every schedule), with the budget stop.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class Comparison:
    truth: dict[str, dict[str, np.ndarray]]  # per schedule: per-replicate true-world totals
    summary: dict[str, Any]  # the plan summary (posterior intervals)
    budget: float
    days: int


def compare_in_truth(
    world: str | Path,
    bundle: str | Path,
    budget: float,
    days: int,
    out: str | Path,
    *,
    seed: int = 0,
    replicates: int = 8,
    mode: str = "sample",
    **plan_kw: Any,
) -> Comparison:
    """Plan from ``bundle`` (with baselines), the oracle from ``world``; execute all in truth."""
    from gaelp_bayes.plan.baselines import oracle
    from gaelp_bayes.plan.evaluate import simulate_schedules
    from gaelp_bayes.plan.run import run_plan
    from gaelp_bayes.sim import from_world

    res = run_plan(bundle, budget, days, out, seed=seed, **plan_kw)
    truth = from_world(world)
    # the bundle's channel/segment order may differ from the world's: align by name
    ci = [res.channels.index(c) for c in truth.channels]
    si = [res.segments.index(s) for s in truth.segments]

    def aligned(b: np.ndarray) -> np.ndarray:
        return np.asarray(b)[:, :, ci][:, :, :, si]

    schedules = {name: aligned(b) for name, b in res.schedules.items()}
    schedules["oracle"] = oracle(truth, budget, days)
    ev = simulate_schedules(
        truth,
        schedules,
        budget,
        seed=seed + 1000,
        replicates=replicates,
        mode=mode,
        max_persons=None,
    )
    return Comparison(ev.totals, res.summary, float(budget), int(days))
