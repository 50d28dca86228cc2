"""from_bundle, the `gaelp-bayes simulate` command and the Gymnasium environment (fast)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gaelp_bayes.errors import GaelpError
from gaelp_bayes.sim import params as sp
from gaelp_bayes.world import get_world

CHAINS, DRAWS = 2, 5
TOUCH_TYPES = ["impression", "click", "visit"]


def _posterior(rng, value, dims, coords, rel=0.05):
    import xarray as xr

    v = np.asarray(value, float)
    x = v * np.exp(rel * rng.standard_normal((CHAINS, DRAWS, *v.shape)))
    return xr.DataArray(x, dims=["chain", "draw", *dims], coords=coords)


def make_idata(
    truth: sp.SimParams,
    *,
    window_days: float = 20.0,
    market_segments: list[str] | None = None,
    extra_channel: str | None = "direct",
    seed: int = 0,
):
    """Market and attribution InferenceData with the fitted models' variable names."""
    import arviz as az
    import xarray as xr

    rng = np.random.default_rng(seed)
    ch, seg = list(truth.channels), list(truth.segments)
    msegs = seg if market_segments is None else market_segments
    co = {"channel": ch, "hour": list(range(24)), "segment": msegs}
    opp = np.asarray(truth.opp_rate)  # per person-hour
    persons = np.asarray(truth.arrival_rate) * window_days
    exposure = persons * 8.0
    opp_day = opp * (exposure / window_days)[:, None, None]  # market: per data day
    if market_segments is not None:
        opp_day = opp_day.sum(axis=0, keepdims=True)
    ctr = np.asarray(truth.ctr)
    if market_segments is not None:
        ctr = ctr.mean(axis=0, keepdims=True)
    loc = np.asarray(truth.bid_loc)[:, :, 0]
    market = az.InferenceData(
        posterior=xr.Dataset(
            {
                "mu": _posterior(rng, loc.mean(axis=1), ["channel"], {"channel": ch}),
                "sigma": _posterior(rng, truth.bid_sigma[:, 0], ["channel"], {"channel": ch}),
                "hour_effect": _posterior(
                    rng,
                    loc - loc.mean(axis=1, keepdims=True),
                    ["channel", "hour"],
                    {k: co[k] for k in ("channel", "hour")},
                    rel=0.0,
                ),
                "ctr": _posterior(
                    rng, ctr, ["segment", "channel"], {k: co[k] for k in ("segment", "channel")}
                ),
                "opportunity_rate": _posterior(rng, opp_day, ["segment", "channel", "hour"], co),
            }
        )
    )
    ach = ch + ([extra_channel] if extra_channel else [])
    beta = np.zeros((len(seg), len(ach), 3))
    beta[:, : len(ch), 0] = truth.beta[..., 0]
    beta[:, : len(ch), 1] = 0.7 * truth.beta[..., 1]
    beta[:, : len(ch), 2] = 0.3 * truth.beta[..., 1]
    beta[:, len(ch) :, 2] = 0.01
    aco = {"segment": seg, "channel": ach, "touch_type": TOUCH_TYPES}
    kshape = np.r_[truth.kernel_shape, [1.0] * (len(ach) - len(ch))]
    kscale = np.r_[truth.kernel_scale, [1.0] * (len(ach) - len(ch))]
    post = {
        "alpha": _posterior(rng, truth.alpha, ["segment"], {"segment": seg}),
        "beta": _posterior(rng, beta, ["segment", "channel", "touch_type"], aco),
        "kernel_shape": _posterior(rng, kshape, ["channel"], {"channel": ach}),
        "kernel_scale_days": _posterior(rng, kscale, ["channel"], {"channel": ach}),
    }
    if extra_channel:
        credited = np.zeros((len(seg), len(ach)))
        credited[:, -1] = 3.0
        post["attributed_segment"] = _posterior(
            rng, credited, ["segment", "channel"], {"segment": seg, "channel": ach}, rel=0.0
        )
    const = xr.Dataset(
        {"persons": ("segment", persons), "exposure_days": ("segment", exposure)},
        coords={"segment": seg},
        attrs={"window_days": window_days, "converters_without_touches": 12},
    )
    attribution = az.InferenceData(posterior=xr.Dataset(post), constant_data=const)
    return market, attribution


def write_fake_bundle(out: Path, market, attribution, models=("market", "attribution")) -> Path:
    """A bundle folder as `gaelp-bayes fit` lays it out (manifest, summary, NetCDF)."""
    from gaelp_bayes import __version__
    from gaelp_bayes.bundle import BUNDLE_FORMAT, BUNDLE_VERSION

    out.mkdir(parents=True, exist_ok=True)
    idata = {"market": market, "attribution": attribution}
    for m in models:
        idata[m].to_netcdf(str(out / f"{m}.nc"))
    manifest = {
        "format": BUNDLE_FORMAT,
        "bundle_version": BUNDLE_VERSION,
        "package_version": __version__,
        "as_of": "2026-01-31T00:00:00Z",
        "models": list(models),
    }
    (out / "manifest.json").write_text(json.dumps(manifest))
    (out / "summary.json").write_text(json.dumps({"as_of": "2026-01-31T00:00:00Z"}))
    return out


@pytest.fixture(scope="module")
def truth() -> sp.SimParams:
    spec = get_world("parental-controls").to_dict()
    return sp.world_params({"spec": spec, "persons": 240, "days": 4})


@pytest.fixture(scope="module")
def bundle(truth, tmp_path_factory) -> Path:
    market, attribution = make_idata(truth)
    return write_fake_bundle(tmp_path_factory.mktemp("bundle"), market, attribution)


# ---------------------------------------------------------------- from_bundle


def test_from_bundle_maps_the_posteriors(truth, bundle):
    from gaelp_bayes.sim.bundle import from_bundle

    p = from_bundle(bundle, draws=6, seed=1)
    assert p.n_draws == 6 and p.source == "bundle"
    assert list(p.channels) == list(truth.channels)  # the market's channels, not "direct"
    S, C = truth.n_segments, truth.n_channels
    assert p.beta.shape == (6, S, C, 2) and p.opp_rate.shape == (6, S, C, 24)
    np.testing.assert_allclose(p.arrival_rate[0], truth.arrival_rate, rtol=1e-6)
    # opportunities per person-hour: the market's per-day rate spread over the exposure
    np.testing.assert_allclose(p.opp_rate.mean(axis=0), truth.opp_rate, rtol=0.15)
    # a click's effect includes the visit it brings (0.7 + 0.3 of the truth's click effect)
    np.testing.assert_allclose(p.beta[..., 1].mean(axis=0), truth.beta[..., 1], rtol=0.15)
    # direct visits (not biddable) join the baseline: 3 credited conversions / exposure
    exposure = np.asarray(truth.arrival_rate) * 20.0 * 8.0
    np.testing.assert_allclose(
        p.alpha.mean(axis=0) - truth.alpha, 3.0 / exposure, rtol=0.2, atol=2e-4
    )
    assert np.all(p.in_market == 1.0)
    np.testing.assert_allclose(p.untouched_rate[0].sum(), 12 / 20.0)
    # the window: the mean whose exposure truncated by the 20-day data window is 8 days
    from gaelp_bayes.sim.bundle import _mean_truncated_exposure

    for w in np.asarray(p.window_mean[0]):
        assert _mean_truncated_exposure(w, 20.0) == pytest.approx(8.0, rel=1e-3)
    np.testing.assert_allclose(p.kernel_weight.sum(axis=-1), 1.0, rtol=1e-5)


def test_from_bundle_uses_the_touch_span_when_recorded(truth, tmp_path):
    """With ``touch_span_days`` the window and the opportunity spread come from it."""
    from gaelp_bayes.sim.bundle import _mean_truncated_exposure, from_bundle

    market, attribution = make_idata(truth)
    persons = np.asarray(truth.arrival_rate) * 20.0
    attribution.constant_data["touch_span_days"] = ("segment", persons * 4.0)
    b = write_fake_bundle(tmp_path / "span", market, attribution)
    p = from_bundle(b, draws=3)
    for w in np.asarray(p.window_mean[0]):
        assert _mean_truncated_exposure(w, 20.0) == pytest.approx(4.0, rel=1e-3)
    # the same opportunities in total, over half the active person-days: twice the rate
    np.testing.assert_allclose(p.opp_rate.mean(axis=0), 2 * truth.opp_rate, rtol=0.15)


def test_from_bundle_scales_opportunities_for_the_days_conversions_end(truth, tmp_path):
    """With recorded conversions, the window stays; opportunities rise by the lost days.

    Monte Carlo: with the bundle's window and a constant conversion rate, the
    simulated active days before conversion times the scaled rate give the data's
    opportunities (exposure x unscaled rate).
    """
    from gaelp_bayes.sim.bundle import conversion_exposure_scale, from_bundle

    market, attribution = make_idata(truth)
    p0 = from_bundle(write_fake_bundle(tmp_path / "plain", market, attribution), draws=3)
    persons = np.asarray(truth.arrival_rate) * 20.0
    attribution.constant_data["conversions"] = ("segment", persons * 0.2)
    p = from_bundle(write_fake_bundle(tmp_path / "conv", market, attribution), draws=3)
    np.testing.assert_allclose(np.asarray(p.window_mean), np.asarray(p0.window_mean))
    w = np.asarray(p.window_mean[0])
    scale = conversion_exposure_scale(w, np.full(w.size, 8.0), np.full(w.size, 0.2), 20.0)
    assert np.all(scale > 1.0)
    np.testing.assert_allclose(
        np.asarray(p.opp_rate), np.asarray(p0.opp_rate) * scale[None, :, None, None], rtol=1e-5
    )
    rng = np.random.default_rng(1)
    n = 400_000
    for m, k in zip(w[:2], scale[:2], strict=True):
        left = np.minimum(rng.gamma(2.0, m / 2.0, n), 20.0 - rng.uniform(0, 20.0, n))
        days = np.minimum(left, rng.exponential(8.0 / 0.2, n))
        assert np.mean(days) * k == pytest.approx(8.0, rel=0.01)


def test_from_bundle_pools_a_market_without_segments(truth, tmp_path):
    from gaelp_bayes.sim.bundle import from_bundle

    market, attribution = make_idata(truth, market_segments=["*"], extra_channel=None)
    b = write_fake_bundle(tmp_path / "b", market, attribution)
    p = from_bundle(b, draws=3)
    # one rate per person-hour for every segment, and the same total opportunities
    rate = np.asarray(p.opp_rate).mean(axis=0)
    np.testing.assert_allclose(rate[0], rate[-1])
    exposure = np.asarray(truth.arrival_rate) * 20.0 * 8.0
    total = (rate * exposure[:, None, None]).sum()
    want = (np.asarray(truth.opp_rate) * exposure[:, None, None]).sum()
    assert total == pytest.approx(want, rel=0.15)


def test_from_bundle_errors(truth, tmp_path):
    from gaelp_bayes.sim.bundle import from_bundle

    market, attribution = make_idata(truth)
    b = write_fake_bundle(tmp_path / "only_attr", market, attribution, models=("attribution",))
    with pytest.raises(GaelpError, match="no market model"):
        from_bundle(b)
    del attribution.posterior["beta"]
    b2 = write_fake_bundle(tmp_path / "old", market, attribution)
    with pytest.raises(GaelpError, match="lacks beta"):
        from_bundle(b2)


def test_bundle_draws_simulate(bundle):
    import jax

    from gaelp_bayes.sim.bundle import from_bundle, summarize
    from gaelp_bayes.sim.core import capacity, simulate_draws, totals

    p = sp.as_jax(from_bundle(bundle, draws=4))
    bids = np.full((3, 24, p.n_channels, p.n_segments), 0.0, np.float32)
    bids[..., 0, :] = 0.5
    out = simulate_draws(p, bids, 30.0, jax.random.key(0), n_max=capacity(p, 3), mode="rb")
    s = summarize(totals(out))
    assert set(s) == {"spend", "conversions", "incremental_conversions", "cac", "incremental_cac"}
    assert 0 < s["spend"]["mean"] <= 30.0 * 1.2
    assert s["conversions"]["q05"] <= s["conversions"]["mean"] <= s["conversions"]["q95"]


# ---------------------------------------------------------------- the command


def _schedule(path: Path, channel: str, bid: float = 0.5, extra: str = "") -> Path:
    rows = ["day,hour,channel,segment,bid"]
    rows += [f"{d},{h},{channel},*,{bid}" for d in range(3) for h in range(24)]
    path.write_text("\n".join(rows) + "\n" + extra)
    return path


def test_simulate_command_prints_the_contract(bundle, truth, tmp_path, check_contract):
    from typer.testing import CliRunner

    from gaelp_bayes.cli.main import app

    sched = _schedule(tmp_path / "s.csv", truth.channels[0])
    args = ["simulate", str(bundle), "--schedule", str(sched), "--budget", "40", "--days", "3"]
    res = CliRunner().invoke(app, [*args, "--draws", "4", "--seed", "3", "--mode", "rb"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["budget"] == 40 and out["days"] == 3 and out["draws"] == 4
    assert out["spend"]["mean"] > 0
    f = tmp_path / "out.json"
    f.write_text(res.stdout)
    chk = subprocess.run(
        [sys.executable, str(check_contract), "outcome", str(f)], capture_output=True, text=True
    )
    assert chk.returncode == 0, chk.stdout + chk.stderr
    again = CliRunner().invoke(app, [*args, "--draws", "4", "--seed", "3", "--mode", "rb"])
    assert json.loads(again.stdout) == out  # same seed, same output


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"--budget": "0"}, "--budget must be > 0"),
        ({"--budget": "-5"}, "--budget must be > 0"),
        ({"--days": "0"}, "--days must be > 0"),
        ({"schedule": "bad_hour"}, "invalid hour"),
        ({"schedule": "bad_channel"}, "unknown channel"),
        ({"schedule": "bad_segment"}, "unknown segment"),
        ({"schedule": "missing"}, "does not exist"),
        ({"bundle": "no_market"}, "no market model"),
        ({"bundle": "missing"}, "does not exist"),
    ],
)
def test_simulate_command_errors(bundle, truth, tmp_path, change, message):
    from typer.testing import CliRunner

    from gaelp_bayes.cli.main import app

    ch = truth.channels[0]
    sched = _schedule(tmp_path / "s.csv", ch)
    kind = change.get("schedule")
    if kind == "bad_hour":
        sched = _schedule(tmp_path / "s.csv", ch, extra=f"0,25,{ch},*,1\n")
    elif kind == "bad_channel":
        sched = _schedule(tmp_path / "s.csv", ch, extra="0,2,billboard,*,1\n")
    elif kind == "bad_segment":
        sched = _schedule(tmp_path / "s.csv", ch, extra=f"0,2,{ch},martians,1\n")
    elif kind == "missing":
        sched = tmp_path / "nope.csv"
    b = bundle
    if change.get("bundle") == "no_market":
        market, attribution = make_idata(truth)
        b = write_fake_bundle(tmp_path / "nm", market, attribution, models=("attribution",))
    elif change.get("bundle") == "missing":
        b = tmp_path / "no_bundle"
    args = {"--schedule": str(sched), "--budget": "10", "--days": "2"}
    args.update({k: v for k, v in change.items() if k.startswith("--")})
    flat = ["simulate", str(b)] + [x for kv in args.items() for x in kv] + ["--draws", "2"]
    res = CliRunner().invoke(app, flat)
    assert res.exit_code == 1, res.output
    assert message in res.output
    assert "Traceback" not in res.output


# ---------------------------------------------------------------- environment


@pytest.fixture(scope="module")
def env_params(truth):
    return truth


def test_env_passes_check_env(env_params):
    import gymnasium as gym
    from gymnasium.utils.env_checker import check_env

    import gaelp_bayes.sim  # noqa: F401  (registers the id)

    env = gym.make("gaelp_bayes/BidPlanning-v0", params=env_params, days=1, follow_days=1)
    check_env(env.unwrapped)
    obs, info = env.reset(seed=4)
    assert env.observation_space.contains(obs)
    total, steps, done = 0.0, 0, False
    while not done:
        obs, r, done, trunc, info = env.step(np.ones(env.action_space.shape, np.float32))
        total += r
        steps += 1
        assert not trunc and r >= 0
    assert steps == 24 and info["hour"] == 24
    # once cumulative spend reaches the budget, no later hour spends anything
    budget = env.unwrapped.budget
    hourly = env.unwrapped._ep.hist[0, 0]
    assert info["spend"] == pytest.approx(hourly.sum(), rel=1e-6) and hourly.sum() > 0
    reached = np.flatnonzero(np.cumsum(hourly) >= budget)
    if reached.size:
        assert hourly[reached[0] + 1 :].sum() == 0
    # deterministic for a seed
    env.reset(seed=4)
    again = [env.step(np.ones(env.action_space.shape, np.float32))[1] for _ in range(24)]
    assert sum(again) == pytest.approx(total)


def test_vector_env_runs_draws_at_once(truth):
    import gymnasium as gym

    import gaelp_bayes.sim  # noqa: F401

    draws = sp.stack([truth, truth.replace(arrival_rate=np.asarray(truth.arrival_rate) * 2)])
    venv = gym.make_vec(
        "gaelp_bayes/BidPlanning-v0",
        num_envs=3,
        vectorization_mode="vector_entry_point",
        params=draws,
        days=1,
        follow_days=0,
    )
    obs, info = venv.reset(seed=2)
    assert obs.shape == (3, 10) and venv.observation_space.contains(obs)
    assert set(info["draw"]) <= {0, 1}
    for _ in range(24):
        obs, rew, term, trunc, info = venv.step(venv.action_space.sample())
    assert term.all() and not trunc.any()
    assert np.all(info["spend"] > 0)
    obs, rew, term, trunc, info = venv.step(venv.action_space.sample())  # autoreset
    assert not term.any() and np.all(rew == 0) and np.all(info["hour"] == 0)
