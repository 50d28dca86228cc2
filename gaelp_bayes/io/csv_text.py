"""Read a CSV file with every column as text and exact data-row numbers.

Nothing is coerced: a cell is the text between the delimiters (an empty cell
is the empty string). Lines that do not split into the header's number of
fields are set aside as :class:`~gaelp_bayes.io.engines.base.MalformedRow`
records instead of failing the whole file, and rows whose every cell is empty
(blank lines) are skipped but still counted in the numbering, so data row
``r`` is always line ``r + 1`` of the file (values may not contain line
breaks).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from gaelp_bayes.errors import DataError
from gaelp_bayes.io.engines.base import ROW, LoadedSource, MalformedRow
from gaelp_bayes.io.sources import SourceFile


def read_csv_text(source: SourceFile) -> tuple[pa.Table, LoadedSource]:
    """The file as an Arrow table of strings plus ``_gb_row``, and what was set aside."""
    invalid = _read(source, use_threads=True, collect=None)
    malformed: list[MalformedRow] = []
    if invalid[1]:
        # Row numbers of bad lines are only known to a single-threaded read.
        table, _ = _read(source, use_threads=False, collect=malformed)
    else:
        table = invalid[0]
    total = table.num_rows + len(malformed)
    if malformed:
        rows = np.setdiff1d(
            np.arange(1, total + 1, dtype=np.int64), np.array([m.row for m in malformed])
        )
    else:
        rows = np.arange(1, total + 1, dtype=np.int64)
    table = table.append_column(ROW, pa.array(rows))
    table, empty = _drop_empty_rows(table, source.columns)
    types = dict.fromkeys(source.columns, "string")
    return table, LoadedSource(
        types=types, rows=total - empty, malformed=malformed, empty_rows=empty
    )


def _read(
    source: SourceFile, *, use_threads: bool, collect: list[MalformedRow] | None
) -> tuple[pa.Table, int]:
    n_invalid = 0
    n_fields = len(source.columns)

    def on_invalid(row: pcsv.InvalidRow) -> str:
        nonlocal n_invalid
        n_invalid += 1
        if collect is not None:
            # ``number`` counts lines from 1 including the header.
            collect.append(
                MalformedRow(
                    row=(row.number or 0) - 1,
                    text=row.text,
                    expected_fields=n_fields,
                    found_fields=row.actual_columns,
                )
            )
        return "skip"

    try:
        table = pcsv.read_csv(
            source.path,
            # Our own header names (unnamed columns named, see sources.py).
            read_options=pcsv.ReadOptions(
                use_threads=use_threads, column_names=list(source.columns), skip_rows=1
            ),
            parse_options=pcsv.ParseOptions(
                ignore_empty_lines=False, invalid_row_handler=on_invalid
            ),
            convert_options=pcsv.ConvertOptions(
                column_types=dict.fromkeys(source.columns, pa.string()),
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"{source.display}: cannot be read as CSV ({exc}).") from None
    return table, n_invalid


def _drop_empty_rows(table: pa.Table, columns: tuple[str, ...]) -> tuple[pa.Table, int]:
    if not columns or table.num_rows == 0:
        return table, 0
    maybe = pc.equal(table.column(columns[0]), "")
    if not pc.any(maybe).as_py():
        return table, 0
    empty = maybe
    for name in columns[1:]:
        empty = pc.and_(empty, pc.equal(table.column(name), ""))
    n_empty = pc.sum(empty).as_py() or 0
    if n_empty == 0:
        return table, 0
    return table.filter(pc.invert(empty)), int(n_empty)
