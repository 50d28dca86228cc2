"""Fast tests of the JAX journey simulator (gaelp_bayes.sim)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from gaelp_bayes.errors import DataError, GaelpError, InputNotFoundError
from gaelp_bayes.sim import params as sp
from gaelp_bayes.sim.schedule import read_schedule, schedule_array, schedule_frame
from gaelp_bayes.world import get_world

DAYS = 4


def _world_dict(persons: int = 300, days: int = DAYS) -> dict:
    return {"spec": get_world("parental-controls").to_dict(), "persons": persons, "days": days}


@pytest.fixture(scope="module")
def small():
    """Parameters and logged-policy bids of a small population (fast to simulate)."""
    from gaelp_bayes.sim.core import capacity

    pj = _world_dict()
    p = sp.as_jax(sp.world_params(pj))
    bids, noise = sp.logged_policy(pj, DAYS)
    return p, bids, noise, capacity(p, DAYS)


# ---------------------------------------------------------------- parameters


@pytest.mark.parametrize("shape", [1.0, 1.5, 2.0, 2.5, 3.7, 6.0])
def test_phase_type_matches_gamma_mean_and_variance(shape):
    scale = 1.3
    w, rate = sp.gamma_phase_type(shape, scale, stages=sp.kernel_stages([shape]))
    k = np.arange(1, w.size + 1)
    mean = np.sum(w * k) / rate
    second = np.sum(w * k * (k + 1)) / rate**2
    assert w.sum() == pytest.approx(1.0)
    assert mean == pytest.approx(shape * scale, rel=1e-9)
    assert second - mean**2 == pytest.approx(shape * scale**2, rel=1e-9)


def test_phase_type_below_one_keeps_the_mean():
    w, rate = sp.gamma_phase_type(0.6, 2.0, stages=2)
    assert w.tolist() == [1.0, 0.0] and 1 / rate == pytest.approx(1.2)


def test_kernel_stages_deliver_the_gamma_cdf():
    """Hourly stage updates deliver a touch's effect along the kernel's CDF."""
    import jax.numpy as jnp

    from gaelp_bayes.sim.core import _kernel_ops

    shapes = np.array([1.0, 2.0, 2.5])
    scales = np.array([0.8, 1.4, 1.8])
    kw, kr = sp._kernel_arrays(shapes, scales, sp.kernel_stages(shapes))
    p = sp.world_params(_world_dict()).replace(
        kernel_weight=jnp.asarray(kw, jnp.float32), kernel_rate=jnp.asarray(kr, jnp.float32)
    )
    trans, exit_ = (np.asarray(a, float) for a in _kernel_ops(p, 1.0 / 24))
    mass = kw.copy()
    delivered = np.zeros(3)
    hours = np.arange(1, 24 * 40 + 1)
    curve = np.zeros((hours.size, 3))
    for i in range(hours.size):
        delivered += (mass * exit_).sum(axis=1)
        mass = np.einsum("cj,cij->ci", mass, trans)
        curve[i] = delivered
    ref = stats.gamma.cdf(hours[:, None] / 24, shapes[None, :], scale=scales[None, :])
    # integer shapes are exact (float32 transitions); 2.5 is a two-moment fit
    assert np.abs(curve[:, :2] - ref[:, :2]).max() < 2e-4
    assert np.abs(curve[:, 2] - ref[:, 2]).max() < 0.02
    assert curve[-1] == pytest.approx(np.ones(3), abs=2e-3)  # kernels integrate to 1


def test_from_world_reads_truth(small_world):
    p = sp.from_world(small_world / "truth")
    pj = json.loads((small_world / "truth" / "params.json").read_text())
    names_s = [s["name"] for s in pj["spec"]["segments"]]
    names_c = [c["name"] for c in pj["spec"]["channels"]]
    assert list(p.segments) == names_s and list(p.channels) == names_c
    S, C = len(names_s), len(names_c)
    assert p.beta.shape == (S, C, 2) and p.opp_rate.shape == (S, C, 24)
    assert p.bid_loc.shape == (C, 24, 1) and p.kernel_weight.shape[0] == C
    np.testing.assert_allclose(p.profile_prob.sum(axis=1), 1.0)
    np.testing.assert_allclose(p.arrival_rate.sum() * pj["days"], pj["persons"])
    # per-day opportunity rate of segment 0, channel 0 is the derived truth
    derived = pj["derived"]["opportunity_rate"][names_s[0]][names_c[0]]
    assert p.opp_rate[0, 0].sum() == pytest.approx(derived, rel=1e-9)
    # the world folder itself is accepted too
    assert sp.from_world(small_world).channels == p.channels


def test_from_world_errors(tmp_path):
    with pytest.raises(InputNotFoundError, match=r"params\.json"):
        sp.from_world(tmp_path)
    (tmp_path / "params.json").write_text('{"spec": {}}')
    with pytest.raises(DataError, match=r"params\.json"):
        sp.from_world(tmp_path)


def test_device_profiles_match_the_generator():
    """Mean opportunity weight per channel equals the generator's devices' (Monte Carlo)."""
    from gaelp_bayes.world.generate import _matrices, simulate_population

    spec = get_world("parental-controls")
    pop = simulate_population(spec, 20_000, 10.0, seed=3)
    dm = _matrices(spec)["device_multiplier"]  # (C, 3)
    per_person = np.zeros((pop.segment.size, dm.shape[0]))
    np.add.at(per_person, pop.dev_person, (dm[:, pop.dev_type] * pop.dev_use).T)
    p = sp.world_params(_world_dict())
    expected = p.profile_prob @ p.profile_opp  # (S, C)
    for s in range(len(spec.segments)):
        m = pop.segment == s
        mc = per_person[m].mean(axis=0)
        se = per_person[m].std(axis=0) / np.sqrt(m.sum())
        assert np.all(np.abs(mc - expected[s]) < 4 * se + 1e-9)


# ---------------------------------------------------------------- simulation


def test_simulate_is_deterministic_and_keyed(small):
    import jax

    from gaelp_bayes.sim.core import simulate

    p, bids, noise, n = small
    a = simulate(p, bids, np.inf, jax.random.key(1), n_max=n, bid_noise=noise)
    b = simulate(p, bids, np.inf, jax.random.key(1), n_max=n, bid_noise=noise)
    c = simulate(p, bids, np.inf, jax.random.key(2), n_max=n, bid_noise=noise)
    for f in a._fields:
        np.testing.assert_array_equal(np.asarray(getattr(a, f)), np.asarray(getattr(b, f)))
    assert float(a.spend.sum()) != float(c.spend.sum())
    assert a.spend.shape == (DAYS + 30,)
    assert float(a.spend[:DAYS].sum()) > 0 and float(a.spend[DAYS:].sum()) == 0.0
    assert float(a.wins.sum()) >= float(a.clicks.sum()) > 0
    # no conversion is lost by advertising (same thresholds with and without ads)
    assert float(a.conversions.sum()) >= float(a.conversions_noads.sum())


def test_candidate_sampling_matches_expectations_when_auctions_are_dense(small):
    """Many auctions (most active person-hours are candidates: several chunks a day).

    Without conversions (alpha = beta = 0) every mode bids on everyone, so on
    the same persons (same key) the sampled wins, clicks and spend must agree
    with ``mode="mean"``'s exact expectations up to the auctions' own noise.
    """
    import jax

    from gaelp_bayes.sim import core

    p, bids, _, n = small
    q = p.replace(opp_rate=p.opp_rate * 40.0, alpha=p.alpha * 0.0, beta=p.beta * 0.0)
    persons = core.sample_persons(q, jax.random.key(0), DAYS, n)
    # about 3 opportunities per active person-hour: most are candidates, far above
    # the 1 / _CHUNK_SHARE share one chunk holds
    assert float(np.mean(core.opportunity_tables(q, persons)[1])) > 1.0
    key = jax.random.key(7)
    mean = core.simulate(q, bids, np.inf, key, n_max=n, mode="mean")
    got = core.simulate(q, bids, np.inf, key, n_max=n, mode="sample")
    wins = float(mean.wins.sum())
    assert wins > 1000
    assert abs(float(got.wins.sum()) - wins) < 5 * np.sqrt(wins)
    clicks = float(mean.clicks.sum())
    assert abs(float(got.clicks.sum()) - clicks) < 5 * np.sqrt(clicks) + 1
    price = float(mean.spend.sum()) / wins
    assert abs(float(got.spend.sum()) - float(mean.spend.sum())) < 5 * 2 * price * np.sqrt(wins)


def test_no_bids_means_no_ads(small):
    import jax

    from gaelp_bayes.sim.core import simulate, totals

    p, bids, noise, n = small
    out = simulate(p, np.zeros_like(bids), np.inf, jax.random.key(3), n_max=n, bid_noise=noise)
    assert float(out.spend.sum()) == 0 and float(out.wins.sum()) == 0
    # the no-ads arm is closed form; it must agree with the scan day by day
    np.testing.assert_allclose(np.asarray(out.conversions), np.asarray(out.conversions_noads))
    t = totals(out)
    assert float(t["incremental_conversions"]) == 0.0
    assert np.isinf(float(t["incremental_cac"]))


def test_budget_stops_bidding(small):
    import jax

    from gaelp_bayes.sim.core import simulate

    p, bids, noise, n = small
    free = simulate(p, bids, np.inf, jax.random.key(4), n_max=n, bid_noise=noise)
    assert int(free.stop_hour) == -1
    budget = 0.25 * float(free.spend.sum())
    out = simulate(p, bids, budget, jax.random.key(4), n_max=n, bid_noise=noise)
    stop = int(out.stop_hour)
    assert stop > 0
    total = float(out.spend.sum())
    # the hour that reaches the budget is cut at it: spend ends exactly there
    assert total == pytest.approx(budget, rel=1e-5)
    # identical up to the stop (same key, same persons)
    day = stop // 24
    np.testing.assert_allclose(np.asarray(out.spend[:day]), np.asarray(free.spend[:day]))
    assert float(out.spend[day + 1 :].sum()) == 0.0


def test_vmap_over_schedules_and_draws(small):
    import jax
    import jax.numpy as jnp

    from gaelp_bayes.sim.core import simulate

    p, bids, noise, n = small
    cand = jnp.stack([jnp.asarray(bids) * 0.5, jnp.asarray(bids) * 2.0])
    f = jax.jit(
        jax.vmap(
            lambda b: simulate(p, b, jnp.inf, jax.random.key(5), n_max=n, bid_noise=noise),
            in_axes=0,
        )
    )
    out = f(cand)
    assert out.spend.shape == (2, DAYS + 30)
    # same key (same persons, same uniforms): a higher bid wins more
    assert float(out.wins[1].sum()) > float(out.wins[0].sum())
    draws = sp.stack([sp.world_params(_world_dict()), sp.world_params(_world_dict(600))])
    assert draws.n_draws == 2 and sp.take(draws, 1).n_draws is None
    assert sp.take(draws, 1).arrival_rate.sum() == pytest.approx(600 / DAYS)
    assert sp.mean_params(draws).arrival_rate.sum() == pytest.approx(450 / DAYS)


def test_step_matches_scan(small):
    """The public step function, iterated by hand, reproduces simulate (the env uses it)."""
    import jax
    import jax.numpy as jnp

    from gaelp_bayes.sim.core import init_state, sample_persons, simulate, step

    p, bids, noise, n = small
    key = jax.random.key(1)
    out = simulate(p, bids, np.inf, key, n_max=n, bid_noise=noise)
    k_pop, k_ads, _ = jax.random.split(key, 3)
    persons = sample_persons(p, k_pop, DAYS, n)
    state = init_state(p, persons)
    keys = jax.random.split(k_ads, DAYS * 24)
    hb = jnp.asarray(bids).reshape(DAYS * 24, *bids.shape[2:])
    f = jax.jit(lambda s, b, k: step(p, persons, s, b, k, bid_noise=noise))
    spend = np.zeros(DAYS * 24)
    for h in range(DAYS * 24):
        state, ho = f(state, hb[h], keys[h])
        spend[h] = float(ho.spend)
    np.testing.assert_allclose(
        spend.reshape(DAYS, 24).sum(axis=1), np.asarray(out.spend[:DAYS]), rtol=1e-4
    )


@pytest.mark.parametrize("mode", ["sample", "rb"])
def test_closed_form_follow_up_equals_hourly_steps(small, mode):
    """follow_up (daily, closed form) = stepping every hour without ads."""
    import jax
    import jax.numpy as jnp

    from gaelp_bayes.sim.core import (
        follow_up,
        init_state,
        kernel_ops,
        sample_persons,
        step,
    )

    p, bids, _, n = small
    persons = sample_persons(p, jax.random.key(11), DAYS, n, mode)
    state = init_state(p, persons)
    ko = kernel_ops(p)
    hb = jnp.asarray(bids).reshape(DAYS * 24, *bids.shape[2:]) * 3.0

    def ads(s, x):
        return step(p, persons, s, x[0], x[1], mode=mode, kernel=ko)

    keys = jax.random.split(jax.random.key(12), DAYS * 24)
    state, _ = jax.jit(lambda s: jax.lax.scan(ads, s, (hb, keys)))(state)
    follow = 6

    def quiet(s, _):
        return step(p, persons, s, hb[0], keys[0], mode=mode, ads=False, kernel=ko)

    end, hourly = jax.jit(lambda s: jax.lax.scan(quiet, s, None, length=follow * 24))(state)
    daily, closed = jax.jit(lambda s: follow_up(p, persons, s, follow, mode=mode))(state)
    want = np.asarray(hourly.conversions).reshape(follow, 24).sum(axis=1)
    assert want.sum() > 0
    np.testing.assert_allclose(np.asarray(daily), want, rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(np.asarray(closed.intensity), np.asarray(end.intensity), rtol=1e-3)


# ---------------------------------------------------------------- schedules


CH, SEG = ("search", "social"), ("a", "b", "c")


def test_schedule_array_star_and_override():
    df = pd.DataFrame(
        {
            "day": [0, 0, 1, 5],
            "hour": [3, 3, 23, 0],
            "channel": ["search", "search", "social", "social"],
            "segment": ["*", "b", "a", "*"],
            "bid": [0.5, 0.9, 0.1, 1.0],
        }
    )
    b = schedule_array(df, CH, SEG, days=3)
    assert b.shape == (3, 24, 2, 3)
    np.testing.assert_allclose(b[0, 3, 0], [0.5, 0.9, 0.5])
    assert b[1, 23, 1, 0] == pytest.approx(0.1) and b[1, 23, 1, 1:].sum() == 0
    assert b.sum() == pytest.approx(0.5 * 2 + 0.9 + 0.1)  # day 5 is beyond the horizon
    back = schedule_frame(b, CH, SEG)
    np.testing.assert_allclose(schedule_array(back, CH, SEG, 3), b)


@pytest.mark.parametrize(
    ("rows", "match"),
    [
        ("day,hour,channel,segment,bid\n0,24,search,a,1\n", "hour.*1 row"),
        ("day,hour,channel,segment,bid\n0,1,search,a,1\n-1,1,search,a,1\n", "day.*row.*: 2"),
        ("day,hour,channel,segment,bid\n0,1,tv,a,1\n", "unknown channel.*'tv'"),
        ("day,hour,channel,segment,bid\n0,1,search,zz,1\n", "unknown segment.*'zz'"),
        ("day,hour,channel,segment,bid\n0,1,search,a,-2\n", "invalid bid"),
        ("day,hour,channel,segment,bid\n0,1,search,a,x\n", "invalid bid"),
        ("day,hour,channel,bid\n0,1,search,1\n", "missing column.*segment"),
        ("day,hour,channel,segment,bid\n0,1,search,a,1\n0,1,search,a,2\n", "more than once"),
    ],
)
def test_schedule_errors_name_rows_and_columns(tmp_path, rows, match):
    f = tmp_path / "s.csv"
    f.write_text(rows)
    with pytest.raises(DataError, match="(?s)" + match) as exc:
        read_schedule(f, CH, SEG, days=2)
    assert str(f) in str(exc.value)


def test_schedule_missing_file(tmp_path):
    with pytest.raises(GaelpError, match="does not exist"):
        read_schedule(tmp_path / "nope.csv", CH, SEG, 2)
