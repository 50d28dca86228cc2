"""Touches of each person, relative to their first touch: the attribution model's input.

One row per touch (impression, click or visit) of a person, in days since
that person's first touch, up to their first conversion or ``as_of``. The
device -> person map is the one :func:`gaelp_bayes.journeys.build_journeys`
uses (a ``person_map`` draw, or devices merged through shared ``user_id``),
and so is the segment of a person.

Three kinds of events are set aside, and counted:

* touches at or after the person's first conversion (they cannot have
  caused it; the data contract models only the first conversion);
* visits in the *conversion session*: a visit less than ``session_minutes``
  before the first conversion is the visit in which the person converted
  (the web shop has to be visited to buy), a consequence of the decision
  rather than a cause of it. Left in, it would look like the strongest touch
  of all. ``session_minutes = 0`` keeps them;
* persons whose first conversion has no touch before it (nothing to
  attribute: their conversion is credited to the baseline; they are not
  part of the fit).

A visit without a channel is a ``direct`` visit.

Example
-------
>>> import pandas as pd
>>> ev = pd.DataFrame({
...     "device_id": ["a", "a", "a"],
...     "timestamp": pd.to_datetime(["2026-01-01", "2026-01-02", "2026-01-03"], utc=True),
...     "event_type": ["impression", "conversion", "click"],
...     "channel": ["search", None, "search"]})
>>> t = extract_touches(ev, pd.Timestamp("2026-01-10", tz="UTC"))
>>> t.n_touches, t.after_conversion, float(t.end_days[0])
(1, 1, 1.0)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from gaelp_bayes.errors import DataError
from gaelp_bayes.journeys import TOUCH_TYPES, _segments, _utc, device_persons

DIRECT = "direct"
_US_PER_DAY = 86_400_000_000


@dataclass
class Touches:
    """Persons (with at least one touch) and their touches, times in days.

    Per person ``i``: ``segment[i]`` (index into ``segments``), ``end_days[i]``
    (days from the first touch to the first conversion, or to ``as_of``),
    ``converted[i]`` and ``horizon_days[i]`` (days from the first touch to
    ``as_of``, also for converters). Per touch ``j``: ``person[j]``,
    ``days[j]`` (since the person's first touch, ``< end_days``), ``channel[j]``
    and ``touch_type[j]`` (indices into ``channels`` / ``touch_types``).
    Touches are sorted by person, then time.
    """

    person_ids: np.ndarray
    segment: np.ndarray
    end_days: np.ndarray
    horizon_days: np.ndarray
    converted: np.ndarray
    person: np.ndarray
    days: np.ndarray
    channel: np.ndarray
    touch_type: np.ndarray
    segments: list[str]
    channels: list[str]
    touch_types: list[str]
    window_days: float = 0.0
    after_conversion: int = 0
    session_visits: int = 0
    converters_without_touches: int = 0
    converters_without_touches_by_segment: dict[str, int] = field(default_factory=dict)

    @property
    def n_persons(self) -> int:
        return int(self.segment.size)

    @property
    def n_touches(self) -> int:
        return int(self.person.size)

    @property
    def conversions(self) -> int:
        return int(self.converted.sum())

    def persons_per_segment(self) -> np.ndarray:
        return np.bincount(self.segment, minlength=len(self.segments)).astype(np.float64)

    def paths(self) -> pd.DataFrame:
        """One row per person: ``path`` (tuple of channel names in time order), ``converted``."""
        names = np.asarray(self.channels, dtype=object)
        starts = np.searchsorted(self.person, np.arange(self.n_persons + 1))
        ch = names[self.channel]
        paths = [tuple(ch[starts[i] : starts[i + 1]]) for i in range(self.n_persons)]
        return pd.DataFrame({"path": paths, "converted": self.converted.astype(bool)})

    def subset(self, keep: np.ndarray) -> Touches:
        """The persons in boolean mask ``keep`` (and their touches), renumbered."""
        keep = np.asarray(keep, dtype=bool)
        new_index = np.cumsum(keep) - 1
        tk = keep[self.person]
        return Touches(
            person_ids=self.person_ids[keep],
            segment=self.segment[keep],
            end_days=self.end_days[keep],
            horizon_days=self.horizon_days[keep],
            converted=self.converted[keep],
            person=new_index[self.person[tk]],
            days=self.days[tk],
            channel=self.channel[tk],
            touch_type=self.touch_type[tk],
            segments=self.segments,
            channels=self.channels,
            touch_types=self.touch_types,
            window_days=self.window_days,
        )


def _device_persons(ev: pd.DataFrame, person_map: pd.DataFrame | None):
    """Person index per event and person ids, exactly as build_journeys maps devices."""
    p_of_dev, dev_code, person_ids = device_persons(ev, person_map)
    return p_of_dev[dev_code], person_ids


def extract_touches(
    events: pd.DataFrame,
    as_of: pd.Timestamp,
    person_map: pd.DataFrame | None = None,
    session_minutes: float = 30.0,
    touch_types: tuple[str, ...] | list[str] = TOUCH_TYPES,
    segments: list[str] | None = None,
    channels: list[str] | None = None,
) -> Touches:
    """Persons and their touches before the first conversion (see the module docstring).

    ``segments`` / ``channels`` fix the label order (for fits over several
    identity draws); labels not in them raise :class:`DataError`.
    Raises :class:`DataError` when no person has a touch before ``as_of``.
    """
    missing = [c for c in ("device_id", "timestamp", "event_type") if c not in events.columns]
    if missing:
        raise DataError(
            f"attribution needs the event columns {missing}; found {list(events.columns)}",
            hint="read the events with gaelp_bayes.io.read_events, which checks the contract",
        )
    bad_types = sorted(set(touch_types) - set(TOUCH_TYPES))
    if bad_types:
        raise DataError(f"unknown touch types {bad_types}; choose from {list(TOUCH_TYPES)}")
    as_of = _utc(as_of)
    ts = pd.to_datetime(events["timestamp"], utc=True)
    etype_all = events["event_type"].astype(str).to_numpy()
    keep = (ts <= as_of).to_numpy() & np.isin(etype_all, (*touch_types, "conversion"))
    ev = events.loc[keep]
    if not (ev["event_type"].astype(str) != "conversion").any():
        raise DataError(
            "the attribution model needs touches (impression, click or visit events) before "
            f"as_of {as_of}; found none in {len(events)} event(s)",
            hint="check --as-of and that the export holds impressions, clicks or visits, "
            "not only conversions",
        )
    t_us = ts[keep].dt.tz_localize(None).to_numpy().astype("datetime64[us]").view(np.int64)
    as_of_us = int(as_of.tz_localize(None).to_datetime64().astype("datetime64[us]").view(np.int64))
    person, person_ids = _device_persons(ev, person_map)
    n_p = person_ids.size
    etype = ev["event_type"].astype(str).to_numpy()
    is_conv = etype == "conversion"
    big = np.iinfo(np.int64).max
    conv_t = np.full(n_p, big, dtype=np.int64)
    np.minimum.at(conv_t, person[is_conv], t_us[is_conv])
    seg_label = _segments(ev, person, t_us, n_p)

    touch = ~is_conv
    if "channel" in ev.columns:
        chan = ev["channel"].astype(object).to_numpy()
    else:
        chan = np.full(len(ev), None, dtype=object)
    chan = np.where(pd.isna(chan), None, chan)
    no_channel = touch & (etype != "visit") & pd.isna(pd.Series(chan)).to_numpy()
    if no_channel.any():
        rows = np.flatnonzero(no_channel)[:10]
        raise DataError(
            f"{int(no_channel.sum())} impression/click event(s) without a channel "
            f"(e.g. at positions {rows.tolist()} of the events); the data contract requires one",
            hint="validate the export with `gaelp-bayes validate`",
        )
    chan = np.where(pd.isna(pd.Series(chan)).to_numpy(), DIRECT, chan).astype(str)

    after = touch & (t_us >= conv_t[person])
    session = (
        touch
        & ~after
        & (etype == "visit")
        & (conv_t[person] < big)
        & (conv_t[person] - t_us < session_minutes * 60e6)
    )
    kept = touch & ~after & ~session
    first_t = np.full(n_p, big, dtype=np.int64)
    np.minimum.at(first_t, person[kept], t_us[kept])
    has_touch = first_t < big
    converted = conv_t < big
    no_touch_conv = converted & ~has_touch

    seg_names = (
        list(segments)
        if segments is not None
        else sorted(pd.unique(seg_label[has_touch | no_touch_conv]).tolist())
    )
    seg_code = pd.Categorical(seg_label, categories=seg_names).codes.astype(np.int64)
    if ((seg_code < 0) & (has_touch | no_touch_conv)).any():
        raise DataError(f"segments {sorted(set(seg_label) - set(seg_names))} not in {seg_names}")
    ch_names = list(channels) if channels is not None else sorted(pd.unique(chan[kept]).tolist())
    ch_code = pd.Categorical(chan, categories=ch_names).codes.astype(np.int64)
    if (ch_code[kept] < 0).any():
        raise DataError(f"channels {sorted(set(chan[kept]) - set(ch_names))} not in {ch_names}")
    types = [t for t in TOUCH_TYPES if t in touch_types]
    tt_code = pd.Categorical(etype, categories=types).codes.astype(np.int64)

    # persons with a touch, renumbered; touches sorted by person then time
    new_index = np.cumsum(has_touch) - 1
    order = np.flatnonzero(kept)
    order = order[np.lexsort((t_us[order], new_index[person[order]]))]
    p_new = new_index[person[order]]
    t0 = first_t[has_touch]
    end = np.where(converted, conv_t, as_of_us)[has_touch]
    nct = {
        s: int(c)
        for s, c in zip(
            seg_names,
            np.bincount(seg_code[no_touch_conv], minlength=len(seg_names)),
            strict=True,
        )
    }
    return Touches(
        person_ids=person_ids[has_touch],
        segment=seg_code[has_touch],
        end_days=(end - t0) / _US_PER_DAY,
        horizon_days=(as_of_us - t0) / _US_PER_DAY,
        converted=converted[has_touch],
        person=p_new.astype(np.int64),
        days=(t_us[order] - t0[p_new]) / _US_PER_DAY,
        channel=ch_code[order],
        touch_type=tt_code[order],
        segments=seg_names,
        channels=ch_names,
        touch_types=types,
        window_days=float((as_of_us - t0.min()) / _US_PER_DAY) if t0.size else 0.0,
        after_conversion=int(after.sum()),
        session_visits=int(session.sum()),
        converters_without_touches=int(no_touch_conv.sum()),
        converters_without_touches_by_segment=nct,
    )
