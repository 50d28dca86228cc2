"""Journeys: stitching devices into persons, first touch, first conversion, censoring, segment."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gaelp_bayes.errors import DataError
from gaelp_bayes.journeys import build_journeys, journey_times

AS_OF = pd.Timestamp("2026-01-31", tz="UTC")


def _ev(rows):
    df = pd.DataFrame(
        rows, columns=["device_id", "timestamp", "event_type", "user_id", "segment", "channel"]
    )
    df["timestamp"] = pd.to_datetime(df["timestamp"], utc=True)
    return df


def test_user_ids_merge_devices_transitively():
    ev = _ev(
        [
            ("A", "2026-01-01", "impression", None, "s1", "search"),
            ("A", "2026-01-02", "visit", "u1", "s1", "direct"),
            ("B", "2026-01-03", "visit", "u1", "s1", "direct"),
            ("B", "2026-01-04", "visit", "u2", "s1", "direct"),
            ("C", "2026-01-05", "conversion", "u2", None, None),
            ("D", "2026-01-06", "click", None, "s2", "social"),
        ]
    )
    j = build_journeys(ev, AS_OF).set_index("person_id")
    assert len(j) == 2
    abc = j.loc["A"]
    assert abc.n_devices == 3 and abc.n_touches == 4
    assert abc.first_touch == pd.Timestamp("2026-01-01", tz="UTC")
    assert abc.converted_at == pd.Timestamp("2026-01-05", tz="UTC")
    assert abc.first_channel == "search"
    assert pd.isna(j.loc["D"].converted_at) and j.loc["D"].segment == "s2"


def test_events_after_as_of_are_ignored_and_touches_stop_at_conversion():
    ev = _ev(
        [
            ("A", "2026-01-10", "impression", None, "s", "search"),
            ("A", "2026-01-12", "conversion", None, "s", None),
            ("A", "2026-01-13", "impression", None, "s", "search"),  # after conversion
            ("A", "2026-01-14", "conversion", None, "s", None),  # a repeat conversion
            ("B", "2026-01-20", "impression", None, "s", "search"),
            ("B", "2026-02-05", "conversion", None, "s", None),  # after as_of: censored
            ("C", "2026-02-03", "impression", None, "s", "search"),  # first seen after as_of
        ]
    )
    j = build_journeys(ev, AS_OF).set_index("person_id")
    assert set(j.index) == {"A", "B"}
    assert j.loc["A"].n_touches == 1
    assert j.loc["A"].converted_at == pd.Timestamp("2026-01-12", tz="UTC")
    assert pd.isna(j.loc["B"].converted_at)
    days, conv = journey_times(j.reset_index(), AS_OF)
    assert days.tolist() == [2.0, 11.0] and conv.tolist() == [True, False]


def test_conversion_without_touch_has_zero_latency():
    ev = _ev([("A", "2026-01-10", "conversion", "u", "s", None)])
    j = build_journeys(ev, AS_OF)
    assert j.first_touch.iloc[0] == j.converted_at.iloc[0]
    assert j.n_touches.iloc[0] == 0


def test_segment_rule():
    ev = _ev(
        [
            ("A", "2026-01-01", "impression", None, "x", "search"),
            ("A", "2026-01-02", "impression", None, "y", "search"),
            ("A", "2026-01-03", "impression", None, "y", "search"),
            ("B", "2026-01-01", "impression", None, "y", "search"),  # tie: first seen wins
            ("B", "2026-01-02", "impression", None, "x", "search"),
            ("C", "2026-01-01", "impression", None, None, "search"),
        ]
    )
    j = build_journeys(ev, AS_OF).set_index("person_id")
    assert j.segment.to_dict() == {"A": "y", "B": "y", "C": "unknown"}
    j2 = build_journeys(ev.drop(columns=["segment"]), AS_OF)
    assert set(j2.segment) == {"all"}


def test_person_map_overrides_user_ids_and_unmapped_devices_stand_alone():
    ev = _ev(
        [
            ("A", "2026-01-01", "impression", "u1", "s", "search"),
            ("B", "2026-01-02", "visit", "u1", "s", "direct"),
            ("C", "2026-01-03", "conversion", None, "s", None),
        ]
    )
    pm = pd.DataFrame({"device_id": ["A", "C"], "person_id": ["p1", "p1"]})
    j = build_journeys(ev, AS_OF, person_map=pm).set_index("person_id")
    assert j.loc["p1"].n_devices == 2 and not pd.isna(j.loc["p1"].converted_at)
    assert "device:B" in j.index


def test_missing_columns_say_what_is_needed():
    with pytest.raises(DataError, match="event_type"):
        build_journeys(pd.DataFrame({"device_id": ["a"], "timestamp": [AS_OF]}), AS_OF)


def test_true_person_map_reproduces_the_world_truth():
    from gaelp_bayes.world import get_world, make_world

    w = make_world(
        get_world("parental-controls"), persons=800, days=20, seed=3, latency_mc_persons=1000
    )
    ev = w.events.to_pandas()
    j = build_journeys(ev, w.as_of, person_map=w.devices).set_index("person_id")
    truth = w.persons_truth.set_index("person_id")
    seen = truth[truth.first_touch <= w.as_of]
    assert set(j.index) == set(seen.index)
    t = seen.loc[j.index]
    assert (j.first_touch == t.first_touch).all()
    conv_true = t.converted_at.where(t.converted_at <= w.as_of)
    assert (j.converted_at.isna() == conv_true.isna()).all()
    assert (j.converted_at.dropna() == conv_true.dropna()).all()
    assert (j.segment == t.segment).all()
    # with only user_id links there are more journeys (unlinked devices) and no more converters
    ju = build_journeys(ev, w.as_of)
    assert len(ju) >= len(j)
    assert ju.converted_at.notna().sum() == j.converted_at.notna().sum()
    assert np.isfinite(journey_times(ju, w.as_of)[0]).all()
