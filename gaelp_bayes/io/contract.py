"""The input tables of the data contract, as data.

Each table is a :class:`TableSpec`: its columns with their kind, whether they
are required, and the value rules that make a row bad. The validation pipeline
turns these specs into SQL; nothing about a column's rules lives anywhere
else. See ``docs/data-contract.md`` and the design's data-contract sections 1-2.

Example
-------
>>> from gaelp_bayes.io.contract import EVENTS
>>> EVENTS.required
('device_id', 'timestamp', 'event_type')
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ColumnKind = Literal["string", "timestamp", "float", "bool"]

EVENT_TYPES: tuple[str, ...] = ("impression", "click", "visit", "conversion")
PAID_EVENT_TYPES: tuple[str, ...] = ("impression", "click")
DEVICE_TYPES: tuple[str, ...] = ("mobile", "desktop", "tablet", "other")
AUCTION_TYPES: tuple[str, ...] = ("second_price", "first_price")


@dataclass(frozen=True)
class RequiredWhen:
    """A column that must be present (non-empty) when ``condition`` holds.

    ``condition`` is SQL over the parsed columns of the staged table, e.g.
    ``event_type IN ('impression', 'click')``; ``description`` is the words for
    the same condition in messages (``"an impression or click"``).
    """

    condition: str
    description: str


@dataclass(frozen=True)
class Column:
    """One column of a contract table and the rules on its values.

    Parameters
    ----------
    name : str
        Column name, exactly as in the contract (case-sensitive).
    kind : {"string", "timestamp", "float", "bool"}
        Canonical type after reading.
    required : bool
        The column must exist in every file and be non-empty on every row.
    allowed : tuple of str, optional
        Exact values a non-empty cell may take; anything else is a bad row.
    advisory : tuple of str, optional
        Values the contract names for an optional column; others are kept but
        counted in the report's notes.
    minimum : float, optional
        Smallest allowed value of a float column.
    exclusive_minimum : bool
        With ``minimum``: the value must be strictly greater.
    required_when : RequiredWhen, optional
        The value may only be empty when this condition does not hold.
    default : str, optional
        Value that an empty cell stands for (filled in, and counted).
    """

    name: str
    kind: ColumnKind
    required: bool = False
    allowed: tuple[str, ...] | None = None
    advisory: tuple[str, ...] | None = None
    minimum: float | None = None
    exclusive_minimum: bool = False
    required_when: RequiredWhen | None = None
    default: str | None = None


@dataclass(frozen=True)
class TableSpec:
    """A contract table: its name, columns and (optional) unique key."""

    name: str
    columns: tuple[Column, ...]
    key: str | None = None

    @property
    def names(self) -> tuple[str, ...]:
        """All contract column names, in contract order."""
        return tuple(c.name for c in self.columns)

    @property
    def required(self) -> tuple[str, ...]:
        """Names of the columns every file must have."""
        return tuple(c.name for c in self.columns if c.required)

    def column(self, name: str) -> Column:
        """The column called ``name`` (KeyError if it is not in the contract)."""
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


EVENTS = TableSpec(
    name="events",
    key="event_id",
    columns=(
        Column("device_id", "string", required=True),
        Column("timestamp", "timestamp", required=True),
        Column("event_type", "string", required=True, allowed=EVENT_TYPES),
        Column(
            "channel",
            "string",
            required_when=RequiredWhen(
                "event_type IN ('impression', 'click')", "an impression or click"
            ),
        ),
        Column("user_id", "string"),
        Column("campaign", "string"),
        Column("cost", "float", minimum=0.0),
        Column("value", "float", minimum=0.0),
        Column("device_type", "string", advisory=DEVICE_TYPES),
        Column("ip_prefix", "string"),
        Column("user_agent", "string"),
        Column("geo", "string"),
        Column("segment", "string"),
        Column("event_id", "string"),
    ),
)

AUCTIONS = TableSpec(
    name="auctions",
    columns=(
        Column("timestamp", "timestamp", required=True),
        Column("channel", "string", required=True),
        Column("bid", "float", required=True, minimum=0.0, exclusive_minimum=True),
        Column("won", "bool", required=True),
        Column("price", "float", minimum=0.0, required_when=RequiredWhen("won", "a won auction")),
        Column("auction_type", "string", allowed=AUCTION_TYPES, default="second_price"),
        Column("segment", "string"),
        Column("device_type", "string", advisory=DEVICE_TYPES),
        Column("geo", "string"),
        Column("floor", "float", minimum=0.0),
    ),
)

TABLES: dict[str, TableSpec] = {"events": EVENTS, "auctions": AUCTIONS}
