"""`gaelp-bayes quickstart`: the main job end to end on a small example world.

For now: example-data -> validate. fit, report and plan join as they land.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gaelp_bayes.cli.example_data import run_example_data
from gaelp_bayes.cli.options import Quiet, Seed, console, handle_errors


@handle_errors
def quickstart(
    out: Annotated[
        Path, typer.Option("--out", help="Folder for everything quickstart writes.")
    ] = Path("gaelp-quickstart"),
    persons: Annotated[
        int, typer.Option("--persons", min=100, help="Size of the example world.")
    ] = 3000,
    days: Annotated[int, typer.Option("--days", min=7, help="Days of example data.")] = 45,
    seed: Seed = 0,
    quiet: Quiet = False,
) -> None:
    """Run example-data and validate on a small world, then say where everything is."""
    from gaelp_bayes.io import read_auctions, read_events

    data = out / "data"
    paths = run_example_data(data, "parental-controls", persons, days, seed, "canonical", quiet)
    events = read_events(paths["events"], mode="strict")
    auctions = read_auctions(paths["auctions"], mode="strict")
    console.print(events.report.render(), markup=False)
    console.print(auctions.report.render(), markup=False)
    console.print("")
    console.print(f"quickstart done. Everything is under {out}/:")
    console.print(f"  SYNTHETIC example data  {paths['events']}, {paths['auctions']}")
    console.print(f"  ground truth            {paths['truth']}/")
    console.print(
        f"  events: {len(events.table):,} rows valid, auctions: {len(auctions.table):,} rows valid"
    )
    console.print("Next: gaelp-bayes validate " + str(paths["events"]))
