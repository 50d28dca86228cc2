"""Readers for the real public data used in tests (iPinYou RTB samples).

The files live in the project's shared data folder (``../shared/data/ipinyou``
from the repository root); its README gives their sources. They are real
auction logs; we use them only where real prices are the point (the bid
landscape), never as ground truth for anything else.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

IPINYOU_COLUMNS = [
    "bid_id",
    "timestamp",
    "log_type",
    "ipinyou_id",
    "user_agent",
    "ip",
    "region",
    "city",
    "ad_exchange",
    "domain",
    "url",
    "url_id",
    "slot_id",
    "slot_width",
    "slot_height",
    "slot_visibility",
    "slot_format",
    "slot_floor_price",
    "creative_id",
    "bidding_price",
    "paying_price",
    "key_page_url",
    "advertiser_id",
    "user_tags",
]


def default_ipinyou_dir() -> Path:
    """``../shared/data/ipinyou`` next to the repository (where the tests expect it)."""
    return Path(__file__).resolve().parents[2] / "shared" / "data" / "ipinyou"


def ipinyou_impressions_as_auctions(path: str | Path) -> pd.DataFrame:
    """iPinYou won-impression log -> canonical ``auctions`` rows (all won, second price).

    Timestamps are China time (UTC+8) and are converted to UTC; the channel is
    the ad exchange (``adx1``..``adx4``); prices stay in CNY fen per thousand
    impressions (CPM), as in the source.

    Floors. The data contract says a second-price win *at the floor* reveals
    only "competing bid <= floor". Some exchanges charge the floor plus one
    minimum increment when it binds (in the 2821 log, exchange 4 charges 31
    fen on a 30 fen floor in 78% of its floored wins and never exactly 30).
    :func:`floor_increments` finds such exchanges from the data, and their
    ``price == floor + increment`` rows get ``price = floor`` so the model
    reads them as the contract means; ``paid_price`` keeps what was paid and
    ``floor_increment`` the exchange's increment.
    """
    df = pd.read_csv(path, sep="\t", header=None, names=IPINYOU_COLUMNS, dtype={"timestamp": str})
    ts = pd.to_datetime(df["timestamp"].str[:14], format="%Y%m%d%H%M%S")
    out = pd.DataFrame(
        {
            "timestamp": ts.dt.tz_localize("Asia/Shanghai").dt.tz_convert("UTC"),
            "channel": "adx" + df["ad_exchange"].astype(str),
            "bid": df["bidding_price"].astype(float),
            "won": True,
            "price": df["paying_price"].astype(float),
            "floor": df["slot_floor_price"].astype(float),
            "auction_type": "second_price",
        }
    )
    out["paid_price"] = out["price"]
    inc = out["channel"].map(floor_increments(out)).fillna(0.0)
    at_floor = (out["floor"] > 0) & (inc > 0) & (out["price"] == out["floor"] + inc)
    out.loc[at_floor, "price"] = out.loc[at_floor, "floor"]
    out["floor_increment"] = inc.to_numpy()
    return out


def floor_increments(won: pd.DataFrame, increment: float = 1.0) -> dict[str, float]:
    """Per channel, the amount charged above a binding floor: 0 or ``increment``.

    A channel charges ``floor + increment`` when, among its wins with a
    positive floor, prices of exactly ``floor + increment`` are common (over
    20%) and prices of exactly ``floor`` almost absent (under 1%).
    """
    out = {}
    for ch, g in won[won["floor"] > 0].groupby("channel"):
        d = g["price"] - g["floor"]
        if (d == increment).mean() > 0.2 and (d == 0).mean() < 0.01:
            out[ch] = increment
        else:
            out[ch] = 0.0
    return out


def ipinyou_bids_as_auctions(path: str | Path, channel: str = "campaign") -> pd.DataFrame:
    """``click market_price bid`` lines -> canonical ``auctions`` rows.

    A row with ``market_price < bid`` is a won second-price auction revealing
    the market price; otherwise it is lost (only "above the bid" is known).
    The file has no timestamps: every row is put at hour 0 of one day.
    """
    df = pd.read_csv(path, sep=" ", header=None, names=["click", "market_price", "bid"])
    won = df["market_price"].to_numpy() < df["bid"].to_numpy()
    return pd.DataFrame(
        {
            "timestamp": pd.Timestamp("2013-10-19", tz="UTC"),
            "channel": channel,
            "bid": df["bid"].astype(float),
            "won": won,
            "price": np.where(won, df["market_price"].astype(float), np.nan),
            "auction_type": "second_price",
            "click": df["click"].to_numpy(),
            "market_price": df["market_price"].astype(float),
        }
    )
