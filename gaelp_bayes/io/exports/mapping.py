"""The export mapping: which export events are conversions, visits and clicks, and
how a traffic source/medium becomes a channel.

Defaults work for common setups; a small TOML file overrides them. Every key
is optional; unknown keys and wrong types are all reported at once::

    # gaelp-mapping.toml
    click_ids = ["gclid", "fbclid"]      # URL / property names that mark an ad click

    [ga4]
    conversion_events = ["purchase", "sign_up"]
    visit_events = ["session_start"]
    click_events = ["page_view"]         # a click when it carries an ad click id
    impression_events = []
    segment_user_property = "segment"    # user_properties key -> segment
    geo_field = "region"                 # geo.<field> -> geo

    [posthog]
    conversion_events = ["purchase", "sign_up"]
    visit_events = ["$pageview", "$screen"]
    click_events = ["$pageview", "$screen"]
    value_properties = ["revenue", "value", "$revenue", "price"]
    segment_property = "segment"         # person_properties / properties key
    user_id_property = ""                # a person property holding the login id
    one_visit_per_session = true         # only a session's first $pageview is a visit

    [criteo]
    start = "2017-01-01T00:00:00Z"       # what relative timestamp 0 is
    campaign_channels = {"12345" = "display"}   # campaign -> channel (else campaign)

    [[channel_rules]]                    # tried in order before the default rules
    source = "^newsletter$"              # regular expressions, case-insensitive,
    medium = "^e?mail$"                  # matched against the whole value
    channel = "email"

Example
-------
>>> from gaelp_bayes.io.exports.mapping import DEFAULT_MAPPING
>>> "purchase" in DEFAULT_MAPPING.ga4.conversion_events
True
"""

from __future__ import annotations

import contextlib
import contextvars
import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from gaelp_bayes.errors import ConfigError

#: Name of a mapping file that readers pick up next to (or inside) the input.
MAPPING_FILE = "gaelp-mapping.toml"

#: URL / property names whose presence marks a landing from an ad click.
DEFAULT_CLICK_IDS: tuple[str, ...] = (
    "gclid", "dclid", "gbraid", "wbraid", "fbclid", "msclkid", "ttclid", "twclid",
    "li_fat_id", "mc_cid", "rdt_cid", "igshid", "epik", "sccid",
)  # fmt: skip

DEFAULT_CONVERSIONS: tuple[str, ...] = (
    "purchase", "sign_up", "signup", "signed_up", "signed up", "generate_lead",
    "subscribe", "subscription_started", "trial_started", "order_completed",
    "checkout_completed", "ecommerce_purchase", "in_app_purchase",
)  # fmt: skip

_SOCIAL_SITES = (
    "facebook|fb|instagram|ig|meta|tiktok|linkedin|twitter|x|t\\.co|snapchat|pinterest|reddit"
)


@dataclass(frozen=True)
class ChannelRule:
    """``source`` / ``medium`` regular expressions (either may be None) -> ``channel``."""

    channel: str
    source: str | None = None
    medium: str | None = None


#: Default source/medium grouping, after the rules of a mapping file. The
#: direct case ((direct)/(none), $direct, nothing) comes first and is fixed.
DEFAULT_CHANNEL_RULES: tuple[ChannelRule, ...] = (
    ChannelRule("social", medium="paid[_ -]?social|social[_ -]?paid|paidsocial"),
    ChannelRule("social", source=f"({_SOCIAL_SITES})(\\..*)?", medium="cpc|ppc|paid.*|cpm|display"),
    ChannelRule("video", source="youtube(\\..*)?|vimeo(\\..*)?", medium="cpc|ppc|cpv|paid.*"),
    ChannelRule("search", medium="cpc|ppc|paid[_ -]?search|paidsearch|sem"),
    ChannelRule("display", medium="display|cpm|banner|programmatic|retargeting|native"),
    ChannelRule("video", medium="video|cpv|paid[_ -]?video"),
    ChannelRule("email", medium="e-?mail|newsletter"),
    ChannelRule("social", medium="social|social[_ -]?media|social[_ -]?network|sm"),
    ChannelRule("organic_search", medium="organic"),
    ChannelRule("referral", medium="referral"),
)


@dataclass(frozen=True)
class GA4Mapping:
    conversion_events: tuple[str, ...] = DEFAULT_CONVERSIONS
    visit_events: tuple[str, ...] = ("session_start",)
    click_events: tuple[str, ...] = ("page_view",)
    impression_events: tuple[str, ...] = ()
    segment_user_property: str = "segment"
    geo_field: str = "region"


@dataclass(frozen=True)
class PostHogMapping:
    conversion_events: tuple[str, ...] = DEFAULT_CONVERSIONS
    visit_events: tuple[str, ...] = ("$pageview", "$screen")
    click_events: tuple[str, ...] = ("$pageview", "$screen")
    impression_events: tuple[str, ...] = ()
    value_properties: tuple[str, ...] = ("revenue", "value", "$revenue", "price")
    segment_property: str = "segment"
    user_id_property: str = ""
    one_visit_per_session: bool = True


@dataclass(frozen=True)
class CriteoMapping:
    start: str = "2017-01-01T00:00:00Z"
    campaign_channels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Mapping:
    """Everything an export reader needs to map events to the contract."""

    ga4: GA4Mapping = GA4Mapping()
    posthog: PostHogMapping = PostHogMapping()
    criteo: CriteoMapping = CriteoMapping()
    click_ids: tuple[str, ...] = DEFAULT_CLICK_IDS
    channel_rules: tuple[ChannelRule, ...] = ()
    default_channel_rules: bool = True
    source: str | None = None  # the file it came from

    @property
    def rules(self) -> tuple[ChannelRule, ...]:
        """The mapping's own rules, then (unless switched off) the defaults."""
        return self.channel_rules + (DEFAULT_CHANNEL_RULES if self.default_channel_rules else ())


DEFAULT_MAPPING = Mapping()

_SECTIONS = {"ga4": GA4Mapping, "posthog": PostHogMapping, "criteo": CriteoMapping}
_TOP = {"click_ids", "channel_rules", "default_channel_rules", *_SECTIONS}


def _check_value(where: str, value: Any, default: Any, problems: list[str]) -> Any:
    if isinstance(default, tuple):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            problems.append(f"{where}: expected a list of strings, found {value!r}")
            return default
        return tuple(value)
    if isinstance(default, bool):
        if not isinstance(value, bool):
            problems.append(f"{where}: expected true or false, found {value!r}")
            return default
        return value
    if isinstance(default, dict):
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            problems.append(f"{where}: expected a table of strings, found {value!r}")
            return default
        return {str(k): v for k, v in value.items()}
    if not isinstance(value, str):
        problems.append(f"{where}: expected a string, found {value!r}")
        return default
    return value


def _regex(where: str, value: Any, problems: list[str]) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        problems.append(f"{where}: expected a regular expression (string), found {value!r}")
        return None
    try:
        re.compile(value)
    except re.error as exc:
        problems.append(f"{where}: not a valid regular expression ({exc})")
        return None
    return value


def mapping_from_dict(data: dict[str, Any], source: str | None = None) -> Mapping:
    """Build a :class:`Mapping` from parsed TOML; every problem is reported at once.

    Raises
    ------
    ConfigError
        Unknown keys, wrong types or invalid regular expressions.
    """
    problems: list[str] = []
    for key in data:
        if key not in _TOP:
            problems.append(f"unknown key '{key}' (known: {', '.join(sorted(_TOP))})")
    kwargs: dict[str, Any] = {}
    for name, cls in _SECTIONS.items():
        section = data.get(name, {})
        if not isinstance(section, dict):
            problems.append(f"[{name}]: expected a table, found {section!r}")
            continue
        defaults = cls()
        known = {f.name for f in fields(cls)}
        values = {}
        for key, value in section.items():
            if key not in known:
                problems.append(
                    f"[{name}]: unknown key '{key}' (known: {', '.join(sorted(known))})"
                )
                continue
            values[key] = _check_value(f"{name}.{key}", value, getattr(defaults, key), problems)
        kwargs[name] = replace(defaults, **values)
    if "click_ids" in data:
        kwargs["click_ids"] = _check_value("click_ids", data["click_ids"], (), problems)
    if "default_channel_rules" in data:
        kwargs["default_channel_rules"] = _check_value(
            "default_channel_rules", data["default_channel_rules"], True, problems
        )
    rules = []
    raw_rules = data.get("channel_rules", [])
    if not isinstance(raw_rules, list):
        problems.append("channel_rules: expected [[channel_rules]] tables")
        raw_rules = []
    for i, rule in enumerate(raw_rules, 1):
        where = f"channel_rules #{i}"
        if not isinstance(rule, dict):
            problems.append(f"{where}: expected a table with channel, source and/or medium")
            continue
        extra = set(rule) - {"channel", "source", "medium"}
        if extra:
            problems.append(f"{where}: unknown key(s) {', '.join(sorted(extra))}")
        channel = rule.get("channel")
        if not isinstance(channel, str) or not channel.strip():
            problems.append(f"{where}: 'channel' must be a non-empty string")
            continue
        src = _regex(f"{where}.source", rule.get("source"), problems)
        med = _regex(f"{where}.medium", rule.get("medium"), problems)
        if src is None and med is None:
            problems.append(f"{where}: give a 'source' and/or 'medium' pattern")
            continue
        rules.append(ChannelRule(channel=channel, source=src, medium=med))
    kwargs["channel_rules"] = tuple(rules)
    if problems:
        raise ConfigError(problems, source=source)
    return Mapping(**kwargs, source=source)


def load_mapping(path: str | Path) -> Mapping:
    """Read a mapping TOML file (see the module docstring for its keys).

    Raises
    ------
    ConfigError
        The file does not exist, is not TOML, or has invalid keys or values.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError([f"mapping file {path} does not exist"], source=path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError([f"not valid TOML: {exc}"], source=path) from None
    return mapping_from_dict(data, source=str(path))


_ACTIVE: contextvars.ContextVar[Mapping | None] = contextvars.ContextVar(
    "gaelp_export_mapping", default=None
)


@contextlib.contextmanager
def use_mapping(mapping: Mapping | str | Path | None) -> Iterator[None]:
    """Make ``mapping`` the one export readers use inside the block (the CLI's
    ``--mapping``); None leaves the usual lookup in place."""
    if mapping is not None and not isinstance(mapping, Mapping):
        mapping = load_mapping(mapping)
    token = _ACTIVE.set(mapping)
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def resolve_mapping(mapping: Mapping | str | Path | None, input_path: str | Path) -> Mapping:
    """The mapping to use: the one given, else the one set by :func:`use_mapping`,
    else a ``gaelp-mapping.toml`` inside the input folder or next to the input
    file, else the defaults."""
    if isinstance(mapping, Mapping):
        return mapping
    if mapping is not None:
        return load_mapping(mapping)
    active = _ACTIVE.get()
    if active is not None:
        return active
    p = Path(input_path)
    candidate = (p if p.is_dir() else p.parent) / MAPPING_FILE
    if candidate.is_file():
        return load_mapping(candidate)
    return DEFAULT_MAPPING


def toml_string(value: str) -> str:
    """A TOML basic string."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
