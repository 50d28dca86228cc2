"""Report figures computed on the kept rows (one engine query per figure group)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from gaelp_bayes.io.contract import AUCTIONS, TableSpec
from gaelp_bayes.io.engines.base import Engine, literal, quote
from gaelp_bayes.io.report import AuctionSummary, EventSummary
from gaelp_bayes.io.rules import NAIVE

_EARLIEST_PLAUSIBLE = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass
class Figures:
    """What :func:`summarize` found."""

    rows: int = 0
    timestamp_min: datetime | None = None
    timestamp_max: datetime | None = None
    without_offset: int = 0
    summary: EventSummary | AuctionSummary | None = None
    notes: list[str] = field(default_factory=list)


def summarize(spec: TableSpec, engine: Engine, kept: str, present: set[str]) -> Figures:
    """Figures of relation ``kept`` (staged rows that were kept)."""
    rows, ts_min, ts_max, naive = engine.fetch(
        f"SELECT count(*), min(timestamp), max(timestamp), "
        f"coalesce(sum(CASE WHEN {NAIVE} THEN 1 ELSE 0 END), 0) FROM {kept}"
    )[0]
    fig = Figures(
        rows=int(rows), timestamp_min=ts_min, timestamp_max=ts_max, without_offset=int(naive)
    )
    if spec.name == "events":
        fig.summary = _events(engine, kept)
    else:
        fig.summary = _auctions(engine, kept)
    fig.notes = _notes(spec, engine, kept, fig, present)
    return fig


def _counts(engine: Engine, kept: str, column: str, missing: str = "(none)") -> dict[str, int]:
    rows = engine.fetch(
        f"SELECT coalesce({quote(column)}, {literal(missing)}) AS k, count(*) AS n FROM {kept} "
        f"GROUP BY k ORDER BY n DESC, k"
    )
    return {str(k): int(n) for k, n in rows}


def _events(engine: Engine, kept: str) -> EventSummary:
    devices, with_uid, devices_uid = engine.fetch(
        f"SELECT count(DISTINCT device_id), count(user_id), "
        f"count(DISTINCT CASE WHEN user_id IS NOT NULL THEN device_id END) FROM {kept}"
    )[0]
    return EventSummary(
        devices=int(devices),
        rows_with_user_id=int(with_uid),
        devices_with_user_id=int(devices_uid),
        by_type=_counts(engine, kept, "event_type"),
        by_channel=_counts(engine, kept, "channel"),
    )


def _auctions(engine: Engine, kept: str) -> AuctionSummary:
    won, bid_min, bid_max, price_min, price_max = engine.fetch(
        f"SELECT coalesce(sum(CASE WHEN won THEN 1 ELSE 0 END), 0), min(bid), max(bid), "
        f"min(CASE WHEN won THEN price END), max(CASE WHEN won THEN price END) FROM {kept}"
    )[0]
    return AuctionSummary(
        won=int(won),
        by_channel=_counts(engine, kept, "channel"),
        by_auction_type=_counts(
            engine, kept, "auction_type", AUCTIONS.column("auction_type").default or ""
        ),
        bid_min=bid_min,
        bid_max=bid_max,
        price_min=price_min,
        price_max=price_max,
    )


def _notes(
    spec: TableSpec, engine: Engine, kept: str, fig: Figures, present: set[str]
) -> list[str]:
    notes: list[str] = []
    if fig.timestamp_min is not None and fig.timestamp_min < _EARLIEST_PLAUSIBLE:
        notes.append(
            f"the earliest timestamp is {fig.timestamp_min:%Y-%m-%d}; if timestamps are epoch "
            "numbers, the contract expects microseconds (not seconds or milliseconds)."
        )
    for col in spec.columns:
        if col.advisory and col.name in present:
            values = ", ".join(literal(v) for v in col.advisory)
            found = engine.fetch(
                f"SELECT {quote(col.name)}, count(*) AS n FROM {kept} WHERE {quote(col.name)} "
                f"NOT IN ({values}) GROUP BY 1 ORDER BY n DESC LIMIT 5"
            )
            if found:
                shown = ", ".join(f"{v!r} ({n:,})" for v, n in found)
                notes.append(
                    f"{col.name} has values outside {', '.join(col.advisory)}: {shown}; "
                    "they are kept as they are."
                )
        if col.default is not None and col.name in present:
            (n_default,) = engine.fetch(
                f"SELECT count(*) FROM {kept} WHERE {quote(col.name)} IS NULL"
            )[0]
            if n_default:
                notes.append(f"{col.name} is empty on {n_default:,} rows, read as '{col.default}'.")
        elif col.default is not None and fig.rows:
            notes.append(f"no {col.name} column: every row read as '{col.default}'.")
    return notes
