"""Attribution on the example world: incremental conversions per channel against the truth.

For each seed, generates (or reuses, under ``--cache``) a world of
``--persons`` persons, fits the attribution model with the command line's
default person map (devices merged through ``user_id``) and scores, per
channel of ``truth/incremental.json``: our posterior mean of *incremental*
conversions, whether its 90% interval covers the truth, and every
baseline's attributed conversions, all against the same truth. Prints one
Markdown table per seed and the totals (absolute error summed over channels
and seeds; coverage over (channel, seed) cases).

    python benchmarks/attribution_world.py --seeds 1 2 3 --persons 20000
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd


def world(cache: Path, persons: int, seed: int) -> Path:
    from gaelp_bayes.world import get_world, make_world, write_world

    out = cache / f"p{persons}_s{seed}"
    if not (out / "truth" / "incremental.json").exists():
        write_world(make_world(get_world("parental-controls"), persons, 60, seed), out)
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--persons", type=int, default=20_000)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/gaelp_attr_worlds"))
    ap.add_argument("--chains", type=int, default=2)
    ap.add_argument("--draws", type=int, default=500)
    ap.add_argument("--tune", type=int, default=500)
    ap.add_argument("--kernel", default="exponential")
    ap.add_argument("--active-gap-days", type=float, default=0.0)
    ap.add_argument("--no-future-touches", action="store_true")
    ap.add_argument("--activity", default=None, help="attribution.activity (default: the config's)")
    ap.add_argument("--baseline-decay", action="store_true")
    ap.add_argument("--true-map", action="store_true", help="use truth/devices.parquet as map")
    ap.add_argument("--identity-draws", type=int, default=None, help="person-map draws fitted")
    ap.add_argument(
        "--identity",
        action="store_true",
        help="fit the identity model first and use its person-map draws (as `fit` does)",
    )
    a = ap.parse_args(argv)

    from gaelp_bayes.config import Config, SamplerConfig
    from gaelp_bayes.models import attribution as A

    a.cache.mkdir(parents=True, exist_ok=True)
    err: dict[str, float] = {}
    covered = cases = 0
    for seed in a.seeds:
        w = world(a.cache, a.persons, seed)
        ev = pd.read_parquet(w / "events.parquet")
        as_of = pd.Timestamp(json.loads((w / "truth" / "params.json").read_text())["as_of"])
        truth = json.loads((w / "truth" / "incremental.json").read_text())
        pm = None
        if a.true_map:
            pm = pd.read_parquet(w / "truth" / "devices.parquet")[["device_id", "person_id"]]
        elif a.identity:
            from gaelp_bayes.models import identity as I

            t0 = time.perf_counter()
            idm = I.fit(ev, as_of, Config(SamplerConfig(chains=a.chains, seed=seed)))
            pm = idm.tables().get("person_draws", idm.person_map())
            print(f"\nidentity fit {time.perf_counter() - t0:.0f} s")
        cfg = Config(
            SamplerConfig(chains=a.chains, draws=a.draws, tune=a.tune, seed=seed),
            models={
                "attribution": {
                    "kernel": a.kernel,
                    "active_gap_days": a.active_gap_days,
                    "future_touches": not a.no_future_touches,
                    "baseline_decay": a.baseline_decay,
                    **({"activity": a.activity} if a.activity else {}),
                    **({"identity_draws": a.identity_draws} if a.identity_draws else {}),
                }
            },
        )
        t0 = time.perf_counter()
        m = A.fit(ev, as_of, cfg, person_map=pm)
        secs = time.perf_counter() - t0
        s = m.summary()
        d = m.diagnostics()
        print(
            f"\n### seed {seed}: fit {secs:.0f} s, max R-hat {d.max_rhat:.3f}, "
            f"min bulk ESS {d.min_ess_bulk:.0f}, divergences {d.divergences}\n"
        )
        methods = list(s["baselines"])
        print("| channel | truth | ours: incremental [90%] | " + " | ".join(methods) + " |")
        print("| --- " * (3 + len(methods)) + "|")
        for c, tr in truth.items():
            iv = s["channels"].get(c, {}).get("incremental", {"mean": 0.0, "q05": 0.0, "q95": 0.0})
            hit = iv["q05"] <= tr <= iv["q95"]
            covered += hit
            cases += 1
            err["ours"] = err.get("ours", 0.0) + abs(iv["mean"] - tr)
            row = [f"{s['baselines'][m_].get(c, 0.0):.0f}" for m_ in methods]
            for m_ in methods:
                err[m_] = err.get(m_, 0.0) + abs(s["baselines"][m_].get(c, 0.0) - tr)
            print(
                f"| {c} | {tr} | {iv['mean']:.0f} [{iv['q05']:.0f}, {iv['q95']:.0f}]"
                f"{'' if hit else ' (miss)'} | " + " | ".join(row) + " |"
            )
    print("\n### total absolute error over channels and seeds\n")
    print("| method | total abs. error |")
    print("| --- | --- |")
    for k, v in sorted(err.items(), key=lambda kv: kv[1]):
        print(f"| {k} | {v:.0f} |")
    print(f"\n90% interval coverage of the truth: {covered}/{cases} (channel, seed) cases")
    return {"error": err, "covered": covered, "cases": cases}


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
