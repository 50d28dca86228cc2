"""`gaelp-bayes plan`: a bid schedule from a fitted bundle, with its summary."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gaelp_bayes.cli.options import Quiet, console, err_console, handle_errors, show_progress

DEFAULT_DRAWS = 32  # = gaelp_bayes.plan.run.DEFAULT_DRAWS (not imported: keeps --help fast)
DEFAULT_EVAL_DRAWS = 24


def _names(value: str | None) -> list[str] | None:
    return None if value is None else [v.strip() for v in value.split(",")]


def _compilation_cache() -> None:
    """Keep JAX's compiled planner and simulator between runs (a cold run compiles ~20-40 s).

    ``GAELP_BAYES_JAX_CACHE`` names the folder (default ``~/.cache/gaelp-bayes/jax``);
    ``GAELP_BAYES_JAX_CACHE=off`` disables it.
    """
    import os

    where = os.environ.get("GAELP_BAYES_JAX_CACHE", str(Path.home() / ".cache/gaelp-bayes/jax"))
    if where.lower() in ("off", "0", "none", ""):
        return
    try:
        Path(where).mkdir(parents=True, exist_ok=True)
        from gaelp_bayes.inference import setup_jax

        setup_jax()
        import jax

        if not jax.config.jax_compilation_cache_dir:
            jax.config.update("jax_compilation_cache_dir", where)
            jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
    except OSError:  # a read-only home: run without the cache
        return


@handle_errors
def plan(
    bundle: Annotated[Path, typer.Argument(help="Bundle folder written by `gaelp-bayes fit`.")],
    budget: Annotated[float, typer.Option("--budget", help="Total budget over the plan.")],
    days: Annotated[int, typer.Option("--days", help="Days of the plan (horizon).")],
    out: Annotated[Path, typer.Option("--out", help="Schedule CSV to write (+ its .json).")],
    objective: Annotated[
        str,
        typer.Option(
            "--objective",
            help="conversions: most expected eventual conversions; cac: lowest expected "
            "cost per conversion among plans that spend the budget.",
        ),
    ] = "conversions",
    risk_alpha: Annotated[
        float,
        typer.Option(
            "--risk-alpha",
            help="CVaR level over posterior draws: plan for the mean of the worst "
            "alpha share of draws (1 = the posterior mean).",
        ),
    ] = 1.0,
    seed: Annotated[int, typer.Option("--seed", help="Random seed (same seed, same plan).")] = 0,
    draws: Annotated[
        int, typer.Option("--draws", help="Posterior draws the planner optimises against.")
    ] = DEFAULT_DRAWS,
    eval_draws: Annotated[
        int, typer.Option("--eval-draws", help="Other posterior draws the summary simulates.")
    ] = DEFAULT_EVAL_DRAWS,
    channels: Annotated[
        str | None, typer.Option("--channels", help="Comma-separated channels to bid on.")
    ] = None,
    segments: Annotated[
        str | None, typer.Option("--segments", help="Comma-separated segments to bid on.")
    ] = None,
    no_baselines: Annotated[
        bool, typer.Option("--no-baselines", help="Skip the baselines (faster).")
    ] = False,
    quiet: Quiet = False,
) -> None:
    """Plan bids per channel, segment, day and hour under the budget; write SCHEDULE.csv/.json."""
    from gaelp_bayes.cli.options import existing_path
    from gaelp_bayes.plan.run import check_request, run_plan

    check_request(budget, days, risk_alpha, objective)
    existing_path(bundle, "BUNDLE_DIR")
    _compilation_cache()
    show = show_progress(quiet)

    def progress(msg: str) -> None:
        if show:
            err_console.print(f"[dim]{msg}...[/dim]")

    res = run_plan(
        bundle,
        budget,
        days,
        out,
        objective=objective,
        risk_alpha=risk_alpha,
        seed=seed,
        draws=draws,
        eval_draws=eval_draws,
        channels=_names(channels),
        segments=_names(segments),
        baselines=not no_baselines,
        progress=progress,
    )
    if quiet:
        return
    s = res.summary

    def fmt(iv) -> str:
        if iv is None:
            return "n/a"
        return f"{iv['mean']:.4g} (90%: {iv['q05']:.4g} to {iv['q95']:.4g})"

    console.print(f"schedule written to {res.schedule_path} (summary: {res.summary_path})")
    console.print(f"budget {s['budget']:g} over {s['days']} days from {s['start']}")
    for k in ("spend", "conversions", "incremental_conversions", "cac", "incremental_cac"):
        console.print(f"  {k:24s} {fmt(s[k])}")
    for name, b in s.get("baselines", {}).items():
        console.print(f"  baseline {name:15s} conversions {fmt(b['conversions'])}")
