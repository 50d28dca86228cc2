"""Export readers on small hand-written fixtures in each tool's published layout.

No real GA4, PostHog or Criteo file is available offline, so every fixture
here is written by hand, field by field, following the published schema:

* GA4 BigQuery export, "[GA4] BigQuery Export schema":
  https://support.google.com/analytics/answer/7029846 (``event_params`` /
  ``user_properties`` as repeated ``{key, value{string_value, int_value,
  float_value, double_value}}``; ``device``, ``geo``, ``collected_traffic_source``,
  ``session_traffic_source_last_click``, ``ecommerce`` records; INT64 written
  as JSON strings by ``bq extract``). Traffic-source scopes:
  https://developers.google.com/analytics/bigquery/traffic-attribution-data
* PostHog events, https://posthog.com/docs/data/events (``uuid, event,
  distinct_id, timestamp, properties``; ``$pageview``, ``$identify`` with
  ``$anon_distinct_id``; default properties ``$device_id``, ``$session_id``,
  ``$current_url``, ``$referring_domain``, ``$ip``, ``$os``, ``$browser``,
  ``$device_type``, ``$geoip_subdivision_1_name``, ``utm_*``, ``gclid``...).
* Criteo Attribution Modeling for Bidding dataset README,
  https://ailab.criteo.com/criteo-attribution-modeling-bidding-dataset/ (tab-
  separated ``timestamp, uid, campaign, conversion, conversion_timestamp,
  conversion_id, attribution, click, click_pos, click_nb, cost, cpo,
  time_since_last_click, cat1..cat9``; -1 = none).

The values are invented (not real users); each fixture must map to the
expected contract rows exactly.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gaelp_bayes.errors import ConfigError, DataError
from gaelp_bayes.io import read_events
from gaelp_bayes.io.exports import load_mapping, use_mapping
from gaelp_bayes.io.exports.ga4 import ARROW_SCHEMA

COMPARED = [
    "device_id", "timestamp", "event_type", "channel", "user_id", "campaign", "cost",
    "value", "device_type", "ip_prefix", "user_agent", "geo", "segment", "event_id",
]  # fmt: skip


def frame(rows: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame([{c: r.get(c) for c in COMPARED} for r in rows])
    df["timestamp"] = pd.to_datetime(df["timestamp"], utc=True, format="ISO8601")
    return df


def same(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    """Row-for-row equality of the compared columns (None == <NA> == NaN)."""
    g = got[COMPARED].reset_index(drop=True).astype(object)
    g = g.where(g.notna(), None)
    e = expected[COMPARED].reset_index(drop=True).astype(object)
    e = e.where(e.notna(), None)
    assert len(g) == len(e), (g, e)
    for col in COMPARED:
        gv, ev = g[col].tolist(), e[col].tolist()
        if col in ("cost", "value"):
            gv = [None if v is None else round(float(v), 9) for v in gv]
            ev = [None if v is None else round(float(v), 9) for v in ev]
        assert gv == ev, f"column {col}: got {gv}, expected {ev}"


def write_jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


# --- GA4 ----------------------------------------------------------------------------


def kv(key: str, **value: object) -> dict:
    return {"key": key, "value": value}


T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z in microseconds

GA4_ROWS: list[dict] = [
    # 1: landing session from a Google Ads click: collected source wins over the
    #    session record and over traffic_source (the user's *first* source)
    {
        "event_date": "20260101",
        "event_timestamp": str(T0),
        "event_name": "session_start",
        "event_params": [kv("ga_session_id", int_value="1767225600"),
                         kv("page_location", string_value="https://shop.example/?gclid=Cj0")],
        "user_pseudo_id": "1234.5678",
        "user_properties": [kv("segment", int_value="7", set_timestamp_micros=str(T0))],
        "device": {"category": "mobile", "operating_system": "Android",
                   "web_info": {"browser": "Chrome"}},
        "geo": {"country": "Germany", "region": "Bavaria", "city": "Munich"},
        "traffic_source": {"source": "facebook", "medium": "cpc", "name": "first"},
        "collected_traffic_source": {"manual_source": "google", "manual_medium": "cpc",
                                     "manual_campaign_name": "brand", "gclid": "Cj0"},
        "session_traffic_source_last_click": {
            "manual_campaign": {"source": "bing", "medium": "cpc", "campaign_name": "other"}},
    },
    # 2: the landing page_view: gclid only (no manual tags), event_timestamp a JSON number
    {
        "event_timestamp": T0 + 1_000_000,
        "event_name": "page_view",
        "event_params": [kv("page_location", string_value="https://shop.example/?gclid=Cj0")],
        "user_pseudo_id": "1234.5678",
        "device": {"category": "mobile", "operating_system": "Android",
                   "web_info": {"browser": "Chrome"}},
        "geo": {"region": "Bavaria"},
        "collected_traffic_source": {"gclid": "Cj0"},
    },
    # 3: an ordinary page_view (no click signal): skipped
    {"event_timestamp": str(T0 + 2_000_000), "event_name": "page_view",
     "user_pseudo_id": "1234.5678",
     "event_params": [kv("page_location", string_value="https://shop.example/pricing")]},
    # 4: an event the mapping does not know: skipped
    {"event_timestamp": str(T0 + 3_000_000), "event_name": "scroll",
     "user_pseudo_id": "1234.5678", "event_params": [kv("percent_scrolled", int_value="90")]},
    # 5: a purchase, logged in; revenue as a JSON number, traffic_source present but unused
    {
        "event_timestamp": str(T0 + 60_000_000),
        "event_name": "purchase",
        "user_pseudo_id": "1234.5678",
        "user_id": "U-1",
        "event_params": [kv("value", double_value=49.5), kv("currency", string_value="EUR")],
        "event_value_in_usd": 53.1,
        "ecommerce": {"purchase_revenue": 49.5, "transaction_id": "T1"},
        "traffic_source": {"source": "facebook", "medium": "cpc"},
        "device": {"category": "mobile", "operating_system": "Android",
                   "web_info": {"browser": "Chrome"}},
    },
    # 6: a session tagged through event params (source/medium/campaign), no device record
    {
        "event_timestamp": str(T0 + 3_600_000_000),
        "event_name": "session_start",
        "user_pseudo_id": "999.111",
        "event_params": [kv("source", string_value="newsletter"),
                         kv("medium", string_value="email"),
                         kv("campaign", string_value="spring")],
    },
    # 7: a landing page_view tagged only in page_location (UTM + fbclid), URL-encoded campaign
    {
        "event_timestamp": str(T0 + 7_200_000_000),
        "event_name": "page_view",
        "user_pseudo_id": "999.111",
        "event_params": [kv("page_location", string_value=(
            "https://shop.example/l?utm_source=facebook&utm_medium=paid_social"
            "&utm_campaign=spring%20sale&fbclid=IwAR"))],
    },
    # 8: sign_up with event_value_in_usd only (value 0), device category 'smart tv'
    {
        "event_timestamp": str(T0 + 7_300_000_000),
        "event_name": "sign_up",
        "user_pseudo_id": "999.111",
        "user_id": "U-2",
        "event_value_in_usd": 0,
        "device": {"category": "smart tv", "operating_system": "Tizen"},
    },
    # 9: direct session: only traffic_source (first-user source) says facebook -> still direct
    {
        "event_timestamp": str(T0 + 86_400_000_000),
        "event_name": "session_start",
        "user_pseudo_id": "999.111",
        "traffic_source": {"source": "facebook", "medium": "cpc", "name": "x"},
        "session_traffic_source_last_click": {
            "manual_campaign": {"source": "(direct)", "medium": "(none)"}},
        "geo": {"region": "Ontario"},
    },
    # 10: first_visit: skipped
    {"event_timestamp": str(T0), "event_name": "first_visit", "user_pseudo_id": "1234.5678"},
]  # fmt: skip

GA4_EXPECTED = frame(
    [
        dict(device_id="1234.5678", timestamp="2026-01-01T00:00:00Z", event_type="visit",
             channel="search", campaign="brand", device_type="mobile",
             user_agent="Android/Chrome", geo="Bavaria", segment="7"),
        dict(device_id="1234.5678", timestamp="2026-01-01T00:00:01Z", event_type="click",
             channel="search", device_type="mobile", user_agent="Android/Chrome", geo="Bavaria"),
        dict(device_id="1234.5678", timestamp="2026-01-01T00:01:00Z", event_type="conversion",
             user_id="U-1", value=49.5, device_type="mobile", user_agent="Android/Chrome"),
        dict(device_id="999.111", timestamp="2026-01-01T01:00:00Z", event_type="visit",
             channel="email", campaign="spring"),
        dict(device_id="999.111", timestamp="2026-01-01T02:00:00Z", event_type="click",
             channel="social", campaign="spring sale"),
        dict(device_id="999.111", timestamp="2026-01-01T02:01:40Z", event_type="conversion",
             user_id="U-2", value=0.0, device_type="other", user_agent="Tizen"),
        dict(device_id="999.111", timestamp="2026-01-02T00:00:00Z", event_type="visit",
             channel="direct", geo="Ontario"),
    ]
)  # fmt: skip


def test_ga4_ndjson_fixture_maps_exactly(tmp_path):
    path = write_jsonl(tmp_path / "events_20260101.json", GA4_ROWS)
    res = read_events(path)  # auto-detected
    assert res.report.format == "ga4"
    same(res.table, GA4_EXPECTED)
    note = " ".join(res.report.notes)
    assert "page_view (1)" in note and "scroll (1)" in note and "first_visit (1)" in note
    assert "traffic_source" in res.report.ignored_columns
    assert res.report.rows_read == 7 and res.report.rows_kept == 7


def _to_parquet_row(row: dict) -> dict:
    """The JSON fixture with BigQuery's Parquet types (INT64 as integers)."""
    out = dict(row, event_timestamp=int(row["event_timestamp"]))
    for key in ("event_params", "user_properties"):
        if key in out:
            out[key] = [
                {"key": p["key"], "value": {
                    "string_value": p["value"].get("string_value"),
                    "int_value": int(p["value"]["int_value"]) if "int_value" in p["value"] else None,
                    "float_value": None,
                    "double_value": p["value"].get("double_value"),
                }}
                for p in out[key]
            ]  # fmt: skip
    for rec in ("device", "geo", "collected_traffic_source", "session_traffic_source_last_click",
                "ecommerce", "traffic_source"):  # fmt: skip
        if rec in out and rec == "device":
            out[rec] = {**{"web_info": None}, **out[rec]}
    if "event_value_in_usd" in out:
        out["event_value_in_usd"] = float(out["event_value_in_usd"])
    return out


def test_ga4_gzipped_ndjson(tmp_path):
    import gzip

    with gzip.open(tmp_path / "events_20260101.json.gz", "wt") as fh:
        fh.write("".join(json.dumps(r) + "\n" for r in GA4_ROWS))
    same(read_events(tmp_path).table, GA4_EXPECTED)


def test_ga4_parquet_fixture_maps_exactly_even_without_newer_records(tmp_path):
    # An older export: no session_traffic_source_last_click column at all.
    schema = pa.schema([f for f in ARROW_SCHEMA if f.name != "session_traffic_source_last_click"])
    rows = []
    for r in GA4_ROWS:
        r = {k: v for k, v in _to_parquet_row(r).items() if k in schema.names}
        rows.append(r)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), tmp_path / "events_20260101.parquet")
    res = read_events(tmp_path, fmt="ga4")
    # row 9 was direct through session_traffic_source_last_click; without it, it is
    # still direct (no source at all), so the expected rows are the same
    same(res.table, GA4_EXPECTED)


def test_ga4_mapping_file_changes_events_and_channels(tmp_path):
    path = write_jsonl(tmp_path / "events_20260101.json", GA4_ROWS)
    (tmp_path / "m.toml").write_text(
        """
[ga4]
conversion_events = ["purchase"]
visit_events = ["session_start", "first_visit"]
segment_user_property = ""

[[channel_rules]]
medium = "^e?mail$"
channel = "crm"
"""
    )
    res = read_events(path, mapping=tmp_path / "m.toml")
    t = res.table
    assert (t["event_type"] == "conversion").sum() == 1  # sign_up no longer a conversion
    assert (t["event_type"] == "visit").sum() == 4  # first_visit now a visit
    assert "crm" in set(t["channel"].dropna()) and "email" not in set(t["channel"].dropna())
    assert t["segment"].isna().all()
    # the same file picked up automatically next to the input, and through use_mapping
    (tmp_path / "gaelp-mapping.toml").write_text((tmp_path / "m.toml").read_text())
    assert "crm" in set(read_events(path).table["channel"].dropna())
    with use_mapping(None):
        assert "crm" in set(read_events(path).table["channel"].dropna())


def test_ga4_malformed_lines_strict_and_lenient(tmp_path):
    good = GA4_ROWS[0]
    lines: list[object] = [
        good,
        {k: v for k, v in GA4_ROWS[1].items() if k != "user_pseudo_id"},  # 2: no device
        '{"event_timestamp": "1767225600000000", "event_name": "page_vi',  # 3: truncated
        dict(GA4_ROWS[5], event_timestamp="yesterday"),  # 4: non-numeric timestamp
        GA4_ROWS[4],
        "",  # blank line: skipped, still counted in the numbering
        '["not", "an", "object"]',  # 7: valid JSON, not an event
    ]
    path = write_jsonl(tmp_path / "events_20260102.json", lines)
    with pytest.raises(DataError) as err:
        read_events(path, fmt="ga4")
    by_reason = {p.reason: p for p in err.value.problems}
    assert by_reason["empty device_id"].rows == [2]
    assert by_reason["empty device_id"].column == "user_pseudo_id (-> device_id)"
    assert by_reason["unparseable timestamp"].rows == [4]
    assert by_reason["unparseable timestamp"].column == "event_timestamp (-> timestamp)"
    assert by_reason["unparseable timestamp"].found == ["yesterday"]
    bad_json = next(p for p in err.value.problems if "malformed JSON" in p.reason)
    assert bad_json.rows == [3, 7] and bad_json.file == str(path)
    assert "line numbers" in str(err.value) and "--lenient" in str(err.value)

    rejects = tmp_path / "rejects.csv"
    res = read_events(path, fmt="ga4", mode="lenient", rejects_path=rejects)
    assert res.report.rows_kept == 2  # rows 1 and 5: nothing valid lost
    assert res.report.rows_read == res.report.rows_kept + res.report.rows_rejected == 6
    rej = pd.read_csv(rejects)
    assert rej["_row"].tolist() == [2, 3, 4, 7]
    assert "malformed JSON line" in rej.loc[rej["_row"] == 3, "_reason"].item()


def test_ga4_csv_is_refused_with_how_to_export(tmp_path):
    path = tmp_path / "ga4.csv"
    path.write_text("event_name,event_timestamp,user_pseudo_id\npage_view,1,abc\n")
    with pytest.raises(DataError, match="bq extract"):
        read_events(path)


# --- PostHog -----------------------------------------------------------------------

PH_ROWS: list[object] = [
    # 1: landing with a Google click id, timestamp with a +02:00 offset
    {"uuid": "0190a1b2-0000-7000-8000-000000000001", "event": "$pageview",
     "distinct_id": "anon-1", "timestamp": "2026-01-01T10:00:00.000+02:00",
     "properties": {"$device_id": "anon-1", "$session_id": "s1",
                    "$current_url": "https://shop.example/?utm_source=google&utm_medium=cpc",
                    "utm_source": "google", "utm_medium": "cpc", "utm_campaign": "brand",
                    "gclid": "abc", "$ip": "203.0.113.57", "$os": "iOS",
                    "$browser": "Mobile Safari", "$device_type": "Mobile",
                    "$geoip_subdivision_1_name": "Ontario"},
     "person_properties": {"segment": "pro"}},
    # 2: a visit in a new session, no offset (read as UTC), direct
    {"uuid": "0190a1b2-0000-7000-8000-000000000002", "event": "$pageview",
     "distinct_id": "anon-1", "timestamp": "2026-01-01 12:00:00",
     "properties": {"$device_id": "anon-1", "$session_id": "s2", "$referring_domain": "$direct",
                    "$ip": "203.0.113.9", "$os": "iOS", "$browser": "Mobile Safari",
                    "$device_type": "Mobile"}},
    # 3: same session s2 again: not a new visit (skipped)
    {"uuid": "0190a1b2-0000-7000-8000-000000000003", "event": "$pageview",
     "distinct_id": "anon-1", "timestamp": "2026-01-01T12:01:00Z",
     "properties": {"$device_id": "anon-1", "$session_id": "s2"}},
    # 4: identify: anon-1 is user-9 (skipped as an event, gives user_id to anon-1's events)
    {"uuid": "0190a1b2-0000-7000-8000-000000000004", "event": "$identify",
     "distinct_id": "user-9", "timestamp": "2026-01-01T12:02:00Z",
     "properties": {"$device_id": "anon-1", "$anon_distinct_id": "anon-1"}},
    # 5: purchase after identify; revenue as a string (mixed types)
    {"uuid": "0190a1b2-0000-7000-8000-000000000005", "event": "purchase",
     "distinct_id": "user-9", "timestamp": "2026-01-01T12:05:00-05:00",
     "properties": {"$device_id": "anon-1", "revenue": "19.99"}},
    # 6: autocapture: skipped
    {"uuid": "0190a1b2-0000-7000-8000-000000000006", "event": "$autocapture",
     "distinct_id": "anon-1", "timestamp": "2026-01-01T12:06:00Z", "properties": {}},
    # 7: properties stored as a JSON string (warehouse style); IPv6; unknown device type
    {"uuid": "0190a1b2-0000-7000-8000-000000000007", "event": "$pageview",
     "distinct_id": "anon-2", "timestamp": "2026-01-02T08:00:00Z",
     "properties": json.dumps({"$session_id": "s9", "utm_source": "newsletter",
                               "utm_medium": "email", "$ip": "2001:db8:85a3::8a2e:370:7334",
                               "$device_type": "Console", "segment": "free"})},
    # 8: a server-side conversion: no $device_id, numeric value property
    {"uuid": "0190a1b2-0000-7000-8000-000000000008", "event": "sign_up",
     "distinct_id": "user-7", "timestamp": "2026-01-02T09:00:00.250000Z",
     "properties": {"value": 5}},
]  # fmt: skip

PH_EXPECTED = frame(
    [
        dict(device_id="anon-1", timestamp="2026-01-01T08:00:00Z", event_type="click",
             channel="search", user_id="user-9", campaign="brand", ip_prefix="203.0.113.0/24",
             user_agent="iOS/Mobile Safari", device_type="mobile", geo="Ontario",
             segment="pro", event_id="0190a1b2-0000-7000-8000-000000000001"),
        dict(device_id="anon-1", timestamp="2026-01-01T12:00:00Z", event_type="visit",
             channel="direct", user_id="user-9", ip_prefix="203.0.113.0/24",
             user_agent="iOS/Mobile Safari", device_type="mobile",
             event_id="0190a1b2-0000-7000-8000-000000000002"),
        dict(device_id="anon-1", timestamp="2026-01-01T17:05:00Z", event_type="conversion",
             user_id="user-9", value=19.99, event_id="0190a1b2-0000-7000-8000-000000000005"),
        dict(device_id="anon-2", timestamp="2026-01-02T08:00:00Z", event_type="visit",
             channel="email", ip_prefix="2001:db8:85a3::/48", device_type="other",
             segment="free", event_id="0190a1b2-0000-7000-8000-000000000007"),
        dict(device_id="user-7", timestamp="2026-01-02T09:00:00.25Z", event_type="conversion",
             value=5.0, event_id="0190a1b2-0000-7000-8000-000000000008"),
    ]
)  # fmt: skip


def test_posthog_jsonl_fixture_maps_exactly(tmp_path):
    path = write_jsonl(tmp_path / "posthog.jsonl", PH_ROWS)
    res = read_events(path)
    assert res.report.format == "posthog"
    same(res.table, PH_EXPECTED)
    assert res.report.timestamps_without_offset == 1  # row 2, read as UTC
    note = " ".join(res.report.notes)
    assert "$identify (1)" in note and "$autocapture (1)" in note and "$pageview (1)" in note


def _flatten(row: dict) -> dict:
    props = row["properties"]
    props = json.loads(props) if isinstance(props, str) else props
    flat = {k: row[k] for k in ("uuid", "event", "distinct_id", "timestamp")}
    flat.update({f"properties.{k}": v for k, v in props.items()})
    flat.update({f"person_properties.{k}": v for k, v in row.get("person_properties", {}).items()})
    return flat


def test_posthog_csv_fixture_maps_exactly(tmp_path):
    rows = [_flatten(r) for r in PH_ROWS]  # type: ignore[arg-type]
    header = list(dict.fromkeys(k for r in rows for k in r))
    path = tmp_path / "posthog.csv"
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=header)
        w.writeheader()
        w.writerows(rows)
    res = read_events(path, fmt="posthog")
    same(res.table, PH_EXPECTED)


def test_posthog_parquet_with_properties_as_json_text(tmp_path):
    """Batch-export style: ``properties`` / ``person_properties`` as JSON strings."""
    rows = []
    for r in PH_ROWS:
        r = dict(r)  # type: ignore[arg-type]
        props = r["properties"]
        r["properties"] = props if isinstance(props, str) else json.dumps(props)
        r["person_properties"] = json.dumps(r.get("person_properties", {}))
        rows.append(r)
    pd.DataFrame(rows).to_parquet(tmp_path / "posthog-events.parquet")
    same(read_events(tmp_path / "posthog-events.parquet", fmt="posthog").table, PH_EXPECTED)


def test_posthog_bad_rows_and_ip_privacy(tmp_path):
    rows = [_flatten(r) for r in PH_ROWS[:2]]  # type: ignore[arg-type]
    rows.append(dict(rows[0], uuid="u-3", timestamp="not a time"))  # row 3
    rows.append(dict(rows[0], uuid="u-4", distinct_id="", **{"properties.$device_id": ""}))
    header = list(dict.fromkeys(k for r in rows for k in r))
    path = tmp_path / "ph.csv"
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=header)
        w.writeheader()
        w.writerows(rows)
    with path.open("a") as fh:  # row 5: a broken line (too few fields) holding an address
        fh.write("u-5,$pageview,anon-1,2026-01-01T00:00:00Z,203.0.113.77\n")
    with pytest.raises(DataError) as err:
        read_events(path)
    cols = {p.reason: p.column for p in err.value.problems}
    assert cols["unparseable timestamp"] == "timestamp"
    assert cols["empty device_id"].startswith("distinct_id")
    rejects = tmp_path / "rej.csv"
    res = read_events(path, mode="lenient", rejects_path=rejects)
    assert res.report.rows_kept == 2 and res.report.rows_rejected == 3
    written = rejects.read_text() + res.table.to_csv() + str(err.value) + res.report.render()
    for address in ("203.0.113.57", "203.0.113.9", "203.0.113.77"):
        assert address not in written
    assert "203.0.113.0/24" in written and "203.0.113.0" in rejects.read_text()
    assert "properties.$ip" not in res.report.ignored_columns


# --- Criteo --------------------------------------------------------------------------

CRITEO_HEADER = (
    "timestamp\tuid\tcampaign\tconversion\tconversion_timestamp\tconversion_id\tattribution\t"
    "click\tclick_pos\tclick_nb\tcost\tcpo\ttime_since_last_click\t"
    + "\t".join(f"cat{i}" for i in range(1, 10))
)
CATS = "\t".join(["5824233", "9312274", "3490278", "29196072", "11409686", "1973606",
                  "25162884", "29196072", "29196072"])  # fmt: skip
CRITEO_ROWS = [
    f"0\t20073966\t22589171\t1\t5000\t22589171004\t1\t1\t0\t1\t0.00010\t0.5\t-1\t{CATS}",
    f"300\t20073966\t884761\t1\t5000\t22589171004\t1\t0\t-1\t1\t0.00020\t0.5\t-1\t{CATS}",
    f"600\t24447029\t22589171\t0\t-1\t-1\t0\t0\t-1\t-1\t0.00005\t-1\t-1\t{CATS}",
]


def test_criteo_fixture_maps_exactly(tmp_path):
    path = tmp_path / "criteo_attribution_dataset.tsv"
    path.write_text("\n".join([CRITEO_HEADER, *CRITEO_ROWS]) + "\n")
    (tmp_path / "m.toml").write_text(
        '[criteo]\nstart = "2017-01-01"\ncampaign_channels = {"22589171" = "retargeting"}\n'
    )
    res = read_events(path, mapping=tmp_path / "m.toml")
    assert res.report.format == "criteo"
    expected = frame(
        [
            dict(device_id="20073966", timestamp="2017-01-01T00:00:00Z", event_type="impression",
                 channel="retargeting", campaign="22589171", cost=0.0001),
            dict(device_id="20073966", timestamp="2017-01-01T00:00:00Z", event_type="click",
                 channel="retargeting", campaign="22589171"),
            dict(device_id="20073966", timestamp="2017-01-01T00:05:00Z", event_type="impression",
                 channel="884761", campaign="884761", cost=0.0002),
            dict(device_id="24447029", timestamp="2017-01-01T00:10:00Z", event_type="impression",
                 channel="retargeting", campaign="22589171", cost=0.00005),
            dict(device_id="20073966", timestamp="2017-01-01T01:23:20Z", event_type="conversion",
                 event_id="22589171004"),
        ]
    )  # fmt: skip
    same(res.table, expected)
    assert "1 repeated conversion_id rows merged" in res.report.notes[0]
    assert set(res.report.ignored_columns) >= {"attribution", "cpo", "cat1", "cat9"}


def test_criteo_bad_rows(tmp_path):
    bad = [
        CRITEO_ROWS[0],
        CRITEO_ROWS[1].replace("300\t", "five\t", 1),  # 2: non-numeric timestamp
        CRITEO_ROWS[2].replace("\t0\t0\t-1\t-1\t0.00005", "\t0\t2\t-1\t-1\t0.00005"),  # 3: click=2
        f"900\t1\t22589171\t1\t-1\t-1\t0\t0\t-1\t-1\t0.1\t-1\t-1\t{CATS}",  # 4: no conv time
        "1200\t2\t3",  # 5: too few fields
    ]
    path = tmp_path / "criteo.tsv"
    path.write_text("\n".join([CRITEO_HEADER, *bad]) + "\n")
    with pytest.raises(DataError) as err:
        read_events(path, fmt="criteo")
    rows = {(p.reason, p.column): p.rows for p in err.value.problems}
    assert rows[("unparseable timestamp", "timestamp")] == [2]
    assert rows[("click not a bool", "click")] == [3]
    key = ("conversion_timestamp missing on a converting impression (conversion = 1)",
           "conversion_timestamp")  # fmt: skip
    assert rows[key] == [4]
    assert any("malformed" in r and rs == [5] for (r, _), rs in rows.items())
    res = read_events(path, fmt="criteo", mode="lenient", rejects_path=tmp_path / "r.csv")
    assert res.report.rows_rejected == 4
    assert res.report.summary.by_type == {"impression": 1, "click": 1, "conversion": 1}
    assert pd.read_csv(tmp_path / "r.csv")["_row"].tolist() == [2, 3, 4, 5]


def test_criteo_missing_columns(tmp_path):
    path = tmp_path / "c.tsv"
    path.write_text("timestamp\tuid\tcampaign\tconversion\tclick_nb\n0\t1\t2\t0\t1\n")
    with pytest.raises(DataError) as err:
        read_events(path, fmt="criteo")
    assert [p.column for p in err.value.problems] == ["click"]


# --- mapping file and detection --------------------------------------------------------


def test_mapping_errors_are_collected(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(
        """
colour = "blue"
[ga4]
conversion_events = "purchase"
visit_event = ["x"]
[[channel_rules]]
medium = "(["
channel = "x"
[[channel_rules]]
channel = "y"
"""
    )
    with pytest.raises(ConfigError) as err:
        load_mapping(path)
    text = str(err.value)
    for piece in ("unknown key 'colour'", "ga4.conversion_events", "unknown key 'visit_event'",
                  "not a valid regular expression", "give a 'source' and/or 'medium'"):  # fmt: skip
        assert piece in text
    with pytest.raises(ConfigError, match="not valid TOML"):
        (tmp_path / "x.toml").write_text("[ga4\n")
        load_mapping(tmp_path / "x.toml")


def test_auto_detection_refuses_mixed_and_unknown_exports(tmp_path):
    write_jsonl(tmp_path / "a.json", GA4_ROWS[:1])
    write_jsonl(tmp_path / "b.jsonl", PH_ROWS[:1])
    with pytest.raises(DataError, match="different formats"):
        read_events(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    write_jsonl(other / "x.json", [{"foo": 1}])
    from gaelp_bayes.errors import InputNotFoundError

    with pytest.raises(InputNotFoundError, match="not those of a known export"):
        read_events(other)
    with pytest.raises(DataError, match="must be CSV or"):
        read_events(other / "x.json", fmt="canonical")


def test_posthog_user_id_from_a_person_property(tmp_path):
    row = dict(PH_ROWS[7], person_properties={"login": "L-7"})  # type: ignore[arg-type]
    path = write_jsonl(tmp_path / "p.jsonl", [row])
    assert read_events(path).table["user_id"].isna().all()
    (tmp_path / "m.toml").write_text('[posthog]\nuser_id_property = "login"\n')
    assert read_events(path, mapping=tmp_path / "m.toml").table["user_id"].tolist() == ["L-7"]


def test_canonical_folder_with_a_json_sidecar_is_still_canonical(tmp_path):
    (tmp_path / "events.csv").write_text(
        "device_id,timestamp,event_type,channel\nd1,2026-01-01T00:00:00Z,visit,direct\n"
    )
    (tmp_path / "export_meta.json").write_text('{\n  "exported_by": "a pipeline"\n}\n')
    res = read_events(tmp_path)
    assert res.report.format == "canonical" and res.report.rows_kept == 1
    assert [f.path for f in res.report.files] == [str(tmp_path / "events.csv")]


def test_posthog_first_pageview_of_a_session_by_time_not_file_order(tmp_path):
    def view(uuid: str, ts: str) -> dict:
        return {"uuid": uuid, "event": "$pageview", "distinct_id": "d", "timestamp": ts,
                "properties": {"$session_id": "s5", "$referring_domain": "$direct"}}  # fmt: skip

    path = write_jsonl(
        tmp_path / "p.jsonl",
        [view("later", "2026-01-01T10:05:00Z"), view("first", "2026-01-01T11:00:00+02:00")],
    )
    t = read_events(path).table
    assert t["event_id"].tolist() == ["first"]
    assert t["timestamp"].tolist() == [pd.Timestamp("2026-01-01T09:00:00Z")]
