"""Progress display for long work: a rich status line on a terminal, silent otherwise."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console


@contextmanager
def steps(
    enabled: bool | None = None, console: Console | None = None
) -> Iterator[Callable[[str], None]]:
    """Yield a ``step(message)`` callback that shows the current step and its elapsed time.

    ``enabled=None`` shows progress only when stderr is a terminal.
    """
    console = console or Console(stderr=True)
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        yield lambda _msg: None
        return
    t0 = time.perf_counter()
    with console.status("starting") as status:

        def step(msg: str) -> None:
            status.update(f"{msg}  [dim]({time.perf_counter() - t0:.0f} s)[/dim]")

        yield step
