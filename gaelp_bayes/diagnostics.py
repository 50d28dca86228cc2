"""Convergence diagnostics of an InferenceData, and the project's policy on them."""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass

import numpy as np

from gaelp_bayes.errors import ConvergenceWarning

#: The diagnostics policy: beyond these a fit is flagged loudly.
MAX_RHAT = 1.01
MIN_ESS = 400


@dataclass(frozen=True)
class Diagnostics:
    max_rhat: float
    min_ess_bulk: float
    min_ess_tail: float
    divergences: int
    chains: int
    draws: int
    var_names: tuple[str, ...] = ()  # the posterior variables these figures cover

    @classmethod
    def pooled(cls, fits: list[Diagnostics], var_names: tuple[str, ...] = ()) -> Diagnostics:
        """Diagnostics of independent fits pooled into one posterior (multiple imputation).

        ESS adds over independent runs: the sum of each fit's smallest ESS is a
        lower bound of the pooled one. R-hat is the worst within a fit (the
        fits differ by design, so R-hat across them would measure the
        imputation, not convergence). Divergences and draws add up.
        """
        return cls(
            max_rhat=max(d.max_rhat for d in fits),
            min_ess_bulk=sum(d.min_ess_bulk for d in fits),
            min_ess_tail=sum(d.min_ess_tail for d in fits),
            divergences=sum(d.divergences for d in fits),
            chains=fits[0].chains,
            draws=sum(d.draws for d in fits),
            var_names=tuple(var_names),
        )

    @property
    def problems(self) -> list[str]:
        out = []
        if not np.isfinite(self.max_rhat) or self.max_rhat > MAX_RHAT:
            out.append(f"max R-hat {self.max_rhat:.3f} > {MAX_RHAT}")
        if self.min_ess_bulk < MIN_ESS:
            out.append(f"min bulk ESS {self.min_ess_bulk:.0f} < {MIN_ESS}")
        if self.min_ess_tail < MIN_ESS:
            out.append(f"min tail ESS {self.min_ess_tail:.0f} < {MIN_ESS}")
        if self.divergences:
            out.append(f"{self.divergences} divergent transitions")
        return out

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict:
        d = asdict(self)
        d["var_names"] = list(self.var_names)
        return {**d, "ok": self.ok, "problems": self.problems}


def diagnose(idata, var_names: list[str] | None = None) -> Diagnostics:
    """R-hat, bulk/tail ESS over the posterior variables, and divergences."""
    import arviz as az

    post = idata.posterior
    names = var_names or [v for v in post.data_vars if not v.startswith("_")]
    rhat = az.rhat(post, var_names=names)
    ess_b = az.ess(post, var_names=names, method="bulk")
    ess_t = az.ess(post, var_names=names, method="tail")

    def agg(ds, fn) -> float:
        vals = [float(fn(ds[v].values)) for v in ds.data_vars if ds[v].size]
        return float(fn(np.array(vals))) if vals else float("nan")

    div = 0
    if hasattr(idata, "sample_stats"):  # "<part>_diverging": a merged run (merge_independent)
        for v in idata.sample_stats.data_vars:
            if v == "diverging" or v.endswith("_diverging"):
                div += int(idata.sample_stats[v].values.sum())
    return Diagnostics(
        max_rhat=agg(rhat, np.nanmax),
        min_ess_bulk=agg(ess_b, np.nanmin),
        min_ess_tail=agg(ess_t, np.nanmin),
        divergences=div,
        chains=int(post.sizes["chain"]),
        draws=int(post.sizes["draw"]),
        var_names=tuple(names),
    )


def warn_if_poor(diag: Diagnostics, model: str) -> None:
    """Emit a :class:`ConvergenceWarning` naming the model and each problem."""
    if diag.problems:
        warnings.warn(
            f"{model}: the posterior may be unreliable: {'; '.join(diag.problems)}. "
            "Try more --tune/--draws, or check the model's fit in the report.",
            ConvergenceWarning,
            stacklevel=2,
        )


def interval(samples, axis=None) -> dict[str, float]:
    """``{"mean", "q05", "q95"}`` of draws (the contract's interval object)."""
    x = np.asarray(samples, dtype=float)
    return {
        "mean": float(np.mean(x, axis=axis)),
        "q05": float(np.quantile(x, 0.05, axis=axis)),
        "q95": float(np.quantile(x, 0.95, axis=axis)),
    }
