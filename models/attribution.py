"""Attribution: a hierarchical additive-hazard multi-touch model (Zhang, Wei & Ren 2014).

A person's conversion intensity, in days since their first touch, is the
segment's baseline plus a decaying contribution of every touch before ``t``::

    h(t) = alpha[s] + sum_{j: t_j < t} beta[s, c_j, k_j] * g_{c_j}(t - t_j)

with ``g_c`` a density in days (``kernel = "exponential"``: scale
``kernel_scale_days[c]``; ``"gamma"``: shape ``kernel_shape[c]`` and scale, a
delayed peak when the shape exceeds 1). The kernel integrates to 1, so
``beta[s, c, k]`` is the expected number of extra conversions one touch of
channel ``c`` and type ``k`` brings to a person of segment ``s`` (in the
long run), and ``alpha[s]`` is conversions per person-day without touches.

Priors (all in :class:`AttributionConfig`)::

    log alpha[s]       = mu_log_alpha + sigma_log_alpha * z_alpha[s]
    log beta[s, c, k]  = mu_log_beta[c, k] + sigma_log_beta * z_beta[s, c, k]
    z ~ Normal(0, 1);  mu ~ Normal;  sigma ~ HalfNormal      (partial pooling over segments)
    log kernel_scale_days[c] ~ Normal;  log kernel_shape[c] ~ Normal  (gamma kernel)

Likelihood. Person ``i`` is followed from their first touch for ``E_i`` days
(to the first conversion, or to ``as_of``). With ``H`` the integral of ``h``
(closed form through the kernel's CDF ``G``)::

    log L = sum_converters log h_i(E_i)  -  sum_i H_i(E_i)
    H_i(E) = alpha[s_i] E + sum_j beta[s_i, c_j, k_j] G_{c_j}(E - t_j)

The baseline part of ``H`` is ``alpha[s]`` times the segment's total exposure
(a sufficient statistic): by default the persons' expected *active* days
(:func:`baseline_terms`, :func:`activity_model`), since a person stops
browsing, and converting organically, when their activity ends. The touch
part is a sum over every touch; touches are grouped by (segment, channel, type) and by ``E - t_j`` on a log grid
of width ``bin_log_width`` (each group evaluated at its mean), so its cost is
the number of occupied cells, not of touches. The error is second order in
the bin width (below 1e-5 of a touch's term at the default 0.02; tests
compare it with the exact per-touch sum; ``bin_log_width = 0`` is exact).
The ``log h`` part runs over the converters' touches only (exact). Both are
``segment_sum`` reductions: no padding, linear cost, jit-friendly.

Outputs, per posterior draw (see ``docs/attribution.md``):

* **attributed**: each conversion is split across its touches and the
  baseline in proportion to their share of ``h(T)``; credits sum to
  conversions (converters without a touch before converting go to the
  baseline).
* **incremental**: conversions before ``as_of`` that would not have happened
  without the channel's touches, under common random numbers: a converter
  at ``T`` has used up ``H(T)`` of an Exp(1) threshold; without channel
  ``c`` they convert before ``as_of`` iff ``H_{-c}(A) >= H(T)`` (``A``: days
  from first touch to ``as_of``). ``H_{-c}(A)`` includes the baseline and
  the expected effect of the touches the person would have kept receiving
  after ``T`` had they not converted (``future_touches``; their own touch
  rate before ``T`` shrunk to the segment's), but only while they remain
  *active*: ``activity = "weibull"`` (default; ``"exponential"`` its
  constant-hazard special case) estimates from the silences after each
  person's last touch how long persons stay reachable
  (:func:`activity_model`), and the incremental count is the number of
  converters who stop being active before ``H_{-c}`` reaches ``H(T)``
  (per draw, each converter's further activity drawn from the model, so
  the interval is for the count among these persons; :func:`derived`);
  ``"horizon"`` keeps everyone active until ``as_of``. Censored persons
  cannot be lost (removing touches only lowers ``h``). This is the
  definition of the example world's ``truth/incremental.json``.

Options: ``active_gap_days`` (baseline only within that many days after a
touch) and ``baseline_decay`` (baseline ``alpha[s] exp(-t / tau[s])``);
see ``docs/attribution.md`` for what they changed on the example world.

The NumPyro model (:func:`attribution_model`) is the engine;
:func:`build_pymc_model` is the same log-density in PyMC (tested equal).

Example
-------
>>> from gaelp_bayes.config import Config, SamplerConfig
>>> from gaelp_bayes.models.attribution import fit  # doctest: +SKIP
>>> model = fit(events, as_of, Config(SamplerConfig(draws=500)))  # doctest: +SKIP
>>> model.summary()["channels"]["search"]["incremental"]  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from gaelp_bayes.attribution.baselines import BASELINES, run_baselines
from gaelp_bayes.attribution.touches import Touches, extract_touches
from gaelp_bayes.config import Config, SamplerConfig
from gaelp_bayes.diagnostics import Diagnostics, diagnose, interval
from gaelp_bayes.errors import DataError, MissingDependencyError
from gaelp_bayes.journeys import TOUCH_TYPES

KERNELS = ("exponential", "gamma")
#: How long a converter would have stayed reachable after converting (counterfactual).
ACTIVITY = ("exponential", "weibull", "horizon")
#: Grid points over ``[T, as_of]`` on which the counterfactual intensity is evaluated.
ACTIVITY_GRID = 48
#: Smallest time difference (days) the kernel is evaluated at (about 0.01 s).
D_MIN = 1e-7
#: Sampled (free) variables, in a fixed order; which exist depends on data and config.
FREE_SITES = (
    "mu_log_alpha",
    "sigma_log_alpha",
    "z_alpha",
    "log_alpha",
    "mu_log_beta",
    "sigma_log_beta",
    "z_beta",
    "log_kernel_scale",
    "log_kernel_shape",
    "log_baseline_decay",
)


def activity_grid(rest: np.ndarray) -> np.ndarray:
    """(N, ``ACTIVITY_GRID``) further active days ``u`` in ``[0, rest]``, denser near 0."""
    q = (np.arange(ACTIVITY_GRID) / (ACTIVITY_GRID - 1)) ** 2
    return np.asarray(rest, np.float64)[:, None] * q[None, :]


@dataclass(frozen=True)
class AttributionConfig:
    """Everything the attribution model lets a user choose: the ``[attribution]`` TOML table."""

    kernel: str = "exponential"
    touch_types: list[str] = dataclasses.field(default_factory=lambda: list(TOUCH_TYPES))
    session_minutes: float = 30.0
    active_gap_days: float = 0.0
    baseline_decay: bool = False
    future_touches: bool = True
    future_prior_days: float = 1.0
    activity: str = "weibull"
    activity_prior_days: float = 5.0
    bin_log_width: float = 0.02
    parametrization: str = "auto"
    identity_draws: int = 2
    derived_draws: int = 1000
    time_decay_half_life_days: float = 7.0
    svi_learning_rate: float = 0.01
    prior_log_alpha_mean: float = -5.0
    prior_log_alpha_sd: float = 2.0
    prior_alpha_pool_sd: float = 1.0
    prior_log_beta_mean: float = -4.5
    prior_log_beta_sd: float = 2.0
    prior_beta_pool_sd: float = 0.5
    prior_log_scale_mean: float = 0.5
    prior_log_scale_sd: float = 1.0
    prior_log_decay_mean: float = 2.5
    prior_log_decay_sd: float = 1.0
    prior_log_shape_mean: float = 0.4
    prior_log_shape_sd: float = 0.5

    def validate(self) -> list[str]:
        out = []
        if self.kernel not in KERNELS:
            out.append(
                f"attribution.kernel must be one of {', '.join(KERNELS)}, got {self.kernel!r}"
            )
        if (
            not isinstance(self.touch_types, list)
            or not self.touch_types
            or not all(t in TOUCH_TYPES for t in self.touch_types)
        ):
            out.append(
                f"attribution.touch_types must be a non-empty list of {list(TOUCH_TYPES)}, "
                f"got {self.touch_types!r}"
            )
        if not self.session_minutes >= 0:
            out.append(f"attribution.session_minutes must be >= 0, got {self.session_minutes!r}")
        if self.parametrization not in ("auto", "centered", "noncentered"):
            out.append(
                "attribution.parametrization must be 'auto', 'centered' or 'noncentered', "
                f"got {self.parametrization!r}"
            )
        if self.activity not in ACTIVITY:
            out.append(
                f"attribution.activity must be one of {', '.join(ACTIVITY)}, got {self.activity!r}"
            )
        if not self.activity_prior_days > 0:
            out.append(
                f"attribution.activity_prior_days must be > 0, got {self.activity_prior_days!r}"
            )
        if self.baseline_decay and self.active_gap_days > 0:
            out.append("attribution.baseline_decay needs active_gap_days = 0 (choose one)")
        if not self.active_gap_days >= 0:
            out.append(f"attribution.active_gap_days must be >= 0, got {self.active_gap_days!r}")
        if not 0 <= self.bin_log_width <= 0.2:
            out.append(f"attribution.bin_log_width must be in [0, 0.2], got {self.bin_log_width!r}")
        for name in ("identity_draws", "derived_draws"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                out.append(f"attribution.{name} must be a positive integer, got {v!r}")
        if not self.time_decay_half_life_days > 0:
            out.append(
                "attribution.time_decay_half_life_days must be > 0, "
                f"got {self.time_decay_half_life_days!r}"
            )
        if not self.svi_learning_rate > 0:
            out.append(f"attribution.svi_learning_rate must be > 0, got {self.svi_learning_rate!r}")
        for f in dataclasses.fields(self):
            if f.name.endswith("_sd") and not getattr(self, f.name) > 0:
                out.append(f"attribution.{f.name} must be > 0, got {getattr(self, f.name)!r}")
        return out


# --------------------------------------------------------------------------- data


#: Width of the one-cell rows the NumPyro model reads (``AttributionData.model_kwargs``).
ROW_WIDTH = 64


@dataclass
class AttributionData:
    """Model inputs: exposure per segment, binned survival rows, converters' touches.

    ``cell`` indexes the flattened ``(segment, channel, touch_type)`` array.
    Survival rows: ``b_cell``, ``b_days`` (``E - t``), ``b_count``. Converter
    rows: ``c_seg`` per converter; touch rows ``ct_conv`` (converter index),
    ``ct_cell``, ``ct_channel``, ``ct_days`` (``T - t``) and ``ct_horizon``
    (``A - t``, days to ``as_of``). ``c_end`` / ``c_horizon``: ``T`` and ``A``.
    ``c_remain_surv`` (converters, ``ACTIVITY_GRID``): per converter,
    ``P(R > u)`` for the further active days ``R`` after ``T`` on the grid
    ``u = (A - T) q`` of :func:`activity_grid` (:func:`activity_model`);
    ``activity_days``: the segment's mean active days.
    """

    touches: Touches
    exposure: np.ndarray
    e_seg: np.ndarray
    e_days: np.ndarray
    e_count: np.ndarray
    b_cell: np.ndarray
    b_days: np.ndarray
    b_count: np.ndarray
    c_seg: np.ndarray
    c_end: np.ndarray
    c_horizon: np.ndarray
    c_active: np.ndarray
    c_base_end: np.ndarray
    c_future_rate: np.ndarray
    c_remain_surv: np.ndarray
    activity_days: np.ndarray
    ct_conv: np.ndarray
    ct_cell: np.ndarray
    ct_channel: np.ndarray
    ct_days: np.ndarray
    ct_horizon: np.ndarray

    @property
    def shape(self) -> tuple[int, int, int]:
        t = self.touches
        return len(t.segments), len(t.channels), len(t.touch_types)

    def model_kwargs(self, row_width: int | None = ROW_WIDTH) -> dict[str, Any]:
        """Arrays for :func:`attribution_model`.

        With ``row_width`` the survival rows and converters' touches are laid
        out in rows of that width holding one cell each (``b_cell`` /
        ``ct_cell``: the cell of each row; padding has count 0 / converter
        index ``n_conv``), so the model gathers per-cell parameters once per
        row instead of once per element (about 2x faster gradients on the CPU,
        measured). ``None``: one element per row (the flat arrays).
        """
        S, C, K = self.shape
        n_conv = self.c_seg.size
        if row_width is None:
            b_cell, (b_days, b_count) = self.b_cell, (self.b_days, self.b_count)
            ct_cell, (ct_days, ct_conv) = self.ct_cell, (self.ct_days, self.ct_conv)
        else:
            b_cell, (b_days, b_count) = cell_rows(
                self.b_cell, row_width, (self.b_days, 1.0), (self.b_count, 0.0)
            )
            ct_cell, (ct_days, ct_conv) = cell_rows(
                self.ct_cell, row_width, (self.ct_days, 1.0), (self.ct_conv, n_conv)
            )
        return {
            "exposure": self.exposure.astype(np.float32),
            "e_seg": self.e_seg.astype(np.int32),
            "e_days": self.e_days.astype(np.float32),
            "e_count": self.e_count.astype(np.float32),
            "c_end": self.c_end.astype(np.float32),
            "b_cell": b_cell.astype(np.int32),
            "b_days": b_days.astype(np.float32),
            "b_count": b_count.astype(np.float32),
            "c_seg": self.c_seg.astype(np.int32),
            "c_active": self.c_active.astype(np.float32),
            "ct_conv": ct_conv.astype(np.int32),
            "ct_cell": ct_cell.astype(np.int32),
            "ct_days": ct_days.astype(np.float32),
            "shape": (S, C, K),
        }


def cell_rows(
    cell: np.ndarray, width: int, *columns: tuple[np.ndarray, float]
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Lay elements out in rows of ``width`` that each hold a single cell.

    Returns the cell of each row and, per ``(values, fill)`` column, a
    ``(rows, width)`` array with the values (in their original order within a
    cell) and ``fill`` in the padding.
    """
    cell = np.asarray(cell)
    order = np.argsort(cell, kind="stable")
    cells, start, count = np.unique(cell[order], return_index=True, return_counts=True)
    rank = np.arange(cell.size) - np.repeat(start, count)
    rows_per = -(-count // width)
    first_row = np.concatenate([[0], np.cumsum(rows_per)[:-1]]).astype(np.int64)
    row = np.repeat(first_row, count) + rank // width
    col = rank % width
    n_rows = int(rows_per.sum())
    out = []
    for values, fill in columns:
        values = np.asarray(values)
        arr = np.full((n_rows, width), fill, dtype=values.dtype)
        arr[row, col] = values[order]
        out.append(arr)
    return np.repeat(cells, rows_per), out


def prepare(touches: Touches, config: AttributionConfig | None = None) -> AttributionData:
    """Turn extracted touches into model inputs (see :class:`AttributionData`)."""
    cfg = config or AttributionConfig()
    t = touches
    S, C, K = len(t.segments), len(t.channels), len(t.touch_types)
    if t.n_persons == 0:
        raise DataError("the attribution model needs at least one person with a touch; found none")
    base_end, active, act = baseline_terms(t, cfg)
    exposure = np.bincount(t.segment, weights=base_end, minlength=S)
    e_seg, e_days, e_count = _log_bins(t.segment, np.maximum(base_end, D_MIN), cfg.bin_log_width)
    cell = (t.segment[t.person] * C + t.channel) * K + t.touch_type
    d = np.maximum(t.end_days[t.person] - t.days, D_MIN)
    if cfg.bin_log_width > 0 and d.size:
        b = np.floor(np.log(d) / cfg.bin_log_width).astype(np.int64)
        key = cell.astype(np.int64) * 100_000 + (b - b.min())
        uniq, inv, cnt = np.unique(key, return_inverse=True, return_counts=True)
        b_days = np.bincount(inv, weights=d) / cnt
        b_cell = (uniq // 100_000).astype(np.int64)
        b_count = cnt.astype(np.float64)
    else:
        b_cell, b_days, b_count = cell.astype(np.int64), d, np.ones(d.size)
    conv = np.flatnonzero(t.converted)
    conv_index = np.full(t.n_persons, -1, dtype=np.int64)
    conv_index[conv] = np.arange(conv.size)
    # P(R > u): the further active days after converting, on the counterfactual grid
    u = activity_grid(np.maximum(t.horizon_days[conv] - t.end_days[conv], 0.0))
    remain = act.remaining(conv, t.segment[conv], t.end_days[conv], u)
    tm = t.converted[t.person]
    # touches per day each converter would have kept receiving after converting (counterfactual):
    # their own rate before converting, shrunk to the segment's rate over ``future_prior_days``
    seg_rate = np.zeros((S, C, K))
    np.add.at(seg_rate, (t.segment[t.person], t.channel, t.touch_type), 1.0)
    seg_rate /= np.maximum(np.bincount(t.segment, weights=t.end_days, minlength=S), 1e-9)[
        :, None, None
    ]
    own = np.zeros((conv.size, C, K))
    np.add.at(own, (conv_index[t.person[tm]], t.channel[tm], t.touch_type[tm]), 1.0)
    m = cfg.future_prior_days
    future_rate = (own + m * seg_rate[t.segment[conv]]) / (t.end_days[conv] + m)[:, None, None]
    if not cfg.future_touches:
        future_rate = np.zeros_like(future_rate)
    return AttributionData(
        touches=t,
        exposure=exposure,
        e_seg=e_seg,
        e_days=e_days,
        e_count=e_count,
        b_cell=b_cell,
        b_days=b_days,
        b_count=b_count,
        c_seg=t.segment[conv],
        c_end=t.end_days[conv],
        c_horizon=t.horizon_days[conv],
        c_active=active[conv].astype(np.float64),
        c_base_end=base_end[conv],
        c_future_rate=future_rate,
        c_remain_surv=remain,
        activity_days=act.mean_days,
        ct_conv=conv_index[t.person[tm]],
        ct_cell=cell[tm],
        ct_channel=t.channel[tm],
        ct_days=np.maximum(t.end_days[t.person[tm]] - t.days[tm], D_MIN),
        ct_horizon=np.maximum(t.horizon_days[t.person[tm]] - t.days[tm], D_MIN),
    )


def _log_bins(group: np.ndarray, d: np.ndarray, width: float):
    """Rows ``(group, mean d, count)`` of ``d`` binned on a log grid per group (exact if 0)."""
    group = np.asarray(group, dtype=np.int64)
    if width <= 0 or d.size == 0:
        return group, d.astype(np.float64), np.ones(d.size)
    b = np.floor(np.log(d) / width).astype(np.int64)
    key = group * 100_000 + (b - b.min())
    uniq, inv, cnt = np.unique(key, return_inverse=True, return_counts=True)
    return (uniq // 100_000).astype(np.int64), np.bincount(inv, weights=d) / cnt, cnt * 1.0


def baseline_exposure(t: Touches, gap_days: float) -> tuple[np.ndarray, np.ndarray]:
    """Per person: days of baseline exposure up to ``end_days``, and whether active at the end.

    With ``gap_days = 0`` the baseline applies all the time (exposure =
    ``end_days``, always active). Otherwise the baseline applies only while
    the person is *active*: within ``gap_days`` after any of their touches,
    so exposure is ``sum_j min(next_j - t_j, gap_days)`` (``next_j``: the
    next touch, or ``end_days``).
    """
    if gap_days <= 0:
        return t.end_days.astype(np.float64), np.ones(t.n_persons, dtype=bool)
    nxt = np.r_[t.days[1:], np.inf]
    last = np.r_[t.person[1:] != t.person[:-1], True]
    nxt = np.where(last, t.end_days[t.person], nxt)
    span = np.minimum(np.maximum(nxt - t.days, 0.0), gap_days)
    exposure = np.bincount(t.person, weights=span, minlength=t.n_persons)
    last_t = np.zeros(t.n_persons)
    last_t[t.person[last]] = t.days[last]
    return exposure, (t.end_days - last_t) <= gap_days


def _touch_count_and_last(t: Touches) -> tuple[np.ndarray, np.ndarray]:
    """Per person: number of touches, and days from the first touch to the last."""
    n = np.bincount(t.person, minlength=t.n_persons).astype(np.float64)
    last = np.zeros(t.n_persons)
    np.maximum.at(last, t.person, t.days)
    return n, last


def touch_span_days(t: Touches) -> np.ndarray:
    """Per segment, the persons' total days of activity estimated from their touch times.

    Sum over persons with ``n >= 2`` touches of ``(last - first) (n + 1) / (n - 1)``:
    unbiased for the length of a period holding ``n`` uniform touch times
    (one-touch persons add 0). The simulator sets its active window from it
    (``gaelp_bayes.sim.bundle.SPAN_VAR``).
    """
    n, last = _touch_count_and_last(t)
    span = np.where(n >= 2, last * (n + 1) / np.maximum(n - 1, 1), 0.0)
    return np.bincount(t.segment, weights=span, minlength=len(t.segments))


@dataclass
class Activity:
    """How long persons stay reachable: ``D ~ Weibull(shape[s], scale[s])`` days from the first touch.

    ``shape = 1`` is the exponential (``activity = "exponential"``). Per person:
    ``p_active`` = P(still active at the end of follow-up ``E_i`` | the
    silence after their last touch) and ``active_days``, the expected active
    days from the first touch to ``E_i``.
    """

    shape: np.ndarray
    scale: np.ndarray
    p_active: np.ndarray
    active_days: np.ndarray

    @property
    def mean_days(self) -> np.ndarray:
        from scipy.special import gamma

        return self.scale * gamma(1.0 + 1.0 / self.shape)

    def remaining(
        self, persons: np.ndarray, seg: np.ndarray, end: np.ndarray, u: np.ndarray
    ) -> np.ndarray:
        """``P(R > u)`` of the further active days ``R`` after ``end`` (days from the first touch).

        ``persons``, ``seg``, ``end``: (N,) rows; ``u``: (N, G).
        """
        k, th = self.shape[seg][:, None], self.scale[seg][:, None]
        e = np.asarray(end, np.float64)[:, None]
        return self.p_active[persons][:, None] * np.exp(-(((e + u) / th) ** k - (e / th) ** k))


#: Quadrature intervals over a silence (``activity = "weibull"``).
SILENCE_NODES = 48
#: At most this many persons per segment inform the activity parameters (their ML is precise).
ACTIVITY_FIT_PERSONS = 20_000


def _silence_exponential(mu: float, last, gap, lam, moments: bool = False):
    """:func:`_silence` for the exponential (``k = 1``, rate ``mu``), in closed form.

    ``L = exp(-mu l) [exp(-(mu + lam) g) + mu / (mu + lam) (1 - exp(-(mu + lam) g))]``.
    """
    a = mu + lam
    stay = np.exp(-a * gap)
    z = stay + mu / a * -np.expm1(-a * gap)
    ll = -mu * last + np.log(z)
    if not moments:
        return ll
    # E[days active within the silence]: leaving at x < g (density mu exp(-a x)) or still active
    within = (mu / a**2 * -np.expm1(-a * gap) - mu / a * gap * stay + gap * stay) / z
    return ll, stay / z, within


def _silence(k: float, th: float, last, gap, lam, moments: bool = False):
    """Per person: log-likelihood of the silence after the last touch under ``Weibull(k, th)``.

    ``L = S(l + g) exp(-lam g) + int_0^g f(l + y) exp(-lam y) dy`` (still
    active and silent, or left at ``l + y`` while silent; ``l``: last touch,
    ``g``: silence), computed as ``S(l)`` times the same terms conditional on
    ``D > l`` (no underflow when ``(l / th)^k`` is large). The integral runs
    over ``SILENCE_NODES`` intervals (denser near 0): each interval's
    probability of leaving, exact (``S(l + y_a) - S(l + y_b)``; also where
    the density is singular at 0, shape < 1), times the interval's mean of
    ``exp(-lam y)`` (exact, stable as ``lam -> 0``). With ``moments``: also
    P(active at the end) and the expected active days within the silence
    (a leaver at their interval's mean position under ``exp(-lam y)``).
    """
    M = SILENCE_NODES
    q = (np.arange(M + 1) / M) ** 2
    y = gap[:, None] * q[None, :]
    zl = (last / th) ** k
    cum = ((last[:, None] + y) / th) ** k - zl[:, None]  # Lambda(l + y) - Lambda(l), >= 0
    surv = np.exp(-cum)  # P(D > l + y | D > l)
    dF = surv[:, :-1] - surv[:, 1:]
    ya, yb = y[:, :-1], y[:, 1:]
    lam = np.asarray(lam, np.float64)[:, None]
    x = lam * (yb - ya)
    mean_exp = np.exp(-lam * ya) * np.where(
        x > 1e-8, -np.expm1(-x) / np.maximum(x, 1e-300), 1.0 - 0.5 * x
    )
    stay = surv[:, -1] * np.exp(-lam[:, 0] * gap)
    left = dF * mean_exp
    L = np.maximum(stay + left.sum(axis=1), 1e-300)
    ll = np.log(L) - zl
    if not moments:
        return ll
    # where in its interval a leaver is, on average, under the weight exp(-lam y)
    xc = np.clip(x, 1e-300, 700.0)
    pos = np.where(x > 1e-4, 1.0 / xc - 1.0 / np.expm1(xc), 0.5 - x / 12.0)
    within = (gap * stay + np.sum(left * (ya + (yb - ya) * pos), axis=1)) / L
    return ll, stay / L, within


def activity_model(t: Touches, prior_days: float, family: str = "weibull") -> Activity:
    """Per segment, how long persons stay reachable; per person, P(active at the end).

    A person is *active* (browsing, reachable by ads) from their first
    touch for ``D`` days, ``D ~ Exponential`` (``family = "exponential"``) or
    ``Weibull(shape[s], scale[s])`` (``"weibull"``; shape > 1: leaving gets
    likelier with time, as with a fixed-length need); while active they
    touch at rate ``lambda_i`` (their own rate over their observed span,
    shrunk to the segment's with ``prior_days`` of weight). With ``l_i`` the
    last touch and ``E_i`` the end of follow-up (conversion or ``as_of``),
    the likelihood of the silence ``g = E - l`` is
    ``S(E) exp(-lambda g) + int_0^g f(l + y) exp(-lambda y) dy`` (still active
    and silent, or left while silent); for the exponential it is
    ``exp(-mu l) [exp(-(mu+lambda) g) + mu / (mu+lambda) (1 - exp(-(mu+lambda) g))]``.
    The parameters maximise it over the segment's persons (bounded; at most
    ``ACTIVITY_FIT_PERSONS`` of them, a fixed random subset, inform the
    Weibull's two). Persons who touch until ``as_of`` give a mean far beyond
    the follow-up: active throughout, the ``"horizon"`` counterfactual.
    """
    from scipy.optimize import minimize, minimize_scalar

    if family not in ("exponential", "weibull"):
        raise ValueError(f"activity family must be 'exponential' or 'weibull', got {family!r}")
    S = len(t.segments)
    n, last = _touch_count_and_last(t)
    gap = np.maximum(t.end_days - last, 0.0)
    seg_n = np.bincount(t.segment, weights=np.maximum(n - 1, 0), minlength=S)
    seg_span = np.bincount(t.segment, weights=last, minlength=S)
    seg_rate = seg_n / np.maximum(seg_span + prior_days * np.bincount(t.segment, minlength=S), 1e-9)
    lam = (np.maximum(n - 1, 0) + prior_days * seg_rate[t.segment]) / (last + prior_days)
    mu = np.full(S, math.exp(-12.0))
    shape = np.ones(S)
    p_active = np.empty(t.n_persons)
    within = np.empty(t.n_persons)
    for s in range(S):
        k = np.flatnonzero(t.segment == s)
        if not k.size:
            continue
        lk, gk, ak = last[k], gap[k], lam[k]

        def nll(log_mu, lk=lk, gk=gk, ak=ak):
            return -float(np.sum(_silence_exponential(math.exp(log_mu), lk, gk, ak)))

        mu[s] = math.exp(minimize_scalar(nll, bounds=(-12.0, 3.0), method="bounded").x)
        if family != "weibull":
            _, p_active[k], within[k] = _silence_exponential(mu[s], lk, gk, ak, moments=True)
            continue
        fit = k
        if k.size > ACTIVITY_FIT_PERSONS:
            fit = np.random.default_rng(s).choice(k, ACTIVITY_FIT_PERSONS, replace=False)

        def wnll(v, lk=last[fit], gk=gap[fit], ak=lam[fit]):
            return -float(np.sum(_silence(math.exp(v[0]), math.exp(v[1]), lk, gk, ak)))

        # from the exponential's fit; shape bounded to [0.2, 8], log scale to [-7, 12]
        res = minimize(
            wnll,
            np.array([0.0, -math.log(mu[s])]),
            method="L-BFGS-B",
            bounds=[(math.log(0.2), math.log(8.0)), (-7.0, 12.0)],
        )
        shape[s] = math.exp(res.x[0])
        mu[s] = math.exp(-res.x[1])  # 1 / Weibull scale
        for c in np.array_split(k, max(1, k.size // 50_000)):
            _, p_active[c], within[c] = _silence(
                shape[s], 1.0 / mu[s], last[c], gap[c], lam[c], moments=True
            )
    scale = 1.0 / mu
    return Activity(shape, scale, p_active, last + within)


def baseline_terms(t: Touches, cfg: AttributionConfig) -> tuple[np.ndarray, np.ndarray, Activity]:
    """Per person: baseline exposure days to the end, baseline weight at the end, and activity.

    Returns ``(exposure, active, activity)`` (:class:`Activity`; with
    ``activity = "horizon"`` everyone stays active: ``p_active`` 1 and an
    unbounded mean). The baseline runs while the person is active: with an
    activity model (and neither ``active_gap_days`` nor ``baseline_decay``)
    its exposure is the expected active days and its weight in ``h(T)`` is
    ``p_active``; otherwise :func:`baseline_exposure`.
    """
    S = len(t.segments)
    if cfg.activity == "horizon":
        act = Activity(np.ones(S), np.full(S, np.inf), np.ones(t.n_persons), t.end_days.copy())
    else:
        act = activity_model(t, cfg.activity_prior_days, cfg.activity)
    if cfg.activity != "horizon" and cfg.active_gap_days <= 0 and not cfg.baseline_decay:
        return act.active_days, act.p_active, act
    exposure, active = baseline_exposure(t, cfg.active_gap_days)
    return exposure, active, act


# --------------------------------------------------------------------------- kernels


def kernel_log_pdf(xp, kernel: str, d, shape, scale):
    """log g(d) of the kernel (``xp``: jax.numpy or numpy; gammaln from the matching library)."""
    if kernel == "exponential":
        return -d / scale - xp.log(scale)
    if xp is np:
        from scipy.special import gammaln
    else:
        from jax.scipy.special import gammaln
    return (shape - 1.0) * xp.log(d) - d / scale - shape * xp.log(scale) - gammaln(shape)


def kernel_cdf(xp, kernel: str, d, shape, scale):
    """G(d), the kernel's integral from 0 to ``d``."""
    if kernel == "exponential":
        return -xp.expm1(-d / scale)
    if xp is np:
        from scipy.special import gammainc
    else:
        from jax.scipy.special import gammainc
    return gammainc(shape, d / scale)


def kernel_integral(xp, kernel: str, d, shape, scale):
    """J(d) = integral of G from 0 to ``d`` (expected effect of touches spread over ``d`` days)."""
    if kernel == "exponential":
        return d + scale * xp.expm1(-d / scale)
    return d * kernel_cdf(xp, kernel, d, shape, scale) - shape * scale * kernel_cdf(
        xp, kernel, d, shape + 1.0, scale
    )


# --------------------------------------------------------------------------- NumPyro model


def attribution_model(
    exposure,
    e_seg,
    e_days,
    e_count,
    c_end,
    b_cell,
    b_days,
    b_count,
    c_seg,
    c_active,
    ct_conv,
    ct_cell,
    ct_days,
    shape: tuple[int, int, int],
    config: AttributionConfig | None = None,
    centered: bool = False,
):
    """The NumPyro additive-hazard model (see the module docstring).

    Survival rows and converters' touches come flat (one element per
    ``b_cell`` / ``ct_cell`` entry) or in one-cell rows (``b_days``,
    ``b_count``, ``ct_days``, ``ct_conv`` of shape ``(rows, width)``, the
    cell per row; see :meth:`AttributionData.model_kwargs`): the same
    log-density either way.

    ``centered``: segment baselines sampled as ``log alpha[s] ~ Normal(mu,
    sigma)`` directly (site ``log_alpha``) rather than through ``z_alpha``
    (better when every segment has many conversions; see
    :func:`centered_for`). Touch effects are always non-centered (cells
    without data are common).
    """
    import jax
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist

    cfg = config or AttributionConfig()
    S, C, K = shape
    mu_a = numpyro.sample(
        "mu_log_alpha", dist.Normal(cfg.prior_log_alpha_mean, cfg.prior_log_alpha_sd)
    )
    if S > 1:
        sig_a = numpyro.sample("sigma_log_alpha", dist.HalfNormal(cfg.prior_alpha_pool_sd))
        if centered:
            log_alpha = numpyro.sample(
                "log_alpha", dist.Normal(mu_a, sig_a).expand([S]).to_event(1)
            )
        else:
            z_a = numpyro.sample("z_alpha", dist.Normal(0, 1).expand([S]).to_event(1))
            log_alpha = mu_a + sig_a * z_a
    else:
        log_alpha = jnp.reshape(mu_a, (1,))
    alpha = numpyro.deterministic("alpha", jnp.exp(log_alpha))
    mu_b = numpyro.sample(
        "mu_log_beta",
        dist.Normal(cfg.prior_log_beta_mean, cfg.prior_log_beta_sd).expand([C, K]).to_event(2),
    )
    if S > 1:
        sig_b = numpyro.sample("sigma_log_beta", dist.HalfNormal(cfg.prior_beta_pool_sd))
        z_b = numpyro.sample("z_beta", dist.Normal(0, 1).expand([S, C, K]).to_event(3))
        log_beta = mu_b[None] + sig_b * z_b
    else:
        log_beta = mu_b[None]
    beta = numpyro.deterministic("beta", jnp.exp(log_beta))
    log_scale = numpyro.sample(
        "log_kernel_scale",
        dist.Normal(cfg.prior_log_scale_mean, cfg.prior_log_scale_sd).expand([C]).to_event(1),
    )
    scale = numpyro.deterministic("kernel_scale_days", jnp.exp(log_scale))
    if cfg.kernel == "gamma":
        log_shape = numpyro.sample(
            "log_kernel_shape",
            dist.Normal(cfg.prior_log_shape_mean, cfg.prior_log_shape_sd).expand([C]).to_event(1),
        )
        kshape = numpyro.deterministic("kernel_shape", jnp.exp(log_shape))
    else:
        kshape = numpyro.deterministic("kernel_shape", jnp.ones(C))

    beta_flat = jnp.reshape(beta, (-1,))
    if jnp.ndim(b_days) == 1:  # flat arrays: rows of one element
        b_days, b_count = b_days[:, None], b_count[:, None]
    b_ch = (b_cell // K) % C
    if cfg.baseline_decay:
        log_tau = numpyro.sample(
            "log_baseline_decay",
            dist.Normal(cfg.prior_log_decay_mean, cfg.prior_log_decay_sd).expand([S]).to_event(1),
        )
        tau = numpyro.deterministic("baseline_decay_days", jnp.exp(log_tau))
        base_surv = jnp.sum(e_count * alpha[e_seg] * tau[e_seg] * -jnp.expm1(-e_days / tau[e_seg]))
    else:
        base_surv = jnp.sum(alpha * exposure)
    # one cell per row: per-cell parameters are gathered per row and broadcast
    b_cdf = kernel_cdf(jnp, cfg.kernel, b_days, kshape[b_ch][:, None], scale[b_ch][:, None])
    surv = base_surv + jnp.sum(beta_flat[b_cell] * jnp.sum(b_count * b_cdf, axis=1))
    numpyro.factor("survival", -surv)
    n_conv = c_seg.shape[0]
    if n_conv == 0:
        return
    if jnp.ndim(ct_days) == 1:
        ct_days, ct_conv = ct_days[:, None], ct_conv[:, None]
    ct_ch = (ct_cell // K) % C
    log_g = kernel_log_pdf(jnp, cfg.kernel, ct_days, kshape[ct_ch][:, None], scale[ct_ch][:, None])
    touch_h = beta_flat[ct_cell][:, None] * jnp.exp(log_g)
    base = alpha[c_seg] * c_active
    if cfg.baseline_decay:
        base = base * jnp.exp(-c_end / tau[c_seg])
    # padding carries converter index n_conv: summed into a segment that is dropped
    per_conv = jax.ops.segment_sum(
        touch_h.reshape(-1), ct_conv.reshape(-1), num_segments=n_conv + 1
    )
    h = base + per_conv[:n_conv]
    numpyro.factor("log_h", jnp.sum(jnp.log(h)))


def _partial_model(config: AttributionConfig, centered: bool = False):
    from functools import partial

    return partial(attribution_model, config=config, centered=centered)


#: With ``parametrization = "auto"``, segment baselines are centered when every
#: segment has at least this many conversions and there are enough segments to
#: inform their spread (with two, the centered funnel diverges: measured).
AUTO_CENTERED_MIN_CONVERSIONS = 50
AUTO_CENTERED_MIN_SEGMENTS = 4


def centered_for(cfg: AttributionConfig, data: AttributionData) -> bool:
    """Whether segment baselines are sampled centered (see ``parametrization``)."""
    if cfg.parametrization != "auto":
        return cfg.parametrization == "centered"
    S = data.shape[0]
    conv = np.bincount(data.c_seg, minlength=S)
    return bool(S >= AUTO_CENTERED_MIN_SEGMENTS and conv.min() >= AUTO_CENTERED_MIN_CONVERSIONS)


def build_pymc_model(
    data: AttributionData, config: AttributionConfig | None = None, centered: bool = False
):
    """The same model as :func:`attribution_model`, as a ``pymc.Model`` (the reference).

    Written per touch on the raw (unbinned) rows would change the density by
    the binning error; it uses the same binned rows so the two agree exactly.
    Free variables carry the NumPyro site names.
    """
    pm = _import_pymc()
    import pytensor.tensor as pt

    cfg = config or AttributionConfig()
    t = data.touches
    S, C, K = data.shape
    kw = data.model_kwargs(row_width=None)  # flat arrays: the reference reads rows one by one
    coords = {"segment": t.segments, "channel": t.channels, "touch_type": t.touch_types}
    with pm.Model(coords=coords) as model:
        mu_a = pm.Normal("mu_log_alpha", cfg.prior_log_alpha_mean, cfg.prior_log_alpha_sd)
        if S > 1:
            sig_a = pm.HalfNormal("sigma_log_alpha", cfg.prior_alpha_pool_sd)
            if centered:
                log_alpha = pm.Normal("log_alpha", mu_a, sig_a, dims="segment")
            else:
                z_a = pm.Normal("z_alpha", 0.0, 1.0, dims="segment")
                log_alpha = mu_a + sig_a * z_a
        else:
            log_alpha = pt.reshape(mu_a, (1,))
        alpha = pm.Deterministic("alpha", pt.exp(log_alpha), dims="segment")
        mu_b = pm.Normal(
            "mu_log_beta",
            cfg.prior_log_beta_mean,
            cfg.prior_log_beta_sd,
            dims=("channel", "touch_type"),
        )
        if S > 1:
            sig_b = pm.HalfNormal("sigma_log_beta", cfg.prior_beta_pool_sd)
            z_b = pm.Normal("z_beta", 0.0, 1.0, dims=("segment", "channel", "touch_type"))
            log_beta = mu_b[None] + sig_b * z_b
        else:
            log_beta = mu_b[None]
        beta = pm.Deterministic("beta", pt.exp(log_beta), dims=("segment", "channel", "touch_type"))
        log_scale = pm.Normal(
            "log_kernel_scale", cfg.prior_log_scale_mean, cfg.prior_log_scale_sd, dims="channel"
        )
        scale = pm.Deterministic("kernel_scale_days", pt.exp(log_scale), dims="channel")
        if cfg.kernel == "gamma":
            log_shape = pm.Normal(
                "log_kernel_shape",
                cfg.prior_log_shape_mean,
                cfg.prior_log_shape_sd,
                dims="channel",
            )
            kshape = pt.exp(log_shape)
        else:
            kshape = pt.ones(C)
        pm.Deterministic("kernel_shape", kshape, dims="channel")
        beta_flat = pt.reshape(beta, (-1,))

        def cdf(d, ch):
            d = pt.as_tensor_variable(d.astype(np.float64))
            if cfg.kernel == "exponential":
                return -pt.expm1(-d / scale[ch])
            return pt.gammainc(kshape[ch], d / scale[ch])

        def log_pdf(d, ch):
            d = pt.as_tensor_variable(d.astype(np.float64))
            if cfg.kernel == "exponential":
                return -d / scale[ch] - log_scale[ch]
            k = kshape[ch]
            return (k - 1.0) * pt.log(d) - d / scale[ch] - k * log_scale[ch] - pt.gammaln(k)

        b_cell = kw["b_cell"]
        b_ch = (b_cell // K) % C
        if cfg.baseline_decay:
            log_tau = pm.Normal(
                "log_baseline_decay",
                cfg.prior_log_decay_mean,
                cfg.prior_log_decay_sd,
                dims="segment",
            )
            tau = pm.Deterministic("baseline_decay_days", pt.exp(log_tau), dims="segment")
            es = kw["e_seg"]
            base_surv = pt.sum(
                kw["e_count"].astype(np.float64)
                * alpha[es]
                * tau[es]
                * -pt.expm1(-kw["e_days"].astype(np.float64) / tau[es])
            )
        else:
            base_surv = pt.sum(alpha * kw["exposure"].astype(np.float64))
        surv = base_surv + pt.sum(
            kw["b_count"].astype(np.float64) * beta_flat[b_cell] * cdf(kw["b_days"], b_ch)
        )
        pm.Potential("survival", -surv)
        n_conv = kw["c_seg"].size
        if n_conv:
            ct_cell = kw["ct_cell"]
            ct_ch = (ct_cell // K) % C
            touch_h = beta_flat[ct_cell] * pt.exp(log_pdf(kw["ct_days"], ct_ch))
            per_conv = pt.zeros(n_conv)
            per_conv = pt.inc_subtensor(per_conv[kw["ct_conv"]], touch_h)
            base = alpha[kw["c_seg"]] * kw["c_active"].astype(np.float64)
            if cfg.baseline_decay:
                cs = kw["c_seg"]
                base = base * pt.exp(-kw["c_end"].astype(np.float64) / tau[cs])
            pm.Potential("log_h", pt.sum(pt.log(base + per_conv)))
    return model


def _import_pymc():
    try:
        import pymc as pm
    except ImportError:
        raise MissingDependencyError(
            "pymc", "pymc", "the PyMC reference of the attribution model"
        ) from None
    return pm


def exact_log_likelihood(
    touches: Touches,
    params: dict[str, np.ndarray],
    kernel: str,
    active_gap_days: float = 0.0,
    config: AttributionConfig | None = None,
) -> float:
    """The model's log-likelihood summed per touch, without binning (numpy, for tests).

    ``params``: ``alpha`` (S), ``beta`` (S, C, K), ``kernel_scale_days`` and
    ``kernel_shape`` (C).
    """
    t = touches
    a, b = np.asarray(params["alpha"]), np.asarray(params["beta"])
    sc, sh = np.asarray(params["kernel_scale_days"]), np.asarray(params["kernel_shape"])
    bj = b[t.segment[t.person], t.channel, t.touch_type]
    d = np.maximum(t.end_days[t.person] - t.days, D_MIN)
    ch = t.channel
    cfg = config or AttributionConfig(active_gap_days=active_gap_days, activity="horizon")
    base_end, active, _ = baseline_terms(t, cfg)
    h_base = a[t.segment] * active
    if "baseline_decay_days" in params:
        tau = np.asarray(params["baseline_decay_days"])[t.segment]
        h_base = h_base * np.exp(-t.end_days / tau)
        base_end = tau * -np.expm1(-base_end / tau)
    H = a[t.segment] * base_end + np.bincount(
        t.person, weights=bj * kernel_cdf(np, kernel, d, sh[ch], sc[ch]), minlength=t.n_persons
    )
    h = h_base + np.bincount(
        t.person,
        weights=bj * np.exp(kernel_log_pdf(np, kernel, d, sh[ch], sc[ch])),
        minlength=t.n_persons,
    )
    return float(np.sum(np.log(h[t.converted])) - np.sum(H))


# --------------------------------------------------------------------------- derived


def derived(
    data: AttributionData,
    cfg: AttributionConfig,
    post: dict[str, np.ndarray],
    chunk: int = 64,
    rng: np.random.Generator | None = None,
) -> dict[str, np.ndarray]:
    """Per draw: attributed and incremental conversions per (segment, channel).

    ``post`` holds flattened draws of ``alpha`` (n, S), ``beta`` (n, S, C, K),
    ``kernel_scale_days`` and ``kernel_shape`` (n, C). Returns
    ``attributed`` (n, S, C), ``attributed_baseline`` (n, S) and
    ``incremental`` (n, S, C); converters without touches are added to the
    baseline.

    ``incremental`` is, per draw, the expected number of conversions lost
    (``sum_i P(lost_i)``) without ``rng``; with it, a draw of the realized
    number: each converter's unobserved further activity decides whether
    they are lost, one uniform per converter and draw shared by all
    channels (common random numbers), so the interval is for the count
    among these persons, which is what ``truth/incremental.json`` counts.
    """
    from gaelp_bayes.inference import setup_jax

    setup_jax()
    import jax
    import jax.numpy as jnp

    S, C, _ = data.shape
    n = post["alpha"].shape[0]
    N = data.c_seg.size
    no_touch = np.array(
        [
            data.touches.converters_without_touches_by_segment.get(s, 0)
            for s in data.touches.segments
        ],
        dtype=np.float64,
    )
    if N == 0:
        zeros = np.zeros((n, S, C))
        return {
            "attributed": zeros,
            "attributed_baseline": np.broadcast_to(no_touch, (n, S)).copy(),
            "incremental": zeros.copy(),
        }
    c_seg = jnp.asarray(data.c_seg, jnp.int32)
    ct_conv = jnp.asarray(data.ct_conv, jnp.int32)
    ct_cell = jnp.asarray(data.ct_cell, jnp.int32)
    ct_ch = jnp.asarray(data.ct_channel, jnp.int32)
    ct_d = jnp.asarray(data.ct_days, jnp.float32)
    ct_a = jnp.asarray(data.ct_horizon, jnp.float32)
    base_T = jnp.asarray(data.c_base_end, jnp.float32)
    active = jnp.asarray(data.c_active, jnp.float32)
    fut_rate = jnp.asarray(data.c_future_rate, jnp.float32)  # (N, C, K)
    rest = np.maximum(data.c_horizon - data.c_end, 0.0)  # days from T to as_of
    fut_len = jnp.asarray(rest, jnp.float32)
    # Counterfactual grid: R = u days of further activity after T, u in [0, as_of - T]
    # (denser near T); P(R > u) on it is data.c_remain_surv.
    u_np = activity_grid(rest)
    u = jnp.asarray(u_np, jnp.float32)  # (N, G)
    gap = cfg.active_gap_days
    post_raw = jnp.asarray(np.minimum(u_np, gap) if gap > 0 else u_np, jnp.float32)
    log_surv = jnp.asarray(np.log(np.maximum(data.c_remain_surv, 1e-30)), jnp.float32)
    conv_ch = ct_conv * C + ct_ch
    has_c = jax.ops.segment_sum(jnp.ones_like(ct_d), conv_ch, num_segments=N * C).reshape(N, C) > 0
    seg_ch = c_seg[ct_conv] * C + ct_ch
    kernel = cfg.kernel

    T_end = jnp.asarray(data.c_end, jnp.float32)

    def one(alpha, beta, scale, kshape, tau, key):
        bf = beta.reshape(-1)[ct_cell]
        sc, sh = scale[ct_ch], kshape[ct_ch]
        th = bf * jnp.exp(kernel_log_pdf(jnp, kernel, ct_d, sh, sc))
        base = alpha[c_seg] * active
        bT, post_u = base_T, post_raw
        if decay:
            tc = tau[c_seg]
            base = base * jnp.exp(-T_end / tc)
            bT = tc * -jnp.expm1(-base_T / tc)
            post_u = tc[:, None] * (
                jnp.exp(-base_T / tc)[:, None]
                - jnp.exp(-(base_T[:, None] + post_raw) / tc[:, None])
            )
        h = base + jax.ops.segment_sum(th, ct_conv, num_segments=N)
        credit = jax.ops.segment_sum(th / h[ct_conv], seg_ch, num_segments=S * C).reshape(S, C)
        credit_base = jax.ops.segment_sum(base / h, c_seg, num_segments=S)
        H_T = alpha[c_seg] * bT + jax.ops.segment_sum(
            bf * kernel_cdf(jnp, kernel, ct_d, sh, sc), ct_conv, num_segments=N
        )
        # effect at as_of of the touches before T, per channel
        GA = jax.ops.segment_sum(
            bf * kernel_cdf(jnp, kernel, ct_a, sh, sc), conv_ch, num_segments=N * C
        ).reshape(N, C)
        # expected effect at as_of of the touches received while active for u more days
        r = jnp.sum(fut_rate * beta[c_seg], axis=2)  # (N, C) touch effect per day
        KI_L = kernel_integral(jnp, kernel, fut_len[:, None], kshape[None, :], scale[None, :])
        KI_rest = kernel_integral(
            jnp,
            kernel,
            jnp.maximum(fut_len[:, None, None] - u[:, None, :], 0.0),
            kshape[None, :, None],
            scale[None, :, None],
        )
        F = r[:, :, None] * (KI_L[:, :, None] - KI_rest)  # (N, C, G)
        H_u = alpha[c_seg][:, None] * (bT[:, None] + post_u)  # (N, G)
        Hu = (H_u + F.sum(axis=1))[:, None, :] - F + (GA.sum(axis=1)[:, None] - GA)[:, :, None]
        # lost without c iff the person stops being active before H_{-c} reaches H(T)
        reach = Hu >= H_T[:, None, None]
        j = jnp.argmax(reach, axis=-1)  # first grid point reaching H(T)
        jm = jnp.maximum(j - 1, 0)
        H0 = jnp.take_along_axis(Hu, jm[..., None], axis=-1)[..., 0]
        H1 = jnp.take_along_axis(Hu, j[..., None], axis=-1)[..., 0]
        frac = jnp.clip((H_T[:, None] - H0) / jnp.maximum(H1 - H0, 1e-30), 0.0, 1.0)
        # P(R > r*) interpolated in log between the grid points (exact for an exponential R)
        ls = jnp.broadcast_to(log_surv[:, None, :], Hu.shape)
        ls0 = jnp.take_along_axis(ls, jm[..., None], axis=-1)[..., 0]
        ls1 = jnp.take_along_axis(ls, j[..., None], axis=-1)[..., 0]
        p_mid = 1.0 - jnp.exp(ls0 + frac * (ls1 - ls0))
        p_lost = jnp.where(reach.any(axis=-1), jnp.where(j == 0, 0.0, p_mid), 1.0)
        if realized:
            p_lost = (jax.random.uniform(key, (N, 1)) < p_lost).astype(p_lost.dtype)
        inc = jax.ops.segment_sum(p_lost * has_c, c_seg, num_segments=S)
        return credit, credit_base, inc

    decay = "baseline_decay_days" in post
    taus = post["baseline_decay_days"] if decay else np.ones((n, S))
    realized = rng is not None
    keys = jax.random.split(jax.random.PRNGKey(int(rng.integers(2**31)) if realized else 0), n)
    f = jax.jit(jax.vmap(one))
    # a draw holds a few (N, C, G) arrays: keep a chunk to about 4e7 floats
    chunk = max(1, min(chunk, int(4e7 // max(N * C * ACTIVITY_GRID, 1))))
    outs = {"attributed": [], "attributed_baseline": [], "incremental": []}
    for i in range(0, n, chunk):
        j = min(i + chunk, n)
        cr, cb, inc = f(
            jnp.asarray(post["alpha"][i:j], jnp.float32),
            jnp.asarray(post["beta"][i:j], jnp.float32),
            jnp.asarray(post["kernel_scale_days"][i:j], jnp.float32),
            jnp.asarray(post["kernel_shape"][i:j], jnp.float32),
            jnp.asarray(taus[i:j], jnp.float32),
            keys[i:j],
        )
        outs["attributed"].append(np.asarray(cr, np.float64))
        outs["attributed_baseline"].append(np.asarray(cb, np.float64) + no_touch)
        outs["incremental"].append(np.asarray(inc, np.float64))
    return {k: np.concatenate(v, axis=0) for k, v in outs.items()}


# --------------------------------------------------------------------------- fitting


def initial_values(
    cfg: AttributionConfig, data: AttributionData, centered: bool = False
) -> dict[str, Any]:
    """Start at the data: baseline = half the crude conversion rate, touches at the prior mean."""
    S, C, K = data.shape
    rate = max(data.c_seg.size, 1) / max(float(data.exposure.sum()), 1e-9)
    init: dict[str, Any] = {
        "mu_log_alpha": np.float32(math.log(0.5 * rate)),
        "mu_log_beta": np.full((C, K), cfg.prior_log_beta_mean, np.float32),
        "log_kernel_scale": np.full(C, cfg.prior_log_scale_mean, np.float32),
    }
    if S > 1:
        if centered:
            init["log_alpha"] = np.full(S, math.log(0.5 * rate), np.float32)
        else:
            init["z_alpha"] = np.zeros(S, np.float32)
        init.update(
            sigma_log_alpha=np.float32(0.5),
            sigma_log_beta=np.float32(0.3),
            z_beta=np.zeros((S, C, K), np.float32),
        )
    if cfg.kernel == "gamma":
        init["log_kernel_shape"] = np.full(C, cfg.prior_log_shape_mean, np.float32)
    if cfg.baseline_decay:
        init["log_baseline_decay"] = np.full(S, cfg.prior_log_decay_mean, np.float32)
    return init


class AttributionModel:
    """Fits the additive-hazard model and holds its posterior (``.idata``).

    ``fit(touches)`` samples (NUTS, SVI or PyMC per the sampler config) and
    adds the derived ``attributed`` / ``incremental`` draws and the data to
    the InferenceData; ``summary()`` is summary.json's ``attribution`` block.
    """

    name = "attribution"

    def __init__(
        self, config: AttributionConfig | None = None, sampler: SamplerConfig | None = None
    ):
        self.config = config or AttributionConfig()
        self.sampler = sampler or SamplerConfig()
        self._idata = None
        self._diagnostics: Diagnostics | None = None
        self.baselines_: dict[str, dict[str, float]] = {}
        self.counts_: dict[str, Any] = {}

    # ---- fitting
    def fit(self, touches: Touches) -> AttributionModel:
        data = prepare(touches, self.config)
        if self.sampler.backend == "pymc":
            idata = self._sample_pymc(data)
        elif self.sampler.method == "svi":
            idata = self._sample_svi(data)
        else:
            idata = self._sample_numpyro(data)
        self._attach(idata, data)
        self._idata = idata
        self._diagnostics = diagnose(idata, self._diagnostic_vars(idata))
        self.baselines_ = run_baselines(touches, self.config.time_decay_half_life_days)
        self.counts_ = _counts([touches])
        return self

    def fit_imputations(self, touches: list[Touches]) -> AttributionModel:
        """Fit once per identity draw and pool the posteriors (multiple imputation).

        Fit ``k`` uses :func:`~gaelp_bayes.inference.imputation_sampler`
        (about ``draws / n`` draws each, seed ``seed + k``; later fits start
        from the first with a short warm-up); the pooled posterior
        concatenates their draws (also of ``attributed`` / ``incremental``),
        R-hat is the worst over the fits and ESS their sum; baselines and
        counts are averaged.
        """
        import xarray as xr

        from gaelp_bayes.inference import imputation_sampler

        fits: list[AttributionModel] = []
        warm: list = []
        for k, t in enumerate(touches):
            sub = AttributionModel(self.config, imputation_sampler(self.sampler, k, len(touches)))
            if self.sampler.backend == "numpyro" and self.sampler.method == "nuts":
                sub._warm_in = warm[0] if warm else None
                sub._warm_out = warm
            fits.append(sub.fit(t))
        idata = fits[0].idata.copy()
        for group in ("posterior", "sample_stats"):
            if group not in idata.groups():
                continue
            parts = [getattr(f.idata, group) for f in fits]
            cat = xr.concat(parts, dim="draw", data_vars="all", coords="minimal", compat="override")
            cat = cat.assign_coords(draw=np.arange(cat.sizes["draw"]))
            del idata[group]
            idata.add_groups({group: cat})
        const = idata.constant_data
        for var in ("persons", "conversions", "exposure_days", "touch_span_days", "activity_days"):
            const[var] = sum(f.idata.constant_data[var] for f in fits) / len(fits)
        const.attrs["identity_draws"] = len(fits)
        ds = [f.diagnostics() for f in fits]
        self._idata = idata
        self._diagnostics = Diagnostics.pooled(ds, ds[0].var_names)
        methods = fits[0].baselines_
        self.baselines_ = {
            m: {
                c: float(np.mean([f.baselines_[m].get(c, 0.0) for f in fits]))
                for c in set().union(*(f.baselines_[m] for f in fits))
            }
            for m in methods
        }
        self.counts_ = _counts([f.counts_["_touches"] for f in fits])
        return self

    def _coords(self, data: AttributionData) -> tuple[dict, dict]:
        t = data.touches
        coords = {"segment": t.segments, "channel": t.channels, "touch_type": t.touch_types}
        dims = {
            "z_alpha": ["segment"],
            "log_alpha": ["segment"],
            "alpha": ["segment"],
            "mu_log_beta": ["channel", "touch_type"],
            "z_beta": ["segment", "channel", "touch_type"],
            "beta": ["segment", "channel", "touch_type"],
            "log_kernel_scale": ["channel"],
            "kernel_scale_days": ["channel"],
            "log_kernel_shape": ["channel"],
            "log_baseline_decay": ["segment"],
            "baseline_decay_days": ["segment"],
            "kernel_shape": ["channel"],
        }
        return coords, dims

    def _sample_numpyro(self, data: AttributionData):
        from gaelp_bayes.inference import run_nuts, setup_jax

        setup_jax()
        coords, dims = self._coords(data)
        centered = centered_for(self.config, data)
        return run_nuts(
            _partial_model(self.config, centered),
            self.sampler,
            model_kwargs=data.model_kwargs(),
            coords=coords,
            dims=dims,
            init_values=initial_values(self.config, data, centered),
            warm_start=getattr(self, "_warm_in", None),
            state_out=getattr(self, "_warm_out", None),
        )

    def _sample_svi(self, data: AttributionData):
        """A low-rank multivariate normal guide fitted by SVI (full batch), then sampled.

        The survival part of the likelihood is aggregated and the ``log h``
        part runs over converters' touches only, so one full-batch step costs
        the same as a minibatch would need to gather; no subsampling is used.
        """
        from gaelp_bayes.inference import setup_jax

        setup_jax()
        import arviz as az
        import jax
        import numpyro
        from numpyro.infer import SVI, Predictive, Trace_ELBO, init_to_value
        from numpyro.infer.autoguide import AutoLowRankMultivariateNormal

        cfg, smp = self.config, self.sampler
        centered = centered_for(cfg, data)
        model = _partial_model(cfg, centered)
        guide = AutoLowRankMultivariateNormal(
            model, init_loc_fn=init_to_value(values=initial_values(cfg, data, centered))
        )
        svi = SVI(model, guide, numpyro.optim.Adam(cfg.svi_learning_rate), Trace_ELBO())
        kw = data.model_kwargs()
        res = svi.run(jax.random.PRNGKey(smp.seed), smp.svi_steps, progress_bar=smp.progress, **kw)
        n = smp.draws * smp.chains
        pred = Predictive(guide, params=res.params, num_samples=n)
        draws = pred(jax.random.PRNGKey(smp.seed + 1), **kw)
        full = Predictive(model, posterior_samples=draws, return_sites=None)
        det = full(jax.random.PRNGKey(smp.seed + 2), **kw)
        keep = {**{k: v for k, v in draws.items() if not k.startswith("_")}}
        for k in ("alpha", "beta", "kernel_scale_days", "kernel_shape"):
            keep[k] = det[k]
        post = {
            k: np.asarray(v).reshape(smp.chains, smp.draws, *np.shape(v)[1:])
            for k, v in keep.items()
        }
        coords, dims = self._coords(data)
        idata = az.from_dict(posterior=post, coords=coords, dims=dims)
        idata.posterior.attrs["inference"] = "svi"
        idata.posterior.attrs["svi_final_loss"] = float(np.mean(np.asarray(res.losses[-100:])))
        return idata

    def _sample_pymc(self, data: AttributionData):
        import os

        pm = _import_pymc()
        smp = self.sampler
        centered = centered_for(self.config, data)
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

    def _attach(self, idata, data: AttributionData) -> None:
        """Add attributed / incremental draws and the data summary to ``idata``."""
        import xarray as xr

        post = idata.posterior
        nc, nd = post.sizes["chain"], post.sizes["draw"]
        flat = {
            k: np.asarray(post[k].values, np.float64).reshape(nc * nd, *post[k].shape[2:])
            for k in ("alpha", "beta", "kernel_scale_days", "kernel_shape", "baseline_decay_days")
            if k in post
        }
        der = derived(data, self.config, flat, rng=np.random.default_rng(self.sampler.seed + 2))
        t = data.touches

        def da(v, dims):
            return xr.DataArray(
                v.reshape(nc, nd, *v.shape[1:]),
                dims=["chain", "draw", *dims],
                coords={"chain": post.chain, "draw": post.draw},
            )

        post["attributed_segment"] = da(der["attributed"], ["segment", "channel"])
        post["attributed_baseline_segment"] = da(der["attributed_baseline"], ["segment"])
        post["incremental_segment"] = da(der["incremental"], ["segment", "channel"])
        post["attributed"] = da(der["attributed"].sum(axis=1), ["channel"])
        post["attributed_baseline"] = da(der["attributed_baseline"].sum(axis=1), [])
        post["incremental"] = da(der["incremental"].sum(axis=1), ["channel"])
        if "kernel_shape" not in post:
            post["kernel_shape"] = da(np.ones((nc * nd, len(t.channels))), ["channel"])
        conv_seg = np.bincount(t.segment[t.converted], minlength=len(t.segments)) + np.array(
            [t.converters_without_touches_by_segment.get(s, 0) for s in t.segments]
        )
        const = xr.Dataset(
            {
                "persons": ("segment", t.persons_per_segment()),
                "conversions": ("segment", conv_seg.astype(np.float64)),
                "exposure_days": ("segment", data.exposure),
                "activity_days": ("segment", data.activity_days),
                "touch_span_days": ("segment", touch_span_days(t)),
            },
            coords={"segment": t.segments},
            attrs={
                "window_days": float(t.window_days),
                "kernel": self.config.kernel,
                "touches": int(t.n_touches),
                "touches_after_conversion": int(t.after_conversion),
                "session_visits": int(t.session_visits),
                "converters_without_touches": int(t.converters_without_touches),
            },
        )
        if "constant_data" in idata.groups():
            del idata["constant_data"]
        idata.add_groups({"constant_data": const})

    def _diagnostic_vars(self, idata) -> list[str]:
        names = [v for v in FREE_SITES if v in idata.posterior]
        return [*names, "alpha"]

    # ---- accessors
    def _check(self) -> None:
        if self._idata is None:
            raise RuntimeError("AttributionModel: call fit() first")

    @property
    def idata(self):
        """The posterior as ArviZ InferenceData (with derived quantities and the data)."""
        self._check()
        return self._idata

    def diagnostics(self) -> Diagnostics:
        """R-hat, ESS and divergences of the sampled parameters, alpha and incremental."""
        self._check()
        return self._diagnostics

    def summary(self) -> dict[str, Any]:
        """The ``attribution`` block of summary.json (data contract section 5), plus counts."""
        self._check()
        post = self._idata.posterior
        channels = [str(c) for c in post["channel"].values]
        segments = [str(s) for s in post["segment"].values]

        def flat(v):
            x = np.asarray(post[v].values, dtype=float)
            return x.reshape((-1, *x.shape[2:]))

        inc, att = flat("incremental"), flat("attributed")
        inc_s, att_s = flat("incremental_segment"), flat("attributed_segment")
        out: dict[str, Any] = {
            "channels": {
                c: {"incremental": interval(inc[:, i]), "attributed": interval(att[:, i])}
                for i, c in enumerate(channels)
            },
            "baselines": {
                m: {c: float(v.get(c, 0.0)) for c in channels} for m, v in self.baselines_.items()
            },
            "baseline": {"attributed": interval(flat("attributed_baseline"))},
            "segments": {
                s: {
                    c: {
                        "incremental": interval(inc_s[:, k, i]),
                        "attributed": interval(att_s[:, k, i]),
                    }
                    for i, c in enumerate(channels)
                }
                for k, s in enumerate(segments)
            },
            "counts": {k: v for k, v in self.counts_.items() if not k.startswith("_")},
        }
        return out


def _counts(touches: list[Touches]) -> dict[str, Any]:
    k = len(touches)

    def avg(f):
        return float(np.mean([f(t) for t in touches]))

    return {
        "persons": avg(lambda t: t.n_persons),
        "conversions": avg(lambda t: t.conversions + t.converters_without_touches),
        "touches": avg(lambda t: t.n_touches),
        "touches_after_conversion_ignored": avg(lambda t: t.after_conversion),
        "session_visits_ignored": avg(lambda t: t.session_visits),
        "converters_without_touches": avg(lambda t: t.converters_without_touches),
        "identity_draws": k,
        "_touches": touches[0],
    }


def fit(
    events: pd.DataFrame,
    as_of: pd.Timestamp,
    config: Config | None = None,
    person_map: pd.DataFrame | list[pd.DataFrame] | None = None,
) -> AttributionModel:
    """Extract touches and fit the attribution model (what ``gaelp-bayes fit`` calls).

    Uses ``config.sampler`` and the ``[attribution]`` table
    (:class:`AttributionConfig`). ``person_map`` is one ``device_id ->
    person_id`` table or several draws of it (a list, or one table with a
    ``draw`` column): then the model is fitted once per draw (at most
    ``identity_draws``, evenly spaced) and the posteriors are pooled.
    """
    config = config or Config()
    cfg = config.model("attribution", AttributionConfig)
    maps = _map_draws(person_map, cfg.identity_draws)
    model = AttributionModel(cfg, config.sampler)

    def touches(pm, segments=None, channels=None):
        return extract_touches(
            events,
            as_of,
            person_map=pm,
            session_minutes=cfg.session_minutes,
            touch_types=cfg.touch_types,
            segments=segments,
            channels=channels,
        )

    if len(maps) <= 1:
        return model.fit(touches(maps[0] if maps else None))
    first = [touches(m) for m in maps]
    segs = sorted(set().union(*(t.segments for t in first)))
    chans = sorted(set().union(*(t.channels for t in first)))
    return model.fit_imputations([touches(m, segs, chans) for m in maps])


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


__all__ = [
    "BASELINES",
    "AttributionConfig",
    "AttributionData",
    "AttributionModel",
    "attribution_model",
    "build_pymc_model",
    "derived",
    "exact_log_likelihood",
    "fit",
    "prepare",
]


# --------------------------------------------------------------------------- simulation


def sample_prior(
    config: AttributionConfig, shape: tuple[int, int, int], seed: int = 0
) -> dict[str, np.ndarray]:
    """One parameter draw from the model's prior (for simulation-based calibration).

    Returns every free site plus ``alpha`` (S), ``beta`` (S, C, K),
    ``kernel_scale_days`` and ``kernel_shape`` (C).
    """
    from gaelp_bayes.inference import setup_jax

    setup_jax()
    import jax
    from numpyro.infer import Predictive

    S = shape[0]
    empty = {
        "exposure": np.zeros(S, np.float32),
        "e_seg": np.zeros(0, np.int32),
        "e_days": np.zeros(0, np.float32),
        "e_count": np.zeros(0, np.float32),
        "c_end": np.zeros(0, np.float32),
        "b_cell": np.zeros(0, np.int32),
        "b_days": np.zeros(0, np.float32),
        "b_count": np.zeros(0, np.float32),
        "c_seg": np.zeros(0, np.int32),
        "c_active": np.zeros(0, np.float32),
        "ct_conv": np.zeros(0, np.int32),
        "ct_cell": np.zeros(0, np.int32),
        "ct_days": np.zeros(0, np.float32),
        "shape": shape,
    }
    pred = Predictive(_partial_model(config), num_samples=1)(jax.random.PRNGKey(seed), **empty)
    return {k: np.asarray(v[0], dtype=np.float64) for k, v in pred.items()}


def simulate(
    params: dict[str, np.ndarray],
    persons: list[int] | np.ndarray,
    touch_rate: np.ndarray,
    type_probs: np.ndarray,
    follow_up_days: float,
    rng: np.random.Generator,
    kernel: str = "exponential",
    active_gap_days: float = 0.0,
    extra_touches: dict[int, int] | None = None,
    counterfactual: bool = True,
    activity_days: np.ndarray | None = None,
    activity_shape: float = 1.0,
) -> tuple[Touches, dict[str, np.ndarray]]:
    """Simulate persons from the model's generative process (one parameter set).

    ``persons[s]`` persons per segment; each has a first touch at 0 (channel
    drawn in proportion to ``touch_rate``) and further touches of channel
    ``c`` at Poisson rate ``touch_rate[c]`` per day, each of type ``k`` with
    probability ``type_probs[k]``, over a follow-up ``A ~ Uniform(1,
    follow_up_days)`` days. The person converts when ``H`` reaches an Exp(1)
    threshold (bisection); touches from then on are dropped (bidding stops)
    and kept apart as the person's *potential* touches. ``extra_touches``
    ``{person: n}`` adds ``n`` touches to a person (edge cases);
    ``counterfactual = False`` skips computing ``incremental`` (zeros; speed runs).
    ``activity_days`` (S,): persons are active for ``D`` days only, ``D ~
    Weibull(activity_shape)`` with mean ``activity_days[s]`` (shape 1: the
    exponential); touches and the baseline stop when activity ends (touch
    effects run on), as in the example world.

    Returns the observed :class:`Touches` and the truth: ``incremental``
    (C,) conversions before ``A`` lost without each channel under common
    random numbers (potential touches included, as in the example world),
    ``converted`` and ``threshold`` per person.
    """
    alpha = np.asarray(params["alpha"], float)
    beta = np.asarray(params["beta"], float)
    scale = np.asarray(params["kernel_scale_days"], float)
    kshape = np.asarray(params.get("kernel_shape", np.ones(scale.size)), float)
    S, C, K = beta.shape
    persons = np.asarray(persons, dtype=np.int64)
    seg = np.repeat(np.arange(S), persons)
    P = seg.size
    A = rng.uniform(1.0, follow_up_days, P)
    if activity_days is None:
        D = np.full(P, np.inf)
    else:
        from scipy.special import gamma as gamma_fn

        mean = np.asarray(activity_days, float)[seg]
        if activity_shape == 1.0:
            D = rng.exponential(mean)
        else:
            D = mean / gamma_fn(1.0 + 1.0 / activity_shape) * rng.weibull(activity_shape, P)
    reach = np.minimum(A, D)
    rate = np.asarray(touch_rate, float)
    n = rng.poisson(rate.sum() * reach)
    for i, k in (extra_touches or {}).items():
        n[i] += k
    person = np.r_[np.arange(P), np.repeat(np.arange(P), n)]
    days = np.r_[np.zeros(P), rng.random(n.sum()) * reach[np.repeat(np.arange(P), n)]]
    ch = rng.choice(C, size=person.size, p=rate / rate.sum())
    tt = rng.choice(K, size=person.size, p=np.asarray(type_probs) / np.sum(type_probs))
    order = np.lexsort((days, person))
    person, days, ch, tt = person[order], days[order], ch[order], tt[order]
    threshold = rng.exponential(1.0, P)

    def cum_h(x: np.ndarray, drop: int | None = None) -> np.ndarray:
        keep = np.ones(person.size, bool) if drop is None else ch != drop
        d = np.maximum(x[person] - days, 0.0)
        g = kernel_cdf(np, kernel, np.maximum(d, 1e-12), kshape[ch], scale[ch]) * (d > 0)
        base = np.minimum(x, D)
        if active_gap_days > 0:
            nxt = np.r_[days[1:], np.inf]
            nxt = np.where(np.r_[person[1:] != person[:-1], True], np.inf, nxt)
            span = np.clip(np.minimum(nxt, x[person]) - days, 0.0, active_gap_days)
            base = np.bincount(person, weights=span, minlength=P)
        if "baseline_decay_days" in params:
            tau = np.asarray(params["baseline_decay_days"], float)[seg]
            base = tau * -np.expm1(-base / tau)
        bj = beta[seg[person], ch, tt] * keep
        return alpha[seg] * base + np.bincount(person, weights=bj * g, minlength=P)

    def first_time(drop: int | None = None) -> np.ndarray:
        lo, hi = np.zeros(P), A.copy()
        reach = cum_h(hi, drop) >= threshold
        for _ in range(50):
            mid = 0.5 * (lo + hi)
            above = cum_h(mid, drop) >= threshold
            hi, lo = np.where(above, mid, hi), np.where(above, lo, mid)
        return np.where(reach, hi, np.inf)

    T = first_time()
    converted = np.isfinite(T)
    inc = np.zeros(C)
    for c in range(C if counterfactual else 0):
        cand = converted & np.isin(np.arange(P), person[(ch == c) & (days < T[person])])
        if cand.any():
            inc[c] = np.sum(~np.isfinite(first_time(c)[cand]))
    end = np.where(converted, T, A)
    seen = days < end[person]
    t = Touches(
        person_ids=np.array([f"p{i}" for i in range(P)], dtype=object),
        segment=seg,
        end_days=end,
        horizon_days=A,
        converted=converted,
        person=person[seen],
        days=days[seen],
        channel=ch[seen],
        touch_type=tt[seen],
        segments=[f"s{i}" for i in range(S)],
        channels=[f"c{i}" for i in range(C)],
        touch_types=list(TOUCH_TYPES[:K]),
        window_days=float(follow_up_days),
        after_conversion=int((~seen).sum()),
    )
    return t, {"incremental": inc, "converted": converted, "threshold": threshold}
