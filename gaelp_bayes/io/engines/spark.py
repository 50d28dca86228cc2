"""Spark: planned engine for inputs too large for one machine.

The shared pipeline needs only the hooks of :class:`~gaelp_bayes.io.engines.base.Engine`;
a Spark implementation maps them onto ``spark.sql`` and ``DataFrame.write``.
Until it lands, asking for it says so (after checking that PySpark is there).
"""

from __future__ import annotations

from gaelp_bayes.errors import MissingDependencyError, NotYetSupportedError
from gaelp_bayes.io.engines.base import Engine


def create() -> Engine:
    """Raise: the Spark engine is not implemented yet."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        raise MissingDependencyError(
            "pyspark", "spark", "Reading input with engine='spark'"
        ) from None
    raise NotYetSupportedError(
        "the Spark engine is planned but not implemented yet; use engine='duckdb' "
        "(the default), which reads tens of millions of rows on one machine."
    )
