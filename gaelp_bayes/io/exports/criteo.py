"""Criteo Attribution Modeling for Bidding dataset (TSV) <-> contract events.

The public dataset (``criteo_attribution_dataset.tsv.gz``,
https://ailab.criteo.com/criteo-attribution-modeling-bidding-dataset/) has one
tab-separated row per displayed banner with the columns ``timestamp, uid,
campaign, conversion, conversion_timestamp, conversion_id, attribution, click,
click_pos, click_nb, cost, cpo, time_since_last_click, cat1 .. cat9``.
Timestamps are integer seconds from the first impression (0), ``-1`` means
"none" for ``conversion_timestamp``, ``conversion_id`` and
``time_since_last_click``.

Mapping (docs/exports.md has the full table):

* every row -> an ``impression`` of device ``uid`` at ``start + timestamp``
  seconds (``start`` from the mapping, ``[criteo] start``), channel =
  ``campaign`` (or ``[criteo] campaign_channels[campaign]``), campaign =
  ``campaign``, cost = ``cost``;
* ``click = 1`` -> also a ``click`` at the same time (the dataset has no click
  time);
* ``conversion = 1`` -> a ``conversion`` of ``uid`` at ``start +
  conversion_timestamp``, once per ``conversion_id`` (the same conversion is
  repeated on every impression before it), with ``event_id =
  conversion_id``.

Reading happens in two steps: the rows are validated as rows (so problems
name the TSV's own columns and rows, and the rejects file holds whole rows),
then the kept rows are expanded into events and checked as the contract's
``events``.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from gaelp_bayes.errors import ConfigError, DataError, Problem
from gaelp_bayes.io.contract import EVENTS, Column, RequiredWhen, TableSpec
from gaelp_bayes.io.engines.base import ROW, Engine, LoadedSource, MalformedRow, literal, quote
from gaelp_bayes.io.engines.duckdb import source_type
from gaelp_bayes.io.exports.common import rename_problems, require_duckdb
from gaelp_bayes.io.exports.mapping import Mapping
from gaelp_bayes.io.pipeline import run
from gaelp_bayes.io.report import ValidationReport
from gaelp_bayes.io.sources import SourceFile

LABEL = "Criteo"
RAW_COLUMNS = (
    "timestamp", "uid", "campaign", "conversion", "conversion_timestamp", "conversion_id",
    "attribution", "click", "click_pos", "click_nb", "cost", "cpo", "time_since_last_click",
    *(f"cat{i}" for i in range(1, 10)),
)  # fmt: skip
REQUIRED = ("timestamp", "uid", "campaign", "conversion", "click")
USED = {"timestamp", "uid", "campaign", "conversion", "conversion_timestamp", "conversion_id",
        "click", "cost"}  # fmt: skip

_CONVERTING = RequiredWhen("conversion", "a converting impression (conversion = 1)")
#: The rows as read in the first step: contract columns of the impression plus
#: what the clicks and conversions are made from.
ROWS = TableSpec(
    name="events",
    columns=(
        Column("device_id", "string", required=True),
        Column("timestamp", "timestamp", required=True),
        Column("event_type", "string", required=True, allowed=("impression",)),
        Column("channel", "string", required=True),
        Column("campaign", "string"),
        Column("cost", "float", minimum=0.0),
        Column("user_id", "string"),  # (none in the dataset; the row summary needs it)
        Column("click", "bool", required=True),
        Column("conversion", "bool", required=True),
        Column("conversion_timestamp", "timestamp", required_when=_CONVERTING),
        Column("conversion_id", "string", required_when=_CONVERTING),
    ),
)
FIELDS = {
    "device_id": "uid",
    "timestamp": "timestamp",
    "channel": "campaign",
    "campaign": "campaign",
    "cost": "cost",
    "click": "click",
    "conversion": "conversion",
    "conversion_timestamp": "conversion_timestamp",
    "conversion_id": "conversion_id",
}


def start_micros(mapping: Mapping) -> int:
    """``[criteo] start`` as epoch microseconds."""
    try:
        start = pd.Timestamp(mapping.criteo.start)
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            [
                f"criteo.start: expected an ISO-8601 date or time, found {mapping.criteo.start!r}"
                f" ({exc})"
            ],
            source=mapping.source,
        ) from None
    if start.tzinfo is None:
        start = start.tz_localize("UTC")
    return int(start.value // 1000)


def read_tsv_text(source: SourceFile) -> tuple[pa.Table, LoadedSource]:
    """The TSV file as text columns plus ``_gb_row``; malformed lines set aside.

    Read with threads; only when a line is malformed is the file read again on
    one thread, which is what knows the line numbers (as ``csv_text`` does)."""
    n_fields = len(source.columns)

    def read(use_threads: bool, collect: list[MalformedRow] | None) -> tuple[pa.Table, int]:
        n_bad = 0

        def on_invalid(row: pcsv.InvalidRow) -> str:
            nonlocal n_bad
            n_bad += 1
            if collect is not None:
                collect.append(
                    MalformedRow(
                        row=(row.number or 0) - 1,
                        text=row.text[:500],
                        expected_fields=n_fields,
                        found_fields=row.actual_columns,
                    )
                )
            return "skip"

        try:
            table = pcsv.read_csv(
                source.path,
                read_options=pcsv.ReadOptions(
                    use_threads=use_threads, column_names=list(source.columns), skip_rows=1
                ),
                parse_options=pcsv.ParseOptions(
                    delimiter="\t",
                    quote_char=False,
                    ignore_empty_lines=False,
                    invalid_row_handler=on_invalid,
                ),
                convert_options=pcsv.ConvertOptions(
                    column_types=dict.fromkeys(source.columns, pa.string()),
                    strings_can_be_null=False,
                ),
            )
        except (pa.ArrowInvalid, OSError) as exc:
            raise DataError(f"{source.display}: cannot be read as TSV ({exc}).") from None
        return table, n_bad

    malformed: list[MalformedRow] = []
    table, n_bad = read(True, None)
    if n_bad:
        table, _ = read(False, malformed)
    total = table.num_rows + len(malformed)
    bad = np.array([m.row for m in malformed], dtype=np.int64)
    rows = np.setdiff1d(np.arange(1, total + 1, dtype=np.int64), bad)
    table = table.append_column(ROW, pa.array(rows))
    empty = None
    for name in source.columns:
        e = pc.equal(table.column(name), "")
        empty = e if empty is None else pc.and_(empty, e)
    n_empty = int(pc.sum(empty).as_py() or 0) if empty is not None else 0
    if n_empty:
        table = table.filter(pc.invert(empty))
    return table, LoadedSource(
        types=dict.fromkeys(source.columns, "string"),
        rows=total - n_empty,
        malformed=malformed,
        empty_rows=n_empty,
    )


def _load_rows(engine: Engine, relation: str, source: SourceFile, mapping: Mapping) -> LoadedSource:
    require_duckdb(engine, LABEL)
    raw = f"{relation}_tsv"
    if source.format == "parquet":
        scan = f"read_parquet({literal(str(source.path))}, file_row_number = true)"
        engine.execute(
            f"CREATE TEMP VIEW {quote(raw)} AS SELECT * EXCLUDE (file_row_number), "
            f"file_row_number + 1 AS {ROW} FROM {scan}"
        )
        (n,) = engine.fetch(f"SELECT count(*) FROM {quote(raw)}")[0]
        loaded = LoadedSource(types={}, rows=int(n))
    else:
        table, loaded = read_tsv_text(source)
        engine.register_arrow(raw, table)
    cols = set(source.columns)
    start = start_micros(mapping)

    def col(name: str) -> str:
        return f"trim(CAST({quote(name)} AS VARCHAR))" if name in cols else "NULL"

    def stamp(name: str) -> str:
        x = col(name)
        secs = f"TRY_CAST({x} AS DOUBLE)"
        return (
            f"CASE WHEN {secs} IS NOT NULL AND isfinite({secs}) AND abs({secs}) < 1e11 "
            f"THEN CAST({start} + CAST(round({secs} * 1e6) AS BIGINT) AS VARCHAR) ELSE {x} END"
        )

    channels = mapping.criteo.campaign_channels
    camp = col("campaign")
    channel = (
        "CASE "
        + " ".join(f"WHEN {camp} = {literal(k)} THEN {literal(v)}" for k, v in channels.items())
        + f" ELSE {camp} END"
        if channels
        else camp
    )
    none = "('-1', '-1.0')"
    items = {
        "device_id": col("uid"),
        "timestamp": stamp("timestamp"),
        "event_type": "'impression'",
        "channel": channel,
        "campaign": camp,
        "cost": col("cost"),
        "user_id": "CAST(NULL AS VARCHAR)",
        "click": col("click"),
        "conversion": col("conversion"),
        "conversion_timestamp": f"CASE WHEN {col('conversion_timestamp')} IN {none} THEN '' "
        f"ELSE {stamp('conversion_timestamp')} END",
        "conversion_id": f"CASE WHEN {col('conversion_id')} IN {none} THEN '' "
        f"ELSE {col('conversion_id')} END",
    }
    select = ", ".join(f"{e} AS {quote(k)}" for k, e in items.items())
    engine.execute(
        f"CREATE TEMP VIEW {quote(relation)} AS SELECT {ROW}, {select} FROM {quote(raw)}"
    )
    return replace(loaded, types=dict.fromkeys(items, "string"))


def _check_columns(files: list[SourceFile]) -> None:
    problems = []
    for f in files:
        for name in REQUIRED:
            if name not in f.columns:
                problems.append(
                    Problem(
                        file=f.display,
                        reason=f"required column missing (columns found: {', '.join(f.columns)})",
                        column=name,
                        expected=f"the Criteo attribution columns {', '.join(REQUIRED)} "
                        "(tab-separated, with a header line)",
                    )
                )
    if problems:
        raise DataError(
            problems,
            hint="the Criteo reader needs the dataset's header line; see docs/exports.md.",
        )


def expand(rows: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Kept rows -> contract events (impressions, clicks, one conversion per id)."""
    base = ["device_id", "timestamp", "channel", "campaign", "cost"]
    imps = rows[base].assign(event_type="impression")
    clicks = rows.loc[rows["click"], base].assign(event_type="click", cost=np.nan)
    conv_rows = rows[rows["conversion"]]
    conv = conv_rows.drop_duplicates("conversion_id", keep="first")
    conversions = pd.DataFrame(
        {
            "device_id": conv["device_id"],
            "timestamp": conv["conversion_timestamp"],
            "event_type": "conversion",
            "event_id": conv["conversion_id"],
        }
    )
    out = pd.concat([imps, clicks, conversions], ignore_index=True)
    order = out["event_type"].map({"impression": 0, "click": 1, "conversion": 3})
    out = (
        out.assign(_o=order)
        .sort_values(["timestamp", "device_id", "_o"], kind="stable")
        .drop(columns="_o")
        .reset_index(drop=True)
    )
    for c in EVENTS.names:
        if c not in out:
            out[c] = None
    return out[list(EVENTS.names)], int(len(conv_rows) - len(conv))


def read(
    spec: TableSpec,
    files: list[SourceFile],
    engine: Engine,
    *,
    mode: str,
    rejects_path: Path | None,
    source: str,
    mapping: Mapping,
) -> tuple[pa.Table, ValidationReport]:
    """Read Criteo TSV ``files`` as contract events (the two steps of the module doc)."""
    from gaelp_bayes.io.readers import to_pandas

    _check_columns(files)
    originals = {f.display: f for f in files}
    mapped = [replace(f, columns=ROWS.names) for f in files]
    try:
        rows_table, rows_report = run(
            ROWS,
            mapped,
            engine,
            mode=mode,  # type: ignore[arg-type]
            rejects_path=rejects_path,
            source=source,
            fmt="criteo",
            loader=lambda eng, rel, f: _load_rows(eng, rel, originals[f.display], mapping),
        )
    except DataError as exc:
        if not exc.problems:
            raise
        raise DataError(
            rename_problems(exc.problems, FIELDS),
            hint="Row numbers count data rows from 1 (row r is line r+1 of the TSV file). The "
            "column names the Criteo field and, after the arrow, what it maps to. Fix these "
            "rows, or read in lenient mode (--lenient) to move them to a rejects file.",
        ) from None
    rows = to_pandas(rows_table)
    events, merged = expand(rows)
    table = pa.Table.from_pandas(events, preserve_index=False)
    table = table.cast(
        pa.schema(
            [
                pa.field(
                    n,
                    pa.timestamp("us", tz="UTC")
                    if n == "timestamp"
                    else (pa.float64() if n in ("cost", "value") else pa.string()),
                )
                for n in EVENTS.names
            ]
        )
    )
    present = ["device_id", "timestamp", "event_type", "channel", "campaign", "cost", "event_id"]
    table = table.select(present)
    from gaelp_bayes.io.engines import create_engine

    second = create_engine(engine.name)  # a fresh session: the pipeline's names are taken
    second.register_arrow("gb_criteo_events", table)
    described = second.fetch("DESCRIBE gb_criteo_events")
    types = {n: source_type(t) for n, t, *_ in described}

    def events_loader(eng: Engine, relation: str, f: SourceFile) -> LoadedSource:
        eng.execute(
            f"CREATE TEMP VIEW {quote(relation)} AS SELECT *, "
            f"CAST(row_number() OVER () AS BIGINT) AS {ROW} FROM gb_criteo_events"
        )
        return LoadedSource(types=types, rows=table.num_rows)

    one = replace(files[0], display=source, columns=tuple(present))
    with second:
        out, report = run(
            EVENTS, [one], second, mode="strict", rejects_path=None, source=source,
            fmt="criteo", loader=events_loader,
        )  # fmt: skip
    n_rows = rows_report.rows_read
    report.files = rows_report.files
    report.rows_read = report.rows_kept + rows_report.rows_rejected
    report.rows_rejected = rows_report.rows_rejected
    report.rejects_by_reason = rows_report.rejects_by_reason
    report.problems = rename_problems(rows_report.problems, FIELDS)
    report.rejects_path = rows_report.rejects_path
    found = list(dict.fromkeys(c for f in files for c in f.columns))
    report.ignored_columns = [c for c in found if c not in USED]
    by = report.summary.by_type if report.summary is not None else {}
    report.notes = [
        f"read as a Criteo attribution export: {n_rows:,} TSV rows ({rows_report.rows_rejected:,}"
        f" rejected) gave {by.get('impression', 0):,} impressions, {by.get('click', 0):,} "
        f"clicks and {by.get('conversion', 0):,} conversions ({merged:,} repeated "
        "conversion_id rows merged); rows and counts above are events, except rejected rows "
        f"(TSV rows). Timestamps are anchored at {mapping.criteo.start} (mapping "
        "[criteo] start; docs/exports.md).",
        *rows_report.notes,
        *[n for n in report.notes if n not in rows_report.notes],
    ]
    return out, report


# --- writer ------------------------------------------------------------------------

_DAY_S = 86_400


def _hash_int(values: pd.Series) -> pd.Series:
    return values.astype(str).map(lambda v: str(int(hashlib.sha1(v.encode()).hexdigest()[:7], 16)))


def to_frame(events: pd.DataFrame, start: pd.Timestamp | None = None) -> tuple[pd.DataFrame, str]:
    """Criteo rows for contract ``events`` and the start they are relative to.

    Rows are the impressions (second resolution, relative to the first
    impression's second unless ``start`` is given). A click marks the
    device's latest impression of the same channel at or before it; each
    impression carries the device's next conversion within 30 days (the
    dataset's window) and its ``conversion_id``, so a conversion is exported
    only when an impression of the device precedes it within 30 days with no
    other conversion of the device in between.
    """
    ev = events.copy()
    ev["timestamp"] = pd.to_datetime(ev["timestamp"], utc=True)
    imps = ev[ev["event_type"] == "impression"].sort_values("timestamp", kind="stable")
    imps = imps.reset_index(drop=True)
    if start is None:
        start = imps["timestamp"].min().floor("s") if len(imps) else pd.Timestamp(0, tz="UTC")
    start = pd.Timestamp(start)
    if start.tzinfo is None:
        start = start.tz_localize("UTC")

    def secs(ts: pd.Series) -> pd.Series:
        return ((ts - start) // pd.Timedelta(seconds=1)).astype("int64")

    imps["_i"] = np.arange(len(imps))
    imps["_t"] = secs(imps["timestamp"])
    # clicks -> latest impression of the device and channel at or before the click
    clicks = ev[ev["event_type"] == "click"].sort_values("timestamp", kind="stable")
    clicked = np.zeros(len(imps), bool)
    if len(clicks) and len(imps):
        m = pd.merge_asof(
            clicks[["timestamp", "device_id", "channel"]],
            imps[["timestamp", "device_id", "channel", "_i"]],
            on="timestamp",
            by=["device_id", "channel"],
            direction="backward",
        )
        idx = m["_i"].dropna().astype(int).to_numpy()
        clicked[idx] = True
    imps["click"] = clicked.astype(int)
    # conversions -> every impression of the device in the 30 days before
    conv = ev[ev["event_type"] == "conversion"].sort_values("timestamp", kind="stable")
    conv = conv.assign(
        _cid=_hash_int(conv["device_id"].astype(str) + "|" + conv["timestamp"].astype(str))
    )
    imps = imps.sort_values("timestamp", kind="stable")
    if len(conv) and len(imps):
        m = pd.merge_asof(
            imps[["timestamp", "device_id", "_i"]],
            conv[["timestamp", "device_id", "_cid"]].rename(columns={"timestamp": "_ct"}),
            left_on="timestamp",
            right_on="_ct",
            by="device_id",
            direction="forward",
            tolerance=pd.Timedelta(days=30),
        ).set_index("_i")
        imps = imps.set_index("_i", drop=False).rename_axis(None)
        imps["_ct"] = m["_ct"]
        imps["_cid"] = m["_cid"]
    else:
        imps["_ct"] = pd.NaT
        imps["_cid"] = None
    imps = imps.sort_values(["timestamp", "_i"], kind="stable").reset_index(drop=True)
    has = imps["_ct"].notna()
    conv_t = pd.Series(-1, index=imps.index, dtype="int64")
    conv_t[has] = secs(pd.to_datetime(imps.loc[has, "_ct"], utc=True))
    # click position / number among the clicked impressions before each conversion
    key = imps["_cid"].where(has, None)
    clicked_conv = (imps["click"] == 1) & has
    click_nb = clicked_conv.groupby(key).transform("sum").where(has, -1)
    click_pos = clicked_conv.groupby(key).cumsum().sub(1).where(clicked_conv, -1)
    last_click = imps["_t"].where(imps["click"] == 1)
    prev_click = last_click.groupby(imps["device_id"]).transform(lambda s: s.shift().ffill())
    since = (imps["_t"] - prev_click).fillna(-1).astype("int64")
    frame = pd.DataFrame(
        {
            "timestamp": imps["_t"],
            "uid": imps["device_id"],
            "campaign": imps["channel"],
            "conversion": has.astype(int),
            "conversion_timestamp": conv_t,
            "conversion_id": imps["_cid"].where(has, "-1"),
            "attribution": (has & (click_nb > 0)).astype(int),
            "click": imps["click"],
            "click_pos": click_pos.astype("int64"),
            "click_nb": click_nb.fillna(-1).astype("int64"),
            "cost": imps["cost"].astype(float),
            "cpo": np.where(has & (click_nb > 0), 0.0, -1.0),
            "time_since_last_click": since,
        }
    )
    hashed = {
        "cat1": "device_type", "cat2": "user_agent", "cat3": "geo",
    }  # fmt: skip
    for i in range(1, 10):
        name = f"cat{i}"
        src = hashed.get(name)
        frame[name] = _hash_int(imps[src]) if src in imps else _hash_int(imps["channel"] + f"|{i}")
    return frame, start.strftime("%Y-%m-%dT%H:%M:%SZ")


def write(
    events: pd.DataFrame, out_dir: str | Path, provenance: str = "", start: str | None = None
) -> tuple[list[Path], str]:
    """Write contract ``events`` as ``criteo_attribution_dataset.tsv.gz``;
    returns the path and the start date the relative timestamps count from."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    frame, start_s = to_frame(events, pd.Timestamp(start) if start else None)
    path = out_dir / "criteo_attribution_dataset.tsv.gz"
    frame.to_csv(path, sep="\t", index=False, compression={"method": "gzip", "mtime": 0})
    return [path], start_s
