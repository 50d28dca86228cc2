"""Warm-started NUTS for multiple imputation (gaelp_bayes.inference)."""

from __future__ import annotations

import numpy as np
import pytest

from gaelp_bayes.config import SamplerConfig
from gaelp_bayes.inference import WarmStart, imputation_sampler, run_nuts


def _model(y=None):
    import numpyro
    import numpyro.distributions as dist

    mu = numpyro.sample("mu", dist.Normal(0.0, 10.0))
    sigma = numpyro.sample("sigma", dist.HalfNormal(5.0))
    numpyro.sample("y", dist.Normal(mu, sigma), obs=y)


def _other(y=None):
    import numpyro
    import numpyro.distributions as dist

    mu = numpyro.sample("mu", dist.Normal(0.0, 10.0).expand([2]))
    numpyro.sample("y", dist.Normal(mu.sum(), 1.0), obs=y)


@pytest.mark.parametrize(
    ("draws", "tune", "n", "expect"),
    [
        (1000, 1000, 4, [(250, 1000), (250, 200), (250, 200), (250, 200)]),
        (1000, 1000, 2, [(500, 1000), (500, 200)]),
        (100, 100, 2, [(100, 100), (100, 100)]),
        (1000, 50, 3, [(334, 50), (334, 50), (334, 50)]),
    ],
)
def test_imputation_sampler_splits_draws_and_shortens_later_warmups(draws, tune, n, expect):
    s = SamplerConfig(draws=draws, tune=tune, seed=7)
    got = [imputation_sampler(s, k, n) for k in range(n)]
    assert [(g.draws, g.tune) for g in got] == expect
    assert [g.seed for g in got] == [7 + k for k in range(n)]


def test_warm_start_reuses_adaptation_and_samples_the_same_posterior():
    rng = np.random.default_rng(0)
    y1 = rng.normal(3.0, 2.0, 400)
    y2 = rng.normal(3.1, 2.0, 400)  # a second "imputation": similar data
    s = SamplerConfig(chains=2, draws=400, tune=400, seed=0, progress=False)
    states: list[WarmStart] = []
    run_nuts(_model, s, model_kwargs={"y": y1}, state_out=states)
    (w,) = states
    assert w.step_size > 0 and set(w.z) == {"mu", "sigma"} and w.z["mu"].shape == (2,)
    short = imputation_sampler(s, 1, 2)
    idata = run_nuts(_model, short, model_kwargs={"y": y2}, warm_start=w)
    post = idata.posterior
    assert post.sizes["chain"] == 2 and post.sizes["draw"] == short.draws
    # conjugate-ish check: the posterior mean of mu is the sample mean within 4 sd
    m, se = float(post["mu"].mean()), y2.std() / np.sqrt(y2.size)
    assert abs(m - y2.mean()) < 4 * se
    assert int(idata.sample_stats["diverging"].sum()) == 0


def test_warm_start_of_another_model_falls_back_to_a_cold_start():
    y = np.random.default_rng(1).normal(0.0, 1.0, 50)
    s = SamplerConfig(chains=1, draws=100, tune=100, seed=0, progress=False)
    states: list[WarmStart] = []
    run_nuts(_model, s, model_kwargs={"y": y}, state_out=states)
    idata = run_nuts(_other, s, model_kwargs={"y": float(y.mean())}, warm_start=states[0])
    assert idata.posterior["mu"].shape == (1, 100, 2)


def test_pooled_diagnostics_add_ess_and_keep_the_worst_rhat():
    from gaelp_bayes.diagnostics import Diagnostics

    a = Diagnostics(1.004, 250.0, 300.0, 1, 2, 250)
    b = Diagnostics(1.012, 220.0, 180.0, 0, 2, 250)
    p = Diagnostics.pooled([a, b], ("mu",))
    assert (p.max_rhat, p.min_ess_bulk, p.min_ess_tail) == (1.012, 470.0, 480.0)
    assert (p.divergences, p.chains, p.draws, p.var_names) == (1, 2, 500, ("mu",))
    assert p.problems == ["max R-hat 1.012 > 1.01", "1 divergent transitions"]


def _second(x=None):
    import numpyro
    import numpyro.distributions as dist

    nu = numpyro.sample("nu", dist.Normal(3.0, 1.0))
    numpyro.sample("x", dist.Normal(nu, 1.0), obs=x)


def test_merge_independent_pairs_draws_and_counts_both_runs_divergences():
    from gaelp_bayes.diagnostics import diagnose
    from gaelp_bayes.inference import merge_independent

    rng = np.random.default_rng(0)
    s = SamplerConfig(draws=200, tune=200, chains=2, seed=1)
    a = run_nuts(_model, s, model_kwargs={"y": rng.normal(1.0, 2.0, 50)})
    b = run_nuts(_second, s, model_kwargs={"x": rng.normal(-1.0, 1.0, 20)})
    div = b.sample_stats["diverging"].values.copy()
    div[0, :3] = True  # pretend: the second run diverged 3 times
    b.sample_stats["diverging"] = (("chain", "draw"), div)
    m = merge_independent(a, b, prefix="two_")
    assert set(m.posterior.data_vars) == {"mu", "sigma", "nu"}
    np.testing.assert_array_equal(m.posterior["nu"].values, b.posterior["nu"].values)
    np.testing.assert_array_equal(m.posterior["mu"].values, a.posterior["mu"].values)
    assert set(m.log_likelihood.data_vars) == {"y", "x"}
    assert {"diverging", "two_diverging"} <= set(m.sample_stats.data_vars)
    assert diagnose(m).divergences == int(a.sample_stats["diverging"].sum()) + 3
    short = run_nuts(_second, SamplerConfig(draws=50, tune=50, chains=2, seed=1), model_kwargs={})
    with pytest.raises(ValueError, match="same chains and draws"):
        merge_independent(a, short, prefix="two_")
