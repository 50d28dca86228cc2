"""Execution engines for reading and validation, imported lazily by name.

Example
-------
>>> from gaelp_bayes.io.engines import create_engine
>>> with create_engine("duckdb") as engine:
...     engine.fetch("SELECT 1 + 1")
[(2,)]
"""

from __future__ import annotations

import importlib

from gaelp_bayes.io.engines.base import Engine

#: Engine name -> "module:factory". Modules are imported only when asked for,
#: so an optional engine's dependency is needed only by its users.
ENGINES: dict[str, str] = {
    "duckdb": "gaelp_bayes.io.engines.duckdb:DuckDBEngine",
    "spark": "gaelp_bayes.io.engines.spark:create",
}


def create_engine(name: str) -> Engine:
    """A new engine called ``name`` (``"duckdb"``, or ``"spark"`` once it lands).

    Raises
    ------
    ValueError
        ``name`` is not a known engine.
    MissingDependencyError
        The engine's optional dependency is not installed.
    """
    try:
        target = ENGINES[name]
    except KeyError:
        raise ValueError(f"unknown engine {name!r}; choose one of {', '.join(ENGINES)}") from None
    module, factory = target.split(":")
    return getattr(importlib.import_module(module), factory)()


__all__ = ["ENGINES", "Engine", "create_engine"]
