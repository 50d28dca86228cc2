"""One error hierarchy for gaelp-bayes.

Every error a user can cause is a :class:`GaelpError`. The command line catches
them at its edge, prints the message (no traceback) and exits with
``exit_code`` (1 for user errors). Anything else is a bug and keeps its
traceback.

Messages follow one rule: say what was expected, what was found, and what to
try.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path


class GaelpError(Exception):
    """Base class of every error caused by input, configuration or environment."""

    exit_code: int = 1


class UsageError(GaelpError):
    """Options that do not fit together (mapped to exit code 2, like Typer's own)."""

    exit_code = 2


class ConfigError(GaelpError):
    """An invalid configuration file or value. Collects every problem at once."""

    def __init__(self, problems: Sequence[str], source: str | Path | None = None):
        self.problems = list(problems)
        self.source = source
        where = f" in {source}" if source else ""
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"invalid configuration{where}:\n{lines}")


@dataclass
class Problem:
    """One kind of problem found in an input file.

    ``rows`` are 1-based data-row numbers (the header is not counted), so in a
    CSV file data row ``r`` is on line ``r + 1``.
    """

    file: str
    reason: str
    column: str | None = None
    expected: str | None = None
    found: list[str] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)
    count: int = 0

    def describe(self, max_rows: int = 10) -> str:
        parts = [f"{self.file}: {self.reason}"]
        if self.column:
            parts.append(f"column '{self.column}'")
        if self.count:
            shown = ", ".join(str(r) for r in self.rows[:max_rows])
            more = f" and {self.count - max_rows} more" if self.count > max_rows else ""
            parts.append(f"{self.count} row(s): {shown}{more}")
        msg = "; ".join(parts)
        if self.expected:
            msg += f"\n      expected: {self.expected}"
        if self.found:
            msg += f"\n      found: {', '.join(repr(v) for v in self.found[:5])}"
        return msg


class DataError(GaelpError):
    """Input data that breaks the data contract.

    Carries structured :class:`Problem` records so callers (and tests) can see
    exactly which file, rows and columns were wrong.
    """

    def __init__(self, problems: Sequence[Problem] | str, hint: str | None = None):
        if isinstance(problems, str):
            self.problems: list[Problem] = []
            text = problems
        else:
            self.problems = list(problems)
            text = "input does not follow the data contract:\n" + "\n".join(
                f"  - {p.describe()}" for p in self.problems
            )
        self.hint = hint
        if hint:
            text += f"\n  what to do: {hint}"
        super().__init__(text)


class InputNotFoundError(GaelpError):
    """A path that does not exist or holds no readable table."""


class BundleVersionError(GaelpError):
    """A model bundle written by an incompatible version."""


class MissingDependencyError(GaelpError, ImportError):
    """An optional dependency is not installed; says which extra provides it."""

    def __init__(self, package: str, extra: str, purpose: str):
        super().__init__(
            f"{purpose} needs the optional package '{package}'. "
            f"Install it with: pip install 'gaelp-bayes[{extra}]'"
        )


class NotYetSupportedError(GaelpError):
    """A documented option whose implementation has not landed yet."""


class GaelpWarning(UserWarning):
    """Base class of domain warnings."""


class ConvergenceWarning(GaelpWarning):
    """Sampler diagnostics (R-hat, ESS, divergences) outside the accepted policy."""
