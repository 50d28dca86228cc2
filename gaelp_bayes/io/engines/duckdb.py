"""DuckDB: the embedded engine (the default).

CSV files are read by :mod:`gaelp_bayes.io.csv_text` (every column as text,
exact row numbers) and registered as Arrow tables; Parquet files are scanned
by DuckDB itself with ``file_row_number``. The session time zone is UTC, so
timestamps without an offset are read as UTC.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from gaelp_bayes.errors import DataError
from gaelp_bayes.io.engines.base import ROW, Engine, LoadedSource, SourceType, literal, quote

if TYPE_CHECKING:
    import pyarrow as pa

    from gaelp_bayes.io.sources import SourceFile

# Smallest and largest microsecond counts of a valid timestamp (years 1-9999).
_MIN_US = -62135596800000000
_MAX_US = 253402300799999999
_ISO_NAIVE = r"\s*\d{4}-\d{2}-\d{2}([T ]\d{2}(:\d{2}(:\d{2}([.,]\d+)?)?)?)?\s*"


_INTEGERS = {
    "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT",
    "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT",
}  # fmt: skip


def source_type(duck_type: str) -> SourceType:
    """Map a DuckDB column type name to the pipeline's :data:`SourceType`."""
    t = duck_type.upper()
    if t == "VARCHAR":
        return "string"
    if t == "BOOLEAN":
        return "bool"
    if t in _INTEGERS:
        return "integer"
    if t in {"FLOAT", "DOUBLE", "REAL"} or t.startswith("DECIMAL"):
        return "float"
    if t.startswith("TIMESTAMPTZ") or t.endswith("WITH TIME ZONE"):
        return "timestamp_tz"
    if t.startswith("TIMESTAMP"):
        return "timestamp_naive"
    if t == "DATE":
        return "date"
    return "other"


class DuckDBEngine(Engine):
    """The validation pipeline on an in-memory DuckDB connection."""

    name = "duckdb"

    def __init__(self) -> None:
        self._con = duckdb.connect(":memory:")
        self.execute("SET TimeZone = 'UTC'")
        # Results are ordered explicitly; let scans run in any order.
        self.execute("SET preserve_insertion_order = false")

    # --- I/O hooks -------------------------------------------------------

    def load(self, relation: str, source: SourceFile) -> LoadedSource:
        if source.format == "csv":
            from gaelp_bayes.io.csv_text import read_csv_text

            table, loaded = read_csv_text(source)
            self.register_arrow(relation, table)
            return loaded
        scan = f"read_parquet({literal(str(source.path))}, file_row_number = true)"
        try:
            self.execute(
                f"CREATE TEMP VIEW {quote(relation)} AS SELECT * EXCLUDE (file_row_number), "
                f"file_row_number + 1 AS {ROW} FROM {scan}"
            )
            described = self._con.execute(f"DESCRIBE {quote(relation)}").fetchall()
            rows = self._con.execute(f"SELECT count(*) FROM {scan}").fetchall()[0]
        except duckdb.Error as exc:
            raise DataError(f"{source.display}: cannot be read as Parquet ({exc}).") from None
        types = {name: source_type(dtype) for name, dtype, *_ in described if name != ROW}
        return LoadedSource(types=types, rows=int(rows[0]) if rows else 0)

    def register_arrow(self, relation: str, table: pa.Table) -> None:
        self._con.register(relation, table)

    def execute(self, sql: str) -> None:
        self._con.execute(sql).fetchall()

    def fetch(self, sql: str) -> list[tuple]:
        return self._con.execute(sql).fetchall()

    def fetch_arrow(self, sql: str) -> pa.Table:
        return self._con.sql(sql).to_arrow_table()

    def write(self, sql: str, path: Path) -> None:
        fmt = "PARQUET" if path.suffix.lower() == ".parquet" else "CSV, HEADER"
        self.execute(f"COPY ({sql}) TO {literal(str(path))} (FORMAT {fmt})")

    def close(self) -> None:
        self._con.close()

    # --- dialect hooks ---------------------------------------------------

    def timestamp_from_text(self, expr: str) -> str:
        # Cheapest test first: almost every value starts with a 4-digit year.
        t = f"trim({expr})"
        return (
            f"CASE WHEN {expr} GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]*' "
            f"THEN TRY_CAST({expr} AS TIMESTAMPTZ) "
            f"WHEN regexp_full_match({expr}, '\\s*-?\\d{{1,19}}\\s*') "
            f"THEN {self.timestamp_from_epoch_us(f'TRY_CAST({t} AS BIGINT)')} "
            f"WHEN regexp_matches({expr}, '^\\s+\\d{{4}}-\\d{{2}}-\\d{{2}}') "
            f"THEN TRY_CAST({t} AS TIMESTAMPTZ) END"
        )

    def text_without_offset(self, expr: str) -> str:
        return (
            f"CASE WHEN ends_with({expr}, 'Z') OR contains({expr}, '+') THEN FALSE "
            f"ELSE regexp_full_match({expr}, '{_ISO_NAIVE}') END"
        )

    def timestamp_from_epoch_us(self, expr: str) -> str:
        return (
            f"CASE WHEN {expr} BETWEEN {_MIN_US} AND {_MAX_US} "
            f"THEN CAST(make_timestamp(CAST({expr} AS BIGINT)) AS TIMESTAMPTZ) END"
        )

    def timestamp_from_naive(self, expr: str) -> str:
        # The session time zone is UTC, so this reads the wall clock as UTC.
        return f"CAST(CAST({expr} AS TIMESTAMP) AS TIMESTAMPTZ)"

    def try_double(self, expr: str) -> str:
        return f"TRY_CAST({expr} AS DOUBLE)"

    def is_finite(self, expr: str) -> str:
        return f"isfinite({expr})"

    def bool_from_text(self, expr: str) -> str:
        return (
            f"CASE WHEN {expr} IN ('true', 'True', 'TRUE', '1') THEN TRUE "
            f"WHEN {expr} IN ('false', 'False', 'FALSE', '0') THEN FALSE "
            f"ELSE CASE lower(trim({expr})) WHEN 'true' THEN TRUE WHEN '1' THEN TRUE "
            f"WHEN 'false' THEN FALSE WHEN '0' THEN FALSE END END"
        )

    def is_blank(self, expr: str) -> str:
        # Only values that start with a space need the (slower) trim.
        return (
            f"CASE WHEN {expr} IS NULL THEN TRUE WHEN {expr} GLOB '[! ]*' THEN FALSE "
            f"ELSE trim({expr}) = '' END"
        )

    def is_nan(self, expr: str) -> str:
        return f"isnan({expr})"

    def first_values(self, expr: str, order_by: str, n: int) -> str:
        return f"list({expr} ORDER BY {order_by})[1:{n}]"
