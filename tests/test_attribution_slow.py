"""Attribution, slow: a few SBC replications and the example-world check (known to fail)."""

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


@pytest.mark.xfail(
    reason="known gap, measured in docs/attribution.md: with identity draws our intervals "
    "cover 9 of 15 (channel, seed) cases on the 20,000-person worlds (11 of 15 with the true "
    "person map, 3 of 15 with devices merged by user_id only)",
    strict=False,
)
def test_example_world_intervals_cover_truth(tmp_path):
    """The issue's target on one smaller world: 90% intervals cover >= 80% of channels."""
    from gaelp_bayes.world import get_world, make_world, write_world

    write_world(make_world(get_world("parental-controls"), 8000, 60, 1), tmp_path)
    ev = pd.read_parquet(tmp_path / "events.parquet")
    as_of = pd.Timestamp(json.loads((tmp_path / "truth" / "params.json").read_text())["as_of"])
    truth = json.loads((tmp_path / "truth" / "incremental.json").read_text())
    from gaelp_bayes.models import identity as I

    cfg = Config(SamplerConfig(chains=2, draws=300, tune=300))
    # as `gaelp-bayes fit` does: identity first, attribution over its person-map draws
    idm = I.fit(ev, as_of, cfg)
    m = A.fit(ev, as_of, cfg, person_map=idm.tables().get("person_draws", idm.person_map()))
    s = m.summary()
    # credits always sum to conversions, whatever the fit
    tot = sum(v["attributed"]["mean"] for v in s["channels"].values())
    assert tot + s["baseline"]["attributed"]["mean"] == pytest.approx(
        s["counts"]["conversions"], rel=1e-3
    )
    hits = [
        s["channels"][c]["incremental"]["q05"] <= v <= s["channels"][c]["incremental"]["q95"]
        for c, v in truth.items()
    ]
    assert np.mean(hits) >= 0.8, hits
