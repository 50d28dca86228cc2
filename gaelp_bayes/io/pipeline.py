"""The shared validation pipeline: files in, canonical rows and a report out.

Steps, all as SQL in the engine:

1. check that every file has the contract's required columns (file-level
   problems fail in both modes);
2. register each file and select its contract columns parsed to canonical
   types, with a bit mask ``_gb_bad`` of the rules each row breaks (one pass);
3. drop duplicate keys among the valid rows (the first in file/row order wins);
4. collect the rows not kept with their original text, summarise the problems
   by file and reason, and either raise (strict) or write them to the rejects
   file (lenient);
5. return the kept rows in file/row order, and the report's figures.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pyarrow as pa

from gaelp_bayes.errors import DataError, Problem
from gaelp_bayes.io.contract import TableSpec
from gaelp_bayes.io.engines.base import ROW, Engine, LoadedSource, literal, quote
from gaelp_bayes.io.report import FileSummary, ValidationReport
from gaelp_bayes.io.rules import NAIVE, Rule, file_columns, finished_columns, rules_for
from gaelp_bayes.io.sources import SourceFile
from gaelp_bayes.io.summary import summarize

Mode = Literal["strict", "lenient"]

STRICT_HINT = (
    "row numbers count data rows from 1, so row r is line r+1 of a CSV file (line 1 is the "
    "header). Fix these rows, or read in lenient mode (--lenient) to move them to a rejects "
    "file and keep every valid row."
)
_META = ("_file", "_row", "_reason", "_text")
_MAX_ROWS_SHOWN = 10
_MAX_FOUND_SHOWN = 5


@dataclass(frozen=True)
class _Bits:
    """Bit positions of the mask: one per rule, then malformed lines and duplicates."""

    rules: list[Rule]

    @property
    def malformed(self) -> int:
        return 1 << len(self.rules)

    @property
    def duplicate(self) -> int:
        return 1 << (len(self.rules) + 1)


def check_required_columns(spec: TableSpec, files: list[SourceFile]) -> None:
    """Raise DataError naming every file that lacks a required column."""
    problems: list[Problem] = []
    for f in files:
        found = ", ".join(f.columns[:30]) + (", ..." if len(f.columns) > 30 else "")
        for name in spec.required:
            if name in f.columns:
                continue
            near = [c for c in f.columns if c.strip().lower() == name]
            expected = f"the columns {', '.join(spec.required)} (names are case-sensitive)"
            if len(f.columns) == 1 and any(d in f.columns[0] for d in ";\t|"):
                expected += "; the file seems not to be comma-separated, which CSV input must be"
            problems.append(
                Problem(
                    file=f.display,
                    reason=f"required column missing (columns found: {found or 'none'})",
                    column=name,
                    expected=expected,
                    found=near,
                )
            )
    if problems:
        raise DataError(
            problems,
            hint=f"every {spec.name} file needs the columns {', '.join(spec.required)}; "
            "rename or add them (see docs/data-contract.md).",
        )


def run(
    spec: TableSpec,
    files: list[SourceFile],
    engine: Engine,
    *,
    mode: Mode,
    rejects_path: Path | None,
    source: str,
    fmt: str = "canonical",
    loader: Callable[[Engine, str, SourceFile], LoadedSource] | None = None,
    malformed_words: tuple[str, str] | None = None,
) -> tuple[pa.Table, ValidationReport]:
    """Validate ``files`` as table ``spec``; return the kept rows and the report.

    ``loader`` replaces ``engine.load`` (export readers register a relation of
    contract columns mapped from an export; see :mod:`gaelp_bayes.io.exports`);
    ``malformed_words`` is ``(reason, expected)`` for malformed rows of a
    non-CSV input (default: the CSV wording, "wrong number of fields").

    Raises
    ------
    DataError
        A required column is missing (both modes), or, in strict mode, any row
        breaks the contract.
    """
    check_required_columns(spec, files)
    load = loader or (lambda eng, relation, f: eng.load(relation, f))
    loaded = [load(engine, f"gb_src_{i}", f) for i, f in enumerate(files)]
    engine.register_arrow(
        "gb_files",
        pa.table(
            {
                "_gb_file": pa.array(range(len(files)), pa.int32()),
                "_gb_path": [f.display for f in files],
            }
        ),
    )
    bits = _Bits(rules_for(spec, engine))
    _stage(spec, engine, loaded, bits)
    malformed = _register_malformed(engine, loaded)
    (n_bad,) = engine.fetch("SELECT count(*) FROM gb_staged WHERE _gb_bad <> 0")[0]
    n_dup = _find_duplicates(spec, engine, files)

    originals = _original_columns(files)
    found: list[tuple[int, Problem]] = []
    if n_bad or malformed or n_dup:
        _collect_rejected(engine, files, originals, bits, malformed=malformed, duplicates=n_dup > 0)
        found = _problems(spec, engine, files, bits, originals, malformed_words)
    problems = [p for _, p in found]
    row_problems = [p for bit, p in found if bit != bits.duplicate]
    if mode == "strict" and row_problems:
        raise DataError(row_problems, hint=STRICT_HINT)

    written = None
    if rejects_path is not None and (n_bad or malformed or n_dup):
        sql = _rejects_sql(
            spec, engine, bits, originals, malformed=malformed, malformed_words=malformed_words
        )
        engine.write(sql, rejects_path)
        written = str(rejects_path)

    kept = _kept_relation(engine, n_dup > 0)
    table = engine.fetch_arrow(
        f"SELECT {', '.join(_output_column(c.name, c.default) for c in spec.columns)} "
        f"FROM {kept} ORDER BY _gb_file, {ROW}"
    )
    present = set(_all_columns(files))
    figures = summarize(spec, engine, kept, present)
    by_reason: dict[str, int] = {}
    for p in row_problems:
        by_reason[p.reason] = by_reason.get(p.reason, 0) + p.count
    rows_read = sum(ld.rows for ld in loaded)
    report = ValidationReport(
        table=spec.name,
        source=source,
        mode=mode,
        format=fmt,
        files=[
            FileSummary(f.display, f.format, ld.rows) for f, ld in zip(files, loaded, strict=True)
        ],
        rows_read=rows_read,
        rows_kept=figures.rows,
        rows_rejected=rows_read - figures.rows - n_dup,
        duplicates_dropped=n_dup,
        rejects_by_reason=by_reason,
        problems=problems,
        timestamp_min=figures.timestamp_min,
        timestamp_max=figures.timestamp_max,
        timestamps_without_offset=figures.without_offset,
        ignored_columns=[c for c in _all_columns(files) if c not in spec.names],
        absent_columns=[c for c in spec.names if c not in present],
        rejects_path=written,
        notes=_blank_line_notes(files, loaded) + figures.notes,
        summary=figures.summary,
    )
    return table, report


def _stage(spec: TableSpec, engine: Engine, loaded: list[LoadedSource], bits: _Bits) -> None:
    """Create ``gb_staged``: canonical columns of every row plus its rule bit mask."""

    def select(items: dict[str, str]) -> str:
        return ", ".join(f"{expr} AS {quote(alias)}" for alias, expr in items.items())

    per_file = " UNION ALL ".join(
        f"SELECT {i} AS _gb_file, {ROW}, {select(file_columns(spec, ld.types, engine))} "
        f"FROM gb_src_{i}"
        for i, ld in enumerate(loaded)
    )
    finished = f"SELECT _gb_file, {ROW}, {select(finished_columns(spec, engine))} FROM ({per_file}) AS converted"
    mask = " + ".join(
        f"CASE WHEN coalesce({r.condition}, FALSE) THEN {1 << k} ELSE 0 END"
        for k, r in enumerate(bits.rules)
    )
    names = ", ".join(quote(c) for c in spec.names)
    engine.execute(
        f"CREATE TEMP TABLE gb_staged AS SELECT _gb_file, {ROW}, {names}, {NAIVE}, "
        f"CAST({mask} AS BIGINT) AS _gb_bad FROM ({finished}) AS finished"
    )


def _register_malformed(engine: Engine, loaded: list[LoadedSource]) -> bool:
    rows = [(i, m) for i, ld in enumerate(loaded) for m in ld.malformed]
    if not rows:
        return False
    engine.register_arrow(
        "gb_malformed",
        pa.table(
            {
                "_gb_file": pa.array([i for i, _ in rows], pa.int32()),
                ROW: pa.array([m.row for _, m in rows], pa.int64()),
                "_gb_text": [m.text for _, m in rows],
                "_gb_fields": pa.array([m.found_fields for _, m in rows], pa.int32()),
                "_gb_expected": pa.array([m.expected_fields for _, m in rows], pa.int32()),
            }
        ),
    )
    return True


def _find_duplicates(spec: TableSpec, engine: Engine, files: list[SourceFile]) -> int:
    """Create ``gb_dups`` (rows whose key a valid earlier row already has); return its size."""
    key = spec.key
    if key is None or not any(key in f.columns for f in files):
        return 0
    k = quote(key)
    engine.execute(
        f"CREATE TEMP TABLE gb_dupkeys AS SELECT {k} FROM gb_staged "
        f"WHERE _gb_bad = 0 AND {k} IS NOT NULL GROUP BY {k} HAVING count(*) > 1"
    )
    (n_keys,) = engine.fetch("SELECT count(*) FROM gb_dupkeys")[0]
    if not n_keys:
        return 0
    engine.execute(
        f"CREATE TEMP TABLE gb_dups AS SELECT _gb_file, {ROW}, _gb_first_file, _gb_first_row "
        f"FROM (SELECT _gb_file, {ROW}, "
        f"first_value(_gb_file) OVER w AS _gb_first_file, first_value({ROW}) OVER w AS _gb_first_row, "
        f"row_number() OVER w AS _gb_rank FROM gb_staged "
        f"WHERE _gb_bad = 0 AND {k} IN (SELECT {k} FROM gb_dupkeys) "
        f"WINDOW w AS (PARTITION BY {k} ORDER BY _gb_file, {ROW})) AS ranked WHERE _gb_rank > 1"
    )
    (n_dup,) = engine.fetch("SELECT count(*) FROM gb_dups")[0]
    return int(n_dup)


def _all_columns(files: list[SourceFile]) -> list[str]:
    """Every column name of every file, in first-seen order."""
    return list(dict.fromkeys(name for f in files for name in f.columns))


def _original_columns(files: list[SourceFile]) -> list[str]:
    """The columns a rejects file repeats: all, except names it uses itself."""
    return [c for c in _all_columns(files) if c != ROW and c not in _META]


def _collect_rejected(
    engine: Engine,
    files: list[SourceFile],
    originals: list[str],
    bits: _Bits,
    *,
    malformed: bool,
    duplicates: bool,
) -> None:
    """Create ``gb_raw``: every row not kept, with its original values as text."""
    parts = [
        "SELECT _gb_file, _gb_row, _gb_bad AS _gb_mask, CAST(NULL AS INTEGER) AS _gb_first_file, "
        "CAST(NULL AS BIGINT) AS _gb_first_row FROM gb_staged WHERE _gb_bad <> 0"
    ]
    if duplicates:
        parts.append(
            f"SELECT _gb_file, {ROW}, {bits.duplicate}, _gb_first_file, _gb_first_row FROM gb_dups"
        )
    if malformed:
        parts.append(f"SELECT _gb_file, {ROW}, {bits.malformed}, NULL, NULL FROM gb_malformed")
    engine.execute(f"CREATE TEMP TABLE gb_rejected AS {' UNION ALL '.join(parts)}")

    selects = []
    for i, f in enumerate(files):
        cols = ", ".join(
            (
                engine.to_text(f"s.{quote(c)}")
                if c in f.columns
                else f"CAST(NULL AS {engine.text_type})"
            )
            + f" AS {quote(c)}"
            for c in originals
        )
        selects.append(
            f"SELECT r.*, {cols} FROM gb_rejected r LEFT JOIN gb_src_{i} s "
            f"ON s.{ROW} = r.{ROW} WHERE r._gb_file = {i}"
        )
    engine.execute(f"CREATE TEMP TABLE gb_raw AS {' UNION ALL '.join(selects)}")
    if malformed:
        engine.execute(
            "CREATE TEMP TABLE gb_raw_m AS SELECT r.*, m._gb_text, m._gb_fields, m._gb_expected "
            f"FROM gb_raw r LEFT JOIN gb_malformed m ON m._gb_file = r._gb_file AND m.{ROW} = r.{ROW}"
        )
    else:
        engine.execute(
            f"CREATE TEMP TABLE gb_raw_m AS SELECT *, CAST(NULL AS {engine.text_type}) AS _gb_text, "
            "CAST(NULL AS INTEGER) AS _gb_fields, CAST(NULL AS INTEGER) AS _gb_expected FROM gb_raw"
        )


def _problems(
    spec: TableSpec,
    engine: Engine,
    files: list[SourceFile],
    bits: _Bits,
    originals: list[str],
    malformed_words: tuple[str, str] | None = None,
) -> list[tuple[int, Problem]]:
    """(mask bit, Problem) per file and reason among the rows not kept."""
    described: dict[int, tuple[str, str | None, str, str]] = {}
    for k, rule in enumerate(bits.rules):
        shown = rule.show_found and rule.column in originals
        found = f"r.{quote(rule.column)}" if shown and rule.column else "NULL"
        described[1 << k] = (rule.reason, rule.column, rule.expected, found)
    reason, expected = malformed_words or (
        "malformed CSV row (wrong number of fields)",
        "as many fields as the header (a value may not contain a line break)",
    )
    described[bits.malformed] = (reason, None, expected, "r._gb_text")
    if spec.key and spec.key in originals:
        described[bits.duplicate] = (
            f"duplicate {spec.key} (the first valid row is kept, the rest dropped)",
            spec.key,
            f"a unique {spec.key}",
            f"r.{quote(spec.key)}",
        )
    values = ", ".join(f"({bit})" for bit in described)
    found_case = " ".join(f"WHEN {bit} THEN {d[3]}" for bit, d in described.items())
    rows = engine.fetch(
        f"WITH x AS (SELECT r._gb_file, r.{ROW}, b.bit, CAST(CASE b.bit {found_case} END AS "
        f"{engine.text_type}) AS found FROM gb_raw_m r JOIN (VALUES {values}) AS b(bit) "
        f"ON (r._gb_mask & b.bit) <> 0), "
        f"agg AS (SELECT _gb_file, bit, count(*) AS n, "
        f"{engine.first_values(ROW, ROW, _MAX_ROWS_SHOWN)} AS rows FROM x GROUP BY _gb_file, bit), "
        f"firsts AS (SELECT _gb_file, bit, found, min({ROW}) AS r0 FROM x "
        f"WHERE found IS NOT NULL GROUP BY _gb_file, bit, found), "
        f"vals AS (SELECT _gb_file, bit, {engine.first_values('found', 'r0', _MAX_FOUND_SHOWN)} "
        f"AS found FROM firsts GROUP BY _gb_file, bit) "
        f"SELECT a._gb_file, a.bit, a.n, a.rows, v.found FROM agg a LEFT JOIN vals v "
        f"ON v._gb_file = a._gb_file AND v.bit = a.bit ORDER BY a.bit, a._gb_file"
    )
    problems = []
    for file_idx, bit, n, row_list, found in rows:
        reason, column, expected, _ = described[int(bit)]
        problems.append(
            (
                int(bit),
                Problem(
                    file=files[int(file_idx)].display,
                    reason=reason,
                    column=column,
                    expected=expected,
                    found=[str(v) for v in (found or [])],
                    rows=[int(r) for r in row_list],
                    count=int(n),
                ),
            )
        )
    return problems


def _rejects_sql(
    spec: TableSpec,
    engine: Engine,
    bits: _Bits,
    originals: list[str],
    *,
    malformed: bool,
    malformed_words: tuple[str, str] | None = None,
) -> str:
    reasons = [
        f"CASE WHEN (r._gb_mask & {1 << k}) <> 0 THEN {literal(rule.reason)} END"
        for k, rule in enumerate(bits.rules)
    ]
    if malformed_words is None:
        reasons.append(
            f"CASE WHEN (r._gb_mask & {bits.malformed}) <> 0 THEN 'malformed CSV row: expected ' "
            f"|| CAST(r._gb_expected AS {engine.text_type}) || ' fields, found ' "
            f"|| CAST(r._gb_fields AS {engine.text_type}) END"
        )
    else:
        reasons.append(
            f"CASE WHEN (r._gb_mask & {bits.malformed}) <> 0 THEN {literal(malformed_words[0])} END"
        )
    if spec.key:
        reasons.append(
            f"CASE WHEN (r._gb_mask & {bits.duplicate}) <> 0 THEN 'duplicate {spec.key} "
            f"(first kept: ' || ff._gb_path || ' row ' || CAST(r._gb_first_row AS "
            f"{engine.text_type}) || ')' END"
        )
    cols = ", ".join(f"r.{quote(c)}" for c in originals)
    text = ", r._gb_text AS _text" if malformed else ""
    return (
        f"SELECT {cols}{', ' if cols else ''}f._gb_path AS _file, r.{ROW} AS _row, "
        f"concat_ws('; ', {', '.join(reasons)}) AS _reason{text} "
        f"FROM gb_raw_m r JOIN gb_files f ON f._gb_file = r._gb_file "
        f"LEFT JOIN gb_files ff ON ff._gb_file = r._gb_first_file "
        f"ORDER BY r._gb_file, r.{ROW}"
    )


def _kept_relation(engine: Engine, duplicates: bool) -> str:
    if duplicates:
        engine.execute(
            f"CREATE TEMP VIEW gb_kept AS SELECT s.* FROM gb_staged s LEFT JOIN gb_dups d "
            f"ON d._gb_file = s._gb_file AND d.{ROW} = s.{ROW} "
            f"WHERE s._gb_bad = 0 AND d.{ROW} IS NULL"
        )
    else:
        engine.execute("CREATE TEMP VIEW gb_kept AS SELECT * FROM gb_staged WHERE _gb_bad = 0")
    return "gb_kept"


def _output_column(name: str, default: str | None) -> str:
    if default is None:
        return quote(name)
    return f"coalesce({quote(name)}, {literal(default)}) AS {quote(name)}"


def _blank_line_notes(files: list[SourceFile], loaded: list[LoadedSource]) -> list[str]:
    return [
        f"{f.display}: {ld.empty_rows:,} blank line(s) skipped."
        for f, ld in zip(files, loaded, strict=True)
        if ld.empty_rows
    ]
