"""Parameters of the journey simulator: one pytree of arrays, two sources.

:class:`SimParams` holds every number the simulator needs as ``jnp`` arrays
(float32). The same structure comes from the example world's truth
(:func:`from_world`) and from a fitted bundle (:func:`from_bundle`); a bundle
gives many posterior draws, stacked on a leading ``draws`` axis of every
array (:func:`stack` / :func:`take` move between the two forms). Channel and
segment names are static metadata (not traced), so a ``SimParams`` can cross
``jax.jit`` and ``jax.vmap`` boundaries.

Shapes (``S`` segments, ``C`` channels, ``M`` device profiles, ``J``
competing-bid mixture components, ``K`` kernel stages; one draw):

==================  ==============  ====================================================
field               shape           meaning
==================  ==============  ====================================================
arrival_rate        (S,)            persons arriving per day
in_market           (S,)            P(a person can convert at all)
window_mean         (S,)            mean active days; window ~ Gamma(window_shape, mean/shape)
window_shape        (S,)            shape of the active-window gamma
alpha               (S,)            organic conversion intensity per active day
beta                (S, C, 2)       expected conversions per won impression [..., 0] and
                                    per click [..., 1] (a click's visit included)
kernel_weight       (C, K)          phase-type form of the gamma kernel: weight of an
                                    Erlang(k + 1, kernel_rate) stage (rows sum to 1)
kernel_rate         (C,)            rate (per day) of the kernel's Erlang stages
kernel_shape        (C,)            the gamma kernel's shape (for reference)
kernel_scale        (C,)            the gamma kernel's scale in days (for reference)
opp_rate            (S, C, 24)      auction opportunities per active person-hour, by
                                    hour of day (UTC), for a person with profile weight 1
profile_prob        (S, M)          P(device profile m | segment)
profile_opp         (M, C)          opportunity multiplier of device profile m
profile_ctr         (M, C)          CTR multiplier of device profile m
ctr                 (S, C)          P(click | won impression)
bid_loc             (C, 24, J)      log-location of the competing bid's component j
bid_sigma           (C, J)          log-sd of component j
bid_weight          (C, J)          weight of component j (rows sum to 1)
floor               (C,)            reserve price
first_price         (C,)            1.0 = first-price auction (pay the bid), 0.0 = second
untouched_rate      (S,)            conversions per day outside the simulated journeys
                                    (persons the fit saw convert with no touch before;
                                    0 for a world, whose persons all are simulated)
==================  ==============  ====================================================
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gaelp_bayes.errors import DataError, InputNotFoundError

HOURS = 24
#: Most Erlang stages used to represent a gamma kernel (shape up to MAX_STAGES - 1 exactly).
MAX_STAGES = 12

_ARRAY_FIELDS = (
    "arrival_rate",
    "in_market",
    "window_mean",
    "window_shape",
    "alpha",
    "beta",
    "kernel_weight",
    "kernel_rate",
    "kernel_shape",
    "kernel_scale",
    "opp_rate",
    "profile_prob",
    "profile_opp",
    "profile_ctr",
    "ctr",
    "bid_loc",
    "bid_sigma",
    "bid_weight",
    "floor",
    "first_price",
    "untouched_rate",
)


@dataclass(frozen=True)
class SimParams:
    """One parameter set (or a stack of posterior draws) of the journey simulator.

    See the module docstring for every field's shape and meaning. Arrays
    carry a leading ``draws`` axis when the set holds several draws
    (:attr:`n_draws` is ``None`` for one draw).
    """

    arrival_rate: Any
    in_market: Any
    window_mean: Any
    window_shape: Any
    alpha: Any
    beta: Any
    kernel_weight: Any
    kernel_rate: Any
    kernel_shape: Any
    kernel_scale: Any
    opp_rate: Any
    profile_prob: Any
    profile_opp: Any
    profile_ctr: Any
    ctr: Any
    bid_loc: Any
    bid_sigma: Any
    bid_weight: Any
    floor: Any
    first_price: Any
    untouched_rate: Any
    channels: tuple[str, ...] = ()
    segments: tuple[str, ...] = ()
    source: str = ""

    @property
    def n_draws(self) -> int | None:
        """Number of stacked draws, or ``None`` for a single parameter set."""
        nd = np.ndim(self.arrival_rate)
        return None if nd == 1 else int(np.shape(self.arrival_rate)[0])

    @property
    def n_segments(self) -> int:
        return len(self.segments)

    @property
    def n_channels(self) -> int:
        return len(self.channels)

    def arrays(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in _ARRAY_FIELDS}

    def replace(self, **kw: Any) -> SimParams:
        return dataclasses.replace(self, **kw)


def _register() -> None:
    import jax

    jax.tree_util.register_dataclass(
        SimParams,
        data_fields=list(_ARRAY_FIELDS),
        meta_fields=["channels", "segments", "source"],
    )


_register()


def as_jax(p: SimParams) -> SimParams:
    """The same parameters as float32 ``jnp`` arrays."""
    import jax.numpy as jnp

    return p.replace(**{k: jnp.asarray(v, jnp.float32) for k, v in p.arrays().items()})


def stack(params: list[SimParams]) -> SimParams:
    """Stack single draws along a new leading ``draws`` axis."""
    first = params[0]
    return first.replace(
        **{k: np.stack([np.asarray(getattr(p, k)) for p in params]) for k in _ARRAY_FIELDS}
    )


def take(p: SimParams, i: int | np.ndarray) -> SimParams:
    """Draw ``i`` (an int: one set) or draws ``i`` (an index array) of a stacked set."""
    if p.n_draws is None:
        raise ValueError("take() needs a SimParams with a draws axis")
    return p.replace(**{k: v[i] for k, v in p.arrays().items()})


def mean_params(p: SimParams) -> SimParams:
    """A single set from the posterior mean of each array (a plug-in estimate).

    Kernel stage weights are averaged too (a mixture of the draws' kernels
    with a per-draw rate would be exact; this is an approximation, fine for
    a posterior-mean baseline).
    """
    if p.n_draws is None:
        return p
    return p.replace(**{k: np.asarray(v).mean(axis=0) for k, v in p.arrays().items()})


# ---------------------------------------------------------------------------
# gamma kernel as a phase-type (Erlang mixture) distribution


def gamma_phase_type(shape: float, scale: float, stages: int) -> tuple[np.ndarray, float]:
    """Erlang mixture with a common rate that matches a gamma's mean and variance.

    For ``n <= shape <= n + 1`` (``n = floor(shape)``) the gamma(``shape``,
    ``scale``) density is represented by ``p Erlang(n, mu) + (1 - p)
    Erlang(n + 1, mu)`` with ``p`` and ``mu`` solving the first two moments
    (Tijms' two-moment fit); integer shapes are exact. Shapes below 1 (more
    variable than an exponential) get the exponential of the same mean, and
    shapes above ``stages - 1`` the Erlang mixture of ``stages`` stages with
    the same mean (both approximations; see docs/simulator.md).

    Returns the weights of stages ``1..stages`` and the rate per day.
    """
    a, theta = float(shape), float(scale)
    w = np.zeros(stages)
    mean = a * theta
    if a <= 1.0:
        w[0] = 1.0
        return w, 1.0 / mean
    n = math.floor(a)
    if n >= stages:
        w[stages - 1] = 1.0
        return w, stages / mean
    if a == n:
        w[n - 1] = 1.0
        return w, n / mean
    q = (a * (n + 1) + math.sqrt(a * (n + 1) * (a - n))) / (a + 1)  # = n + 1 - p
    p = n + 1 - q
    w[n - 1] = p
    w[n] = 1.0 - p
    return w, q / mean


def kernel_stages(shapes: np.ndarray) -> int:
    """Static number of Erlang stages for kernels of these shapes."""
    a = np.asarray(shapes, float)
    return int(min(MAX_STAGES, max(1, int(np.floor(a.max())) + 1)))


def _kernel_arrays(shape: np.ndarray, scale: np.ndarray, stages: int):
    """Kernel weights (..., C, K) and rates (..., C) for arrays of shapes and scales."""
    shape = np.asarray(shape, float)
    scale = np.asarray(scale, float)
    w = np.zeros((*shape.shape, stages))
    r = np.zeros(shape.shape)
    for idx in np.ndindex(shape.shape):
        w[idx], r[idx] = gamma_phase_type(shape[idx], scale[idx], stages)
    return w, r


# ---------------------------------------------------------------------------
# from_world: the example world's true parameters


def _device_profiles(spec: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact device-profile distribution of the world generator.

    A person owns 1..4 devices (``devices_per_person``); the primary one is a
    mobile with the segment's ``mobile_share`` else a desktop, others are
    mobile/desktop/tablet with probabilities 0.4/0.4/0.2 and opportunity
    weight ``secondary_device_use``. A profile is (primary type, multiset of
    secondary types); its opportunity multiplier per channel is the sum of
    device weight x channel device multiplier, and its CTR multiplier the
    opportunity-weighted mean of 1.1 (mobile) and 1.0.
    """
    from itertools import combinations_with_replacement

    types = ("mobile", "desktop", "tablet")
    sec_p = np.array([0.4, 0.4, 0.2])
    dpp = np.asarray(spec["devices_per_person"], float)
    dpp = dpp / dpp.sum()
    use2 = float(spec["secondary_device_use"])
    chans = spec["channels"]
    dm = np.array([[c["device_multiplier"].get(t, 1.0) for t in types] for c in chans])  # (C,3)
    ctr_f = np.array([1.1, 1.0, 1.0])
    mobile_share = np.array([s["mobile_share"] for s in spec["segments"]])
    profiles_opp, profiles_ctr, p_primary, p_rest = [], [], [], []
    for primary in (0, 1):
        for nsec in range(dpp.size):
            for combo in combinations_with_replacement(range(3), nsec):
                counts = np.bincount(np.asarray(combo, int), minlength=3)
                multinom = math.factorial(nsec) / np.prod([math.factorial(k) for k in counts])
                prob = dpp[nsec] * multinom * np.prod(sec_p**counts)
                opp = dm[:, primary] + use2 * (dm * counts).sum(axis=1)
                ctrw = dm[:, primary] * ctr_f[primary] + use2 * (dm * counts * ctr_f).sum(axis=1)
                profiles_opp.append(opp)
                profiles_ctr.append(ctrw / opp)
                p_primary.append(primary)
                p_rest.append(prob)
    p_primary = np.asarray(p_primary)
    p_rest = np.asarray(p_rest)
    prob = (
        np.where(p_primary[None, :] == 0, mobile_share[:, None], 1.0 - mobile_share[:, None])
        * p_rest[None, :]
    )
    return prob, np.asarray(profiles_opp), np.asarray(profiles_ctr)


def world_params(params: dict) -> SimParams:
    """:class:`SimParams` from a world's ``truth/params.json`` content (a dict)."""
    spec = params["spec"]
    segs, chans = spec["segments"], spec["channels"]
    S, C = len(segs), len(chans)
    seg_names = tuple(s["name"] for s in segs)
    ch_names = tuple(c["name"] for c in chans)
    share = np.array([s["share"] for s in segs], float)
    arrival = params["persons"] * share / share.sum() / params["days"]
    aff = np.array([[s["channel_affinity"].get(c, 1.0) for c in ch_names] for s in segs])
    activity = np.array([s["activity"] for s in segs])[:, None]
    bmult = np.array([s["beta_multiplier"] for s in segs])[:, None]
    cmult = np.array([s["ctr_multiplier"] for s in segs])[:, None]
    opp_day = np.array([c["opportunity_rate"] for c in chans])[None, :] * aff * activity
    profile = np.asarray(spec["hour_profile"], float)
    profile = profile / profile.mean()
    opp_rate = opp_day[:, :, None] * profile[None, None, :] / HOURS
    ctr = np.minimum(np.array([c["ctr"] for c in chans])[None, :] * cmult, 0.9)
    beta = np.stack(
        [
            np.array([c["beta_impression"] for c in chans])[None, :] * bmult,
            np.array([c["beta_click"] for c in chans])[None, :] * bmult,
        ],
        axis=-1,
    )
    kshape = np.array([c["kernel_shape"] for c in chans], float)
    kscale = np.array([c["kernel_scale_days"] for c in chans], float)
    kw, kr = _kernel_arrays(kshape, kscale, kernel_stages(kshape))
    hours = np.arange(HOURS)
    evening = ((hours >= 18) & (hours <= 22)).astype(float)
    mu = (
        np.log([c["competing_median"] for c in chans])[:, None]
        + np.array([c["evening_uplift"] for c in chans])[:, None] * evening[None, :]
    )
    prob, popp, pctr = _device_profiles(spec)
    auction_type = params.get("derived", {}).get("auction_type", "second_price")
    return SimParams(
        arrival_rate=arrival,
        in_market=np.array([s["in_market"] for s in segs], float),
        window_mean=np.array([s["window_days"] for s in segs], float),
        window_shape=np.full(S, 2.0),
        alpha=np.array([s["alpha"] for s in segs], float),
        beta=beta,
        kernel_weight=kw,
        kernel_rate=kr,
        kernel_shape=kshape,
        kernel_scale=kscale,
        opp_rate=opp_rate,
        profile_prob=prob,
        profile_opp=popp,
        profile_ctr=pctr,
        ctr=ctr,
        bid_loc=mu[:, :, None],
        bid_sigma=np.array([c["competing_sigma"] for c in chans], float)[:, None],
        bid_weight=np.ones((C, 1)),
        floor=np.array([c["floor"] for c in chans], float),
        first_price=np.full(C, 1.0 if auction_type == "first_price" else 0.0),
        untouched_rate=np.zeros(S),
        channels=ch_names,
        segments=seg_names,
        source="world",
    )


def from_world(truth_dir: str | Path) -> SimParams:
    """The example world's true parameters (from ``truth/params.json``).

    ``truth_dir`` is the world's ``truth/`` folder or the world folder that
    contains it. Arrival rates are the world's persons per day (``persons x
    share / days``); everything else is the world's own value, including the
    exact distribution of device profiles.
    """
    p = Path(truth_dir)
    cand = [p / "params.json", p / "truth" / "params.json"]
    path = next((c for c in cand if c.is_file()), None)
    if path is None:
        raise InputNotFoundError(
            f"no params.json in {p} or {p / 'truth'}; pass an example world's folder "
            "(written by `gaelp-bayes example-data`)"
        )
    try:
        params = json.loads(path.read_text())
        return world_params(params)
    except (KeyError, TypeError, json.JSONDecodeError) as exc:
        raise DataError(
            f"{path} is not an example world's params.json ({type(exc).__name__}: {exc})",
            hint="regenerate the world with `gaelp-bayes example-data`",
        ) from None


def logged_policy(params: dict, days: int) -> tuple[np.ndarray, float]:
    """The world's logged bidding policy as a schedule, plus its bid jitter.

    Returns ``bids[day, hour, channel, segment]`` (the logged median bid,
    times the evening multiplier 18:00-22:59) and the log-sd of the
    per-auction jitter around it (pass it as ``bid_noise`` to the simulator).
    """
    spec = params["spec"]
    C, S = len(spec["channels"]), len(spec["segments"])
    hours = np.arange(HOURS)
    evening = (hours >= 18) & (hours <= 22)
    mult = np.where(evening, spec["evening_bid_multiplier"], 1.0)
    logged = np.array([c["logged_bid"] for c in spec["channels"]], float)
    bids = mult[:, None] * logged[None, :]  # (24, C)
    out = np.broadcast_to(bids[None, :, :, None], (days, HOURS, C, S)).copy()
    return out, float(spec["bid_jitter"])
