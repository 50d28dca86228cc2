"""Latency model: config, aggregation, PyMC-vs-NumPyro log-density, a small fit, the summary."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from gaelp_bayes.config import Config, SamplerConfig
from gaelp_bayes.diagnostics import Diagnostics
from gaelp_bayes.errors import ConfigError, MissingDependencyError
from gaelp_bayes.inference import setup_jax

setup_jax()

from gaelp_bayes.models import latency as L  # noqa: E402

SEGS = ["a", "b", "c"]


def _toy(cfg: L.LatencyConfig, persons=(400, 300, 200), seed=0, covariates=False):
    rng = np.random.default_rng(seed)
    params = {
        "logit_p": np.array([0.3, -0.5, -1.0]),
        "log_scale": np.array([[0.5, 2.0], [1.2, 2.5], [1.8, 3.0]])[:, : cfg.components],
        "log_shape_s": np.array([[0.3, 0.5], [0.0, 0.2], [-0.2, 0.4]])[:, : cfg.components],
        "mix_weight": np.array([0.6, 0.5, 0.4]),
    }
    days, conv, seg = L.simulate_times(cfg, params, list(persons), 40.0, rng)
    cov = None
    if covariates:
        cov = {"first_channel": rng.choice(["s", "t", "u"], size=days.size)}
    data = L.aggregate_times(days, conv, np.array(SEGS)[seg], cfg, covariates=cov)
    return data, params


# ---------------------------------------------------------------- config


def test_config_defaults_and_toml_override():
    cfg = Config(models={"latency": {"delay": "lognormal", "bucket_days": 1, "covariates": []}})
    lc = cfg.model("latency", L.LatencyConfig)
    assert lc.delay == "lognormal" and lc.bucket_days == 1.0
    assert Config().model("latency", L.LatencyConfig) == L.LatencyConfig()


def test_config_collects_every_problem():
    cfg = Config(models={"latency": {"delay": "gamma", "components": 3, "nope": 1}})
    with pytest.raises(ConfigError) as err:
        cfg.model("latency", L.LatencyConfig)
    text = str(err.value)
    assert "latency.nope" in text and "latency.delay" in text and "latency.components" in text


# ---------------------------------------------------------------- survival functions


@pytest.mark.parametrize("delay", L.DELAYS)
def test_survival_matches_scipy(delay):
    t = np.array([0.1, 1.0, 3.0, 12.0])
    log_scale, log_shape = 1.1, 0.4
    lam, k = np.exp(log_scale), np.exp(log_shape)
    ref = {
        "weibull": stats.weibull_min(k, scale=lam),
        "loglogistic": stats.fisk(k, scale=lam),
        "lognormal": stats.lognorm(1 / k, scale=lam),
    }[delay]
    got = L._np_log_surv(delay, np.log(t), log_scale, log_shape)
    np.testing.assert_allclose(got, ref.logsf(t), rtol=1e-10)
    import jax.numpy as jnp

    got_jax = L._log_surv(jnp, delay, jnp.log(t), log_scale, log_shape)
    np.testing.assert_allclose(np.asarray(got_jax), ref.logsf(t), rtol=2e-5)


# ---------------------------------------------------------------- aggregation


def test_aggregation_keeps_every_person_and_bounds_rows():
    cfg = L.LatencyConfig(bucket_days=1.0)
    data, _ = _toy(cfg, persons=(3000, 2000, 1000))
    assert data.count.sum() == 6000
    assert data.persons.tolist() == [3000, 2000, 1000]
    # rows are bounded by segments x buckets x status, whatever the number of persons
    assert data.seg.size <= 3 * 41 * 2
    assert np.all(data.hi - data.lo == pytest.approx(1.0))


def test_aggregated_likelihood_equals_per_person_likelihood():
    """Weights are exact: one row per person gives the same log-likelihood."""
    import jax

    cfg = L.LatencyConfig(bucket_days=0.5)
    rng = np.random.default_rng(3)
    params = {
        "logit_p": np.array([0.0, -1.0]),
        "log_scale": np.array([[1.0], [2.0]]),
        "log_shape_s": np.array([[0.2], [0.0]]),
    }
    days, conv, seg = L.simulate_times(cfg, params, [150, 100], 30.0, rng)
    agg = L.aggregate_times(days, conv, seg.astype(str), cfg)
    bucket = np.floor(days / 0.5)
    per = L.LatencyData(
        segments=["0", "1"],
        seg=seg,
        cell=np.zeros(seg.size, int),
        lo=bucket * 0.5,
        hi=(bucket + 1) * 0.5,
        event=conv,
        count=np.ones(seg.size),
        x=np.zeros((1, 0)),
        covariate_names=[],
        cell_persons=agg.cell_persons,
        bucket_days=0.5,
    )
    assert agg.seg.size < per.seg.size

    def ll(d):
        kw = d.model_kwargs()
        return float(
            L._loglik(
                cfg,
                kw["seg"],
                kw["log_lo"],
                kw["log_hi"],
                kw["event"],
                kw["count"],
                jax.numpy.asarray(params["logit_p"])[kw["seg"]],
                jax.numpy.asarray(params["log_scale"]),
                jax.numpy.asarray(params["log_shape_s"]),
                jax.numpy.zeros((2, 1)),
            )
        )

    assert ll(agg) == pytest.approx(ll(per), rel=1e-5)


# ---------------------------------------------------------------- PyMC reference


def _random_points(cfg, data, centered, seeds):
    """Points of the NumPyro model: its prior draws (every free site, constrained)."""
    import numpyro

    kw = data.model_kwargs()
    model = L._partial_model(cfg, centered)
    for seed in seeds:
        with numpyro.handlers.seed(rng_seed=seed):
            tr = numpyro.handlers.trace(model).get_trace(**kw)
        yield {
            k: v["value"] for k, v in tr.items() if v["type"] == "sample" and not v["is_observed"]
        }


@pytest.mark.parametrize(
    ("delay", "components", "cure", "centered", "covariates"),
    [
        ("weibull", 1, True, True, False),
        ("loglogistic", 2, True, False, True),
        ("lognormal", 1, True, False, False),
        ("lognormal", 2, False, True, False),
    ],
)
def test_pymc_log_density_equals_numpyro(delay, components, cure, centered, covariates):
    """Same log-density (constrained space, no Jacobian) at random points.

    NumPyro samples in float32; here both are evaluated in float64, so the
    two programs must agree to round-off (and to the 1e-8 accuracy of
    the two libraries' normal log-CDF approximations).
    """
    pytest.importorskip("pymc")
    from numpyro.infer.util import log_density

    cfg = L.LatencyConfig(delay=delay, components=components, cure=cure, bucket_days=0.5)
    data, _ = _toy(cfg, persons=(150, 100, 80), covariates=covariates)
    import jax

    kw = {
        k: (np.asarray(v, np.float64) if getattr(v, "dtype", None) == np.float32 else v)
        for k, v in data.model_kwargs().items()
    }
    model = L._partial_model(cfg, centered)
    pm_model = L.build_pymc_model(data, cfg, centered)
    logp = pm_model.compile_logp(jacobian=False, mode="NUMBA")
    for params in _random_points(cfg, data, centered, (0, 1, 2)):
        assert {rv.name for rv in pm_model.free_RVs} == set(params)
        point = {}
        for rv in pm_model.free_RVs:
            val = np.asarray(params[rv.name], dtype=np.float64)
            tr = pm_model.rvs_to_transforms.get(rv)
            name = pm_model.rvs_to_values[rv].name
            if tr is not None:  # only positive scales are transformed (log)
                assert type(tr).__name__ == "LogTransform", tr
                val = np.log(val)
            point[name] = val
        with jax.enable_x64(True):
            p64 = {k: np.asarray(v, np.float64) for k, v in params.items()}
            a = float(log_density(model, (), kw, p64)[0])
        b = float(logp(point))
        assert np.isfinite(a) and np.isfinite(b)
        assert a == pytest.approx(b, rel=1e-7, abs=1e-8), (a, b)


def test_missing_pymc_raises_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "pymc", None)
    cfg = L.LatencyConfig()
    data, _ = _toy(cfg)
    with pytest.raises(MissingDependencyError, match=r"gaelp-bayes\[pymc\]"):
        L.build_pymc_model(data, cfg)


# ---------------------------------------------------------------- fitting


@pytest.fixture(scope="module")
def small_fit():
    cfg = L.LatencyConfig(bucket_days=0.5)
    data, params = _toy(cfg, persons=(3000, 2500, 2000), seed=5)
    model = L.LatencyModel(cfg, SamplerConfig(chains=2, draws=300, tune=300, seed=1))
    return model.fit_data(data), params


def test_fit_recovers_simulated_parameters(small_fit):
    model, params = small_fit
    post = model.idata.posterior
    for name in ("logit_p", "log_scale", "log_shape_s"):
        draws = post[name].values.reshape(-1, *post[name].shape[2:])
        mean, sd = draws.mean(0), draws.std(0)
        z = (mean - params[name].reshape(mean.shape)) / sd
        # 3 segments x 3 quantities: |z| < 4 for all fails with prob ~ 6e-4 under calibration
        assert np.all(np.abs(z) < 4), (name, z)


def test_summary_follows_the_contract(small_fit):
    model, _ = small_fit
    s = model.summary()
    assert set(s["segments"]) == set(SEGS)
    for seg in SEGS:
        b = s["segments"][seg]
        assert isinstance(b["persons"], int) and b["persons"] > 0
        for key in ("p_convert", "median_days"):
            assert set(b[key]) == {"mean", "q05", "q95"}
            assert b[key]["q05"] <= b[key]["mean"] <= b[key]["q95"]
        cdf = b["cdf"]
        assert cdf["days"] == list(range(1, 31))
        assert len(cdf["mean"]) == len(cdf["q05"]) == len(cdf["q95"]) == 30
        assert np.all(np.diff(cdf["mean"]) >= 0)
        assert cdf["mean"][-1] <= b["p_convert"]["mean"] + 1e-9
    nc = s["nowcast"]
    assert nc["open_journeys"] == sum(v["open_journeys"] for v in nc["segments"].values())
    assert nc["predicted_conversions"]["q05"] <= nc["eventual_predicted_conversions"]["q95"]
    assert nc["expected_conversions"]["mean"] <= nc["eventual_expected_conversions"]["mean"]
    import json

    json.dumps(s)  # plain JSON types only


def test_diagnostics_and_idata(small_fit):
    model, _ = small_fit
    d = model.diagnostics()
    assert isinstance(d, Diagnostics) and d.chains == 2 and d.draws == 300
    assert d.max_rhat < 1.05 and d.divergences == 0
    groups = model.idata.groups()
    assert "posterior" in groups and "constant_data" in groups
    assert (
        "cdf" in model.idata.posterior and "nowcast_conversions" in model.idata.posterior_predictive
    )


def test_accessors_before_fit_raise():
    with pytest.raises(RuntimeError, match="fit"):
        L.LatencyModel().summary()


def test_fit_entry_point_on_events(tiny_world_events):
    events, as_of = tiny_world_events
    cfg = Config(
        sampler=SamplerConfig(chains=1, draws=100, tune=100, seed=0),
        models={"latency": {"bucket_days": 1.0}},
    )
    with pytest.warns(Warning):  # 100 draws cannot reach the ESS policy: it must say so
        model = L.fit(events, as_of, cfg)
    assert model.name == "latency"
    segs = set(events["segment"].dropna())
    assert set(model.summary()["segments"]) == segs


@pytest.fixture(scope="module")
def tiny_world():
    from gaelp_bayes.world import get_world, make_world

    return make_world(
        get_world("parental-controls"), persons=1500, days=30, seed=2, latency_mc_persons=2000
    )


@pytest.fixture(scope="module")
def tiny_world_events(tiny_world):
    return tiny_world.events.to_pandas(), tiny_world.as_of


def test_no_segment_column_gives_one_segment(tiny_world_events):
    events, as_of = tiny_world_events
    cfg = L.LatencyConfig(bucket_days=1.0)
    from gaelp_bayes.journeys import build_journeys

    j = build_journeys(events.drop(columns=["segment"]), as_of)
    data = L.aggregate(j, as_of, cfg)
    assert data.segments == ["all"]


def test_covariates_cells(tiny_world_events):
    events, as_of = tiny_world_events
    from gaelp_bayes.journeys import build_journeys

    j = build_journeys(events, as_of)
    cfg = L.LatencyConfig(covariates=["first_channel", "first_device_type"])
    data = L.aggregate(j, as_of, cfg)
    n_ch = j["first_channel"].fillna("unknown").nunique()
    n_dt = j["first_device_type"].fillna("unknown").nunique()
    assert data.x.shape[1] == (n_ch - 1) + (n_dt - 1)
    assert data.cell_persons.sum() == len(j)
    bad = L.LatencyConfig(covariates=["nope"])
    with pytest.raises(Exception, match="nope"):
        L.aggregate(j, as_of, bad)
    assert isinstance(pd.Timestamp(as_of), pd.Timestamp)


def test_identity_draws_are_pooled(tiny_world, tiny_world_events):
    """A person map with a ``draw`` column: one fit per draw, posteriors concatenated."""
    events, as_of = tiny_world_events
    m0 = tiny_world.devices[["device_id", "person_id"]]
    m1 = m0.copy()
    m1.loc[m1.index[::3], "person_id"] = "solo-" + m1.loc[m1.index[::3], "device_id"]
    maps = pd.concat([m0.assign(draw=0), m1.assign(draw=1)])
    cfg = Config(
        sampler=SamplerConfig(chains=1, draws=100, tune=100, seed=0),
        models={"latency": {"bucket_days": 1.0}},
    )
    with pytest.warns(Warning):
        model = L.fit(events, as_of, cfg, person_map=maps)
    assert model.idata.posterior.sizes["draw"] == 200
    assert model.idata.constant_data.attrs["identity_draws"] == 2
    assert model.diagnostics().draws == 200
    s = model.summary()
    assert set(s["segments"]) == set(events["segment"].dropna())
