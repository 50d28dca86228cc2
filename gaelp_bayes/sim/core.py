"""The journey simulator: pure JAX, hourly ``lax.scan``, explicit PRNG keys.

One rollout (:func:`simulate`) takes one parameter set
(:class:`~gaelp_bayes.sim.params.SimParams`), a bid schedule
``bids[day, hour, channel, segment]`` (0 = do not bid), a budget and a key,
and simulates the plan population of data-contract section 6: persons who
arrive during the schedule's ``days`` at the segments' arrival rates,
followed for ``follow_days`` more days without ads. Every hour, for every
person and channel:

1. opportunities arrive at ``opp_rate[segment, channel, hour] x
   profile_opp[profile, channel] x exposure`` (exposure = the part of the
   hour inside the person's active window);
2. we bid ``bids[day, hour, channel, segment]`` (times ``exp(bid_noise x
   z)`` when a noisy policy is simulated) while the person has not converted
   and total spend is below the budget, and win when the bid beats both the
   competing bid (log-normal mixture, per channel and hour) and the floor;
   wins are Poisson with rate ``opportunities x P(win)`` (exact thinning of a
   Poisson process), split into clicked and unclicked wins by the CTR;
3. a win costs the second price (``max(competing, floor)`` given a win) or,
   in a first-price auction, the bid;
4. each win adds ``beta[..., 0]`` and each click ``beta[..., 1]`` expected
   conversions, delivered over time by the channel's gamma kernel
   (represented exactly or by a two-moment Erlang mixture, see
   :func:`gaelp_bayes.sim.params.gamma_phase_type`), on top of the organic
   intensity ``alpha`` while the person is active;
5. an in-market person converts when the cumulative intensity reaches their
   Exp(1) threshold (first conversion ends the journey and the bidding).

Everything is jit-compiled and vmappable: :func:`simulate_draws` maps over
posterior draws; the planner can also ``vmap`` :func:`simulate` over
candidate schedules. See docs/simulator.md.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any, NamedTuple

import numpy as np

from gaelp_bayes.inference import setup_jax

setup_jax()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from jax.scipy.special import gammainc, ndtr, ndtri  # noqa: E402

from gaelp_bayes.sim.params import HOURS, SimParams  # noqa: E402

#: Days the plan population is followed after the schedule's last day (data contract s. 6).
FOLLOW_DAYS = 30
MODES = ("sample", "rb", "mean")
_TINY = 1e-30


class Persons(NamedTuple):
    """The simulated population (``N`` = capacity; rows with ``valid == 0`` are padding)."""

    segment: Any  # (N,) int32
    profile: Any  # (N,) int32 device profile
    arrival: Any  # (N,) days from the schedule's start
    window: Any  # (N,) active days
    in_market: Any  # (N,) 0/1 (sample mode) or P(in market) (rb, mean)
    threshold: Any  # (N,) Exp(1) threshold of the cumulative intensity
    valid: Any  # (N,) 1.0 for a real person, 0.0 for padding


class SimState(NamedTuple):
    """State carried from hour to hour."""

    hour: Any  # () int32, hours since the start
    kernel_mass: Any  # (N, C, K) touch effect not yet delivered, per Erlang stage
    intensity: Any  # (N,) cumulative conversion intensity H so far
    alive: Any  # (N,) 1 = not converted (sample); P(not converted) (rb, mean)
    conv_time: Any  # (N,) days of the first conversion (inf: none yet; sample mode)
    first_win: Any  # (N,) days of the first won impression (inf: none)
    spend: Any  # () total spend so far
    stop_hour: Any  # () first hour with no bidding because of the budget (-1: not yet)


class HourOutcome(NamedTuple):
    """Population totals of one hour."""

    spend: Any
    wins: Any
    clicks: Any
    conversions: Any


class Outcome(NamedTuple):
    """Result of one rollout. Per-day arrays cover ``days + follow_days`` days.

    ``conversions`` are first conversions of the plan population (organic
    ones too) by the day they happen; ``conversions_noads`` what the same
    persons (same thresholds: common random numbers) would do with no ads at
    all. In ``rb`` and ``mean`` modes counts are expectations (fractional).
    """

    spend: Any  # (D,) spend per day
    wins: Any  # (D,) won impressions per day
    clicks: Any  # (D,) clicks per day
    conversions: Any  # (D,) first conversions per day
    conversions_noads: Any  # (D,) first conversions per day with no ads at all
    persons: Any  # () persons in the plan population
    stop_hour: Any  # () hour when the budget stopped bidding (-1: never)


class PersonOutcome(NamedTuple):
    """Per-person detail of a rollout (for tests and diagnostics)."""

    persons: Persons
    conv_time: Any  # (N,) days, inf if no conversion within the horizon
    first_win: Any  # (N,) days of the first won impression, inf if none


# ---------------------------------------------------------------------------
# helpers


def capacity(params: SimParams, days: int, margin: float = 6.0) -> int:
    """Static number of person slots for a plan of ``days`` days.

    The population size is Poisson with mean ``sum(arrival_rate) x days``;
    the capacity is that mean (the largest over draws) plus ``margin``
    standard deviations, so truncation has negligible probability.
    """
    lam = float(np.max(np.sum(np.asarray(params.arrival_rate), axis=-1))) * days
    return math.ceil(lam + margin * math.sqrt(lam) + 16)


def _gamma(key: jax.Array, a: jax.Array, rounds: int = 4) -> jax.Array:
    """Gamma(``a``, 1) draws by Marsaglia-Tsang with a fixed number of vectorised rounds.

    Acceptance is at least 95% per round for ``a >= 1``, so four rounds leave
    an unaccepted draw (then the last candidate is kept) with probability
    below 1e-5; shapes below 1 use ``Gamma(a + 1) U^(1/a)``. Much cheaper to
    compile than ``jax.random.gamma``.
    """
    k_boost, *ks = jax.random.split(key, 1 + rounds)
    a1 = jnp.where(a < 1, a + 1, a)
    d = a1 - 1.0 / 3.0
    c = 1.0 / jnp.sqrt(9.0 * d)
    out = jnp.full(a.shape, jnp.nan)
    for k in ks:
        kz, kv = jax.random.split(k)
        z = jax.random.normal(kz, a.shape)
        v = (1 + c * z) ** 3
        u = jax.random.uniform(kv, a.shape)
        ok = (v > 0) & (jnp.log(u) < 0.5 * z**2 + d - d * v + d * jnp.log(jnp.maximum(v, _TINY)))
        cand = d * jnp.maximum(v, _TINY)
        out = jnp.where(jnp.isnan(out) & ok, cand, out)
    out = jnp.where(jnp.isnan(out), d, out)
    boost = jax.random.uniform(k_boost, a.shape, minval=1e-12) ** (1.0 / a)
    return jnp.where(a < 1, out * boost, out)


def sample_persons(
    params: SimParams, key: jax.Array, days: int, n_max: int, mode: str = "sample"
) -> Persons:
    """Draw the plan population (arrivals uniform over ``[0, days)``)."""
    k_n, k_seg, k_arr, k_win, k_mkt, k_thr, k_prof = jax.random.split(key, 7)
    rate = params.arrival_rate
    total = jnp.sum(rate)
    n = jax.random.poisson(k_n, total * days)
    valid = (jnp.arange(n_max) < n).astype(jnp.float32)
    seg = jax.random.categorical(k_seg, jnp.log(rate + _TINY), shape=(n_max,))
    arrival = jax.random.uniform(k_arr, (n_max,), minval=0.0, maxval=float(days))
    shape = params.window_shape[seg]
    window = _gamma(k_win, shape) * params.window_mean[seg] / shape
    q = params.in_market[seg]
    in_market = (
        (jax.random.uniform(k_mkt, (n_max,)) < q).astype(jnp.float32) if mode == "sample" else q
    )
    threshold = jax.random.exponential(k_thr, (n_max,))
    profile = jax.random.categorical(k_prof, jnp.log(params.profile_prob[seg] + _TINY))
    return Persons(
        segment=seg.astype(jnp.int32),
        profile=profile.astype(jnp.int32),
        arrival=arrival,
        window=window,
        in_market=in_market,
        threshold=threshold,
        valid=valid,
    )


def init_state(params: SimParams, persons: Persons) -> SimState:
    n = persons.segment.shape[0]
    C, K = params.kernel_weight.shape
    return SimState(
        hour=jnp.int32(0),
        kernel_mass=jnp.zeros((n, C, K), jnp.float32),
        intensity=jnp.zeros(n, jnp.float32),
        alive=jnp.ones(n, jnp.float32),
        conv_time=jnp.full(n, jnp.inf, jnp.float32),
        first_win=jnp.full(n, jnp.inf, jnp.float32),
        spend=jnp.float32(0.0),
        stop_hour=jnp.int32(-1),
    )


#: Poisson rates from this value on are drawn by a rounded normal approximation.
_POISSON_NORMAL_RATE = 20.0
_POISSON_MAX_TERMS = 64
_POISSON_UNROLLED = 4


def _poisson_icdf(u, rate):
    """Poisson(``rate``) draw from a uniform ``u`` by inverse CDF, and a fresh uniform.

    Exact for rates below ``_POISSON_NORMAL_RATE`` (four unrolled rounds of the
    CDF, then a ``while_loop`` for the cells not yet placed, skipped when
    there are none); above it, the continuity-corrected normal approximation
    ``round(rate + sqrt(rate) z)``. Returns ``(k, v)``: ``v = (u - F(k - 1)) /
    P(k)`` is uniform and independent of ``k``, so one uniform serves several
    draws in turn (far cheaper than ``jax.random.poisson`` and than drawing
    every uniform).
    """
    small = rate < _POISSON_NORMAL_RATE
    lam = jnp.where(small, rate, 0.0)
    uu = jnp.where(small, u, 0.0)
    p0 = jnp.exp(-lam)
    zero = jnp.zeros_like(rate)

    def cond(c):
        i, _, _, cdf, _, _ = c
        return (i < _POISSON_MAX_TERMS) & jnp.any(uu > cdf)

    def body(c):
        i, k, p, cdf, lo, pk = c
        above = uu > cdf
        i = i + 1
        p = p * lam / i
        return (
            i,
            k + above,
            p,
            cdf + p,
            jnp.where(above, cdf, lo),
            jnp.where(above, p, pk),
        )

    # a few unrolled rounds (fused, cheap) place almost every cell; the loop
    # finishes the rare rest and is skipped entirely when there is none
    c = (jnp.int32(0), zero, p0, p0, zero, p0)
    for _ in range(_POISSON_UNROLLED):
        c = body(c)
    c = jax.lax.cond(
        jnp.any(uu > c[3]), lambda c: jax.lax.while_loop(cond, body, c), lambda c: c, c
    )
    _, k, _, _, lo, pk = c
    v = jnp.clip((u - lo) / jnp.maximum(pk, _TINY), 1e-7, 1 - 1e-7)

    def approximate(args):
        k, v = args
        big = jnp.maximum(jnp.floor(rate + jnp.sqrt(rate) * ndtri(u) + 0.5), 0.0)
        v_big = jnp.clip(jnp.mod(u * 7919.0, 1.0), 1e-7, 1 - 1e-7)  # approximate branch only
        return jnp.where(small, k, big), jnp.where(small, v, v_big)

    # the normal approximation's inverse CDF is costly; skipped when no rate needs it
    return jax.lax.cond(jnp.all(small), lambda a: a, approximate, (k, v))


def _kernel_ops(params: SimParams, dt_days: float):
    """Stage transitions and exit probabilities of the kernel over ``dt_days``.

    Mass in stage ``j`` (0-based: ``j + 1`` exponential stages left) moves
    ``m`` stages in ``dt`` with Poisson(``rate x dt``) probability; it is
    delivered (adds to the intensity) once it passes stage 0.
    Returns ``trans (C, K, K)`` with ``trans[c, i, j]`` = P(stage j -> stage i)
    and ``exit (C, K)`` = P(delivered).
    """
    K = params.kernel_weight.shape[-1]
    lam = params.kernel_rate * dt_days  # (C,)
    j = jnp.arange(K)
    steps = j[None, :] - j[:, None]  # (i, j): j - i
    logp = (
        steps[None] * jnp.log(lam[:, None, None] + _TINY)
        - lam[:, None, None]
        - jax.scipy.special.gammaln(jnp.maximum(steps, 0) + 1.0)[None]
    )
    trans = jnp.where(steps[None] >= 0, jnp.exp(logp), 0.0)
    exit_ = gammainc(j[None, :] + 1.0, lam[:, None])
    return trans, exit_


def _mixture_cdf(params: SimParams, hod, logx):
    """Per-component CDF of the competing bid at ``log x`` (..., C) -> (..., C, J)."""
    loc = params.bid_loc[:, hod, :]  # (C, J)
    z = (logx[..., None] - loc) / params.bid_sigma
    return ndtr(z)


def _win_probability(cdf_b, weight, bid, floor):
    """P(win) of a bid: the mixture CDF ``sum_j weight_j cdf_b_j``, 0 without a bid above the floor."""
    return jnp.where((bid > 0) & (bid > floor), jnp.sum(weight * cdf_b, axis=-1), 0.0)


def _expected_price(params: SimParams, hod, bid, cdf_b):
    """E[price | win] per (N, C) in closed form (second price with floor, or first price)."""
    loc = params.bid_loc[:, hod, :]  # (C, J)
    sig = params.bid_sigma
    w = params.bid_weight
    floor = params.floor
    logb = jnp.log(jnp.maximum(bid, _TINY))[..., None]
    logf = jnp.log(jnp.maximum(floor, _TINY))[:, None]
    has_floor = (floor > 0)[:, None]
    cdf_f = jnp.where(has_floor, ndtr((logf - loc) / sig), 0.0)  # (C, J)
    m1 = jnp.exp(loc + 0.5 * sig**2)
    upper = ndtr((logb - loc - sig**2) / sig)
    lower = jnp.where(has_floor, ndtr((logf - loc - sig**2) / sig), 0.0)
    part = w * (floor[:, None] * cdf_f + m1 * jnp.maximum(upper - lower, 0.0))
    pw = jnp.sum(w * cdf_b, axis=-1)
    second = jnp.sum(part, axis=-1) / jnp.maximum(pw, _TINY)
    return jnp.where(params.first_price > 0, bid, second)


def _sample_price(loc, sig, weight, floor, first_price, u, bid, cdf_b):
    """One draw of the price paid given a win, per cell, from one uniform.

    ``loc``, ``sig``, ``weight`` and ``cdf_b`` are ``(..., J)`` (the competing
    bid's mixture components for each cell's channel and hour), ``floor``,
    ``first_price``, ``u`` and ``bid`` are ``(...)``. The mixture component is
    drawn with probability proportional to ``weight x CDF(bid)`` (inverse CDF
    on the cumulative weights); the uniform's residual inside the chosen
    component then draws the competing bid from that component truncated
    above at the bid. One-hot arithmetic, no gathers (they are slow on a CPU).
    """
    if cdf_b.shape[-1] == 1:
        loc_j, sig_j, cdf_j, u_price = loc[..., 0], sig[..., 0], cdf_b[..., 0], u
    else:
        wc = weight * cdf_b  # (..., J)
        cum = jnp.cumsum(wc, axis=-1)
        x = u[..., None] * cum[..., -1:]
        hot = (x <= cum) & (x > cum - wc)  # the chosen component
        hot = hot & (jnp.cumsum(hot, axis=-1) == 1)
        hot = jnp.where(jnp.any(hot, axis=-1, keepdims=True), hot, jnp.arange(hot.shape[-1]) == 0)
        hf = hot.astype(cdf_b.dtype)
        loc_j = jnp.sum(hf * loc, axis=-1)
        sig_j = jnp.sum(hf * sig, axis=-1)
        cdf_j = jnp.sum(hf * cdf_b, axis=-1)
        lo = jnp.sum(hf * (cum - wc), axis=-1)
        w_j = jnp.sum(hf * wc, axis=-1)
        u_price = jnp.clip((x[..., 0] - lo) / jnp.maximum(w_j, _TINY), 0.0, 1.0)
    q = jnp.clip(u_price * cdf_j, 1e-12, 1 - 1e-7)
    competing = jnp.minimum(jnp.exp(loc_j + sig_j * ndtri(q)), bid)
    second = jnp.maximum(competing, floor)
    return jnp.where(first_price > 0, bid, second)


#: Person-hours whose auctions are simulated together: a ``1 / _CHUNK_SHARE`` share
#: of the batch's person-hours per chunk (see :func:`_draw_auctions`).
_CHUNK_SHARE = 16


class _Draws(NamedTuple):
    """Auction outcomes per person (and hour, for a batch of hours), before masking.

    Drawn as if every person were still bidding; :func:`_advance` then
    removes what converted persons and an exhausted budget would not have
    bought (a cell's draws do not depend on the state, so masking them
    afterwards gives the same distribution as not drawing them).
    """

    effect: Any  # (..., N, C) wins x beta_impression + clicks x beta_click
    wins: Any  # (..., N)
    clicks: Any  # (..., N)
    cost: Any  # (..., N)


def opportunity_tables(params: SimParams, persons: Persons) -> tuple[jax.Array, jax.Array]:
    """Each person's opportunity rate per hour of the day: ``(24, N, C)`` and its sum ``(24, N)``.

    ``opp_rate[segment, channel, hour] x profile_opp[profile, channel]``,
    before the exposure; the same every day, so a rollout computes it once.
    """
    opp = params.opp_rate[persons.segment] * params.profile_opp[persons.profile][..., None]
    opp = jnp.moveaxis(opp, -1, 0)
    return opp, jnp.sum(opp, axis=-1)


def _hour_opportunities(params: SimParams, persons: Persons, hod, tables=None):
    """One hour of :func:`opportunity_tables`: ``(N, C)`` and ``(N,)`` (from ``tables`` if given)."""
    if tables is not None:
        return tables[0][hod], tables[1][hod]
    opp = params.opp_rate[persons.segment, :, hod] * params.profile_opp[persons.profile]
    return opp, jnp.sum(opp, axis=-1)


def _chunk_indices(mask, rank, i, size):
    """Positions of the ``i``-th ``size`` true entries of ``mask`` (``rank`` = cumsum - 1).

    Returns ``(idx, ok, j)``: ``idx`` padded with ``len(mask)`` (dropped by
    scatters with ``mode="drop"``), ``ok`` the real entries, ``j`` ``idx``
    clipped into range (safe for gathers).
    """
    n = mask.shape[0]
    sel = mask & (rank >= i * size) & (rank < (i + 1) * size)
    idx = jnp.nonzero(sel, size=size, fill_value=n)[0]
    return idx, idx < n, jnp.minimum(idx, n - 1)


def _draw_auctions(params, persons, hods, bids, expo, keys, opp, total, *, bid_noise) -> _Draws:
    """Auctions of every person and channel for a batch of ``B`` hours (sample and rb modes).

    ``hods`` (B,) hours of the day, ``bids`` (B, C, S), ``expo`` (B, N) the
    hours' exposures, ``keys`` (B,) one key per hour, ``opp`` (B, N, C) and
    ``total`` (B, N) the hours' :func:`opportunity_tables`. A person meets
    Poisson(``lam[c] = opp[c] x exposure``) opportunities on channel ``c``;
    wins are Poisson with rate ``lam x P(win)``, drawn per cell by inverse
    CDF from one uniform (clicked wins, then unclicked ones, then the price
    from the residual uniform). A cell can only win when its uniform exceeds
    ``exp(-lam)``, and a person has such a cell in an hour with probability
    ``1 - exp(-sum lam)``: one uniform per person-hour decides that, and
    which cell comes first (inverse CDF over the channels); the first cell's
    uniform is then drawn above ``exp(-lam)``, later cells' freely, earlier
    cells win nothing. Same distribution as drawing every cell.

    Opportunities are rare (a few percent of person-hours), so only those
    candidate person-hours are simulated, gathered in chunks of ``B x N /
    _CHUNK_SHARE`` (as many chunks as needed; usually one), and their
    outcomes scattered back: the inverse CDFs, the bid jitter and the price
    draw, the expensive part, run on a fraction of the cells. A candidate's
    uniforms come from its hour's key and its person index, so a batch of
    hours draws exactly what the hours drawn one at a time do.
    """
    n_b, n = expo.shape
    n_ch = params.n_channels
    cells = n_b * n
    size = max(1, -(-cells // _CHUNK_SHARE))
    split = jax.vmap(jax.random.split)(keys)  # (B, 2)
    k_person, k_cell = split[:, 0], split[:, 1]
    u_p = jax.vmap(lambda k: jax.random.uniform(k, (n,), minval=1e-7, maxval=1 - 1e-7))(k_person)
    scale = (expo * persons.valid).reshape(cells)
    total = total.reshape(cells) * scale
    opp = opp.reshape(cells, n_ch)
    none = jnp.exp(-total)
    u_p = u_p.reshape(cells)
    cand = u_p > none
    rank = jnp.cumsum(cand) - 1
    count = rank[-1] + 1
    seg, prof = persons.segment, persons.profile
    loc_all = jnp.moveaxis(params.bid_loc, 1, 0)  # (24, C, J)
    bids_sc = jnp.moveaxis(bids, 2, 1)  # (B, S, C)
    chan = jnp.arange(n_ch)

    def chunk(carry):
        i, acc = carry
        idx, ok, j = _chunk_indices(cand, rank, i, size)
        hb, person = j // n, j % n
        hod = hods[hb]
        s_j, p_j = seg[person], prof[person]  # (M,)
        lam = opp[j] * jnp.where(ok, scale[j], 0.0)[:, None]  # (M, C)
        # the first channel with a candidate cell: inverse CDF of the person-hour's uniform
        some = jnp.maximum(-jnp.expm1(-total[j]), _TINY)
        v = (u_p[j] - none[j]) / some
        below = -jnp.expm1(-jnp.cumsum(lam, axis=-1)) / some[:, None]
        first = jnp.minimum(jnp.sum(below < v[:, None], axis=-1), n_ch - 1)  # (M,)
        k_j = jax.vmap(jax.random.fold_in)(k_cell[hb], person)
        r = jax.vmap(lambda k: jax.random.uniform(k, (2, n_ch), minval=1e-7, maxval=1 - 1e-7))(k_j)
        e0 = jnp.exp(-lam)
        u = jnp.where(chan[None, :] == first[:, None], e0 + r[:, 0] * (1.0 - e0), r[:, 0])
        lam = jnp.where(chan[None, :] >= first[:, None], lam, 0.0)
        # cells that can win: the first one, and later ones whose uniform exceeds exp(-lam);
        # only those get the costly draws (gathered again, in chunks of ``size`` cells)
        later = (chan[None, :] > first[:, None]) & (u > e0)
        live = (ok[:, None] & ((chan[None, :] == first[:, None]) | later)).reshape(-1)
        crank = jnp.cumsum(live) - 1
        n_live = crank[-1] + 1
        u_f, lam_f, z_f = u.reshape(-1), lam.reshape(-1), r[:, 1].reshape(-1)

        def cell_chunk(c2):
            k, acc = c2
            _, ok2, qq = _chunk_indices(live, crank, k, size)
            row, ch = qq // n_ch, qq % n_ch
            s_q, p_q, hod_q = s_j[row], p_j[row], hod[row]
            bid = bids_sc[hb[row], s_q, ch]  # (M,)
            if bid_noise > 0:
                bid = bid * jnp.exp(bid_noise * ndtri(z_f[qq]))
            loc = loc_all[hod_q, ch]  # (M, J)
            sig, w_mix = params.bid_sigma[ch], params.bid_weight[ch]  # (M, J)
            floor = params.floor[ch]
            cdf_b = ndtr((jnp.log(jnp.maximum(bid, _TINY))[:, None] - loc) / sig)
            p_win = jnp.where(ok2, _win_probability(cdf_b, w_mix, bid, floor), 0.0)
            ctr = jnp.minimum(params.ctr[s_q, ch] * params.profile_ctr[p_q, ch], 1.0)
            rate = lam_f[qq] * p_win
            clicks, v = _poisson_icdf(jnp.clip(u_f[qq], 1e-7, 1 - 1e-7), rate * ctr)
            noclick, v = _poisson_icdf(v, rate * (1 - ctr))
            wins = clicks + noclick
            price = _sample_price(loc, sig, w_mix, floor, params.first_price[ch], v, bid, cdf_b)
            beta = params.beta[s_q, ch]  # (M, 2)
            target = jnp.where(ok2, idx[row], cells)
            return k + 1, _Draws(
                effect=acc.effect.at[target, ch].add(
                    wins * beta[:, 0] + clicks * beta[:, 1], mode="drop"
                ),
                wins=acc.wins.at[target].add(wins, mode="drop"),
                clicks=acc.clicks.at[target].add(clicks, mode="drop"),
                cost=acc.cost.at[target].add(wins * price, mode="drop"),
            )

        _, acc = jax.lax.while_loop(
            lambda c: c[0] * size < n_live, cell_chunk, cell_chunk((jnp.int32(0), acc))
        )
        return i + 1, acc

    zeros = jnp.zeros(cells, jnp.float32)
    init = (jnp.int32(0), _Draws(jnp.zeros((cells, n_ch), jnp.float32), zeros, zeros, zeros))
    # the first chunk always runs (cheaper than a conditional); more only when needed
    _, acc = jax.lax.while_loop(lambda c: c[0] * size < count, chunk, chunk(init))
    return _Draws(
        effect=acc.effect.reshape(n_b, n, n_ch),
        wins=acc.wins.reshape(n_b, n),
        clicks=acc.clicks.reshape(n_b, n),
        cost=acc.cost.reshape(n_b, n),
    )


def _expected_draws(params, persons, hod, bids_hour, expo, opp) -> _Draws:
    """``mode="mean"``: expected wins, clicks and cost of one hour (smooth in the bids).

    ``opp`` (N, C) is the hour's :func:`opportunity_tables` row.
    """
    seg = persons.segment
    opp = opp * (expo * persons.valid)[:, None]  # (N, C)
    bid = bids_hour.T[seg]  # (N, C)
    cdf_b = _mixture_cdf(params, hod, jnp.log(jnp.maximum(bid, _TINY)))  # (N, C, J)
    p_win = _win_probability(cdf_b, params.bid_weight, bid, params.floor)
    ctr = jnp.minimum(params.ctr[seg] * params.profile_ctr[persons.profile], 1.0)
    wins = opp * p_win
    clicks = wins * ctr
    beta = params.beta[seg]
    return _Draws(
        effect=wins * beta[..., 0] + clicks * beta[..., 1],
        wins=jnp.sum(wins, axis=-1),
        clicks=jnp.sum(clicks, axis=-1),
        cost=jnp.sum(wins * _expected_price(params, hod, bid, cdf_b), axis=-1),
    )


def kernel_ops(params: SimParams) -> tuple:
    """Kernel stage transitions over one hour and over half an hour (see :func:`step`)."""
    return (*_kernel_ops(params, 1.0 / HOURS), *_kernel_ops(params, 0.5 / HOURS))


def _exposure(persons: Persons, hour):
    """Hours of ``[hour, hour + 1)`` inside each person's active window, and its midpoint."""
    a = persons.arrival * HOURS
    e = (persons.arrival + persons.window) * HOURS
    lo = jnp.maximum(hour, a)
    hi = jnp.minimum(hour + 1.0, e)
    return jnp.clip(hi - lo, 0.0, 1.0), 0.5 * (lo + hi)


def step(
    params: SimParams,
    persons: Persons,
    state: SimState,
    bids_hour: jax.Array,
    key: jax.Array,
    budget: jax.Array | float = jnp.inf,
    *,
    mode: str = "sample",
    bid_noise: float = 0.0,
    ads: bool = True,
    kernel: tuple | None = None,
    tables: tuple | None = None,
) -> tuple[SimState, HourOutcome]:
    """Advance the population by one hour.

    ``bids_hour`` is ``(C, S)``: this hour's bid per channel and segment.
    With ``ads=False`` (static) no auction is simulated (the follow-up).
    ``kernel`` is :func:`kernel_ops` ``(params)`` and ``tables``
    :func:`opportunity_tables` ``(params, persons)``, computed here when not
    given (pass them when stepping many hours: they are the same every hour).
    Draws the same as :func:`simulate` does for that hour and key.
    """
    hour = state.hour
    expo, mid = _exposure(persons, hour.astype(jnp.float32))
    kernel = kernel_ops(params) if kernel is None else kernel
    if not ads:
        return _advance(params, persons, state, expo, mid, None, budget, False, mode, kernel)
    hod = hour % HOURS
    opp, total = _hour_opportunities(params, persons, hod, tables)
    if mode == "mean":
        draws = _expected_draws(params, persons, hod, bids_hour, expo, opp)
    else:
        batch = _draw_auctions(
            params, persons, hod[None], bids_hour[None], expo[None], key[None],
            opp[None], total[None], bid_noise=bid_noise,
        )  # fmt: skip
        draws = jax.tree_util.tree_map(lambda a: a[0], batch)
    bidding = jnp.max(bids_hour) > 0
    return _advance(params, persons, state, expo, mid, draws, budget, bidding, mode, kernel)


def _advance(params, persons, state, expo, mid, draws, budget, bidding, mode, kernel):
    """One hour of the state: this hour's auction draws (``None``: no ads), kernel, conversions."""
    hour = state.hour
    seg = persons.segment
    trans, exit_, trans_h, exit_h = kernel
    mass = state.kernel_mass
    alive0 = state.alive
    zero = jnp.float32(0.0)
    if draws is not None:
        # exhausted once within float32 rounding of the budget (the capped hour lands there)
        can_bid = (state.spend < budget * (1.0 - 1e-6)).astype(jnp.float32)
        # sample: touches stop at the conversion; rb/mean: potential touches, whose
        # spend and counts are weighted with P(not converted yet)
        counted = alive0 * can_bid
        touched = (alive0 if mode == "sample" else jnp.ones_like(alive0)) * can_bid
        # the hour that reaches the budget keeps only the share of its wins that the
        # remaining budget pays for (bidding stops at the budget within the hour;
        # the share is taken of every win alike, so counts can become fractional)
        full = jnp.sum(draws.cost * counted)
        keep = jnp.clip((budget - state.spend) / jnp.maximum(full, _TINY), 0.0, 1.0)
        h_spend = full * keep
        h_wins = jnp.sum(draws.wins * counted) * keep
        h_clicks = jnp.sum(draws.clicks * counted) * keep
        # a touch's effect enters the kernel's stages at the middle of its hour
        inj_amount = draws.effect * (touched * keep)[:, None]  # (N, C)
        won_any = (draws.wins * touched > 0) & (keep > 0)
        first_win = jnp.where(jnp.isinf(state.first_win) & won_any, mid / HOURS, state.first_win)
        delivered_inj = inj_amount @ jnp.sum(params.kernel_weight * exit_h, axis=-1)
        inj_mass = inj_amount[..., None] * jnp.einsum("cj,cij->ci", params.kernel_weight, trans_h)
        stopped = (state.stop_hour < 0) & (can_bid == 0) & bidding
        stop_hour = jnp.where(stopped, hour, state.stop_hour)
        spend = state.spend + h_spend
    else:
        h_spend = h_wins = h_clicks = zero
        delivered_inj = 0.0
        inj_mass = 0.0
        first_win = state.first_win
        stop_hour = state.stop_hour
        spend = state.spend
    delivered = jnp.sum(mass * exit_, axis=(1, 2)) + delivered_inj
    new_mass = jnp.einsum("ncj,cij->nci", mass, trans) + inj_mass
    organic = params.alpha[seg] * expo / HOURS
    h0 = state.intensity
    h1 = h0 + delivered + organic
    if mode == "sample":
        newly = (alive0 > 0) & (persons.in_market > 0) & (h1 >= persons.threshold)
        frac = jnp.clip((persons.threshold - h0) / jnp.maximum(h1 - h0, _TINY), 0.0, 1.0)
        conv_time = jnp.where(newly, (hour + frac) / HOURS, state.conv_time)
        alive = jnp.where(newly, 0.0, alive0)
        conv = jnp.sum(newly * persons.valid)
    else:
        q = persons.in_market
        alive = 1.0 - q + q * jnp.exp(-h1)
        conv = jnp.sum(q * (jnp.exp(-h0) - jnp.exp(-h1)) * persons.valid)
        conv_time = state.conv_time
    new_state = SimState(
        hour=hour + 1,
        kernel_mass=new_mass,
        intensity=h1,
        alive=alive,
        conv_time=conv_time,
        first_win=first_win,
        spend=spend,
        stop_hour=stop_hour,
    )
    return new_state, HourOutcome(h_spend, h_wins, h_clicks, conv)


def follow_up(
    params: SimParams, persons: Persons, state: SimState, follow_days: int, *, mode: str = "sample"
) -> tuple[jax.Array, SimState]:
    """Conversions per day over ``follow_days`` days without ads, in closed form.

    With no new touches the cumulative intensity is known at any time: the
    kernel mass of stage ``k`` of channel ``c`` is delivered by ``tau`` days
    with probability ``P(Poisson(rate_c tau) >= k + 1)``, and the organic part
    grows with the active time. It is evaluated at the end of each day (a
    table of ``C x K x follow_days`` incomplete gamma values shared by all
    persons); day counts are exact (the intensity only grows), conversion
    times are interpolated linearly inside the day. Same result as stepping
    ``follow_days x 24`` hours with ``step(..., ads=False)``, far cheaper.
    Returns the conversions per day and the state at the end.
    """
    if follow_days == 0:
        return jnp.zeros(0, jnp.float32), state
    t0 = state.hour.astype(jnp.float32) / HOURS  # days
    d = jnp.arange(1, follow_days + 1, dtype=jnp.float32)
    k = jnp.arange(params.kernel_weight.shape[-1], dtype=jnp.float32)
    table = gammainc(k[None, :, None] + 1.0, params.kernel_rate[:, None, None] * d)  # (C, K, F)
    delivered = jnp.einsum("nck,ckf->nf", state.kernel_mass, table)
    a, w = persons.arrival, persons.window
    active0 = jnp.clip(t0 - a, 0.0, w)
    active = jnp.clip(t0 + d[None, :] - a[:, None], 0.0, w[:, None])
    organic = params.alpha[persons.segment][:, None] * (active - active0[:, None])
    h = state.intensity[:, None] + delivered + organic  # (N, F)
    h_prev = jnp.concatenate([state.intensity[:, None], h[:, :-1]], axis=1)
    if mode == "sample":
        thr = persons.threshold[:, None]
        can = (state.alive > 0) & (persons.in_market > 0)
        cross = can[:, None] & (h >= thr) & (h_prev < thr)
        conv = jnp.sum(cross * persons.valid[:, None], axis=0)
        frac = jnp.clip((thr - h_prev) / jnp.maximum(h - h_prev, _TINY), 0.0, 1.0)
        t_cross = jnp.min(jnp.where(cross, t0 + d[None, :] - 1.0 + frac, jnp.inf), axis=1)
        conv_time = jnp.minimum(state.conv_time, t_cross)
        alive = jnp.where(jnp.isfinite(t_cross), 0.0, state.alive)
    else:
        q = persons.in_market
        conv = jnp.sum(q[:, None] * (jnp.exp(-h_prev) - jnp.exp(-h)) * persons.valid[:, None], 0)
        conv_time = state.conv_time
        alive = 1.0 - q + q * jnp.exp(-h[:, -1])
    # mass not yet delivered (its split across stages is not tracked further)
    remaining = state.kernel_mass * (1.0 - table[..., -1])
    new = state._replace(
        hour=state.hour + follow_days * HOURS,
        kernel_mass=remaining,
        intensity=h[:, -1],
        alive=alive,
        conv_time=conv_time,
    )
    return conv.astype(jnp.float32), new


def _noads(persons: Persons, params: SimParams, n_days: int, mode: str):
    """Conversions per day with no ads at all (closed form; same persons and thresholds)."""
    alpha = params.alpha[persons.segment]
    edges = jnp.arange(n_days + 1, dtype=jnp.float32)
    h = alpha[:, None] * jnp.clip(edges[None, :] - persons.arrival[:, None], 0.0, None)
    h = jnp.minimum(h, (alpha * persons.window)[:, None])
    if mode == "sample":
        done = (h >= persons.threshold[:, None]) & (persons.in_market[:, None] > 0)
        cum = jnp.sum(done * persons.valid[:, None], axis=0)
    else:
        cum = jnp.sum(persons.in_market[:, None] * -jnp.expm1(-h) * persons.valid[:, None], axis=0)
    return jnp.diff(cum)


def rollout(
    params: SimParams,
    bids: jax.Array,
    budget: jax.Array | float,
    key: jax.Array,
    *,
    n_max: int,
    follow_days: int = FOLLOW_DAYS,
    mode: str = "sample",
    bid_noise: float = 0.0,
) -> tuple[Outcome, PersonOutcome]:
    """:func:`simulate` plus per-person detail (not jitted; wrap it yourself)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    days = bids.shape[0]
    k_pop, k_ads, k_untouched = jax.random.split(key, 3)
    persons = sample_persons(params, k_pop, days, n_max, mode)
    state = init_state(params, persons)
    bids = jnp.asarray(bids, jnp.float32)
    keys = jax.random.split(k_ads, days * HOURS).reshape(days, HOURS)
    budget = jnp.asarray(budget, jnp.float32)
    kops = kernel_ops(params)
    tabs = opportunity_tables(params, persons)
    hods = jnp.arange(HOURS)

    def day_body(s, x):
        # a day's auctions are drawn together (one batch, far less overhead than 24),
        # then the hours advance the state one by one
        bids_day, keys_day, d = x
        expo, mid = _exposure(persons, (d * HOURS + hods).astype(jnp.float32)[:, None])
        if mode == "mean":
            draws = None
        else:
            draws = _draw_auctions(
                params, persons, hods, bids_day, expo, keys_day, *tabs, bid_noise=bid_noise
            )

        def hour_body(s, y):
            h, dr = y
            if mode == "mean":
                dr = _expected_draws(params, persons, h, bids_day[h], expo[h], tabs[0][h])
            bidding = jnp.max(bids_day[h]) > 0
            return _advance(params, persons, s, expo[h], mid[h], dr, budget, bidding, mode, kops)

        return jax.lax.scan(hour_body, s, (hods, draws))

    state, out_ads = jax.lax.scan(day_body, state, (bids, keys, jnp.arange(days)))
    follow_conv, state = follow_up(params, persons, state, follow_days, mode=mode)
    n_days = days + follow_days
    daily = jax.tree_util.tree_map(lambda a: a.sum(axis=1), out_ads)
    zeros = jnp.zeros(follow_days, jnp.float32)
    hourly = HourOutcome(
        spend=jnp.concatenate([daily.spend, zeros]),
        wins=jnp.concatenate([daily.wins, zeros]),
        clicks=jnp.concatenate([daily.clicks, zeros]),
        conversions=jnp.concatenate([daily.conversions, follow_conv]),
    )
    # conversions outside the simulated journeys (from_bundle): same in both arms
    lam_u = jnp.sum(params.untouched_rate) * (jnp.arange(n_days) < days)
    if mode == "sample":
        untouched = jax.random.poisson(k_untouched, lam_u).astype(jnp.float32)
    else:
        untouched = lam_u.astype(jnp.float32)
    outcome = Outcome(
        spend=hourly.spend,
        wins=hourly.wins,
        clicks=hourly.clicks,
        conversions=hourly.conversions + untouched,
        conversions_noads=_noads(persons, params, n_days, mode) + untouched,
        persons=jnp.sum(persons.valid),
        stop_hour=state.stop_hour,
    )
    return outcome, PersonOutcome(persons, state.conv_time, state.first_win)


@partial(jax.jit, static_argnames=("n_max", "follow_days", "mode", "bid_noise"))
def simulate(
    params: SimParams,
    bids: jax.Array,
    budget: jax.Array | float,
    key: jax.Array,
    *,
    n_max: int,
    follow_days: int = FOLLOW_DAYS,
    mode: str = "sample",
    bid_noise: float = 0.0,
) -> Outcome:
    """Simulate one rollout of a schedule under one parameter set.

    Parameters
    ----------
    params
        One parameter set (no draws axis), float32 arrays (:func:`as_jax`).
    bids
        ``(days, 24, C, S)`` bid per impression; 0 = do not bid.
    budget
        Bidding stops for good once total spend reaches it (checked at the
        start of each hour; ``jnp.inf`` = no budget).
    key
        A ``jax.random`` key; the same key gives the same rollout.
    n_max
        Person slots (static), e.g. :func:`capacity` ``(params, days)``.
    follow_days
        Days after the schedule with no ads (default 30, the contract's).
    mode
        ``"sample"`` (every count sampled), ``"rb"`` (opportunities and wins
        sampled, conversion thresholds integrated out: counts are expected
        values given the sampled touches, less noise) or ``"mean"``
        (expected wins and prices too, still random persons; smooth in the
        bids, slightly biased, see docs/simulator.md).
    bid_noise
        Log-sd of a per-auction multiplicative jitter on our bids (to replay
        a noisy logged policy; 0 for a plan).

    Returns
    -------
    Outcome
        Per-day spend, wins, clicks, conversions and no-ads conversions over
        ``days + follow_days`` days, the population size and the hour the
        budget stopped bidding.

    Examples
    --------
    >>> import jax
    >>> from gaelp_bayes.sim import from_world, as_jax, capacity, simulate
    >>> p = as_jax(from_world("world/truth"))  # doctest: +SKIP
    >>> out = simulate(p, bids, 500.0, jax.random.key(0), n_max=capacity(p, 14))  # doctest: +SKIP
    """
    out, _ = rollout(
        params,
        bids,
        budget,
        key,
        n_max=n_max,
        follow_days=follow_days,
        mode=mode,
        bid_noise=bid_noise,
    )
    return out


@partial(jax.jit, static_argnames=("n_max", "follow_days", "mode", "bid_noise"))
def simulate_draws(
    params: SimParams,
    bids: jax.Array,
    budget: jax.Array | float,
    key: jax.Array,
    *,
    n_max: int,
    follow_days: int = FOLLOW_DAYS,
    mode: str = "sample",
    bid_noise: float = 0.0,
) -> Outcome:
    """:func:`simulate` for every draw of a stacked ``params`` (one key per draw).

    Every field of the result gets a leading ``draws`` axis.
    """
    n = params.arrival_rate.shape[0]
    keys = jax.random.split(key, n)

    def one(p, k):
        out, _ = rollout(
            p,
            bids,
            budget,
            k,
            n_max=n_max,
            follow_days=follow_days,
            mode=mode,
            bid_noise=bid_noise,
        )
        return out

    return jax.vmap(one)(params, keys)


def totals(out: Outcome) -> dict[str, Any]:
    """Plan totals (data contract section 6) from an outcome (arrays keep any draws axis).

    ``cac`` and ``incremental_cac`` are ``inf`` or ``nan`` where the
    denominator is not positive.
    """
    spend = jnp.sum(out.spend, axis=-1)
    conv = jnp.sum(out.conversions, axis=-1)
    inc = conv - jnp.sum(out.conversions_noads, axis=-1)
    return {
        "spend": spend,
        "conversions": conv,
        "incremental_conversions": inc,
        "cac": jnp.where(conv > 0, spend / jnp.maximum(conv, _TINY), jnp.inf),
        "incremental_cac": jnp.where(inc > 0, spend / jnp.maximum(inc, _TINY), jnp.inf),
    }
