"""Latency model at scale: NumPyro NUTS vs PyMC's default sampler, same model, same data.

    python benchmarks/latency_bench.py --persons 1000000 --chains 4

Journeys are simulated from the model itself (6 segments, Weibull delays,
cure fractions, uniform follow-up over 60 days), aggregated once into
weighted rows, and both backends sample the same aggregated model with the
same sampler settings. Reported: aggregation time, wall time of each fit
(compilation included), min bulk ESS over the sampled parameters and derived
p_convert / median_days, ESS per second, and their ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np

from gaelp_bayes.inference import setup_jax

TRUE = {
    "logit_p": np.array([-0.7, -1.4, -1.5, -1.7, -1.5, -2.2]),
    "log_scale": np.log(np.array([[2.5], [9.0], [8.0], [12.0], [20.0], [19.0]])),
    "log_shape_s": np.log(np.array([[0.8], [1.1], [1.0], [1.2], [1.3], [1.0]])),
}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--persons", type=int, default=1_000_000)
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--tune", type=int, default=1000)
    ap.add_argument("--follow-up", type=float, default=60.0)
    ap.add_argument("--no-pymc", action="store_true", help="skip the PyMC comparison")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)

    setup_jax(max(args.chains, os.cpu_count() or 1))
    from gaelp_bayes.config import SamplerConfig
    from gaelp_bayes.models.latency import (
        LatencyConfig,
        LatencyModel,
        aggregate_times,
        simulate_times,
    )

    cfg = LatencyConfig()
    rng = np.random.default_rng(args.seed)
    shares = np.array([0.1, 0.2, 0.15, 0.15, 0.22, 0.18])
    per_seg = rng.multinomial(args.persons, shares)
    t0 = time.perf_counter()
    days, conv, seg = simulate_times(cfg, TRUE, per_seg, args.follow_up, rng)
    t_sim = time.perf_counter() - t0
    t0 = time.perf_counter()
    data = aggregate_times(days, conv, np.array([f"s{i}" for i in range(6)])[seg], cfg)
    t_agg = time.perf_counter() - t0
    print(
        f"{args.persons:,} persons ({int(conv.sum()):,} converted by as_of) -> "
        f"{data.seg.size:,} weighted rows; simulate {t_sim:.1f} s, aggregate {t_agg:.1f} s"
    )
    sampler = SamplerConfig(
        chains=args.chains, draws=args.draws, tune=args.tune, seed=args.seed, target_accept=0.9
    )
    out: dict = {
        "persons": args.persons,
        "rows": int(data.seg.size),
        "chains": args.chains,
        "draws": args.draws,
        "tune": args.tune,
        "aggregate_s": t_agg,
        "cpus": os.cpu_count(),
        "machine": platform.platform(),
    }
    backends = ["numpyro"] + ([] if args.no_pymc else ["pymc"])
    for backend in backends:
        smp = SamplerConfig(**{**sampler.__dict__, "backend": backend})
        t0 = time.perf_counter()
        model = LatencyModel(cfg, smp).fit_data(data)
        wall = time.perf_counter() - t0
        d = model.diagnostics()
        p = model.idata.posterior["p_convert"].values.reshape(-1, 6).mean(0)
        out[backend] = {
            "wall_s": wall,
            "min_ess_bulk": d.min_ess_bulk,
            "min_ess_tail": d.min_ess_tail,
            "max_rhat": d.max_rhat,
            "divergences": d.divergences,
            "min_ess_per_s": d.min_ess_bulk / wall,
            "p_convert_mean": [round(float(x), 4) for x in p],
        }
        print(
            f"{backend:>8}: {wall:7.1f} s wall, min bulk ESS {d.min_ess_bulk:7.0f}, "
            f"{d.min_ess_bulk / wall:7.1f} ESS/s, max R-hat {d.max_rhat:.3f}, "
            f"{d.divergences} divergences"
        )
    true_p = 1 / (1 + np.exp(-TRUE["logit_p"]))
    print("true p_convert:", np.round(true_p, 4).tolist())
    if "pymc" in out:
        out["speedup_wall"] = out["pymc"]["wall_s"] / out["numpyro"]["wall_s"]
        out["ess_per_s_ratio"] = out["numpyro"]["min_ess_per_s"] / out["pymc"]["min_ess_per_s"]
        print(
            f"NumPyro vs PyMC: {out['speedup_wall']:.1f}x faster wall time, "
            f"{out['ess_per_s_ratio']:.1f}x min-ESS per second"
        )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=2)
    return out


if __name__ == "__main__":
    main()
