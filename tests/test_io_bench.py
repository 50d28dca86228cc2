"""benchmarks/io_bench.py runs end to end at a tiny size."""

from __future__ import annotations

import importlib.util
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "io_bench.py"


def test_io_bench_runs_tiny(capsys):
    spec = importlib.util.spec_from_file_location("io_bench", BENCH)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    results = bench.main(["--rows", "3000", "--repeat", "1"])
    assert set(results) == {"parquet_duckdb_s", "parquet_pandas_s", "csv_duckdb_s", "csv_pandas_s"}
    assert all(v > 0 for v in results.values())
    assert "pandas/duckdb" in capsys.readouterr().out
