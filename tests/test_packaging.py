"""Packaging: models/ and cli/ install only inside the gaelp_bayes namespace."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MAPPED = {
    "gaelp_bayes": REPO / "gaelp_bayes",
    "gaelp_bayes.models": REPO / "models",
    "gaelp_bayes.cli": REPO / "cli",
}


def _source_packages() -> set[str]:
    """Every folder with Python files under the three package roots, as a dotted name."""
    found = set()
    for name, root in MAPPED.items():
        for init in root.rglob("*.py"):
            rel = init.parent.relative_to(root)
            if "__pycache__" in rel.parts:
                continue
            found.add(".".join([name, *rel.parts]))
    return found


def _folder(pkg: str) -> Path:
    base = max((n for n in MAPPED if pkg == n or pkg.startswith(n + ".")), key=len)
    rest = pkg[len(base) + 1 :]
    return MAPPED[base].joinpath(*rest.split(".")) if rest else MAPPED[base]


def test_every_source_folder_is_in_the_explicit_package_list():
    cfg = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(cfg["packages"])
    missing = _source_packages() - listed
    assert not missing, f"add {sorted(missing)} to [tool.setuptools] packages in pyproject.toml"
    for pkg in listed:  # and every listed package is a real folder with an __init__
        assert (_folder(pkg) / "__init__.py").exists(), pkg
    assert cfg["package-dir"] == {
        "gaelp_bayes": "gaelp_bayes",
        "gaelp_bayes.models": "models",
        "gaelp_bayes.cli": "cli",
    }


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(REPO),
        ],
        capture_output=True,
        text=True,
        cwd=out,
    )
    assert res.returncode == 0, res.stderr
    return next(out.glob("gaelp_bayes-*.whl"))


def test_wheel_maps_models_and_cli_into_the_namespace(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert "models" not in tops and "cli" not in tops, sorted(tops)
    for pkg in _source_packages():
        assert pkg.replace(".", "/") + "/__init__.py" in names, pkg
    assert "gaelp_bayes/py.typed" in names
    assert "gaelp_bayes/cli/main.py" in names
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "gaelp-bayes = gaelp_bayes.cli.main:main" in zipfile.ZipFile(wheel).read(entry).decode()


def test_bare_models_and_cli_are_not_importable(tmp_path):
    """From outside the source tree only the namespaced packages import."""
    code = (
        "import importlib.util, sys\n"
        "assert importlib.util.find_spec('models') is None, 'bare models importable'\n"
        "assert importlib.util.find_spec('cli') is None, 'bare cli importable'\n"
        "import gaelp_bayes.models, gaelp_bayes.cli.main\n"
        "print('ok')\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stdout + res.stderr


def test_torch_is_optional_and_pinned_to_the_cpu_wheel():
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert not any(d.startswith("torch") for d in meta["dependencies"])
    rl = meta["optional-dependencies"]["rl"]
    # torch itself is pinned to the CPU wheel; the rest of the extra (an RL
    # library) may depend on torch but must not name it again unpinned.
    assert rl[0] == "torch==2.13.0"
    assert not any(d.startswith("torch") for d in rl[1:])
    for name, deps in meta["optional-dependencies"].items():
        if name != "rl":
            assert not any(d.startswith("torch") or "[rl" in d for d in deps), name
    for extra in ("test", "pymc", "rl", "spark", "dev"):
        assert extra in meta["optional-dependencies"]
