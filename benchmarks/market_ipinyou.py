"""The bid-landscape model on real iPinYou auction logs.

1. Advertiser 2821 (10,000 won impressions): posterior predictive of the
   paid price vs the empirical distribution (Kolmogorov-Smirnov distance).
   Replicates follow the data's selection: a competing bid is drawn from the
   fitted log-normal of its exchange and hour, truncated below our bid (every
   row is a win), paid at the floor when below it, and rounded to whole fen
   like the source.
2. Campaign 2259: fit on the train file (with censoring: losses say only
   "above our bid"), predict the win rate at the test file's bids; calibration
   table by bid decile, predicted vs observed.

    python benchmarks/market_ipinyou.py [--draws 500] [--tune 500] [--components K]
        [--part all|adv2821|campaign2259]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
from scipy import stats

from gaelp_bayes.config import load_config
from gaelp_bayes.datasets import (
    default_ipinyou_dir,
    ipinyou_bids_as_auctions,
    ipinyou_impressions_as_auctions,
)
from gaelp_bayes.inference import setup_jax
from gaelp_bayes.models import market as mk

NO_EVENTS = pd.DataFrame(
    {
        "device_id": pd.Series(dtype=str),
        "timestamp": pd.Series(dtype="datetime64[us, UTC]"),
        "event_type": pd.Series(dtype=str),
        "channel": pd.Series(dtype=str),
    }
)


def _config(draws: int, tune: int, seed: int, components: int):
    cfg = load_config(None, draws=draws, tune=tune, seed=seed)
    cfg.models["market"] = {"components": components}
    return cfg


def adv2821_ppc(
    draws: int = 500, tune: int = 500, seed: int = 0, n_rep: int = 40, components: int = 1
) -> dict:
    setup_jax()
    au = ipinyou_impressions_as_auctions(
        default_ipinyou_dir() / "impressions_adv2821_2013-10-21.tsv"
    )
    cfg = _config(draws, tune, seed, components)
    t0 = time.perf_counter()
    m = mk.fit(NO_EVENTS, au["timestamp"].max(), cfg, auctions=au)
    fit_s = time.perf_counter() - t0
    rng = np.random.default_rng(seed)
    c = au["channel"].map({ch: i for i, ch in enumerate(m.data.channels)}).to_numpy()
    h = au["timestamp"].dt.hour.to_numpy()
    bid, floor = au["bid"].to_numpy(), au["floor"].to_numpy()
    inc = au["floor_increment"].to_numpy()
    by_hour = {hr: m.landscape(hr) for hr in np.unique(h)}
    n_draws = by_hour[h[0]][0].shape[0]
    reps = []
    for k in rng.choice(n_draws, size=n_rep, replace=False):
        loc = np.array([by_hour[hr][0][k, ci] for hr, ci in zip(h, c, strict=True)])  # (n, K)
        sig = np.array([by_hour[hr][1][k, ci] for hr, ci in zip(h, c, strict=True)])
        w = np.array([by_hour[hr][2][k, ci] for hr, ci in zip(h, c, strict=True)])
        # a component by weight, then the competing bid truncated below our bid
        # (every row is a win), by inverse CDF
        comp = (rng.random(len(h))[:, None] > np.cumsum(w, axis=1)).sum(axis=1)
        comp = np.minimum(comp, w.shape[1] - 1)
        mu, s = loc[np.arange(len(h)), comp], sig[np.arange(len(h)), comp]
        top = stats.norm.cdf((np.log(bid) - mu) / s)
        u = rng.uniform(0, top)
        b = np.exp(mu + s * stats.norm.ppf(np.clip(u, 1e-12, 1 - 1e-12)))
        # below the floor the exchange charges the floor (plus its increment, see
        # gaelp_bayes.datasets.floor_increments)
        reps.append(np.round(np.where(b < floor, floor + inc, b)))
    rep = np.concatenate(reps)
    paid = au["paid_price"].to_numpy()
    ks = stats.ks_2samp(paid, rep).statistic
    return {
        "ks": float(ks),
        "fit_s": fit_s,
        "rows": len(au),
        "diagnostics": m.diagnostics(),
        "observed_quantiles": np.quantile(paid, [0.1, 0.25, 0.5, 0.75, 0.9]).tolist(),
        "replicated_quantiles": np.quantile(rep, [0.1, 0.25, 0.5, 0.75, 0.9]).tolist(),
    }


def campaign2259_calibration(
    draws: int = 500, tune: int = 500, seed: int = 0, components: int = 1
) -> dict:
    setup_jax()
    d = default_ipinyou_dir()
    train = ipinyou_bids_as_auctions(d / "campaign2259_train_click_price_bid.txt")
    test = ipinyou_bids_as_auctions(d / "campaign2259_test_click_price_bid.txt")
    cfg = _config(draws, tune, seed, components)
    t0 = time.perf_counter()
    m = mk.fit(NO_EVENTS, train["timestamp"].max(), cfg, auctions=train)
    fit_s = time.perf_counter() - t0
    wp = m.win_probability("campaign", test["bid"].to_numpy(), hour=0)  # (draws, rows)
    dec = pd.qcut(test["bid"], 10, labels=False, duplicates="drop")
    rows = []
    for q, idx in test.groupby(dec).groups.items():
        i = test.index.get_indexer(idx)
        pred = wp[:, i].mean(axis=1)  # posterior draws of the decile's mean win rate
        obs = test["won"].to_numpy()[i].mean()
        rows.append(
            {
                "decile": int(q),
                "bids": f"{test['bid'].iloc[i].min():.0f}-{test['bid'].iloc[i].max():.0f}",
                "n": len(i),
                "observed": obs,
                "predicted": float(pred.mean()),
                "pred_q05": float(np.quantile(pred, 0.05)),
                "pred_q95": float(np.quantile(pred, 0.95)),
            }
        )
    table = pd.DataFrame(rows)
    return {
        "table": table,
        "fit_s": fit_s,
        "diagnostics": m.diagnostics(),
        "train_win_rate": float(train["won"].mean()),
        "test_win_rate": float(test["won"].mean()),
    }


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--draws", type=int, default=500)
    ap.add_argument("--tune", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--components", type=int, default=1, help="log-normal mixture components")
    ap.add_argument("--part", choices=["all", "adv2821", "campaign2259"], default="all")
    args = ap.parse_args(argv)
    print(f"components = {args.components}")
    out: dict = {}
    if args.part in ("all", "adv2821"):
        out["adv2821"] = _adv2821(args)
    if args.part in ("all", "campaign2259"):
        out["campaign2259"] = _campaign2259(args)
    return out


def _adv2821(args) -> dict:
    a = adv2821_ppc(args.draws, args.tune, args.seed, components=args.components)
    print(
        f"adv 2821: {a['rows']} won impressions, fit {a['fit_s']:.1f} s, "
        f"KS(paid price, posterior predictive) = {a['ks']:.3f} (target <= 0.05)"
    )
    print(f"  observed quantiles 10/25/50/75/90%: {a['observed_quantiles']}")
    print(f"  replicated quantiles:               {a['replicated_quantiles']}")
    print(f"  diagnostics: {a['diagnostics'].to_dict()}")
    return a


def _campaign2259(args) -> dict:
    c = campaign2259_calibration(args.draws, args.tune, args.seed, components=args.components)
    print(
        f"campaign 2259: fit {c['fit_s']:.1f} s on train (win rate {c['train_win_rate']:.3f}); "
        f"test win rate {c['test_win_rate']:.3f}"
    )
    print(c["table"].to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    print(f"  diagnostics: {c['diagnostics'].to_dict()}")
    return c


if __name__ == "__main__":
    main()
