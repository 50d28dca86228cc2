"""Pieces every export reader shares.

An export reader registers, for each input file, a relation of *contract*
columns mapped from the export (one row per event, ``_gb_row`` = the row or
line of the export file), and the shared validation pipeline
(:mod:`gaelp_bayes.io.pipeline`) then checks those rows exactly as it checks
canonical input: strict/lenient, rejects file, report. Problems are reported
with the export's own field names (``user_pseudo_id (-> device_id)``).

Privacy: IP addresses are truncated here, in SQL, before anything else sees
them (IPv4 to its /24, IPv6 to its /48); raw text of malformed lines is
scrubbed the same way before it reaches a message or a rejects file.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import pyarrow as pa

from gaelp_bayes.errors import DataError, Problem, UsageError
from gaelp_bayes.io.contract import TableSpec
from gaelp_bayes.io.engines.base import ROW, Engine, LoadedSource, MalformedRow, literal, quote
from gaelp_bayes.io.exports.mapping import Mapping
from gaelp_bayes.io.pipeline import run
from gaelp_bayes.io.report import ValidationReport
from gaelp_bayes.io.sources import SourceFile

LINE = "_gb_line"


@dataclass
class Prepared:
    """What a format's ``load`` did with one file."""

    loaded: LoadedSource
    skipped: dict[str, int] = field(default_factory=dict)  # event name -> rows not mapped
    fields: list[str] = field(default_factory=list)  # export fields found in the file


def require_duckdb(engine: Engine, label: str) -> None:
    if engine.name != "duckdb":
        raise UsageError(f"{label} exports are read with the duckdb engine, not {engine.name!r}")


# --- privacy -----------------------------------------------------------------

_IPV4 = re.compile(r"\b(\d{1,3}\.\d{1,3}\.\d{1,3})\.\d{1,3}\b")
_IPV6 = re.compile(
    r"\b([0-9a-fA-F]{1,4}:[0-9a-fA-F]{1,4}:[0-9a-fA-F]{1,4})(?::[0-9a-fA-F]{0,4}){2,5}"
)


def scrub_ips(text: str) -> str:
    """``text`` with every IPv4 address cut to its /24 and IPv6 to its /48."""
    return _IPV6.sub(r"\1::", _IPV4.sub(r"\1.0", text))


def ip_prefix_sql(expr: str) -> str:
    """SQL: an IP address as text -> its network prefix (``a.b.c.0/24``,
    ``x:y:z::/48``); anything that is not an address -> NULL (never kept whole)."""
    t = f"trim({expr})"
    v4 = r"(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(/\d{1,2})?"
    v6 = r"([0-9a-fA-F]{1,4}):([0-9a-fA-F]{1,4}):([0-9a-fA-F]{1,4}):[0-9a-fA-F:.]*(/\d{1,3})?"
    return (
        f"CASE WHEN regexp_full_match({t}, '{v4}') "
        f"THEN regexp_extract({t}, '^(\\d{{1,3}}\\.\\d{{1,3}}\\.\\d{{1,3}})\\.', 1) || '.0/24' "
        f"WHEN regexp_full_match({t}, '{v6}') "
        f"THEN lower(regexp_extract({t}, '^([0-9a-fA-F]{{1,4}}:[0-9a-fA-F]{{1,4}}:"
        f"[0-9a-fA-F]{{1,4}})', 1)) || '::/48' END"
    )


# --- SQL helpers ---------------------------------------------------------------


def text(expr: str) -> str:
    """SQL: ``expr`` as text, NULL when empty (blank text is kept: the contract's
    checks treat a blank required value as empty)."""
    return f"NULLIF(CAST({expr} AS VARCHAR), '')"


def url_param(url: str, name: str) -> str:
    """SQL: the (URL-decoded) value of query parameter ``name`` in ``url``, or NULL."""
    pattern = "[?&]" + re.escape(name) + "=([^&#]*)"
    return f"NULLIF(url_decode(regexp_extract({url}, {literal(pattern)}, 1)), '')"


def has_click_id(url: str, mapping: Mapping) -> str:
    """SQL: TRUE where ``url`` carries one of the mapping's ad click ids."""
    names = "|".join(re.escape(n) for n in mapping.click_ids)
    if not names:
        return "FALSE"
    return f"coalesce(regexp_matches({url}, {literal(f'[?&]({names})=[^&#]')}), FALSE)"


def in_list(expr: str, values: tuple[str, ...]) -> str:
    if not values:
        return "FALSE"
    return f"{expr} IN ({', '.join(literal(v) for v in values)})"


_EMPTY_SOURCES = ("(direct)", "$direct", "direct", "(none)", "(not set)", "none")


def channel_sql(source: str, medium: str, mapping: Mapping) -> str:
    """SQL: the channel of a touch from its traffic source and medium (text exprs).

    Empty, ``(direct)``/``(none)`` or ``$direct`` -> ``direct``; then the
    mapping's rules and the default rules in order (full, case-insensitive
    regular-expression matches); else the medium, else the source, as given.
    """
    s = f"NULLIF(lower(trim({source})), '')"
    m = f"NULLIF(lower(trim({medium})), '')"
    empty = ", ".join(literal(v) for v in _EMPTY_SOURCES)
    whens = []
    for rule in mapping.rules:
        conds = []
        if rule.source is not None:
            conds.append(f"coalesce(regexp_full_match({s}, {literal(rule.source)}, 'i'), FALSE)")
        if rule.medium is not None:
            conds.append(f"coalesce(regexp_full_match({m}, {literal(rule.medium)}, 'i'), FALSE)")
        whens.append(f"WHEN {' AND '.join(conds)} THEN {literal(rule.channel)}")
    return (
        f"CASE WHEN coalesce({s} IN ({empty}), TRUE) AND coalesce({m} IN ({empty}), TRUE) "
        f"THEN 'direct' {' '.join(whens)} "
        f"ELSE coalesce(NULLIF(trim({medium}), ''), NULLIF(trim({source}), '')) END"
    )


_BINDS: dict[tuple[str, str], bool] = {}


def expression_works(engine: Engine, relation: str, expr: str) -> bool:
    """Whether ``expr`` binds against ``relation`` (a nested field may be absent).

    Answers are remembered per relation schema, so a folder of daily files with
    the same schema is probed once."""
    schema = str(engine.fetch(f"DESCRIBE {quote(relation)}"))
    key = (schema, expr)
    if key not in _BINDS:
        try:
            engine.fetch(f"SELECT {expr} FROM {quote(relation)} LIMIT 0")
            _BINDS[key] = True
        except Exception:  # binder errors: the field is not in this file's schema
            _BINDS[key] = False
        if len(_BINDS) > 10_000:
            _BINDS.clear()
    return _BINDS[key]


def first_existing(engine: Engine, relation: str, *exprs: str) -> str:
    """The first of ``exprs`` that exists in ``relation``, as text; else NULL."""
    for e in exprs:
        if expression_works(engine, relation, e):
            return e
    return "CAST(NULL AS VARCHAR)"


# --- JSON lines ----------------------------------------------------------------


def read_lines(path: Path) -> tuple[pa.Table, int]:
    """The non-blank lines of a (gzipped) text file with 1-based line numbers."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rb") as fh:
        data = fh.read()
    lines = data.decode("utf-8", errors="replace").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    rows = pa.array(range(1, len(lines) + 1), pa.int64())
    table = pa.table({ROW: rows, LINE: pa.array(lines, pa.string())})
    import pyarrow.compute as pc

    blank = pc.equal(pc.utf8_trim_whitespace(table.column(LINE)), "")
    n_blank = int(pc.sum(blank).as_py() or 0)
    if n_blank:
        table = table.filter(pc.invert(blank))
    return table, n_blank


def register_json_lines(
    engine: Engine, relation: str, source: SourceFile, schema: str
) -> tuple[list[MalformedRow], int]:
    """Register ``relation`` = the valid JSON-object lines of ``source`` parsed
    with DuckDB ``from_json`` to ``schema`` (top-level fields as columns, plus
    ``_gb_row``). Returns the malformed lines (IPs scrubbed) and blank lines."""
    try:
        lines, n_blank = read_lines(source.path)
    except OSError as exc:
        raise DataError(f"{source.display}: cannot be read as JSON lines ({exc}).") from None
    engine.register_arrow(f"{relation}_lines", lines)
    ok = f"CASE WHEN json_valid({LINE}) THEN json_type({LINE}) = 'OBJECT' ELSE FALSE END"
    engine.execute(
        f"CREATE TEMP TABLE {quote(relation + '_flags')} AS SELECT {ROW}, {LINE}, "
        f"{ok} AS _gb_ok FROM {quote(relation + '_lines')}"
    )
    bad = engine.fetch(
        f"SELECT {ROW}, {LINE} FROM {quote(relation + '_flags')} WHERE NOT _gb_ok ORDER BY {ROW}"
    )
    engine.execute(
        f"CREATE TEMP VIEW {quote(relation)} AS SELECT {ROW}, "
        f"unnest(from_json({LINE}, {literal(schema)})) FROM {quote(relation + '_flags')} "
        "WHERE _gb_ok"
    )
    malformed = [
        MalformedRow(row=int(r), text=scrub_ips(str(t))[:500], expected_fields=0, found_fields=0)
        for r, t in bad
    ]
    return malformed, n_blank


MALFORMED_JSON = (
    "malformed JSON line (not one complete JSON object)",
    "one complete JSON object per line (a truncated or broken line cannot be read)",
)


# --- the shared driver ----------------------------------------------------------


def finish_mapped(
    engine: Engine,
    relation: str,
    all_rel: str,
    source: SourceFile,
    malformed: list[MalformedRow],
    blank: int,
) -> Prepared:
    """Publish a mapped table as ``relation`` and describe it (GA4 and PostHog readers).

    ``all_rel`` holds every mapped row plus ``_gb_name``, the export's event
    name: rows whose name the mapping does not turn into an event type are
    counted per name (``skipped``) and left out of the view; everything else,
    invalid rows included, goes on to the contract checks.
    """
    from gaelp_bayes.io.engines.duckdb import source_type

    skipped = {
        str(n): int(c)
        for n, c in engine.fetch(
            f"SELECT _gb_name, count(*) FROM {all_rel} WHERE event_type IS NULL "
            "AND _gb_name IS NOT NULL GROUP BY _gb_name"
        )
    }
    engine.execute(
        f"CREATE TEMP VIEW {quote(relation)} AS SELECT * EXCLUDE (_gb_name) FROM {all_rel} "
        "WHERE NOT (event_type IS NULL AND _gb_name IS NOT NULL)"
    )
    described = engine.fetch(f"DESCRIBE {quote(relation)}")
    types = {n: source_type(t) for n, t, *_ in described if n != ROW}
    (rows,) = engine.fetch(f"SELECT count(*) FROM {quote(relation)}")[0]
    loaded = LoadedSource(
        types=types, rows=int(rows) + len(malformed), malformed=malformed, empty_rows=blank
    )
    return Prepared(loaded=loaded, skipped=skipped, fields=list(source.columns))


def skipped_note(skipped: dict[str, int], what: str) -> str | None:
    if not skipped:
        return None
    total = sum(skipped.values())
    top = sorted(skipped.items(), key=lambda kv: (-kv[1], kv[0]))[:8]
    listing = ", ".join(f"{name} ({n:,})" for name, n in top)
    more = f" and {len(skipped) - len(top)} more" if len(skipped) > len(top) else ""
    return (
        f"{total:,} {what} not mapped to an event type were skipped: {listing}{more}. "
        "Map them in a mapping file (see docs/exports.md) if they matter."
    )


def rename_problems(problems: list[Problem], fields: dict[str, str]) -> list[Problem]:
    """Problems with the export's field names: ``user_pseudo_id (-> device_id)``."""
    from gaelp_bayes.io.contract import EVENTS

    out = []
    for p in problems:
        if p.column in fields:
            name = fields[p.column]
            shown = (
                name
                if name == p.column or p.column not in EVENTS.names
                else (f"{name} (-> {p.column})")
            )
            p = replace(p, column=shown)
        out.append(p)
    return out


def read_mapped(
    spec: TableSpec,
    files: list[SourceFile],
    engine: Engine,
    *,
    label: str,
    columns: tuple[str, ...],
    fields: dict[str, str],
    used: set[str],
    load: Callable[[Engine, str, SourceFile], Prepared],
    mode: str,
    rejects_path: Path | None,
    source: str,
    fmt: str,
    row_words: str,
) -> tuple[pa.Table, ValidationReport]:
    """Run the shared pipeline over relations of contract ``columns`` made by ``load``."""
    prepared: dict[str, Prepared] = {}

    def loader(eng: Engine, relation: str, f: SourceFile) -> LoadedSource:
        original = originals[f.display]
        p = load(eng, relation, original)
        prepared[f.display] = p
        return p.loaded

    originals = {f.display: f for f in files}
    mapped = [replace(f, columns=columns) for f in files]
    json_input = any(f.format == "json" for f in files)
    try:
        table, report = run(
            spec,
            mapped,
            engine,
            mode=mode,  # type: ignore[arg-type]
            rejects_path=rejects_path,
            source=source,
            fmt=fmt,
            loader=loader,
            malformed_words=MALFORMED_JSON if json_input else None,
        )
    except DataError as exc:
        if not exc.problems:
            raise
        raise DataError(
            rename_problems(exc.problems, fields),
            hint=f"{row_words} The column names the {label} field and, after the arrow, the "
            "contract column it maps to (docs/exports.md). Fix these rows, or read in lenient "
            "mode (--lenient) to move them to a rejects file and keep every valid row.",
        ) from None
    report.problems = rename_problems(report.problems, fields)
    found = list(dict.fromkeys(c for f in files for c in f.columns))
    # flattened property columns (``properties.$os``) are part of a property bag
    bags = tuple(f"{u}." for u in used)
    report.ignored_columns = [c for c in found if c not in used and not c.startswith(bags)]
    skipped: dict[str, int] = {}
    for p in prepared.values():
        for name, n in p.skipped.items():
            skipped[name] = skipped.get(name, 0) + n
    note = skipped_note(skipped, f"{label} event(s)")
    if note:
        report.notes = [note, *report.notes]
    lines = (
        " Row numbers of JSON-lines files are line numbers (not line r+1)." if json_input else ""
    )
    report.notes = [
        f"read as a {label} export and mapped to the contract (docs/exports.md).{lines}",
        *report.notes,
    ]
    return table, report
