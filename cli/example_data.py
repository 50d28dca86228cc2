"""`gaelp-bayes example-data`: write a synthetic world with ground truth."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gaelp_bayes.cli.options import (
    Days,
    Persons,
    Quiet,
    Seed,
    World,
    console,
    handle_errors,
    show_progress,
)
from gaelp_bayes.errors import UsageError

FORMATS = ("canonical", "ga4", "posthog", "criteo")


def run_example_data(
    out_dir: Path, world: str, persons: int, days: int, seed: int, fmt: str, quiet: bool
) -> dict[str, Path]:
    """Generate and write a world; returns the written paths (library entry of the command)."""
    from gaelp_bayes.progress import steps
    from gaelp_bayes.world import get_world, make_world, write_world

    fmt = fmt.lower()
    if fmt not in FORMATS:
        raise UsageError(f"--format must be one of {', '.join(FORMATS)}; got '{fmt}'")
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"OUT_DIR {out_dir} exists and is not a folder; pick another path")
    spec = get_world(world)
    with steps(show_progress(quiet)) as step:
        w = make_world(spec, persons=persons, days=days, seed=seed, progress=step)
        step("writing files")
        paths = write_world(w, out_dir)
        if fmt == "canonical":
            return paths
        step(f"writing the events as a {fmt} export")
        return _write_export(w, paths, out_dir, fmt)


def _write_export(w, paths: dict[str, Path], out_dir: Path, fmt: str) -> dict[str, Path]:
    """Replace the canonical events by what ``fmt`` would export (OUT_DIR/events/);
    the canonical events it was made from move to truth/events.parquet."""
    import shutil

    from gaelp_bayes.io.exports import write_export

    export_dir = out_dir / "events"
    if export_dir.exists():
        shutil.rmtree(export_dir)
    write_export(w.events, export_dir, fmt, provenance=w.params["provenance"])
    truth_events = paths["truth"] / "events.parquet"
    paths["events"].replace(truth_events)
    return {"events": export_dir, "auctions": paths["auctions"], "truth": paths["truth"]}


@handle_errors
def example_data(
    out_dir: Annotated[
        Path, typer.Argument(help="Folder to write events, auctions and truth/ into.")
    ],
    world: World = "parental-controls",
    persons: Persons = 20_000,
    days: Days = 60,
    seed: Seed = 0,
    fmt: Annotated[
        str,
        typer.Option("--format", help="canonical, ga4, posthog or criteo.", case_sensitive=False),
    ] = "canonical",
    quiet: Quiet = False,
) -> None:
    """Write a synthetic world (clearly labelled synthetic) with its ground truth."""
    paths = run_example_data(out_dir, world, persons, days, seed, fmt, quiet)
    if not quiet:
        console.print(
            f"SYNTHETIC example world '{world}' ({persons} persons, {days} days, seed {seed}):"
        )
        for name, p in paths.items():
            console.print(f"  {name:9s} {p}")
