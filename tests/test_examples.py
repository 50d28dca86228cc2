"""Every example runs at tiny size (numpyro's test_examples pattern)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
TINY = {"example_world.py": ["--persons", "800", "--days", "20", "--mc-persons", "4000"]}
TINY["latency_example.py"] = ["--persons", "800", "--days", "20", "--mc-persons", "2000", "--draws", "100", "--tune", "100"]  # fmt: skip
TINY["identity_example.py"] = ["--persons", "800", "--days", "20", "--draws", "100", "--tune", "100", "--map-draws", "3"]  # fmt: skip


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_every_example_has_tiny_arguments():
    assert {p.name for p in EXAMPLES.glob("*.py")} == set(TINY)


@pytest.mark.parametrize("name", sorted(TINY))
def test_example_runs(name, capsys):
    mod = _load(EXAMPLES / name)
    out = mod.main(TINY[name])
    assert out, "an example returns what it computed"
    assert "SYNTHETIC" in capsys.readouterr().out or name != "example_world.py"


def test_example_world_shows_censoring_bias():
    """Naive conversion by as_of is below the true eventual probability (censoring)."""
    mod = _load(EXAMPLES / "example_world.py")
    out = mod.main(["--persons", "3000", "--days", "20", "--mc-persons", "20000"])
    below = [out["naive"][s] < out["truth"][s] for s in out["truth"]]
    assert sum(below) >= len(below) - 1
