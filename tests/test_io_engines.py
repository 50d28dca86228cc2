"""Engine interface of gaelp_bayes.io: lazy registry, DuckDB hooks, optional Spark."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from gaelp_bayes.errors import MissingDependencyError, NotYetSupportedError
from gaelp_bayes.io.engines import ENGINES, Engine, create_engine
from gaelp_bayes.io.engines.duckdb import source_type


def test_duckdb_engine_hooks():
    with create_engine("duckdb") as engine:
        assert isinstance(engine, Engine)
        ts = engine.timestamp_from_text("'2024-01-01T02:00:00+02:00'")
        epoch = engine.timestamp_from_epoch_us("1704067200000000")
        (same, naive) = engine.fetch(
            f"SELECT {ts} = {epoch}, {engine.text_without_offset(chr(39) + '2024-01-01' + chr(39))}"
        )[0]
        assert same is True and naive is True
        assert engine.fetch(f"SELECT {engine.timestamp_from_epoch_us('9223372036854775807')}") == [
            (None,)
        ]
        assert engine.fetch(f"SELECT {engine.first_values('x', '-x', 2)} FROM range(5) t(x)") == [
            ([4, 3],)
        ]


@pytest.mark.parametrize(
    ("duck", "expected"),
    [
        ("VARCHAR", "string"),
        ("BIGINT", "integer"),
        ("UBIGINT", "integer"),
        ("UUID", "other"),
        ("DECIMAL(10,2)", "float"),
        ("TIMESTAMP WITH TIME ZONE", "timestamp_tz"),
        ("TIMESTAMPTZ_NS", "timestamp_tz"),
        ("TIMESTAMP_NS", "timestamp_naive"),
        ("DATE", "date"),
        ("BOOLEAN", "bool"),
    ],
)
def test_source_types(duck, expected):
    assert source_type(duck) == expected


def test_unknown_engine():
    with pytest.raises(ValueError, match="unknown engine"):
        create_engine("oracle")


def test_engines_are_imported_lazily():
    """Importing gaelp_bayes.io loads no engine; asking for one loads only that one."""
    import subprocess

    code = (
        "import sys, gaelp_bayes.io as io;"
        "print('duckdb' in sys.modules, 'pyspark' in sys.modules);"
        "from gaelp_bayes.io.engines import create_engine; create_engine('duckdb');"
        "print('duckdb' in sys.modules, 'pyspark' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False", "True", "False"]
    assert set(ENGINES) == {"duckdb", "spark"}


def test_spark_engine_says_what_is_missing():
    if importlib.util.find_spec("pyspark") is None:
        with pytest.raises(MissingDependencyError, match=r"gaelp-bayes\[spark\]"):
            create_engine("spark")
    else:
        with pytest.raises(NotYetSupportedError, match="Spark engine"):
            create_engine("spark")


def test_read_events_with_spark_engine_is_a_clean_error(tmp_path):
    from gaelp_bayes.errors import GaelpError
    from gaelp_bayes.io import read_events

    path = tmp_path / "e.csv"
    path.write_text("device_id,timestamp,event_type\nd1,2024-01-01T00:00:00Z,visit\n")
    with pytest.raises(GaelpError):
        read_events(path, engine="spark")
