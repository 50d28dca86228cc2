"""`gaelp-bayes fit`: fit the models on exported data and write a bundle."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Annotated

import typer

from gaelp_bayes.cli.options import (
    InputFormat,
    Quiet,
    console,
    err_console,
    handle_errors,
    show_progress,
)


@handle_errors
def fit(
    events: Annotated[Path, typer.Argument(help="Events file or folder (CSV, Parquet).")],
    out: Annotated[Path, typer.Option("--out", help="Bundle folder to write.")],
    auctions: Annotated[Path | None, typer.Option("--auctions", help="Auction log.")] = None,
    fmt: InputFormat = "auto",
    models: Annotated[
        str | None,
        typer.Option("--models", help="Comma-separated: identity,latency,attribution,market."),
    ] = None,
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="End of observation (default: last event).")
    ] = None,
    config: Annotated[Path | None, typer.Option("--config", help="TOML configuration.")] = None,
    chains: Annotated[int | None, typer.Option("--chains", min=1)] = None,
    draws: Annotated[int | None, typer.Option("--draws", min=1)] = None,
    tune: Annotated[int | None, typer.Option("--tune", min=0)] = None,
    seed: Annotated[int | None, typer.Option("--seed")] = None,
    backend: Annotated[
        str | None, typer.Option("--backend", help="numpyro (default) or pymc.")
    ] = None,
    strict: Annotated[
        bool, typer.Option("--strict", help="Exit 1 when diagnostics fail the policy.")
    ] = False,
    mapping: Annotated[
        Path | None,
        typer.Option("--mapping", help="Export mapping TOML for GA4/PostHog/Criteo input."),
    ] = None,
    quiet: Quiet = False,
) -> None:
    """Fit the chosen models (default: all that are available) and write a bundle."""
    from gaelp_bayes import pipeline
    from gaelp_bayes.bundle import load_bundle
    from gaelp_bayes.cli.options import existing_path
    from gaelp_bayes.config import load_config
    from gaelp_bayes.errors import ConvergenceWarning, GaelpError
    from gaelp_bayes.io.exports import use_mapping
    from gaelp_bayes.progress import steps

    existing_path(events, "EVENTS")
    if auctions is not None:
        existing_path(auctions, "--auctions")
    cfg = load_config(config, chains=chains, draws=draws, tune=tune, seed=seed, backend=backend)
    chosen = pipeline.parse_models(models)
    if mapping is not None:
        existing_path(mapping, "--mapping file")
    with (
        warnings.catch_warnings(record=True) as caught,
        steps(show_progress(quiet)) as step,
        use_mapping(mapping),
    ):
        warnings.simplefilter("always", ConvergenceWarning)
        path = pipeline.fit(
            events,
            out,
            config=cfg,
            models=chosen,
            as_of=as_of,
            auctions_path=auctions,
            fmt=fmt,
            step=step,
        )
    poor = [w for w in caught if issubclass(w.category, ConvergenceWarning)]
    for w in poor:
        err_console.print(f"[bold yellow]WARNING:[/bold yellow] {w.message}")
    bundle = load_bundle(path)
    if not quiet:
        console.print(f"bundle written to {path}")
        console.print(json.dumps(bundle.manifest["diagnostics"], indent=1))
        secs = bundle.manifest.get("fit_seconds") or {}
        if secs:
            console.print("fit time: " + ", ".join(f"{k} {v:.0f} s" for k, v in secs.items()))
    if poor and strict:
        raise GaelpError("diagnostics outside the policy (see warnings above); --strict")
