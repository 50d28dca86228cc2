"""The engine interface: the few hooks an execution backend implements.

The validation pipeline (:mod:`gaelp_bayes.io.pipeline`) is shared by every
engine and speaks SQL. An engine only has to load a file as a named relation,
run SQL, hand results back as Arrow, write a result to a file, and supply the
handful of expressions whose spelling differs between SQL dialects (parsing
timestamps and numbers, aggregating the first few values of a group). This is
the shape of Splink's ``database_api``: one pipeline, small per-engine hooks.

Relations registered by an engine carry every column of the file (CSV columns
as text, Parquet columns with their stored types) plus ``_gb_row``, the 1-based
data-row number in the file.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import pyarrow as pa

    from gaelp_bayes.io.sources import SourceFile

#: Storage type of a source column, as the pipeline needs to know it.
SourceType = Literal[
    "string", "integer", "float", "bool", "timestamp_tz", "timestamp_naive", "date", "other"
]

ROW = "_gb_row"


@dataclass(frozen=True)
class MalformedRow:
    """A CSV line that could not be split into the header's number of fields."""

    row: int
    text: str
    expected_fields: int
    found_fields: int


@dataclass
class LoadedSource:
    """What an engine reports after registering one file."""

    types: dict[str, SourceType]
    rows: int
    malformed: list[MalformedRow] = field(default_factory=list)
    empty_rows: int = 0


def quote(name: str) -> str:
    """Quote an identifier for SQL (double quotes, embedded quotes doubled)."""
    return '"' + name.replace('"', '""') + '"'


def literal(value: str) -> str:
    """Quote a string literal for SQL (single quotes, embedded quotes doubled)."""
    return "'" + value.replace("'", "''") + "'"


class Engine(ABC):
    """An execution backend for the validation pipeline.

    Subclasses implement the I/O hooks (``load``, ``execute``, ``fetch``,
    ``fetch_arrow``, ``write``) and the dialect hooks below. Use an engine as a
    context manager so its resources are released.
    """

    name: str = "abstract"

    # --- I/O hooks -------------------------------------------------------

    @abstractmethod
    def load(self, relation: str, source: SourceFile) -> LoadedSource:
        """Register ``source`` as relation ``relation`` with a ``_gb_row`` column."""

    @abstractmethod
    def register_arrow(self, relation: str, table: pa.Table) -> None:
        """Register an in-memory Arrow table as relation ``relation``."""

    @abstractmethod
    def execute(self, sql: str) -> None:
        """Run a statement that returns nothing (``CREATE ...``)."""

    @abstractmethod
    def fetch(self, sql: str) -> list[tuple]:
        """Run a query and return its rows as Python tuples (small results only)."""

    @abstractmethod
    def fetch_arrow(self, sql: str) -> pa.Table:
        """Run a query and return its result as an Arrow table."""

    @abstractmethod
    def write(self, sql: str, path: Path) -> None:
        """Write the result of ``sql`` to ``path`` (CSV or Parquet, by extension)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources (connections, temporary files)."""

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- dialect hooks ---------------------------------------------------

    text_type: str = "VARCHAR"
    timestamp_type: str = "TIMESTAMPTZ"

    @abstractmethod
    def timestamp_from_text(self, expr: str) -> str:
        """UTC timestamp from ISO-8601 text or integer epoch microseconds; NULL if neither."""

    @abstractmethod
    def text_without_offset(self, expr: str) -> str:
        """TRUE where ISO-8601 text carries no UTC offset or zone (read as UTC)."""

    @abstractmethod
    def timestamp_from_epoch_us(self, expr: str) -> str:
        """UTC timestamp from an integer number of microseconds since 1970; NULL if out of range."""

    @abstractmethod
    def timestamp_from_naive(self, expr: str) -> str:
        """UTC timestamp from a timestamp or date without time zone, taken as UTC."""

    @abstractmethod
    def try_double(self, expr: str) -> str:
        """Text to DOUBLE, NULL where the text is not a number."""

    @abstractmethod
    def is_finite(self, expr: str) -> str:
        """TRUE where a DOUBLE is neither NaN nor infinite."""

    @abstractmethod
    def is_nan(self, expr: str) -> str:
        """TRUE where a DOUBLE is NaN."""

    @abstractmethod
    def first_values(self, expr: str, order_by: str, n: int) -> str:
        """Aggregate: the first ``n`` values of ``expr`` in a group, ordered by ``order_by``."""

    @abstractmethod
    def bool_from_text(self, expr: str) -> str:
        """TRUE for true/1, FALSE for false/0 (any case, spaces around allowed), else NULL."""

    def is_blank(self, expr: str) -> str:
        """TRUE where a text value is NULL, empty or only spaces."""
        return f"({expr} IS NULL OR trim({expr}) = '')"

    def to_text(self, expr: str) -> str:
        """Any value as text."""
        return f"CAST({expr} AS {self.text_type})"
