"""gaelp_bayes.io: reading canonical events/auctions, strict and lenient validation."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from gaelp_bayes.errors import DataError, InputNotFoundError, UsageError
from gaelp_bayes.io import EVENTS, ReadResult, ValidationReport, read_auctions, read_events

CHECKER = Path(__file__).resolve().parents[2] / "shared/tools/check_contract.py"

HEADER = "event_id,device_id,timestamp,event_type,channel,user_id,cost,value,extra"
GOOD_ROWS = [
    "e1,d1,2024-03-01T12:00:00+01:00,impression,search,,0.25,,x",
    "e2,d1,2024-03-01T11:05:00Z,click,search,u1,0.5,,x",
    "e3,d2,2024-03-02T08:00:00-05:00,visit,direct,,,,",
    "e4,d2,2024-03-02T14:00:00Z,conversion,,u1,,49.9,",
]
# Bad rows, one per kind of problem (row numbers below are data-row numbers).
BAD_ROWS = [
    "b1,d3,yesterday,impression,search,,0.1,,",  # unparseable timestamp
    "b2,d3,2024-03-03T10:00:00Z,Purchase,search,,,,",  # unknown event_type
    "b3,d4,2024-03-03T10:00:00Z,click,social,,-1.5,,",  # negative cost
    "b4,,2024-03-03T10:00:00Z,visit,direct,,,,",  # empty device_id
]


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def messy_csv(tmp_path: Path) -> Path:
    """Good and bad rows interleaved: good rows are data rows 1, 2, 4, 6; bad rows 3, 5, 7, 8."""
    rows = [GOOD_ROWS[0], GOOD_ROWS[1], BAD_ROWS[0], GOOD_ROWS[2], BAD_ROWS[1]]
    rows += [GOOD_ROWS[3], BAD_ROWS[2], BAD_ROWS[3]]
    return write_lines(tmp_path / "events.csv", [HEADER, *rows])


def expected_good() -> pd.DataFrame:
    """The canonical table of GOOD_ROWS, written out by hand."""
    ts = pd.to_datetime(
        [
            "2024-03-01T11:00:00Z",
            "2024-03-01T11:05:00Z",
            "2024-03-02T13:00:00Z",
            "2024-03-02T14:00:00Z",
        ],
        utc=True,
    ).as_unit("us")
    s = pd.StringDtype("pyarrow")
    na = pd.NA
    return pd.DataFrame(
        {
            "device_id": pd.array(["d1", "d1", "d2", "d2"], dtype=s),
            "timestamp": ts,
            "event_type": pd.array(["impression", "click", "visit", "conversion"], dtype=s),
            "channel": pd.array(["search", "search", "direct", na], dtype=s),
            "user_id": pd.array([na, "u1", na, "u1"], dtype=s),
            "campaign": pd.array([na] * 4, dtype=s),
            "cost": [0.25, 0.5, float("nan"), float("nan")],
            "value": [float("nan")] * 3 + [49.9],
            "device_type": pd.array([na] * 4, dtype=s),
            "ip_prefix": pd.array([na] * 4, dtype=s),
            "user_agent": pd.array([na] * 4, dtype=s),
            "geo": pd.array([na] * 4, dtype=s),
            "segment": pd.array([na] * 4, dtype=s),
            "event_id": pd.array(["e1", "e2", "e3", "e4"], dtype=s),
        }
    )


def test_clean_file_reads_to_canonical_table(tmp_path):
    path = write_lines(tmp_path / "good.csv", [HEADER, *GOOD_ROWS])
    res = read_events(path)
    assert isinstance(res, ReadResult) and isinstance(res.report, ValidationReport)
    pd.testing.assert_frame_equal(res.table, expected_good())
    r = res.report
    assert (r.rows_read, r.rows_kept, r.rows_rejected, r.duplicates_dropped) == (4, 4, 0, 0)
    assert r.ignored_columns == ["extra"]
    assert r.summary.devices == 2
    assert r.summary.rows_with_user_id == 2 and r.summary.devices_with_user_id == 2
    assert r.summary.by_type == {"click": 1, "conversion": 1, "impression": 1, "visit": 1}
    assert r.summary.by_channel == {"search": 2, "(none)": 1, "direct": 1}
    assert r.timestamp_min == pd.Timestamp("2024-03-01T11:00:00Z")
    assert r.timestamp_max == pd.Timestamp("2024-03-02T14:00:00Z")
    assert r.timestamps_without_offset == 0


def test_strict_names_every_problem_with_file_rows_column(messy_csv):
    with pytest.raises(DataError) as info:
        read_events(messy_csv, mode="strict")
    err = info.value
    by_reason = {p.reason: p for p in err.problems}
    assert set(by_reason) == {
        "unparseable timestamp",
        "unknown event_type",
        "negative cost",
        "empty device_id",
    }
    expect = {
        "unparseable timestamp": ("timestamp", [3], ["yesterday"]),
        "unknown event_type": ("event_type", [5], ["Purchase"]),
        "negative cost": ("cost", [7], ["-1.5"]),
        "empty device_id": ("device_id", [8], []),
    }
    for reason, (column, rows, found) in expect.items():
        p = by_reason[reason]
        assert (p.file, p.column, p.rows, p.count, p.found) == (
            str(messy_csv),
            column,
            rows,
            1,
            found,
        )
    msg = str(err)
    assert "line r+1" in msg
    assert "impression, click, visit, conversion" in msg  # what is allowed
    assert msg.count(str(messy_csv)) == 4


def test_lenient_keeps_exactly_the_valid_rows_and_writes_every_bad_one(messy_csv, tmp_path):
    rejects = tmp_path / "rejects.csv"
    res = read_events(messy_csv, mode="lenient", rejects_path=rejects)
    pd.testing.assert_frame_equal(res.table, expected_good())
    r = res.report
    assert (r.rows_read, r.rows_kept, r.rows_rejected) == (8, 4, 4)
    assert r.rejects_by_reason == {
        "empty device_id": 1,
        "unparseable timestamp": 1,
        "unknown event_type": 1,
        "negative cost": 1,
    }
    assert r.rejects_path == str(rejects)
    rej = pd.read_csv(rejects, dtype=str, keep_default_na=False)
    assert list(rej.columns) == [*HEADER.split(","), "_file", "_row", "_reason"]
    assert rej["_row"].tolist() == ["3", "5", "7", "8"]
    assert rej["_file"].tolist() == [str(messy_csv)] * 4
    assert rej["_reason"].tolist() == [
        "unparseable timestamp",
        "unknown event_type",
        "negative cost",
        "empty device_id",
    ]
    # The original text of every bad row, unchanged.
    assert rej[HEADER.split(",")].agg(",".join, axis=1).tolist() == BAD_ROWS


def test_lenient_rejects_as_parquet(messy_csv, tmp_path):
    rejects = tmp_path / "rejects.parquet"
    res = read_events(messy_csv, mode="lenient", rejects_path=rejects)
    rej = pd.read_parquet(rejects)
    assert rej["_row"].tolist() == [3, 5, 7, 8]
    assert rej["timestamp"].tolist()[0] == "yesterday"
    assert len(res.table) == 4


def test_a_row_with_several_problems_lists_them_all(tmp_path):
    path = write_lines(tmp_path / "e.csv", [HEADER, ",d1,nope,Click,,,-1,-2,"])
    res = read_events(path, mode="lenient", rejects_path=tmp_path / "r.csv")
    assert res.report.rows_rejected == 1 and res.table.empty
    reason = pd.read_csv(tmp_path / "r.csv")["_reason"][0]
    for part in ("unparseable timestamp", "unknown event_type", "negative cost", "negative value"):
        assert part in reason


def test_missing_required_column_fails_in_both_modes(tmp_path):
    path = write_lines(
        tmp_path / "nots.csv", ["device_id,time,event_type", "d1,2024-01-01T00:00:00Z,visit"]
    )
    for mode in ("strict", "lenient"):
        with pytest.raises(DataError) as info:
            read_events(path, mode=mode)
        (p,) = info.value.problems
        assert (p.file, p.column) == (str(path), "timestamp")
        assert "device_id, time, event_type" in p.reason  # the columns found


def test_missing_column_hints_at_a_case_mismatch(tmp_path):
    path = write_lines(
        tmp_path / "e.csv", ["device_id,Timestamp,event_type", "d1,2024-01-01,visit"]
    )
    with pytest.raises(DataError) as info:
        read_events(path)
    assert info.value.problems[0].found == ["Timestamp"]
    assert "case-sensitive" in str(info.value)


def test_strict_lists_at_most_ten_rows_per_problem_with_the_count(tmp_path):
    rows = [f"d{i},2024-01-01T00:00:00Z,Visit" for i in range(25)]
    path = write_lines(tmp_path / "e.csv", ["device_id,timestamp,event_type", *rows])
    with pytest.raises(DataError) as info:
        read_events(path)
    (p,) = info.value.problems
    assert p.count == 25 and p.rows == list(range(1, 11))
    assert "and 15 more" in str(info.value)


def test_timestamps_mixed_offsets_and_epoch_microseconds_are_the_same_instants(tmp_path):
    instant = pd.Timestamp("2024-05-06T07:08:09.123456Z")
    us = instant.value // 1000
    forms = [
        "2024-05-06T07:08:09.123456Z",
        "2024-05-06T09:08:09.123456+02:00",
        "2024-05-06T02:08:09.123456-0500",
        "2024-05-06 07:08:09.123456+00:00",
        str(us),
    ]
    rows = [f"d{i},{ts},visit" for i, ts in enumerate(forms)]
    path = write_lines(tmp_path / "e.csv", ["device_id,timestamp,event_type", *rows])
    res = read_events(path)
    assert (res.table["timestamp"] == instant).all()
    assert str(res.table["timestamp"].dtype) == "datetime64[us, UTC]"
    assert res.report.timestamps_without_offset == 0


def test_timestamps_without_offset_are_read_as_utc_and_counted(tmp_path):
    rows = ["d1,2024-05-06T07:08:09,visit", "d2,2024-05-06,visit", "d3,2024-05-06T07:08:09Z,visit"]
    path = write_lines(tmp_path / "e.csv", ["device_id,timestamp,event_type", *rows])
    res = read_events(path)
    assert res.table["timestamp"].tolist() == [
        pd.Timestamp("2024-05-06T07:08:09Z"),
        pd.Timestamp("2024-05-06T00:00:00Z"),
        pd.Timestamp("2024-05-06T07:08:09Z"),
    ]
    assert res.report.timestamps_without_offset == 2
    assert "2 (read as UTC)" in res.report.render()


@pytest.mark.parametrize("bad", ["infinity", "epoch", "2024-13-01T00:00:00Z", "1e15", "", "12:00"])
def test_unparseable_timestamps(tmp_path, bad):
    path = write_lines(
        tmp_path / "e.csv", ["device_id,timestamp,event_type", f"d1,{bad},visit", "d2,0,visit"]
    )
    res = read_events(path, mode="lenient")
    assert res.table["device_id"].tolist() == ["d2"]
    reason = "empty timestamp" if bad == "" else "unparseable timestamp"
    assert res.report.rejects_by_reason == {reason: 1}


def test_parquet_timestamp_types(tmp_path):
    aware = pd.to_datetime(["2024-01-01T10:00:00+02:00"] * 2, utc=True)
    naive = pd.to_datetime(["2024-01-01T08:00:00"] * 2)
    base = {"device_id": ["a", "b"], "event_type": ["visit", "visit"]}
    pd.DataFrame({**base, "timestamp": aware}).to_parquet(tmp_path / "aware.parquet")
    pd.DataFrame({**base, "timestamp": naive}).to_parquet(tmp_path / "naive.parquet")
    epoch = aware.as_unit("us").asi8
    pd.DataFrame({**base, "timestamp": epoch}).to_parquet(tmp_path / "epoch.parquet")
    expected = pd.Timestamp("2024-01-01T08:00:00Z")
    for name, n_naive in (("aware", 0), ("naive", 2), ("epoch", 0)):
        res = read_events(tmp_path / f"{name}.parquet")
        assert (res.table["timestamp"] == expected).all(), name
        assert res.report.timestamps_without_offset == n_naive, name


def test_parquet_typed_columns_are_checked_too(tmp_path):
    df = pd.DataFrame(
        {
            "device_id": ["a", "", None, "d"],
            "timestamp": pd.to_datetime(["2024-01-01"] * 4, utc=True),
            "event_type": ["visit", "visit", "visit", "click"],
            "cost": [0.0, 1.0, 2.0, -1.0],
            "channel": ["x", "x", "x", "search"],
        }
    )
    df.to_parquet(tmp_path / "e.parquet")
    res = read_events(tmp_path / "e.parquet", mode="lenient", rejects_path=tmp_path / "r.parquet")
    assert res.table["device_id"].tolist() == ["a"]
    assert res.report.rejects_by_reason == {"empty device_id": 2, "negative cost": 1}
    rej = pd.read_parquet(tmp_path / "r.parquet")
    assert rej["_row"].tolist() == [2, 3, 4]
    assert rej["cost"].tolist() == ["1.0", "2.0", "-1.0"]


def test_non_numeric_and_nan_cost(tmp_path):
    rows = [
        "d1,2024-01-01T00:00:00Z,visit,abc",
        "d2,2024-01-01T00:00:00Z,visit,NaN",
        "d3,2024-01-01T00:00:00Z,visit,inf",
    ]
    path = write_lines(tmp_path / "e.csv", ["device_id,timestamp,event_type,cost", *rows])
    res = read_events(path, mode="lenient")
    assert res.table["device_id"].tolist() == ["d2"]
    assert res.table["cost"].isna().all()
    assert res.report.rejects_by_reason == {"non-numeric cost": 2}


def test_impression_or_click_needs_a_channel(tmp_path):
    rows = [
        "d1,2024-01-01T00:00:00Z,impression,",
        "d2,2024-01-01T00:00:00Z,click, ",
        "d3,2024-01-01T00:00:00Z,visit,",
    ]
    path = write_lines(tmp_path / "e.csv", ["device_id,timestamp,event_type,channel", *rows])
    with pytest.raises(DataError) as info:
        read_events(path)
    (p,) = info.value.problems
    assert (p.column, p.rows) == ("channel", [1, 2])


def test_duplicate_event_ids_keep_the_first_valid_row(tmp_path):
    rows = [
        "x,d1,2024-01-01T00:00:00Z,visit",
        "x,d2,2024-01-02T00:00:00Z,visit",
        "y,d3,bad,visit",  # bad: does not count as the first y
        "y,d4,2024-01-03T00:00:00Z,visit",
        "y,d5,2024-01-04T00:00:00Z,visit",
        ",d6,2024-01-05T00:00:00Z,visit",
        ",d7,2024-01-06T00:00:00Z,visit",  # null ids are never deduplicated
    ]
    path = write_lines(tmp_path / "e.csv", ["event_id,device_id,timestamp,event_type", *rows])
    res = read_events(path, mode="lenient", rejects_path=tmp_path / "r.csv")
    assert res.table["device_id"].tolist() == ["d1", "d4", "d6", "d7"]
    r = res.report
    assert (r.rows_read, r.rows_kept, r.rows_rejected, r.duplicates_dropped) == (7, 4, 1, 2)
    assert r.rejects_by_reason == {"unparseable timestamp": 1}
    rej = pd.read_csv(tmp_path / "r.csv")
    assert rej["device_id"].tolist() == ["d2", "d3", "d5"]
    assert rej["_reason"][0] == f"duplicate event_id (first kept: {path} row 1)"
    # Duplicates alone do not fail strict mode.
    clean = write_lines(tmp_path / "c.csv", ["event_id,device_id,timestamp,event_type", *rows[:2]])
    assert read_events(clean).report.duplicates_dropped == 1


def test_malformed_csv_lines_are_bad_rows_and_numbering_holds(tmp_path):
    lines = [
        "device_id,timestamp,event_type",
        "d1,2024-01-01T00:00:00Z,visit",
        "d2,2024-01-01T00:00:00Z",
    ]
    lines += ["", "d3,2024-01-01T00:00:00Z,visit"]
    path = write_lines(tmp_path / "e.csv", lines)
    with pytest.raises(DataError) as info:
        read_events(path)
    (p,) = info.value.problems
    assert p.rows == [2] and p.found == ["d2,2024-01-01T00:00:00Z"]
    res = read_events(path, mode="lenient", rejects_path=tmp_path / "r.csv")
    assert res.table["device_id"].tolist() == ["d1", "d3"]
    rej = pd.read_csv(tmp_path / "r.csv")
    assert rej["_row"].tolist() == [2] and rej["_text"].tolist() == ["d2,2024-01-01T00:00:00Z"]
    assert any("blank line" in n for n in res.report.notes)


def test_folder_is_unioned_by_name_in_file_order(tmp_path):
    folder = tmp_path / "parts"
    folder.mkdir()
    write_lines(
        folder / "b.csv", ["event_type,timestamp,device_id", "visit,2024-01-02T00:00:00Z,d2"]
    )
    pd.DataFrame(
        {"device_id": ["d1"], "timestamp": ["2024-01-01T00:00:00Z"], "event_type": ["visit"]}
    ).to_parquet(folder / "a.parquet")
    (folder / "notes.txt").write_text("ignored")
    res = read_events(folder)
    assert res.table["device_id"].tolist() == ["d1", "d2"]
    assert [f.path for f in res.report.files] == [str(folder / "a.parquet"), str(folder / "b.csv")]


def test_folder_file_missing_a_required_column_is_named(tmp_path):
    folder = tmp_path / "parts"
    folder.mkdir()
    write_lines(
        folder / "a.csv", ["device_id,timestamp,event_type", "d1,2024-01-01T00:00:00Z,visit"]
    )
    write_lines(folder / "b.csv", ["device_id,timestamp", "d1,2024-01-01T00:00:00Z"])
    with pytest.raises(DataError) as info:
        read_events(folder)
    (p,) = info.value.problems
    assert (p.file, p.column) == (str(folder / "b.csv"), "event_type")


def test_inputs_that_are_not_there(tmp_path):
    with pytest.raises(InputNotFoundError, match="does not exist"):
        read_events(tmp_path / "nope.csv")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputNotFoundError, match=r"no \.csv"):
        read_events(tmp_path / "empty")
    (tmp_path / "e.json").write_text("{}")
    with pytest.raises(InputNotFoundError, match=r"not a \.csv"):
        read_events(tmp_path / "e.json")
    (tmp_path / "blank.csv").write_text("")
    with pytest.raises(DataError, match="empty"):
        read_events(tmp_path / "blank.csv")


def test_round_trip_csv_parquet_folder_give_identical_tables(tmp_path, messy_csv):
    first = read_events(messy_csv, mode="lenient").table
    # canonical table -> Parquet -> read
    first.to_parquet(tmp_path / "e.parquet")
    from_parquet = read_events(tmp_path / "e.parquet").table
    # -> CSV (ISO with offsets) -> read
    as_csv = from_parquet.copy()
    as_csv["timestamp"] = as_csv["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%S.%f%z")
    as_csv.to_csv(tmp_path / "e.csv", index=False)
    from_csv = read_events(tmp_path / "e.csv").table
    # -> folder of two Parquet parts -> read
    folder = tmp_path / "parts"
    folder.mkdir()
    from_csv.iloc[:2].to_parquet(folder / "part-0.parquet")
    from_csv.iloc[2:].to_parquet(folder / "part-1.parquet")
    from_folder = read_events(folder).table.reset_index(drop=True)
    for other in (from_parquet, from_csv, from_folder):
        pd.testing.assert_frame_equal(other, first)
    pd.testing.assert_frame_equal(first, expected_good())


def test_auctions_rules(tmp_path):
    header = "timestamp,channel,bid,won,price,floor,auction_type"
    rows = [
        "2024-01-01T00:00:00Z,search,1.0,true,0.5,0.1,",  # ok (auction_type -> second_price)
        "2024-01-01T00:00:00Z,search,0.5,False,,,first_price",  # ok: lost, no price
        "2024-01-01T00:00:00Z,search,0.5,1,0.2,,",  # ok: 1 is true
        "2024-01-01T00:00:00Z,search,0,0,,,",  # bid not > 0
        "2024-01-01T00:00:00Z,search,1.0,yes,,,",  # won not a bool
        "2024-01-01T00:00:00Z,search,1.0,true,,,",  # won without price
        "2024-01-01T00:00:00Z,search,1.0,true,-0.1,-1,",  # negative price and floor
        "2024-01-01T00:00:00Z,,1.0,false,,,",  # empty channel
        "2024-01-01T00:00:00Z,search,1.0,false,,,vickrey",  # unknown auction_type
    ]
    path = write_lines(tmp_path / "a.csv", [header, *rows])
    with pytest.raises(DataError) as info:
        read_auctions(path)
    got = {p.reason: p.rows for p in info.value.problems}
    assert got == {
        "bid not > 0": [4],
        "won not a bool": [5],
        "price missing on a won auction": [6],
        "negative price": [7],
        "negative floor": [7],
        "empty channel": [8],
        "unknown auction_type": [9],
    }
    res = read_auctions(path, mode="lenient")
    t = res.table
    assert t["won"].tolist() == [True, False, True] and t["won"].dtype == bool
    assert t["bid"].tolist() == [1.0, 0.5, 0.5]
    assert t["auction_type"].tolist() == ["second_price", "first_price", "second_price"]
    assert res.report.summary.won == 2 and res.report.summary.bid_max == 1.0
    assert "won" in res.report.render()


def test_fmt_choices(tmp_path, messy_csv):
    with pytest.raises(DataError, match="GA4 export must be newline-delimited JSON or Parquet"):
        read_events(messy_csv, fmt="ga4")  # exports: tests/test_io_exports*.py
    with pytest.raises(ValueError, match="unknown format"):
        read_events(messy_csv, fmt="xml")
    assert read_events(messy_csv, fmt="canonical", mode="lenient").report.format == "canonical"
    ga4 = write_lines(
        tmp_path / "ga4.csv", ["event_name,event_timestamp,user_pseudo_id", "page_view,1,abc"]
    )
    with pytest.raises(DataError, match="GA4 export must be newline-delimited JSON or Parquet"):
        read_events(ga4)  # recognised as GA4 by its columns
    with pytest.raises(DataError):  # explicit canonical: the contract's own message
        read_events(ga4, fmt="canonical")


def test_bad_arguments(messy_csv, tmp_path):
    with pytest.raises(ValueError, match="mode"):
        read_events(messy_csv, mode="relaxed")
    with pytest.raises(UsageError, match=r"\.csv or \.parquet"):
        read_events(messy_csv, mode="lenient", rejects_path=tmp_path / "r.json")


def test_report_to_dict_is_json_and_render_is_text(messy_csv):
    import json

    r = read_events(messy_csv, mode="lenient").report
    d = json.loads(json.dumps(r.to_dict()))
    assert d["rows_kept"] == 4 and d["timestamp_min"] == "2024-03-01T11:00:00Z"
    assert d["summary"]["user_id_row_share"] == 0.5
    assert d["problems"][0]["rows"]
    text = r.render()
    for label in ("files read", "rows rejected", "devices", "user_id coverage", "by type"):
        assert label in text
    assert "negative cost" in text and "extra" in text


@pytest.mark.skipif(not CHECKER.exists(), reason="shared contract checker not found")
def test_contract_checker_agrees(tmp_path, messy_csv):
    def check(kind: str, path: Path) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, str(CHECKER), kind, str(path)], capture_output=True, text=True
        )

    # What the reader keeps, written back out, is valid for the checker.
    res = read_events(messy_csv, mode="lenient")
    res.table.to_parquet(tmp_path / "kept.parquet")
    assert check("events", tmp_path / "kept.parquet").returncode == 0
    # A valid CSV input: the checker and strict mode both accept it.
    good = write_lines(tmp_path / "good.csv", [HEADER, *GOOD_ROWS])
    assert check("events", good).returncode == 0, check("events", good).stdout
    read_events(good, mode="strict")
    # And both refuse the messy file.
    assert check("events", messy_csv).returncode == 1
    # Auctions likewise.
    a = write_lines(
        tmp_path / "a.csv",
        ["timestamp,channel,bid,won,price", "2024-01-01T00:00:00Z,search,1.0,True,0.4"],
    )
    read_auctions(a)
    assert check("auctions", a).returncode == 0


def test_spec_required_columns():
    assert EVENTS.required == ("device_id", "timestamp", "event_type")


def test_pandas_index_column_and_gzip_csv(tmp_path):
    """``df.to_csv()`` with its unnamed index column, gzip-compressed, reads fine."""
    df = pd.DataFrame(
        {"device_id": ["a", ""], "timestamp": ["2024-01-01T00:00:00Z"] * 2, "event_type": "visit"}
    )
    path = tmp_path / "e.csv.gz"
    df.to_csv(path)
    res = read_events(path, mode="lenient", rejects_path=tmp_path / "r.csv")
    assert res.table["device_id"].tolist() == ["a"]
    assert res.report.ignored_columns == ["unnamed_1"]
    assert pd.read_csv(tmp_path / "r.csv")["unnamed_1"].tolist() == [1]


def test_rejects_file_may_not_be_an_input(messy_csv):
    with pytest.raises(UsageError, match="is one of the inputs"):
        read_events(messy_csv, mode="lenient", rejects_path=messy_csv)
    assert "b1,d3,yesterday" in messy_csv.read_text()
