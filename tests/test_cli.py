"""The command line: exit codes, messages, no tracebacks for user mistakes."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from gaelp_bayes import __version__
from gaelp_bayes.cli.main import app

runner = CliRunner()


def test_version():
    res = runner.invoke(app, ["--version"])
    assert res.exit_code == 0
    assert res.output.strip() == f"gaelp-bayes {__version__}"


@pytest.mark.parametrize("cmd", ["example-data", "validate", "quickstart", "fit", "report"])
def test_every_command_has_help(cmd):
    res = runner.invoke(app, [cmd, "--help"])
    assert res.exit_code == 0, res.output
    assert "Usage" in res.output


def test_no_arguments_shows_help():
    res = runner.invoke(app, [])
    assert res.exit_code in (0, 2)
    assert "example-data" in res.output


def test_example_data_writes_world(tmp_path):
    out = tmp_path / "w"
    res = runner.invoke(
        app, ["example-data", str(out), "--persons", "300", "--days", "10", "--seed", "4"]
    )
    assert res.exit_code == 0, res.output
    assert "SYNTHETIC" in res.output
    params = json.loads((out / "truth" / "params.json").read_text())
    assert (params["persons"], params["days"], params["seed"]) == (300, 10, 4)
    assert (out / "events.parquet").exists() and (out / "auctions.parquet").exists()


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--world", "atlantis"], 1, "unknown world 'atlantis'"),
        (["--format", "xml"], 2, "--format must be one of"),
        (["--persons", "0"], 2, "persons"),
    ],
)
def test_example_data_user_errors(tmp_path, args, code, message):
    res = runner.invoke(app, ["example-data", str(tmp_path / "w"), *args])
    assert res.exit_code == code, res.output
    assert message in res.output
    assert "Traceback" not in res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)


def test_example_data_refuses_a_file_as_out_dir(tmp_path):
    f = tmp_path / "file.txt"
    f.write_text("keep me")
    res = runner.invoke(app, ["example-data", str(f), "--persons", "100"])
    assert res.exit_code == 2
    assert "not a folder" in res.output
    assert f.read_text() == "keep me"


def test_unknown_option_is_a_usage_error():
    res = runner.invoke(app, ["example-data", "--no-such-option"])
    assert res.exit_code == 2


def test_quickstart_runs_end_to_end(tmp_path):
    out = tmp_path / "qs"
    res = runner.invoke(
        app,
        [
            "quickstart",
            "--out",
            str(out),
            "--persons",
            "400",
            "--days",
            "14",
            "--draws",
            "50",
            "--quiet",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "quickstart done" in res.output
    assert (out / "data" / "events.parquet").exists()
    assert (out / "data" / "truth" / "latency.json").exists()
    manifest = json.loads((out / "bundle" / "manifest.json").read_text())
    assert {"latency", "attribution", "market"} <= set(manifest["models"])
    assert "<html" in (out / "report.html").read_text()[:500].lower()
    assert "P(convert)" in res.output
    # the plan at the end: a contract schedule and its summary, spending within the budget
    schedule, summary = out / "plan" / "schedule.csv", out / "plan" / "schedule.json"
    assert schedule.exists() and summary.exists()
    s = json.loads(summary.read_text())
    assert s["days"] == 7 and s["budget"] > 0
    # execution stops at the start of the hour after the budget is reached, so a
    # draw may overshoot by up to one hour's spend (docs/simulator.md); on average it may not
    assert s["spend"]["mean"] <= s["budget"] * (1 + 1e-9)
    assert "plan     7 days" in res.output


def test_quickstart_refuses_a_bad_budget(tmp_path):
    res = runner.invoke(
        app,
        [
            "quickstart",
            "--out",
            str(tmp_path / "qs"),
            "--persons",
            "400",
            "--days",
            "14",
            "--draws",
            "50",
            "--budget",
            "-5",
            "--quiet",
        ],
    )
    assert res.exit_code == 2 and "--budget must be a positive amount" in res.output
    assert not (tmp_path / "qs").exists()  # refused before any work


def test_console_script_runs(tmp_path):
    """The installed entry point, as a user calls it: no traceback on a user error."""
    import shutil
    import subprocess

    exe = shutil.which("gaelp-bayes")
    if exe is None:
        pytest.skip("gaelp-bayes is not on PATH (package not installed)")
    res = subprocess.run(
        [exe, "example-data", str(tmp_path), "--world", "x"], capture_output=True, text=True
    )
    assert res.returncode == 1
    assert "unknown world" in res.stderr and "Traceback" not in res.stderr


def test_fit_writes_a_contract_bundle(small_world, check_contract, tmp_path):
    """fit on the example world's export (the market model alone keeps this fast)."""
    import subprocess
    import sys

    out = tmp_path / "bundle"
    res = runner.invoke(
        app,
        [
            "fit",
            str(small_world / "events.parquet"),
            "--auctions",
            str(small_world / "auctions.parquet"),
            "--out",
            str(out),
            "--models",
            "market",
            "--draws",
            "50",
            "--tune",
            "50",
            "--chains",
            "1",
            "--seed",
            "3",
            "--quiet",
        ],
    )
    assert res.exit_code == 0, res.output
    check = subprocess.run(
        [sys.executable, str(check_contract), "bundle", str(out)], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["models"] == ["market"]
    assert manifest["config"]["sampler"]["draws"] == 50
    assert set(manifest["diagnostics"]["market"]) >= {"max_rhat", "min_ess_bulk", "divergences"}


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--models", "market,psychic"], 2, "unknown model(s) psychic"),
        (["--as-of", "yesterday-ish"], 2, "--as-of"),
        (["--as-of", "1999-01-01T00:00:00Z"], 2, "before the first event"),
    ],
)
def test_fit_user_errors(small_world, tmp_path, args, code, message):
    res = runner.invoke(
        app, ["fit", str(small_world / "events.parquet"), "--out", str(tmp_path / "b"), *args]
    )
    assert res.exit_code == code, res.output
    assert message in res.output and "Traceback" not in res.output


def test_fit_missing_input_and_bad_config(tmp_path, small_world):
    res = runner.invoke(app, ["fit", str(tmp_path / "nope.parquet"), "--out", str(tmp_path / "b")])
    assert res.exit_code == 1 and "does not exist" in res.output
    cfg = tmp_path / "c.toml"
    cfg.write_text("[sampler]\nchains = 0\n")
    res = runner.invoke(
        app,
        [
            "fit",
            str(small_world / "events.parquet"),
            "--out",
            str(tmp_path / "b"),
            "--config",
            str(cfg),
        ],
    )
    assert res.exit_code == 1 and "sampler.chains" in res.output


@pytest.mark.parametrize("content", ["", "device_id,timestamp,event_type\n"])
def test_fit_on_an_empty_file_is_a_user_error(tmp_path, content):
    src = tmp_path / "events.csv"
    src.write_text(content)
    res = runner.invoke(app, ["fit", str(src), "--out", str(tmp_path / "b")])
    assert res.exit_code == 1, res.output
    assert str(src) in res.output and "Traceback" not in res.output
    assert not (tmp_path / "b").exists()


def test_fit_refuses_an_out_that_is_not_a_bundle_and_loses_nothing(small_world, tmp_path):
    events = str(small_world / "events.parquet")
    a_file = tmp_path / "notes.txt"
    a_file.write_text("keep me")
    res = runner.invoke(app, ["fit", events, "--out", str(a_file)])
    assert res.exit_code == 1 and "is a file" in res.output, res.output
    assert a_file.read_text() == "keep me"
    # the data folder itself as --out: other files, no manifest
    before = sorted(p.name for p in small_world.iterdir())
    res = runner.invoke(app, ["fit", events, "--out", str(small_world)])
    assert res.exit_code == 1 and "no bundle manifest" in res.output, res.output
    assert sorted(p.name for p in small_world.iterdir()) == before
