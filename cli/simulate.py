"""`gaelp-bayes simulate`: posterior-predictive outcome of a bid schedule."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from gaelp_bayes.cli.options import Quiet, err_console, handle_errors, show_progress


@handle_errors
def simulate(
    bundle: Annotated[Path, typer.Argument(help="Bundle folder written by `gaelp-bayes fit`.")],
    schedule: Annotated[
        Path, typer.Option("--schedule", help="Schedule CSV: day, hour, channel, segment, bid.")
    ],
    budget: Annotated[float, typer.Option("--budget", help="Total budget (> 0).")],
    days: Annotated[int, typer.Option("--days", help="Days of the schedule to run (> 0).")],
    draws: Annotated[
        int, typer.Option("--draws", help="Posterior draws to simulate (one rollout each).")
    ] = 50,
    seed: Annotated[int, typer.Option("--seed", help="Random seed (same seed, same output).")] = 0,
    mode: Annotated[
        str,
        typer.Option(
            "--mode",
            help="sample (posterior predictive, default), rb (conversion noise integrated "
            "out) or mean (expected wins and prices too).",
        ),
    ] = "sample",
    quiet: Quiet = False,
) -> None:
    """Simulate a schedule under posterior draws of a bundle's market and attribution models.

    Prints one JSON object (data contract section 6): spend, conversions,
    incremental_conversions, cac and incremental_cac, each as a 90% interval
    over draws, for the persons arriving during DAYS followed 30 more days.
    """
    from gaelp_bayes.errors import GaelpError, UsageError

    problems = []
    if not budget > 0:
        problems.append(f"--budget must be > 0, got {budget:g}")
    if days <= 0:
        problems.append(f"--days must be > 0, got {days}")
    if draws <= 0:
        problems.append(f"--draws must be > 0, got {draws}")
    if mode not in ("sample", "rb", "mean"):
        raise UsageError(f"--mode must be sample, rb or mean, got {mode!r}")
    if problems:
        raise GaelpError("; ".join(problems))
    out = run_simulation(
        bundle, schedule, budget, days, draws=draws, seed=seed, mode=mode, quiet=quiet
    )
    typer.echo(json.dumps(out, indent=2))


def run_simulation(
    bundle: Path,
    schedule: Path,
    budget: float,
    days: int,
    *,
    draws: int = 50,
    seed: int = 0,
    mode: str = "sample",
    quiet: bool = True,
    chunk: int = 10,
) -> dict:
    """What the command prints, as a dict (also used by tests and the planner)."""
    import numpy as np

    from gaelp_bayes.bundle import load_bundle
    from gaelp_bayes.cli.options import existing_path
    from gaelp_bayes.errors import InputNotFoundError
    from gaelp_bayes.sim.bundle import from_bundle, summarize
    from gaelp_bayes.sim.params import as_jax, take
    from gaelp_bayes.sim.schedule import read_schedule

    existing_path(bundle, "bundle folder")
    if not schedule.exists():
        raise InputNotFoundError(f"schedule file {schedule} does not exist; check the path")
    b = load_bundle(bundle)
    params = from_bundle(b, draws=draws, seed=seed)
    bids = read_schedule(schedule, params.channels, params.segments, days)

    import jax

    from gaelp_bayes.sim.core import capacity, simulate_draws, totals

    n_max = capacity(params, days)
    key = jax.random.key(seed)
    parts: list[dict] = []
    progress = show_progress(quiet)
    status = err_console.status("simulating", spinner="dots") if progress else None
    if status:
        status.start()
    try:
        size = min(chunk, draws)
        for i, start in enumerate(range(0, draws, size)):
            # equal chunks (the last one padded, padding dropped): one compilation
            idx = np.minimum(np.arange(start, start + size), draws - 1)
            keep = min(size, draws - start)
            sub = as_jax(take(params, idx))
            out = simulate_draws(
                sub, bids, float(budget), jax.random.fold_in(key, i), n_max=n_max, mode=mode
            )
            res = {k: np.asarray(v)[:keep] for k, v in totals(out).items()}
            res["persons"] = np.asarray(out.persons)[:keep]
            parts.append(res)
            if status:
                status.update(f"simulating: {min(start + chunk, draws)}/{draws} draws")
    finally:
        if status:
            status.stop()
    tot = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    persons = float(tot.pop("persons").mean())
    summary = summarize(tot)
    for key_ in ("cac", "incremental_cac"):
        if not np.isfinite(summary[key_]["mean"]):
            summary[key_] = {"mean": None, "q05": None, "q95": None}
    return {
        "budget": float(budget),
        "days": int(days),
        "start": b.as_of.strftime("%Y-%m-%d"),
        **summary,
        "draws": int(draws),
        "mode": mode,
        "follow_days": 30,
        "persons": persons,
    }
