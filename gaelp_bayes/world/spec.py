"""Specification of a synthetic example world.

A world is plain data: segments, channels, device and network behaviour, the
competing-bid landscape and the logged bidding policy. Every number here is an
*assumption* chosen to make a plausible world for testing; none of them is a
measurement. ``docs/example-world.md`` lists them with the reasoning.

The generative story (implemented in :mod:`gaelp_bayes.world.generate`):

1. A person of segment ``s`` arrives at a uniform time in the data window and
   stays active (browsing, reachable by ads) for ``W ~ Gamma(2, window_days/2)``
   days. With probability ``in_market`` the person is in the market at all
   (the cure fraction); others never convert.
2. The person owns 1-4 devices of different types; members of one household
   share a home network prefix; mobiles also appear on carrier NAT prefixes.
3. While active, each device meets auction opportunities per channel at
   ``opportunity_rate * affinity * device multiplier * hour profile``.
   We bid the logged policy's bid (with jitter); we win when our bid beats
   the highest competing bid (log-normal, evening peak) and the floor, and
   pay the second price.
4. Each won impression may be clicked (``ctr``); a click brings a visit.
5. The conversion intensity of an in-market person is additive:
   ``h(t) = alpha_s [while active] + sum_j beta[s, channel_j, type_j] * g_channel(t - t_j)``
   where ``g`` is a gamma density in days, so a touch's effect arrives with a
   delay of days. The first conversion ends the journey (we stop bidding).
6. Observation ends after ``days``; journeys still open are censored.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

DEVICE_TYPES = ("mobile", "desktop", "tablet")


@dataclass(frozen=True)
class Channel:
    name: str
    opportunity_rate: float  # auction opportunities per active device-day (primary device)
    competing_median: float  # median highest competing bid for one impression (currency)
    competing_sigma: float  # log-sd of the highest competing bid
    evening_uplift: float  # log-shift of competing bids 18:00-22:59
    floor: float  # reserve price
    logged_bid: float  # median of our logged bids
    ctr: float  # click-through rate of a won impression
    beta_impression: float  # expected extra conversions per impression (integrated intensity)
    beta_click: float  # expected extra conversions per click
    kernel_shape: float  # gamma kernel shape (1 = exponential decay, >1 = delayed peak)
    kernel_scale_days: float  # gamma kernel scale in days
    device_multiplier: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Segment:
    name: str
    share: float  # share of arriving persons
    in_market: float  # P(person can convert at all)
    alpha: float  # organic conversion intensity per active day
    window_days: float  # mean active period in days
    beta_multiplier: float  # scales every beta of this segment
    activity: float  # scales opportunity rates
    ctr_multiplier: float
    mobile_share: float  # P(primary device is a mobile)
    login_rate: float  # P(person has an account used on some devices)
    conversion_value: float  # mean conversion value
    channel_affinity: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class WorldSpec:
    name: str
    description: str
    channels: tuple[Channel, ...]
    segments: tuple[Segment, ...]
    start: str = "2026-01-01T00:00:00Z"
    devices_per_person: tuple[float, ...] = (0.45, 0.32, 0.16, 0.07)  # P(1..4 devices)
    secondary_device_use: float = 0.5  # opportunity weight of non-primary devices
    household_sizes: tuple[float, ...] = (0.70, 0.25, 0.05)  # P(1..3 persons per household)
    carrier_prefixes: int = 24  # carrier NAT prefixes shared by many mobiles
    public_wifi_prefixes: int = 1500
    mobile_on_carrier: float = 0.45  # P(a mobile event comes from a carrier prefix)
    mobile_at_home: float = 0.45
    away_from_home: float = 0.08  # P(a desktop/tablet event comes from public wifi)
    travel_geo: float = 0.03  # P(an event is geolocated away from home)
    regions: int = 40
    logged_in_device: float = 0.6  # P(a device of an account holder is logged in)
    direct_first_visit: float = 0.3  # P(journey starts with a direct visit at arrival)
    direct_visit_rate: float = 0.25  # direct visits per active day
    bid_jitter: float = 0.35  # log-sd of the logged policy's bids around its median
    evening_bid_multiplier: float = 1.15  # logged policy bids more 18:00-22:59
    repeat_conversion: float = 0.1  # P(a converter converts again, counted not modelled)
    hour_profile: tuple[float, ...] = (
        0.35,
        0.25,
        0.2,
        0.2,
        0.25,
        0.35,
        0.55,
        0.8,
        0.95,
        1.0,
        1.0,
        1.0,
        1.05,
        1.0,
        0.95,
        0.95,
        1.0,
        1.1,
        1.4,
        1.8,
        2.0,
        1.9,
        1.4,
        0.8,
    )  # relative auction opportunities by hour (UTC = local here), evening peak

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def channel_names(self) -> list[str]:
        return [c.name for c in self.channels]

    @property
    def segment_names(self) -> list[str]:
        return [s.name for s in self.segments]


def _parental_controls() -> WorldSpec:
    mob = {"mobile": 1.0, "desktop": 1.0, "tablet": 1.0}
    channels = (
        Channel(
            "search",
            0.22,
            0.45,
            0.55,
            0.20,
            0.05,
            0.50,
            0.060,
            0.030,
            0.22,
            1.0,
            0.8,
            {**mob, "mobile": 0.8, "desktop": 1.3},
        ),
        Channel(
            "social",
            0.45,
            0.010,
            0.60,
            0.30,
            0.002,
            0.011,
            0.012,
            0.012,
            0.12,
            2.0,
            1.4,
            {**mob, "mobile": 1.5, "desktop": 0.6},
        ),
        Channel(
            "display",
            0.60,
            0.004,
            0.70,
            0.15,
            0.001,
            0.004,
            0.004,
            0.006,
            0.08,
            2.0,
            2.4,
            {**mob, "mobile": 0.9, "desktop": 1.2},
        ),
        Channel(
            "video",
            0.25,
            0.020,
            0.50,
            0.35,
            0.005,
            0.022,
            0.007,
            0.018,
            0.10,
            2.5,
            1.8,
            {**mob, "mobile": 1.2, "desktop": 0.8, "tablet": 1.6},
        ),
        Channel(
            "email",
            0.08,
            0.002,
            0.40,
            0.0,
            0.001,
            0.004,
            0.035,
            0.025,
            0.18,
            1.5,
            1.2,
            {**mob, "tablet": 0.7},
        ),
    )
    segments = (
        # name, share, in_market, alpha, window, beta_mult, activity, ctr_mult, mobile, login, value
        Segment(
            "crisis",
            0.10,
            0.75,
            0.060,
            4.0,
            2.6,
            1.6,
            1.5,
            0.80,
            0.35,
            70.0,
            {"search": 2.0, "social": 0.8, "display": 0.6, "video": 0.6, "email": 0.5},
        ),
        Segment(
            "new_first_phone",
            0.20,
            0.50,
            0.010,
            14.0,
            1.2,
            1.0,
            1.1,
            0.60,
            0.40,
            55.0,
            {"social": 1.3, "search": 1.1},
        ),
        Segment(
            "school_prompted",
            0.15,
            0.55,
            0.012,
            12.0,
            1.0,
            1.0,
            1.0,
            0.55,
            0.45,
            50.0,
            {"email": 2.0, "search": 1.2},
        ),
        Segment(
            "tech_savvy",
            0.15,
            0.40,
            0.006,
            18.0,
            0.9,
            1.2,
            0.9,
            0.35,
            0.50,
            65.0,
            {"search": 1.4, "display": 0.6, "video": 1.2},
        ),
        Segment(
            "researcher",
            0.22,
            0.45,
            0.003,
            36.0,
            0.6,
            1.1,
            0.8,
            0.40,
            0.30,
            60.0,
            {"display": 1.4, "video": 1.3, "social": 1.1, "search": 0.9},
        ),
        Segment(
            "budget_conscious",
            0.18,
            0.30,
            0.003,
            24.0,
            0.8,
            0.9,
            0.9,
            0.65,
            0.25,
            40.0,
            {"email": 1.5, "display": 1.1},
        ),
    )
    return WorldSpec(
        name="parental-controls",
        description=(
            "Parents looking for parental-control software. Six segments with different "
            "propensities and latencies; urgent 'crisis' parents convert within days, "
            "researchers take two weeks or more. All numbers are assumptions, not measurements."
        ),
        channels=channels,
        segments=segments,
    )


WORLDS = {"parental-controls": _parental_controls}


def get_world(name: str) -> WorldSpec:
    """Return the named world's specification.

    Raises
    ------
    gaelp_bayes.errors.UsageError
        If no world has that name (the message lists the known worlds).
    """
    from gaelp_bayes.errors import GaelpError

    try:
        return WORLDS[name]()
    except KeyError:
        raise GaelpError(
            f"unknown world '{name}'; known worlds: {', '.join(sorted(WORLDS))}"
        ) from None


def assumptions_markdown(spec: WorldSpec) -> str:
    """The world's assumptions as Markdown tables (embedded verbatim in the docs)."""
    seg_rows = [
        "| segment | share | in market | organic intensity /day | mean active days "
        "| effect multiplier | activity | CTR multiplier | mobile first | login rate | value |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for s in spec.segments:
        seg_rows.append(
            f"| {s.name} | {s.share:g} | {s.in_market:g} | {s.alpha:g} | {s.window_days:g} "
            f"| {s.beta_multiplier:g} | {s.activity:g} | {s.ctr_multiplier:g} "
            f"| {s.mobile_share:g} | {s.login_rate:g} | {s.conversion_value:g} |"
        )
    ch_rows = [
        "| channel | opportunities /device-day | competing bid median | log-sd | evening uplift "
        "| floor | logged bid | CTR | effect per impression | effect per click "
        "| kernel shape | kernel scale (days) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for c in spec.channels:
        ch_rows.append(
            f"| {c.name} | {c.opportunity_rate:g} | {c.competing_median:g} "
            f"| {c.competing_sigma:g} | {c.evening_uplift:g} | {c.floor:g} | {c.logged_bid:g} "
            f"| {c.ctr:g} | {c.beta_impression:g} | {c.beta_click:g} | {c.kernel_shape:g} "
            f"| {c.kernel_scale_days:g} |"
        )
    aff = [
        "| segment | " + " | ".join(spec.channel_names) + " |",
        "| --- |" + " --- |" * len(spec.channels),
    ]
    for s in spec.segments:
        aff.append(
            f"| {s.name} | "
            + " | ".join(f"{s.channel_affinity.get(c, 1.0):g}" for c in spec.channel_names)
            + " |"
        )
    return "\n".join(
        [
            "#### Segments",
            "",
            *seg_rows,
            "",
            "#### Channels",
            "",
            *ch_rows,
            "",
            "#### Channel affinity (multiplies opportunity rates)",
            "",
            *aff,
            "",
        ]
    )
