"""The example world: contract, determinism, and that its truth is what it says."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from gaelp_bayes.world import Channel, Segment, WorldSpec, get_world, make_world, write_world
from gaelp_bayes.world.generate import (
    active_opportunities,
    cumulative_intensity,
    first_conversion,
    incremental_by_channel,
    simulate_population,
)


@pytest.mark.parametrize("kind", ["events", "auctions", "truth"])
def test_example_world_follows_contract(small_world, check_contract, kind):
    target = small_world / "truth" if kind == "truth" else small_world / f"{kind}.parquet"
    res = subprocess.run(
        [sys.executable, str(check_contract), kind, str(target)], capture_output=True, text=True
    )
    assert res.returncode == 0, res.stdout + res.stderr


def test_world_is_labelled_synthetic(small_world):
    params = json.loads((small_world / "truth" / "params.json").read_text())
    assert params["synthetic"] is True
    assert "SYNTHETIC" in params["provenance"]
    assert "SYNTHETIC" in (small_world / "README.txt").read_text()
    import pyarrow.parquet as pq

    meta = pq.read_schema(small_world / "events.parquet").metadata
    assert b"SYNTHETIC" in meta[b"gaelp_bayes.provenance"]


def test_same_seed_identical_files_other_seed_differs(tmp_path):
    spec = get_world("parental-controls")
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        write_world(
            make_world(spec, persons=600, days=20, seed=seed, latency_mc_persons=5000),
            tmp_path / name,
        )
    for f in (
        "events.parquet",
        "auctions.parquet",
        "truth/devices.parquet",
        "truth/persons.parquet",
        "truth/params.json",
        "truth/incremental.json",
        "truth/latency.json",
    ):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
    assert (tmp_path / "a" / "events.parquet").read_bytes() != (
        tmp_path / "c" / "events.parquet"
    ).read_bytes()


def test_truth_is_consistent_with_events(small_world):
    ev = pd.read_parquet(small_world / "events.parquet")
    dev = pd.read_parquet(small_world / "truth" / "devices.parquet")
    persons = pd.read_parquet(small_world / "truth" / "persons.parquet")
    params = json.loads((small_world / "truth" / "params.json").read_text())
    # every device in the data is in the truth map, and maps to a known person
    assert set(ev.device_id) <= set(dev.device_id)
    assert set(dev.person_id) <= set(persons.person_id)
    ev["person"] = ev.device_id.map(dev.set_index("device_id").person_id)
    # a user_id never spans two persons: logins are true links
    per_uid = ev.dropna(subset=["user_id"]).groupby("user_id").person.nunique()
    assert (per_uid == 1).all()
    # some persons have several devices, and some of those are linked by a login
    assert (persons.n_devices > 1).mean() > 0.3
    # observation window
    as_of = pd.Timestamp(params["as_of"])
    assert ev.timestamp.max() < as_of and ev.timestamp.min() >= pd.Timestamp(params["start"])
    # first conversions before as_of are exactly the converters the truth reports
    first_conv = ev[ev.event_type == "conversion"].groupby("person").timestamp.min()
    truth_conv = persons.set_index("person_id").converted_at
    truth_conv = truth_conv[truth_conv < as_of]
    assert set(first_conv.index) == set(truth_conv.index)
    assert params["counts"]["converters_by_as_of"] == len(truth_conv)
    # no ads after a person's first conversion (we stop bidding on converters)
    conv_t = ev.person.map(first_conv)
    assert not ((ev.event_type == "impression") & (ev.timestamp > conv_t)).any()
    # every segment and channel of the spec appears
    spec = get_world("parental-controls")
    assert set(ev.segment) == set(spec.segment_names)
    assert set(ev.channel.dropna()) == {*spec.channel_names, "direct"}


def test_auctions_follow_second_price_rules(small_world):
    au = pd.read_parquet(small_world / "auctions.parquet")
    won = au[au.won]
    assert (won.price <= won.bid + 1e-9).all()
    assert (won.price >= won["floor"] - 1e-9).all()
    assert au.loc[~au.won, "price"].isna().all()
    assert 0.2 < au.won.mean() < 0.9  # the logged policy wins some and loses some
    ev = pd.read_parquet(small_world / "events.parquet")
    assert (ev.event_type == "impression").sum() == len(won)
    assert np.isclose(ev.cost.sum(), won.price.sum())


@pytest.fixture(scope="module")
def population():
    spec = get_world("parental-controls")
    return spec, simulate_population(spec, persons=3000, days=30, seed=3)


def test_conversion_time_solves_intensity_equation(population):
    spec, pop = population
    conv = pop.conversion
    done = np.isfinite(conv)
    assert done.any() and (~done).any()
    assert not (done & ~pop.in_market).any()  # the cure fraction never converts
    H = cumulative_intensity(spec, pop)
    x = np.where(done, conv, pop.arrival)
    np.testing.assert_allclose(H(x)[done], pop.threshold[done], rtol=1e-6)
    # persons who never convert never reach their threshold
    end = pop.arrival + pop.window + 60.0
    assert (H(end)[~done & pop.in_market] < pop.threshold[~done & pop.in_market]).all()


def test_incremental_shortcut_equals_brute_force_counterfactual(population):
    """The generator skips persons a removal cannot affect; check against recomputing all."""
    spec, pop = population
    days = 30
    fast = incremental_by_channel(spec, pop, days)
    for ci, ch in enumerate(spec.channels):
        cf = first_conversion(spec, pop, drop_channel=ci)
        assert (cf >= pop.conversion - 1e-9).all()  # removing touches only delays
        brute = int(((pop.conversion < days) & (cf >= days)).sum())
        assert fast[ch.name] == brute, ch.name
    assert sum(fast.values()) > 0


def test_bidding_stops_at_conversion(population):
    _, pop = population
    act = active_opportunities(pop)
    assert (pop.opp_time[act] < pop.conversion[pop.opp_person[act]]).all()


def test_sample_latency_agrees_with_population_truth(tmp_path):
    """Uncensored sample curves are binomial draws around the population curves."""
    spec = get_world("parental-controls")
    w = make_world(spec, persons=6000, days=30, seed=21, latency_mc_persons=30_000)
    n = w.params["segments"]
    z = []
    for seg, curve in w.latency.items():
        for d in ("3", "7", "14", "30"):
            p, ps, m = curve[d], w.latency_sample[seg][d], n[seg]["persons_sample"]
            z.append((ps - p) / np.sqrt(max(p * (1 - p), 1e-4) / m))
    z = np.array(z)
    # 4 sd per case, and no systematic shift across the 24 correlated cases
    assert np.abs(z).max() < 4, z
    assert abs(z.mean()) < 2.5, z


def test_parental_controls_assumptions_hold():
    """The default world encodes its documented domain assumptions."""
    spec = get_world("parental-controls")
    w = make_world(spec, persons=3000, days=30, seed=2, latency_mc_persons=30_000)
    seg = w.params["segments"]
    assert 5 <= len(seg) <= 6
    assert seg["crisis"]["median_days"] < 4  # urgent parents convert within days
    assert seg["researcher"]["median_days"] >= 14  # researchers take two weeks or more
    assert seg["crisis"]["p_convert"] > max(v["p_convert"] for k, v in seg.items() if k != "crisis")
    profile = np.array(spec.hour_profile)
    assert profile[18:23].mean() > 1.5 * profile[8:17].mean()  # evening peak


def test_a_different_world_shape_works(tmp_path, check_contract):
    """Nothing depends on the example world's names: two channels, three segments."""
    channels = (
        Channel("tv_connected", 0.5, 0.03, 0.5, 0.1, 0.005, 0.03, 0.01, 0.02, 0.1, 3.0, 2.0),
        Channel(
            "affiliate", 0.3, 0.2, 0.4, 0.0, 0.01, 0.25, 0.05, 0.03, 0.3, 1.0, 0.5, {"mobile": 0.5}
        ),
    )
    segments = tuple(
        Segment(f"s{i}", share, 0.5, 0.01, 10.0 + 5 * i, 1.0, 1.0, 1.0, 0.5, 0.3, 20.0)
        for i, share in enumerate((0.5, 0.3, 0.2))
    )
    spec = WorldSpec("tiny", "a test world", channels, segments, start="2025-06-01T00:00:00Z")
    w = make_world(spec, persons=800, days=15, seed=1, latency_mc_persons=4000)
    write_world(w, tmp_path)
    for kind in ("events", "auctions"):
        res = subprocess.run(
            [sys.executable, str(check_contract), kind, str(tmp_path / f"{kind}.parquet")],
            capture_output=True,
            text=True,
        )
        assert res.returncode == 0, res.stdout
    assert set(w.incremental) == {"tv_connected", "affiliate"}
    assert set(w.latency) == {"s0", "s1", "s2"}
    ev = pd.read_parquet(tmp_path / "events.parquet")
    assert ev.timestamp.min() >= pd.Timestamp("2025-06-01", tz="UTC")


def test_unknown_world_is_a_clear_error():
    from gaelp_bayes.errors import GaelpError

    with pytest.raises(GaelpError, match="known worlds: parental-controls"):
        get_world("no-such-world")


def test_docs_show_the_current_assumptions():
    """docs/example-world.md embeds the generated assumption tables verbatim."""
    from pathlib import Path

    from gaelp_bayes.world.spec import assumptions_markdown

    doc = (Path(__file__).resolve().parents[1] / "docs" / "example-world.md").read_text()
    assert assumptions_markdown(get_world("parental-controls")) in doc, (
        "regenerate the tables in docs/example-world.md from assumptions_markdown()"
    )
