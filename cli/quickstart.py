"""`gaelp-bayes quickstart`: the main job end to end on a small example world.

example-data -> validate -> fit -> report -> plan. The plan's default budget
is the data's own spend rate (total cost / days of data) times the plan's
days, so it asks "what would the same money buy if bid by the plan?".
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Annotated

import typer

from gaelp_bayes.cli.example_data import run_example_data
from gaelp_bayes.cli.options import Quiet, Seed, console, err_console, handle_errors, show_progress
from gaelp_bayes.errors import UsageError


def _fmt(i: dict, pct: bool = False) -> str:
    f = (lambda x: f"{100 * x:.1f}%") if pct else (lambda x: f"{x:.3g}")
    return f"{f(i['mean'])} (90% {f(i['q05'])}-{f(i['q95'])})"


@handle_errors
def quickstart(
    out: Annotated[
        Path, typer.Option("--out", help="Folder for everything quickstart writes.")
    ] = Path("gaelp-quickstart"),
    persons: Annotated[
        int, typer.Option("--persons", min=100, help="Size of the example world.")
    ] = 3000,
    days: Annotated[int, typer.Option("--days", min=7, help="Days of example data.")] = 45,
    draws: Annotated[int, typer.Option("--draws", min=50, help="Posterior draws per chain.")] = 500,
    plan_days: Annotated[
        int, typer.Option("--plan-days", min=1, help="Days of the bid plan at the end.")
    ] = 7,
    budget: Annotated[
        float | None,
        typer.Option(
            "--budget",
            help="Plan budget (default: the data's spend per day x --plan-days).",
        ),
    ] = None,
    seed: Seed = 0,
    quiet: Quiet = False,
) -> None:
    """Run example-data, validate, fit, report and plan on a small synthetic world."""
    from gaelp_bayes import pipeline
    from gaelp_bayes.bundle import load_bundle
    from gaelp_bayes.config import load_config
    from gaelp_bayes.errors import ConvergenceWarning
    from gaelp_bayes.io import read_auctions, read_events
    from gaelp_bayes.progress import steps
    from gaelp_bayes.report import build_report

    if budget is not None and not budget > 0:
        raise UsageError(f"--budget must be a positive amount, got {budget}")
    data = out / "data"
    paths = run_example_data(data, "parental-controls", persons, days, seed, "canonical", quiet)
    events = read_events(paths["events"], mode="strict")
    auctions = read_auctions(paths["auctions"], mode="strict")
    if not quiet:
        console.print(events.report.render(), markup=False)
        console.print(auctions.report.render(), markup=False)
    cfg = load_config(None, draws=draws, tune=draws, seed=seed)
    with warnings.catch_warnings(record=True) as caught, steps(show_progress(quiet)) as step:
        warnings.simplefilter("always", ConvergenceWarning)
        bundle_dir = pipeline.fit(
            paths["events"], out / "bundle", config=cfg, auctions_path=paths["auctions"], step=step
        )
        report = build_report(bundle_dir, out / "report.html", truth=paths["truth"], step=step)
        plan = None
        bundle = load_bundle(bundle_dir)
        explicit = budget is not None
        if budget is None:
            budget = _spend_per_day(events.table) * plan_days
        if {"market", "attribution"} <= set(bundle.models) and (explicit or budget > 0):
            from gaelp_bayes.plan.run import run_plan

            step(f"planning {plan_days} days with a budget of {budget:,.2f}")
            plan = run_plan(
                bundle, budget, plan_days, out / "plan" / "schedule.csv", seed=seed, progress=step
            )
    for w in caught:
        if issubclass(w.category, ConvergenceWarning):
            err_console.print(f"WARNING: {w.message}", markup=False)
    s = bundle.summary
    console.print("")
    console.print("Headline posteriors (SYNTHETIC example world; compare with truth/):")
    for seg, v in s.get("latency", {}).get("segments", {}).items():
        console.print(
            f"  latency  {seg:18s} P(convert) {_fmt(v['p_convert'], pct=True)}, "
            f"median {_fmt(v['median_days'])} days"
        )
    for ch, v in s.get("market", {}).get("channels", {}).items():
        console.print(
            f"  market   {ch:18s} competing bid median {_fmt(v['competing_bid_median'])}, "
            f"CTR {_fmt(v['ctr'], pct=True)}"
        )
    for ch, v in s.get("attribution", {}).get("channels", {}).items():
        console.print(
            f"  attrib.  {ch:18s} incremental {_fmt(v['incremental'])}, "
            f"attributed {_fmt(v['attributed'])} conversions"
        )
    if plan is not None:
        p = plan.summary
        console.print(
            f"  plan     {plan_days} days, budget {p['budget']:,.2f}: spend {_fmt(p['spend'])}, "
            f"conversions {_fmt(p['conversions'])}, incremental "
            f"{_fmt(p['incremental_conversions'])}, CAC {_fmt(p['cac'])}"
        )
        for name, b in (p.get("baselines") or {}).items():
            console.print(
                f"           baseline {name:22s} conversions {_fmt(b['conversions'])}, "
                f"spend {_fmt(b['spend'])}"
            )
    console.print("")
    console.print(f"quickstart done. Everything is under {out}/:")
    console.print(f"  SYNTHETIC example data  {paths['events']}, {paths['auctions']}")
    console.print(f"  ground truth            {paths['truth']}/")
    console.print(f"  model bundle            {bundle_dir}/ (models: {', '.join(bundle.models)})")
    console.print(f"  diagnostics report      {report}")
    if plan is not None:
        console.print(
            f"  bid plan                {plan.schedule_path} (+ {plan.summary_path.name})"
        )
    console.print(
        f"  events: {len(events.table):,} rows valid, auctions: {len(auctions.table):,} rows valid"
    )


def _spend_per_day(events) -> float:
    """Total cost in the data per day of data (0 when the data has no costs)."""
    if "cost" not in events.columns or events.empty:
        return 0.0
    span = (events["timestamp"].max() - events["timestamp"].min()).total_seconds() / 86_400
    return float(events["cost"].fillna(0).sum()) / max(span, 1.0)
