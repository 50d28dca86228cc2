"""Simulator throughput: JAX (jit, lax.scan, vmap) vs a per-auction Python loop.

Both simulate the same dynamics from the example world's true parameters
under its logged bidding policy: persons arriving over ``--days`` days and
followed 30 more days, hourly; per person, channel and hour a Poisson number
of auctions, each with a jittered bid, a log-normal competing bid, a second
price with floor, a click, gamma-kernel touch effects and an organic
intensity, and the first conversion ending the bidding. Throughput is
simulated person-hours per second (persons x hours of the horizon, for both).
The Python loop is the straightforward implementation: one auction at a time,
the cumulative intensity as a sum over the person's touches (scipy's gamma
CDF) each hour.

    python benchmarks/sim_bench.py [--persons 3000] [--loop-persons 150] [--days 14] [--repeats 3]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import numpy as np


def python_loop(p, bids: np.ndarray, noise: float, persons: int, follow_days: int, seed: int):
    """Per-auction, per-person simulation in plain Python (the baseline)."""
    from scipy.special import gammainc

    rng = np.random.default_rng(seed)
    days, hours_per_day = bids.shape[0], 24
    horizon = (days + follow_days) * hours_per_day
    arrival_rate = np.asarray(p.arrival_rate, float)
    seg_p = arrival_rate / arrival_rate.sum()
    S, C = len(p.segments), len(p.channels)
    opp = np.asarray(p.opp_rate, float)
    popp, pctr = np.asarray(p.profile_opp, float), np.asarray(p.profile_ctr, float)
    pprob = np.asarray(p.profile_prob, float)
    ctr = np.asarray(p.ctr, float)
    beta = np.asarray(p.beta, float)
    loc, sig = np.asarray(p.bid_loc, float)[:, :, 0], np.asarray(p.bid_sigma, float)[:, 0]
    floor = np.asarray(p.floor, float)
    kshape, kscale = np.asarray(p.kernel_shape, float), np.asarray(p.kernel_scale, float)
    spend = wins = clicks = conversions = 0.0
    for _ in range(persons):
        s = rng.choice(S, p=seg_p)
        prof = rng.choice(pprob.shape[1], p=pprob[s])
        arrival = rng.uniform(0, days) * 24
        window = rng.gamma(float(p.window_shape[s]), float(p.window_mean[s] / p.window_shape[s]))
        end = arrival + window * 24
        in_market = rng.random() < p.in_market[s]
        threshold = rng.exponential()
        t_touch, b_touch, c_touch = [], [], []
        converted = False
        for hour in range(horizon):
            expo = max(0.0, min(hour + 1, end) - max(hour, arrival))
            if expo > 0 and not converted and hour < days * 24:
                day, hod = divmod(hour, 24)
                for c in range(C):
                    n = rng.poisson(opp[s, c, hod] * popp[prof, c] * expo)
                    for _a in range(n):
                        bid = bids[day, hod, c, s] * math.exp(noise * rng.standard_normal())
                        comp = math.exp(loc[c, hod] + sig[c] * rng.standard_normal())
                        if bid > max(comp, floor[c]):
                            price = max(comp, floor[c])
                            spend += price
                            wins += 1
                            tt = hour + rng.random()
                            t_touch.append(tt), b_touch.append(beta[s, c, 0]), c_touch.append(c)
                            if rng.random() < min(ctr[s, c] * pctr[prof, c], 1.0):
                                clicks += 1
                                t_touch.append(tt), b_touch.append(beta[s, c, 1])
                                c_touch.append(c)
            if converted or not in_market:
                continue
            x = (hour + 1) / 24
            organic = p.alpha[s] * max(0.0, min(x * 24, end) - arrival) / 24
            h = organic
            if t_touch:
                ci = np.asarray(c_touch)
                dt = np.maximum(x - np.asarray(t_touch) / 24, 0.0)
                h += float(np.sum(np.asarray(b_touch) * gammainc(kshape[ci], dt / kscale[ci])))
            if h >= threshold:
                converted = True
                conversions += 1
    return {"spend": spend, "wins": wins, "clicks": clicks, "conversions": conversions}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--persons", type=int, default=3000, help="JAX population per rollout")
    ap.add_argument("--loop-persons", type=int, default=150, help="persons for the Python loop")
    ap.add_argument("--days", type=int, default=14)
    ap.add_argument("--follow-days", type=int, default=30)
    ap.add_argument("--draws", type=int, default=8, help="draws for the vmapped run")
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args(argv)

    import jax

    from gaelp_bayes.sim import as_jax, logged_policy, stack, world_params
    from gaelp_bayes.sim.core import capacity, simulate, simulate_draws
    from gaelp_bayes.world import get_world

    pj = {"spec": get_world("parental-controls").to_dict(), "persons": a.persons, "days": a.days}
    p64 = world_params(pj)
    p = as_jax(p64)
    bids, noise = logged_policy(pj, a.days)
    n = capacity(p, a.days)
    hours = (a.days + a.follow_days) * 24

    def run_jax(seed: int):
        out = simulate(p, bids, np.inf, jax.random.key(seed), n_max=n, bid_noise=noise,
                       follow_days=a.follow_days)  # fmt: skip
        jax.block_until_ready(out)
        return out

    t0 = time.perf_counter()
    run_jax(0)
    compile_s = time.perf_counter() - t0
    jax_times, jax_cpu, jax_out = [], [], None
    for r in range(a.repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        jax_out = run_jax(r + 1)
        jax_times.append(time.perf_counter() - t0)
        jax_cpu.append(time.process_time() - c0)
    jax_ph = n * hours / statistics.median(jax_times)

    stacked = as_jax(stack([world_params(pj)] * a.draws))

    def run_draws(seed: int):
        out = simulate_draws(stacked, bids, np.inf, jax.random.key(seed), n_max=n,
                             bid_noise=noise, follow_days=a.follow_days)  # fmt: skip
        jax.block_until_ready(out)

    run_draws(0)
    draw_times = []
    for r in range(a.repeats):
        t0 = time.perf_counter()
        run_draws(r + 1)
        draw_times.append(time.perf_counter() - t0)
    draws_ph = a.draws * n * hours / statistics.median(draw_times)

    loop_times, loop_cpu, loop_out = [], [], None
    for r in range(max(1, a.repeats - 1)):
        t0, c0 = time.perf_counter(), time.process_time()
        loop_out = python_loop(p64, np.asarray(bids), noise, a.loop_persons, a.follow_days, r)
        loop_times.append(time.perf_counter() - t0)
        loop_cpu.append(time.process_time() - c0)
    loop_ph = a.loop_persons * hours / statistics.median(loop_times)

    persons_jax = float(jax_out.persons)
    print(f"horizon: {a.days} days + {a.follow_days} follow-up = {hours} hours; JAX slots {n}")
    print(f"jax simulate   : compile {compile_s:.1f} s, median {statistics.median(jax_times):.2f} s "
          f"-> {jax_ph:,.0f} person-hours/s")  # fmt: skip
    print(f"jax x{a.draws} draws : median {statistics.median(draw_times):.2f} s "
          f"-> {draws_ph:,.0f} person-hours/s")  # fmt: skip
    print(f"python loop    : {a.loop_persons} persons, median {statistics.median(loop_times):.2f} s "
          f"-> {loop_ph:,.0f} person-hours/s")  # fmt: skip
    print(f"ratio (jax simulate / python loop): {jax_ph / loop_ph:,.0f}x; "
          f"vmapped draws / python loop: {draws_ph / loop_ph:,.0f}x")  # fmt: skip
    cpu_ratio = (a.loop_persons / statistics.median(loop_cpu)) / (n / statistics.median(jax_cpu))
    print(f"ratio in CPU time (all threads of the process): {1 / cpu_ratio:,.0f}x "
          f"(jax {statistics.median(jax_cpu):.2f} s CPU, loop {statistics.median(loop_cpu):.2f} s)")  # fmt: skip
    print("per person (sanity, same dynamics):")
    for k in ("spend", "wins", "clicks", "conversions"):
        print(f"  {k:12s} jax {float(getattr(jax_out, k).sum()) / persons_jax:8.4f}   "
              f"loop {loop_out[k] / a.loop_persons:8.4f}")  # fmt: skip


if __name__ == "__main__":
    main()
