"""``run_plan``: bundle -> schedule CSV + summary JSON (data contract sections 3 and 6)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gaelp_bayes.errors import GaelpError, InputNotFoundError

DEFAULT_DRAWS = 32
DEFAULT_EVAL_DRAWS = 24


class PlanInputError(GaelpError):
    """A plan request that cannot be satisfied (budget, horizon, names)."""


@dataclass
class PlanOutput:
    """What :func:`run_plan` wrote and computed."""

    schedule_path: Path
    summary_path: Path
    summary: dict[str, Any]
    bids: np.ndarray  # (days, 24, C, S)
    channels: tuple[str, ...]
    segments: tuple[str, ...]
    schedules: dict[str, np.ndarray]  # the plan and every baseline, as simulated


def check_request(budget: float, days: int, risk_alpha: float, objective: str) -> None:
    """Refuse impossible requests with one clear message each."""
    from gaelp_bayes.plan.planner import OBJECTIVES

    if not (isinstance(budget, int | float) and math.isfinite(budget) and budget > 0):
        raise PlanInputError(
            f"--budget must be a positive amount, got {budget}; "
            "give the total to spend over the plan's days, e.g. --budget 5000"
        )
    if int(days) != days or days <= 0:
        raise PlanInputError(
            f"--days must be a whole number of days >= 1, got {days}; e.g. --days 14"
        )
    if not (0 < risk_alpha <= 1):
        raise PlanInputError(
            f"--risk-alpha must be in (0, 1], got {risk_alpha}; 1 plans for the posterior "
            "mean, 0.2 for the average of the worst 20% of posterior draws"
        )
    if objective not in OBJECTIVES:
        raise PlanInputError(
            f"--objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}"
        )


def _select(names: Sequence[str] | None, known: tuple[str, ...], what: str) -> np.ndarray:
    """Mask of the known names to bid on; unknown names are an error listing the known ones."""
    if names is None:
        return np.ones(len(known), bool)
    wanted = [n.strip() for n in names if n.strip()]
    unknown = [n for n in wanted if n not in known]
    if unknown:
        raise PlanInputError(
            f"unknown {what} {', '.join(repr(u) for u in unknown)}: the bundle knows "
            f"{', '.join(known)}; pass some of those (comma-separated)"
        )
    if not wanted:
        raise PlanInputError(f"--{what}s is empty; pass some of: {', '.join(known)}")
    return np.isin(np.asarray(known), wanted)


def plan_start(as_of) -> str:
    """First day of the plan: the day of ``as_of`` if it is midnight, else the next day."""
    import pandas as pd

    ts = pd.Timestamp(as_of)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    day = ts.normalize()
    if ts > day:
        day = day + pd.Timedelta(days=1)
    return day.strftime("%Y-%m-%d")


def load_params(bundle: Any, draws: int, seed: int):
    """Posterior draws of the simulator's parameters from a bundle (folder or Bundle)."""
    from gaelp_bayes.bundle import Bundle, load_bundle
    from gaelp_bayes.sim import from_bundle

    b = bundle if isinstance(bundle, Bundle) else load_bundle(Path(bundle))
    missing = [m for m in ("market", "attribution") if m not in b.models]
    if missing:
        raise InputNotFoundError(
            f"bundle {b.path} has no {' and no '.join(missing)} model "
            f"(it has: {', '.join(b.models) or 'none'}); planning needs both. Refit with them: "
            "gaelp-bayes fit EVENTS --auctions AUCTIONS --models attribution,market --out ..."
        )
    return b, from_bundle(b, draws=draws, seed=seed)


def mask_bids(bids: np.ndarray, ch_mask: np.ndarray, seg_mask: np.ndarray) -> np.ndarray:
    return np.asarray(bids) * ch_mask[None, None, :, None] * seg_mask[None, None, None, :]


def restrict(params, ch_mask: np.ndarray, seg_mask: np.ndarray):
    """Parameters under which excluded channels / segments cannot be won (no opportunities)."""
    opp = np.asarray(params.opp_rate)
    m = seg_mask[:, None, None] & ch_mask[None, :, None]
    return params.replace(opp_rate=opp * m)


def run_plan(
    bundle: str | Path | Any,
    budget: float,
    days: int,
    out: str | Path,
    *,
    objective: str = "conversions",
    risk_alpha: float = 1.0,
    seed: int = 0,
    draws: int = DEFAULT_DRAWS,
    eval_draws: int = DEFAULT_EVAL_DRAWS,
    channels: Sequence[str] | None = None,
    segments: Sequence[str] | None = None,
    baselines: bool = True,
    max_persons: float | None = 1000.0,
    sim_mode: str = "mean",
    progress: Callable[[str], None] | None = None,
) -> PlanOutput:
    """Plan a bid schedule from a fitted bundle and write it with its summary.

    Writes ``out`` (the schedule CSV, data contract section 3) and
    ``out.with_suffix(".json")`` (the plan summary, section 6). The planner
    optimises against ``draws`` posterior draws (:mod:`gaelp_bayes.plan.planner`);
    the plan and every baseline are then simulated in the journey simulator
    under ``eval_draws`` *other* posterior draws, with the same persons and
    random numbers for every schedule, and the summary's intervals come from
    those simulations.

    Parameters
    ----------
    bundle
        Bundle folder (or loaded :class:`~gaelp_bayes.bundle.Bundle`) with the
        market and attribution models.
    budget, days
        Total budget (> 0) and horizon in days (>= 1).
    objective, risk_alpha
        ``"conversions"`` (default) or ``"cac"``; CVaR level over draws (1 = mean).
    channels, segments
        Restrict bidding to these names (default: all the bundle knows).
    baselines
        Also plan and simulate the baselines (``summary["baselines"]``).

    Examples
    --------
    >>> out = run_plan("bundle", 5000.0, 14, "plan/schedule.csv")  # doctest: +SKIP
    >>> out.summary["conversions"]["mean"]  # doctest: +SKIP
    """
    from gaelp_bayes.plan import baselines as bl
    from gaelp_bayes.plan import fluid
    from gaelp_bayes.plan.evaluate import simulate_schedules, summary_intervals
    from gaelp_bayes.plan.planner import plan_schedule
    from gaelp_bayes.sim.params import take
    from gaelp_bayes.sim.schedule import schedule_frame

    def say(msg: str) -> None:
        if progress is not None:
            progress(msg)

    check_request(budget, days, risk_alpha, objective)
    days = int(days)
    if draws < 1 or eval_draws < 1:
        raise PlanInputError(f"--draws must be >= 1, got {draws}")
    out = Path(out)
    if out.exists() and out.is_dir():
        raise PlanInputError(f"--out {out} is a folder; give a file name such as schedule.csv")
    say("reading the bundle")
    b, allp = load_params(bundle, draws + eval_draws, seed)
    ch_mask = _select(channels, allp.channels, "channel")
    seg_mask = _select(segments, allp.segments, "segment")
    # interleaved: planning and evaluation draws both span the posterior, none shared
    n = draws + eval_draws
    plan_idx = np.unique(np.round(np.linspace(0, n - 1, draws)).astype(int))
    eval_idx = np.setdiff1d(np.arange(n), plan_idx)
    plan_p = restrict(take(allp, plan_idx), ch_mask, seg_mask)
    eval_p = take(allp, eval_idx)
    say(f"planning against {draws} posterior draws")
    res = plan_schedule(plan_p, budget, days, objective=objective, risk_alpha=risk_alpha)
    schedules = {"plan": mask_bids(res.bids, ch_mask, seg_mask)}
    logged_source = None
    if baselines:
        say("planning the baselines")
        fd = fluid.prepare(plan_p, days)
        logged, logged_source = bl.logged_bids(b, allp.channels)
        base = bl.all_baselines(
            plan_p,
            budget,
            days,
            logged,
            seed=seed,
            fd=fd,
            planner_kw={"fluid_kwargs": None},
        )
        for name, bids in base.items():
            schedules[name] = mask_bids(bids, ch_mask, seg_mask)
    say(f"simulating {len(schedules)} schedule(s) under {eval_draws} posterior draws")
    ev = simulate_schedules(
        eval_p, schedules, budget, seed=seed, mode=sim_mode, max_persons=max_persons
    )
    plan_t = ev.totals["plan"]
    summary: dict[str, Any] = {
        "budget": float(budget),
        "days": days,
        "start": plan_start(b.as_of),
        **summary_intervals(plan_t),
        "baselines": {
            name: summary_intervals(t, ("spend", "conversions", "incremental_conversions", "cac"))
            for name, t in ev.totals.items()
            if name != "plan"
        },
        "objective": objective,
        "risk_alpha": float(risk_alpha),
        "seed": int(seed),
        "channels": [c for c, m in zip(allp.channels, ch_mask, strict=True) if m],
        "segments": [s for s, m in zip(allp.segments, seg_mask, strict=True) if m],
        "method": {
            "planner": "dual best response on the fluid model (docs/planner.md)",
            "planning_draws": int(draws),
            "evaluation_draws": int(eval_draws),
            "simulator_mode": ev.mode,
            "population_fraction": ev.fraction,
            "budget_stop_share": float(np.mean(plan_t["stop_hour"] >= 0)),
            "logged_bids": logged_source,
        },
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    frame = schedule_frame(schedules["plan"], allp.channels, allp.segments)
    frame.to_csv(out, index=False)
    spath = out.with_suffix(".json")
    spath.write_text(json.dumps(summary, indent=2, allow_nan=False) + "\n")
    return PlanOutput(
        out, spath, summary, schedules["plan"], allp.channels, allp.segments, schedules
    )
