"""Round trips on the SYNTHETIC example world: canonical events -> export -> events.

The writers turn the world's canonical events into what GA4 (BigQuery
export), PostHog and Criteo would export; reading that back must give the
world's canonical events exactly, except what the format cannot carry
(docs/exports.md, "What each format loses"):

* GA4: no impressions (so no cost), no ip_prefix, no event_id;
* PostHog: no impressions (so no cost); event_id becomes the event's uuid;
* Criteo: impressions only at whole seconds, channel as campaign (the campaign
  name is lost), clicks at the time of the impression they mark, conversions
  only when an impression of the device precedes them within 30 days with no
  other conversion in between, no visits, user_id, value, device_type, ip_prefix, user_agent, geo, segment.
"""

from __future__ import annotations

import gzip

import pandas as pd
import pytest
from typer.testing import CliRunner

from gaelp_bayes.cli.main import app
from gaelp_bayes.io import read_events
from gaelp_bayes.io.exports import write_export

runner = CliRunner()

CARRIED = {
    "ga4": ["device_id", "timestamp", "event_type", "channel", "user_id", "campaign", "value",
            "device_type", "user_agent", "geo", "segment"],
    "posthog": ["device_id", "timestamp", "event_type", "channel", "user_id", "campaign",
                "value", "device_type", "ip_prefix", "user_agent", "geo", "segment"],
}  # fmt: skip


@pytest.fixture(scope="module")
def world_events(small_world) -> pd.DataFrame:
    return pd.read_parquet(small_world / "events.parquet")


def normalised(df: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
    out = df[cols].copy()
    out["timestamp"] = pd.to_datetime(out["timestamp"], utc=True).astype("int64")
    out = out.astype(object).where(out.notna(), None).astype(str)
    return out.sort_values(cols).reset_index(drop=True)


def assert_same_events(got: pd.DataFrame, world: pd.DataFrame, fmt: str) -> None:
    cols = CARRIED[fmt]
    expected = normalised(world[world["event_type"] != "impression"], cols)
    recovered = normalised(got, cols)
    assert len(recovered) == len(expected)
    diff = (recovered != expected).any(axis=1)
    assert not diff.any(), pd.concat([recovered[diff], expected[diff]], axis=1).head()


@pytest.mark.parametrize(("fmt", "file_format"), [("ga4", "parquet"), ("ga4", "json"),
                                                  ("posthog", "csv"), ("posthog", "json")])  # fmt: skip
def test_ga4_and_posthog_round_trip_exactly(tmp_path, world_events, fmt, file_format):
    write_export(world_events, tmp_path, fmt, file_format=file_format, provenance="SYNTHETIC")
    res = read_events(tmp_path)  # format detected, gaelp-mapping.toml picked up
    assert res.report.format == fmt and res.report.rows_rejected == 0
    assert_same_events(res.table, world_events, fmt)
    if fmt == "posthog":
        assert res.table["event_id"].notna().all() and res.table["event_id"].is_unique


def test_ga4_defaults_alone_recover_common_channels(tmp_path, world_events):
    """Without the written mapping file the default grouping still gives the channels
    back for the common names (search, social, display, video, email)."""
    write_export(world_events, tmp_path, "ga4", file_format="json")
    (tmp_path / "gaelp-mapping.toml").unlink()
    assert_same_events(read_events(tmp_path).table, world_events, "ga4")


def test_unknown_channel_names_round_trip(tmp_path, world_events):
    """Channel names of another world (not the example's) survive the round trip."""
    renamed = world_events.copy()
    names = {"search": "organic", "social": "Paid Social", "display": "tv"}
    renamed["channel"] = renamed["channel"].replace(names)
    for fmt in ("ga4", "posthog"):
        write_export(renamed, tmp_path / fmt, fmt)
        assert_same_events(read_events(tmp_path / fmt).table, renamed, fmt)


def _criteo_expected(world: pd.DataFrame, start: pd.Timestamp) -> dict[str, pd.DataFrame]:
    """The documented Criteo rules applied to the world's events."""
    ev = world.copy()
    ev["timestamp"] = pd.to_datetime(ev["timestamp"], utc=True)
    floor = start + ((ev["timestamp"] - start) // pd.Timedelta(seconds=1)) * pd.Timedelta(seconds=1)
    ev["second"] = floor
    imps = ev[ev["event_type"] == "impression"].sort_values("timestamp", kind="stable")
    clicks = ev[ev["event_type"] == "click"].sort_values("timestamp", kind="stable")
    marked = pd.merge_asof(
        clicks[["timestamp", "device_id", "channel"]],
        imps[["timestamp", "device_id", "channel", "second"]],
        on="timestamp",
        by=["device_id", "channel"],
    ).dropna(subset=["second"])
    marked = marked.drop_duplicates(["device_id", "channel", "second"])
    # A row names the device's *next* conversion within 30 days, so a conversion is
    # seen iff the device's latest impression before it is within 30 days and after
    # the device's previous conversion.
    conv = ev[ev["event_type"] == "conversion"].sort_values("timestamp", kind="stable")
    latest = pd.merge_asof(
        conv[["timestamp", "device_id", "second"]],
        imps[["timestamp", "device_id"]].assign(_imp=imps["timestamp"]),
        on="timestamp",
        by="device_id",
        tolerance=pd.Timedelta(days=30),
    )
    previous = pd.merge_asof(
        conv[["timestamp", "device_id"]],
        conv[["timestamp", "device_id"]].assign(_prev=conv["timestamp"]),
        on="timestamp",
        by="device_id",
        allow_exact_matches=False,
    )
    seen = latest["_imp"].notna() & ~(previous["_prev"] >= latest["_imp"])
    return {
        "impression": imps[["device_id", "second", "channel", "cost"]],
        "click": marked[["device_id", "second", "channel"]],
        "conversion": latest.loc[seen, ["device_id", "second"]],
    }


def test_criteo_round_trip_follows_the_documented_rules(tmp_path, world_events):
    write_export(world_events, tmp_path, "criteo", provenance="SYNTHETIC")
    start = pd.Timestamp(
        (tmp_path / "gaelp-mapping.toml").read_text().split('start = "')[1].split('"')[0]
    )
    with gzip.open(tmp_path / "criteo_attribution_dataset.tsv.gz", "rt") as fh:
        assert fh.readline().rstrip("\n").split("\t")[:6] == [
            "timestamp", "uid", "campaign", "conversion", "conversion_timestamp", "conversion_id"
        ]  # fmt: skip
    got = read_events(tmp_path).table
    expected = _criteo_expected(world_events, start)
    for kind, exp in expected.items():
        g = got[got["event_type"] == kind]
        cols = ["device_id", "timestamp"] + (["channel"] if kind != "conversion" else [])
        left = sorted(map(tuple, g[cols].astype(str).to_numpy()))
        right = sorted(map(tuple, exp.rename(columns={"second": "timestamp"})[cols]
                           .astype(str).to_numpy()))  # fmt: skip
        assert left == right, kind
    imps = got[got["event_type"] == "impression"]
    assert (imps["campaign"] == imps["channel"]).all()
    exp_cost = expected["impression"]["cost"].sort_values().to_numpy()
    assert imps["cost"].sort_values().to_numpy() == pytest.approx(exp_cost, rel=1e-12)
    assert got["value"].isna().all() and got["user_id"].isna().all()


@pytest.mark.parametrize("fmt", ["ga4", "posthog", "criteo"])
def test_example_data_export_validates_and_matches_truth(tmp_path, fmt):
    out = tmp_path / "w"
    res = runner.invoke(
        app,
        ["example-data", str(out), "--persons", "300", "--days", "10", "--seed", "4",
         "--format", fmt, "--quiet"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "SYNTHETIC" not in res.output  # --quiet
    assert "SYNTHETIC" in (out / "events" / "README.txt").read_text()
    assert (out / "auctions.parquet").exists() and (out / "truth" / "events.parquet").exists()
    assert not (out / "events.parquet").exists()
    check = runner.invoke(app, ["validate", str(out / "events"), "--quiet"])
    assert check.exit_code == 0, check.output
    assert f"({fmt}, strict mode)" in check.output
    truth = pd.read_parquet(out / "truth" / "events.parquet")
    got = read_events(out / "events").table
    if fmt == "criteo":
        assert (got["event_type"] == "impression").sum() == (
            truth["event_type"] == "impression"
        ).sum()
    else:
        assert_same_events(got, truth, fmt)


def test_cli_mapping_option(tmp_path):
    events = tmp_path / "events_20260101.json"
    events.write_text(
        '{"event_timestamp": "1767225600000000", "event_name": "signed_contract", '
        '"user_pseudo_id": "d1"}\n'
    )
    plain = runner.invoke(app, ["validate", str(events)])
    assert plain.exit_code == 0 and "signed_contract (1)" in plain.output
    mapping = tmp_path / "m.toml"
    mapping.write_text('[ga4]\nconversion_events = ["signed_contract"]\n')
    mapped = runner.invoke(app, ["validate", str(events), "--mapping", str(mapping)])
    assert mapped.exit_code == 0 and "conversion" in mapped.output
    mapping.write_text('[ga4]\nconversion_event = ["signed_contract"]\n')
    bad = runner.invoke(app, ["validate", str(events), "--mapping", str(mapping)])
    assert bad.exit_code == 1 and "unknown key 'conversion_event'" in bad.output
    fit = runner.invoke(
        app, ["fit", str(events), "--out", str(tmp_path / "b"), "--mapping", str(mapping)]
    )
    assert fit.exit_code == 1 and "unknown key 'conversion_event'" in fit.output
    assert "Traceback" not in fit.output


def test_exports_bench_runs_tiny(capsys):
    """benchmarks/exports_bench.py end to end at a tiny size (the 5M run is in the docs)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "exports_bench.py"
    spec = importlib.util.spec_from_file_location("exports_bench", path)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = bench.main(["--rows", "3000", "--repeat", "1", "--persons", "200", "--days", "7"])
    assert set(out) == {"canonical", "ga4", "ratio"} and all(v > 0 for v in out.values())
    assert "ratio GA4 / canonical" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["ga4", "posthog", "criteo"])
def test_fit_reads_each_export(tmp_path, fmt):
    """`fit` on an example-data export writes a bundle (latency model, tiny sampler)."""
    out = tmp_path / "w"
    res = runner.invoke(
        app,
        ["example-data", str(out), "--persons", "400", "--days", "14", "--seed", "2",
         "--format", fmt, "--quiet"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    fit = runner.invoke(
        app,
        ["fit", str(out / "events"), "--out", str(tmp_path / "b"), "--models", "latency",
         "--chains", "1", "--draws", "100", "--tune", "100", "--quiet"],
    )  # fmt: skip
    assert fit.exit_code == 0, fit.output
    assert (tmp_path / "b" / "summary.json").is_file()


def test_writers_accept_a_minimal_canonical_table(tmp_path):
    events = pd.DataFrame(
        {
            "device_id": ["d1", "d1", "d1"],
            "timestamp": pd.to_datetime(
                ["2026-01-01T00:00:00Z", "2026-01-01T00:00:05Z", "2026-01-01T01:00:00Z"]
            ),
            "event_type": ["impression", "click", "conversion"],
            "channel": ["search", "search", None],
        }
    )
    for fmt in ("ga4", "posthog", "criteo"):
        write_export(events, tmp_path / fmt, fmt)
        got = read_events(tmp_path / fmt).table
        kinds = sorted(got["event_type"])
        assert kinds == (["click", "conversion", "impression"] if fmt == "criteo"
                         else ["click", "conversion"])  # fmt: skip
        assert set(got.loc[got["event_type"] != "conversion", "channel"]) == {"search"}


def test_cli_validate_malformed_export(tmp_path):
    path = tmp_path / "events_20260101.json"
    path.write_text(
        '{"event_timestamp": "1767225600000000", "event_name": "session_start", '
        '"user_pseudo_id": "d1"}\n'
        '{"event_timestamp": "1767225600000000", "event_name": "session_start"}\n'
        '{"event_timestamp": "17672256000'
    )
    strict = runner.invoke(app, ["validate", str(path)])
    assert strict.exit_code == 1 and "Traceback" not in strict.output
    assert "user_pseudo_id (-> device_id)" in strict.output
    assert "malformed JSON line" in strict.output
    rejects = tmp_path / "rejects.csv"
    lenient = runner.invoke(app, ["validate", str(path), "--lenient", "--rejects", str(rejects)])
    assert lenient.exit_code == 0, lenient.output
    assert pd.read_csv(rejects)["_row"].tolist() == [2, 3]
