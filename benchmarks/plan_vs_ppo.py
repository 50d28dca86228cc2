"""The plan vs the model-free PPO baseline vs the oracle, executed in the TRUE world.

For each (world, bundle) pair: the plan is computed from the bundle's
posterior (``plan_schedule``, as ``gaelp-bayes plan`` does), PPO is trained
in the same posterior's simulator (gaelp_bayes.plan.ppo, ``rl`` extra), the
oracle is the planner given the world's true parameters; all three are then
executed day by day (PPO hour by hour) in the true world by
``gaelp_bayes.plan.loop.run_loop`` over ``--replicates`` populations (the
same persons and random numbers for the three), with the budget stop.
Eventual first conversions (30 days of follow-up) are compared.

    python benchmarks/plan_vs_ppo.py --pairs WORLD1:BUNDLE1 WORLD2:BUNDLE2 \
        --budget 2000 --days 14 --ppo-steps 40320 --replicates 8
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--pairs", nargs="+", required=True, help="WORLD:BUNDLE")
    ap.add_argument("--budget", type=float, default=2000.0)
    ap.add_argument("--days", type=int, default=14)
    ap.add_argument("--draws", type=int, default=16)
    ap.add_argument("--ppo-steps", type=int, default=40320)
    ap.add_argument("--replicates", type=int, default=8)
    a = ap.parse_args(argv)

    from gaelp_bayes.plan.loop import AlignedPolicy, run_loop, static_policy
    from gaelp_bayes.plan.planner import plan_schedule
    from gaelp_bayes.plan.ppo import train_ppo
    from gaelp_bayes.plan.run import load_params
    from gaelp_bayes.sim import from_world

    print("| world | policy | true conv. (mean +- sd) | % oracle | spend (max) | train (s) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for pair in a.pairs:
        world, bundle = pair.split(":", 1)
        truth = from_world(world)
        _, p = load_params(bundle, a.draws, 0)
        ci = [p.channels.index(c) for c in truth.channels]
        si = [p.segments.index(s) for s in truth.segments]
        plan = np.asarray(plan_schedule(p, a.budget, a.days).bids)[:, :, ci][:, :, :, si]
        t0 = time.perf_counter()
        ppo = train_ppo(p, a.budget, a.days, steps=a.ppo_steps, seed=0)
        train_s = time.perf_counter() - t0

        pols = {
            "oracle": static_policy(plan_schedule(truth, a.budget, a.days).bids),
            "plan": static_policy(plan),
            "ppo": AlignedPolicy(ppo, ci, si),
        }
        res = {
            k: [run_loop(truth, pol, a.budget, a.days, seed=r) for r in range(a.replicates)]
            for k, pol in pols.items()
        }
        ref = np.mean([r.conversions for r in res["oracle"]])
        for k, rs in res.items():
            c = np.array([r.conversions for r in rs])
            sp = max(r.spend for r in rs)
            tr = f"{train_s:.0f}" if k == "ppo" else ""
            print(
                f"| {world} | {k} | {c.mean():.1f} +- {c.std(ddof=1):.1f} | "
                f"{100 * c.mean() / ref:.1f}% | {sp:,.1f} | {tr} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
