"""Configuration errors are collected; bundles round-trip and refuse other versions."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from gaelp_bayes.bundle import BUNDLE_VERSION, load_bundle, write_bundle
from gaelp_bayes.config import SamplerConfig, load_config
from gaelp_bayes.diagnostics import Diagnostics, diagnose, interval
from gaelp_bayes.errors import BundleVersionError, ConfigError, InputNotFoundError


def test_defaults_and_cli_overrides():
    cfg = load_config(None, chains=4, draws=None, seed=7)
    assert cfg.sampler == SamplerConfig(chains=4, seed=7)


def test_config_file_collects_every_problem(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text(
        '[sampler]\nchains = "two"\ntarget_accept = 1.5\nspeed = 3\n'
        '[latency]\ndelay = "weibull"\n[nonsense]\nx = 1\n'
    )
    with pytest.raises(ConfigError) as exc:
        load_config(p)
    msg = str(exc.value)
    assert str(p) in msg
    for part in (
        "sampler.chains: expected int",
        "target_accept must be in",
        "sampler.speed: unknown",
        "nonsense: unknown table",
    ):
        assert part in msg, msg
    assert len(exc.value.problems) == 4


def test_config_file_ok_and_model_tables(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text("[sampler]\ndraws = 200\ntarget_accept = 0.95\n[latency]\nbucket_days = 0.5\n")
    cfg = load_config(p, draws=300)
    assert cfg.sampler.draws == 300 and cfg.sampler.target_accept == 0.95
    assert cfg.models["latency"] == {"bucket_days": 0.5}
    assert cfg.to_dict()["sampler"]["draws"] == 300


def test_bad_toml_and_missing_file(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text("[sampler\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(p)
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.toml")


class _Fake:
    """A fitted model built from known draws, to test the bundle writer alone."""

    name = "latency"

    def __init__(self, seed=0):
        import arviz as az

        rng = np.random.default_rng(seed)
        self._idata = az.from_dict(posterior={"p": rng.beta(20, 80, size=(2, 500))})

    @property
    def idata(self):
        return self._idata

    def summary(self):
        p = self._idata.posterior["p"].values.ravel()
        cdf = {
            "days": list(range(1, 31)),
            "mean": [0.1] * 30,
            "q05": [0.05] * 30,
            "q95": [0.15] * 30,
        }
        return {
            "segments": {
                "all": {
                    "persons": 100,
                    "p_convert": interval(p),
                    "median_days": interval(p * 30),
                    "cdf": cdf,
                }
            }
        }

    def diagnostics(self):
        return diagnose(self._idata)


def test_bundle_round_trip_and_contract(tmp_path, check_contract):
    import subprocess
    import sys

    src = tmp_path / "events.csv"
    src.write_text("device_id,timestamp,event_type\nd1,2026-01-01T00:00:00Z,visit\n")
    out = write_bundle(
        tmp_path / "b",
        [_Fake()],
        as_of=pd.Timestamp("2026-01-31", tz="UTC"),
        config={"sampler": {"draws": 500}},
        inputs=[src],
    )
    b = load_bundle(out)
    assert b.models == ["latency"]
    assert b.as_of == pd.Timestamp("2026-01-31", tz="UTC")
    assert b.summary["as_of"] == "2026-01-31T00:00:00Z"
    assert b.manifest["input"]["fingerprint"] and b.manifest["bundle_version"] == BUNDLE_VERSION
    np.testing.assert_array_equal(
        b.idata("latency").posterior["p"].values, _Fake().idata.posterior["p"].values
    )
    d = b.manifest["diagnostics"]["latency"]
    assert d["max_rhat"] < 1.01 and d["divergences"] == 0 and d["ok"]
    assert d["var_names"] == ["p"]  # what the figures cover, for the report's rank plots
    with pytest.raises(InputNotFoundError, match="no 'market' model"):
        b.idata("market")
    res = subprocess.run(
        [sys.executable, str(check_contract), "bundle", str(out)], capture_output=True, text=True
    )
    assert res.returncode == 0, res.stdout


def test_bundle_from_another_version_is_refused_naming_both(tmp_path):
    out = write_bundle(
        tmp_path / "b", [_Fake()], as_of=pd.Timestamp("2026-01-31", tz="UTC"), config={}
    )
    m = json.loads((out / "manifest.json").read_text())
    m["bundle_version"], m["package_version"] = 99, "9.9.9"
    (out / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(BundleVersionError, match=r"9\.9\.9.*this is gaelp-bayes"):
        load_bundle(out)
    with pytest.raises(InputNotFoundError, match="not a gaelp-bayes bundle"):
        load_bundle(tmp_path)


def test_diagnostics_policy_flags_poor_chains():
    import arviz as az

    rng = np.random.default_rng(1)
    stuck = np.stack([rng.normal(0, 1, 300), rng.normal(3, 1, 300)])  # chains disagree
    d = diagnose(az.from_dict(posterior={"x": stuck}))
    assert not d.ok and any("R-hat" in p for p in d.problems)
    good = Diagnostics(1.001, 900, 800, 0, 2, 1000)
    assert good.ok and good.to_dict()["problems"] == []


def test_a_failed_write_keeps_the_previous_bundle_and_a_refit_replaces_it(tmp_path):
    as_of = pd.Timestamp("2026-01-31", tz="UTC")
    out = write_bundle(tmp_path / "b", [_Fake()], as_of=as_of, config={"run": 1})

    class _Broken(_Fake):
        name = "market"

        def summary(self):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_bundle(out, [_Fake(), _Broken()], as_of=as_of, config={"run": 2})
    b = load_bundle(out)
    assert b.manifest["config"] == {"run": 1} and b.models == ["latency"]
    # no half-written temporary folders are left beside it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]

    write_bundle(out, [_Fake()], as_of=as_of, config={"run": 3})
    assert load_bundle(out).manifest["config"] == {"run": 3}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]
