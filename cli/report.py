"""`gaelp-bayes report`: diagnostics and result plots of a bundle as one HTML file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gaelp_bayes.cli.options import Quiet, console, handle_errors, show_progress


@handle_errors
def report(
    bundle: Annotated[Path, typer.Argument(help="Bundle folder written by `gaelp-bayes fit`.")],
    out: Annotated[
        Path | None,
        typer.Option("--out", help="HTML file to write (default: BUNDLE_DIR/report.html)."),
    ] = None,
    truth: Annotated[
        Path | None,
        typer.Option(
            "--truth",
            help="Ground-truth folder (example-data's truth/): adds identity calibration "
            "and true latency curves.",
        ),
    ] = None,
    quiet: Quiet = False,
) -> None:
    """ArviZ diagnostics and result plots as one self-contained HTML file."""
    from gaelp_bayes.progress import steps
    from gaelp_bayes.report import build_report

    with steps(show_progress(quiet)) as step:
        path = build_report(bundle, out, truth=truth, step=step)
    if not quiet:
        console.print(f"report written to {path}")
