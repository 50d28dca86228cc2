"""From contract specs to SQL: parsing expressions and bad-row rules.

Staging happens in two steps so that each conversion is written (and
computed) once: :func:`file_columns` converts one file's cells according to
how the file stores them, and :func:`finished_columns`, over the union of all
files, yields the canonical value of every contract column and, where parsing
can fail, an ``_gb_invalid_<column>`` flag. :func:`rules_for` then lists the
rules that make a row bad, each a SQL condition over those columns. The
spelling of the few dialect-specific pieces comes from the engine.
"""

from __future__ import annotations

from dataclasses import dataclass

from gaelp_bayes.io.contract import Column, TableSpec
from gaelp_bayes.io.engines.base import Engine, SourceType, literal, quote

NAIVE = "_gb_naive"

_TIMESTAMP_EXPECTED = (
    "ISO-8601 with a UTC offset (2024-03-01T12:00:00+01:00 or 2024-03-01T11:00:00Z) "
    "or integer epoch microseconds"
)


def invalid_flag(name: str) -> str:
    """Name of the staged flag that marks an unparseable cell of column ``name``."""
    return f"_gb_invalid_{name}"


@dataclass(frozen=True)
class Rule:
    """One reason a row is bad: a SQL condition over the staged columns."""

    reason: str
    column: str | None
    expected: str
    condition: str
    show_found: bool = True


def present_flag(name: str) -> str:
    """Name of the staged flag that marks a non-empty cell of column ``name``."""
    return f"_gb_present_{name}"


def raw_value(name: str) -> str:
    """Name of the staged number of a float column before NaN/infinity handling."""
    return f"_gb_raw_{name}"


def file_columns(spec: TableSpec, types: dict[str, SourceType], engine: Engine) -> dict[str, str]:
    """Select items (alias -> SQL) that convert one file's columns; the first stage.

    This stage depends on how the file stores each column (text in CSV,
    typed in Parquet). Contract columns absent from the file become typed
    NULLs, so every file yields the same columns and the selects can be
    unioned; :func:`finished_columns` then works on the union.
    """
    items: dict[str, str] = {}
    for col in spec.columns:
        items.update(_convert(col, types.get(col.name), engine))
    return items


def finished_columns(spec: TableSpec, engine: Engine) -> dict[str, str]:
    """Select items over the union of :func:`file_columns`: canonical values and
    ``_gb_invalid_<column>`` flags (a non-empty cell that did not parse)."""
    items: dict[str, str] = {}
    for col in spec.columns:
        x, present = quote(col.name), present_flag(col.name)
        if col.kind == "float":
            raw = raw_value(col.name)
            items[col.name] = f"CASE WHEN {engine.is_finite(raw)} THEN {raw} END"
            # NaN is how pandas spells "missing"; text that is no number and
            # infinities are invalid.
            not_a_number = f"NOT {engine.is_finite(raw)} AND NOT {engine.is_nan(raw)}"
            items[invalid_flag(col.name)] = f"{present} AND coalesce({not_a_number}, TRUE)"
        else:
            items[col.name] = x
            if col.kind != "string":
                items[invalid_flag(col.name)] = f"{present} AND {x} IS NULL"
        if col.kind == "timestamp":
            items[NAIVE] = NAIVE
    return items


def _sql_type(col: Column, engine: Engine) -> str:
    return {
        "string": engine.text_type,
        "timestamp": engine.timestamp_type,
        "float": "DOUBLE",
        "bool": "BOOLEAN",
    }[col.kind]


def _convert(col: Column, source: SourceType | None, engine: Engine) -> dict[str, str]:
    """First-stage items of one column of one file."""
    name, present = col.name, present_flag(col.name)
    value = raw_value(name) if col.kind == "float" else name
    if source is None:
        sql_type = "DOUBLE" if col.kind == "float" else _sql_type(col, engine)
        items = {value: f"CAST(NULL AS {sql_type})"}
        if col.kind != "string":
            items[present] = "FALSE"
        if col.kind == "timestamp":
            items[NAIVE] = "FALSE"
        return items

    x = quote(name)
    is_text = source not in {"integer", "float", "bool", "timestamp_tz", "timestamp_naive", "date"}
    text = x if source == "string" else engine.to_text(x)
    is_present = f"coalesce({text} <> '', FALSE)" if is_text else f"{x} IS NOT NULL"

    if col.kind == "string":
        return {value: f"NULLIF({text}, '')"}
    if col.kind == "timestamp":
        converted = {
            "timestamp_tz": f"CAST({x} AS {engine.timestamp_type})",
            "timestamp_naive": engine.timestamp_from_naive(x),
            "date": engine.timestamp_from_naive(x),
            "integer": engine.timestamp_from_epoch_us(x),
        }.get(source) or engine.timestamp_from_text(text)
        if source in {"timestamp_naive", "date"}:
            naive = f"{x} IS NOT NULL"
        elif source in {"timestamp_tz", "integer"}:
            naive = "FALSE"
        else:
            naive = f"coalesce({engine.text_without_offset(text)}, FALSE)"
        return {value: converted, present: is_present, NAIVE: naive}
    if col.kind == "float":
        numeric = source in {"integer", "float"}
        converted = f"CAST({x} AS DOUBLE)" if numeric else engine.try_double(text)
        return {value: converted, present: is_present}
    # bool
    if source == "bool":
        converted = x
    elif source in {"integer", "float"}:
        converted = f"CASE WHEN {x} = 1 THEN TRUE WHEN {x} = 0 THEN FALSE END"
    else:
        converted = engine.bool_from_text(text)
    return {value: converted, present: is_present}


def rules_for(spec: TableSpec, engine: Engine) -> list[Rule]:
    """Every rule of ``spec`` that can make a row bad, in a stable order."""
    rules: list[Rule] = []
    for col in spec.columns:
        rules.extend(_column_rules(col, engine))
    return rules


def _column_rules(col: Column, engine: Engine) -> list[Rule]:
    x = quote(col.name)
    out: list[Rule] = []
    empty = engine.is_blank(x) if col.kind == "string" else f"{x} IS NULL"
    not_invalid = "" if col.kind == "string" else f" AND NOT {invalid_flag(col.name)}"
    if col.kind == "timestamp":
        out.append(
            Rule(f"unparseable {col.name}", col.name, _TIMESTAMP_EXPECTED, invalid_flag(col.name))
        )
    elif col.kind == "float":
        lower = "" if col.minimum is None else (">" if col.exclusive_minimum else ">=")
        bound = f" {lower} {col.minimum:g}" if lower else ""
        out.append(
            Rule(
                f"non-numeric {col.name}",
                col.name,
                f"a finite number{bound}",
                invalid_flag(col.name),
            )
        )
    elif col.kind == "bool":
        out.append(
            Rule(f"{col.name} not a bool", col.name, "true, false, 1 or 0", invalid_flag(col.name))
        )
    if col.required:
        out.append(
            Rule(
                f"empty {col.name}",
                col.name,
                "a non-empty value on every row",
                f"{empty}{not_invalid}",
                show_found=False,
            )
        )
    if col.required_when is not None:
        rw = col.required_when
        out.append(
            Rule(
                f"{col.name} missing on {rw.description}",
                col.name,
                f"a non-empty {col.name} on {rw.description}",
                f"({rw.condition}) AND {empty}{not_invalid}",
                show_found=False,
            )
        )
    if col.allowed is not None:
        values = ", ".join(literal(v) for v in col.allowed)
        out.append(
            Rule(
                f"unknown {col.name}",
                col.name,
                f"one of {', '.join(col.allowed)} (exact, lowercase)",
                f"NOT {empty} AND {x} NOT IN ({values})",
            )
        )
    if col.kind == "float" and col.minimum is not None:
        if col.exclusive_minimum:
            reason, op, words = (
                f"{col.name} not > {col.minimum:g}",
                "<=",
                f"a number > {col.minimum:g}",
            )
        else:
            reason, op, words = f"negative {col.name}", "<", f"a number >= {col.minimum:g}"
        out.append(Rule(reason, col.name, words, f"{x} {op} {col.minimum!r}"))
    return out
