"""Identity: Bayesian cross-device linkage with uncertainty.

``fit(events, as_of, config)`` runs

1. blocking (:mod:`gaelp_bayes.identity.blocking`, SQL on DuckDB),
2. comparison patterns (:mod:`gaelp_bayes.identity.comparisons`),
3. the Bayesian Fellegi-Sunter model on pattern counts
   (:mod:`gaelp_bayes.identity.fellegi_sunter`, NUTS), semi-supervised by
   ``user_id`` (shared: known link; different: known non-link),
4. link probabilities per pair (posterior mean and 90% interval) and ``K``
   sampled device -> person maps (:mod:`gaelp_bayes.identity.cluster`), one
   per posterior draw, so that later models can carry linkage uncertainty.

Example
-------
>>> from gaelp_bayes.config import Config, SamplerConfig
>>> model = fit(events, as_of, Config(sampler=SamplerConfig(draws=300, tune=300)))  # doctest: +SKIP
>>> model.tables()["links"].head()                                                   # doctest: +SKIP
>>> maps = model.person_map_draws(10)                                                # doctest: +SKIP
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from gaelp_bayes.config import Config
from gaelp_bayes.diagnostics import Diagnostics, diagnose, interval
from gaelp_bayes.errors import DataError
from gaelp_bayes.identity.blocking import RULES, BlockingConfig, BlockingResult, block
from gaelp_bayes.identity.cluster import PersonNamer, account_classes, constrained_components
from gaelp_bayes.identity.comparisons import ComparisonConfig, compare
from gaelp_bayes.identity.fellegi_sunter import FellegiSunter, FSPriors, pattern_counts

__all__ = ["IdentityConfig", "IdentityModel", "fit"]

NAME = "identity"


@dataclass
class IdentityConfig:
    """The ``[identity]`` table of the configuration (every key optional).

    Blocking: ``rules`` (any of ``prefix_day``, ``rare_prefix``, ``user_id``,
    ``geo_time``), ``max_devices_per_prefix_day`` (prefix-days with more
    devices, e.g. carrier NAT, are not used), ``max_devices_per_rare_prefix``,
    ``geo_time_minutes``, ``max_devices_per_geo_window``.
    Comparisons: ``rarity_cuts``, ``day_cuts``, ``overlap_cuts``, ``gap_cuts``,
    ``attributes`` (extra columns compared for equality), ``use_geo``,
    ``use_user_agent``, ``pool_by_device_type``.
    Priors: see :class:`~gaelp_bayes.identity.fellegi_sunter.FSPriors`.
    Output: ``map_draws`` (K sampled person maps kept), ``link_threshold``
    (point-estimate links), ``max_devices_per_person`` (inferred persons are
    rebuilt from their strongest links when transitive chaining makes them
    larger; known links are never cut).
    """

    rules: list[str] = field(default_factory=lambda: ["prefix_day", "rare_prefix", "user_id"])
    max_devices_per_prefix_day: int = 20
    max_devices_per_rare_prefix: int = 12
    geo_time_minutes: int = 2
    max_devices_per_geo_window: int = 6
    rarity_cuts: list[int] = field(default_factory=lambda: [3, 12, 50])
    day_cuts: list[int] = field(default_factory=lambda: [1, 2, 4])
    overlap_cuts: list[float] = field(default_factory=lambda: [0.1, 0.3, 0.6])
    gap_cuts: list[float] = field(default_factory=lambda: [1.0, 3.0, 7.0])
    attributes: list[str] = field(default_factory=lambda: ["segment"])
    use_geo: bool = True
    use_user_agent: bool = True
    pool_by_device_type: bool = True
    lambda_logit_mean: float = -2.0
    lambda_logit_sd: float = 2.0
    lambda_pool_sd: float = 1.0
    base_concentration: float = 1.0
    pool_concentration: float = 100.0
    floor: float = 1.0
    map_draws: int = 20
    link_threshold: float = 0.5
    max_devices_per_person: int = 6  # cap on inferred persons (known links may exceed it)

    def blocking(self) -> BlockingConfig:
        return BlockingConfig(
            rules=tuple(self.rules),
            max_devices_per_prefix_day=self.max_devices_per_prefix_day,
            max_devices_per_rare_prefix=self.max_devices_per_rare_prefix,
            geo_time_minutes=self.geo_time_minutes,
            max_devices_per_geo_window=self.max_devices_per_geo_window,
        )

    def comparisons(self) -> ComparisonConfig:
        return ComparisonConfig(
            rarity_cuts=tuple(int(x) for x in self.rarity_cuts),
            day_cuts=tuple(int(x) for x in self.day_cuts),
            overlap_cuts=tuple(float(x) for x in self.overlap_cuts),
            gap_cuts=tuple(float(x) for x in self.gap_cuts),
            attributes=tuple(self.attributes),
            use_geo=self.use_geo,
            use_user_agent=self.use_user_agent,
        )

    def priors(self) -> FSPriors:
        return FSPriors(
            lambda_logit_mean=self.lambda_logit_mean,
            lambda_logit_sd=self.lambda_logit_sd,
            lambda_pool_sd=self.lambda_pool_sd,
            base_concentration=self.base_concentration,
            pool_concentration=self.pool_concentration,
            floor=self.floor,
        )

    def validate(self) -> list[str]:
        problems = [f"identity.{p}" for p in self.blocking().validate()]
        for name in ("rarity_cuts", "day_cuts", "overlap_cuts", "gap_cuts"):
            v = getattr(self, name)
            if not isinstance(v, list | tuple) or not v or list(v) != sorted(v):
                problems.append(f"identity.{name} must be a non-empty increasing list, got {v!r}")
        if not isinstance(self.attributes, list | tuple) or not all(
            isinstance(a, str) for a in self.attributes
        ):
            problems.append(
                f"identity.attributes must be a list of column names, got {self.attributes!r}"
            )
        for name in (
            "lambda_logit_sd",
            "lambda_pool_sd",
            "base_concentration",
            "pool_concentration",
            "floor",
        ):
            if not getattr(self, name) > 0:
                problems.append(f"identity.{name} must be > 0, got {getattr(self, name)!r}")
        if not isinstance(self.map_draws, int) or self.map_draws < 1:
            problems.append(
                f"identity.map_draws must be a positive integer, got {self.map_draws!r}"
            )
        if not isinstance(self.max_devices_per_person, int) or self.max_devices_per_person < 2:
            problems.append(
                "identity.max_devices_per_person must be an integer >= 2, "
                f"got {self.max_devices_per_person!r}"
            )
        if not 0 < self.link_threshold < 1:
            problems.append(
                f"identity.link_threshold must be in (0, 1), got {self.link_threshold!r}"
            )
        return problems


def _check_events(events: pd.DataFrame, cfg: IdentityConfig) -> None:
    uses_ip = {"prefix_day", "rare_prefix"} & set(cfg.rules)
    if uses_ip and ("ip_prefix" not in events.columns or events["ip_prefix"].isna().all()):
        raise DataError(
            "identity: the events have no ip_prefix values, and the blocking rules "
            f"{sorted(uses_ip)} need them to find devices of the same person.\n"
            "  expected: an ip_prefix column (truncated or hashed network address, e.g. an IPv4 /24)\n"
            '  what to do: export ip_prefix, or set [identity] rules = ["user_id", "geo_time"], '
            "or fit without the identity model (--models latency,...)."
        )
    n_dev = events["device_id"].nunique()
    if n_dev < 2:
        raise DataError(
            f"identity: found {n_dev} device(s); linking devices to persons needs at least two.\n"
            "  what to do: fit without the identity model (every device is its own person)."
        )
    if "user_id" in events.columns:
        logged = events["user_id"].notna().groupby(events["device_id"], observed=True).any()
        if bool(logged.all()):
            raise DataError(
                f"identity: all {n_dev} devices carry a user_id, so the device -> person map is "
                "known from logins and there is nothing to infer.\n"
                "  what to do: fit without the identity model; later models join devices by user_id."
            )


@dataclass
class IdentityModel:
    """A fitted identity model (see :func:`fit`)."""

    config: IdentityConfig
    blocked: BlockingResult
    comparisons: pd.DataFrame
    fs: FellegiSunter
    pattern_index: np.ndarray  # per pair: row of the pattern table
    p_draws: np.ndarray  # (S, n_patterns) P(link | pattern) per draw
    seed: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    name: str = NAME
    _maps: list[np.ndarray] | None = field(default=None, repr=False)
    _point: np.ndarray | None = field(default=None, repr=False)
    _namer: PersonNamer | None = field(default=None, repr=False)

    # ------------------------------------------------------------------ basics
    @property
    def idata(self):
        return self.fs.idata

    @property
    def device_ids(self) -> np.ndarray:
        return self.blocked.devices["device_id"].to_numpy().astype(object)

    def _person_ids(self, labels: np.ndarray) -> np.ndarray:
        if self._namer is None:
            self._namer = PersonNamer(self.device_ids)
        return self._namer(labels)

    @property
    def n_devices(self) -> int:
        return len(self.blocked.devices)

    def _labels(self) -> np.ndarray:
        return self.comparisons["label"].to_numpy()

    def pair_draws(self, draw: int) -> np.ndarray:
        """P(link) of every candidate pair under posterior draw ``draw`` (labels fixed)."""
        p = self.p_draws[draw][self.pattern_index]
        lab = self._labels()
        return np.where(lab == 1, 1.0, np.where(lab == -1, 0.0, p))

    def link_probability(self) -> pd.DataFrame:
        """Per pair: posterior mean P(link) and 90% interval over parameter draws."""
        # statistics per pattern (few), then looked up per pair (many)
        q05_k, q95_k = np.quantile(self.p_draws, [0.05, 0.95], axis=0)
        mean = self.p_draws.mean(axis=0)[self.pattern_index]
        q05, q95 = q05_k[self.pattern_index], q95_k[self.pattern_index]
        lab = self._labels()
        fixed = lab != 0
        val = np.where(lab == 1, 1.0, 0.0)
        return pd.DataFrame(
            {
                "p_link": np.where(fixed, val, mean),
                "p_link_q05": np.where(fixed, val, q05),
                "p_link_q95": np.where(fixed, val, q95),
            }
        )

    # ------------------------------------------------------------- clustering
    def _account(self) -> np.ndarray:
        lab = self._labels()
        known = lab == 1
        c = self.comparisons
        return account_classes(
            self.n_devices,
            c["a"].to_numpy()[known],
            c["b"].to_numpy()[known],
            self.blocked.devices["user_id"].to_numpy(),
        )

    def _cluster(self, linked: np.ndarray, weight: np.ndarray, account: np.ndarray) -> np.ndarray:
        c = self.comparisons
        a, b = c["a"].to_numpy()[linked], c["b"].to_numpy()[linked]
        return constrained_components(
            self.n_devices, a, b, weight[linked], account, self.config.max_devices_per_person
        )

    def _point_labels(self) -> np.ndarray:
        if self._point is None:
            p = self.link_probability()["p_link"].to_numpy()
            weight = np.where(self._labels() == 1, 2.0, p)
            self._point = self._cluster(p >= self.config.link_threshold, weight, self._account())
        return self._point

    def _map_labels(self, k: int) -> list[np.ndarray]:
        if self._maps is None or len(self._maps) < k:
            account = self._account()
            rng = np.random.default_rng(self.seed + 7919)
            S = self.p_draws.shape[0]
            picks = (
                np.linspace(0, S - 1, num=k).round().astype(int)
                if k <= S
                else rng.integers(0, S, k)
            )
            known = self._labels() == 1
            out = []
            for s in picks:
                p = self.pair_draws(int(s))
                linked = rng.random(p.size) < p
                weight = np.where(known, 2.0, p)
                out.append(self._cluster(linked, weight, account))
            self._maps = out
        return self._maps[:k]

    def person_map(self) -> pd.DataFrame:
        """Point estimate: links with posterior mean P(link) >= ``link_threshold``, clustered."""
        ids = self.device_ids
        return pd.DataFrame({"device_id": ids, "person_id": self._person_ids(self._point_labels())})

    def person_map_draws(self, k: int | None = None) -> list[pd.DataFrame]:
        """``k`` device -> person maps, each from one posterior draw with links sampled."""
        k = self.config.map_draws if k is None else int(k)
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        ids = self.device_ids
        return [
            pd.DataFrame({"device_id": ids, "person_id": self._person_ids(lab)})
            for lab in self._map_labels(k)
        ]

    # ---------------------------------------------------------------- outputs
    def tables(self) -> dict[str, pd.DataFrame]:
        """``links``, ``persons`` and ``person_draws`` (written as Parquet into the bundle)."""
        ids = self.device_ids
        c = self.comparisons
        lp = self.link_probability()
        links = pd.DataFrame(
            {
                "device_a": ids[c["a"].to_numpy()],
                "device_b": ids[c["b"].to_numpy()],
                **{k: lp[k].to_numpy() for k in lp.columns},
                "known": c["label"].to_numpy(),
            }
        )
        point = self._point_labels()
        maps = self._map_labels(self.config.map_draws)
        same = np.zeros(self.n_devices)
        pdf = pd.DataFrame({"point": point})
        size = pdf.groupby("point")["point"].transform("size").to_numpy()
        for lab in maps:
            # a device's assignment holds in a draw when its point-estimate person is exactly
            # one person of the draw: all members share one draw label, of the same size
            pdf["lab"] = lab
            one = pdf.groupby("point")["lab"].transform("nunique").to_numpy() == 1
            dsize = pd.Series(lab).map(pd.Series(lab).value_counts()).to_numpy()
            same += one & (dsize == size)
        persons = pd.DataFrame(
            {
                "device_id": ids,
                "person_id": self._person_ids(point),
                "p_assignment": same / len(maps),
            }
        )
        draws = pd.concat(
            [
                pd.DataFrame({"draw": i, "device_id": ids, "person_id": self._person_ids(lab)})
                for i, lab in enumerate(maps)
            ],
            ignore_index=True,
        )
        return {"links": links, "persons": persons, "person_draws": draws}

    def summary(self) -> dict[str, Any]:
        """The identity block of summary.json."""
        counts = [len(np.unique(lab)) for lab in self._map_labels(self.config.map_draws)]
        return {
            "devices": int(self.n_devices),
            "candidate_pairs": len(self.comparisons),
            "persons": interval(counts),
        }

    def blocking_report(self) -> dict[str, Any]:
        """Candidate pairs per rule and blocking recall on known links (shared user_id)."""
        return self.blocked.report()

    def diagnostics(self) -> Diagnostics:
        return diagnose(self.idata, var_names=["lambda", *self._param_names()])

    def _param_names(self) -> list[str]:
        return [f"{c}_{f}" for f in self.fs.fields for c in ("m", "u")]


def fit(
    events: pd.DataFrame,
    as_of: pd.Timestamp | None = None,
    config: Config | None = None,
    person_map: pd.DataFrame | None = None,
) -> IdentityModel:
    """Fit the identity model on canonical events (see the module docstring).

    ``person_map`` is accepted for the common model signature and ignored
    (identity is the model that produces it).
    """
    config = config or Config()
    cfg = config.model(NAME, IdentityConfig)
    if as_of is not None and "timestamp" in events.columns:
        events = events[events["timestamp"] <= as_of]
    _check_events(events, cfg)
    t = {}
    t0 = time.perf_counter()
    blocked = block(events, cfg.blocking())
    t["blocking_s"] = time.perf_counter() - t0
    if blocked.pairs.empty:
        raise DataError(
            f"identity: blocking found no candidate pairs among {len(blocked.devices)} devices "
            f"(rules {', '.join(cfg.rules)}): no two devices share an uncrowded ip_prefix or a "
            "user_id.\n  what to do: check ip_prefix (is it truncated to a network, not a full "
            "address?), raise max_devices_per_prefix_day, or add the geo_time rule."
        )
    t0 = time.perf_counter()
    comp = compare(blocked, cfg.comparisons())
    fields = comp.attrs["fields"]
    group = "group" if cfg.pool_by_device_type else None
    patterns = pattern_counts(comp, fields, group=group, label="label")
    keys = ([group] if group else []) + fields
    idx = (
        comp[keys]
        .merge(patterns[keys].reset_index().rename(columns={"index": "_row"}), on=keys, how="left")[
            "_row"
        ]
        .to_numpy()
    )
    t["comparisons_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    fs = FellegiSunter(fields, group=group, priors=cfg.priors()).fit(patterns, config.sampler)
    t["fit_s"] = time.perf_counter() - t0
    p_draws = fs.match_probability()
    model = IdentityModel(
        config=cfg,
        blocked=blocked,
        comparisons=comp,
        fs=fs,
        pattern_index=idx,
        p_draws=p_draws,
        seed=config.sampler.seed,
        timings=t,
    )
    return model


# keep the rule names importable from the model module for the CLI/docs
BLOCKING_RULES = RULES
