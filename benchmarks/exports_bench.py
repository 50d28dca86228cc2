"""Benchmark: reading a GA4 BigQuery export (Parquet) vs the same events as canonical Parquet.

Both files hold the same ``--rows`` events (SYNTHETIC: the example world's
clicks, visits and conversions, written by the GA4 writer of
``gaelp_bayes.io.exports``, then repeated with distinct device ids and shifted
timestamps to reach the size). The GA4 file is nested exactly as BigQuery
exports it (``event_params`` / ``user_properties`` repeated records, ``device``,
``geo``, ``collected_traffic_source``, ... records); the canonical file has the
contract's columns. Times, ``--repeat`` times each, ``read_events(path)``
(strict) on both, and prints the medians and the ratio GA4 / canonical
(target: at most 3).

Usage::

    python benchmarks/exports_bench.py                  # 5,000,000 events, 3 repeats
    python benchmarks/exports_bench.py --rows 200000 --repeat 1
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from gaelp_bayes.io import read_events
from gaelp_bayes.io.exports import ga4
from gaelp_bayes.world import get_world, make_world

_TILES_PER_GROUP = 20


def _base(persons: int, days: int, seed: int) -> tuple[pa.Table, pa.Table]:
    """(GA4 rows, canonical rows) of one small world's non-impression events."""
    w = make_world(get_world("parental-controls"), persons=persons, days=days, seed=seed,
                   latency_mc_persons=2_000)  # fmt: skip
    events = w.events.to_pandas()
    events = events[events["event_type"] != "impression"].reset_index(drop=True)
    # one GA4 row per event (no extra session events), so both files hold the same events
    records = ga4.to_records(events, session_events=False)
    g = pa.Table.from_pylist(records, schema=ga4.ARROW_SCHEMA)
    c = pa.Table.from_pandas(events, preserve_index=False)
    return g, c


def _tile(table: pa.Table, k: int, device: str, ts: str, micros: bool) -> pa.Table:
    """Copy ``k``: device ids suffixed with ``-k``, timestamps shifted by ``k`` seconds."""
    for name in (device, "event_id"):
        i = table.schema.get_field_index(name)
        if i >= 0:
            suffixed = pc.binary_join_element_wise(table.column(name), pa.scalar(f"-{k}"), "")
            table = table.set_column(i, name, suffixed)
    j = table.schema.get_field_index(ts)
    col = table.column(ts)
    if micros:
        shifted = pc.add(col, pa.scalar(k * 1_000_000, pa.int64()))
    else:
        shifted = pc.add(col, pa.scalar(k * 1_000_000, pa.duration("us")))
    return table.set_column(j, ts, shifted)


def write_repeated(base: pa.Table, rows: int, path: Path, device: str, micros: bool) -> int:
    """Write ``base`` repeated to ``rows`` rows (row groups of ~20 copies)."""
    n = 0
    k = 0
    with pq.ParquetWriter(path, base.schema) as writer:
        while n < rows:
            group = []
            for _ in range(_TILES_PER_GROUP):
                if n >= rows:
                    break
                t = _tile(base, k, device, "event_timestamp" if micros else "timestamp", micros)
                t = t.slice(0, min(t.num_rows, rows - n))
                group.append(t)
                n += t.num_rows
                k += 1
            writer.write_table(pa.concat_tables(group))
    return n


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=5_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--persons", type=int, default=1500)
    ap.add_argument("--days", type=int, default=30)
    args = ap.parse_args(argv)
    g, c = _base(args.persons, args.days, 11)
    with tempfile.TemporaryDirectory() as tmp:
        gp, cp = Path(tmp) / "events_ga4.parquet", Path(tmp) / "events.parquet"
        n_g = write_repeated(g, args.rows, gp, "user_pseudo_id", micros=True)
        n_c = write_repeated(c, args.rows, cp, "device_id", micros=False)
        print(f"SYNTHETIC: {n_g:,} GA4 events ({gp.stat().st_size / 2**20:.0f} MiB), "
              f"{n_c:,} canonical events ({cp.stat().st_size / 2**20:.0f} MiB)")  # fmt: skip
        times: dict[str, list[float]] = {"canonical": [], "ga4": []}
        for _ in range(args.repeat):
            for name, path, fmt in (("canonical", cp, "canonical"), ("ga4", gp, "ga4")):
                t0 = time.perf_counter()
                res = read_events(path, fmt=fmt)
                times[name].append(time.perf_counter() - t0)
                assert res.report.rows_kept == args.rows, res.report.render()
    med = {k: statistics.median(v) for k, v in times.items()}
    ratio = med["ga4"] / med["canonical"]
    print(f"canonical parquet: median {med['canonical']:.2f} s  {times['canonical']}")
    print(f"GA4 parquet:       median {med['ga4']:.2f} s  {times['ga4']}")
    print(f"ratio GA4 / canonical: {ratio:.2f} (target <= 3)")
    return {**med, "ratio": ratio}


if __name__ == "__main__":
    main()
