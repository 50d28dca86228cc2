"""`gaelp-bayes report`: a self-contained HTML page with valid images, every model, clear errors.

The bundles here are written directly with :func:`gaelp_bayes.bundle.write_bundle`
from small InferenceData objects shaped like each model's (and summary blocks
following data contract section 5), so the module runs in seconds; one slow
test fits a real market bundle through the CLI.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from gaelp_bayes.bundle import write_bundle
from gaelp_bayes.cli.main import app
from gaelp_bayes.diagnostics import Diagnostics, interval

runner = CliRunner()

CHAINS, DRAWS = 2, 60
CHANNELS = ["search", "social", "video"]
SEGMENTS = ["crisis", "<b>researcher</b>"]  # markup in a name must come out escaped
PNG = b"\x89PNG\r\n\x1a\n"
GOOD = Diagnostics(1.002, 900.0, 850.0, 0, CHAINS, DRAWS)
BAD = Diagnostics(1.08, 35.0, 20.0, 3, CHAINS, DRAWS)


@dataclass
class FakeModel:
    """What write_bundle needs from a fitted model."""

    name: str
    idata: Any
    block: dict
    diag: Diagnostics

    def summary(self) -> dict:
        return self.block

    def diagnostics(self) -> Diagnostics:
        return self.diag


def _idata(rng, posterior: dict, dims: dict, coords: dict, diverging: bool = False):
    import arviz as az

    stats = {"diverging": np.zeros((CHAINS, DRAWS), bool)} if diverging else None
    return az.from_dict(posterior=posterior, sample_stats=stats, dims=dims, coords=coords)


def _market(rng) -> FakeModel:
    C, S, H = len(CHANNELS), len(SEGMENTS), 24
    mu = np.log([0.5, 0.01, 0.02]) + 0.01 * rng.standard_normal((CHAINS, DRAWS, C))
    eta = 0.1 * np.sin(np.arange(H) / 4)[None, None, None, :] + 0.01 * rng.standard_normal(
        (CHAINS, DRAWS, C, H)
    )
    mu[1] += 0.3  # the second chain disagrees: R-hat of mu is large
    ctr = 0.02 + 0.002 * rng.random((CHAINS, DRAWS, S, C))
    post = {
        "mu": mu,
        "sigma": 0.5 + 0.01 * rng.random((CHAINS, DRAWS, C)),
        "hour_sd": 0.1 + 0.01 * rng.random((CHAINS, DRAWS, C)),
        "cell_raw": rng.standard_normal((CHAINS, DRAWS, H, C)),
        "hour_effect": eta,
        "ctr_intercept": rng.standard_normal((CHAINS, DRAWS, C)),
        "ctr_segment_sd": rng.random((CHAINS, DRAWS, C)),
        "ctr_z": rng.standard_normal((CHAINS, DRAWS, S, C)),
        "ctr": ctr,
        "opportunity_rate": rng.gamma(50, 1, (CHAINS, DRAWS, S, C, H)),
    }
    dims = {
        "mu": ["channel"],
        "sigma": ["channel"],
        "hour_sd": ["channel"],
        "cell_raw": ["hour", "channel"],
        "hour_effect": ["channel", "hour"],
        "ctr_intercept": ["channel"],
        "ctr_segment_sd": ["channel"],
        "ctr_z": ["segment", "channel"],
        "ctr": ["segment", "channel"],
        "opportunity_rate": ["segment", "channel", "hour"],
    }
    coords = {"channel": CHANNELS, "segment": SEGMENTS, "hour": list(range(H))}
    block = {
        "channels": {
            c: {
                "competing_bid_median": interval(np.exp(mu[..., i]).ravel()),
                "ctr": interval(ctr[..., 0, i].ravel()),
                "opportunities_per_day": interval(rng.gamma(100, 1, 50)),
            }
            for i, c in enumerate(CHANNELS)
        },
        "landscape_source": "auctions",
    }
    return FakeModel("market", _idata(rng, post, dims, coords, diverging=True), block, BAD)


def _latency(rng) -> FakeModel:
    S = len(SEGMENTS)
    post = {
        "mu_logit": rng.standard_normal((CHAINS, DRAWS)),
        "sigma_logit": rng.random((CHAINS, DRAWS)),
        "logit_p": rng.standard_normal((CHAINS, DRAWS, S)),
    }
    days = list(range(1, 31))
    curve = 0.3 * (1 - np.exp(-np.array(days) / 5))
    block = {
        "segments": {
            s: {
                "persons": 100 + i,
                "p_convert": {"mean": 0.3, "q05": 0.25, "q95": 0.35},
                "median_days": {"mean": 3.5, "q05": 3.0, "q95": 4.1},
                "cdf": {
                    "days": days,
                    "mean": curve.tolist(),
                    "q05": (curve * 0.9).tolist(),
                    "q95": (curve * 1.1).tolist(),
                },
            }
            for i, s in enumerate(SEGMENTS)
        }
    }
    idata = _idata(rng, post, {"logit_p": ["segment"]}, {"segment": SEGMENTS})
    return FakeModel("latency", idata, block, GOOD)


def _identity(rng) -> tuple[FakeModel, dict[str, pd.DataFrame], pd.DataFrame]:
    raw = rng.standard_normal((CHAINS, DRAWS, 3))
    raw[1] += 5  # badly mixed, but not a parameter the identity policy checks: not plotted
    post = {
        "lambda": rng.random((CHAINS, DRAWS)),
        "m_ip": rng.random((CHAINS, DRAWS, 3)),
        "m_raw_ip": raw,
    }
    n = 400
    a = [f"d{i}" for i in range(n)]
    b = [f"d{i + n}" for i in range(n)]
    p = rng.random(n)
    known = np.where(np.arange(n) < 20, 1, np.where(np.arange(n) < 30, -1, 0))
    p = np.where(known == 1, 1.0, np.where(known == -1, 0.0, p))
    links = pd.DataFrame(
        {
            "device_a": a,
            "device_b": b,
            "p_link": p,
            "p_link_q05": p,
            "p_link_q95": p,
            "known": known,
        }
    )
    persons = pd.DataFrame(
        {"device_id": a + b, "person_id": a + a, "p_assignment": rng.random(2 * n)}
    )
    # truth: pair i is a true link with probability p_i (so the links are calibrated)
    same = rng.random(n) < p
    truth = pd.DataFrame(
        {"device_id": a + b, "person_id": a + [a[i] if same[i] else b[i] for i in range(n)]}
    )
    block = {"devices": 2 * n, "candidate_pairs": n, "persons": interval(rng.normal(500, 5, 50))}
    dims = {"m_ip": ["level_ip"], "m_raw_ip": ["level_ip"]}
    idata = _idata(rng, post, dims, {"level_ip": [0, 1, 2]})
    model = FakeModel("identity", idata, block, GOOD)
    return model, {"links": links, "persons": persons}, truth


def _attribution(rng) -> FakeModel:
    post = {"beta": rng.standard_normal((CHAINS, DRAWS, len(CHANNELS)))}
    block = {
        "channels": {
            c: {
                "incremental": {"mean": 10.0 + i, "q05": 8.0 + i, "q95": 12.0 + i},
                "attributed": {"mean": 20.0 + i, "q05": 18.0, "q95": 23.0 + i},
            }
            for i, c in enumerate(CHANNELS)
        },
        "baselines": {
            "last_touch": {c: 15.0 + i for i, c in enumerate(CHANNELS)},
            "shapley": {c: 19.0 - i for i, c in enumerate(CHANNELS)},
        },
    }
    idata = _idata(rng, post, {"beta": ["channel"]}, {"channel": CHANNELS})
    return FakeModel("attribution", idata, block, GOOD)


@pytest.fixture(scope="module")
def full(tmp_path_factory) -> dict[str, Path]:
    """A bundle with all four models and both tables, a truth folder, and its report."""
    rng = np.random.default_rng(0)
    root = tmp_path_factory.mktemp("report")
    ident, tables, devices = _identity(rng)
    models = [ident, _latency(rng), _attribution(rng), _market(rng)]
    bundle = write_bundle(
        root / "bundle",
        models,
        as_of=pd.Timestamp("2026-01-31", tz="UTC"),
        config={"sampler": {"chains": CHAINS, "draws": DRAWS}},
        tables=tables,
    )
    truth = root / "truth"
    truth.mkdir()
    devices.to_parquet(truth / "devices.parquet", index=False)
    days = {str(d): 0.3 * (1 - np.exp(-d / 4)) for d in range(1, 31)}
    (truth / "latency.json").write_text(json.dumps({s: days for s in SEGMENTS}))
    out = root / "out" / "report.html"
    res = runner.invoke(app, ["report", str(bundle), "--out", str(out), "--truth", str(truth)])
    assert res.exit_code == 0, res.output
    assert str(out) in res.output
    return {"bundle": bundle, "truth": truth, "report": out}


@pytest.fixture(scope="module")
def market_only(tmp_path_factory) -> Path:
    rng = np.random.default_rng(1)
    return write_bundle(
        tmp_path_factory.mktemp("report") / "bundle",
        [_market(rng)],
        as_of=pd.Timestamp("2026-01-31", tz="UTC"),
        config={},
    )


class Page(HTMLParser):
    """Collects tags, attributes, section ids and table rows of a report."""

    def __init__(self, text: str):
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.rows: list[list[str]] = []
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, {k: v or "" for k, v in attrs}))
        if tag == "tr":
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._row is not None and self._cell is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.rows.append(self._row)
            self._row = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)

    def attr(self, tag: str, name: str) -> list[str]:
        return [a[name] for t, a in self.tags if t == tag and name in a]

    @property
    def section_ids(self) -> list[str]:
        return self.attr("section", "id")


def _page(path: Path) -> Page:
    return Page(path.read_text(encoding="utf-8"))


def test_every_image_is_an_embedded_valid_png(full):
    from PIL import Image

    srcs = _page(full["report"]).attr("img", "src")
    # rank plots for 4 models, latency curves, attribution, 2 market figures, 2 identity
    assert len(srcs) == 10, len(srcs)
    prefix = "data:image/png;base64,"
    for src in srcs:
        assert src.startswith(prefix), src[:60]
        try:
            raw = base64.b64decode(src[len(prefix) :], validate=True)
        except binascii.Error as exc:  # pragma: no cover - the assertion message
            pytest.fail(f"image is not valid base64: {exc}")
        assert raw.startswith(PNG)
        with Image.open(io.BytesIO(raw)) as im:
            im.verify()
        with Image.open(io.BytesIO(raw)) as im:
            w, h = im.size
            assert 200 < w < 2000 and 100 < h < 2500, im.size  # readable on a laptop


def test_no_external_resources(full):
    text = full["report"].read_text(encoding="utf-8")
    page = Page(text)
    for _tag, attrs in page.tags:
        for key in ("src", "href", "action", "data", "poster"):
            val = attrs.get(key, "").strip().lower()
            assert not val.startswith(("http:", "https:", "//", "ftp:", "file:")), (key, val)
        if "href" in attrs:
            assert attrs["href"].startswith("#"), attrs["href"]
    assert not {t for t, _ in page.tags} & {"script", "link", "iframe", "object", "embed"}
    assert "url(" not in text and "@import" not in text


def test_diagnostics_table_lists_every_model_and_flags_failures(full):
    import json as js

    manifest = js.loads((full["bundle"] / "manifest.json").read_text())
    page = _page(full["report"])
    header = next(r for r in page.rows if r and r[0] == "model")
    assert any("1.01" in h for h in header) and any("400" in h for h in header)
    start = page.rows.index(header)
    table = {r[0]: r for r in page.rows[start + 1 : start + 1 + len(manifest["models"])]}
    assert sorted(table) == sorted(manifest["models"])
    assert table["market"][-1] == "FAIL" and table["market"][1] == "1.08"
    for m in ("identity", "latency", "attribution"):
        assert table[m][-1] == "OK", table[m]
    text = full["report"].read_text(encoding="utf-8")
    alert = text[text.index("class='alert fail'") :]
    alert = alert[: alert.index("</div>")]
    assert "1 of 4 model(s) fail" in alert and "market" in alert and "latency" not in alert
    assert "3 divergent transitions" in alert


def test_sections_header_and_escaping(full):
    text = full["report"].read_text(encoding="utf-8")
    page = Page(text)
    assert page.section_ids == [
        "overview",
        "diagnostics",
        "identity",
        "latency",
        "attribution",
        "market",
    ]
    assert "2026-01-31T00:00:00Z" in text and "gaelp-bayes" in text
    assert "<b>researcher</b>" not in text and "&lt;b&gt;researcher&lt;/b&gt;" in text
    # market: the rank plots show mu (its chains disagree on purpose); CTR table per segment
    assert "market: rank plots of the 6 parameters" in text
    ctr_rows = [r for r in page.rows if r and r[0] in SEGMENTS]
    assert any(len(r) == 1 + len(CHANNELS) for r in ctr_rows)
    # identity: calibration against the truth, attribution: baselines as columns
    assert "expected calibration error" in text
    assert any(
        r[:5] == ["channel", "incremental", "attributed", "last_touch", "shapley"]
        for r in page.rows
    )
    assert "dashed: the true curve" in text


def test_absent_models_are_omitted_and_default_output(market_only):
    res = runner.invoke(app, ["report", str(market_only), "-q"])
    assert res.exit_code == 0, res.output
    assert res.output.strip() == ""
    out = market_only / "report.html"
    page = _page(out)
    assert page.section_ids == ["overview", "diagnostics", "market"]
    assert [h for h in page.attr("a", "href")] == ["#overview", "#diagnostics", "#market"]
    assert len(page.attr("img", "src")) == 3


def test_worst_params_ranks_by_rhat(market_only):
    from gaelp_bayes.bundle import load_bundle
    from gaelp_bayes.report.diagnostics import MAIN_PARAMS, worst_params

    idata = load_bundle(market_only).idata("market")
    worst = worst_params(idata, MAIN_PARAMS["market"], k=3)
    assert {w[0] for w in worst} == {"mu[search]", "mu[social]", "mu[video]"}
    assert worst[0][1].shape == (CHAINS, DRAWS)
    assert worst[0][2] > 1.1


def test_rank_plots_use_the_parameters_the_policy_checks(full):
    text = full["report"].read_text(encoding="utf-8")
    assert "identity: rank plots of the 4 parameters" in text  # lambda, m_ip[0..2]
    from gaelp_bayes.bundle import load_bundle
    from gaelp_bayes.report.diagnostics import PARAM_FUNCS, worst_params

    idata = load_bundle(full["bundle"]).idata("identity")
    names = PARAM_FUNCS["identity"](idata.posterior)
    assert names == ["lambda", "m_ip", "u_ip"]
    assert sorted(w[0] for w in worst_params(idata, names)) == [
        "lambda",
        "m_ip[0]",
        "m_ip[1]",
        "m_ip[2]",
    ]


def test_win_probability_matches_lognormal():
    from scipy.stats import lognorm

    from gaelp_bayes.report.market import win_probability

    mu, sigma = np.array([np.log(0.4), np.log(2.0)]), np.array([0.5, 1.2])
    bids = np.array([0.1, 0.4, 2.0, 5.0])
    p = win_probability(mu, sigma, bids)
    want = np.stack([lognorm(s, scale=np.exp(m)).cdf(bids) for m, s in zip(mu, sigma, strict=True)])
    np.testing.assert_allclose(p, want, rtol=1e-10)
    assert p[0, 1] == pytest.approx(0.5) and p[1, 2] == pytest.approx(0.5)


def test_calibration_bins():
    from gaelp_bayes.report.identity import calibration

    p = np.array([0.05, 0.05, 0.95, 0.95, 0.55])
    y = np.array([0, 1, 1, 1, 0])
    cal = calibration(p, y)
    assert cal["pairs"].tolist() == [2, 0, 0, 0, 0, 1, 0, 0, 0, 2]
    assert cal.loc[0, "observed"] == 0.5 and cal.loc[9, "observed"] == 1.0
    assert cal.loc[5, "mean_p"] == pytest.approx(0.55)


def _assert_user_error(args, *needles):
    res = runner.invoke(app, ["report", *args])
    assert res.exit_code == 1, res.output
    assert "Traceback" not in res.output
    assert res.output.count("error:") == 1, res.output
    for n in needles:
        assert n in res.output, res.output


def test_missing_folder(tmp_path):
    _assert_user_error([str(tmp_path / "nope")], "does not exist", "gaelp-bayes fit")


def test_folder_without_bundle(tmp_path):
    (tmp_path / "events.parquet").write_bytes(b"x")
    _assert_user_error([str(tmp_path)], "not a gaelp-bayes bundle", "manifest.json")


def test_bundle_from_another_version(market_only, tmp_path):
    import shutil

    b = tmp_path / "old"
    shutil.copytree(market_only, b)
    m = json.loads((b / "manifest.json").read_text())
    m.update(bundle_version=99, package_version="9.9.9")
    (b / "manifest.json").write_text(json.dumps(m))
    _assert_user_error([str(b)], "9.9.9", "bundle format 99", "Refit")


def test_incomplete_bundle(market_only, tmp_path):
    import shutil

    b = tmp_path / "broken"
    shutil.copytree(market_only, b)
    (b / "market.nc").unlink()
    _assert_user_error([str(b)], "market.nc is missing", "refit")


@pytest.mark.parametrize("damage", ["no_summary", "bad_summary"])
def test_damaged_summary(market_only, tmp_path, damage):
    import shutil

    b = tmp_path / "broken"
    shutil.copytree(market_only, b)
    if damage == "no_summary":
        (b / "summary.json").unlink()
    else:
        (b / "summary.json").write_text("{not json")
    _assert_user_error([str(b)], "incomplete or damaged", "refit")


@pytest.mark.parametrize("where", ["folder", "under_a_file"])
def test_unwritable_out(market_only, tmp_path, where):
    if where == "folder":
        out = tmp_path
    else:
        (tmp_path / "f.txt").write_text("x")
        out = tmp_path / "f.txt" / "report.html"
    _assert_user_error(
        [str(market_only), "--out", str(out)], "--out" if where == "folder" else "is a file"
    )
    assert not list(tmp_path.glob(".*.tmp"))


def test_report_help():
    res = runner.invoke(app, ["report", "--help"])
    assert res.exit_code == 0 and "--out" in res.output


@pytest.mark.slow
def test_report_on_a_fitted_market_bundle(tmp_path):
    """End to end through the CLI on a real (tiny) market fit."""
    world, bundle = tmp_path / "w", tmp_path / "b"
    res = runner.invoke(
        app, ["example-data", str(world), "--persons", "200", "--days", "5", "--seed", "1", "-q"]
    )
    assert res.exit_code == 0, res.output
    res = runner.invoke(
        app,
        [
            "fit",
            str(world / "events.parquet"),
            "--auctions",
            str(world / "auctions.parquet"),
            "--out",
            str(bundle),
            "--models",
            "market",
            "--draws",
            "30",
            "--tune",
            "30",
            "-q",
        ],
    )
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["report", str(bundle), "--truth", str(world / "truth"), "-q"])
    assert res.exit_code == 0, res.output
    page = _page(bundle / "report.html")
    assert page.section_ids == ["overview", "diagnostics", "market"]
    assert all(s.startswith("data:image/png;base64,") for s in page.attr("img", "src"))
    assert len(page.attr("img", "src")) == 3
