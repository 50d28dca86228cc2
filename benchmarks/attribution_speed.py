"""Attribution fitting time: NUTS at 100,000 persons, SVI at 1,000,000 persons.

Persons are simulated from the model's generative process (touch rates and
effect sizes like the example world's: about 13 touches and 8% converters
per person); the example world itself costs minutes of generation per
100,000 persons, and the fit only sees touches. Prints, per size, the time
to prepare the data (binning) and to fit, and compares with the same fit
on a tenth of the persons in the same run (how cost grows).

    python benchmarks/attribution_speed.py --nuts-persons 100000 --svi-persons 1000000

``--prepare-persons N`` (with ``--nuts-persons 0 --svi-persons 0``) times
only the data preparation at ``N`` persons for each activity model
(median of ``--repeats``) and prints the ratio to the exponential one.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def simulated(persons: int, seed: int):
    from gaelp_bayes.models import attribution as A

    S, C, K = 6, 6, 3
    rng = np.random.default_rng(seed)
    params = {
        "alpha": rng.uniform(0.001, 0.004, S),
        "beta": np.exp(rng.normal(np.log(0.01), 0.5, (S, C, K))),
        "kernel_scale_days": rng.uniform(0.8, 3.0, C),
        "kernel_shape": np.ones(C),
    }
    per = np.full(S, persons // S)
    t, _ = A.simulate(
        params,
        per,
        np.array([0.15, 0.1, 0.08, 0.06, 0.03, 0.03]),
        np.array([0.85, 0.05, 0.1]),
        60.0,
        rng,
        counterfactual=False,
    )
    return t


def fit_time(persons: int, method: str, a) -> tuple[float, float, object]:
    from gaelp_bayes.config import SamplerConfig
    from gaelp_bayes.models import attribution as A

    t = simulated(persons, a.seed)
    t0 = time.perf_counter()
    A.prepare(t, A.AttributionConfig())
    prep = time.perf_counter() - t0
    smp = SamplerConfig(
        chains=a.chains if method == "nuts" else 1,
        draws=a.draws,
        tune=a.tune,
        method=method,
        svi_steps=a.svi_steps,
        seed=a.seed,
    )
    t0 = time.perf_counter()
    m = A.AttributionModel(A.AttributionConfig(), smp).fit(t)
    return prep, time.perf_counter() - t0, (t, m)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nuts-persons", type=int, default=100_000)
    ap.add_argument("--svi-persons", type=int, default=1_000_000)
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--draws", type=int, default=500)
    ap.add_argument("--tune", type=int, default=500)
    ap.add_argument("--svi-steps", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--skip-tenth", action="store_true", help="do not fit a tenth of the persons first"
    )
    ap.add_argument("--prepare-persons", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args(argv)
    from gaelp_bayes.inference import setup_jax

    if a.prepare_persons > 0:
        import statistics

        from gaelp_bayes.models import attribution as A

        t = simulated(a.prepare_persons, a.seed)
        secs = {}
        for family in ("exponential", "weibull"):
            runs = []
            for _ in range(a.repeats):
                t0 = time.perf_counter()
                A.prepare(t, A.AttributionConfig(activity=family))
                runs.append(time.perf_counter() - t0)
            secs[family] = statistics.median(runs)
            print(f"prepare, activity {family}: median {secs[family]:.1f} s of {a.repeats}")
        print(f"ratio weibull / exponential: {secs['weibull'] / secs['exponential']:.1f}")

    setup_jax()
    for method, n in (("nuts", a.nuts_persons), ("svi", a.svi_persons)):
        if n <= 0:
            continue
        small = None if a.skip_tenth else fit_time(max(n // 10, 1000), method, a)
        big = fit_time(n, method, a)
        t, m = big[2]
        d = m.diagnostics()
        print(
            f"{method}: {n} persons, {t.n_touches} touches, {t.conversions} conversions: "
            f"prepare {big[0]:.1f} s, fit {big[1]:.0f} s (incl. derived quantities); "
            + (
                f"a tenth of the persons: fit {small[1]:.0f} s; ratio {big[1] / small[1]:.1f}; "
                if small
                else ""
            )
            + f"max R-hat {d.max_rhat:.3f}, min bulk ESS {d.min_ess_bulk:.0f}, "
            f"divergences {d.divergences}"
        )


if __name__ == "__main__":
    main()
