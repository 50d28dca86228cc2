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
    """
    df = pd.read_csv(path, sep="\t", header=None, names=IPINYOU_COLUMNS, dtype={"timestamp": str})
    ts = pd.to_datetime(df["timestamp"].str[:14], format="%Y%m%d%H%M%S")
    return pd.DataFrame(
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
