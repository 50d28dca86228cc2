"""Latency: a hierarchical mixture-cure model of the time from first touch to conversion.

For a person of segment ``s`` (with optional covariate cell ``x``)::

    P(eventual conversion)  p = inv_logit(a_s + x @ beta)
    a_s ~ Normal(mu_logit, sigma_logit)                       (partially pooled)
    delay | converts        T ~ sum_c w[s, c] F(t; scale[s, c], shape[s, c])
    log scale[s, c] ~ Normal(mu_log_scale[c], sigma_log_scale[c])
    log shape[s, c] ~ Normal(log_shape[c], sigma_log_shape)   (or shared: shape_by_segment)

with ``F`` a Weibull, log-logistic or log-normal distribution (``delay``) and
one component (the default) or two (``components = 2``, a more flexible delay
whose second component is slower: ``mu_log_scale[1] = mu_log_scale[0] +
exp(log_gap)``, and whose weights ``w[s, 0] = inv_logit(logit_mix[s])``, ``logit_mix[s] ~
Normal(mu_mix, sigma_mix)``, are partially pooled). Segment effects are
sampled centered or non-centered (``parametrization``; ``auto`` centers when
every segment has enough conversions for the data to dominate).

Likelihood. Times are cut into buckets of ``bucket_days``. A conversion in
bucket ``[lo, hi)`` contributes ``log p + log(S(lo) - S(hi))`` (interval
censoring), a journey still open at ``as_of`` with elapsed time in ``[lo, hi)``
contributes ``log(1 - p + p S(lo))`` (censored at ``lo``, which it certainly
survived). Both are exact likelihoods of the coarsened data, so the bucket
width costs a little information but adds no bias, and identical
``(segment, cell, bucket, status)`` rows are aggregated with weights: the
cost grows with the number of buckets, not of persons.

The NumPyro model (:func:`latency_model`) is the engine; :func:`build_pymc_model`
is the same model in PyMC (the reference, equal log-density at any point,
sampled with ``backend = "pymc"``).

Example
-------
>>> from gaelp_bayes.config import Config, SamplerConfig
>>> from gaelp_bayes.models.latency import fit  # doctest: +SKIP
>>> model = fit(events, as_of, Config(SamplerConfig(draws=500)))  # doctest: +SKIP
>>> model.summary()["segments"]["all"]["p_convert"]  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from gaelp_bayes.config import Config, SamplerConfig
from gaelp_bayes.diagnostics import Diagnostics, diagnose, interval
from gaelp_bayes.errors import DataError, MissingDependencyError, NotYetSupportedError
from gaelp_bayes.journeys import build_journeys, journey_times

DELAYS = ("weibull", "loglogistic", "lognormal")
#: log of the smallest time (days) the model represents (about 0.1 s); a bucket edge at 0
#: is treated as exactly 0 (S = 1).
LOG_T_MIN = math.log(1e-6)
#: Sampled (free) variables of the model, in a fixed order; which exist depends on the data.
FREE_SITES = (
    "mu_logit",
    "sigma_logit",
    "logit_p",
    "z_logit_p",
    "beta",
    "mu_log_scale",
    "log_gap",
    "sigma_log_scale",
    "log_scale",
    "z_log_scale",
    "log_shape",
    "sigma_log_shape",
    "log_shape_s",
    "z_log_shape_s",
    "mu_mix",
    "sigma_mix",
    "logit_mix",
    "z_logit_mix",
)


@dataclass(frozen=True)
class LatencyConfig:
    """Everything the latency model lets a user choose: the ``[latency]`` TOML table.

    Priors are on the logit of P(eventual conversion), the log of the delay
    scale (days; it is the median of a one-component log-logistic or
    log-normal delay) and the log of the shape (Weibull / log-logistic shape;
    for the log-normal, ``1 / sigma`` of log-time, so that a larger shape
    always means a more concentrated delay).
    """

    delay: str = "weibull"
    components: int = 1
    cure: bool = True
    bucket_days: float = 0.25
    covariates: list[str] = field(default_factory=list)
    shape_by_segment: bool = True
    parametrization: str = "auto"
    cdf_days: int = 30
    nowcast_horizon_days: float = 14.0
    identity_draws: int = 4
    prior_logit_mean: float = -1.5
    prior_logit_sd: float = 1.5
    prior_logit_pool_sd: float = 1.0
    prior_covariate_sd: float = 1.0
    prior_log_scale_mean: float = 1.5
    prior_log_scale_sd: float = 1.5
    prior_log_scale_pool_sd: float = 1.0
    prior_log_shape_mean: float = 0.0
    prior_log_shape_sd: float = 1.0
    prior_log_shape_pool_sd: float = 0.5
    prior_log_gap_mean: float = 1.0
    prior_log_gap_sd: float = 1.0
    prior_mix_mean: float = 0.0
    prior_mix_sd: float = 1.5
    prior_mix_pool_sd: float = 1.0

    def validate(self) -> list[str]:
        problems = []
        if self.delay not in DELAYS:
            problems.append(f"latency.delay must be one of {', '.join(DELAYS)}, got {self.delay!r}")
        if self.parametrization not in ("auto", "centered", "noncentered"):
            problems.append(
                "latency.parametrization must be 'auto', 'centered' or 'noncentered', "
                f"got {self.parametrization!r}"
            )
        if self.components not in (1, 2):
            problems.append(f"latency.components must be 1 or 2, got {self.components!r}")
        if not (isinstance(self.bucket_days, float) and 0 < self.bucket_days <= 7):
            problems.append(f"latency.bucket_days must be in (0, 7] days, got {self.bucket_days!r}")
        if not isinstance(self.covariates, list) or not all(
            isinstance(c, str) for c in self.covariates
        ):
            problems.append(
                f"latency.covariates must be a list of journey column names, got {self.covariates!r}"
            )
        if not isinstance(self.cdf_days, int) or self.cdf_days < 1:
            problems.append(f"latency.cdf_days must be a positive integer, got {self.cdf_days!r}")
        if self.nowcast_horizon_days <= 0:
            problems.append(
                f"latency.nowcast_horizon_days must be > 0, got {self.nowcast_horizon_days!r}"
            )
        if not isinstance(self.identity_draws, int) or self.identity_draws < 1:
            problems.append(f"latency.identity_draws must be >= 1, got {self.identity_draws!r}")
        for f in dataclasses.fields(self):
            if f.name.endswith("_sd") and not getattr(self, f.name) > 0:
                problems.append(f"latency.{f.name} must be > 0, got {getattr(self, f.name)!r}")
        return problems


# --------------------------------------------------------------------------- data


@dataclass
class LatencyData:
    """Journeys aggregated into weighted ``(segment, cell, bucket, status)`` rows.

    ``lo``/``hi`` are the bucket edges in days (``hi`` is unused for open
    journeys), ``count`` the number of persons of each row, ``x`` the
    covariate design matrix of each cell (reference level dropped), and
    ``cell_persons[s, c]`` the persons of segment ``s`` in cell ``c``.
    """

    segments: list[str]
    seg: np.ndarray
    cell: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    event: np.ndarray
    count: np.ndarray
    x: np.ndarray
    covariate_names: list[str]
    cell_persons: np.ndarray
    bucket_days: float

    @property
    def n_segments(self) -> int:
        return len(self.segments)

    @property
    def persons(self) -> np.ndarray:
        return self.cell_persons.sum(axis=1)

    def model_kwargs(self) -> dict[str, Any]:
        return {
            "seg": self.seg.astype(np.int32),
            "cell": self.cell.astype(np.int32),
            "log_lo": _log_t(self.lo),
            "log_hi": _log_t(self.hi),
            "event": self.event.astype(bool),
            "count": self.count.astype(np.float32),
            "x": self.x.astype(np.float32),
            "n_segments": self.n_segments,
        }


def _log_t(t: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.maximum(np.log(np.asarray(t, dtype=np.float64)), LOG_T_MIN).astype(np.float32)


def aggregate(
    journeys: pd.DataFrame,
    as_of: pd.Timestamp,
    config: LatencyConfig | None = None,
    segments: list[str] | None = None,
) -> LatencyData:
    """Aggregate journeys (from :func:`~gaelp_bayes.journeys.build_journeys`) into model rows."""
    cfg = config or LatencyConfig()
    if journeys.empty:
        raise DataError(
            "the latency model needs at least one journey (a person with an impression, "
            "click, visit or conversion before as_of); found none",
            hint="check --as-of and that the events hold touches",
        )
    days, converted = journey_times(journeys, as_of)
    return aggregate_times(
        days,
        converted,
        journeys["segment"].astype(str).to_numpy(),
        cfg,
        covariates={c: _covariate(journeys, c) for c in cfg.covariates},
        segments=segments,
    )


def _covariate(journeys: pd.DataFrame, name: str) -> np.ndarray:
    if name not in journeys.columns:
        raise DataError(
            f"latency covariate '{name}' is not a journey column; "
            f"journeys have: {', '.join(journeys.columns)}",
            hint="set [latency] covariates to e.g. ['first_channel', 'first_device_type']",
        )
    return (
        journeys[name]
        .astype(object)
        .where(journeys[name].notna(), "unknown")
        .astype(str)
        .to_numpy()
    )


def aggregate_times(
    days: np.ndarray,
    converted: np.ndarray,
    segment: np.ndarray,
    config: LatencyConfig | None = None,
    covariates: dict[str, np.ndarray] | None = None,
    segments: list[str] | None = None,
) -> LatencyData:
    """Aggregate per-person elapsed days and status into weighted rows (see :class:`LatencyData`)."""
    cfg = config or LatencyConfig()
    days = np.maximum(np.asarray(days, dtype=np.float64), 0.0)
    converted = np.asarray(converted, dtype=bool)
    seg_names = segments if segments is not None else sorted(pd.unique(segment).tolist())
    seg_code = pd.Categorical(segment, categories=seg_names).codes.astype(np.int64)
    if (seg_code < 0).any():
        raise DataError(f"segments {sorted(set(segment) - set(seg_names))} not in {seg_names}")
    covariates = covariates or {}
    # covariate cells: unique level combinations; dummy columns drop the most frequent level
    cols, names = [], []
    codes = np.zeros(days.size, dtype=np.int64)
    for cname, values in covariates.items():
        levels = pd.Series(values).value_counts().index.tolist()
        code = pd.Categorical(values, categories=levels).codes.astype(np.int64)
        codes = codes * len(levels) + code
        cols.append((cname, levels))
        names += [f"{cname}={lv}" for lv in levels[1:]]
    cell_keys, cell = np.unique(codes, return_inverse=True)
    x = np.zeros((cell_keys.size, len(names)), dtype=np.float64)
    rem = cell_keys.copy()
    offset = len(names)
    for _cname, levels in reversed(cols):
        lv = rem % len(levels)
        rem //= len(levels)
        offset -= len(levels) - 1
        for j in range(1, len(levels)):
            x[lv == j, offset + j - 1] = 1.0
    bucket = np.floor(days / cfg.bucket_days).astype(np.int64)
    key = pd.DataFrame({"s": seg_code, "c": cell, "b": bucket, "e": converted})
    rows = key.groupby(["s", "c", "b", "e"], sort=True).size().reset_index(name="n")
    b = rows["b"].to_numpy()
    cell_persons = np.zeros((len(seg_names), cell_keys.size))
    np.add.at(cell_persons, (seg_code, cell), 1.0)
    return LatencyData(
        segments=list(seg_names),
        seg=rows["s"].to_numpy(),
        cell=rows["c"].to_numpy(),
        lo=b * cfg.bucket_days,
        hi=(b + 1) * cfg.bucket_days,
        event=rows["e"].to_numpy(dtype=bool),
        count=rows["n"].to_numpy(dtype=np.float64),
        x=x,
        covariate_names=names,
        cell_persons=cell_persons,
        bucket_days=cfg.bucket_days,
    )


# --------------------------------------------------------------------------- NumPyro model

#: With ``parametrization = "auto"``, segment effects are centered when every
#: segment has at least this many conversions (data dominate the prior, and
#: the non-centered form then correlates strongly with the population mean).
AUTO_CENTERED_MIN_CONVERSIONS = 100


def centered_for(cfg: LatencyConfig, n_segments: int, count, event, seg) -> bool:
    """Whether segment effects are sampled centered (see ``parametrization``)."""
    if cfg.parametrization != "auto":
        return cfg.parametrization == "centered"
    conv = np.bincount(
        np.asarray(seg), weights=np.asarray(count) * np.asarray(event), minlength=n_segments
    )
    return bool(conv.min() >= AUTO_CENTERED_MIN_CONVERSIONS)


def _log_surv(xp, delay: str, log_t, log_scale, log_shape):
    """log S(t) of one delay component, written for numpy-like ``xp`` (jax.numpy)."""
    if delay == "lognormal":
        from jax.scipy.special import log_ndtr

        return log_ndtr(-(log_t - log_scale) * xp.exp(log_shape))
    z = xp.exp(log_shape) * (log_t - log_scale)
    if delay == "weibull":
        return -xp.exp(z)
    import jax

    return -jax.nn.softplus(z)


def _log1mexp(xp, x):
    """log(1 - exp(x)) for x <= 0, stable on both sides of -log 2."""
    x = xp.minimum(x, -1e-7)
    return xp.where(x > -0.6931472, xp.log(-xp.expm1(x)), xp.log1p(-xp.exp(x)))


def latency_model(
    seg,
    cell,
    log_lo,
    log_hi,
    event,
    count,
    x,
    n_segments: int,
    config: LatencyConfig | None = None,
    centered: bool | None = None,
):
    """The NumPyro mixture-cure latency model over aggregated rows (see the module docstring).

    ``centered`` (segment effects sampled directly rather than as standardised
    offsets) defaults to :func:`centered_for` of the data.
    """
    import jax
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist

    cfg = config or LatencyConfig()
    S, C = n_segments, cfg.components
    if centered is None:
        centered = centered_for(cfg, n_segments, count, event, seg)

    from gaelp_bayes.inference import pooled_normal

    def pooled(name, mu, sigma, shape):
        """Partial pooling of ``name`` around ``mu`` (centered or non-centered)."""
        return pooled_normal(name, mu, sigma, shape, centered, f"z_{name}")

    eta = None
    if cfg.cure:
        mu_logit = numpyro.sample("mu_logit", dist.Normal(cfg.prior_logit_mean, cfg.prior_logit_sd))
        if S > 1:
            sigma_logit = numpyro.sample("sigma_logit", dist.HalfNormal(cfg.prior_logit_pool_sd))
            logit_p = pooled("logit_p", mu_logit, sigma_logit, [S])
        else:
            logit_p = numpyro.deterministic("logit_p", jnp.reshape(mu_logit, (1,)))
        eta = logit_p[seg]
        if x.shape[1]:
            beta = numpyro.sample(
                "beta", dist.Normal(0, cfg.prior_covariate_sd).expand([x.shape[1]]).to_event(1)
            )
            eta = eta + (x @ beta)[cell]
    mu = numpyro.sample(
        "mu_log_scale", dist.Normal(cfg.prior_log_scale_mean, cfg.prior_log_scale_sd)
    )
    if C == 2:
        gap = numpyro.sample("log_gap", dist.Normal(cfg.prior_log_gap_mean, cfg.prior_log_gap_sd))
        mu = jnp.stack([mu, mu + jnp.exp(gap)])
    else:
        mu = jnp.reshape(mu, (1,))
    if S > 1:
        sig = numpyro.sample(
            "sigma_log_scale", dist.HalfNormal(cfg.prior_log_scale_pool_sd).expand([C]).to_event(1)
        )
        log_scale = pooled("log_scale", mu[None, :], sig[None, :], [S, C])
    else:
        log_scale = numpyro.deterministic("log_scale", mu[None, :])
    ls = numpyro.sample(
        "log_shape",
        dist.Normal(cfg.prior_log_shape_mean, cfg.prior_log_shape_sd).expand([C]).to_event(1),
    )
    if S > 1 and cfg.shape_by_segment:
        sig_k = numpyro.sample("sigma_log_shape", dist.HalfNormal(cfg.prior_log_shape_pool_sd))
        log_shape = pooled("log_shape_s", ls[None, :], sig_k, [S, C])
    else:
        log_shape = numpyro.deterministic("log_shape_s", jnp.broadcast_to(ls[None, :], (S, C)))
    if C == 2:
        mm = numpyro.sample("mu_mix", dist.Normal(cfg.prior_mix_mean, cfg.prior_mix_sd))
        if S > 1:
            sm = numpyro.sample("sigma_mix", dist.HalfNormal(cfg.prior_mix_pool_sd))
            logit_w = pooled("logit_mix", mm, sm, [S])
        else:
            logit_w = jnp.reshape(mm, (1,))
        numpyro.deterministic("mix_weight", jax.nn.sigmoid(logit_w))
        log_w = jnp.stack([jax.nn.log_sigmoid(logit_w), jax.nn.log_sigmoid(-logit_w)], axis=1)
    else:
        log_w = jnp.zeros((S, 1))
    numpyro.factor(
        "loglik",
        _loglik(
            cfg,
            seg,
            log_lo,
            log_hi,
            event,
            count,
            eta,
            log_scale,
            log_shape,
            log_w,
        ),
    )


def _loglik(cfg, seg, log_lo, log_hi, event, count, eta, log_scale, log_shape, log_w):
    import jax
    import jax.numpy as xp

    def log_s(log_t):
        comps = _log_surv(xp, cfg.delay, log_t[:, None], log_scale[seg], log_shape[seg])
        return jax.scipy.special.logsumexp(comps + log_w[seg], axis=1)

    # a bucket starting at 0 starts at t = 0 exactly: S(0) = 1 whatever the shape
    ls_lo = xp.where(log_lo <= LOG_T_MIN + 1e-3, 0.0, log_s(log_lo))
    ls_hi = log_s(log_hi)
    log_mass = ls_lo + _log1mexp(xp, ls_hi - ls_lo)
    if eta is None:
        ll = xp.where(event, log_mass, ls_lo)
    else:
        lp, lq = jax.nn.log_sigmoid(eta), jax.nn.log_sigmoid(-eta)
        ll = xp.where(event, lp + log_mass, xp.logaddexp(lq, lp + ls_lo))
    return xp.sum(count * ll)


# --------------------------------------------------------------------------- PyMC model


def _import_pymc():
    try:
        import pymc as pm
    except ImportError:
        raise MissingDependencyError("pymc", "pymc", "The PyMC latency model") from None
    return pm


def build_pymc_model(
    data: LatencyData, config: LatencyConfig | None = None, centered: bool | None = None
):
    """The same model as :func:`latency_model`, as a ``pymc.Model`` (the reference).

    Free variables carry the NumPyro site names, so a point of one model is a
    point of the other (tests check the log-densities agree).
    """
    pm = _import_pymc()
    import pytensor.tensor as pt

    cfg = config or LatencyConfig()
    S, C = data.n_segments, cfg.components
    kw = data.model_kwargs()
    seg, cell = kw["seg"], kw["cell"]
    x = kw["x"].astype(np.float64)
    coords = {
        "segment": data.segments,
        "component": list(range(C)),
        "covariate": data.covariate_names,
    }
    dims_of = {1: ("segment",), 2: ("segment", "component")}
    if centered is None:
        centered = centered_for(cfg, S, kw["count"], kw["event"], seg)
    with pm.Model(coords=coords) as model:

        def pooled(name, mu, sigma, shape):
            dims = dims_of[len(shape)]
            if centered:
                return pm.Normal(name, mu, sigma, dims=dims)
            z = pm.Normal(f"z_{name}", 0.0, 1.0, dims=dims)
            return pm.Deterministic(name, mu + sigma * z, dims=dims)

        eta = None
        if cfg.cure:
            mu_logit = pm.Normal("mu_logit", cfg.prior_logit_mean, cfg.prior_logit_sd)
            if S > 1:
                sigma_logit = pm.HalfNormal("sigma_logit", cfg.prior_logit_pool_sd)
                logit_p = pooled("logit_p", mu_logit, sigma_logit, [S])
            else:
                logit_p = pm.Deterministic("logit_p", pt.reshape(mu_logit, (1,)), dims="segment")
            eta = logit_p[seg]
            if x.shape[1]:
                beta = pm.Normal("beta", 0.0, cfg.prior_covariate_sd, dims="covariate")
                eta = eta + pt.dot(x, beta)[cell]
        mu = pm.Normal("mu_log_scale", cfg.prior_log_scale_mean, cfg.prior_log_scale_sd)
        if C == 2:
            gap = pm.Normal("log_gap", cfg.prior_log_gap_mean, cfg.prior_log_gap_sd)
            mu = pt.stack([mu, mu + pt.exp(gap)])
        else:
            mu = pt.reshape(mu, (1,))
        if S > 1:
            sig = pm.HalfNormal("sigma_log_scale", cfg.prior_log_scale_pool_sd, dims="component")
            log_scale = pooled("log_scale", mu[None, :], sig[None, :], [S, C])
        else:
            log_scale = pm.Deterministic(
                "log_scale", pt.reshape(mu, (1, C)), dims=("segment", "component")
            )
        ls = pm.Normal(
            "log_shape", cfg.prior_log_shape_mean, cfg.prior_log_shape_sd, dims="component"
        )
        if S > 1 and cfg.shape_by_segment:
            sig_k = pm.HalfNormal("sigma_log_shape", cfg.prior_log_shape_pool_sd)
            log_shape = pooled("log_shape_s", ls[None, :], sig_k, [S, C])
        else:
            log_shape = pm.Deterministic(
                "log_shape_s", pt.broadcast_to(ls[None, :], (S, C)), dims=("segment", "component")
            )
        if C == 2:
            mm = pm.Normal("mu_mix", cfg.prior_mix_mean, cfg.prior_mix_sd)
            if S > 1:
                sm = pm.HalfNormal("sigma_mix", cfg.prior_mix_pool_sd)
                logit_w = pooled("logit_mix", mm, sm, [S])
            else:
                logit_w = pt.reshape(mm, (1,))
            pm.Deterministic("mix_weight", pm.math.sigmoid(logit_w), dims="segment")
            log_w = pt.stack([-pt.softplus(-logit_w), -pt.softplus(logit_w)], axis=1)
        else:
            log_w = pt.zeros((S, 1))

        def log_s(log_t):
            lt = pt.as_tensor_variable(log_t.astype(np.float64))[:, None]
            lsc, lsh = log_scale[seg], log_shape[seg]
            if cfg.delay == "lognormal":
                comps = pm.logcdf(pm.Normal.dist(0.0, 1.0), -(lt - lsc) * pt.exp(lsh))
            else:
                zz = pt.exp(lsh) * (lt - lsc)
                comps = -pt.exp(zz) if cfg.delay == "weibull" else -pt.softplus(zz)
            return pm.math.logsumexp(comps + log_w[seg], axis=1, keepdims=False)

        at_zero = kw["log_lo"] <= LOG_T_MIN + 1e-3  # S(0) = 1 whatever the shape
        ls_lo = pt.switch(at_zero, 0.0, log_s(kw["log_lo"]))
        ls_hi = log_s(kw["log_hi"])
        d = pt.minimum(ls_hi - ls_lo, -1e-7)
        log_mass = ls_lo + pt.switch(d > -0.6931472, pt.log(-pt.expm1(d)), pt.log1p(-pt.exp(d)))
        event = kw["event"]
        if eta is None:
            ll = pt.switch(event, log_mass, ls_lo)
        else:
            lp, lq = -pt.softplus(-eta), -pt.softplus(eta)
            ll = pt.switch(event, lp + log_mass, pt.logaddexp(lq, lp + ls_lo))
        pm.Potential("loglik", pt.sum(kw["count"].astype(np.float64) * ll))
    return model


# --------------------------------------------------------------------------- derived quantities


def _np_log_surv(delay: str, log_t, log_scale, log_shape):
    from scipy.special import log_ndtr

    if delay == "lognormal":
        return log_ndtr(-(log_t - log_scale) * np.exp(log_shape))
    z = np.exp(log_shape) * (log_t - log_scale)
    return -np.exp(z) if delay == "weibull" else -np.logaddexp(0.0, z)


def _np_surv(cfg: LatencyConfig, post: dict[str, np.ndarray], seg, log_t) -> np.ndarray:
    """S(t) among converters, (draws, rows) for rows of segment ``seg`` at ``log_t``."""
    lsc = post["log_scale"][:, seg, :]  # (n, R, C)
    lsh = post["log_shape_s"][:, seg, :]
    lt = np.asarray(log_t, dtype=np.float64)
    lt = lt[None, :, None] if lt.ndim == 1 else lt[..., None]
    comps = np.where(lt <= LOG_T_MIN + 1e-3, 1.0, np.exp(_np_log_surv(cfg.delay, lt, lsc, lsh)))
    if cfg.components == 2:
        w = post["mix_weight"][:, seg]
        return w * comps[..., 0] + (1 - w) * comps[..., 1]
    return comps[..., 0]


def _p_rows(cfg: LatencyConfig, data: LatencyData, post, seg, cell) -> np.ndarray:
    if not cfg.cure:
        return np.ones((post["log_scale"].shape[0], np.size(seg)))
    eta = post["logit_p"][:, seg]
    if data.x.shape[1]:
        eta = eta + (post["beta"] @ data.x.T)[:, cell]
    return 1.0 / (1.0 + np.exp(-eta))


def derived(
    data: LatencyData, cfg: LatencyConfig, post: dict[str, np.ndarray], rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Per-draw p_convert, median_days, cdf and nowcast from flattened posterior draws."""
    n = post["log_scale"].shape[0]
    S = data.n_segments
    segs = np.arange(S)
    # P(eventual conversion) of a person of the segment: average over its covariate cells
    ss, cc = np.nonzero(data.cell_persons)
    pc = _p_rows(cfg, data, post, ss, cc) * data.cell_persons[ss, cc]
    p_conv = np.zeros((n, S))
    for j, s in enumerate(ss):
        p_conv[:, s] += pc[:, j]
    p_conv /= np.maximum(data.persons, 1)[None, :]
    days = np.arange(1, cfg.cdf_days + 1)
    seg_grid = np.repeat(segs, days.size)
    surv = _np_surv(cfg, post, seg_grid, np.tile(np.log(days), S)).reshape(n, S, days.size)
    cdf = p_conv[:, :, None] * (1.0 - surv)
    # median delay among converters: bisection on log-time
    lo, hi = np.full((n, S), -12.0), np.full((n, S), 12.0)
    for _ in range(50):
        mid = 0.5 * (lo + hi)
        s_mid = _np_surv(cfg, post, segs, mid)
        below = s_mid > 0.5  # not yet half converted: the median is later
        lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
    median = np.exp(0.5 * (lo + hi))
    # nowcast over open journeys (censored rows)
    open_ = ~data.event
    oseg, ocell, ocount = data.seg[open_], data.cell[open_], data.count[open_]
    p = _p_rows(cfg, data, post, oseg, ocell)
    lo_open = data.lo[open_]
    s_c = _chunked(lambda i, j: _np_surv(cfg, post, oseg[i:j], _log_t(lo_open[i:j])), oseg.size, n)
    s_h = _chunked(
        lambda i, j: _np_surv(
            cfg, post, oseg[i:j], _log_t(lo_open[i:j] + cfg.nowcast_horizon_days)
        ),
        oseg.size,
        n,
    )
    alive = 1.0 - p + p * s_c
    q_h = np.clip(p * (s_c - s_h) / alive, 0.0, 1.0)
    q_ev = np.clip(p * s_c / alive, 0.0, 1.0)
    out = {
        "p_convert": p_conv,
        "median_days": median,
        "cdf": cdf,
    }
    for key, q in (("nowcast_expected", q_h), ("nowcast_eventual_expected", q_ev)):
        exp_rows = q * ocount[None, :]
        draws_rows = rng.binomial(ocount[None, :].astype(np.int64), q)
        e, d = np.zeros((n, S)), np.zeros((n, S))
        for s in segs:
            m = oseg == s
            e[:, s] = exp_rows[:, m].sum(axis=1)
            d[:, s] = draws_rows[:, m].sum(axis=1)
        out[key] = e
        out[key.replace("_expected", "_predicted")] = d
    return out


def _chunked(fn, rows: int, n: int, size: int = 2000) -> np.ndarray:
    """``fn(i, j)`` over row chunks, concatenated along rows (bounded memory)."""
    if rows == 0:
        return np.ones((n, 0))
    return np.concatenate([fn(i, min(i + size, rows)) for i in range(0, rows, size)], axis=1)


# --------------------------------------------------------------------------- fitting


def initial_values(cfg: LatencyConfig, data: LatencyData, centered: bool) -> dict[str, Any]:
    """A data-informed starting point for NUTS (crude moment estimates per segment).

    Starting from the prior's median can put the delay shape or scale where
    the likelihood underflows (weak priors); this starts every chain where the
    data are: P(convert) from twice the observed conversion share, the scale
    from the median observed delay, shape 1, pooling scales 0.5.
    """
    S, C = data.n_segments, cfg.components
    persons = np.maximum(data.persons, 1.0)
    conv = np.bincount(data.seg, weights=data.count * data.event, minlength=S)
    frac = np.clip(2.0 * conv / persons, 0.02, 0.95)
    logit = np.log(frac / (1 - frac))
    mid = 0.5 * (data.lo + data.hi)
    med_all = _weighted_median(mid[data.event], data.count[data.event], default=7.0)
    med = np.array(
        [
            _weighted_median(
                mid[data.event & (data.seg == s)], data.count[data.event & (data.seg == s)], med_all
            )
            for s in range(S)
        ]
    )
    log_med = np.log(np.maximum(med, data.bucket_days))
    gap = 1.0
    log_scale = (
        np.stack([log_med - 0.5 * gap, log_med + 0.5 * gap], 1)[:, :C]
        if C == 2
        else (log_med[:, None])
    )
    f32 = np.float32
    init: dict[str, Any] = {
        "mu_log_scale": f32(log_scale[:, 0].mean()),
        "log_shape": np.zeros(C, f32),
    }
    if cfg.cure:
        init["mu_logit"] = f32(logit.mean())
    if C == 2:
        init["log_gap"] = f32(0.0)  # exp(0) = 1 = gap
        init["mu_mix"] = f32(0.0)
    if S > 1:
        init["sigma_log_scale"] = np.full(C, 0.5, f32)
        if cfg.cure:
            init["sigma_logit"] = f32(0.5)
        if cfg.shape_by_segment:
            init["sigma_log_shape"] = f32(0.2)
        if C == 2:
            init["sigma_mix"] = f32(0.5)
        mu_ls = log_scale[:, 0].mean() + np.array([0.0, gap])[:C]
        if centered:
            init["log_scale"] = (mu_ls[None, :] + (log_scale - log_scale.mean(0))).astype(f32)
            if cfg.cure:
                init["logit_p"] = logit.astype(f32)
            if cfg.shape_by_segment:
                init["log_shape_s"] = np.zeros((S, C), f32)
            if C == 2:
                init["logit_mix"] = np.zeros(S, f32)
        else:
            init["z_log_scale"] = ((log_scale - log_scale.mean(0)) / 0.5).astype(f32)
            if cfg.cure:
                init["z_logit_p"] = ((logit - logit.mean()) / 0.5).astype(f32)
            if cfg.shape_by_segment:
                init["z_log_shape_s"] = np.zeros((S, C), f32)
            if C == 2:
                init["z_logit_mix"] = np.zeros(S, f32)
    return init


def _weighted_median(x: np.ndarray, w: np.ndarray, default: float) -> float:
    if x.size == 0 or w.sum() <= 0:
        return float(default)
    o = np.argsort(x)
    cw = np.cumsum(w[o])
    return float(x[o][np.searchsorted(cw, 0.5 * cw[-1])])


def _flatten(post, names) -> dict[str, np.ndarray]:
    out = {}
    for k in names:
        if k in post:
            v = np.asarray(post[k].values, dtype=np.float64)
            out[k] = v.reshape((-1, *v.shape[2:]))
    return out


class LatencyModel:
    """Fits the latency model to journeys and serves its posterior.

    Parameters
    ----------
    config
        The model's settings and priors (:class:`LatencyConfig`).
    sampler
        Sampler settings (chains, draws, tune, target_accept, seed, backend).

    Examples
    --------
    >>> m = LatencyModel(LatencyConfig(delay="lognormal")).fit(journeys, as_of)  # doctest: +SKIP
    >>> m.summary()["segments"]  # doctest: +SKIP
    """

    name = "latency"

    def __init__(self, config: LatencyConfig | None = None, sampler: SamplerConfig | None = None):
        self.config = config or LatencyConfig()
        self.sampler = sampler or SamplerConfig()
        problems = self.config.validate()
        if problems:
            from gaelp_bayes.errors import ConfigError

            raise ConfigError(problems)
        self.data_: LatencyData | None = None
        self.as_of_: pd.Timestamp | None = None
        self._idata = None
        self._diagnostics: Diagnostics | None = None

    # ---- fitting
    def fit(self, journeys: pd.DataFrame, as_of: pd.Timestamp) -> LatencyModel:
        """Fit to journeys (from :func:`~gaelp_bayes.journeys.build_journeys`); returns ``self``."""
        self.as_of_ = pd.Timestamp(as_of)
        return self.fit_data(aggregate(journeys, as_of, self.config))

    def fit_data(self, data: LatencyData) -> LatencyModel:
        """Fit to already aggregated rows (see :func:`aggregate_times`); returns ``self``."""
        self.data_ = data
        smp = self.sampler
        if smp.method != "nuts":
            raise NotYetSupportedError(
                f"the latency model samples with NUTS only; got sampler.method = {smp.method!r}. "
                "Use method = 'nuts' (the aggregated model is small, NUTS is fast)."
            )
        if smp.backend == "pymc":
            idata = self._sample_pymc(data)
        else:
            idata = self._sample_numpyro(data)
        self._attach(idata, data)
        self._idata = idata
        self._diagnostics = diagnose(idata, var_names=self._diagnostic_vars(idata))
        return self  # the caller applies the diagnostics policy (pipeline: warn_if_poor)

    def fit_imputations(self, journeys: list[pd.DataFrame], as_of: pd.Timestamp) -> LatencyModel:
        """Fit once per journeys table (one per identity draw) and pool the posteriors.

        Fit ``k`` uses :func:`~gaelp_bayes.inference.imputation_sampler`
        (about ``draws / n`` draws each, seed ``seed + k``; later fits start
        from the first with a short warm-up); the pooled posterior
        concatenates their draws (multiple imputation), R-hat is the worst
        over the fits and ESS their sum, and persons / open journeys
        are averaged over the draws.
        """

        import xarray as xr

        self.as_of_ = pd.Timestamp(as_of)
        segs = sorted(set().union(*(set(j["segment"].astype(str)) for j in journeys)))
        from gaelp_bayes.inference import imputation_sampler

        fits: list[LatencyModel] = []
        warm: list = []
        for k, j in enumerate(journeys):
            sub = LatencyModel(self.config, imputation_sampler(self.sampler, k, len(journeys)))
            sub.as_of_ = self.as_of_
            if self.sampler.backend == "numpyro" and self.sampler.method == "nuts":
                sub._warm_in = warm[0] if warm else None
                sub._warm_out = warm
            fits.append(sub.fit_data(aggregate(j, as_of, self.config, segments=segs)))
        idata = fits[0].idata.copy()
        for group in ("posterior", "posterior_predictive", "sample_stats"):
            if group not in idata.groups():
                continue
            parts = [getattr(f.idata, group) for f in fits]
            cat = xr.concat(parts, dim="draw", data_vars="all", coords="minimal", compat="override")
            cat = cat.assign_coords(draw=np.arange(cat.sizes["draw"]))
            del idata[group]
            idata.add_groups({group: cat})
        const = idata.constant_data
        for name in ("persons", "open_journeys"):
            const[name] = sum(f.idata.constant_data[name] for f in fits) / len(fits)
        const.attrs["identity_draws"] = len(fits)
        ds = [f.diagnostics() for f in fits]
        self.data_ = fits[0].data_
        self._idata = idata
        self._diagnostics = Diagnostics.pooled(ds)
        return self

    def _coords(self, data: LatencyData) -> tuple[dict, dict]:
        coords = {
            "segment": data.segments,
            "component": list(range(self.config.components)),
            "covariate": data.covariate_names,
        }
        dims = {
            "z_logit_p": ["segment"],
            "logit_p": ["segment"],
            "beta": ["covariate"],
            "sigma_log_scale": ["component"],
            "z_log_scale": ["segment", "component"],
            "log_scale": ["segment", "component"],
            "log_shape": ["component"],
            "z_log_shape_s": ["segment", "component"],
            "log_shape_s": ["segment", "component"],
            "z_logit_mix": ["segment"],
            "logit_mix": ["segment"],
            "mix_weight": ["segment"],
        }
        return coords, dims

    def _sample_numpyro(self, data: LatencyData):
        from gaelp_bayes.inference import run_nuts, setup_jax

        setup_jax()
        coords, dims = self._coords(data)
        kw = data.model_kwargs()
        centered = centered_for(self.config, data.n_segments, kw["count"], kw["event"], kw["seg"])
        model = _partial_model(self.config, centered)
        return run_nuts(
            model,
            self.sampler,
            model_kwargs=kw,
            coords=coords,
            dims=dims,
            init_values=initial_values(self.config, data, centered),
            warm_start=getattr(self, "_warm_in", None),
            state_out=getattr(self, "_warm_out", None),
        )

    def _sample_pymc(self, data: LatencyData):
        pm = _import_pymc()
        smp = self.sampler
        kw = data.model_kwargs()
        centered = centered_for(self.config, data.n_segments, kw["count"], kw["event"], kw["seg"])
        init = {
            k: np.asarray(v, np.float64)
            for k, v in initial_values(self.config, data, centered).items()
        }
        with build_pymc_model(data, self.config, centered):
            return pm.sample(
                initvals=init,
                draws=smp.draws,
                tune=smp.tune,
                chains=smp.chains,
                cores=min(smp.chains, os.cpu_count() or 1),
                target_accept=smp.target_accept,
                random_seed=smp.seed,
                progressbar=smp.progress,
                compute_convergence_checks=False,
            )

    def _attach(self, idata, data: LatencyData) -> None:
        """Add derived quantities, nowcast and the aggregated data to ``idata``."""
        import xarray as xr

        post = idata.posterior
        nc, nd = post.sizes["chain"], post.sizes["draw"]
        flat = _flatten(post, ["logit_p", "beta", "log_scale", "log_shape_s", "mix_weight"])
        der = derived(data, self.config, flat, np.random.default_rng(self.sampler.seed + 1))
        day = np.arange(1, self.config.cdf_days + 1)
        seg = data.segments

        def da(v, dims, coords):
            return xr.DataArray(
                v.reshape(nc, nd, *v.shape[1:]),
                dims=["chain", "draw", *dims],
                coords={"chain": post.chain, "draw": post.draw, **coords},
            )

        post["p_convert"] = da(der["p_convert"], ["segment"], {"segment": seg})
        post["median_days"] = da(der["median_days"], ["segment"], {"segment": seg})
        post["cdf"] = da(der["cdf"], ["segment", "day"], {"segment": seg, "day": day})
        post["nowcast_expected"] = da(der["nowcast_expected"], ["segment"], {"segment": seg})
        post["nowcast_eventual_expected"] = da(
            der["nowcast_eventual_expected"], ["segment"], {"segment": seg}
        )
        pp = xr.Dataset(
            {
                "nowcast_conversions": da(der["nowcast_predicted"], ["segment"], {"segment": seg}),
                "nowcast_eventual_conversions": da(
                    der["nowcast_eventual_predicted"], ["segment"], {"segment": seg}
                ),
            }
        )
        open_per_seg = np.bincount(
            data.seg[~data.event], weights=data.count[~data.event], minlength=data.n_segments
        )
        const = xr.Dataset(
            {
                "row_segment": ("row", data.seg.astype(np.int32)),
                "row_cell": ("row", data.cell.astype(np.int32)),
                "row_lo_days": ("row", data.lo),
                "row_hi_days": ("row", data.hi),
                "row_converted": ("row", data.event.astype(np.int8)),
                "row_count": ("row", data.count),
                "cell_x": (("cell", "covariate"), data.x),
                "cell_persons": (("segment", "cell"), data.cell_persons),
                "persons": ("segment", data.persons),
                "open_journeys": ("segment", open_per_seg),
            },
            coords={"segment": seg, "covariate": data.covariate_names},
            attrs={
                "bucket_days": data.bucket_days,
                "nowcast_horizon_days": self.config.nowcast_horizon_days,
                "delay": self.config.delay,
                "components": self.config.components,
                "as_of": "" if self.as_of_ is None else str(self.as_of_),
            },
        )
        for group, ds in (("posterior_predictive", pp), ("constant_data", const)):
            if group in idata.groups():
                del idata[group]
            idata.add_groups({group: ds})

    def _diagnostic_vars(self, idata) -> list[str]:
        return [v for v in (*FREE_SITES, "p_convert", "median_days") if v in idata.posterior]

    # ---- accessors
    def _check(self) -> None:
        if self._idata is None:
            raise RuntimeError("LatencyModel: call fit() first")

    @property
    def idata(self):
        """The posterior as ArviZ InferenceData (with derived quantities and the data)."""
        self._check()
        return self._idata

    def diagnostics(self) -> Diagnostics:
        """R-hat, ESS and divergences of the sampled parameters, p_convert and median_days."""
        self._check()
        return self._diagnostics

    def summary(self) -> dict[str, Any]:
        """The ``latency`` block of summary.json (data contract section 5) plus a nowcast."""
        self._check()
        post, pp = self._idata.posterior, self._idata.posterior_predictive
        const = self._idata.constant_data
        segs = [str(s) for s in post["segment"].values]
        days = [int(d) for d in post["day"].values]

        def flat(v):
            x = np.asarray(v.values, dtype=float)
            return x.reshape((-1, *x.shape[2:]))

        p, med, cdf = flat(post["p_convert"]), flat(post["median_days"]), flat(post["cdf"])
        ne, nev = flat(post["nowcast_expected"]), flat(post["nowcast_eventual_expected"])
        nc, ncev = flat(pp["nowcast_conversions"]), flat(pp["nowcast_eventual_conversions"])
        persons = const["persons"].values
        open_j = const["open_journeys"].values
        out: dict[str, Any] = {"segments": {}}
        for i, s in enumerate(segs):
            out["segments"][s] = {
                "persons": int(np.rint(persons[i])),
                "p_convert": interval(p[:, i]),
                "median_days": interval(med[:, i]),
                "cdf": {
                    "days": days,
                    "mean": [float(v) for v in cdf[:, i].mean(axis=0)],
                    "q05": [float(v) for v in np.quantile(cdf[:, i], 0.05, axis=0)],
                    "q95": [float(v) for v in np.quantile(cdf[:, i], 0.95, axis=0)],
                },
            }

        def nowcast(idx) -> dict[str, Any]:
            return {
                "open_journeys": int(np.rint(open_j[idx].sum())),
                "expected_conversions": interval(ne[:, idx].sum(axis=1)),
                "predicted_conversions": interval(nc[:, idx].sum(axis=1)),
                "eventual_expected_conversions": interval(nev[:, idx].sum(axis=1)),
                "eventual_predicted_conversions": interval(ncev[:, idx].sum(axis=1)),
            }

        out["nowcast"] = {
            "horizon_days": float(const.attrs["nowcast_horizon_days"]),
            **nowcast(np.arange(len(segs))),
            "segments": {s: nowcast(np.array([i])) for i, s in enumerate(segs)},
        }
        return out


def fit(
    events: pd.DataFrame,
    as_of: pd.Timestamp,
    config: Config | None = None,
    person_map: pd.DataFrame | list[pd.DataFrame] | None = None,
) -> LatencyModel:
    """Build journeys from canonical events and fit the latency model (what ``fit`` calls).

    Uses ``config.sampler`` and the ``[latency]`` table (:class:`LatencyConfig`).
    ``person_map`` is one ``device_id -> person_id`` table, or several draws
    of it (a list, or one table with a ``draw`` column, as the identity model
    writes): then the model is fitted once per draw (at most
    ``identity_draws`` of them, evenly spaced) and the posteriors are pooled,
    so that linkage uncertainty widens the intervals (multiple imputation).
    Without it, devices sharing a ``user_id`` are merged
    (:func:`~gaelp_bayes.journeys.build_journeys`).
    """
    config = config or Config()
    cfg = config.model("latency", LatencyConfig)
    maps = _map_draws(person_map, cfg.identity_draws)
    model = LatencyModel(cfg, config.sampler)
    if len(maps) <= 1:
        journeys = build_journeys(events, as_of, person_map=maps[0] if maps else None)
        return model.fit(journeys, as_of)
    return model.fit_imputations([build_journeys(events, as_of, person_map=m) for m in maps], as_of)


def _map_draws(person_map, k: int) -> list[pd.DataFrame]:
    if person_map is None:
        return []
    if isinstance(person_map, pd.DataFrame):
        if "draw" not in person_map.columns:
            return [person_map]
        person_map = [g for _, g in person_map.groupby("draw", sort=True)]
    maps = list(person_map)
    if len(maps) > k:
        maps = [maps[i] for i in np.unique(np.linspace(0, len(maps) - 1, k).round().astype(int))]
    return maps


# --------------------------------------------------------------------------- simulation


def sample_prior(
    config: LatencyConfig, n_segments: int, seed: int = 0, num_samples: int = 1
) -> dict[str, np.ndarray]:
    """Parameter draws from the model's prior (for simulation-based calibration).

    Returns the per-segment quantities ``logit_p`` (S), ``log_scale`` and
    ``log_shape_s`` (S, C), ``mix_weight`` (S, when two components) and every
    free site, each with a leading ``num_samples`` axis.
    """
    from gaelp_bayes.inference import setup_jax

    setup_jax()
    import jax
    from numpyro.infer import Predictive

    empty = {
        "seg": np.zeros(0, np.int32),
        "cell": np.zeros(0, np.int32),
        "log_lo": np.zeros(0, np.float32),
        "log_hi": np.zeros(0, np.float32),
        "event": np.zeros(0, bool),
        "count": np.zeros(0, np.float32),
        "x": np.zeros((1, 0), np.float32),
        "n_segments": n_segments,
    }
    model = _partial_model(config, centered=False)
    pred = Predictive(model, num_samples=num_samples)(jax.random.PRNGKey(seed), **empty)
    return {k: np.asarray(v, dtype=np.float64) for k, v in pred.items()}


def _partial_model(config: LatencyConfig, centered: bool | None):
    from functools import partial

    return partial(latency_model, config=config, centered=centered)


def simulate_times(
    config: LatencyConfig,
    params: dict[str, np.ndarray],
    persons: np.ndarray | list[int],
    follow_up_days: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Simulate censored journeys from the model (one parameter set, no covariates).

    ``params`` holds ``logit_p`` (S), ``log_scale``/``log_shape_s`` (S, C) and,
    with two components, ``mix_weight`` (S). Each person enters uniformly in a
    window of ``follow_up_days`` before ``as_of``, so their follow-up is
    ``Uniform(0, follow_up_days)``. Returns ``(days, converted, segment index)``.
    """
    persons = np.asarray(persons, dtype=np.int64)
    seg = np.repeat(np.arange(persons.size), persons)
    n = seg.size
    p = 1.0 / (1.0 + np.exp(-np.asarray(params["logit_p"])[seg])) if config.cure else np.ones(n)
    converts = rng.random(n) < p
    comp = np.zeros(n, dtype=np.int64)
    if config.components == 2:
        comp = (rng.random(n) >= np.asarray(params["mix_weight"])[seg]).astype(np.int64)
    lam = np.asarray(params["log_scale"])[seg, comp]
    k = np.exp(np.asarray(params["log_shape_s"])[seg, comp])
    u = rng.random(n)
    if config.delay == "weibull":
        log_t = lam + np.log(-np.log1p(-u)) / k
    elif config.delay == "loglogistic":
        log_t = lam + (np.log(u) - np.log1p(-u)) / k
    else:
        from scipy.special import ndtri

        log_t = lam + ndtri(u) / k
    t = np.exp(np.minimum(log_t, 50.0))
    c = rng.random(n) * follow_up_days
    event = converts & (t <= c)
    return np.where(event, t, c), event, seg
