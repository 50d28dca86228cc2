"""`gaelp-bayes validate` through Typer's CliRunner: exit codes, messages, rejects file."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from gaelp_bayes.cli.main import app

runner = CliRunner()

HEADER = "event_id,device_id,timestamp,event_type,channel,cost"
GOOD = [
    "e1,d1,2024-03-01T12:00:00+01:00,impression,search,0.25",
    "e2,d1,2024-03-01T11:05:00Z,click,search,0.5",
    "e3,d2,1709377200000000,visit,direct,",
    "e4,d2,2024-03-02T14:00:00Z,conversion,,",
]
BAD = {
    2: "b1,d3,31/02/2024 10:00,impression,search,0.1",  # unparseable timestamp
    4: "b2,d3,2024-03-03T10:00:00Z,signup,,",  # unknown event_type
    5: "b3,d4,2024-03-03T10:00:00Z,click,social,-2",  # negative cost
    7: "b4,,2024-03-03T10:00:00Z,visit,direct,",  # empty device_id
}


def messy(tmp_path: Path) -> Path:
    rows = list(GOOD)
    for row_number, line in sorted(BAD.items()):
        rows.insert(row_number - 1, line)
    path = tmp_path / "events.csv"
    path.write_text("\n".join([HEADER, *rows]) + "\n")
    return path


def run(*args: str):
    res = runner.invoke(app, ["validate", *args])
    assert "Traceback" not in res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)
    return res


def test_strict_exits_1_naming_each_problem(tmp_path):
    path = messy(tmp_path)
    res = run(str(path))
    assert res.exit_code == 1
    out = " ".join(res.output.split())  # undo terminal wrapping
    for reason, column, row in [
        ("unparseable timestamp", "timestamp", 2),
        ("unknown event_type", "event_type", 4),
        ("negative cost", "cost", 5),
        ("empty device_id", "device_id", 7),
    ]:
        assert f"{path}: {reason}; column '{column}'; 1 row(s): {row}" in out
    assert "'31/02/2024 10:00'" in out and "'signup'" in out and "'-2'" in out
    assert "line r+1" in out


def test_strict_exits_1_on_a_missing_required_column(tmp_path):
    path = tmp_path / "events.csv"
    path.write_text("device_id,event_type\nd1,visit\n")
    res = run(str(path))
    assert res.exit_code == 1
    out = " ".join(res.output.split())
    assert str(path) in out and "column 'timestamp'" in out
    assert "columns found: device_id, event_type" in out


def test_lenient_keeps_valid_rows_and_writes_rejects(tmp_path):
    path = messy(tmp_path)
    rejects = tmp_path / "out" / "rej.csv"
    rejects.parent.mkdir()
    res = run(str(path), "--lenient", "--rejects", str(rejects))
    assert res.exit_code == 0, res.output
    assert "rows kept                   4" in res.output
    assert "rows rejected               4" in res.output
    assert f"written to {rejects}" in " ".join(res.output.split())
    rej = pd.read_csv(rejects, dtype=str, keep_default_na=False)
    assert rej["_row"].astype(int).tolist() == sorted(BAD)
    assert rej[HEADER.split(",")].agg(",".join, axis=1).tolist() == [BAD[r] for r in sorted(BAD)]

    # The library gives the same valid rows, exactly those of GOOD.
    from gaelp_bayes.io import read_events

    kept = read_events(path, mode="lenient").table
    good = tmp_path / "good.csv"
    good.write_text("\n".join([HEADER, *GOOD]) + "\n")
    pd.testing.assert_frame_equal(kept, read_events(good).table)
    assert kept["event_id"].tolist() == ["e1", "e2", "e3", "e4"]


def test_lenient_default_rejects_path_is_in_the_working_directory(tmp_path, monkeypatch):
    path = messy(tmp_path)
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    res = run(str(path), "--lenient")
    assert res.exit_code == 0, res.output
    assert (work / "events.rejects.csv").exists()
    assert "events.rejects.csv" in res.output


def test_clean_input_exits_0_with_report(tmp_path):
    path = tmp_path / "events.csv"
    path.write_text("\n".join([HEADER, *GOOD]) + "\n")
    auctions = tmp_path / "auctions.csv"
    auctions.write_text("timestamp,channel,bid,won,price\n2024-03-01T00:00:00Z,search,1,True,0.4\n")
    res = run(str(path), "--auctions", str(auctions))
    assert res.exit_code == 0, res.output
    for label in ("rows kept", "devices", "user_id coverage", "events by type", "date range"):
        assert label in res.output
    assert "auctions:" in res.output and "won" in res.output


def test_lenient_auctions_rejects_go_next_to_events_rejects(tmp_path):
    events = tmp_path / "events.csv"
    events.write_text("\n".join([HEADER, *GOOD]) + "\n")
    auctions = tmp_path / "auctions.csv"
    auctions.write_text("timestamp,channel,bid,won,price\n2024-03-01T00:00:00Z,search,0,True,0\n")
    rejects = tmp_path / "rej.csv"
    res = run(str(events), "--auctions", str(auctions), "--lenient", "--rejects", str(rejects))
    assert res.exit_code == 0, res.output
    assert not rejects.exists()  # no events rejected
    assert pd.read_csv(tmp_path / "rej.auctions.csv")["_reason"].tolist() == ["bid not > 0"]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["nope.csv"], 1, "does not exist"),
        (["{events}", "--format", "ga4"], 1, "GA4 export must be newline-delimited JSON"),
        (["{events}", "--format", "xml"], 2, "--format must be one of"),
        (["{events}", "--lenient", "--rejects", "r.txt"], 2, ".csv or .parquet"),
        (["{events}", "--auctions", "nope.parquet"], 1, "does not exist"),
    ],
)
def test_user_errors(tmp_path, args, code, message):
    path = messy(tmp_path)
    res = run(*[a.format(events=path) for a in args])
    assert res.exit_code == code, res.output
    assert message in res.output


def test_example_world_validates_clean(small_world):
    """The example-data output (conftest's session world) passes strict validation."""
    res = run(
        str(small_world / "events.parquet"), "--auctions", str(small_world / "auctions.parquet")
    )
    assert res.exit_code == 0, res.output
    assert res.output.count("rows rejected               0") == 2


@pytest.mark.parametrize(
    ("name", "expected"),
    [("events.csv", "events"), ("my.events.csv.gz", "my.events"), ("e.parquet", "e")],
)
def test_default_rejects_name(tmp_path, monkeypatch, name, expected):
    from gaelp_bayes.cli.validate import default_rejects

    monkeypatch.chdir(tmp_path)
    assert default_rejects(tmp_path / name) == tmp_path / f"{expected}.rejects.csv"
