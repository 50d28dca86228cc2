"""`gaelp-bayes validate`: read input, check it against the data contract, print a report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gaelp_bayes.cli.options import (
    InputFormat,
    Quiet,
    console,
    existing_path,
    handle_errors,
    show_progress,
)
from gaelp_bayes.errors import UsageError

FORMATS = ("auto", "canonical", "ga4", "posthog", "criteo")


def default_rejects(source: Path) -> Path:
    """``./<input name>.rejects.csv`` in the working directory.

    The input name is a folder's name, or a file's name without ``.csv``,
    ``.csv.gz`` or ``.parquet``.
    """
    name = source.name
    for suffix in (".csv.gz", ".csv", ".parquet"):
        if not source.is_dir() and name.lower().endswith(suffix) and len(name) > len(suffix):
            name = name[: -len(suffix)]
            break
    return Path.cwd() / f"{name}.rejects.csv"


def auctions_rejects(events_rejects: Path) -> Path:
    """Rejects path for auctions next to an explicit events rejects path: ``X.auctions.csv``."""
    return events_rejects.with_name(f"{events_rejects.stem}.auctions{events_rejects.suffix}")


@handle_errors
def validate(
    events: Annotated[
        Path, typer.Argument(help="Events file (CSV or Parquet) or a folder of them.")
    ],
    auctions: Annotated[
        Path | None, typer.Option("--auctions", help="Auctions (bid log) file or folder.")
    ] = None,
    fmt: InputFormat = "auto",
    strict: Annotated[
        bool,
        typer.Option(
            "--strict/--lenient",
            help="--strict fails on any bad row; --lenient keeps the valid rows and writes "
            "the bad ones to the rejects file.",
        ),
    ] = True,
    rejects: Annotated[
        Path | None,
        typer.Option(
            "--rejects",
            help="Where --lenient writes rejected rows (.csv or .parquet); default "
            "./<input name>.rejects.csv. Auctions go to <name>.auctions.<ext>.",
        ),
    ] = None,
    mapping: Annotated[
        Path | None,
        typer.Option(
            "--mapping",
            help="Export mapping TOML (conversion events, channel rules; docs/exports.md). "
            "Default: gaelp-mapping.toml next to the input, else built-in defaults.",
        ),
    ] = None,
    quiet: Quiet = False,
) -> None:
    """Read and check input against the data contract and print a report."""
    from gaelp_bayes.io import read_auctions, read_events
    from gaelp_bayes.progress import steps

    fmt = fmt.lower()
    if fmt not in FORMATS:
        raise UsageError(f"--format must be one of {', '.join(FORMATS)}; got '{fmt}'")
    existing_path(events, "events input")
    if mapping is not None:
        existing_path(mapping, "--mapping file")
    if auctions is not None:
        existing_path(auctions, "auctions input")
    mode = "strict" if strict else "lenient"
    jobs: list[tuple[str, Path, Path | None]] = [("events", events, None)]
    if auctions is not None:
        jobs.append(("auctions", auctions, None))
    if not strict or rejects is not None:
        jobs = [(kind, path, _rejects_for(kind, path, rejects)) for kind, path, _ in jobs]

    reports = []
    with steps(show_progress(quiet)) as step:
        for kind, path, rejects_path in jobs:
            step(f"reading {kind} from {path}")
            if kind == "events":
                result = read_events(
                    path, mode=mode, rejects_path=rejects_path, fmt=fmt, mapping=mapping
                )
            else:
                result = read_auctions(path, mode=mode, rejects_path=rejects_path, fmt=fmt)
            reports.append(result.report)
    for i, report in enumerate(reports):
        if i:
            console.print("")
        console.print(report.render(), markup=False)
        if mode == "lenient":
            if report.rejects_path:
                console.print(
                    f"{report.rows_rejected + report.duplicates_dropped:,} row(s) not kept were "
                    f"written to {report.rejects_path}",
                    markup=False,
                )
            else:
                console.print(f"no {report.table} rows rejected; no rejects file written.")


def _rejects_for(kind: str, source: Path, rejects: Path | None) -> Path:
    if rejects is None:
        return default_rejects(source)
    return rejects if kind == "events" else auctions_rejects(rejects)
