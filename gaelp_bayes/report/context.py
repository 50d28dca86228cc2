"""What every section function receives: the bundle, optional ground truth, and limits."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gaelp_bayes.bundle import Bundle
from gaelp_bayes.errors import InputNotFoundError

__all__ = ["ReportContext", "draws"]


@dataclass
class ReportContext:
    """Inputs of the report sections.

    ``truth`` is an optional ground-truth folder (``example-data``'s
    ``truth/``): sections that can compare against it (identity calibration,
    true latency curves) do so; without it they say what is missing.
    ``max_panels`` caps the diagnostics panels per model, ``max_draws`` the
    posterior draws used for result plots (evenly thinned), to keep the report
    fast and readable.
    """

    bundle: Bundle
    truth: Path | None = None
    max_panels: int = 6
    max_draws: int = 400

    def has(self, model: str) -> bool:
        return model in self.bundle.models

    def has_table(self, name: str) -> bool:
        return (self.bundle.path / f"{name}.parquet").is_file()

    def idata(self, model: str):
        """The model's InferenceData; a missing or unreadable NetCDF is a clear error."""
        path = self.bundle.path / f"{model}.nc"
        if not path.is_file():
            raise InputNotFoundError(
                f"bundle {self.bundle.path} lists model '{model}' but {path.name} is missing; "
                "the bundle is incomplete: refit it with `gaelp-bayes fit`"
            )
        try:
            return self.bundle.idata(model)
        except (OSError, ValueError) as exc:
            raise InputNotFoundError(
                f"cannot read {path} ({exc}); the bundle may be damaged: refit it"
            ) from None

    def truth_json(self, name: str) -> Any | None:
        """``truth/<name>`` parsed, or ``None`` when no truth folder or file is given."""
        if self.truth is None or not (self.truth / name).is_file():
            return None
        return json.loads((self.truth / name).read_text())

    def truth_table(self, name: str):
        import pandas as pd

        if self.truth is None or not (self.truth / name).is_file():
            return None
        return pd.read_parquet(self.truth / name)


def draws(idata, var: str, max_draws: int | None = None) -> np.ndarray:
    """Posterior draws of ``var`` with chain and draw flattened (evenly thinned)."""
    x = np.asarray(idata.posterior[var].values, dtype=float)
    x = x.reshape((-1, *x.shape[2:]))
    if max_draws and x.shape[0] > max_draws:
        x = x[np.linspace(0, x.shape[0] - 1, max_draws).round().astype(int)]
    return x
