"""Simulation-based calibration (Talts et al. 2018) of the attribution model at small size.

Each replication draws parameters from the model's prior, simulates persons
from the model's generative process (:func:`gaelp_bayes.models.attribution.simulate`),
fits with NUTS and records the rank of the true value among thinned
posterior draws, for ``mu_log_alpha``, every ``mu_log_beta[c, k]`` and
``log_kernel_scale[c]``. Calibrated inference gives uniform
ranks: the script prints a chi-square uniformity test per quantity (ranks in
``--bins`` bins) and the share of replications whose 90% interval covers
the truth.

    python benchmarks/sbc_attribution.py --reps 100 --persons 300
    # or in two processes (one chain each), then summarise both logs:
    python benchmarks/sbc_attribution.py --reps 50 --start 0 --log a.jsonl &
    python benchmarks/sbc_attribution.py --reps 50 --start 50 --log b.jsonl
    python benchmarks/sbc_attribution.py --from-log a.jsonl b.jsonl
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def one(rep: int, a) -> dict[str, float]:
    from gaelp_bayes.config import SamplerConfig
    from gaelp_bayes.models import attribution as A

    cfg = A.AttributionConfig()
    shape = (1, a.channels, 2)
    prior = A.sample_prior(cfg, shape, seed=10_000 + rep)
    rng = np.random.default_rng(rep)
    t, _ = A.simulate(
        prior,
        [a.persons],
        np.full(a.channels, 0.2),
        np.array([0.8, 0.2]),
        30.0,
        rng,
    )
    smp = SamplerConfig(chains=1, draws=a.draws, tune=a.draws, seed=rep)
    m = A.AttributionModel(cfg, smp).fit(t)
    post = m.idata.posterior
    out = {}
    thin = slice(None, None, max(1, a.draws // a.ranks))
    for name in ("mu_log_alpha", "mu_log_beta", "log_kernel_scale"):
        x = post[name].values[0][thin]
        truth = np.asarray(prior[name])
        x = x.reshape(x.shape[0], -1)
        for i, tv in enumerate(truth.reshape(-1)):
            key = f"{name}[{i}]" if truth.size > 1 else name
            out[key] = float(np.sum(x[:, i] < tv))
            out[key + ":cover"] = float(
                np.quantile(x[:, i], 0.05) <= tv <= np.quantile(x[:, i], 0.95)
            )
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=100)
    ap.add_argument(
        "--start", type=int, default=0, help="first replication (run ranges in parallel processes)"
    )
    ap.add_argument("--persons", type=int, default=300)
    ap.add_argument("--channels", type=int, default=2)
    ap.add_argument("--draws", type=int, default=400)
    ap.add_argument("--ranks", type=int, default=99, help="posterior draws kept for the rank")
    ap.add_argument("--bins", type=int, default=10)
    ap.add_argument("--log", default=None, help="append each replication's ranks (JSON lines)")
    ap.add_argument(
        "--from-log", nargs="+", default=None, help="only summarise the replications of logs"
    )
    a = ap.parse_args(argv)
    from scipy import stats

    t0 = time.perf_counter()
    rows = []
    if a.from_log:
        rows = [json.loads(line) for log in a.from_log for line in open(log)]
        a.reps = 0
    for r in range(a.start, a.start + a.reps):
        rows.append(one(r, a))
        if a.log:
            with open(a.log, "a") as fh:
                fh.write(json.dumps(rows[-1]) + "\n")
    keys = [k for k in rows[0] if not k.endswith(":cover")]
    L = len(range(0, a.draws, max(1, a.draws // a.ranks)))
    print(f"{len(rows)} replications, {a.persons} persons each, {time.perf_counter() - t0:.0f} s\n")
    print("| quantity | chi2 p (uniform ranks) | 90% coverage |")
    print("| --- | --- | --- |")
    res = {}
    for k in keys:
        r = np.array([row[k] for row in rows])
        counts = np.histogram(r, bins=a.bins, range=(0, L + 1))[0]
        p = stats.chisquare(counts).pvalue
        cov = np.mean([row[k + ":cover"] for row in rows])
        res[k] = (p, cov)
        print(f"| {k} | {p:.3f} | {cov:.2f} |")
    return res


if __name__ == "__main__":
    main()
