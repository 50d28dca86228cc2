"""The validation report: what was read, kept and set aside, and why.

``ValidationReport.render()`` is what ``gaelp-bayes validate`` prints;
``to_dict()`` is the same content as JSON-able data.

Example
-------
>>> from gaelp_bayes.io import read_events
>>> res = read_events("events.parquet")  # doctest: +SKIP
>>> print(res.report.render())          # doctest: +SKIP
>>> res.report.to_dict()["rows_kept"]    # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from gaelp_bayes.errors import Problem


@dataclass
class FileSummary:
    """One file read: its path as shown, its format and its number of data rows."""

    path: str
    format: str
    rows: int


@dataclass
class EventSummary:
    """Figures of the kept ``events`` rows."""

    devices: int = 0
    rows_with_user_id: int = 0
    devices_with_user_id: int = 0
    by_type: dict[str, int] = field(default_factory=dict)
    by_channel: dict[str, int] = field(default_factory=dict)


@dataclass
class AuctionSummary:
    """Figures of the kept ``auctions`` rows."""

    won: int = 0
    by_channel: dict[str, int] = field(default_factory=dict)
    by_auction_type: dict[str, int] = field(default_factory=dict)
    bid_min: float | None = None
    bid_max: float | None = None
    price_min: float | None = None
    price_max: float | None = None


@dataclass
class ValidationReport:
    """Outcome of reading one contract table.

    ``rows_read == rows_kept + rows_rejected + duplicates_dropped`` always
    holds; the rejects file (when written) holds exactly the rows not kept.
    ``rejects_by_reason`` counts rows per reason, so a row with two problems
    counts under both. ``problems`` lists, per file and reason, the first row
    numbers (1-based data rows: row ``r`` is line ``r + 1`` of a CSV file) and
    example values.
    """

    table: str
    source: str
    mode: str
    format: str = "canonical"
    files: list[FileSummary] = field(default_factory=list)
    rows_read: int = 0
    rows_kept: int = 0
    rows_rejected: int = 0
    duplicates_dropped: int = 0
    rejects_by_reason: dict[str, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    timestamp_min: datetime | None = None
    timestamp_max: datetime | None = None
    timestamps_without_offset: int = 0
    ignored_columns: list[str] = field(default_factory=list)
    absent_columns: list[str] = field(default_factory=list)
    rejects_path: str | None = None
    notes: list[str] = field(default_factory=list)
    summary: EventSummary | AuctionSummary | None = None

    @property
    def clean(self) -> bool:
        """True when no row was rejected (duplicates do not count)."""
        return self.rows_rejected == 0

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-able data (timestamps as ISO-8601 UTC strings)."""
        out = asdict(self)
        for key in ("timestamp_min", "timestamp_max"):
            value = getattr(self, key)
            out[key] = _iso(value) if value is not None else None
        if isinstance(self.summary, EventSummary):
            out["summary"]["user_id_row_share"] = _share(
                self.summary.rows_with_user_id, self.rows_kept
            )
            out["summary"]["user_id_device_share"] = _share(
                self.summary.devices_with_user_id, self.summary.devices
            )
        elif isinstance(self.summary, AuctionSummary):
            out["summary"]["won_share"] = _share(self.summary.won, self.rows_kept)
        return out

    def render(self) -> str:
        """The report as a plain-text table for a terminal."""
        lines = [f"{self.table}: {self.source}  ({self.format}, {self.mode} mode)"]
        add = _Table(lines)
        files = ", ".join(f"{f.path} ({f.rows:,} rows)" for f in self.files[:5])
        if len(self.files) > 5:
            files += f", ... {len(self.files) - 5} more"
        add.row("files read", f"{len(self.files)}: {files}")
        add.row("rows read", f"{self.rows_read:,}")
        add.row("rows kept", f"{self.rows_kept:,}")
        add.row("rows rejected", f"{self.rows_rejected:,}")
        if self.table == "events" or self.duplicates_dropped:
            add.row("duplicates dropped", f"{self.duplicates_dropped:,}")
        if self.timestamp_min is not None and self.timestamp_max is not None:
            add.row("date range (UTC)", f"{_iso(self.timestamp_min)} .. {_iso(self.timestamp_max)}")
        if self.timestamps_without_offset:
            add.row(
                "timestamps without offset",
                f"{self.timestamps_without_offset:,} (read as UTC)",
            )
        if isinstance(self.summary, EventSummary):
            self._render_events(add, self.summary)
        elif isinstance(self.summary, AuctionSummary):
            self._render_auctions(add, self.summary)
        if self.rejects_by_reason:
            add.section("rejects by reason")
            for reason, n in self.rejects_by_reason.items():
                add.row(f"  {reason}", f"{n:,}")
        if self.problems:
            add.section("details (row r is line r+1 of a CSV file)")
            for p in self.problems[:20]:
                add.note("  " + p.describe().replace("\n", "\n  "))
        if self.rejects_path:
            add.row("rejects written to", self.rejects_path)
        if self.ignored_columns:
            add.row("ignored columns", ", ".join(self.ignored_columns))
        if self.absent_columns:
            add.row("optional columns absent", ", ".join(self.absent_columns))
        for note in self.notes:
            add.note(f"note: {note}")
        return "\n".join(lines)

    def _render_events(self, add: _Table, s: EventSummary) -> None:
        add.row("devices", f"{s.devices:,}")
        add.row(
            "user_id coverage",
            f"{_pct(s.rows_with_user_id, self.rows_kept)} of rows, "
            f"{_pct(s.devices_with_user_id, s.devices)} of devices",
        )
        _counts(add, "events by type", s.by_type, self.rows_kept)
        _counts(add, "events by channel", s.by_channel, self.rows_kept)

    def _render_auctions(self, add: _Table, s: AuctionSummary) -> None:
        add.row("won", f"{s.won:,} ({_pct(s.won, self.rows_kept)})")
        if s.bid_min is not None:
            add.row("bid range", f"{s.bid_min:g} .. {s.bid_max:g}")
        if s.price_min is not None:
            add.row("price range (won)", f"{s.price_min:g} .. {s.price_max:g}")
        _counts(add, "auctions by channel", s.by_channel, self.rows_kept)
        _counts(add, "auctions by type", s.by_auction_type, self.rows_kept)


class _Table:
    """Two aligned columns of text."""

    width = 28

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines

    def row(self, label: str, value: str) -> None:
        width = max(self.width, len(label) + 2)
        self.lines.append(f"  {label:<{width}}{value}")

    def section(self, label: str) -> None:
        self.lines.append(f"  {label}")

    def note(self, text: str) -> None:
        self.lines.append(f"  {text}")


def _counts(add: _Table, title: str, counts: dict[str, int], total: int, top: int = 12) -> None:
    if not counts:
        return
    add.section(title)
    for key, n in list(counts.items())[:top]:
        add.row(f"  {key}", f"{n:>12,}  {_pct(n, total):>6}")
    if len(counts) > top:
        rest = sum(list(counts.values())[top:])
        add.row(f"  ({len(counts) - top} more)", f"{rest:>12,}  {_pct(rest, total):>6}")


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")
