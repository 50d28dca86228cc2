"""Planner (issue 9): fluid model vs simulator, planner optimality checks, CLI and contract.

Fast tests use the small example world's truth, and a bundle written from
that truth (posterior draws = truth x log-normal noise, in the variables
``sim.from_bundle`` reads), so no model fit is needed. The statistical
checks against a real fit are in tests/test_plan_slow.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

# the CLI keeps a persistent JAX compilation cache in the home folder; not in tests
os.environ.setdefault("GAELP_BAYES_JAX_CACHE", "off")

DAYS = 7
K = 8  # posterior draws (one shape everywhere: compiled functions are reused)


# ---------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module")
def truth(small_world):
    from gaelp_bayes.sim import from_world

    return from_world(small_world)


def write_truth_bundle(
    path: Path, world: Path, draws: int = 40, noise: float = 0.15, seed: int = 0
) -> Path:
    """A bundle whose posterior is the world's truth with multiplicative noise."""
    import arviz as az
    import pandas as pd

    from gaelp_bayes import __version__
    from gaelp_bayes.bundle import BUNDLE_FORMAT, BUNDLE_VERSION
    from gaelp_bayes.sim import from_world

    t = from_world(world)
    rng = np.random.default_rng(seed)
    C = t.n_channels

    def noisy(x):
        x = np.asarray(x, float)
        return x[None, None] * np.exp(noise * rng.standard_normal((1, draws, *x.shape)))

    window_days = 30.0
    prof = np.asarray(t.profile_prob) @ np.asarray(t.profile_opp)  # (S, C)
    persons = np.asarray(t.arrival_rate) * window_days
    exposure = persons * np.asarray(t.window_mean) * np.asarray(t.in_market)
    # per-person rates of the truth, expressed as the market model's per-day totals
    opp = np.asarray(t.opp_rate) * prof[:, :, None] * (exposure / window_days)[:, None, None]
    loc = np.asarray(t.bid_loc)[:, :, 0]  # (C, 24)
    mu = loc.mean(axis=1)
    seg, ch, hr = list(t.segments), list(t.channels), list(range(24))
    market = az.from_dict(
        posterior={
            "mu": mu[None, None] + 0.02 * rng.standard_normal((1, draws, C)),
            "hour_effect": np.broadcast_to((loc - mu[:, None])[None, None], (1, draws, C, 24)),
            "sigma": noisy(np.asarray(t.bid_sigma)[:, 0]),
            "ctr": np.minimum(noisy(t.ctr), 0.9),
            "opportunity_rate": noisy(opp),
        },
        coords={"segment": seg, "channel": ch, "hour": hr},
        dims={
            "mu": ["channel"],
            "hour_effect": ["channel", "hour"],
            "sigma": ["channel"],
            "ctr": ["segment", "channel"],
            "opportunity_rate": ["segment", "channel", "hour"],
        },
    )
    beta = np.asarray(t.beta) * np.asarray(t.in_market)[:, None, None]
    attribution = az.from_dict(
        posterior={
            "alpha": noisy(np.asarray(t.alpha) * np.asarray(t.in_market)),
            "beta": noisy(beta),
            "kernel_scale_days": noisy(t.kernel_scale),
            "kernel_shape": np.broadcast_to(np.asarray(t.kernel_shape), (1, draws, C)),
        },
        coords={"segment": seg, "channel": ch, "touch_type": ["impression", "click"]},
        dims={
            "alpha": ["segment"],
            "beta": ["segment", "channel", "touch_type"],
            "kernel_scale_days": ["channel"],
            "kernel_shape": ["channel"],
        },
        constant_data={"persons": persons, "exposure_days": exposure},
    )
    attribution.constant_data.attrs["window_days"] = window_days
    attribution.constant_data.attrs["converters_without_touches"] = 0
    path.mkdir(parents=True, exist_ok=True)
    market.to_netcdf(str(path / "market.nc"))
    attribution.to_netcdf(str(path / "attribution.nc"))
    auctions = world / "auctions.parquet"
    manifest = {
        "format": BUNDLE_FORMAT,
        "bundle_version": BUNDLE_VERSION,
        "package_version": __version__,
        "as_of": "2026-01-31T12:00:00Z",
        "input": {"paths": [str(world / "events.parquet"), str(auctions)]},
        "models": ["market", "attribution"],
        "diagnostics": {},
    }
    (path / "manifest.json").write_text(json.dumps(manifest))
    (path / "summary.json").write_text(json.dumps({"as_of": manifest["as_of"]}))
    assert pd.read_parquet(auctions).shape[0] > 0
    return path


@pytest.fixture(scope="module")
def truth_bundle(small_world, tmp_path_factory):
    return write_truth_bundle(tmp_path_factory.mktemp("bundle") / "b", small_world)


def _logged(small_world, days=DAYS):
    from gaelp_bayes.sim import logged_policy

    params = json.loads((small_world / "truth" / "params.json").read_text())
    return logged_policy(params, days)[0]


# ---------------------------------------------------------------------------
# fluid model vs the simulator


@pytest.fixture(scope="module")
def oracle_plan(small_world, truth):
    from gaelp_bayes.plan import fluid
    from gaelp_bayes.plan.planner import plan_schedule

    logged = _logged(small_world)
    budget = float(fluid.totals_jit(fluid.prepare(truth, DAYS), logged).spend[0])
    return plan_schedule(truth, budget, DAYS), budget


@pytest.fixture(scope="module")
def simulated(small_world, truth, oracle_plan):
    """Logged policy x 0.5 / x 2 (no budget), the oracle plan and the logged policy (budget).

    Same persons for every schedule (common random numbers), one compiled simulator.
    """
    from gaelp_bayes.plan.evaluate import simulate_schedules

    res, budget = oracle_plan
    logged = _logged(small_world)
    kw = {"replicates": 12, "mode": "sample", "max_persons": None, "seed": 3}
    free = simulate_schedules(truth, {"half": logged * 0.5, "double": logged * 2.0}, 1e12, **kw)
    capped = simulate_schedules(truth, {"plan": res.bids, "logged": logged}, budget, **kw)
    return {**free.totals, **capped.totals}


@pytest.mark.parametrize("mult", [0.5, 2.0])
def test_fluid_matches_simulator_expectation(small_world, truth, simulated, mult):
    """The planner's fluid model agrees with the simulator's expected outcome.

    Tolerance: 3 standard errors of the simulated mean (replicates) plus 6%
    for the fluid model's approximations (daily steps, representative
    persons; measured 1-3% on the example world, docs/planner.md).
    """
    from gaelp_bayes.plan import fluid

    bids = _logged(small_world) * mult
    ft = fluid.totals_jit(fluid.prepare(truth, DAYS), bids)
    sim = simulated["half" if mult == 0.5 else "double"]
    for name, f in (("spend", ft.spend), ("conversions", ft.conversions)):
        x = sim[name]
        se = x.std(ddof=1) / np.sqrt(x.size)
        assert abs(float(f[0]) - x.mean()) <= 3 * se + 0.06 * x.mean(), (name, float(f[0]), x)
    noads = sim["conversions"] - sim["incremental_conversions"]
    se = noads.std(ddof=1) / np.sqrt(noads.size)
    assert abs(float(ft.conversions_noads[0]) - noads.mean()) <= 3 * se + 0.06 * noads.mean()


# ---------------------------------------------------------------------------
# planner


def test_unspendable_budget_gives_bids_no_higher_than_the_landscape(truth):
    """A budget the market cannot absorb: bids stop where P(win) is ~1 (no 4096x scaling)."""
    from gaelp_bayes.plan import fluid
    from gaelp_bayes.plan.planner import _grid, plan_schedule

    fd = fluid.prepare(truth, DAYS)
    top = np.exp(np.asarray(_grid(fd, 2))[..., -1]).T  # (24, C)
    res = plan_schedule(truth, 1e9, DAYS, iterations=4)
    assert res.bids.max() > 0
    assert np.all(res.bids <= top[None, :, :, None] * (1 + 1e-5))
    assert float(np.mean(res.expected["spend"])) < 1e9  # it could not spend it


def test_plan_spends_the_budget_and_beats_baselines_in_fluid(small_world, truth, oracle_plan):
    from gaelp_bayes.plan import baselines as bl
    from gaelp_bayes.plan import fluid

    res, budget = oracle_plan
    assert res.bids.shape == (DAYS, 24, truth.n_channels, truth.n_segments)
    assert np.all(res.bids >= 0)
    fd = fluid.prepare(truth, DAYS)
    t = fluid.totals_jit(fd, res.bids)
    assert float(t.spend[0]) <= budget * 1.001
    assert float(t.spend[0]) >= budget * 0.99  # more spend always helps here
    logged = _logged(small_world)
    for other in (logged, bl.flat_bid(truth, budget, DAYS, fd), bl.thompson(truth, budget, DAYS)):
        o = fluid.totals_jit(fd, other)
        assert float(o.spend[0]) <= budget * 1.001
        assert float(t.conversions[0]) >= float(o.conversions[0])


def test_oracle_plan_beats_logged_policy_in_the_simulator(simulated, oracle_plan):
    """Executed in the (true) simulator with the budget stop and the same persons."""
    _, budget = oracle_plan
    d = simulated["plan"]["conversions"] - simulated["logged"]["conversions"]
    se = d.std(ddof=1) / np.sqrt(d.size)
    assert d.mean() > 2 * se, d
    assert np.all(simulated["plan"]["spend"] <= budget * (1 + 1e-5))  # never above it


def test_cvar_and_cac_objectives_optimise_what_they_say(truth_bundle):
    """Each objective is better on its own criterion than the other plans (fluid model)."""
    from gaelp_bayes.plan import fluid
    from gaelp_bayes.plan.planner import plan_schedule
    from gaelp_bayes.sim import from_bundle

    p = from_bundle(truth_bundle, draws=K, seed=1)
    fd = fluid.prepare(p, DAYS)
    budget = 300.0
    plans = {
        "mean": plan_schedule(p, budget, DAYS, iterations=6),
        "cvar": plan_schedule(p, budget, DAYS, risk_alpha=0.2, iterations=6),
        "cac": plan_schedule(p, budget, DAYS, objective="cac", iterations=6),
    }
    tot = {k: fluid.totals_jit(fd, v.bids) for k, v in plans.items()}
    conv = {k: np.asarray(t.conversions) for k, t in tot.items()}
    cac = {k: np.asarray(t.spend) / np.asarray(t.conversions) for k, t in tot.items()}

    def cvar(x, a=0.2):
        return np.sort(x)[: int(np.ceil(a * x.size))].mean()

    tol = 1e-3
    assert conv["mean"].mean() >= conv["cvar"].mean() * (1 - tol)
    assert cvar(conv["cvar"]) >= cvar(conv["mean"]) * (1 - tol)
    assert cac["cac"].mean() <= cac["mean"].mean() * (1 + tol)
    for t in tot.values():
        assert float(np.mean(t.spend)) <= budget * 1.001


def test_planner_is_deterministic(truth):
    from gaelp_bayes.plan.planner import plan_schedule

    a = plan_schedule(truth, 100.0, DAYS, iterations=3).bids
    b = plan_schedule(truth, 100.0, DAYS, iterations=3).bids
    np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------------------
# run_plan and the command line


@pytest.fixture(scope="module")
def planned(truth_bundle, tmp_path_factory):
    from gaelp_bayes.plan.run import run_plan

    out = tmp_path_factory.mktemp("plan") / "schedule.csv"
    return run_plan(truth_bundle, 300.0, DAYS, out, seed=5, draws=K, eval_draws=K)


def test_run_plan_writes_contract_files(planned, check_contract, truth_bundle):
    from gaelp_bayes.sim import read_schedule

    r = subprocess.run(
        [sys.executable, str(check_contract), "schedule", str(planned.schedule_path)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    s = json.loads(planned.summary_path.read_text())
    assert s["budget"] == 300.0 and s["days"] == DAYS and s["start"] == "2026-02-01"
    assert set(s["baselines"]) == {"logged_uniform", "flat_bid", "thompson", "posterior_mean"}
    assert s["method"]["logged_bids"] == "auction log"
    back = read_schedule(planned.schedule_path, planned.channels, planned.segments, DAYS)
    np.testing.assert_allclose(back, planned.bids, rtol=1e-6)
    # every number is a simulation summary; execution stops at the budget
    assert s["spend"]["q95"] <= 300.0 * (1 + 1e-5)
    assert s["conversions"]["q05"] <= s["conversions"]["mean"] <= s["conversions"]["q95"]


def test_run_plan_is_reproducible(truth_bundle, tmp_path):
    from gaelp_bayes.plan.run import run_plan

    kw = {"seed": 5, "draws": K, "eval_draws": K, "baselines": False}
    a = run_plan(truth_bundle, 200.0, DAYS, tmp_path / "a.csv", **kw)
    b = run_plan(truth_bundle, 200.0, DAYS, tmp_path / "b.csv", **kw)
    assert a.summary["conversions"] == b.summary["conversions"]
    np.testing.assert_array_equal(a.bids, b.bids)
    assert (tmp_path / "a.csv").read_text() == (tmp_path / "b.csv").read_text()


def _cli(*args):
    from gaelp_bayes.cli.main import app

    return CliRunner().invoke(app, ["plan", *map(str, args)])


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (["--budget", "0", "--days", "7"], "--budget must be a positive"),
        (["--budget", "-5", "--days", "7"], "--budget must be a positive"),
        (["--budget", "100", "--days", "0"], "--days must be"),
        (["--budget", "100", "--days", "7", "--channels", "tv"], "unknown channel 'tv'"),
        (["--budget", "100", "--days", "7", "--segments", "nobody"], "unknown segment"),
        (["--budget", "100", "--days", "7", "--risk-alpha", "0"], "--risk-alpha"),
        (["--budget", "100", "--days", "7", "--objective", "roas"], "--objective"),
    ],
)
def test_cli_errors(truth_bundle, tmp_path, extra, match):
    r = _cli(truth_bundle, *extra, "--out", tmp_path / "s.csv", "--quiet")
    assert r.exit_code == 1, r.output
    assert match in r.output
    assert "Traceback" not in r.output
    assert not (tmp_path / "s.csv").exists()


def test_cli_bundle_without_market(truth_bundle, tmp_path):
    import shutil

    b = tmp_path / "b"
    shutil.copytree(truth_bundle, b)
    m = json.loads((b / "manifest.json").read_text())
    m["models"] = ["attribution"]
    (b / "manifest.json").write_text(json.dumps(m))
    r = _cli(b, "--budget", "100", "--days", "3", "--out", tmp_path / "s.csv", "--quiet")
    assert r.exit_code == 1
    assert "no market model" in r.output and "--models" in r.output
    assert "Traceback" not in r.output
    r = _cli(tmp_path / "nope", "--budget", "100", "--days", "3", "--out", tmp_path / "s.csv")
    assert r.exit_code == 1 and "does not exist" in r.output


def test_cli_plan_restricted_channels(truth_bundle, tmp_path, check_contract):
    from gaelp_bayes.sim import read_schedule

    out = tmp_path / "s.csv"
    r = _cli(
        truth_bundle,
        "--budget",
        "50",
        "--days",
        "2",
        "--out",
        out,
        "--channels",
        "search,email",
        "--draws",
        "8",
        "--eval-draws",
        "4",
        "--no-baselines",
    )
    assert r.exit_code == 0, r.output
    assert "conversions" in r.output
    ch = ("search", "email")
    from gaelp_bayes.sim import from_bundle

    p = from_bundle(truth_bundle, draws=2)
    bids = read_schedule(out, p.channels, p.segments, DAYS)
    keep = np.isin(np.asarray(p.channels), ch)
    assert bids[:, :, keep].max() > 0 and bids[:, :, ~keep].max() == 0
    s = json.loads(out.with_suffix(".json").read_text())
    assert sorted(s["channels"]) == sorted(ch) and s["baselines"] == {}
    r = subprocess.run([sys.executable, str(check_contract), "schedule", str(out)])
    assert r.returncode == 0


# ---------------------------------------------------------------------------
# closed loop


def test_closed_loop_keeps_executed_days_and_the_budget(small_world, truth, truth_bundle):
    from gaelp_bayes.plan.loop import SpendCalibratedPlanner, run_loop, static_policy
    from gaelp_bayes.sim import from_bundle

    p = from_bundle(truth_bundle, draws=K, seed=2)
    ci = [p.channels.index(c) for c in truth.channels]
    si = [p.segments.index(s) for s in truth.segments]
    pol = SpendCalibratedPlanner(p, 200.0, DAYS, replan_every=3, plan_kw={"iterations": 3})
    executed = []

    def aligned(d, obs):
        b = pol(d, obs)
        executed.append(b.copy())
        return b[:, ci][:, :, si]

    r = run_loop(truth, aligned, 200.0, DAYS, seed=4)
    # re-planning never changes a day already executed
    for d, b in enumerate(executed):
        np.testing.assert_array_equal(pol.bids[d], b)
    assert len(pol.scales_) == 3  # days 0, 3, 6
    assert r.spend <= 200.0 + 200.0 / (DAYS * 24) * 6
    assert r.conversions_by_day.size == DAYS + 30 and r.conversions > 0
    none = run_loop(truth, static_policy(np.zeros_like(pol.bids)), 200.0, DAYS, seed=4)
    assert none.spend == 0.0


def test_hourly_policy_meets_the_same_random_numbers_as_daily(truth, oracle_plan):
    """run_loop's hourly path (the PPO baseline's) executes a schedule exactly as the daily one."""
    from gaelp_bayes.plan.loop import run_loop, static_policy

    res, budget = oracle_plan
    bids = np.asarray(res.bids, np.float32)
    seen = []

    class Hourly:
        hourly = True

        def __call__(self, t, history):
            seen.append(history.shape)
            return bids[t // 24, t % 24]

    daily = run_loop(truth, static_policy(bids), budget, DAYS, seed=5)
    hourly = run_loop(truth, Hourly(), budget, DAYS, seed=5)
    assert seen[0] == (4, 0) and seen[-1] == (4, DAYS * 24 - 1)
    np.testing.assert_allclose(hourly.wins_by_day, daily.wins_by_day)
    np.testing.assert_allclose(hourly.conversions_by_day, daily.conversions_by_day)
    np.testing.assert_allclose(hourly.spend_by_day, daily.spend_by_day, rtol=1e-4)
    assert hourly.spend <= budget * (1 + 1e-5)


def test_ppo_baseline_trains_and_runs_in_the_true_world(truth, truth_bundle):
    """The model-free baseline (``rl`` extra): trains on posterior draws, bids within its box."""
    pytest.importorskip("stable_baselines3")
    from gaelp_bayes.plan.loop import AlignedPolicy, run_loop
    from gaelp_bayes.plan.ppo import train_ppo
    from gaelp_bayes.sim import from_bundle

    p = from_bundle(truth_bundle, draws=K, seed=2)
    pol = train_ppo(p, 100.0, 2, steps=96, seed=0, follow_days=2)
    ci = [p.channels.index(c) for c in truth.channels]
    si = [p.segments.index(s) for s in truth.segments]
    bids = []

    class Recorded:
        hourly = True

        def __call__(self, t, history):
            bids.append(pol(t, history))
            return bids[-1]

    r = run_loop(truth, AlignedPolicy(Recorded(), ci, si), 100.0, 2, seed=1)
    b = np.stack(bids)
    assert b.shape == (48, p.n_channels, p.n_segments) and np.isfinite(b).all()
    assert (b >= 0).all() and (b <= pol.max_multiplier * pol.base.max() * (1 + 1e-6)).all()
    assert 0 < r.spend <= 100.0 * (1 + 1e-5)
