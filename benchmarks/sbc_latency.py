"""Simulation-based calibration (SBC) of the latency model.

Each replication draws parameters from the model's prior, simulates censored
journeys from them (uniform follow-up, no covariates), fits the model with
NUTS and records the rank of the true value among thinned posterior draws.
If inference is calibrated the ranks are uniform (Talts et al. 2018); a
chi-square test over rank bins and a KS test on normalised ranks check that,
per quantity.

    python benchmarks/sbc_latency.py --replications 200 --persons 300

Shapes are fixed across replications (every (segment, bucket, status) row is
present, with zero counts where empty) and the whole NUTS run (warmup and
sampling, numpyro's functional ``hmc`` API) is one jitted function of the
data, so it is compiled once (numpyro's ``MCMC`` re-traced and re-compiled
parts of warmup per run, which leaked compiled code until LLVM ran out of
memory after ~100 replications).
"""

from __future__ import annotations

import argparse
import json
import time
from functools import partial

import numpy as np
from scipy import stats

from gaelp_bayes.inference import setup_jax

QUANTITIES = ("mu_logit", "mu_log_scale", "log_shape", "logit_p", "log_scale", "log_shape_s")


def _full_rows(data, n_segments: int, n_buckets: int):
    """Scatter aggregated rows into a fixed grid of (segment, bucket, status) rows."""
    w = data.bucket_days
    s, b, e = np.meshgrid(
        np.arange(n_segments), np.arange(n_buckets), np.array([False, True]), indexing="ij"
    )
    s, b, e = s.ravel(), b.ravel(), e.ravel()
    count = np.zeros(s.size)
    bi = np.round(data.lo / w).astype(np.int64)
    idx = (data.seg * n_buckets + bi) * 2 + data.event.astype(np.int64)
    np.add.at(count, idx, data.count)
    lo, hi = b * w, (b + 1) * w
    from gaelp_bayes.models.latency import _log_t

    return {
        "seg": s.astype(np.int32),
        "cell": np.zeros(s.size, np.int32),
        "log_lo": _log_t(lo),
        "log_hi": _log_t(hi),
        "event": e,
        "count": count.astype(np.float32),
        "x": np.zeros((1, 0), np.float32),
    }


def run_sbc(
    replications: int = 200,
    persons: int = 300,
    segments: int = 3,
    follow_up_days: float = 40.0,
    bucket_days: float = 1.0,
    warmup: int = 300,
    draws: int = 400,
    thin: int = 4,
    max_tree_depth: int = 10,
    bins: int = 10,
    delay: str = "weibull",
    seed: int = 0,
    progress: bool = True,
) -> dict:
    """Run SBC and return ranks, chi-square and KS p-values per quantity."""
    setup_jax()
    import jax
    from numpyro.infer.hmc import hmc
    from numpyro.infer.util import initialize_model

    from gaelp_bayes.models.latency import (
        LatencyConfig,
        aggregate_times,
        latency_model,
        sample_prior,
        simulate_times,
    )

    cfg = LatencyConfig(delay=delay, bucket_days=bucket_days, parametrization="noncentered")
    n_buckets = int(np.ceil(follow_up_days / bucket_days)) + 1
    prior = sample_prior(cfg, segments, seed=seed, num_samples=replications)
    model = partial(latency_model, n_segments=segments, config=cfg, centered=False)
    rng = np.random.default_rng(seed + 1)

    def rows_of(r: int) -> tuple[dict, dict]:
        truth = {k: v[r] for k, v in prior.items()}
        days, conv, seg = simulate_times(cfg, truth, [persons] * segments, follow_up_days, rng)
        data = aggregate_times(days, conv, seg, cfg, segments=list(range(segments)))
        return truth, _full_rows(data, segments, n_buckets)

    first_truth, first_kw = rows_of(0)
    x = first_kw.pop("x")
    # one compiled NUTS run (warmup + sampling) whose data are arguments: compiled once
    info = initialize_model(
        jax.random.PRNGKey(seed), model, model_kwargs={**first_kw, "x": x}, dynamic_args=True
    )
    init_kernel, sample_kernel = hmc(potential_fn_gen=info.potential_fn, algo="NUTS")
    z0 = jax.tree_util.tree_map(lambda v: v * 0.0, info.param_info.z)  # start at 0 (unconstrained)

    @jax.jit
    def run_one(key, kw):
        kw = {**kw, "x": x}
        state = init_kernel(
            z0,
            num_warmup=warmup,
            target_accept_prob=0.9,
            max_tree_depth=max_tree_depth,
            model_kwargs=kw,
            rng_key=key,
        )

        def step(st, _):
            st = sample_kernel(st, model_kwargs=kw)
            return st, (st.z, st.diverging)

        _, (zs, div) = jax.lax.scan(step, state, None, length=warmup + draws)
        zs = jax.tree_util.tree_map(lambda a: a[warmup::thin], zs)
        post = jax.vmap(lambda z: info.postprocess_fn(**kw)(z))(zs)
        return post, div[warmup:].sum()

    ranks: dict[str, list[np.ndarray]] = {q: [] for q in QUANTITIES}
    divergent = 0
    t0 = time.perf_counter()
    for r in range(replications):
        truth, kw = (first_truth, first_kw) if r == 0 else rows_of(r)
        kw.pop("x", None)
        post, div = run_one(jax.random.PRNGKey(seed * 100_000 + r), kw)
        divergent += int(div)
        for q in QUANTITIES:
            ranks[q].append(np.sum(np.asarray(post[q]) < truth[q][None, ...], axis=0).ravel())
        if progress and (r + 1) % max(1, replications // 10) == 0:
            print(
                f"  {r + 1}/{replications} replications, {time.perf_counter() - t0:.0f} s",
                flush=True,
            )
    n_draws = len(range(0, draws, thin))
    result = {
        "replications": replications,
        "persons_per_segment": persons,
        "segments": segments,
        "delay": delay,
        "posterior_draws": n_draws,
        "divergences": divergent,
        "seconds": time.perf_counter() - t0,
        "quantities": {},
    }
    for q in QUANTITIES:
        rk = np.concatenate(ranks[q])  # pooled over elements (segments) and replications
        hist = np.histogram(rk, bins=bins, range=(-0.5, n_draws + 0.5))[0]
        chi = stats.chisquare(hist)
        u = (rk + np.random.default_rng(seed).random(rk.size)) / (n_draws + 1)
        ks = stats.kstest(u, "uniform")
        result["quantities"][q] = {
            "n": int(rk.size),
            "histogram": hist.tolist(),
            "chi2_p": float(chi.pvalue),
            "ks_p": float(ks.pvalue),
        }
    return result


def _bar(hist: list[int]) -> str:
    top = max(hist) or 1
    return " ".join(f"{h:4d}" + "#" * round(10 * h / top) for h in hist)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--replications", type=int, default=200)
    ap.add_argument("--persons", type=int, default=300, help="persons per segment")
    ap.add_argument("--segments", type=int, default=3)
    ap.add_argument("--delay", default="weibull")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args(argv)
    res = run_sbc(
        replications=args.replications,
        persons=args.persons,
        segments=args.segments,
        delay=args.delay,
        seed=args.seed,
    )
    print(
        f"SBC latency ({res['delay']}): {res['replications']} replications x "
        f"{res['segments']} segments x {res['persons_per_segment']} persons, "
        f"{res['posterior_draws']} thinned draws, {res['divergences']} divergences, "
        f"{res['seconds']:.0f} s"
    )
    for q, v in res["quantities"].items():
        print(
            f"{q:>14}  chi2 p={v['chi2_p']:.3f}  KS p={v['ks_p']:.3f}  ranks: {_bar(v['histogram'])}"
        )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(res, fh, indent=2)
    return res


if __name__ == "__main__":
    main()
