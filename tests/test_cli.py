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


@pytest.mark.parametrize("cmd", ["example-data", "validate", "quickstart", "fit"])
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
        (["--format", "ga4"], 1, "not implemented yet"),
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
        app, ["quickstart", "--out", str(out), "--persons", "300", "--days", "10", "--quiet"]
    )
    assert res.exit_code == 0, res.output
    assert "quickstart done" in res.output
    assert (out / "data" / "events.parquet").exists()
    assert (out / "data" / "truth" / "latency.json").exists()


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
