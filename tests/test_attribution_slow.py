"""Attribution, slow: a few SBC replications and the example-world coverage check."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from gaelp_bayes.config import Config, SamplerConfig
from gaelp_bayes.inference import setup_jax

setup_jax()

from gaelp_bayes.models import attribution as A  # noqa: E402

pytestmark = pytest.mark.slow


def test_sbc_few_replications_cover():
    """Prior draw -> simulate -> fit: 90% intervals of every top-level parameter cover the truth.

    8 replications x 7 quantities = 56 cases; with calibrated inference the
    number covered is Binomial(56, 0.9) (mean 50.4, sd 2.2): fewer than 43
    has probability below 0.1%. The 100-replication rank test is
    benchmarks/sbc_attribution.py.
    """
    cfg = A.AttributionConfig()
    shape = (1, 2, 2)
    covered = cases = 0
    for rep in range(8):
        prior = A.sample_prior(cfg, shape, seed=500 + rep)
        t, _ = A.simulate(
            prior,
            [300],
            np.full(2, 0.2),
            np.array([0.8, 0.2]),
            30.0,
            np.random.default_rng(500 + rep),
        )
        m = A.AttributionModel(cfg, SamplerConfig(chains=1, draws=300, tune=300, seed=rep))
        post = m.fit(t).idata.posterior
        for name in ("mu_log_alpha", "mu_log_beta", "log_kernel_scale"):
            x = post[name].values[0].reshape(post.sizes["draw"], -1)
            tv = np.asarray(prior[name]).reshape(-1)
            lo, hi = np.quantile(x, [0.05, 0.95], axis=0)
            covered += int(np.sum((lo <= tv) & (tv <= hi)))
            cases += tv.size
    assert cases == 56
    assert covered >= 43, covered


def test_example_world_intervals_cover_truth(tmp_path):
    """The issue's target: 3 seeds x 20,000 persons, fitted as `gaelp-bayes fit` does it.

    Identity first, attribution over its person-map draws. Our 90% intervals
    of incremental conversions cover the truth in >= 80% of the 15 (channel,
    seed) cases (measured 13 of 15, docs/attribution.md) and our total
    absolute error is below every baseline's (measured 644 against 2,410 for
    the best, last touch). About 5 minutes on 2 cores. Not a tolerance
    chosen to pass: the issue's numbers, on the issue's worlds. On a smaller
    world (8,000 persons, seed 1) coverage was 3 of 5 (documented too).
    """
    from gaelp_bayes.models import identity as I
    from gaelp_bayes.world import get_world, make_world, write_world

    covered, cases, err = 0, 0, {}
    for seed in (1, 2, 3):
        w = tmp_path / f"s{seed}"
        write_world(make_world(get_world("parental-controls"), 20_000, 60, seed), w)
        ev = pd.read_parquet(w / "events.parquet")
        as_of = pd.Timestamp(json.loads((w / "truth" / "params.json").read_text())["as_of"])
        truth = json.loads((w / "truth" / "incremental.json").read_text())
        cfg = Config(SamplerConfig(chains=2, draws=500, tune=500, seed=seed))
        idm = I.fit(ev, as_of, cfg)
        m = A.fit(ev, as_of, cfg, person_map=idm.tables().get("person_draws", idm.person_map()))
        s = m.summary()
        # credits always sum to conversions, whatever the fit
        tot = sum(v["attributed"]["mean"] for v in s["channels"].values())
        assert tot + s["baseline"]["attributed"]["mean"] == pytest.approx(
            s["counts"]["conversions"], rel=1e-3
        )
        for c, v in truth.items():
            iv = s["channels"][c]["incremental"]
            covered += iv["q05"] <= v <= iv["q95"]
            cases += 1
            err["ours"] = err.get("ours", 0.0) + abs(iv["mean"] - v)
            for method, credit in s["baselines"].items():
                err[method] = err.get(method, 0.0) + abs(credit.get(c, 0.0) - v)
    assert cases == 15
    assert covered >= 12, covered
    assert min(err, key=err.get) == "ours", err
