"""Benchmark of `gaelp-bayes plan` (issue 9): wall time, and the planner vs a CEM baseline.

1. ``gaelp-bayes plan BUNDLE --budget B --days D`` in a fresh process (imports,
   JIT compilation, planning, baselines, simulation of the summary), ``--repeats``
   times; medians, and the same with ``--no-baselines``.
2. In one process, the dual best-response planner (gaelp_bayes.plan.planner)
   vs a cross-entropy method (CEM) over one log-bid multiplier per channel x
   segment (times the channel's median competing bid; budget by penalty, then
   the same exact pacing), both on the same fluid model and posterior draws:
   time and expected conversions (fluid model), and each schedule simulated
   in the journey simulator under other posterior draws (same persons).

Usage::

    python benchmarks/plan_bench.py --bundle BUNDLE --budget 2000 --days 14 [--repeats 3]

The target: 14 days x 24 hours x 5 channels x 6 segments under 60 s on 2 cores.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def time_cli(
    bundle: str, budget: float, days: int, extra: list[str], repeats: int, cache: str
) -> list[float]:
    """Wall seconds of fresh `gaelp-bayes plan` processes (``cache``: compilation cache dir)."""
    import os

    env = {**os.environ, "GAELP_BAYES_JAX_CACHE": cache}
    out = []
    for r in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [
                sys.executable, "-m", "gaelp_bayes.cli.main", "plan", bundle,
                "--budget", str(budget), "--days", str(days),
                "--out", str(Path(tmp) / "s.csv"), "--quiet", "--seed", str(r), *extra,
            ]  # fmt: skip
            t = time.perf_counter()
            subprocess.run(cmd, check=True, env=env)
            out.append(time.perf_counter() - t)
    return out


def cem(params, budget, days, *, pop=64, elite=8, iters=20, seed=0):
    """CEM over theta[c, s] (log multipliers of the median competing bid), fluid model."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from gaelp_bayes.plan import fluid
    from gaelp_bayes.plan.planner import pace

    fd = fluid.prepare(params, days)
    base = np.exp(np.median(np.asarray(params.bid_loc), axis=(0, 2, 3)))  # (C,)
    C, S = params.n_channels, params.n_segments

    def bids_of(theta):
        b = base[:, None] * jnp.exp(theta)  # (C, S)
        return jnp.broadcast_to(b[None, None], (days, 24, C, S))

    @jax.jit
    def score(thetas, mu_pen):
        def one(th):
            t = fluid.totals(fd, bids_of(th))
            over = jnp.maximum(jnp.mean(t.spend) - budget, 0.0)
            return jnp.mean(t.conversions) - mu_pen * over

        return jax.vmap(one)(thetas)

    # penalty rate: more than any conversion per unit of spend the plan could buy
    t0 = fluid.totals_jit(fd, bids_of(jnp.zeros((C, S))))
    mu_pen = float(10.0 * jnp.mean(t0.conversions) / max(float(jnp.mean(t0.spend)), 1e-9))
    rng = np.random.default_rng(seed)
    m, sd = np.zeros((C, S)), np.full((C, S), 1.5)
    for _ in range(iters):
        th = m + sd * rng.standard_normal((pop, C, S))
        sc = np.asarray(score(jnp.asarray(th, jnp.float32), mu_pen))
        el = th[np.argsort(sc)[-elite:]]
        m, sd = el.mean(0), el.std(0) + 0.02
    return pace(fd, np.asarray(bids_of(jnp.asarray(m, jnp.float32))), budget)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--bundle", required=True)
    ap.add_argument("--budget", type=float, default=2000.0)
    ap.add_argument("--days", type=int, default=14)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip-cli", action="store_true")
    a = ap.parse_args(argv)

    if not a.skip_cli:
        cold = time_cli(a.bundle, a.budget, a.days, [], a.repeats, "off")
        with tempfile.TemporaryDirectory() as cache:
            time_cli(a.bundle, a.budget, a.days, [], 1, cache)  # fills the cache
            warm = time_cli(a.bundle, a.budget, a.days, [], a.repeats, cache)
        nob = time_cli(a.bundle, a.budget, a.days, ["--no-baselines"], a.repeats, "off")
        med = statistics.median
        print(f"plan CLI, no compilation cache:     median {med(cold):.1f} s {cold}")
        print(f"plan CLI, warm compilation cache:   median {med(warm):.1f} s {warm}")
        print(f"plan CLI, no cache, --no-baselines: median {med(nob):.1f} s {nob}")
        print(f"ratio cold / warm cache: {med(cold) / med(warm):.2f}", flush=True)

    import numpy as np

    from gaelp_bayes.plan import fluid
    from gaelp_bayes.plan.evaluate import simulate_schedules
    from gaelp_bayes.plan.planner import plan_schedule
    from gaelp_bayes.plan.run import load_params
    from gaelp_bayes.sim.params import take

    _, allp = load_params(a.bundle, 80, 0)
    plan_p, eval_p = take(allp, np.arange(0, 80, 2)), take(allp, np.arange(1, 80, 2))
    fd = fluid.prepare(plan_p, a.days)
    rows = []
    for name, fn in (
        ("dual best response", lambda: plan_schedule(plan_p, a.budget, a.days).bids),
        ("CEM (C x S multipliers)", lambda: cem(plan_p, a.budget, a.days)),
    ):
        fn()  # compile
        times = []
        for _ in range(a.repeats):
            t = time.perf_counter()
            bids = fn()
            times.append(time.perf_counter() - t)
        ft = fluid.totals_jit(fd, bids)
        rows.append((name, statistics.median(times), float(np.mean(ft.conversions)),
                     float(np.mean(ft.spend)), bids))  # fmt: skip
    ev = simulate_schedules(eval_p, {r[0]: r[4] for r in rows}, a.budget, seed=1, mode="mean")
    print(f"\n{a.days} days x 24 h x {allp.n_channels} channels x {allp.n_segments} segments, "
          f"budget {a.budget:g}, 40 planning draws, 40 other draws simulated (mean mode)")  # fmt: skip
    print(f"{'planner':26s} {'time s':>7s} {'fluid conv':>10s} {'fluid spend':>11s} "
          f"{'sim conv':>9s} {'sim spend':>9s}")  # fmt: skip
    for name, tm, conv, spend, _ in rows:
        s = ev.totals[name]
        print(f"{name:26s} {tm:7.2f} {conv:10.1f} {spend:11.1f} {s['conversions'].mean():9.1f} "
              f"{s['spend'].mean():9.1f}")  # fmt: skip
    print(f"ratio time CEM / DBR: {rows[1][1] / rows[0][1]:.2f}; "
          f"conversions DBR / CEM (simulated): "
          f"{ev.totals[rows[0][0]]['conversions'].mean() / ev.totals[rows[1][0]]['conversions'].mean():.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
