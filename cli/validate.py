"""`gaelp-bayes validate` (placeholder: the io work replaces this module)."""

from __future__ import annotations

from pathlib import Path

import typer


def validate(events: Path = typer.Argument(..., help="Events file or folder.")) -> None:
    """Read and check input against the data contract and print a report."""
    raise typer.Exit(code=1)
