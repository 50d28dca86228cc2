"""The model bundle: what ``gaelp-bayes fit`` writes (data contract section 4).

A bundle is a folder with ``manifest.json`` (versions, input fingerprint,
``as_of``, configuration, fitted models, diagnostics), one ArviZ
``InferenceData`` NetCDF per model, optional tables, and ``summary.json``
(the headline posteriors, data contract section 5).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from gaelp_bayes import __version__
from gaelp_bayes.diagnostics import Diagnostics
from gaelp_bayes.errors import BundleVersionError, InputNotFoundError

#: Layout version of bundles; bump when a reader of the old layout would misread the new one.
BUNDLE_FORMAT = "gaelp-bayes-bundle"
BUNDLE_VERSION = 1


class FittedModel(Protocol):
    """What every fitted model hands to the bundle writer."""

    name: str

    @property
    def idata(self) -> Any: ...  # arviz.InferenceData

    def summary(self) -> dict[str, Any]: ...  # the model's block of summary.json

    def diagnostics(self) -> Diagnostics: ...


def fingerprint(paths: Iterable[str | Path]) -> str:
    """SHA-256 over the bytes of every input file (folders: their files, sorted)."""
    h = hashlib.sha256()
    for p in sorted(Path(x) for x in paths):
        files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
        for f in files:
            h.update(f.name.encode())
            with f.open("rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
    return h.hexdigest()


def _iso(ts: pd.Timestamp) -> str:
    return pd.Timestamp(ts).tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ")


def write_bundle(
    out_dir: str | Path,
    models: Sequence[FittedModel],
    *,
    as_of: pd.Timestamp,
    config: dict[str, Any],
    inputs: Sequence[str | Path] = (),
    tables: dict[str, pd.DataFrame] | None = None,
    extra_summary: dict[str, Any] | None = None,
    fit_seconds: dict[str, float] | None = None,
) -> Path:
    """Write a bundle folder and return its path.

    ``fit_seconds`` (wall time per model, when the caller measured it) goes
    into the manifest, so a slow fit can be traced to its model.

    The bundle is written into a temporary sibling folder and moved into
    place only when complete: a failed write leaves any previous bundle at
    ``out_dir`` untouched, and a re-fit never mixes files of two fits.
    """
    final = Path(out_dir)
    final.parent.mkdir(parents=True, exist_ok=True)
    out = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        _write_into(out, models, as_of, config, inputs, tables, extra_summary, fit_seconds)
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise
    if final.exists():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        final.rename(old)
        out.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        out.rename(final)
    return final


def _write_into(
    out, models, as_of, config, inputs, tables, extra_summary, fit_seconds=None
) -> None:
    summary: dict[str, Any] = {"as_of": _iso(as_of)}
    diagnostics = {}
    for m in models:
        m.idata.to_netcdf(str(out / f"{m.name}.nc"))
        summary[m.name] = m.summary()
        diagnostics[m.name] = m.diagnostics().to_dict()
    summary.update(extra_summary or {})
    for name, df in (tables or {}).items():
        df.to_parquet(out / f"{name}.parquet", index=False)
    manifest = {
        "format": BUNDLE_FORMAT,
        "bundle_version": BUNDLE_VERSION,
        "package_version": __version__,
        "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "as_of": _iso(as_of),
        "input": {
            "paths": [str(p) for p in inputs],
            "fingerprint": fingerprint(inputs) if inputs else None,
        },
        "config": config,
        "models": [m.name for m in models],
        "tables": sorted(tables or {}),
        "diagnostics": diagnostics,
    }
    if fit_seconds:
        manifest["fit_seconds"] = {k: round(float(v), 1) for k, v in fit_seconds.items()}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")


@dataclass
class Bundle:
    """A bundle read back: manifest, summary, and lazily opened posteriors and tables."""

    path: Path
    manifest: dict[str, Any]
    summary: dict[str, Any]
    _idata: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def models(self) -> list[str]:
        return list(self.manifest.get("models", []))

    @property
    def as_of(self) -> pd.Timestamp:
        return pd.Timestamp(self.manifest["as_of"])

    def idata(self, model: str):
        """The model's InferenceData."""
        import arviz as az

        if model not in self.models:
            raise InputNotFoundError(
                f"bundle {self.path} has no '{model}' model; it has: {', '.join(self.models) or 'none'}"
            )
        if model not in self._idata:
            self._idata[model] = az.from_netcdf(str(self.path / f"{model}.nc"))
        return self._idata[model]

    def table(self, name: str) -> pd.DataFrame:
        p = self.path / f"{name}.parquet"
        if not p.exists():
            raise InputNotFoundError(f"bundle {self.path} has no table '{name}'")
        return pd.read_parquet(p)


def load_bundle(path: str | Path) -> Bundle:
    """Read a bundle; refuse one from an incompatible version, naming both versions."""
    p = Path(path)
    mpath = p / "manifest.json"
    if not mpath.is_file():
        raise InputNotFoundError(
            f"{p} is not a gaelp-bayes bundle (no manifest.json); create one with `gaelp-bayes fit`"
        )
    try:
        manifest = json.loads(mpath.read_text())
    except json.JSONDecodeError as exc:
        raise InputNotFoundError(f"{mpath} is not valid JSON ({exc}); refit the bundle") from None
    if manifest.get("format") != BUNDLE_FORMAT or manifest.get("bundle_version") != BUNDLE_VERSION:
        raise BundleVersionError(
            f"bundle {p} was written by gaelp-bayes {manifest.get('package_version', 'unknown')} "
            f"(bundle format {manifest.get('bundle_version', 'unknown')}); this is gaelp-bayes "
            f"{__version__} (bundle format {BUNDLE_VERSION}). Refit with this version: "
            "gaelp-bayes fit ..."
        )
    spath = p / "summary.json"
    try:
        summary = json.loads(spath.read_text())
    except FileNotFoundError:
        raise InputNotFoundError(
            f"bundle {p} is incomplete or damaged (no summary.json); refit it with `gaelp-bayes fit`"
        ) from None
    except json.JSONDecodeError as exc:
        raise InputNotFoundError(
            f"bundle {p} is incomplete or damaged ({spath.name} is not valid JSON: {exc}); "
            "refit it with `gaelp-bayes fit`"
        ) from None
    return Bundle(path=p, manifest=manifest, summary=summary)
