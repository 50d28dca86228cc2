"""GA4 BigQuery export (``events_YYYYMMDD`` / ``events_intraday_*``) <-> contract events.

Reads the tables as BigQuery exports them, newline-delimited JSON or Parquet,
nested exactly as in the export schema
(https://support.google.com/analytics/answer/7029846): ``event_params`` and
``user_properties`` are repeated ``{key, value: {string_value, int_value,
float_value, double_value}}`` records; ``device``, ``geo``,
``collected_traffic_source``, ``session_traffic_source_last_click`` and
``ecommerce`` are records. In JSON, INT64 values may be strings (BigQuery writes
them so) or numbers.

Field mapping (docs/exports.md has the full table):

====================================  ==========================================
contract                              GA4
====================================  ==========================================
device_id                             ``user_pseudo_id``
user_id                               ``user_id``
timestamp                             ``event_timestamp`` (UTC microseconds)
event_type                            ``event_name`` via the mapping: conversion
                                      events, visit events (``session_start``),
                                      click events (``page_view``) that carry an
                                      ad click id; others are skipped and counted
channel                               source/medium of the touch -> channel rules:
                                      ``collected_traffic_source``, else event
                                      params ``source``/``medium``, else UTM
                                      parameters of ``page_location``, else
                                      ``session_traffic_source_last_click``;
                                      ``traffic_source`` (the user's *first*
                                      source) is never used per event
campaign                              the same level's campaign name
value                                 ``ecommerce.purchase_revenue``, else
                                      ``event_value_in_usd`` (conversions only)
device_type                           ``device.category``
user_agent                            ``device.operating_system`` "/"
                                      ``device.web_info.browser``
geo                                   ``geo.region`` (``geo_field`` in the mapping)
segment                               ``user_properties[segment]``
====================================  ==========================================

Not carried by GA4: impressions and their cost, ``ip_prefix`` (GA4 exports no
IP), ``event_id`` (no event key in the export).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from gaelp_bayes.errors import DataError
from gaelp_bayes.io.engines.base import ROW, Engine, literal, quote
from gaelp_bayes.io.exports.common import (
    Prepared,
    channel_sql,
    expression_works,
    finish_mapped,
    has_click_id,
    in_list,
    register_json_lines,
    require_duckdb,
    text,
    url_param,
)
from gaelp_bayes.io.exports.mapping import Mapping
from gaelp_bayes.io.sources import SourceFile

LABEL = "GA4"
COLUMNS = (
    "device_id", "timestamp", "event_type", "channel", "user_id", "campaign", "value",
    "device_type", "user_agent", "geo", "segment",
)  # fmt: skip

#: contract column -> the GA4 field it comes from (for messages)
FIELDS = {
    "device_id": "user_pseudo_id",
    "user_id": "user_id",
    "timestamp": "event_timestamp",
    "event_type": "event_name",
    "channel": "collected_traffic_source",
    "campaign": "collected_traffic_source",
    "value": "ecommerce",
    "device_type": "device",
    "user_agent": "device",
    "geo": "geo",
    "segment": "user_properties",
}
USED = {
    "user_pseudo_id", "user_id", "event_timestamp", "event_name", "event_params",
    "collected_traffic_source", "session_traffic_source_last_click", "ecommerce",
    "event_value_in_usd", "device", "geo", "user_properties",
}  # fmt: skip

_VALUE = {"string_value": "VARCHAR", "int_value": "VARCHAR", "float_value": "VARCHAR",
          "double_value": "VARCHAR"}  # fmt: skip
_SOURCE = {"source": "VARCHAR", "medium": "VARCHAR", "campaign_name": "VARCHAR"}
#: The part of the export schema the reader uses, every leaf read as text.
JSON_SCHEMA = json.dumps(
    {
        "event_timestamp": "VARCHAR",
        "event_name": "VARCHAR",
        "event_params": [{"key": "VARCHAR", "value": _VALUE}],
        "event_value_in_usd": "VARCHAR",
        "user_id": "VARCHAR",
        "user_pseudo_id": "VARCHAR",
        "user_properties": [{"key": "VARCHAR", "value": _VALUE}],
        "device": {
            "category": "VARCHAR",
            "operating_system": "VARCHAR",
            "web_info": {"browser": "VARCHAR"},
        },
        "geo": {
            k: "VARCHAR"
            for k in ("city", "country", "continent", "region", "metro", "sub_continent")
        },
        "collected_traffic_source": {
            k: "VARCHAR"
            for k in (
                "manual_campaign_id",
                "manual_campaign_name",
                "manual_source",
                "manual_medium",
                "gclid",
                "dclid",
                "srsltid",
            )
        },
        "session_traffic_source_last_click": {"manual_campaign": _SOURCE},
        "ecommerce": {"purchase_revenue": "VARCHAR"},
    }
)


def _value_text(v: str) -> str:
    return (
        f"coalesce(CAST({v}.string_value AS VARCHAR), CAST({v}.int_value AS VARCHAR), "
        f"CAST({v}.double_value AS VARCHAR), CAST({v}.float_value AS VARCHAR))"
    )


def _param(records: str, key: str) -> str:
    return _value_text(f"list_filter({records}, lambda p: p.key = {literal(key)})[1].value")


def mapped_select(engine: Engine, raw: str, mapping: Mapping) -> tuple[str, str]:
    """(SQL over ``raw`` -> ``_gb_row``, export fields as flat text columns, SQL over
    that -> ``_gb_row``, contract columns and ``_gb_name``).

    Two steps so that the nested look-ups are computed once and the channel
    rules work on plain columns (one big nested expression plans very slowly).
    """
    m = mapping.ga4

    def field(*exprs: str) -> str:
        for e in exprs:
            if expression_works(engine, raw, e):
                return text(e)
        return "CAST(NULL AS VARCHAR)"

    has_params = expression_works(engine, raw, "event_params[1].value.string_value")
    has_props = expression_works(engine, raw, "user_properties[1].value.string_value")
    null = "CAST(NULL AS VARCHAR)"
    ts = "event_timestamp" if expression_works(engine, raw, "event_timestamp") else null
    ts_type = engine.fetch(f"SELECT typeof({ts}) FROM {quote(raw)} LIMIT 1")
    if not ts_type or ts_type[0][0] not in ("BIGINT", "INTEGER", "HUGEINT", "UBIGINT"):
        ts = text(ts)
    seg_key = m.segment_user_property
    # Each parameter's value record is looked up once (inner select), then read as text.
    looked_up = {
        f"v_{k}": f"list_filter(event_params, lambda p: p.key = {literal(k)})[1].value"
        for k in ("page_location", "source", "medium", "campaign")
        if has_params
    }
    if has_props and seg_key:
        looked_up["v_segment"] = (
            f"list_filter(user_properties, lambda p: p.key = {literal(seg_key)})[1].value"
        )

    def value(name: str) -> str:
        return text(_value_text(name)) if name in looked_up else null

    flat = {
        "dev": field("user_pseudo_id"),
        "uid": field("user_id"),
        "ts": ts,
        "name": field("event_name"),
        "url": value("v_page_location"),
        "ep_source": value("v_source"),
        "ep_medium": value("v_medium"),
        "ep_campaign": value("v_campaign"),
        "cts_source": field("collected_traffic_source.manual_source"),
        "cts_medium": field("collected_traffic_source.manual_medium"),
        "cts_campaign": field("collected_traffic_source.manual_campaign_name"),
        "cts_gclid": field("collected_traffic_source.gclid"),
        "cts_dclid": field("collected_traffic_source.dclid"),
        "st_source": field("session_traffic_source_last_click.manual_campaign.source"),
        "st_medium": field("session_traffic_source_last_click.manual_campaign.medium"),
        "st_campaign": field("session_traffic_source_last_click.manual_campaign.campaign_name"),
        "revenue": field("ecommerce.purchase_revenue"),
        "value_usd": field("event_value_in_usd"),
        "category": f"lower({field('device.category')})",
        "os": field("device.operating_system"),
        "browser": field("device.web_info.browser"),
        "geo": field(f"geo.{m.geo_field}") if re.fullmatch(r"\w+", m.geo_field) else null,
        "segment": value("v_segment"),
    }
    inner = ", ".join(f"{e} AS {k}" for k, e in looked_up.items())
    stage1 = (
        f"SELECT {ROW}, "
        + ", ".join(f"{e} AS {k}" for k, e in flat.items())
        + f" FROM (SELECT *{', ' + inner if inner else ''} FROM {quote(raw)}) AS r"
    )
    # Levels of evidence about the touch's source, most specific first.
    lv1 = "(cts_source IS NOT NULL OR cts_medium IS NOT NULL)"
    lv1b = "(cts_gclid IS NOT NULL OR cts_dclid IS NOT NULL)"
    lv2 = "(ep_source IS NOT NULL OR ep_medium IS NOT NULL)"
    u = {k: url_param("url", f"utm_{k}") for k in ("source", "medium", "campaign")}
    lv3 = f"({u['source']} IS NOT NULL OR {u['medium']} IS NOT NULL)"
    gsrc = "CASE WHEN cts_gclid IS NOT NULL THEN 'google' ELSE 'dv360' END"
    gmed = "CASE WHEN cts_gclid IS NOT NULL THEN 'cpc' ELSE 'display' END"

    def pick(a: str, b: str, c: str, d: str, e: str) -> str:
        return (
            f"CASE WHEN {lv1} THEN {a} WHEN {lv1b} THEN {b} WHEN {lv2} THEN {c} "
            f"WHEN {lv3} THEN {d} ELSE {e} END"
        )

    click_signal = (
        f"({lv1b} OR CASE WHEN url IS NULL OR NOT contains(url, '=') THEN FALSE "
        f"ELSE {has_click_id('url', mapping)} END)"
    )
    etype = (
        "CASE WHEN name IS NULL THEN NULL "
        f"WHEN {in_list('name', m.conversion_events)} THEN 'conversion' "
        f"WHEN {in_list('name', m.visit_events)} THEN 'visit' "
        f"WHEN {in_list('name', m.click_events)} THEN CASE WHEN {click_signal} THEN 'click' "
        "END "
        f"WHEN {in_list('name', m.impression_events)} THEN 'impression' END"
    )
    stage2 = (
        f"SELECT *, {etype} AS et, "
        f"{pick('cts_source', gsrc, 'ep_source', u['source'], 'st_source')} AS src, "
        f"{pick('cts_medium', gmed, 'ep_medium', u['medium'], 'st_medium')} AS med, "
        f"{pick('cts_campaign', 'cts_campaign', 'ep_campaign', u['campaign'], 'st_campaign')}"
        " AS camp FROM flat"
    )
    touch = "et IN ('impression', 'click', 'visit')"
    items = {
        "device_id": "dev",
        "timestamp": "ts",
        "event_type": "et",
        "channel": f"CASE WHEN {touch} THEN {channel_sql('src', 'med', mapping)} END",
        "user_id": "uid",
        "campaign": f"CASE WHEN {touch} THEN camp END",
        "value": "CASE WHEN et = 'conversion' THEN coalesce(revenue, value_usd) END",
        "device_type": "CASE WHEN category IN ('mobile', 'desktop', 'tablet') THEN category "
        "WHEN category IS NOT NULL THEN 'other' END",
        "user_agent": "NULLIF(concat_ws('/', os, browser), '')",
        "geo": "geo",
        "segment": "segment",
    }
    select = ", ".join(f"{expr} AS {quote(k)}" for k, expr in items.items())
    return stage1, f"SELECT {ROW}, {select}, name AS _gb_name FROM ({stage2}) AS typed"


def load(engine: Engine, relation: str, source: SourceFile, mapping: Mapping) -> Prepared:
    """Register ``relation``: the file's events mapped to the contract columns."""
    require_duckdb(engine, LABEL)
    raw = f"{relation}_ga4"
    malformed: list = []
    blank = 0
    if source.format == "parquet":
        scan = f"read_parquet({literal(str(source.path))}, file_row_number = true)"
        try:
            engine.execute(
                f"CREATE TEMP VIEW {quote(raw)} AS SELECT * EXCLUDE (file_row_number), "
                f"file_row_number + 1 AS {ROW} FROM {scan}"
            )
        except Exception as exc:
            raise DataError(f"{source.display}: cannot be read as Parquet ({exc}).") from None
    elif source.format == "json":
        malformed, blank = register_json_lines(engine, raw, source, JSON_SCHEMA)
    else:
        raise DataError(
            f"{source.display}: a GA4 export must be newline-delimited JSON or Parquet "
            "(BigQuery cannot export the nested events table as CSV); export with "
            "`bq extract --destination_format NEWLINE_DELIMITED_JSON` or PARQUET."
        )
    stage1, stage2 = mapped_select(engine, raw, mapping)
    all_rel = quote(f"{relation}_all")
    engine.execute(f"CREATE TEMP TABLE {all_rel} AS WITH flat AS ({stage1}) {stage2}")
    return finish_mapped(engine, relation, all_rel, source, malformed, blank)


# --- writer ------------------------------------------------------------------------

#: How the writer tags common channels (source, medium, click id parameter).
CHANNEL_TAGS: dict[str, tuple[str, str, str]] = {
    "search": ("google", "cpc", "gclid"),
    "social": ("facebook", "paid_social", "fbclid"),
    "display": ("dv360", "display", "dclid"),
    "video": ("youtube", "cpv", "gclid"),
    "email": ("newsletter", "email", "mc_cid"),
}


def channel_tags(channel: str) -> tuple[str, str, str]:
    """(source, medium, click id) the writers use for ``channel``."""
    return CHANNEL_TAGS.get(channel, (channel, channel, "gclid"))


def mapping_toml(channels: Sequence[str], extra: str = "") -> str:
    """A mapping file whose rules give back exactly ``channels`` from the writers' tags."""
    from gaelp_bayes.io.exports.mapping import toml_string

    lines = [
        "# Mapping for the SYNTHETIC example export written by gaelp-bayes example-data.",
        "# Exact rules for the channels the writer tagged; the default rules follow.",
        extra,
    ]
    for ch in channels:
        s, m, _ = channel_tags(ch)
        lines += [
            "[[channel_rules]]",
            f"source = {toml_string('^' + re.escape(s) + '$')}",
            f"medium = {toml_string('^' + re.escape(m) + '$')}",
            f"channel = {toml_string(ch)}",
            "",
        ]
    return "\n".join(lines)


def _token(*parts: object) -> str:
    import hashlib

    return hashlib.sha1("|".join(map(str, parts)).encode()).hexdigest()[:20]


def _kv(key: str, value: object) -> dict:
    v = {"string_value": None, "int_value": None, "float_value": None, "double_value": None}
    if isinstance(value, bool | np.bool_):
        v["int_value"] = int(value)
    elif isinstance(value, int | np.integer):
        v["int_value"] = int(value)
    elif isinstance(value, float | np.floating):
        v["double_value"] = float(value)
    else:
        v["string_value"] = str(value)
    return {"key": key, "value": v}


def _none(x: object) -> object:
    return None if x is None or (isinstance(x, float) and np.isnan(x)) or x is pd.NA else x


def to_records(
    events: pd.DataFrame, site: str = "https://www.example.com", session_events: bool = True
) -> list[dict]:
    """GA4 export rows (nested dicts, BigQuery field names) for contract ``events``.

    Impressions are dropped (GA4 does not see ad impressions); clicks become a
    ``page_view`` landing with UTM parameters and a click id, visits a
    ``session_start`` (with the session's source, or ``(direct)``) followed by
    the session's first ``page_view`` (no click id) and a ``user_engagement``
    event (unless ``session_events`` is false), and conversions a ``purchase``
    with ``ecommerce.purchase_revenue``.
    """
    ev = events[events["event_type"] != "impression"].reset_index(drop=True)
    ts = pd.to_datetime(ev["timestamp"], utc=True)
    micros = (ts - pd.Timestamp("1970-01-01", tz="UTC")) // pd.Timedelta(microseconds=1)
    # the user's first acquisition source (user-scoped; readers must not use it per event)
    touched = events[events["channel"].notna()].sort_values("timestamp", kind="stable")
    first = touched.groupby("device_id", sort=False)["channel"].first().to_dict()
    out = []
    for i, row in enumerate(ev.itertuples(index=False)):
        kind = row.event_type
        ch = _none(row.channel)
        camp = _none(row.campaign)
        us = int(micros.iloc[i])
        session = us // 1_000_000
        name = {"click": "page_view", "visit": "session_start", "conversion": "purchase"}[kind]
        params = [_kv("ga_session_id", int(session)), _kv("engaged_session_event", 1)]
        cts = None
        stlc = None
        url = site + "/"
        if kind in ("click", "visit") and ch is not None and ch != "direct":
            s, m, cid = channel_tags(str(ch))
            query = f"?utm_source={s}&utm_medium={m}" + (f"&utm_campaign={camp}" if camp else "")
            cts = {
                "manual_campaign_id": None,
                "manual_campaign_name": camp,
                "manual_source": s,
                "manual_medium": m,
                "manual_term": None,
                "manual_content": None,
                "gclid": None,
                "dclid": None,
                "srsltid": None,
            }
            if kind == "click":
                token = _token(row.device_id, us)
                query += f"&{cid}={token}"
                if cid in ("gclid", "dclid"):
                    cts[cid] = token
            url = site + "/landing" + query
            stlc = {"manual_campaign": {"campaign_name": camp, "source": s, "medium": m}}
        elif kind == "visit":
            stlc = {
                "manual_campaign": {"campaign_name": None, "source": "(direct)", "medium": "(none)"}
            }
        params.append(_kv("page_location", url))
        value = _none(row.value)
        if kind == "conversion" and value is not None:
            params += [_kv("value", float(value)), _kv("currency", "USD")]
        os_, _, browser = str(_none(row.user_agent) or "").partition("/")
        seg = _none(row.segment)
        fc = first.get(row.device_id)
        if fc is None or fc == "direct":
            ts_src = {"name": "(direct)", "medium": "(none)", "source": "(direct)"}
        else:
            s, m, _ = channel_tags(str(fc))
            ts_src = {"name": "(not set)", "medium": m, "source": s}
        out.append(
            {
                "event_date": ts.iloc[i].strftime("%Y%m%d"),
                "event_timestamp": us,
                "event_name": name,
                "event_params": params,
                "event_previous_timestamp": None,
                "event_value_in_usd": float(value) if value is not None else None,
                "event_bundle_sequence_id": None,
                "event_server_timestamp_offset": None,
                "user_id": _none(row.user_id),
                "user_pseudo_id": row.device_id,
                "privacy_info": {
                    "analytics_storage": "Yes",
                    "ads_storage": "Yes",
                    "uses_transient_token": "No",
                },
                "user_properties": [_kv("segment", seg)] if seg is not None else [],
                "user_first_touch_timestamp": None,
                "device": {
                    "category": _none(row.device_type),
                    "mobile_brand_name": None,
                    "operating_system": os_ or None,
                    "language": "en-us",
                    "web_info": {"browser": browser or None, "hostname": "www.example.com"},
                },
                "geo": {
                    "city": None,
                    "country": "Synthetic",
                    "continent": None,
                    "region": _none(row.geo),
                    "sub_continent": None,
                    "metro": None,
                },
                "traffic_source": ts_src,
                "collected_traffic_source": cts,
                "session_traffic_source_last_click": stlc,
                "stream_id": "0000000000",
                "platform": "WEB",
                "ecommerce": {"purchase_revenue": float(value), "transaction_id": _token(us)}
                if kind == "conversion" and value is not None
                else None,
            }
        )
        if kind == "visit" and session_events:
            # what a session logs besides session_start: its first page_view
            # (same tags, no click id: not a click) and an engagement ping; the
            # reader skips both and counts them
            view = dict(out[-1], event_name="page_view", event_timestamp=us + 500_000)
            if cts is not None:
                view["collected_traffic_source"] = dict(cts, gclid=None, dclid=None)
            engaged = dict(
                out[-1],
                event_name="user_engagement",
                event_timestamp=us + 10_000_000,
                event_params=[*params[:2], _kv("engagement_time_msec", 9500)],
            )
            for extra in (view, engaged):
                extra["event_date"] = _day(extra["event_timestamp"])
            out += [view, engaged]
    return out


def _day(micros: int) -> str:
    return pd.Timestamp(micros, unit="us", tz="UTC").strftime("%Y%m%d")


def write(
    events: pd.DataFrame, out_dir: str | Path, file_format: str = "parquet", provenance: str = ""
) -> list[Path]:
    """Write contract ``events`` as a GA4 BigQuery export: one ``events_YYYYMMDD``
    file per day, as ``bq extract`` writes them (NDJSON with INT64 as strings,
    or Parquet). Returns the paths written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    records = to_records(events)
    by_day: dict[str, list[dict]] = {}
    for r in records:
        by_day.setdefault(r["event_date"], []).append(r)
    paths = []
    for day, rows in sorted(by_day.items()):
        if file_format == "json":
            path = out_dir / f"events_{day}.json"
            with path.open("w", encoding="utf-8") as fh:
                for r in rows:
                    r = dict(r, event_timestamp=str(r["event_timestamp"]))
                    for p in r["event_params"]:
                        if p["value"]["int_value"] is not None:
                            p["value"] = dict(p["value"], int_value=str(p["value"]["int_value"]))
                    fh.write(json.dumps(_drop_nulls(r), separators=(",", ":")) + "\n")
        elif file_format == "parquet":
            import pyarrow.parquet as pq

            path = out_dir / f"events_{day}.parquet"
            table = pa.Table.from_pylist(rows, schema=ARROW_SCHEMA)
            meta = {b"gaelp_bayes.provenance": provenance.encode()} if provenance else None
            pq.write_table(table.replace_schema_metadata(meta), path)
        else:
            raise ValueError(f"file_format must be 'json' or 'parquet', not {file_format!r}")
        paths.append(path)
    return paths


def _drop_nulls(obj: object) -> object:
    """BigQuery's JSON export leaves out NULL fields."""
    if isinstance(obj, dict):
        return {k: _drop_nulls(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, list):
        return [_drop_nulls(v) for v in obj]
    return obj


_KV = pa.struct(
    [
        ("key", pa.string()),
        (
            "value",
            pa.struct(
                [
                    ("string_value", pa.string()),
                    ("int_value", pa.int64()),
                    ("float_value", pa.float64()),
                    ("double_value", pa.float64()),
                ]
            ),
        ),
    ]
)
_S = pa.string()
#: The export schema's fields that the writer fills (BigQuery types as Arrow types).
ARROW_SCHEMA = pa.schema(
    [
        ("event_date", _S),
        ("event_timestamp", pa.int64()),
        ("event_name", _S),
        ("event_params", pa.list_(_KV)),
        ("event_previous_timestamp", pa.int64()),
        ("event_value_in_usd", pa.float64()),
        ("event_bundle_sequence_id", pa.int64()),
        ("event_server_timestamp_offset", pa.int64()),
        ("user_id", _S),
        ("user_pseudo_id", _S),
        (
            "privacy_info",
            pa.struct(
                [("analytics_storage", _S), ("ads_storage", _S), ("uses_transient_token", _S)]
            ),
        ),
        ("user_properties", pa.list_(_KV)),
        ("user_first_touch_timestamp", pa.int64()),
        (
            "device",
            pa.struct(
                [
                    ("category", _S),
                    ("mobile_brand_name", _S),
                    ("operating_system", _S),
                    ("language", _S),
                    ("web_info", pa.struct([("browser", _S), ("hostname", _S)])),
                ]
            ),
        ),
        (
            "geo",
            pa.struct(
                [
                    (k, _S)
                    for k in ("city", "country", "continent", "region", "sub_continent", "metro")
                ]
            ),
        ),
        ("traffic_source", pa.struct([("name", _S), ("medium", _S), ("source", _S)])),
        (
            "collected_traffic_source",
            pa.struct(
                [
                    (k, _S)
                    for k in (
                        "manual_campaign_id",
                        "manual_campaign_name",
                        "manual_source",
                        "manual_medium",
                        "manual_term",
                        "manual_content",
                        "gclid",
                        "dclid",
                        "srsltid",
                    )
                ]
            ),
        ),
        (
            "session_traffic_source_last_click",
            pa.struct(
                [
                    (
                        "manual_campaign",
                        pa.struct([("campaign_name", _S), ("source", _S), ("medium", _S)]),
                    )
                ]
            ),
        ),
        ("stream_id", _S),
        ("platform", _S),
        ("ecommerce", pa.struct([("purchase_revenue", pa.float64()), ("transaction_id", _S)])),
    ]
)
