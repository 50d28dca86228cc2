"""Reading and validating input against the data contract.

``read_events`` and ``read_auctions`` read canonical CSV or Parquet files (or
a folder of them) through an embedded engine (DuckDB), check every row against
``docs/data-contract.md`` and return the valid rows as a pandas DataFrame
together with a :class:`ValidationReport`.

Example
-------
>>> from gaelp_bayes.io import read_events
>>> res = read_events("events.parquet", mode="lenient", rejects_path="rejects.csv")  # doctest: +SKIP
>>> res.table.head()  # doctest: +SKIP
>>> print(res.report.render())  # doctest: +SKIP
"""

from __future__ import annotations

from gaelp_bayes.io.contract import AUCTIONS, EVENTS, TableSpec
from gaelp_bayes.io.readers import ReadResult, read_auctions, read_events
from gaelp_bayes.io.report import AuctionSummary, EventSummary, FileSummary, ValidationReport

__all__ = [
    "AUCTIONS",
    "EVENTS",
    "AuctionSummary",
    "EventSummary",
    "FileSummary",
    "ReadResult",
    "TableSpec",
    "ValidationReport",
    "read_auctions",
    "read_events",
]
