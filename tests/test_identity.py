"""Identity model: blocking, comparisons, clustering, the Fellegi-Sunter core, errors, and a
small end-to-end fit (fast tests; the accuracy evaluation is in test_identity_slow.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gaelp_bayes.config import Config, SamplerConfig
from gaelp_bayes.errors import ConfigError, DataError
from gaelp_bayes.identity.blocking import BlockingConfig, block
from gaelp_bayes.identity.cluster import (
    PersonNamer,
    account_classes,
    constrained_components,
    person_ids,
)
from gaelp_bayes.identity.comparisons import compare
from gaelp_bayes.identity.evaluate import expected_calibration_error, pairwise_scores
from gaelp_bayes.identity.fellegi_sunter import (
    FellegiSunter,
    FSPriors,
    _to_arrays,
    build_pymc,
    fs_model,
    pattern_counts,
)

FAST = SamplerConfig(chains=2, draws=150, tune=150, seed=3)
T0 = pd.Timestamp("2026-01-01", tz="UTC")


def _ev(rows):
    """events from (device, hours after T0, ip_prefix, user_id, device_type)."""
    df = pd.DataFrame(rows, columns=["device_id", "h", "ip_prefix", "user_id", "device_type"])
    df["timestamp"] = T0 + pd.to_timedelta(df.pop("h"), unit="h")
    df["event_type"] = "visit"
    df["geo"] = "G1"
    df["user_agent"] = "iOS/Safari"
    return df


def test_blocking_rules_nat_cap_and_known_link_recall():
    rows = [
        ("a", 1, "home1", "u1", "mobile"),
        ("b", 2, "home1", None, "desktop"),  # same prefix same day as a
        ("c", 30, "home1", None, "tablet"),  # same prefix, another day (rare_prefix rule)
        ("d", 1, "x", "u1", "desktop"),  # shares user_id with a only
        ("e", 5, "far", "u2", "mobile"),
    ]
    # a crowded carrier prefix: 30 devices on one day, never a reason to pair
    rows += [(f"n{i}", 3, "nat", None, "mobile") for i in range(30)]
    rows += [("e", 3, "nat", "u2", "mobile")]
    res = block(_ev(rows), BlockingConfig(max_devices_per_prefix_day=20))
    ids = res.devices["device_id"].to_numpy()
    got = {tuple(sorted((ids[a], ids[b]))) for a, b in zip(res.pairs.a, res.pairs.b, strict=True)}
    assert {("a", "b"), ("a", "c"), ("b", "c"), ("a", "d")} <= got
    assert not any("n" in x[0] or "n" in x[1] for x in got if x[0] != "e")
    assert all(not (x[0].startswith("n") or x[1].startswith("n")) for x in got)
    assert res.known_links == 1 and res.known_links_found == 0  # a-d only via user_id
    assert res.recall_on_known_links == 0.0
    rep = res.report()
    assert rep["candidate_pairs"] == len(res.pairs) and rep["pairs_per_rule"]["user_id"] == 1


def test_device_attributes_are_the_most_frequent_value_ties_to_the_smallest():
    """Ties in a device's modal geo must not depend on row order (reproducible patterns)."""
    rows = [("a", h, "h1", None, "mobile") for h in range(4)] + [("b", 1, "h1", None, "desktop")]
    ev = _ev(rows)
    ev["geo"] = ["G2", "G1", "G2", "G1", "G3"]  # a: two each of G1 and G2
    ev.loc[ev.index[:2], "user_agent"] = None  # a: nulls are not values
    for order in (ev.index, ev.index[::-1]):
        dev = block(ev.loc[order]).devices.set_index("device_id")
        assert dev.loc["a", "geo"] == "G1" and dev.loc["b", "geo"] == "G3"
        assert dev.loc["a", "user_agent"] == "iOS/Safari"


def test_user_agent_and_attribute_levels():
    types = ["mobile", "desktop", "mobile", "desktop", "tv"]
    rows = [(d, 1, "h", None, t) for d, t in zip("abcde", types, strict=True)]
    ev = _ev(rows)
    ev["user_agent"] = ["iOS/Safari", "iOS/Chrome", "iOS/Safari", "Android/Chrome", None]
    ev["segment"] = ["s1", "s1", "s2", None, "s1"]
    res = block(ev)
    comp = compare(res)
    ids = res.devices["device_id"].to_numpy()
    comp.index = [ids[a] + ids[b] for a, b in zip(comp.a, comp.b, strict=True)]
    assert comp.loc["ab", "user_agent"] == 2  # same OS family
    assert comp.loc["ac", "user_agent"] == 3  # identical
    assert comp.loc["ad", "user_agent"] == 1 and comp.loc["ae", "user_agent"] == 0
    assert comp.loc["ab", "segment"] == 2 and comp.loc["ac", "segment"] == 1
    assert comp.loc["ad", "segment"] == 0
    assert comp.loc["ab", "group"] == "desktop|mobile" and comp.loc["be", "group"] == "desktop|tv"


def test_comparison_levels_and_labels():
    rows = [
        ("a", 1, "h", "u1", "mobile"),
        ("b", 2, "h", "u2", "desktop"),
        ("c", 3, "h", None, "desktop"),
        ("d", 4, "q", "u1", "tablet"),
    ]
    res = block(_ev(rows))
    comp = compare(res)
    ids = res.devices["device_id"].to_numpy()
    comp["pair"] = [ids[a] + ids[b] for a, b in zip(comp.a, comp.b, strict=True)]
    lab = comp.set_index("pair")["label"]
    assert lab["ab"] == -1 and lab["ad"] == 1 and lab["ac"] == 0 and "bd" not in lab.index
    assert comp.set_index("pair").loc["bc", "group"] == "desktop|desktop"
    assert comp.set_index("pair").loc["ab", "group"] == "desktop|mobile"
    assert comp.attrs["fields"][0] == "colocation"
    assert (comp[comp.attrs["fields"]] >= 0).all().all()


def test_clustering_never_merges_different_user_ids():
    # chain 0(u1) - 1 - 2(u2): whatever the order, 0 and 2 must stay apart
    account = np.array([0, -1, 1, -1])
    for w in ([0.9, 0.8], [0.8, 0.9]):
        lab = constrained_components(4, np.array([0, 1]), np.array([1, 2]), np.array(w), account)
        assert lab[0] != lab[2]
        assert lab[1] == (lab[0] if w[0] > w[1] else lab[2])
        assert lab[3] not in (lab[0], lab[2])
    acc = account_classes(5, np.array([0, 3]), np.array([3, 4]))
    assert acc[0] == acc[3] == acc[4] and acc[1] == acc[2] == -1
    ids = np.array(["z", "y", "x", "w"], dtype=object)
    pid = person_ids(np.array([0, 0, 1, 1]), ids)
    assert list(pid) == ["p:y", "p:y", "p:w", "p:w"]
    namer = PersonNamer(ids)  # sorts once, names many labelings
    assert list(namer(np.array([5, 7, 5, 7]))) == ["p:x", "p:w", "p:x", "p:w"]
    assert list(namer(np.array([0, 0, 1, 1]))) == list(pid)
    with pytest.raises(ValueError, match="3 labels for 4 devices"):
        namer(np.array([0, 0, 1]))


def test_pattern_counts_and_ece():
    comp = pd.DataFrame({"f": [0, 0, 1, 1, 1], "g": [0, 1, 1, 1, 0], "label": [0, 0, 1, -1, 0]})
    pat = pattern_counts(comp, ["f", "g"], label="label")
    assert pat["n"].sum() == 3 and pat["n_match"].sum() == 1 and pat["n_nonmatch"].sum() == 1
    assert expected_calibration_error(np.array([0.0, 1.0]), np.array([0, 1])) == 0.0
    assert expected_calibration_error(np.array([0.95, 0.95]), np.array([0, 0])) == pytest.approx(
        0.95
    )


def _simulate_patterns(rng, n=20000, lam=0.1, labelled=0.05):
    m = [np.array([0.05, 0.15, 0.8]), np.array([0.1, 0.9]), np.array([0.2, 0.3, 0.5])]
    u = [np.array([0.7, 0.2, 0.1]), np.array([0.8, 0.2]), np.array([0.5, 0.3, 0.2])]
    z = rng.random(n) < lam
    cols = {}
    for j in range(3):
        pm_, pu = m[j], u[j]
        cols[f"f{j}"] = np.where(z, rng.choice(len(pm_), n, p=pm_), rng.choice(len(pu), n, p=pu))
    df = pd.DataFrame(cols)
    lab = np.where(rng.random(n) < labelled, np.where(z, 1, -1), 0)
    df["label"] = lab
    return df, z, m, u


def test_generic_fellegi_sunter_recovers_m_u_and_calibrates():
    rng = np.random.default_rng(0)
    df, z, m, _u = _simulate_patterns(rng)
    pat = pattern_counts(df, ["f0", "f1", "f2"], label="label")
    fs = FellegiSunter(["f0", "f1", "f2"]).fit(pat, FAST)
    post = fs.posterior_draws()
    for j in range(3):
        est = post[f"m_f{j}"][:, 0, :]
        sd = est.std(axis=0)
        assert np.all(np.abs(est.mean(axis=0) - m[j]) < 4 * sd + 0.01)
    p = fs.match_probability(df).mean(axis=0)
    assert expected_calibration_error(p, z) < 0.03
    with pytest.raises(RuntimeError, match="fit"):
        FellegiSunter(["f0"]).posterior_draws()


@pytest.mark.parametrize("n", [150, 30000])
def test_numpyro_and_pymc_log_densities_agree(n):
    """Non-centred (few pairs per group) and centred (many) logit(lambda) alike."""
    pytest.importorskip("pymc")
    import jax
    from numpyro.infer.util import log_density

    rng = np.random.default_rng(1)
    df, *_ = _simulate_patterns(rng, n=n)
    df["grp"] = rng.integers(0, 3, len(df))
    pat = pattern_counts(df, ["f0", "f1", "f2"], group="grp", label="label")
    data = _to_arrays(pat, ["f0", "f1", "f2"], "grp")
    assert data.centered == (n == 30000)  # about n / 3 pairs per group
    priors = FSPriors()
    model = build_pymc(data, priors)
    logp = model.compile_logp(jacobian=False)
    kw = {**data.model_kwargs(), "priors": priors}
    with jax.enable_x64(True):
        for _ in range(3):
            point = {
                "lambda_mu": rng.normal(-1, 1),
                "lambda_sigma": rng.gamma(2.0, 0.3),
            }
            if data.centered:
                point["lambda_logit"] = rng.normal(-1, 1, size=data.n_groups)
            else:
                point["lambda_z"] = rng.normal(size=data.n_groups)
            for f, L in zip(data.fields, data.levels, strict=True):
                for c in ("m", "u"):
                    point[f"{c}_base_raw_{f}"] = rng.gamma(1.0, 1.0, size=L)
                    point[f"{c}_raw_{f}"] = rng.gamma(2.0, 1.0, size=(data.n_groups, L))
            ld, _ = log_density(fs_model, (), kw, point)
            values = {}
            for rv in model.free_RVs:
                val = np.asarray(point[rv.name])
                tr = model.rvs_to_transforms[rv]
                vv = model.rvs_to_values[rv]
                values[vv.name] = tr.forward(val, *rv.owner.inputs).eval() if tr else val
            assert float(ld) == pytest.approx(float(logp(values)), rel=1e-9, abs=1e-6)


# ----------------------------------------------------------------- errors and config
def test_degenerate_inputs_raise_clear_errors():
    from gaelp_bayes.models.identity import fit

    base = _ev([("a", 1, "h", None, "mobile"), ("b", 2, "h", None, "desktop")])
    with pytest.raises(DataError, match="ip_prefix"):
        fit(base.drop(columns="ip_prefix"), None, Config())
    with pytest.raises(DataError, match="at least two"):
        fit(base[base.device_id == "a"], None, Config())
    logged = base.assign(user_id=["u1", "u2"])
    with pytest.raises(DataError, match="all 2 devices carry a user_id"):
        fit(logged, None, Config())
    apart = base.assign(ip_prefix=["h1", "h2"])
    with pytest.raises(DataError, match="no candidate pairs"):
        fit(apart, None, Config())


def test_config_errors_are_collected():
    from gaelp_bayes.models.identity import IdentityConfig

    cfg = Config(models={"identity": {"rules": ["nope"], "map_draws": 0, "bogus": 1}})
    with pytest.raises(ConfigError) as exc:
        cfg.model("identity", IdentityConfig)
    text = str(exc.value)
    assert "bogus" in text and "map_draws" in text and "nope" in text


# ------------------------------------------------------------------ end to end
@pytest.fixture(scope="module")
def fitted(small_world):
    from gaelp_bayes.models.identity import fit

    events = pd.read_parquet(small_world / "events.parquet")
    truth = pd.read_parquet(small_world / "truth" / "devices.parquet")
    cfg = Config(sampler=FAST, models={"identity": {"map_draws": 5}})
    return fit(events, events["timestamp"].max(), cfg), events, truth


def test_fit_outputs_follow_the_contract(fitted):
    model, events, _truth = fitted
    assert model.name == "identity"
    tabs = model.tables()
    links, persons, draws = tabs["links"], tabs["persons"], tabs["person_draws"]
    assert {"device_a", "device_b", "p_link"} <= set(links.columns)
    assert links["p_link"].between(0, 1).all()
    assert (links["p_link_q05"] <= links["p_link"] + 1e-12).all()
    assert list(persons.columns) == ["device_id", "person_id", "p_assignment"]
    assert set(persons.device_id) == set(events.device_id)
    assert persons["p_assignment"].between(0, 1).all()
    assert list(draws.columns) == ["draw", "device_id", "person_id"] and draws.draw.nunique() == 5
    s = model.summary()
    assert s["devices"] == len(persons) and s["candidate_pairs"] == len(links)
    assert s["persons"]["q05"] <= s["persons"]["mean"] <= s["persons"]["q95"]
    assert s["persons"]["mean"] <= s["devices"]
    d = model.diagnostics()
    assert d.chains == 2 and d.draws == FAST.draws
    pm_ = model.person_map()
    assert list(pm_.columns) == ["device_id", "person_id"]
    maps = model.person_map_draws(3)
    assert len(maps) == 3 and all(len(m) == len(pm_) for m in maps)


def test_fit_respects_user_ids_in_every_draw(fitted):
    model, events, _ = fitted
    uid = events.dropna(subset=["user_id"]).groupby("device_id")["user_id"].first()
    for m in [model.person_map(), *model.person_map_draws(5)]:
        per = m.set_index("device_id")["person_id"]
        j = pd.DataFrame({"uid": uid, "person": per.reindex(uid.index)})
        assert (j.groupby("person")["uid"].nunique() == 1).all()  # never two accounts
        assert (j.groupby("uid")["person"].nunique() == 1).all()  # one account, one person


def test_fit_beats_chance_on_a_small_world(fitted):
    model, _, truth = fitted
    sc = pairwise_scores(model.tables()["links"], truth, devices=model.device_ids)
    assert sc["f1"] > 0.6 and sc["ece"] < 0.1
    rep = model.blocking_report()
    assert 0.5 < rep["recall_on_known_links"] <= 1.0


def test_chaining_is_cut_at_the_weakest_links_not_at_known_ones():
    """A chain of inferred links never grows a person beyond the size cap."""
    n = 10
    a, b = np.arange(n - 1), np.arange(1, n)  # a path 0-1-2-...-9
    w = np.array([0.99, 0.98, 0.6, 0.97, 0.96, 0.55, 0.95, 0.94, 0.93])
    no_acc = np.full(n, -1)
    lab = constrained_components(n, a, b, w, no_acc, max_size=3)
    sizes = np.bincount(np.unique(lab, return_inverse=True)[1])
    assert sizes.max() <= 3
    # the weak links (0.6 between 2-3, 0.55 between 5-6) are the ones cut
    assert lab[0] == lab[1] == lab[2] and lab[2] != lab[3]
    assert lab[3] == lab[4] == lab[5] and lab[5] != lab[6]
    # without a cap it is one component; known links (weight >= 2) are never cut
    assert len(np.unique(constrained_components(n, a, b, w, no_acc))) == 1
    known = np.full(n - 1, 2.0)
    assert len(np.unique(constrained_components(n, a, b, known, no_acc, max_size=3))) == 1
