"""Slow statistical tests of the simulator: fidelity to the numpy world generator, modes.

The simulator shares no code with the generator (gaelp_bayes.world.generate):
it reads only the world's params.json, so these are tests of one
implementation of the generative story against another.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from gaelp_bayes.sim import params as sp
from gaelp_bayes.world import get_world

pytestmark = pytest.mark.slow

PERSONS, DAYS, SEEDS = 3000, 30, 16
BLOCK = 5  # days per block of the daily comparison


def _generator_run(spec, seed: int) -> dict[str, np.ndarray]:
    """Daily spend, wins, clicks, conversions and latencies of the numpy generator."""
    from gaelp_bayes.world.generate import active_opportunities, simulate_population

    pop = simulate_population(spec, PERSONS, DAYS, seed)
    act = active_opportunities(pop) & pop.won
    day = np.floor(pop.opp_time).astype(int)
    m = act & (day < DAYS)
    conv = pop.conversion
    done = np.isfinite(conv) & (conv < DAYS)
    first = np.full(PERSONS, np.inf)
    np.minimum.at(first, pop.opp_person[act], pop.opp_time[act])
    seen = done & np.isfinite(first)
    return {
        "spend": np.bincount(day[m], weights=pop.price[m], minlength=DAYS)[:DAYS],
        "wins": np.bincount(day[m], minlength=DAYS)[:DAYS].astype(float),
        "clicks": np.bincount(day[m & pop.clicked], minlength=DAYS)[:DAYS].astype(float),
        "conversions": np.bincount(np.floor(conv[done]).astype(int), minlength=DAYS)[:DAYS],
        "latency": conv[seen] - first[seen],
    }


@pytest.fixture(scope="module")
def runs():
    return simulate_both(SEEDS)


def simulate_both(seeds: int):
    """Generator and simulator outputs for ``seeds`` seeds each (logged policy)."""
    import jax

    from gaelp_bayes.sim.core import capacity, rollout

    spec = get_world("parental-controls")
    pj = {"spec": spec.to_dict(), "persons": PERSONS, "days": DAYS}
    p = sp.as_jax(sp.world_params(pj))
    bids, noise = sp.logged_policy(pj, DAYS)
    n = capacity(p, DAYS)
    f = jax.jit(lambda k: rollout(p, bids, np.inf, k, n_max=n, bid_noise=noise))
    sim = []
    for s in range(seeds):
        out, po = f(jax.random.key(1000 + s))
        ct, fw = np.asarray(po.conv_time), np.asarray(po.first_win)
        ok = (np.asarray(po.persons.valid) > 0) & np.isfinite(fw) & (ct < DAYS)
        ct, fw = np.where(ok, ct, 0.0), np.where(ok, fw, 0.0)
        sim.append(
            {
                "spend": np.asarray(out.spend[:DAYS], float),
                "wins": np.asarray(out.wins[:DAYS], float),
                "clicks": np.asarray(out.clicks[:DAYS], float),
                "conversions": np.asarray(out.conversions[:DAYS], float),
                "latency": (ct - fw)[ok],
            }
        )
    gen = [_generator_run(spec, 2000 + s) for s in range(seeds)]
    return gen, sim


METRICS = ("spend", "wins", "clicks", "conversions")


def test_daily_outcomes_match_the_generator(runs):
    """Totals and 5-day blocks: Welch tests across seeds, Bonferroni at 1% overall."""
    gen, sim = runs
    blocks = DAYS // BLOCK
    n_tests = len(METRICS) * (blocks + 1)
    failures = []
    for m in METRICS:
        g = np.array([r[m] for r in gen]).reshape(SEEDS, blocks, BLOCK).sum(axis=2)
        s = np.array([r[m] for r in sim]).reshape(SEEDS, blocks, BLOCK).sum(axis=2)
        cols = [(g.sum(axis=1), s.sum(axis=1), "total")]
        cols += [
            (g[:, b], s[:, b], f"days {b * BLOCK}-{b * BLOCK + BLOCK - 1}") for b in range(blocks)
        ]
        for gv, sv, label in cols:
            p = stats.ttest_ind(gv, sv, equal_var=False).pvalue
            if p < 0.01 / n_tests:
                failures.append(
                    f"{m} {label}: generator {gv.mean():.1f}, simulator {sv.mean():.1f}"
                )
    assert not failures, failures


def test_latency_distribution_matches_the_generator(runs):
    """Days from first won impression to conversion (before day 30): two-sample KS."""
    gen, sim = runs
    lg = np.concatenate([r["latency"] for r in gen])
    ls = np.concatenate([r["latency"] for r in sim])
    assert lg.size > 1000 and ls.size > 1000
    res = stats.ks_2samp(lg, ls)
    assert res.pvalue > 0.001, (
        res,
        np.quantile(lg, [0.1, 0.5, 0.9]),
        np.quantile(ls, [0.1, 0.5, 0.9]),
    )


def test_modes_agree_in_expectation():
    """rb and mean modes estimate the same expected conversions and spend as sampling."""
    import jax

    from gaelp_bayes.sim.core import capacity, simulate_draws, totals

    pj = {"spec": get_world("parental-controls").to_dict(), "persons": 600, "days": 7}
    reps = 24
    one = sp.world_params(pj)
    stacked = sp.as_jax(sp.stack([one] * reps))
    bids, _ = sp.logged_policy(pj, 7)
    n = capacity(one, 7)
    res = {}
    for mode in ("sample", "rb", "mean"):
        out = simulate_draws(stacked, bids, np.inf, jax.random.key(7), n_max=n, mode=mode)
        t = totals(out)
        res[mode] = {
            k: np.asarray(t[k]) for k in ("spend", "conversions", "incremental_conversions")
        }
    for k in ("spend", "conversions", "incremental_conversions"):
        s = res["sample"][k]
        se = s.std(ddof=1) / np.sqrt(reps)
        # rb: same expectation, compared with the sampling error of the difference
        d = res["rb"][k] - s
        assert abs(d.mean()) < 4 * d.std(ddof=1) / np.sqrt(reps) + 1e-6, k
        # mean mode: within sampling error plus a 5% allowance for its Jensen bias
        assert abs(res["mean"][k].mean() - s.mean()) < 4 * se + 0.05 * abs(s.mean()), k
    # rb removes the threshold noise
    assert res["rb"]["conversions"].std() < res["sample"]["conversions"].std()


def test_ppo_trains_on_the_environment():
    """A model-free agent (stable-baselines3 PPO, `rl` extra) trains without error."""
    pytest.importorskip("torch")
    sb3 = pytest.importorskip("stable_baselines3")
    import gymnasium as gym

    import gaelp_bayes.sim  # noqa: F401  (registers the id)

    env = gym.make("gaelp_bayes/BidPlanning-v0", days=2, follow_days=2)
    model = sb3.PPO("MlpPolicy", env, n_steps=256, batch_size=64, seed=0, verbose=0, device="cpu")
    model.learn(total_timesteps=3072)
    assert model.num_timesteps >= 3072
    obs, _ = env.reset(seed=1)
    action, _ = model.predict(obs, deterministic=True)
    assert env.action_space.contains(action.astype(np.float32))
    total = 0.0
    done = False
    while not done:
        obs, r, done, _, info = env.step(model.predict(obs, deterministic=True)[0])
        total += r
    assert np.isfinite(total) and total >= 0 and info["hour"] == 2 * 24


# ---------------------------------------------------------------- posterior predictive


PPC_WORLD = {"persons": 3000, "days": 30, "seed": 5}


@pytest.fixture(scope="module")
def ppc(tmp_path_factory):
    """A bundle fitted on an example world, simulated under the world's logged policy."""
    import jax
    import pandas as pd
    from typer.testing import CliRunner

    from gaelp_bayes.cli.main import app
    from gaelp_bayes.sim.bundle import from_bundle
    from gaelp_bayes.sim.core import capacity, simulate_draws
    from gaelp_bayes.world import make_world, write_world

    root = tmp_path_factory.mktemp("ppc")
    spec = get_world("parental-controls")
    w = make_world(spec, **PPC_WORLD, latency_mc_persons=5000)
    write_world(w, root)
    res = CliRunner().invoke(
        app,
        [
            "fit", str(root / "events.parquet"), "--auctions", str(root / "auctions.parquet"),
            "--out", str(root / "bundle"), "--models", "market,attribution",
            "--chains", "2", "--draws", "200", "--tune", "200", "--seed", "1", "--quiet",
        ],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    p = from_bundle(root / "bundle", draws=40, seed=0)
    days = PPC_WORLD["days"]
    bids, noise = sp.logged_policy(w.params, days)
    wp = sp.world_params(w.params)
    ci = [wp.channels.index(c) for c in p.channels]
    si = [wp.segments.index(s) for s in p.segments]
    bids = bids[:, :, ci][:, :, :, si]
    out = simulate_draws(
        sp.as_jax(p), bids, np.inf, jax.random.key(0), n_max=capacity(p, days), bid_noise=noise
    )
    au = w.auctions.to_pandas()
    t0 = pd.Timestamp(spec.start)
    day = ((au["timestamp"] - t0).dt.total_seconds() // 86400).astype(int)
    won = au["won"].to_numpy()
    spend = np.bincount(day[won], weights=au["price"][won], minlength=days)[:days]
    ev = w.events.to_pandas()
    cv = ev[ev["event_type"] == "conversion"].sort_values("timestamp")
    first = cv.assign(k=cv["user_id"].fillna(cv["device_id"])).drop_duplicates("k")
    cday = ((first["timestamp"] - t0).dt.total_seconds() // 86400).astype(int)
    conv = np.bincount(cday, minlength=days)[:days]
    return {
        "spend": (spend, np.asarray(out.spend[:, :days])),
        "conversions": (conv, np.asarray(out.conversions[:, :days])),
    }


def _coverage(observed: np.ndarray, sims: np.ndarray) -> float:
    lo, hi = np.quantile(sims, [0.05, 0.95], axis=0)
    return float(np.mean((observed >= lo) & (observed <= hi)))


def test_posterior_predictive_daily_conversions(ppc):
    """Observed daily first conversions inside the 90% predictive interval on >= 85% of days."""
    obs, sims = ppc["conversions"]
    assert _coverage(obs, sims) >= 0.85, (obs, np.median(sims, axis=0))


def test_posterior_predictive_daily_spend(ppc):
    """Observed daily spend inside the 90% predictive interval on >= 85% of days."""
    obs, sims = ppc["spend"]
    assert _coverage(obs, sims) >= 0.85, (obs, np.median(sims, axis=0))
