"""Bid schedules (data contract section 3) <-> the simulator's bids array.

The simulator takes ``bids[day, hour, channel, segment]`` (float, 0 = do not
bid). A schedule CSV lists cells ``day, hour, channel, segment, bid``; every
cell not listed is 0, ``segment = *`` sets every segment, and a row naming a
segment overrides a ``*`` row of the same day, hour and channel.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from gaelp_bayes.errors import DataError, InputNotFoundError, Problem

HOURS = 24
COLUMNS = ("day", "hour", "channel", "segment", "bid")
ALL = "*"


def _rows(mask: np.ndarray) -> list[int]:
    return [int(i) + 1 for i in np.flatnonzero(mask)]


def _problem(file: str, reason: str, column: str, mask, values, expected: str) -> Problem:
    rows = _rows(np.asarray(mask))
    found = sorted({str(v) for v in np.asarray(values)[np.asarray(mask)]})
    return Problem(
        file=file,
        reason=reason,
        column=column,
        expected=expected,
        found=found[:5],
        rows=rows[:10],
        count=len(rows),
    )


def schedule_array(
    frame: pd.DataFrame,
    channels: Sequence[str],
    segments: Sequence[str],
    days: int,
    *,
    source: str = "schedule",
) -> np.ndarray:
    """``(days, 24, C, S)`` bids from a schedule table (rows with ``day >= days`` ignored).

    Raises :class:`~gaelp_bayes.errors.DataError` naming the file, rows and
    column of every problem (missing column, non-integer day or hour, hour
    outside 0-23, negative or non-numeric bid, unknown channel or segment,
    the same cell listed twice).
    """
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(
            [
                Problem(
                    file=source,
                    reason=f"missing column(s) {', '.join(missing)}",
                    expected="columns " + ", ".join(COLUMNS) + " (data contract section 3)",
                    found=[", ".join(map(str, frame.columns))],
                )
            ],
            hint="write the schedule as `gaelp-bayes plan` does",
        )
    problems: list[Problem] = []
    day = pd.to_numeric(frame["day"], errors="coerce").to_numpy(float)
    hour = pd.to_numeric(frame["hour"], errors="coerce").to_numpy(float)
    bid = pd.to_numeric(frame["bid"], errors="coerce").to_numpy(float)
    bad_day = ~np.isfinite(day) | (day < 0) | (day != np.round(day))
    if bad_day.any():
        problems.append(
            _problem(source, "invalid day", "day", bad_day, frame["day"], "an integer >= 0")
        )
    bad_hour = ~np.isfinite(hour) | (hour < 0) | (hour > 23) | (hour != np.round(hour))
    if bad_hour.any():
        problems.append(
            _problem(source, "invalid hour", "hour", bad_hour, frame["hour"], "an integer 0-23")
        )
    bad_bid = ~np.isfinite(bid) | (bid < 0)
    if bad_bid.any():
        problems.append(
            _problem(source, "invalid bid", "bid", bad_bid, frame["bid"], "a number >= 0")
        )
    ch = frame["channel"].astype(str).str.strip().to_numpy()
    sg = frame["segment"].astype(str).str.strip().to_numpy()
    cidx = {c: i for i, c in enumerate(channels)}
    sidx = {s: i for i, s in enumerate(segments)}
    bad_ch = ~np.isin(ch, list(cidx))
    if bad_ch.any():
        problems.append(
            _problem(
                source,
                "unknown channel",
                "channel",
                bad_ch,
                ch,
                "one of the bundle's channels: " + ", ".join(channels),
            )
        )
    bad_sg = ~np.isin(sg, [*sidx, ALL])
    if bad_sg.any():
        problems.append(
            _problem(
                source,
                "unknown segment",
                "segment",
                bad_sg,
                sg,
                "'*' or one of the bundle's segments: " + ", ".join(segments),
            )
        )
    if not problems:
        key = pd.DataFrame({"d": day, "h": hour, "c": ch, "s": sg})
        dup = key.duplicated(keep=False).to_numpy()
        if dup.any():
            problems.append(
                _problem(
                    source,
                    "the same (day, hour, channel, segment) cell listed more than once",
                    "segment",
                    dup,
                    sg,
                    "each cell at most once",
                )
            )
    if problems:
        raise DataError(problems, hint="fix the listed rows (row 1 is the first data row)")
    out = np.zeros((days, HOURS, len(channels), len(segments)), np.float32)
    keep = day < days
    d, h, b = day[keep].astype(int), hour[keep].astype(int), bid[keep]
    c = np.array([cidx[x] for x in ch[keep]], int)
    s_names = sg[keep]
    star = s_names == ALL
    out[d[star], h[star], c[star], :] = b[star, None]
    one = ~star
    s = np.array([sidx[x] for x in s_names[one]], int)
    out[d[one], h[one], c[one], s] = b[one]
    return out


def read_schedule(
    path: str | Path, channels: Sequence[str], segments: Sequence[str], days: int
) -> np.ndarray:
    """Read a schedule CSV into ``bids[day, hour, channel, segment]`` (see :func:`schedule_array`)."""
    p = Path(path)
    if not p.is_file():
        raise InputNotFoundError(f"schedule file {p} does not exist; check the path")
    try:
        frame = pd.read_csv(p, dtype={"channel": str, "segment": str}, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(
            f"{p}: not a readable CSV schedule ({exc})",
            hint="columns day, hour, channel, segment, bid (data contract section 3)",
        ) from None
    return schedule_array(frame, channels, segments, days, source=str(p))


def schedule_frame(
    bids: np.ndarray, channels: Sequence[str], segments: Sequence[str]
) -> pd.DataFrame:
    """The non-zero cells of ``bids[day, hour, channel, segment]`` as a schedule table."""
    b = np.asarray(bids)
    d, h, c, s = np.nonzero(b > 0)
    return pd.DataFrame(
        {
            "day": d.astype(int),
            "hour": h.astype(int),
            "channel": np.asarray(channels, dtype=object)[c],
            "segment": np.asarray(segments, dtype=object)[s],
            "bid": b[d, h, c, s].astype(float),
        }
    )
