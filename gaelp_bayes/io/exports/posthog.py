"""PostHog event export (CSV or JSON lines) <-> contract events.

PostHog events are ``uuid, event, distinct_id, timestamp, properties`` (and,
in batch exports, ``person_properties``; https://posthog.com/docs/data/events).
JSON lines carry ``properties`` as an object (or as a JSON string, as the
warehouse table stores it); CSV exports flatten it into ``properties.$os``,
``properties.utm_source``, ... columns (and ``person_properties.<key>``).

Field mapping (docs/exports.md has the full table):

==============  =================================================================
contract        PostHog
==============  =================================================================
device_id       ``properties.$device_id``, else ``distinct_id``
user_id         ``distinct_id`` when it differs from ``$device_id`` (identified);
                else the user a ``$identify`` event (``$anon_distinct_id``) gave
                the device; else ``person_properties[user_id_property]`` if set
timestamp       ``timestamp`` (ISO 8601, any offset)
event_type      ``event`` via the mapping: conversion events; ``$pageview`` /
                ``$screen`` with an ad click id -> click, else -> visit (only
                the first of its ``$session_id``); others skipped and counted
channel         ``utm_source``/``utm_medium`` -> channel rules; else the click
                id's network; else ``$referring_domain`` (``$direct`` -> direct)
campaign        ``utm_campaign``
value           first of ``revenue``, ``value``, ``$revenue``, ``price`` (conversions)
device_type     ``$device_type`` (lower-cased; anything but mobile/desktop/tablet
                -> other)
user_agent      ``$os`` "/" ``$browser``
ip_prefix       ``$ip`` truncated on read to its /24 (IPv6: /48); never kept whole
geo             ``$geoip_subdivision_1_name``
segment         ``person_properties.segment``, else ``properties.segment``
event_id        ``uuid``
==============  =================================================================

Not carried: impressions and cost (PostHog does not see ad impressions).
"""

from __future__ import annotations

import csv
import hashlib
import json
import uuid as uuidlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from gaelp_bayes.errors import DataError
from gaelp_bayes.io.engines.base import ROW, Engine, literal, quote
from gaelp_bayes.io.exports.common import (
    Prepared,
    channel_sql,
    finish_mapped,
    has_click_id,
    in_list,
    ip_prefix_sql,
    register_json_lines,
    require_duckdb,
    scrub_ips,
    text,
)
from gaelp_bayes.io.exports.ga4 import channel_tags
from gaelp_bayes.io.exports.mapping import Mapping
from gaelp_bayes.io.sources import SourceFile

LABEL = "PostHog"
COLUMNS = (
    "device_id", "timestamp", "event_type", "channel", "user_id", "campaign", "value",
    "device_type", "ip_prefix", "user_agent", "geo", "segment", "event_id",
)  # fmt: skip
FIELDS = {
    "device_id": "distinct_id / properties.$device_id",
    "user_id": "distinct_id",
    "timestamp": "timestamp",
    "event_type": "event",
    "channel": "properties.utm_source / utm_medium / $referring_domain",
    "campaign": "properties.utm_campaign",
    "value": "properties.revenue",
    "device_type": "properties.$device_type",
    "ip_prefix": "properties.$ip",
    "user_agent": "properties.$os / $browser",
    "geo": "properties.$geoip_subdivision_1_name",
    "segment": "person_properties.segment",
    "event_id": "uuid",
}
USED = {"uuid", "event", "distinct_id", "timestamp", "properties", "person_properties"}
JSON_SCHEMA = json.dumps(
    {
        "uuid": "VARCHAR",
        "event": "VARCHAR",
        "distinct_id": "VARCHAR",
        "timestamp": "VARCHAR",
        "properties": "JSON",
        "person_properties": "JSON",
    }
)
#: click id -> (source, medium) when a landing has a click id but no UTM tags
CLICK_ID_SOURCES = {
    "gclid": ("google", "cpc"),
    "gbraid": ("google", "cpc"),
    "wbraid": ("google", "cpc"),
    "dclid": ("dv360", "display"),
    "fbclid": ("facebook", "paid_social"),
    "msclkid": ("bing", "cpc"),
    "ttclid": ("tiktok", "paid_social"),
    "twclid": ("twitter", "paid_social"),
    "li_fat_id": ("linkedin", "paid_social"),
    "mc_cid": ("mailchimp", "email"),
}


def _json_obj(col: str) -> str:
    """SQL: a JSON column that may hold an object or a JSON string of one."""
    inner = f"json_extract_string({col}, '$')"
    return (
        f"CASE WHEN json_type({col}) = 'VARCHAR' THEN CASE WHEN json_valid({inner}) "
        f"THEN CAST({inner} AS JSON) END ELSE {col} END"
    )


def load(engine: Engine, relation: str, source: SourceFile, mapping: Mapping) -> Prepared:
    """Register ``relation``: the file's events mapped to the contract columns."""
    require_duckdb(engine, LABEL)
    m = mapping.posthog
    raw = f"{relation}_ph"
    malformed: list = []
    blank = 0
    if source.format == "json":
        malformed, blank = register_json_lines(engine, raw, source, JSON_SCHEMA)
        base = (
            f"SELECT *, {_json_obj('properties')} AS _p, {_json_obj('person_properties')} AS _pp "
            f"FROM {quote(raw)}"
        )

        def prop(k: str) -> str:
            return text(f"json_extract_string(_p, {literal(f'$.{json.dumps(k)}')})")

        def person(k: str) -> str:
            return text(f"json_extract_string(_pp, {literal(f'$.{json.dumps(k)}')})")

        def top(k: str) -> str:
            return text(quote(k))

    elif source.format in ("csv", "parquet"):  # CSV: flattened properties.<key> columns
        if source.format == "csv":
            from gaelp_bayes.io.csv_text import read_csv_text

            table, loaded_csv = read_csv_text(source)
            engine.register_arrow(raw, table)
            # a malformed line's raw text may hold an address: cut it like $ip
            malformed = [replace(m, text=scrub_ips(m.text)) for m in loaded_csv.malformed]
            blank = loaded_csv.empty_rows
        else:
            scan = f"read_parquet({literal(str(source.path))}, file_row_number = true)"
            engine.execute(
                f"CREATE TEMP VIEW {quote(raw)} AS SELECT * EXCLUDE (file_row_number), "
                f"file_row_number + 1 AS {ROW} FROM {scan}"
            )
        cols = set(source.columns)
        # A whole ``properties`` column (JSON text, or a record in Parquet) is read
        # too; flattened ``properties.<key>`` columns take precedence.
        extra = []
        for name, alias in (("properties", "_p"), ("person_properties", "_pp")):
            if name in cols:
                types = dict((n, t) for n, t, *_ in engine.fetch(f"DESCRIBE {quote(raw)}"))
                col = quote(name)
                as_json = (
                    f"to_json({col})"
                    if str(types.get(name, "")).upper().startswith(("STRUCT", "MAP"))
                    else f"CASE WHEN json_valid(CAST({col} AS VARCHAR)) "
                    f"THEN CAST(CAST({col} AS VARCHAR) AS JSON) END"
                )
                extra.append(f"{as_json} AS {alias}")
            else:
                extra.append(f"CAST(NULL AS JSON) AS {alias}")
        base = f"SELECT *, {', '.join(extra)} FROM {quote(raw)}"

        def top(k: str) -> str:
            return text(quote(k)) if k in cols else "CAST(NULL AS VARCHAR)"

        def prop(k: str) -> str:
            path = literal(f"$.{json.dumps(k)}")
            return f"coalesce({top(f'properties.{k}')}, {text(f'json_extract_string(_p, {path})')})"

        def person(k: str) -> str:
            path = literal(f"$.{json.dumps(k)}")
            flat = top(f"person_properties.{k}")
            return f"coalesce({flat}, {text(f'json_extract_string(_pp, {path})')})"

    else:
        raise DataError(
            f"{source.display}: a PostHog export must be CSV or JSON lines (or Parquet), "
            f"not {source.format}."
        )
    cid_present = " OR ".join(f"{prop(c)} IS NOT NULL" for c in mapping.click_ids) or "FALSE"
    cid_source = " ".join(
        f"WHEN {prop(c)} IS NOT NULL THEN {literal(CLICK_ID_SOURCES.get(c, (c, 'cpc'))[0])}"
        for c in mapping.click_ids
    )
    values = [prop(v) for v in m.value_properties]
    flat = {
        "uuid": top("uuid"),
        "name": top("event"),
        "did": top("distinct_id"),
        "ts": top("timestamp"),
        "dev_prop": prop("$device_id"),
        "anon": prop("$anon_distinct_id"),
        "session": prop("$session_id"),
        "url": prop("$current_url"),
        "ref": prop("$referring_domain"),
        "utm_source": prop("utm_source"),
        "utm_medium": prop("utm_medium"),
        "utm_campaign": prop("utm_campaign"),
        "cid": f"({cid_present})",
        "cid_source": f"CASE {cid_source} END" if cid_source else "NULL",
        "cid_medium": "CASE "
        + " ".join(
            f"WHEN {prop(c)} IS NOT NULL THEN {literal(CLICK_ID_SOURCES.get(c, (c, 'cpc'))[1])}"
            for c in mapping.click_ids
        )
        + " END"
        if mapping.click_ids
        else "NULL",
        "revenue": f"coalesce({', '.join(values)})" if values else "NULL",
        "category": f"lower({prop('$device_type')})",
        "os": prop("$os"),
        "browser": prop("$browser"),
        # the raw address never leaves this step
        "ip": ip_prefix_sql(prop("$ip")),
        "geo": prop("$geoip_subdivision_1_name"),
        "segment": f"coalesce({person(m.segment_property)}, {prop(m.segment_property)})"
        if m.segment_property
        else "NULL",
        "uid_person": person(m.user_id_property) if m.user_id_property else "NULL",
    }
    stage1 = (
        f"SELECT {ROW}, "
        + ", ".join(f"{e} AS {k}" for k, e in flat.items())
        + f" FROM ({base}) AS b"
    )
    flat_rel = quote(f"{relation}_flat")
    engine.execute(f"CREATE TEMP TABLE {flat_rel} AS {stage1}")

    click = f"(cid OR {has_click_id('url', mapping)})"
    et0 = (
        "CASE WHEN name IS NULL THEN NULL "
        f"WHEN {in_list('name', m.conversion_events)} THEN 'conversion' "
        f"WHEN {in_list('name', m.click_events)} AND {click} THEN 'click' "
        f"WHEN {in_list('name', m.visit_events)} THEN 'visit' "
        f"WHEN {in_list('name', m.impression_events)} THEN 'impression' END"
    )
    if m.one_visit_per_session:
        first = (
            f"row_number() OVER (PARTITION BY session, et0 = 'visit' ORDER BY "
            f"TRY_CAST(ts AS TIMESTAMPTZ) NULLS LAST, {ROW}) = 1 "
            "OR session IS NULL OR et0 <> 'visit'"
        )
        et = f"CASE WHEN {first} THEN et0 END"
    else:
        et = "et0"
    has_utm = "(utm_source IS NOT NULL OR utm_medium IS NOT NULL)"
    src = (
        f"CASE WHEN {has_utm} THEN utm_source WHEN cid THEN cid_source "
        "WHEN ref IS NULL OR ref = '$direct' THEN NULL ELSE ref END"
    )
    med = (
        f"CASE WHEN {has_utm} THEN utm_medium WHEN cid THEN cid_medium "
        "WHEN ref IS NULL OR ref = '$direct' THEN NULL ELSE 'referral' END"
    )
    identified = (
        "CASE WHEN dev_prop IS NOT NULL AND did IS NOT NULL AND did <> dev_prop THEN did END"
    )
    identify = in_list("name", ("$identify",))
    engine.execute(
        f"CREATE TEMP TABLE {quote(relation + '_ids')} AS SELECT anon, min(did) AS uid "
        f"FROM {flat_rel} WHERE {identify} AND anon IS NOT NULL AND did IS NOT NULL "
        "AND anon <> did GROUP BY anon"
    )
    touch = "et IN ('impression', 'click', 'visit')"
    items = {
        "device_id": "coalesce(dev_prop, did)",
        "timestamp": "ts",
        "event_type": "et",
        "channel": f"CASE WHEN {touch} THEN {channel_sql('src', 'med', mapping)} END",
        "user_id": "coalesce(uid_identified, ids.uid, uid_person)",
        "campaign": f"CASE WHEN {touch} THEN utm_campaign END",
        "value": "CASE WHEN et = 'conversion' THEN revenue END",
        "device_type": "CASE WHEN category IN ('mobile', 'desktop', 'tablet') THEN category "
        "WHEN category IS NOT NULL THEN 'other' END",
        "ip_prefix": "ip",
        "user_agent": "NULLIF(concat_ws('/', os, browser), '')",
        "geo": "geo",
        "segment": "segment",
        "event_id": "uuid",
    }
    select = ", ".join(f"{expr} AS {quote(k)}" for k, expr in items.items())
    typed = (
        f"SELECT *, {et} AS et, {src} AS src, {med} AS med, {identified} AS uid_identified "
        f"FROM (SELECT *, {et0} AS et0 FROM {flat_rel}) AS e"
    )
    all_rel = quote(f"{relation}_all")
    engine.execute(
        f"CREATE TEMP TABLE {all_rel} AS SELECT t.{ROW}, {select}, name AS _gb_name "
        f"FROM ({typed}) AS t LEFT JOIN {quote(relation + '_ids')} ids "
        "ON ids.anon = coalesce(t.dev_prop, t.did)"
    )
    return finish_mapped(engine, relation, all_rel, source, malformed, blank)


# --- writer ------------------------------------------------------------------------

_NS = uuidlib.UUID("6f1c1d3e-2b0a-4c55-9a51-0b6f3d1e2a77")


def _none(x: object) -> object:
    return None if x is None or x is pd.NA or (isinstance(x, float) and np.isnan(x)) else x


def _host(prefix: str, key: str) -> str:
    """A full (synthetic) address inside ``prefix`` (``a.b.c.0/24``), as PostHog would log."""
    net = prefix.split("/")[0].rsplit(".", 1)[0]
    octet = int(hashlib.sha1(key.encode()).hexdigest()[:4], 16) % 254 + 1
    return f"{net}.{octet}"


def to_records(events: pd.DataFrame, site: str = "https://www.example.com") -> list[dict]:
    """PostHog events (``uuid, event, distinct_id, timestamp, properties,
    person_properties``) for contract ``events``. Impressions are dropped; a
    visit is its session's first ``$pageview``, followed by a second
    ``$pageview`` and a ``$pageleave`` of the same session."""
    ev = events[events["event_type"] != "impression"].reset_index(drop=True)
    ts = pd.to_datetime(ev["timestamp"], utc=True)
    out = []
    for i, row in enumerate(ev.itertuples(index=False)):
        kind = row.event_type
        dev = row.device_id
        uid = _none(row.user_id)
        eid = _none(getattr(row, "event_id", None)) or f"{dev}-{i}"
        stamp = ts.iloc[i].strftime("%Y-%m-%dT%H:%M:%S.%f") + "+00:00"
        props: dict[str, object] = {
            "$device_id": dev,
            "$session_id": str(uuidlib.uuid5(_NS, f"s-{eid}")),
            "$lib": "web",
        }
        ch = _none(row.channel)
        camp = _none(row.campaign)
        url = site + "/"
        if kind in ("click", "visit") and ch is not None and ch != "direct":
            s, m, cid = channel_tags(str(ch))
            props.update({"utm_source": s, "utm_medium": m})
            if camp is not None:
                props["utm_campaign"] = camp
            url = f"{site}/landing?utm_source={s}&utm_medium={m}"
            if kind == "click":
                token = hashlib.sha1(f"{dev}|{stamp}".encode()).hexdigest()[:20]
                props[cid] = token
                url += f"&{cid}={token}"
            props["$referring_domain"] = f"{s}.example"
        else:
            props["$referring_domain"] = "$direct"
        props["$current_url"] = url
        if kind == "conversion" and _none(row.value) is not None:
            props["revenue"] = float(row.value)
        dt = _none(row.device_type)
        if dt is not None:
            props["$device_type"] = str(dt).capitalize()
        ua = _none(row.user_agent)
        if ua is not None:
            os_, _, browser = str(ua).partition("/")
            props["$os"] = os_
            if browser:
                props["$browser"] = browser
        ip = _none(getattr(row, "ip_prefix", None))
        if ip is not None:
            props["$ip"] = _host(str(ip), f"{dev}|{eid}")
        if _none(row.geo) is not None:
            props["$geoip_subdivision_1_name"] = row.geo
        person = {"segment": row.segment} if _none(row.segment) is not None else {}
        out.append(
            {
                "uuid": str(uuidlib.uuid5(_NS, str(eid))),
                "event": {"click": "$pageview", "visit": "$pageview", "conversion": "purchase"}[
                    kind
                ],
                "distinct_id": uid if uid is not None else dev,
                "timestamp": stamp,
                "properties": props,
                "person_properties": person,
                "elements_chain": "",
            }
        )
        if kind == "visit":
            # the rest of the session: a second page (same $session_id, internal
            # referrer, no tags: not a new visit) and the page leave; both skipped
            keep = ("$device_id", "$session_id", "$lib", "$device_type", "$os", "$browser",
                    "$ip", "$geoip_subdivision_1_name")  # fmt: skip
            base = {k: v for k, v in props.items() if k in keep}
            for name, delay, extra in (
                ("$pageview", 0.5, {"$current_url": site + "/pricing",
                                    "$referring_domain": site.split("//")[-1]}),
                ("$pageleave", 10.0, {"$current_url": site + "/pricing"}),
            ):  # fmt: skip
                t = ts.iloc[i] + pd.Timedelta(seconds=delay)
                out.append(
                    {
                        "uuid": str(uuidlib.uuid5(_NS, f"{eid}-{name}")),
                        "event": name,
                        "distinct_id": uid if uid is not None else dev,
                        "timestamp": t.strftime("%Y-%m-%dT%H:%M:%S.%f") + "+00:00",
                        "properties": {**base, **extra},
                        "person_properties": person,
                        "elements_chain": "",
                    }
                )
    return out


CSV_COLUMNS = [
    "uuid", "event", "distinct_id", "timestamp",
    "properties.$device_id", "properties.$session_id", "properties.$lib",
    "properties.$current_url", "properties.$referring_domain",
    "properties.utm_source", "properties.utm_medium", "properties.utm_campaign",
    "properties.gclid", "properties.fbclid", "properties.dclid", "properties.mc_cid",
    "properties.revenue", "properties.$device_type", "properties.$os", "properties.$browser",
    "properties.$ip", "properties.$geoip_subdivision_1_name", "person_properties.segment",
    "elements_chain",
]  # fmt: skip


def write(
    events: pd.DataFrame, out_dir: str | Path, file_format: str = "csv", provenance: str = ""
) -> list[Path]:
    """Write contract ``events`` as a PostHog export: ``events.csv`` (properties
    flattened to ``properties.<key>`` columns) or ``events.jsonl`` (nested)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    records = to_records(events)
    if file_format == "json":
        path = out_dir / "events.jsonl"
        with path.open("w", encoding="utf-8") as fh:
            for r in records:
                fh.write(json.dumps(r, separators=(",", ":")) + "\n")
    elif file_format == "csv":
        path = out_dir / "events.csv"
        extra = sorted(
            {f"properties.{k}" for r in records for k in r["properties"]} - set(CSV_COLUMNS)
        )
        header = CSV_COLUMNS[:-1] + extra + CSV_COLUMNS[-1:]
        with path.open("w", encoding="utf-8", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(header)
            for r in records:
                flat = {k: r[k] for k in ("uuid", "event", "distinct_id", "timestamp")}
                flat.update({f"properties.{k}": v for k, v in r["properties"].items()})
                flat.update(
                    {f"person_properties.{k}": v for k, v in r["person_properties"].items()}
                )
                flat["elements_chain"] = r["elements_chain"]
                w.writerow(["" if flat.get(c) is None else flat.get(c) for c in header])
    else:
        raise ValueError(f"file_format must be 'csv' or 'json', not {file_format!r}")
    return [path]
