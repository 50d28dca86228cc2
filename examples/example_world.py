"""Generate the example world and compare what the data shows with the truth.

A first look at why the models exist: naive per-segment conversion rates from
censored data understate the true eventual conversion probability, and
last-touch counts are not incremental conversions.

    python examples/example_world.py --persons 20000 --days 60 --seed 1
"""

from __future__ import annotations

import argparse

import pandas as pd

from gaelp_bayes.world import get_world, make_world


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--persons", type=int, default=20_000)
    ap.add_argument("--days", type=int, default=60)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--mc-persons",
        type=int,
        default=50_000,
        help="size of the truth population for latency curves",
    )
    args = ap.parse_args(argv)

    w = make_world(
        get_world("parental-controls"),
        persons=args.persons,
        days=args.days,
        seed=args.seed,
        latency_mc_persons=args.mc_persons,
    )
    ev = w.events.to_pandas()
    ev["person"] = ev.device_id.map(w.devices.set_index("device_id").person_id)
    seen = ev.groupby("person").agg(
        segment=("segment", "first"), converted=("event_type", lambda s: (s == "conversion").any())
    )
    naive = seen.groupby("segment").converted.mean()
    truth = pd.Series({k: v["p_convert"] for k, v in w.params["segments"].items()})
    table = pd.DataFrame({"naive converted by as_of": naive, "true P(eventual)": truth}).round(3)
    print("SYNTHETIC example world; conversion by segment")
    print(table.to_string())

    conv = ev[ev.event_type == "conversion"].drop_duplicates("person")
    clicks = ev[ev.event_type == "click"]
    last = (
        clicks.merge(conv[["person", "timestamp"]], on="person", suffixes=("", "_conv"))
        .query("timestamp <= timestamp_conv")
        .sort_values("timestamp")
        .drop_duplicates("person", keep="last")
        .channel.value_counts()
    )
    inc = pd.Series(w.incremental)
    print("\nper channel: last-click conversions vs true incremental conversions")
    print(
        pd.DataFrame({"last click": last, "true incremental": inc})
        .fillna(0)
        .astype(int)
        .to_string()
    )
    return {"naive": naive.to_dict(), "truth": truth.to_dict(), "incremental": w.incremental}


if __name__ == "__main__":
    main()
