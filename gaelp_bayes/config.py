"""Configuration: sampler settings in one object, model priors as data.

A TOML file passed with ``--config`` has one table per concern::

    [sampler]
    chains = 2
    draws = 1000
    tune = 1000
    target_accept = 0.9
    method = "nuts"          # or "svi"
    seed = 0

    [latency]                # keys defined by the latency model's config
    delay = "weibull"

Unknown tables or keys and invalid values are all collected and reported in
one :class:`~gaelp_bayes.errors.ConfigError`.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

from gaelp_bayes.errors import ConfigError

T = TypeVar("T")


@dataclass(frozen=True)
class SamplerConfig:
    """Settings of the inference engine, passed through unchanged to every model."""

    chains: int = 2
    draws: int = 1000
    tune: int = 1000
    target_accept: float = 0.9
    method: str = "nuts"  # "nuts" | "svi"
    seed: int = 0
    svi_steps: int = 5000
    backend: str = "numpyro"  # "numpyro" | "pymc"
    progress: bool = False

    def validate(self) -> list[str]:
        problems = []
        for name in ("chains", "draws", "tune"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < (1 if name != "tune" else 0):
                problems.append(f"sampler.{name} must be a positive integer, got {v!r}")
        if not 0.5 <= float(self.target_accept) < 1.0:
            problems.append(
                f"sampler.target_accept must be in [0.5, 1), got {self.target_accept!r}"
            )
        if self.method not in ("nuts", "svi"):
            problems.append(f"sampler.method must be 'nuts' or 'svi', got {self.method!r}")
        if self.backend not in ("numpyro", "pymc"):
            problems.append(f"sampler.backend must be 'numpyro' or 'pymc', got {self.backend!r}")
        return problems


def from_mapping(cls: type[T], data: dict[str, Any], section: str, problems: list[str]) -> T:
    """Build dataclass ``cls`` from ``data``, appending every problem to ``problems``.

    Unknown keys and values of the wrong type are reported as
    ``section.key: ...``; valid keys are kept so that all problems surface in
    one pass.
    """
    known = {f.name: f for f in fields(cls)}  # type: ignore[arg-type]
    kwargs = {}
    for key, value in data.items():
        if key not in known:
            problems.append(f"{section}.{key}: unknown key (known: {', '.join(sorted(known))})")
            continue
        default = known[key].default
        if default is not dataclasses.MISSING and default is not None:
            want = type(default)
            ok = isinstance(value, want) or (want is float and isinstance(value, int))
            if isinstance(value, bool) and want is not bool:
                ok = False
            if not ok:
                problems.append(
                    f"{section}.{key}: expected {want.__name__}, got {type(value).__name__} {value!r}"
                )
                continue
            if want is float:
                value = float(value)
        kwargs[key] = value
    obj = cls(**kwargs)
    check = getattr(obj, "validate", None)
    if check is not None:
        problems.extend(check())
    return obj


@dataclass
class Config:
    """The whole configuration: sampler settings plus one raw table per model."""

    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    source: str | None = None

    def model(self, name: str, cls: type[T]) -> T:
        """The typed config of one model (its dataclass), validated; raises ConfigError."""
        problems: list[str] = []
        obj = from_mapping(cls, self.models.get(name, {}), name, problems)
        if problems:
            raise ConfigError(problems, self.source)
        return obj

    def to_dict(self) -> dict[str, Any]:
        return {"sampler": dataclasses.asdict(self.sampler), **self.models}


MODEL_SECTIONS = ("identity", "latency", "attribution", "market", "journeys")


def load_config(path: str | Path | None = None, **sampler_overrides: Any) -> Config:
    """Read a TOML config (or defaults) and apply command-line sampler overrides.

    Overrides whose value is ``None`` are ignored, so CLI options can be passed
    straight through.
    """
    raw: dict[str, Any] = {}
    source = None
    if path is not None:
        source = str(path)
        p = Path(path)
        if not p.is_file():
            raise ConfigError([f"file not found: {p}"], source)
        try:
            raw = tomllib.loads(p.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError([f"not valid TOML: {exc}"], source) from None
    problems: list[str] = []
    unknown = set(raw) - {"sampler", *MODEL_SECTIONS}
    for key in sorted(unknown):
        problems.append(f"{key}: unknown table (known: sampler, {', '.join(MODEL_SECTIONS)})")
    sampler_raw = dict(raw.get("sampler", {}))
    sampler_raw.update({k: v for k, v in sampler_overrides.items() if v is not None})
    sampler = from_mapping(SamplerConfig, sampler_raw, "sampler", problems)
    models = {k: dict(v) for k, v in raw.items() if k in MODEL_SECTIONS}
    for k, v in models.items():
        if not isinstance(v, dict):
            problems.append(f"{k}: expected a table")
    if problems:
        raise ConfigError(problems, source)
    return Config(sampler=sampler, models=models, source=source)
