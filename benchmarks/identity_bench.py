"""Identity benchmark: accuracy and calibration on example worlds, Splink side by side, scale.

    python benchmarks/identity_bench.py --persons 20000 --seeds 1 2 3           # accuracy + Splink
    python benchmarks/identity_bench.py --scale-events /tmp/ev1m.parquet        # scale run

For each seed it generates the example world (SYNTHETIC; see
docs/example-world.md), fits the identity model, and reports pairwise
precision, recall and F1 at p >= 0.5 against truth/devices.parquet, blocking
recall (all true pairs and known links), and the expected calibration error of
the link probabilities over candidate pairs. Splink (DuckDB backend; a
benchmark-only dependency) links the same devices in the same run; both F1s
and wall times are reported, with the ratio.

The scale run reads an events Parquet file (e.g. a 540,000-person world, about
a million devices) and reports wall time and peak memory of blocking, fit and
clustering.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import numpy as np
import pandas as pd

from gaelp_bayes.config import Config, SamplerConfig
from gaelp_bayes.identity.evaluate import pairwise_scores


def _peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def run_ours(events: pd.DataFrame, truth: pd.DataFrame, sampler: SamplerConfig) -> dict:
    from gaelp_bayes.models.identity import fit

    t0 = time.perf_counter()
    model = fit(events, events["timestamp"].max(), Config(sampler=sampler))
    links = model.tables()["links"]
    wall = time.perf_counter() - t0
    sc = pairwise_scores(links, truth, devices=model.device_ids)
    rep = model.blocking_report()
    diag = model.diagnostics()
    return {
        **sc,
        "recall_on_known_links": rep["recall_on_known_links"],
        "wall_s": wall,
        "timings": model.timings,
        "max_rhat": diag.max_rhat,
        "min_ess_bulk": diag.min_ess_bulk,
        "divergences": diag.divergences,
        "persons": model.summary()["persons"],
    }


def _device_records(events: pd.DataFrame, max_devices_per_prefix: int = 12) -> pd.DataFrame:
    """One record per device for Splink: uncrowded prefixes, modal attributes, activity."""
    ev = events.copy()
    ev["day"] = ev["timestamp"].dt.floor("D")
    n_dev = ev.groupby("ip_prefix")["device_id"].nunique()
    rare = set(n_dev.index[n_dev <= max_devices_per_prefix])
    pref = (
        ev[ev["ip_prefix"].isin(rare)]
        .groupby("device_id")["ip_prefix"]
        .agg(lambda s: sorted(set(s)))
        .rename("prefixes")
    )

    def mode(s):
        s = s.dropna()
        return s.mode().iloc[0] if len(s) else None

    g = ev.groupby("device_id")
    days = (ev["timestamp"] - ev["timestamp"].min()).dt.total_seconds() / 86400
    ev["d"] = days
    rec = pd.DataFrame(
        {
            "geo": g["geo"].agg(mode),
            "user_agent": g["user_agent"].agg(mode),
            "device_type": g["device_type"].agg(mode),
            "segment": g["segment"].agg(mode) if "segment" in ev else None,
            "user_id": g["user_id"].agg(mode),
            "mid_day": ev.groupby("device_id")["d"].median(),
        }
    ).join(pref)
    rec["prefixes"] = rec["prefixes"].apply(lambda x: x if isinstance(x, list) else [])
    rec["home_prefix"] = rec["prefixes"].apply(lambda x: x[0] if x else None)
    return rec.reset_index().rename(columns={"device_id": "unique_id"})


def run_splink(events: pd.DataFrame, truth: pd.DataFrame) -> dict:
    """Splink 4/5 on the same devices: its usual workflow (u by sampling, m by EM)."""
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl
    from splink import DuckDBAPI, Linker, SettingsCreator, block_on

    t0 = time.perf_counter()
    rec = _device_records(events)
    db = DuckDBAPI()
    settings = SettingsCreator(
        link_type="dedupe_only",
        comparisons=[
            cl.ArrayIntersectAtSizes("prefixes", [2, 1]),
            cl.ExactMatch("geo"),
            cl.ExactMatch("user_agent"),
            cl.ExactMatch("segment"),
            cl.CustomComparison(
                output_column_name="mid_day",
                comparison_levels=[
                    cll.NullLevel("mid_day"),
                    cll.AbsoluteDifferenceLevel("mid_day", 1.0),
                    cll.AbsoluteDifferenceLevel("mid_day", 3.0),
                    cll.AbsoluteDifferenceLevel("mid_day", 7.0),
                    cll.ElseLevel(),
                ],
            ),
        ],
        blocking_rules_to_generate_predictions=[
            block_on("prefixes", arrays_to_explode=["prefixes"]),
            block_on("user_id"),
        ],
        retain_matching_columns=True,
    )
    linker = Linker(db.register(rec), settings, log_level=40)
    linker.training.estimate_probability_two_random_records_match([block_on("user_id")], recall=0.6)
    linker.training.estimate_u_using_random_sampling(max_pairs=2e6)
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("home_prefix"))
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("geo", "segment"))
    pred = linker.inference.predict().as_pandas_dataframe()
    ua, ub = pred["user_id_l"], pred["user_id_r"]
    p = pred["match_probability"].to_numpy()
    # the same deterministic rule as ours: shared user_id = link, different = no link
    p = np.where(ua.notna() & ub.notna(), (ua == ub).to_numpy().astype(float), p)
    links = pd.DataFrame(
        {"device_a": pred["unique_id_l"], "device_b": pred["unique_id_r"], "p_link": p}
    )
    wall = time.perf_counter() - t0
    return {**pairwise_scores(links, truth, devices=rec["unique_id"].to_numpy()), "wall_s": wall}


def accuracy(args) -> list[dict]:
    from gaelp_bayes.world import get_world, make_world

    out = []
    for seed in args.seeds:
        w = make_world(
            get_world(args.world),
            persons=args.persons,
            days=args.days,
            seed=seed,
            latency_mc_persons=2000,
        )
        events = w.events.to_pandas()
        truth = w.devices[["device_id", "person_id"]]
        sampler = SamplerConfig(draws=args.draws, tune=args.tune, chains=2, seed=seed)
        row = {"seed": seed, "ours": run_ours(events, truth, sampler)}
        if not args.no_splink:
            try:
                row["splink"] = run_splink(events, truth)
                row["f1_ratio"] = row["ours"]["f1"] / row["splink"]["f1"]
                row["wall_ratio"] = row["ours"]["wall_s"] / row["splink"]["wall_s"]
            except ImportError:
                row["splink"] = "not installed (pip install splink)"
        print(json.dumps(row, default=float), flush=True)
        out.append(row)
    return out


def scale(args) -> dict:
    from gaelp_bayes.models.identity import fit

    events = pd.read_parquet(args.scale_events)
    t0 = time.perf_counter()
    sampler = SamplerConfig(draws=args.draws, tune=args.tune, chains=2, seed=0)
    model = fit(events, events["timestamp"].max(), Config(sampler=sampler))
    t_fit = time.perf_counter() - t0
    print(json.dumps({"fit_total_s": t_fit, "timings": model.timings}), flush=True)
    t1 = time.perf_counter()
    model.person_map()
    maps = model.person_map_draws(args.map_draws)
    t_cluster = time.perf_counter() - t1
    out = {
        "events": len(events),
        "devices": model.n_devices,
        "candidate_pairs": len(model.comparisons),
        "patterns": int(model.fs.data_.x.shape[0]),
        "timings": model.timings,
        "clustering_s": t_cluster,
        "map_draws": len(maps),
        "wall_s": time.perf_counter() - t0,
        "fit_total_s": t_fit,
        "peak_rss_gb": _peak_rss_gb(),
    }
    if args.scale_truth:
        truth = pd.read_parquet(args.scale_truth)[["device_id", "person_id"]]
        out["scores"] = pairwise_scores(model.tables()["links"], truth, devices=model.device_ids)
    print(json.dumps(out, default=float), flush=True)
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--world", default="parental-controls")
    ap.add_argument("--persons", type=int, default=20_000)
    ap.add_argument("--days", type=int, default=60)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--draws", type=int, default=500)
    ap.add_argument("--tune", type=int, default=500)
    ap.add_argument("--no-splink", action="store_true")
    ap.add_argument("--scale-events", type=Path, help="events Parquet for the scale run")
    ap.add_argument("--scale-truth", type=Path, help="truth devices Parquet for the scale run")
    ap.add_argument("--map-draws", type=int, default=20)
    ap.add_argument("--out", type=Path, help="write results as JSON here")
    args = ap.parse_args(argv)
    res = {"scale": scale(args)} if args.scale_events else {"accuracy": accuracy(args)}
    if args.out:
        args.out.write_text(json.dumps(res, indent=2, default=float) + "\n")
    return res


if __name__ == "__main__":
    main()
