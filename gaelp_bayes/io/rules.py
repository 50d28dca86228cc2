"""From contract specs to SQL: parsing expressions and bad-row rules.

For each file the pipeline selects, per contract column, a *parsed* value in
the canonical type and, where parsing can fail, an ``_gb_invalid_<column>``
flag (a non-empty cell that did not parse). :func:`rules_for` then lists the
rules that make a row bad, each a SQL condition over those parsed columns.
The spelling of the few dialect-specific pieces comes from the engine.
"""

from __future__ import annotations

from dataclasses import dataclass

from gaelp_bayes.io.contract import Column, TableSpec
from gaelp_bayes.io.engines.base import Engine, SourceType, quote

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


def parsed_columns(spec: TableSpec, types: dict[str, SourceType], engine: Engine) -> dict[str, str]:
    """SQL select items (alias -> expression) that parse one file's columns.

    Contract columns absent from the file become typed NULLs, so every file
    yields the same columns and the per-file selects can be unioned.
    """
    items: dict[str, str] = {}
    for col in spec.columns:
        source = types.get(col.name)
        value, invalid = _parse(col, source, engine)
        items[col.name] = value
        if col.kind != "string":
            items[invalid_flag(col.name)] = invalid
        if col.kind == "timestamp":
            items[NAIVE] = _naive(source, engine, quote(col.name))
    return items


def _sql_type(col: Column, engine: Engine) -> str:
    return {
        "string": engine.text_type,
        "timestamp": engine.timestamp_type,
        "float": "DOUBLE",
        "bool": "BOOLEAN",
    }[col.kind]


def _parse(col: Column, source: SourceType | None, engine: Engine) -> tuple[str, str]:
    """(parsed value, invalid flag) expressions of one column of one file."""
    if source is None:
        return f"CAST(NULL AS {_sql_type(col, engine)})", "FALSE"
    x = quote(col.name)
    text = x if source == "string" else engine.to_text(x)
    text_present = f"NULLIF(trim({text}), '') IS NOT NULL"

    if col.kind == "string":
        return f"NULLIF({text}, '')", "FALSE"
    if col.kind == "timestamp":
        typed = {
            "timestamp_tz": f"CAST({x} AS {engine.timestamp_type})",
            "timestamp_naive": engine.timestamp_from_naive(x),
            "date": engine.timestamp_from_naive(x),
            "integer": engine.timestamp_from_epoch_us(x),
        }.get(source)
        value = typed or engine.timestamp_from_text(text)
        present = f"{x} IS NOT NULL" if typed else text_present
        return value, f"({present} AND ({value}) IS NULL)"
    if col.kind == "float":
        numeric = source in {"integer", "float"}
        raw = f"CAST({x} AS DOUBLE)" if numeric else engine.try_double(f"NULLIF(trim({text}), '')")
        present = f"{x} IS NOT NULL" if numeric else text_present
        # NaN is how pandas spells "missing"; infinities are invalid.
        value = f"CASE WHEN {engine.is_finite(raw)} THEN {raw} END"
        nan = f"coalesce({engine.is_nan(raw)}, FALSE)"
        return value, f"({present} AND ({value}) IS NULL AND NOT {nan})"
    # bool
    if source == "bool":
        return x, "FALSE"
    if source in {"integer", "float"}:
        value = f"CASE WHEN {x} = 1 THEN TRUE WHEN {x} = 0 THEN FALSE END"
        present = f"{x} IS NOT NULL"
    else:
        value = (
            f"CASE lower(trim({text})) WHEN 'true' THEN TRUE WHEN '1' THEN TRUE "
            f"WHEN 'false' THEN FALSE WHEN '0' THEN FALSE END"
        )
        present = text_present
    return value, f"({present} AND ({value}) IS NULL)"


def _naive(source: SourceType | None, engine: Engine, x: str) -> str:
    if source in {"timestamp_naive", "date"}:
        return f"({x} IS NOT NULL)"
    if source in {"string", "other"}:
        text = x if source == "string" else engine.to_text(x)
        return engine.text_without_offset(text)
    return "FALSE"


def rules_for(spec: TableSpec) -> list[Rule]:
    """Every rule of ``spec`` that can make a row bad, in a stable order."""
    rules: list[Rule] = []
    for col in spec.columns:
        rules.extend(_column_rules(col))
    return rules


def _column_rules(col: Column) -> list[Rule]:
    x = quote(col.name)
    out: list[Rule] = []
    empty = f"({x} IS NULL OR trim({x}) = '')" if col.kind == "string" else f"{x} IS NULL"
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
        values = ", ".join("'" + v + "'" for v in col.allowed)
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
