"""Fit the latency model to the example world and compare with the truth.

Builds person journeys (first touch, first conversion or censoring at as_of),
fits the hierarchical mixture-cure model, and prints per segment the
posterior P(eventual conversion), median days to convert and P(converted
within 7 / 30 days) next to the world's true values, plus the nowcast of
conversions still to come from open journeys.

    python examples/latency_example.py --persons 20000 --days 60 --seed 1
"""

from __future__ import annotations

import argparse

import pandas as pd

from gaelp_bayes.config import Config, SamplerConfig
from gaelp_bayes.inference import setup_jax


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--persons", type=int, default=20_000)
    ap.add_argument("--days", type=int, default=60)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--mc-persons", type=int, default=50_000, help="truth population size")
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--tune", type=int, default=1000)
    ap.add_argument("--delay", default="weibull", help="weibull, loglogistic or lognormal")
    ap.add_argument(
        "--user-id-only",
        action="store_true",
        help="stitch devices by shared user_id only (no identity model), as `fit` does alone",
    )
    args = ap.parse_args(argv)

    setup_jax()
    from gaelp_bayes.models.latency import fit as fit_latency
    from gaelp_bayes.world import get_world, make_world

    w = make_world(
        get_world("parental-controls"),
        persons=args.persons,
        days=args.days,
        seed=args.seed,
        latency_mc_persons=args.mc_persons,
    )
    config = Config(
        sampler=SamplerConfig(draws=args.draws, tune=args.tune, seed=args.seed),
        models={"latency": {"delay": args.delay}},
    )
    person_map = None if args.user_id_only else w.devices[["device_id", "person_id"]]
    model = fit_latency(w.events.to_pandas(), w.as_of, config, person_map=person_map)
    s = model.summary()

    rows = []
    for seg, b in s["segments"].items():
        truth = w.params["segments"].get(seg, {})
        curve = w.latency.get(seg, {})
        rows.append(
            {
                "segment": seg,
                "persons": b["persons"],
                "p_convert": f"{b['p_convert']['mean']:.3f} [{b['p_convert']['q05']:.3f}, {b['p_convert']['q95']:.3f}]",
                "true p": truth.get("p_convert"),
                "median days": f"{b['median_days']['mean']:.1f} [{b['median_days']['q05']:.1f}, {b['median_days']['q95']:.1f}]",
                "true median": truth.get("median_days"),
                "P(<=7d)": round(b["cdf"]["mean"][6], 3),
                "true 7d": curve.get("7"),
                "P(<=30d)": round(b["cdf"]["mean"][29], 3),
                "true 30d": curve.get("30"),
            }
        )
    table = pd.DataFrame(rows).set_index("segment")
    print("SYNTHETIC example world: latency posterior (mean [90% interval]) vs truth")
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table.to_string())
    nc = s["nowcast"]
    print(
        f"\nnowcast: {nc['open_journeys']} journeys open at as_of; conversions expected in the "
        f"next {nc['horizon_days']:g} days: {nc['predicted_conversions']['mean']:.0f} "
        f"[{nc['predicted_conversions']['q05']:.0f}, {nc['predicted_conversions']['q95']:.0f}], "
        f"eventually: {nc['eventual_predicted_conversions']['mean']:.0f}"
    )
    d = model.diagnostics()
    print(
        f"diagnostics: max R-hat {d.max_rhat:.3f}, min bulk ESS {d.min_ess_bulk:.0f}, "
        f"{d.divergences} divergences"
    )
    return {"summary": s, "table": table}


if __name__ == "__main__":
    main()
