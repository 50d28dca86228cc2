"""Shared fixtures: a small example world generated once per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
CHECK_CONTRACT = SHARED / "tools" / "check_contract.py"

# Keep JAX on the CPU and let chains use both cores (before anything imports jax).
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=2")

SMALL_WORLD = {"persons": 1500, "days": 30, "seed": 11}


@pytest.fixture(scope="session")
def small_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small canonical example world on disk (events, auctions, truth/)."""
    from gaelp_bayes.world import get_world, make_world, write_world

    out = tmp_path_factory.mktemp("world")
    w = make_world(get_world("parental-controls"), **SMALL_WORLD, latency_mc_persons=20_000)
    write_world(w, out)
    return out


@pytest.fixture(scope="session")
def check_contract() -> Path:
    """Path of the project's contract checker (../shared/tools/check_contract.py)."""
    if not CHECK_CONTRACT.exists():
        pytest.skip(f"contract checker not found at {CHECK_CONTRACT}")
    return CHECK_CONTRACT
