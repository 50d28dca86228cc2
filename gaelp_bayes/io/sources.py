"""Finding the input files and reading their headers.

A path is one CSV file (optionally gzip-compressed), one Parquet file, or a
folder whose ``*.csv``, ``*.csv.gz`` and ``*.parquet`` files (sorted by name,
subfolders not searched) together form one table. Exports of other tools may
also be newline-delimited JSON (``.json``, ``.jsonl``, ``.ndjson``, optionally
``.gz``) or tab-separated (``.tsv``, ``.tsv.gz``); only the export readers of
:mod:`gaelp_bayes.io.exports` read those.

Example
-------
>>> from gaelp_bayes.io.sources import discover
>>> files = discover("data/events/")  # doctest: +SKIP
>>> [f.display for f in files]        # doctest: +SKIP
['data/events/part-0.parquet', 'data/events/part-1.parquet']
"""

from __future__ import annotations

import csv
import gzip
import io
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from gaelp_bayes.errors import DataError, InputNotFoundError

FileFormat = Literal["csv", "parquet", "json", "tsv"]
_SUFFIXES: dict[str, FileFormat] = {
    ".csv": "csv",
    ".csv.gz": "csv",
    ".parquet": "parquet",
    ".json": "json",
    ".json.gz": "json",
    ".jsonl": "json",
    ".jsonl.gz": "json",
    ".ndjson": "json",
    ".ndjson.gz": "json",
    ".tsv": "tsv",
    ".tsv.gz": "tsv",
}


@dataclass(frozen=True)
class SourceFile:
    """One input file: where it is, how it is stored, and its column names."""

    path: Path
    display: str
    format: FileFormat
    columns: tuple[str, ...]


def file_format(path: Path) -> FileFormat | None:
    """``"csv"``, ``"parquet"``, ``"json"`` or ``"tsv"`` from the file name, or None."""
    name = path.name.lower()
    for suffix, fmt in _SUFFIXES.items():
        if name.endswith(suffix):
            return fmt
    return None


def discover(path: str | Path) -> list[SourceFile]:
    """The input files at ``path``, with their headers read.

    Raises
    ------
    InputNotFoundError
        The path does not exist, is not a CSV/Parquet file, or is a folder
        without any.
    DataError
        A file has no header, repeats a column name, or cannot be read.
    """
    path = Path(path)
    if not path.exists():
        raise InputNotFoundError(f"{path} does not exist; check the path.")
    if path.is_dir():
        found = sorted(
            (p for p in path.iterdir() if p.is_file() and file_format(p)), key=lambda p: p.name
        )
        if not found:
            subdirs = [p.name for p in path.iterdir() if p.is_dir()]
            extra = (
                f" (subfolders are not searched: {', '.join(sorted(subdirs)[:5])})"
                if subdirs
                else ""
            )
            raise InputNotFoundError(
                f"folder {path} holds no .csv, .csv.gz or .parquet files (nor .json, .jsonl, "
                f".ndjson or .tsv exports){extra}; point to a file or to a folder of them."
            )
        return [_source(p, str(p)) for p in found]
    if file_format(path) is None:
        raise InputNotFoundError(
            f"{path} is not a .csv, .csv.gz or .parquet file (nor a GA4/PostHog .json/.jsonl/"
            ".ndjson or Criteo .tsv export); export the table as CSV or Parquet, or point to "
            "a folder of them."
        )
    return [_source(path, str(path))]


def _source(path: Path, display: str) -> SourceFile:
    fmt = file_format(path)
    assert fmt is not None
    if fmt in ("csv", "tsv"):
        columns = _csv_header(path, display, "\t" if fmt == "tsv" else ",")
    elif fmt == "json":
        columns = _json_header(path, display)
    else:
        columns = _parquet_header(path, display)
    repeated = [name for name, n in Counter(columns).items() if n > 1]
    if repeated:
        raise DataError(
            f"{display}: column name(s) {', '.join(repr(c) for c in repeated)} appear more "
            "than once in the header; give every column a distinct name."
        )
    return SourceFile(path=path, display=display, format=fmt, columns=tuple(columns))


def _csv_header(path: Path, display: str, delimiter: str = ",") -> list[str]:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as raw:
            first = raw.readline()
    except OSError as exc:
        raise DataError(f"{display}: cannot be read as CSV ({exc}).") from None
    try:
        line = first.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DataError(
            f"{display}: the header is not UTF-8 text; re-export the file as UTF-8 CSV."
        ) from None
    if not line.strip():
        raise DataError(
            f"{display}: the file is empty or starts with a blank line; "
            "expected a header line with the column names."
        )
    names = next(csv.reader(io.StringIO(line), delimiter=delimiter))
    # An unnamed column (pandas' index written by ``to_csv``) gets a name.
    return [name or f"unnamed_{i + 1}" for i, name in enumerate(names)]


def _json_header(path: Path, display: str) -> list[str]:
    """Top-level keys of the first JSON object among the first lines (none if unreadable)."""
    import json

    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as raw:
            for _, line in zip(range(100), raw, strict=False):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except ValueError:
                    continue
                if isinstance(obj, dict):
                    return list(obj)
    except OSError as exc:
        raise DataError(f"{display}: cannot be read as JSON lines ({exc}).") from None
    return []


def _parquet_header(path: Path, display: str) -> list[str]:
    import pyarrow.parquet as pq

    try:
        return list(pq.read_schema(path).names)
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise DataError(f"{display}: cannot be read as Parquet ({exc}).") from None
