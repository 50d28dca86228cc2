"""``read_events`` and ``read_auctions``: the public entry points of gaelp_bayes.io."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import pyarrow as pa

from gaelp_bayes.errors import UsageError
from gaelp_bayes.io.contract import AUCTIONS, EVENTS, TableSpec
from gaelp_bayes.io.engines import create_engine
from gaelp_bayes.io.formats import canonical_files, resolve_format
from gaelp_bayes.io.pipeline import Mode, run
from gaelp_bayes.io.report import ValidationReport
from gaelp_bayes.io.sources import discover

if TYPE_CHECKING:
    from gaelp_bayes.io.exports.mapping import Mapping

_STRING_TYPES = (pa.string(), pa.large_string(), pa.string_view())


@dataclass(frozen=True)
class ReadResult:
    """A validated table and its report.

    Attributes
    ----------
    table : pandas.DataFrame
        Every contract column, in contract order, whether or not the input had
        it (absent optional columns are all-null). Strings use the pandas
        ``"string"`` dtype (Arrow-backed, ``<NA>`` when empty), timestamps ``datetime64[us, UTC]``, numbers
        ``float64`` and ``won`` ``bool``. Rows keep the input order (files in
        name order, then rows in file order).
    report : ValidationReport
        What was read, kept and set aside (``report.render()`` to print).
    """

    table: pd.DataFrame
    report: ValidationReport


def read_events(
    path: str | Path,
    mode: Mode = "strict",
    rejects_path: str | Path | None = None,
    engine: str = "duckdb",
    fmt: str = "auto",
    mapping: str | Path | Mapping | None = None,
) -> ReadResult:
    """Read and validate an ``events`` table (data contract section 1).

    Parameters
    ----------
    path : str or Path
        A CSV file (``.csv`` or ``.csv.gz``), a Parquet file, or a folder of
        them (read in name order and unioned by column name).
    mode : {"strict", "lenient"}
        ``"strict"`` raises :class:`~gaelp_bayes.errors.DataError` listing every
        kind of bad row (file, row numbers, column, expected and found values).
        ``"lenient"`` keeps every valid row and sets the bad ones aside.
    rejects_path : str or Path, optional
        Where to write the rows not kept (``.csv`` or ``.parquet``): their
        original values as text plus ``_file``, ``_row`` and ``_reason``.
        Written only when some row was not kept.
    engine : str
        Execution engine; ``"duckdb"`` (default).
    fmt : {"auto", "canonical", "ga4", "posthog", "criteo"}
        Input format: the contract's own columns, or a GA4 BigQuery export
        (NDJSON or Parquet), a PostHog export (CSV or JSON lines) or the Criteo
        attribution dataset (TSV), mapped to the contract as documented in
        ``docs/exports.md``. ``"auto"`` tells them apart by their columns.
    mapping : str or Path or Mapping, optional
        Export mapping (TOML, see :mod:`gaelp_bayes.io.exports.mapping`);
        default: the one set by ``use_mapping``, else a ``gaelp-mapping.toml``
        in the input folder or next to the input file, else the defaults.

    Returns
    -------
    ReadResult
        The kept rows as a DataFrame and the :class:`ValidationReport`.

    Raises
    ------
    InputNotFoundError
        ``path`` does not exist or holds no CSV/Parquet file.
    DataError
        A required column is missing (both modes), or a row is bad (strict).
    ConfigError
        The mapping file is invalid.

    Examples
    --------
    >>> from gaelp_bayes.io import read_events
    >>> res = read_events("events.csv", mode="lenient", rejects_path="rejects.csv")  # doctest: +SKIP
    >>> print(res.report.render())  # doctest: +SKIP
    >>> res.table.dtypes["timestamp"]  # doctest: +SKIP
    datetime64[us, UTC]
    """
    return _read(EVENTS, path, mode, rejects_path, engine, fmt, mapping)


def read_auctions(
    path: str | Path,
    mode: Mode = "strict",
    rejects_path: str | Path | None = None,
    engine: str = "duckdb",
    fmt: str = "auto",
) -> ReadResult:
    """Read and validate an ``auctions`` table (data contract section 2).

    Same parameters, result and errors as :func:`read_events`. ``won`` is
    read from booleans, ``true``/``false`` (any case) or ``1``/``0``; an empty
    ``auction_type`` is read as ``second_price``.

    Examples
    --------
    >>> from gaelp_bayes.io import read_auctions
    >>> res = read_auctions("auctions.parquet")  # doctest: +SKIP
    >>> res.table["won"].mean()  # doctest: +SKIP
    """
    return _read(AUCTIONS, path, mode, rejects_path, engine, fmt)


def _read(
    spec: TableSpec,
    path: str | Path,
    mode: str,
    rejects_path: str | Path | None,
    engine_name: str,
    fmt: str,
    mapping: str | Path | Mapping | None = None,
) -> ReadResult:
    if mode not in ("strict", "lenient"):
        raise ValueError(f"mode must be 'strict' or 'lenient', not {mode!r}")
    rejects = Path(rejects_path) if rejects_path is not None else None
    if rejects is not None and rejects.suffix.lower() not in (".csv", ".parquet"):
        raise UsageError(f"the rejects file must end in .csv or .parquet, not {rejects.name!r}")
    files = discover(path)
    if rejects is not None and any(rejects.resolve() == f.path.resolve() for f in files):
        raise UsageError(f"the rejects file {rejects} is one of the inputs; choose another path")
    fmt = resolve_format(fmt, spec, files)
    if fmt == "canonical":
        files = canonical_files(files)
    with create_engine(engine_name) as engine:
        if fmt == "canonical":
            table, report = run(
                spec, files, engine, mode=mode, rejects_path=rejects, source=str(path), fmt=fmt
            )
        else:
            from gaelp_bayes.io.exports import read_export, resolve_mapping

            table, report = read_export(
                spec,
                fmt,
                files,
                engine,
                mode=mode,
                rejects_path=rejects,
                source=str(path),
                mapping=resolve_mapping(mapping, path),
            )
    return ReadResult(table=to_pandas(table), report=report)


#: The dtype of every string column of a result: pandas "string", Arrow-backed
#: (converting from Arrow is then nearly free; Python-backed storage is ~7x slower).
STRING_DTYPE = pd.StringDtype("pyarrow")


def to_pandas(table: pa.Table) -> pd.DataFrame:
    """Arrow to pandas with the canonical dtypes (strings as pandas ``"string"``)."""
    mapping = {t: STRING_DTYPE for t in _STRING_TYPES}
    return table.to_pandas(types_mapper=mapping.get)
