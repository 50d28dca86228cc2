"""Vectorised generator of a synthetic world with known truth.

See :mod:`gaelp_bayes.world.spec` for the generative story. Everything is
numpy, seeded by one integer; the same spec, size and seed give identical
output. Randomness is split into independent streams per part of the story,
so that the counterfactual of removing a channel reuses the same random
numbers (common random numbers) for everything else.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy import special

from gaelp_bayes.world.spec import DEVICE_TYPES, WorldSpec

#: Horizon after the end of an active window over which delayed effects are followed.
TAIL_DAYS = 60.0
LATENCY_DAYS = np.arange(1, 31)
_BISECTION_STEPS = 34  # (window + tail) / 2**34 days is far below one second

UA_FAMILIES = {
    "mobile": (("iOS/Safari", 0.55), ("Android/Chrome", 0.45)),
    "desktop": (
        ("Windows/Chrome", 0.5),
        ("Windows/Edge", 0.15),
        ("macOS/Safari", 0.2),
        ("macOS/Chrome", 0.15),
    ),
    "tablet": (("iPadOS/Safari", 0.7), ("Android/Chrome", 0.3)),
}

Progress = Callable[[str], None]


@dataclass
class Population:
    """Per-person, per-device and per-opportunity arrays of one simulation."""

    segment: np.ndarray  # (P,) segment index
    arrival: np.ndarray  # (P,) days
    window: np.ndarray  # (P,) active days
    in_market: np.ndarray  # (P,) bool
    threshold: np.ndarray  # (P,) Exp(1) threshold of the cumulative intensity
    dev_person: np.ndarray  # (D,) person index
    dev_type: np.ndarray  # (D,) index into DEVICE_TYPES
    dev_use: np.ndarray  # (D,) opportunity weight
    opp_dev: np.ndarray  # (O,) device index
    opp_channel: np.ndarray  # (O,) channel index
    opp_time: np.ndarray  # (O,) days
    bid: np.ndarray
    competing: np.ndarray
    won: np.ndarray
    price: np.ndarray
    clicked: np.ndarray
    click_time: np.ndarray
    conversion: np.ndarray = field(default_factory=lambda: np.empty(0))  # (P,) days, inf if none

    @property
    def opp_person(self) -> np.ndarray:
        return self.dev_person[self.opp_dev]


def _streams(seed: int, n: int) -> list[np.random.Generator]:
    return [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(n)]


def _hour(t: np.ndarray) -> np.ndarray:
    return np.floor((t % 1.0) * 24.0).astype(np.int64) % 24


def _matrices(spec: WorldSpec) -> dict[str, np.ndarray]:
    """Per (segment, channel) rates and effects as arrays."""
    segs, chans = spec.segments, spec.channels
    aff = np.array([[s.channel_affinity.get(c.name, 1.0) for c in chans] for s in segs])
    activity = np.array([s.activity for s in segs])[:, None]
    bmult = np.array([s.beta_multiplier for s in segs])[:, None]
    cmult = np.array([s.ctr_multiplier for s in segs])[:, None]
    return {
        "opportunity": np.array([c.opportunity_rate for c in chans])[None, :] * aff * activity,
        "ctr": np.minimum(np.array([c.ctr for c in chans])[None, :] * cmult, 0.9),
        "beta_impression": np.array([c.beta_impression for c in chans])[None, :] * bmult,
        "beta_click": np.array([c.beta_click for c in chans])[None, :] * bmult,
        "device_multiplier": np.array(
            [[c.device_multiplier.get(d, 1.0) for d in DEVICE_TYPES] for c in chans]
        ),
    }


def simulate_population(spec: WorldSpec, persons: int, days: float, seed: int) -> Population:
    """Simulate persons, devices, auctions, clicks and first conversion times.

    Opportunities are simulated over each person's whole active window, also
    past ``days``: the truth (latency curves, eventual conversion) needs the
    uncensored future. Bidding stops at a person's first conversion; call
    :func:`active_opportunities` for the opportunities that happened.
    """
    r_person, r_dev, r_opp, r_auction, r_click = _streams(seed, 5)
    mats = _matrices(spec)
    S = len(spec.segments)
    shares = np.array([s.share for s in spec.segments])
    seg = r_person.choice(S, size=persons, p=shares / shares.sum())
    arrival = r_person.uniform(0.0, days, persons)
    wmean = np.array([s.window_days for s in spec.segments])[seg]
    window = r_person.gamma(2.0, wmean / 2.0)
    in_market = r_person.random(persons) < np.array([s.in_market for s in spec.segments])[seg]
    threshold = r_person.exponential(1.0, persons)

    # devices
    dpp = np.asarray(spec.devices_per_person)
    ndev = r_dev.choice(len(dpp), size=persons, p=dpp / dpp.sum()) + 1
    dev_person = np.repeat(np.arange(persons), ndev)
    first = np.r_[0, np.cumsum(ndev)[:-1]]
    rank = np.arange(dev_person.size) - np.repeat(first, ndev)
    primary = rank == 0
    mobile_share = np.array([s.mobile_share for s in spec.segments])[seg[dev_person]]
    dev_type = np.where(
        primary,
        np.where(r_dev.random(dev_person.size) < mobile_share, 0, 1),
        r_dev.choice(3, size=dev_person.size, p=[0.4, 0.4, 0.2]),
    )
    dev_use = np.where(primary, 1.0, spec.secondary_device_use)

    # auction opportunities: Poisson counts per (device, channel), thinned by hour profile
    profile = np.asarray(spec.hour_profile, dtype=float)
    profile = profile / profile.mean()
    pmax = profile.max()
    C = len(spec.channels)
    rate = (
        mats["opportunity"][seg[dev_person]]  # (D, C)
        * mats["device_multiplier"][:, dev_type].T
        * dev_use[:, None]
    )
    lam = rate * window[dev_person][:, None] * pmax
    counts = r_opp.poisson(lam)
    cell_dev = np.repeat(np.arange(dev_person.size), C)
    cell_ch = np.tile(np.arange(C), dev_person.size)
    flat = counts.ravel()
    opp_dev = np.repeat(cell_dev, flat)
    opp_ch = np.repeat(cell_ch, flat)
    p_of = dev_person[opp_dev]
    opp_t = arrival[p_of] + r_opp.random(opp_dev.size) * window[p_of]
    keep = r_opp.random(opp_dev.size) < profile[_hour(opp_t)] / pmax
    opp_dev, opp_ch, opp_t = opp_dev[keep], opp_ch[keep], opp_t[keep]
    order = np.lexsort((opp_t, opp_dev))
    opp_dev, opp_ch, opp_t = opp_dev[order], opp_ch[order], opp_t[order]

    # auctions (second price with floor)
    h = _hour(opp_t)
    evening = (h >= 18) & (h <= 22)
    ch = spec.channels
    logged = np.array([c.logged_bid for c in ch])[opp_ch]
    bid = logged * np.exp(spec.bid_jitter * r_auction.standard_normal(opp_t.size))
    bid = np.where(evening, bid * spec.evening_bid_multiplier, bid)
    bid = np.round(bid, 6)
    mu = np.log(np.array([c.competing_median for c in ch]))[opp_ch]
    mu = mu + evening * np.array([c.evening_uplift for c in ch])[opp_ch]
    competing = np.exp(
        mu
        + np.array([c.competing_sigma for c in ch])[opp_ch] * r_auction.standard_normal(opp_t.size)
    )
    floor = np.array([c.floor for c in ch])[opp_ch]
    won = bid > np.maximum(competing, floor)
    price = np.where(won, np.round(np.maximum(competing, floor), 6), np.nan)

    ctr = mats["ctr"][seg[dev_person[opp_dev]], opp_ch]
    ctr = np.minimum(ctr * np.where(dev_type[opp_dev] == 0, 1.1, 1.0), 0.9)
    clicked = won & (r_click.random(opp_t.size) < ctr)
    click_time = np.where(clicked, opp_t + r_click.uniform(2, 60, opp_t.size) / 86400.0, np.nan)

    pop = Population(
        segment=seg,
        arrival=arrival,
        window=window,
        in_market=in_market,
        threshold=threshold,
        dev_person=dev_person,
        dev_type=dev_type,
        dev_use=dev_use,
        opp_dev=opp_dev,
        opp_channel=opp_ch,
        opp_time=opp_t,
        bid=bid,
        competing=competing,
        won=won,
        price=price,
        clicked=clicked,
        click_time=click_time,
    )
    pop.conversion = first_conversion(spec, pop)
    return pop


def _touches(spec: WorldSpec, pop: Population, drop_channel: int | None = None):
    """Touch arrays (person, time, beta, channel) for the additive intensity."""
    mats = _matrices(spec)
    person = pop.opp_person
    seg = pop.segment[person]
    imp = pop.won if drop_channel is None else pop.won & (pop.opp_channel != drop_channel)
    clk = pop.clicked & imp
    t = np.r_[pop.opp_time[imp], pop.click_time[clk]]
    p = np.r_[person[imp], person[clk]]
    c = np.r_[pop.opp_channel[imp], pop.opp_channel[clk]]
    b = np.r_[
        mats["beta_impression"][seg[imp], pop.opp_channel[imp]],
        mats["beta_click"][seg[clk], pop.opp_channel[clk]],
    ]
    return p, t, b, c


def cumulative_intensity(
    spec: WorldSpec,
    pop: Population,
    drop_channel: int | None = None,
    mask: np.ndarray | None = None,
) -> Callable[[np.ndarray], np.ndarray]:
    """``H(x)``: each person's cumulative conversion intensity up to time ``x`` (vectorised).

    ``H(t) = alpha * |[A, t] ∩ [A, A + W]| + sum_j beta_j G_c(t - t_j)`` with ``G``
    the gamma kernel's CDF, over the person's potential touches (touches
    after a conversion contribute nothing before it). Persons outside
    ``mask`` get only the alpha term.
    """
    P = pop.segment.size
    alpha = np.array([s.alpha for s in spec.segments])[pop.segment]
    shape = np.array([c.kernel_shape for c in spec.channels])
    scale = np.array([c.kernel_scale_days for c in spec.channels])
    p, t, b, c = _touches(spec, pop, drop_channel)
    if mask is not None:
        keep = mask[p]
        p, t, b, c = p[keep], t[keep], b[keep], c[keep]
    k_shape, k_scale = shape[c], scale[c]

    def cum(x: np.ndarray) -> np.ndarray:
        active = np.clip(x - pop.arrival, 0.0, pop.window)
        dt = np.maximum(x[p] - t, 0.0)
        return alpha * active + np.bincount(
            p, weights=b * special.gammainc(k_shape, dt / k_scale), minlength=P
        )

    return cum


def first_conversion(
    spec: WorldSpec,
    pop: Population,
    drop_channel: int | None = None,
    persons: np.ndarray | None = None,
) -> np.ndarray:
    """First conversion time (days; ``inf`` if never) by inverting the cumulative intensity.

    An in-market person converts when ``H`` (:func:`cumulative_intensity`)
    reaches their Exp(1) threshold. Vectorised bisection over persons.
    """
    P = pop.segment.size
    sel = np.arange(P) if persons is None else persons
    mask = np.zeros(P, bool)
    mask[sel] = True
    mask &= pop.in_market
    cum = cumulative_intensity(spec, pop, drop_channel, mask)
    lo = pop.arrival.copy()
    hi = pop.arrival + pop.window + TAIL_DAYS
    reach = mask & (cum(hi) >= pop.threshold)
    out = np.full(P, np.inf)
    if reach.any():
        for _ in range(_BISECTION_STEPS):
            mid = 0.5 * (lo + hi)
            above = cum(mid) >= pop.threshold
            hi = np.where(above, mid, hi)
            lo = np.where(above, lo, mid)
        out[reach] = hi[reach]
    return out[sel]


def active_opportunities(pop: Population) -> np.ndarray:
    """Opportunities that happened: bidding stops at the person's first conversion."""
    return pop.opp_time < pop.conversion[pop.opp_person]


def incremental_by_channel(spec: WorldSpec, pop: Population, days: float) -> dict[str, int]:
    """True conversions up to ``days`` lost if one channel's touches were removed.

    Common random numbers: the same thresholds, opportunities and auctions;
    only the channel's impressions and clicks are removed. Removing touches
    can only delay a conversion, so only converters with a touch of the
    channel before converting need recomputing.
    """
    conv = pop.conversion
    out: dict[str, int] = {}
    person = pop.opp_person
    for ci, ch in enumerate(spec.channels):
        touched = pop.won & (pop.opp_channel == ci) & (pop.opp_time < conv[person])
        cand = np.unique(person[touched & (conv[person] < days)])
        if cand.size == 0:
            out[ch.name] = 0
            continue
        cf = first_conversion(spec, pop, drop_channel=ci, persons=cand)
        out[ch.name] = int(np.sum(cf >= days))
    return out


def first_touch(pop: Population, visits_person: np.ndarray, visits_time: np.ndarray) -> np.ndarray:
    """Earliest impression, click or visit per person (``inf`` if none)."""
    act = pop.won & active_opportunities(pop)
    ft = np.full(pop.segment.size, np.inf)
    np.minimum.at(ft, pop.opp_person[act], pop.opp_time[act])
    np.minimum.at(ft, visits_person, visits_time)
    return ft


def expected_latency(
    spec: WorldSpec, pop: Population, first_other: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Rao-Blackwellised latency curves and P(eventual conversion) per segment.

    ``first_other`` is each person's first potential touch other than the
    conversion session (``inf`` if none). Given everything but the Exp(1)
    threshold, ``P(T - F <= d) = q_s (1 - exp(-H(F + d)))`` (if the person
    would convert before their first other touch, the conversion session is
    the first touch and the latency is ~0, which the formula includes).
    Persons with no other touch are seen only if they convert, with latency
    ~0: they add ``P(convert)`` to numerator and denominator. Averaging these
    probabilities instead of indicators removes the threshold noise.
    """
    S = len(spec.segments)
    q = np.array([s.in_market for s in spec.segments])[pop.segment]
    cum = cumulative_intensity(spec, pop)
    end = pop.arrival + pop.window + TAIL_DAYS
    p_ever = q * -np.expm1(-cum(end))
    has = np.isfinite(first_other)
    f0 = np.where(has, first_other, pop.arrival)
    num = np.empty((pop.segment.size, LATENCY_DAYS.size))
    for i, d in enumerate(LATENCY_DAYS):
        num[:, i] = np.where(has, q * -np.expm1(-cum(f0 + d)), p_ever)
    weight = np.where(has, 1.0, p_ever)
    curve = np.full((S, LATENCY_DAYS.size), np.nan)
    p_conv = np.full(S, np.nan)
    for s in range(S):
        m = pop.segment == s
        if weight[m].sum() > 0:
            curve[s] = num[m].sum(axis=0) / weight[m].sum()
            p_conv[s] = p_ever[m].sum() / weight[m].sum()
    return curve, p_conv


def latency_curve(
    segment: np.ndarray, first: np.ndarray, conversion: np.ndarray, n_segments: int
) -> np.ndarray:
    """(S, 30) P(converted within d days of first touch), among persons with a touch."""
    seen = np.isfinite(first)
    with np.errstate(invalid="ignore"):
        lat = conversion - np.where(seen, first, 0.0)
    out = np.full((n_segments, LATENCY_DAYS.size), np.nan)
    for s in range(n_segments):
        m = seen & (segment == s)
        if m.any():
            out[s] = (lat[m][:, None] <= LATENCY_DAYS[None, :]).mean(axis=0)
    return out
