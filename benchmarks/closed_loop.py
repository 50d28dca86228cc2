"""Closed-loop benchmark (issue 9): 4 weeks in the TRUE example world, policies side by side.

Every policy meets the same persons (one true-world population, same keys),
is executed day by day in the journey simulator under the world's true
parameters (``sim.from_world``) with the budget stop, and is scored by the
eventual first conversions of the horizon's persons (30 days of follow-up):

* ``closed loop``: plan from the bundle, execute a day, observe spend, cheap
  conjugate update of an opportunity scale, re-plan weekly with the executed
  days fixed (gaelp_bayes.plan.loop.SpendCalibratedPlanner);
* ``static plan``: the bundle's plan for the whole horizon, never updated;
* ``posterior mean``, ``flat bid``, ``thompson``, ``logged uniform``: the
  baselines of gaelp_bayes.plan.baselines, static;
* ``ppo``: the model-free baseline (``rl`` extra): PPO trained for
  ``--ppo-steps`` hourly steps in the posterior simulator (episodes of
  posterior draws, gaelp_bayes.plan.ppo), then acting every hour in the true
  world on what an advertiser observes (skipped with ``--ppo-steps 0`` or
  without stable-baselines3);
* ``oracle``: the same planner given the true parameters.

Usage::

    python benchmarks/closed_loop.py --world WORLD --bundle BUNDLE --budget 4000 --days 28 \
        [--seeds 1 2] [--plot docs/closed_loop.png]
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--world", required=True)
    ap.add_argument("--bundle", required=True)
    ap.add_argument("--budget", type=float, default=4000.0)
    ap.add_argument("--days", type=int, default=28)
    ap.add_argument("--draws", type=int, default=16)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1])
    ap.add_argument("--plot", default=None)
    ap.add_argument("--ppo-steps", type=int, default=40320)
    a = ap.parse_args(argv)

    from gaelp_bayes.plan import baselines as bl
    from gaelp_bayes.plan import fluid
    from gaelp_bayes.plan.loop import AlignedPolicy, SpendCalibratedPlanner, run_loop, static_policy
    from gaelp_bayes.plan.planner import plan_schedule
    from gaelp_bayes.plan.run import load_params
    from gaelp_bayes.sim import from_world

    t0 = time.perf_counter()
    truth = from_world(a.world)
    b, p = load_params(a.bundle, a.draws, 0)
    ci = [p.channels.index(c) for c in truth.channels]
    si = [p.segments.index(s) for s in truth.segments]

    def aligned(x):
        return np.asarray(x)[:, :, ci][:, :, :, si]

    fd = fluid.prepare(p, a.days)
    logged, _ = bl.logged_bids(b, p.channels)
    static = {
        "static plan": plan_schedule(p, a.budget, a.days).bids,
        "posterior mean": bl.posterior_mean(p, a.budget, a.days, replicate=a.draws),
        "flat bid": bl.flat_bid(p, a.budget, a.days, fd),
        "thompson": bl.thompson(p, a.budget, a.days, 0, fd),
        "logged uniform": bl.uniform_logged(p, logged, a.budget, a.days, fd),
    }
    oracle = plan_schedule(truth, a.budget, a.days).bids
    ppo = None
    if a.ppo_steps > 0:
        try:
            from gaelp_bayes.plan.ppo import train_ppo

            t1 = time.perf_counter()
            ppo = train_ppo(p, a.budget, a.days, steps=a.ppo_steps, seed=0)
            print(f"PPO: {a.ppo_steps} steps trained in {time.perf_counter() - t1:.0f} s")
        except Exception as e:  # the rl extra is optional
            print(f"PPO skipped: {e}")
    results: dict[str, list] = {}
    for seed in a.seeds:
        pols = {
            "closed loop": AlignedPolicy(
                SpendCalibratedPlanner(p, a.budget, a.days, seed=seed), ci, si
            )
        }
        pols.update({k: static_policy(aligned(v)) for k, v in static.items()})
        if ppo is not None:
            pols["ppo"] = AlignedPolicy(ppo, ci, si)
        pols["oracle"] = static_policy(oracle)
        for name, pol in pols.items():
            results.setdefault(name, []).append(run_loop(truth, pol, a.budget, a.days, seed=seed))
    weeks = [d for d in (7, 14, 21, 28) if d <= a.days]
    print(
        f"{a.days} days in the true world, budget {a.budget:g}, seeds {a.seeds}, "
        f"{a.draws} posterior draws ({time.perf_counter() - t0:.0f} s)"
    )
    head = " ".join(f"{'conv d' + str(w):>10s}" for w in weeks)
    print(f"{'policy':16s} {head} {'eventual':>9s} {'% oracle':>8s} {'spend':>8s}")
    ref = np.mean([r.conversions for r in results["oracle"]])
    for name, rs in results.items():
        cum = np.mean([np.cumsum(r.conversions_by_day) for r in rs], axis=0)
        ev = np.mean([r.conversions for r in rs])
        sp = np.mean([r.spend for r in rs])
        cols = " ".join(f"{cum[w - 1]:10.1f}" for w in weeks)
        print(f"{name:16s} {cols} {ev:9.1f} {100 * ev / ref:7.1f}% {sp:8.1f}")
    if a.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 4))
        for name, rs in results.items():
            cum = np.mean([np.cumsum(r.conversions_by_day) for r in rs], axis=0)
            ax.plot(np.arange(1, cum.size + 1), cum, label=name)
        ax.axvline(a.days, color="grey", lw=0.5)
        ax.set_xlabel("day (ads stop at the vertical line; 30 days of follow-up)")
        ax.set_ylabel("cumulative first conversions (true world)")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(a.plot, dpi=100)


if __name__ == "__main__":
    main()
