"""Market model: censoring rules, PyMC-vs-NumPyro log-density, recovery, real iPinYou data."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from gaelp_bayes.config import load_config
from gaelp_bayes.inference import setup_jax
from gaelp_bayes.models import market as mk

setup_jax()


def _auctions(rows):
    df = pd.DataFrame(
        rows, columns=["channel", "hour", "bid", "won", "price", "floor", "auction_type"]
    )
    df["timestamp"] = pd.to_datetime("2026-01-01", utc=True) + pd.to_timedelta(df.pop("hour"), "h")
    return df


def test_each_auction_row_says_what_the_contract_says():
    a = _auctions(
        [
            ("x", 1, 2.0, True, 1.5, 0.5, "second_price"),  # exact competing bid 1.5
            ("x", 1, 2.0, True, 0.5, 0.5, "second_price"),  # at the floor: b <= 0.5
            ("x", 2, 2.0, False, np.nan, 0.5, "second_price"),  # lost: b >= 2
            ("x", 2, 0.4, False, np.nan, 0.5, "second_price"),  # bid below floor: nothing
            ("y", 3, 1.0, True, 1.0, 0.0, "first_price"),  # first price win: b <= 1
            ("y", 3, 1.0, False, np.nan, 0.0, "first_price"),  # first price loss: b >= 1
        ]
    )
    rows = mk.classify_auctions(a)
    assert rows["kind"].tolist() == ["exact", "le", "ge", "le", "ge"]
    assert rows["value"].tolist() == [1.5, 0.5, 2.0, 1.0, 1.0]
    assert rows["hour"].tolist() == [1, 1, 2, 3, 3]


def _small_world(small_world):
    ev = pd.read_parquet(small_world / "events.parquet")
    au = pd.read_parquet(small_world / "auctions.parquet")
    return ev, au


def test_pymc_and_numpyro_log_densities_agree(small_world):
    """The aggregated NumPyro model equals the row-wise PyMC reference at random points."""
    pytest.importorskip("pymc")
    from numpyro.infer.util import log_density

    ev, au = _small_world(small_world)
    cfg = mk.MarketConfig()
    d = mk.market_data(ev, au, ev.timestamp.max(), cfg)
    rows = mk.bin_censored(mk.classify_auctions(au), cfg)
    assert (d.cens_var > 0).any()  # the within-bin spread term is exercised
    model = mk.build_pymc_model(rows, d, cfg)
    logp = model.compile_logp(jacobian=True)
    from jax import enable_x64

    inputs = mk._model_inputs(d)
    C, S = len(d.channels), len(d.segments)
    rng = np.random.default_rng(0)
    for _ in range(3):
        mu = d.center + rng.normal(0, 0.3, C)
        sigma, tau = rng.uniform(0.3, 1.0, C), rng.uniform(0.05, 0.5, C)
        raw = rng.normal(0, 1, (mk.HOURS, C))
        c = inputs["centered"]
        cell_mu = mu + tau ** (1 - c) * (raw - c * mu)
        a, sd, zs = rng.normal(-4, 0.5, C), rng.uniform(0.1, 1, C), rng.normal(0, 1, (S, C))
        params = {
            "mu": mu,
            "sigma": sigma,
            "hour_sd": tau,
            "cell_raw": raw,
            "ctr_intercept": a,
            "ctr_segment_sd": sd,
            "ctr_z": zs,
        }
        with enable_x64(True):
            lp_np, _ = log_density(
                lambda **kw: mk.market_model(**kw, priors=cfg), (), inputs, params
            )
        # PyMC parametrises by cell_mu (centred) on unconstrained log-scales;
        # convert: the non-centred raw has density N(0,1) instead of N(mu, tau),
        # i.e. the two differ by the Jacobian log(tau) per non-centred cell.
        point = {
            "mu": mu,
            "sigma_log__": np.log(sigma),
            "hour_sd_log__": np.log(tau),
            "cell_mu": cell_mu,
            "ctr_intercept": a,
            "ctr_segment_sd_log__": np.log(sd),
            "ctr_z": zs,
        }
        lp_pm = logp(point) - np.log(sigma).sum() - np.log(tau).sum() - np.log(sd).sum()
        jac = (mk.HOURS * np.log(tau) * (1 - c)).sum()
        assert np.isclose(
            float(lp_np), lp_pm + jac, rtol=1e-8, atol=1e-6
        ), (  # float64 tail approximations differ ~1e-9
            float(lp_np),
            lp_pm + jac,
        )


def test_binned_censoring_matches_the_row_wise_likelihood():
    """Binned bounds with the second-order term reproduce the row-wise log-likelihood.

    What the posterior feels is how the log-likelihood changes between
    parameter values a posterior sd apart; the binned version's error in that
    change must be small in nats (a shift of the posterior by that many sd,
    roughly), and far smaller than without the correction.
    """
    from jax import enable_x64
    from numpyro.infer.util import log_density
    from scipy.stats import norm

    rng = np.random.default_rng(3)
    n = 200_000
    true_mu, true_sigma = np.log(1.0), 0.5
    comp = np.exp(rng.normal(true_mu, true_sigma, n))
    bid = np.exp(rng.uniform(-1.0, 1.0, n))
    a = _auctions(
        [
            ("x", int(h), float(b), bool(b > c), float(c), 0.0, "first_price")
            for h, b, c in zip(rng.integers(0, 24, n), bid, comp, strict=True)
        ]
    )
    cfg = mk.MarketConfig(price_bin=0.1)
    d = mk.market_data(a.assign(event_type="impression"), a, a.timestamp.max(), cfg)
    rows = mk.classify_auctions(a)
    sign = np.where(rows["kind"] == "ge", 1.0, -1.0)
    logb = np.log(rows["value"].to_numpy())
    sd_mu = 1.0 / np.sqrt(n)  # about the posterior sd of the location at this size

    def exact(mu, sigma):
        return norm.logcdf(-sign * (logb - mu) / sigma).sum()

    def binned(mu, sigma, corrected=True):
        inputs = mk._model_inputs(d)
        inputs = {k: inputs[k] for k in ("cens_cell", "cens_logb", "cens_sign", "cens_weight")}
        if corrected:
            inputs["cens_var"] = d.cens_var
        zeros = {"exact_cell": np.zeros(0, int), "exact_n": np.zeros(0)}
        zeros.update(exact_s1=np.zeros(0), exact_s2=np.zeros(0), exact_logsum=0.0)
        params = {
            "mu": np.array([mu]),
            "sigma": np.array([sigma]),
            "hour_sd": np.array([1.0]),
            "cell_raw": np.zeros((mk.HOURS, 1)),
        }
        with enable_x64(True):
            _, trace = log_density(
                lambda **kw: mk.landscape_model(**kw, priors=cfg),
                (),
                dict(center=np.zeros(1), centered=np.zeros(1), **zeros, **inputs),
                params,
            )
            site = trace["censored_bids"]  # a factor: its log-probability is the term itself
            return float(site["fn"].log_prob(site["value"]).sum())

    for dmu, dsig in [(sd_mu, 0.0), (0.0, sd_mu), (3 * sd_mu, -2 * sd_mu)]:
        p0, p1 = (true_mu, true_sigma), (true_mu + dmu, true_sigma + dsig)
        want = exact(*p1) - exact(*p0)
        got = binned(*p1) - binned(*p0)
        raw = binned(*p1, corrected=False) - binned(*p0, corrected=False)
        assert abs(got - want) < 0.02, (got, want)
        assert abs(got - want) < abs(raw - want) / 5, (got, raw, want)


def test_fit_on_small_world_writes_contract_summary(small_world):
    ev, au = _small_world(small_world)
    cfg = load_config(None, draws=100, tune=100, chains=1, seed=1)
    m = mk.fit(ev, ev.timestamp.max(), cfg, auctions=au)
    s = m.summary()
    assert set(s["channels"]) == set(ev.channel.dropna()) - {"direct"}
    for v in s["channels"].values():
        for k in ("competing_bid_median", "ctr"):
            assert v[k]["q05"] <= v[k]["mean"] <= v[k]["q95"]
    assert s["landscape_source"] == "auctions"
    assert m.idata.posterior["opportunity_rate"].dims[-3:] == ("segment", "channel", "hour")
    wp = m.win_probability(m.data.channels[0], np.array([1e-6, 1e6]))
    assert (wp[:, 0] < 0.01).all() and (wp[:, 1] > 0.99).all()


def test_without_auctions_the_bias_is_flagged(small_world):
    ev, _ = _small_world(small_world)
    cfg = load_config(None, draws=50, tune=50, chains=1)
    s = mk.fit(ev, ev.timestamp.max(), cfg, auctions=None).summary()
    assert s["landscape_source"] == "events" and "biased low" in s["warning"]


def _true_cells(params, channels):
    truth = params["derived"]["competing_bid"]
    m = np.zeros((len(channels), mk.HOURS))
    for i, c in enumerate(channels):
        t = truth[c]
        m[i] = np.log(t["median"])
        lo, hi = t["evening_hours"]
        m[i, lo : hi + 1] += t["evening_log_uplift"]
    sig = np.array([truth[c]["sigma"] for c in channels])
    return m, sig


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_recovers_example_world_market(tmp_path, seed):
    """True landscape cells, log-sds and CTRs inside 90% intervals for >= 80% of them."""
    from gaelp_bayes.world import get_world, make_world, write_world

    spec = get_world("parental-controls")
    write_world(
        make_world(spec, persons=6000, days=30, seed=seed, latency_mc_persons=2000), tmp_path
    )
    ev = pd.read_parquet(tmp_path / "events.parquet")
    au = pd.read_parquet(tmp_path / "auctions.parquet")
    params = json.loads((tmp_path / "truth" / "params.json").read_text())
    cfg = load_config(None, draws=600, tune=600, chains=2, seed=seed)
    m = mk.fit(ev, ev.timestamp.max(), cfg, auctions=au)
    chans = m.data.channels
    tm, ts = _true_cells(params, chans)
    post = m.idata.posterior
    cell = (post["mu"] + post["hour_effect"]).transpose("chain", "draw", "channel", "hour").values
    cell = cell.reshape(-1, len(chans), mk.HOURS)
    lo, hi = np.quantile(cell, [0.05, 0.95], axis=0)
    inside = list(((lo <= tm) & (tm <= hi)).ravel())
    sig = post["sigma"].values.reshape(-1, len(chans))
    slo, shi = np.quantile(sig, [0.05, 0.95], axis=0)
    inside += list((slo <= ts) & (ts <= shi))
    # CTR truth per (segment, channel): the generator's rate averaged over the
    # device types of the impressions actually served in that cell
    imp = ev[ev.event_type == "impression"]
    ctr_true = params["derived"]["ctr"]
    ctr = post["ctr"].values.reshape(-1, len(m.data.segments), len(chans))
    clo, chi = np.quantile(ctr, [0.05, 0.95], axis=0)
    for (s, c), g in imp.groupby(["segment", "channel"]):
        t = np.minimum(ctr_true[s][c] * np.where(g.device_type == "mobile", 1.1, 1.0), 0.9).mean()
        i, j = m.data.segments.index(s), chans.index(c)
        inside.append(clo[i, j] <= t <= chi[i, j])
    cover = np.mean(inside)
    assert cover >= 0.8, f"coverage {cover:.2f} over {len(inside)} parameters"
    assert m.diagnostics().max_rhat < 1.05


@pytest.mark.slow
@pytest.mark.xfail(
    strict=True,
    reason="known gap: a single log-normal per channel misfits the real price distribution's "
    "left tail (bids 14-19: predicted 0.119 vs 0.0995 implied by the train prices); a mixture "
    "landscape is the planned fix (docs/market.md)",
)
def test_ipinyou_2259_win_rate_matches_the_train_market():
    """Real data: fitted with censoring (losses only say "above the bid"), the predicted
    win rate at the test bids matches what the train market's full prices imply.

    The file also lists every market price, which a bidder never sees; the
    empirical win rate of those prices is the in-distribution truth. (The
    test file's own market drifted upwards; docs/market.md shows that too.)
    """
    import sys
    from pathlib import Path

    from gaelp_bayes.datasets import default_ipinyou_dir, ipinyou_bids_as_auctions

    if not default_ipinyou_dir().exists():
        pytest.skip("shared iPinYou data not present")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from market_ipinyou import campaign2259_calibration

    res = campaign2259_calibration(draws=500, tune=500, seed=0)
    train = ipinyou_bids_as_auctions(
        default_ipinyou_dir() / "campaign2259_train_click_price_bid.txt"
    )
    test = ipinyou_bids_as_auctions(default_ipinyou_dir() / "campaign2259_test_click_price_bid.txt")
    prices = np.sort(train["market_price"].to_numpy())
    dec = pd.qcut(test["bid"], 10, labels=False, duplicates="drop")
    for _, row in res["table"].iterrows():
        bids = test["bid"].to_numpy()[dec.to_numpy() == row["decile"]]
        oracle = (np.searchsorted(prices, bids, side="left") / len(prices)).mean()
        pred_sd = (row["pred_q95"] - row["pred_q05"]) / (2 * 1.645)
        oracle_se = np.sqrt(oracle * (1 - oracle) / len(prices))
        assert abs(row["predicted"] - oracle) <= 3 * np.hypot(pred_sd, oracle_se), row.to_dict()


def test_mixture_landscape_median_and_win_probability():
    """The mixture CDF, its median and the win probability agree with scipy on known draws."""
    import arviz as az
    from scipy import stats

    d = mk.MarketData(
        channels=["a"],
        segments=["*"],
        center=np.zeros(1),
        exact_cell=np.zeros(0, int),
        exact_n=np.zeros(0),
        exact_s1=np.zeros(0),
        exact_s2=np.zeros(0),
        exact_logsum=0.0,
        xbin_cell=np.zeros(0, int),
        xbin_logv=np.zeros(0),
        xbin_weight=np.zeros(0),
        cens_cell=np.zeros(0, int),
        cens_logb=np.zeros(0),
        cens_sign=np.zeros(0),
        cens_weight=np.zeros(0),
        cens_var=np.zeros(0),
        impressions=np.ones((1, 1)),
        clicks=np.zeros((1, 1)),
        opportunities=np.zeros((1, 1, mk.HOURS)),
        days=1.0,
        source="auctions",
    )
    post = {
        "mu": np.full((1, 2, 1), np.log(2.0)),
        "hour_effect": np.zeros((1, 2, 1, mk.HOURS)),
        "mix_gap": np.full((1, 2, 1, 1), 1.5),
        "mix_sigma": np.full((1, 2, 2, 1), 0.4),
        "mix_weight": np.tile(np.array([0.3, 0.7]), (1, 2, 1, 1)),
    }
    m = mk.MarketModel(config=mk.MarketConfig(components=2), data=d, idata=az.from_dict(post))
    mix = [stats.lognorm(0.4, scale=2.0), stats.lognorm(0.4, scale=2.0 * np.exp(1.5))]

    def cdf(x):
        return 0.3 * mix[0].cdf(x) + 0.7 * mix[1].cdf(x)

    med = m.competing_bid_median()[:, 0]
    np.testing.assert_allclose(cdf(med), 0.5, atol=1e-9)
    bids = np.array([0.5, 2.0, 5.0, 20.0])
    np.testing.assert_allclose(m.win_probability("a", bids), np.tile(cdf(bids), (2, 1)), rtol=1e-9)


def test_ipinyou_floor_increment_is_read_as_the_contract_means():
    """Exchange 4 charges floor + 1 fen when the floor binds: those wins are 'at the floor'."""
    from gaelp_bayes.datasets import (
        default_ipinyou_dir,
        floor_increments,
        ipinyou_impressions_as_auctions,
    )

    path = default_ipinyou_dir() / "impressions_adv2821_2013-10-21.tsv"
    if not path.exists():
        pytest.skip("iPinYou sample not available")
    au = ipinyou_impressions_as_auctions(path)
    inc = au.groupby("channel")["floor_increment"].first().to_dict()
    assert inc["adx4"] == 1.0 and inc["adx2"] == 0.0 and inc["adx3"] == 0.0
    moved = au["price"] != au["paid_price"]
    # only floor + increment wins were moved, onto the floor; what was paid is kept
    assert moved.sum() > 1000
    assert (au.loc[moved, "price"] == au.loc[moved, "floor"]).all()
    assert (au.loc[moved, "paid_price"] == au.loc[moved, "floor"] + 1).all()
    assert (au.loc[moved, "channel"] == "adx4").all()
    # the rule itself, on a tiny table: exact-floor prices mean no increment
    t = pd.DataFrame(
        {"channel": ["a"] * 4 + ["b"] * 4, "floor": 10.0, "price": [11, 11, 11, 40, 10, 10, 12, 40]}
    )
    assert floor_increments(t) == {"a": 1.0, "b": 0.0}
