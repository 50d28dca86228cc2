"""Person journeys: first touch, first conversion or censoring at ``as_of``.

A *journey* is everything that happened to one person, from their first touch
(an impression, click or visit of any of their devices) until their first
conversion (the acquisition) or, if none happened by ``as_of``, until
``as_of`` (right-censored: not a non-converter, just not yet).

Which devices are one person
----------------------------
``person_map`` (``device_id``, ``person_id``), typically one posterior draw of
the identity model, says it. Without it, the only links are the known ones:
devices that share a non-null ``user_id`` are merged (connected components
over devices and user ids, so ``A~u1~B~u2~C`` is one person), and every other
device is a person of its own.

What that costs: a person who browses on an unlinked phone and converts on a
logged-in laptop appears as two journeys, one that never converts (pushing
P(conversion) down) and one that starts at the laptop's first touch (later
than the person's true first touch, pushing latency down). docs/latency.md
measures both on the example world.

Segment
-------
The ``segment`` column, per person: the label seen on most of the person's
events (ties go to the label seen first). Persons without any label get
``"unknown"``; when the data has no ``segment`` column, or it is null
everywhere, every person is in the single segment ``"all"``.

Example
-------
>>> import pandas as pd
>>> ev = pd.DataFrame({
...     "device_id": ["a", "a", "b", "b"],
...     "timestamp": pd.to_datetime(["2026-01-01", "2026-01-03", "2026-01-02", "2026-01-04"],
...                                 utc=True),
...     "event_type": ["impression", "visit", "click", "conversion"],
...     "user_id": [None, "u1", None, "u1"]})
>>> j = build_journeys(ev, pd.Timestamp("2026-01-10", tz="UTC"))
>>> int(j.shape[0]), int(j.n_touches.iloc[0]), str(j.converted_at.iloc[0].date())
(1, 3, '2026-01-04')
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from gaelp_bayes.errors import DataError

TOUCH_TYPES = ("impression", "click", "visit")
UNKNOWN_SEGMENT = "unknown"
ALL_SEGMENT = "all"

JOURNEY_COLUMNS = [
    "person_id",
    "segment",
    "first_touch",
    "converted_at",
    "n_touches",
    "n_devices",
    "first_channel",
    "first_device_type",
]

_US_PER_DAY = 86_400_000_000


def _utc(ts) -> pd.Timestamp:
    t = pd.Timestamp(ts)
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


def _persons_from_user_ids(devices: np.ndarray, dev_code: np.ndarray, user_id) -> np.ndarray:
    """Person index per device: connected components of the device-user_id graph."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n_dev = devices.size
    if user_id is None:
        return np.arange(n_dev)
    uid = pd.Series(user_id)
    ok = uid.notna().to_numpy()
    if not ok.any():
        return np.arange(n_dev)
    u_code, _ = pd.factorize(uid[ok])
    pairs = np.unique(np.c_[dev_code[ok], u_code + n_dev], axis=0)
    n = n_dev + int(u_code.max()) + 1
    g = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    _, labels = connected_components(g, directed=False)
    # renumber components that contain a device to 0..k-1
    _, comp = np.unique(labels[:n_dev], return_inverse=True)
    return comp


def device_persons(
    ev: pd.DataFrame, person_map: pd.DataFrame | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Which person each device is: ``(person of device, device code per event, person ids)``.

    Devices are coded in sorted order of ``device_id``. With ``person_map``,
    its ``person_id`` (devices missing from it are persons of their own, named
    ``device:<id>``); without it, devices sharing a non-null ``user_id`` are
    merged and a person is named after its smallest device id.
    """
    dev_code, devices = pd.factorize(ev["device_id"], sort=True)
    devices = np.asarray(devices, dtype=object)
    if person_map is not None:
        if not {"device_id", "person_id"} <= set(person_map.columns):
            raise DataError(
                "person_map needs columns 'device_id' and 'person_id'; "
                f"found {list(person_map.columns)}"
            )
        pm = person_map.drop_duplicates("device_id").set_index("device_id")["person_id"]
        pid = pd.Series(devices).map(pm)
        own = pid.isna()
        pid[own] = "device:" + pd.Series(devices)[own].astype(str)
        p_of_dev, person_ids = pd.factorize(pid.astype(str), sort=True)
        person_ids = np.asarray(person_ids, dtype=object)
    else:
        uid = ev["user_id"].to_numpy() if "user_id" in ev.columns else None
        p_of_dev = _persons_from_user_ids(devices, dev_code, uid)
        # a person is named after its smallest device id (deterministic)
        rep = pd.Series(devices).groupby(p_of_dev).min()
        person_ids = rep.sort_index().to_numpy(dtype=object)
    return p_of_dev, dev_code, person_ids


def build_journeys(
    events: pd.DataFrame,
    as_of: pd.Timestamp,
    person_map: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per person seen by ``as_of``: first touch, first conversion, segment, touches.

    Parameters
    ----------
    events
        Canonical events (data contract section 1): at least ``device_id``,
        ``timestamp`` (UTC) and ``event_type``; ``user_id``, ``segment``,
        ``channel`` and ``device_type`` are used when present. Events after
        ``as_of`` are ignored.
    as_of
        End of observation; journeys without a conversion by then are censored.
    person_map
        Optional ``device_id`` -> ``person_id`` table (e.g. one draw of the
        identity model). Devices missing from it are persons of their own.
        When ``None``, devices sharing a non-null ``user_id`` are merged.

    Returns
    -------
    pandas.DataFrame
        Columns ``person_id``, ``segment``, ``first_touch`` (UTC), ``converted_at``
        (UTC or NaT: the first conversion at or before ``as_of``), ``n_touches``
        (impressions, clicks and visits up to the first conversion, or ``as_of``),
        ``n_devices``, ``first_channel`` and ``first_device_type`` (of the first
        touch; null when unknown). A person whose only events are conversions
        has ``first_touch == converted_at`` (latency 0).
    """
    missing = [c for c in ("device_id", "timestamp", "event_type") if c not in events.columns]
    if missing:
        raise DataError(
            f"build_journeys needs the event columns {missing}; found {list(events.columns)}",
            hint="read the events with gaelp_bayes.io.read_events, which checks the contract",
        )
    as_of = _utc(as_of)
    ts = pd.to_datetime(events["timestamp"], utc=True)
    keep = (ts <= as_of).to_numpy() & events["event_type"].isin(
        (*TOUCH_TYPES, "conversion")
    ).to_numpy()
    ev = events.loc[keep]
    t_us = ts[keep].dt.tz_localize(None).to_numpy().astype("datetime64[us]").view(np.int64)
    if ev.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in JOURNEY_COLUMNS})

    p_of_dev, dev_code, person_ids = device_persons(ev, person_map)
    n_p = person_ids.size
    person = p_of_dev[dev_code]

    etype = ev["event_type"].to_numpy()
    is_conv = etype == "conversion"
    big = np.iinfo(np.int64).max
    conv_t = np.full(n_p, big, dtype=np.int64)
    np.minimum.at(conv_t, person[is_conv], t_us[is_conv])
    touch = ~is_conv
    # touches count until the first conversion (or as_of)
    counted = touch & (t_us <= conv_t[person])
    n_touches = np.bincount(person[counted], minlength=n_p)
    first_t = np.full(n_p, big, dtype=np.int64)
    np.minimum.at(first_t, person[touch], t_us[touch])
    seen = (first_t < big) | (conv_t < big)
    first_t = np.where(first_t < big, first_t, conv_t)
    first_t = np.minimum(first_t, conv_t)
    n_devices = np.bincount(p_of_dev, minlength=n_p)
    conv_dt = conv_t.astype("datetime64[us]")
    conv_dt[conv_t == big] = np.datetime64("NaT")

    out = pd.DataFrame(
        {
            "person_id": person_ids,
            "first_touch": pd.to_datetime(first_t, unit="us", utc=True),
            "converted_at": pd.to_datetime(conv_dt, utc=True),
            "n_touches": n_touches.astype(np.int64),
            "n_devices": n_devices.astype(np.int64),
        }
    )

    # attributes of the first touch (earliest touch event; stable by input order)
    order = np.lexsort((np.arange(t_us.size), t_us, person))
    o_touch = order[touch[order]]
    first_idx = np.full(n_p, -1, dtype=np.int64)
    if o_touch.size:
        p_sorted = person[o_touch]
        starts = np.r_[True, p_sorted[1:] != p_sorted[:-1]]
        first_idx[p_sorted[starts]] = o_touch[starts]
    for col, name in (("channel", "first_channel"), ("device_type", "first_device_type")):
        vals = np.full(n_p, None, dtype=object)
        if col in ev.columns:
            has = first_idx >= 0
            vals[has] = ev[col].to_numpy(dtype=object)[first_idx[has]]
            vals = pd.Series(vals).where(pd.notna(pd.Series(vals)), None).to_numpy(dtype=object)
        out[name] = vals

    out["segment"] = _segments(ev, person, t_us, n_p)
    out = out.loc[seen, JOURNEY_COLUMNS].reset_index(drop=True)
    return out


def _segments(ev: pd.DataFrame, person: np.ndarray, t_us: np.ndarray, n_p: int) -> np.ndarray:
    """Most frequent non-null segment label per person (ties: the one seen first)."""
    if "segment" not in ev.columns or ev["segment"].isna().all():
        return np.full(n_p, ALL_SEGMENT, dtype=object)
    seg = ev["segment"]
    ok = seg.notna().to_numpy()
    df = pd.DataFrame({"p": person[ok], "s": seg.to_numpy(dtype=object)[ok], "t": t_us[ok]})
    g = df.groupby(["p", "s"], sort=False).agg(n=("t", "size"), t=("t", "min")).reset_index()
    g = g.sort_values(["p", "n", "t"], ascending=[True, False, True], kind="stable")
    best = g.drop_duplicates("p")
    out = np.full(n_p, UNKNOWN_SEGMENT, dtype=object)
    out[best["p"].to_numpy()] = best["s"].to_numpy(dtype=object)
    return out


def journey_times(journeys: pd.DataFrame, as_of: pd.Timestamp) -> tuple[np.ndarray, np.ndarray]:
    """Days from first touch to first conversion (``converted`` True) or to ``as_of``."""
    as_of = _utc(as_of)
    ft = pd.to_datetime(journeys["first_touch"], utc=True)
    conv = pd.to_datetime(journeys["converted_at"], utc=True)
    converted = conv.notna().to_numpy()
    end = conv.where(conv.notna(), as_of)
    days = (end - ft).dt.total_seconds().to_numpy() / 86_400.0
    return np.maximum(days, 0.0), converted
