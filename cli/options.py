"""Shared option aliases and the error edge of the command line."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from gaelp_bayes.errors import GaelpError

F = TypeVar("F", bound=Callable[..., Any])

#: Human-facing output (reports, tables) goes to stdout; errors to stderr.
console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

Seed = Annotated[
    int, typer.Option("--seed", help="Random seed; the same seed gives identical output.")
]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress display.")]
Persons = Annotated[int, typer.Option("--persons", min=1, help="Number of simulated persons.")]
Days = Annotated[int, typer.Option("--days", min=1, help="Days of data.")]
World = Annotated[str, typer.Option("--world", help="Name of the example world.")]
InputFormat = Annotated[
    str,
    typer.Option(
        "--format",
        help="Input format: auto, canonical, ga4, posthog or criteo.",
        case_sensitive=False,
    ),
]


def handle_errors(func: F) -> F:
    """Turn library errors into one clear message and an exit code, no traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except GaelpError as exc:
            err_console.print(f"[bold red]error:[/bold red] {exc}", markup=True)
            raise typer.Exit(code=exc.exit_code) from None
        except KeyboardInterrupt:
            err_console.print("interrupted")
            raise typer.Exit(code=130) from None

    return wrapper  # type: ignore[return-value]


def show_progress(quiet: bool) -> bool:
    """Progress bars only on an interactive terminal and never with --quiet."""
    return not quiet and sys.stderr.isatty()


def existing_path(path: Path, what: str) -> Path:
    from gaelp_bayes.errors import InputNotFoundError

    if not path.exists():
        raise InputNotFoundError(f"{what} {path} does not exist; check the path.")
    return path
