"""``gaelp-bayes fit``: read -> (identity) -> journeys -> models -> bundle.

Each model lives in ``gaelp_bayes.models.<name>`` and exposes
``fit(events, as_of, config, person_map=None) -> FittedModel``. The registry
below names the models the CLI knows; those whose module has not landed yet
are refused with a clear message when asked for, and skipped by default.
"""

from __future__ import annotations

import importlib
import inspect
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

from gaelp_bayes.bundle import write_bundle
from gaelp_bayes.config import Config
from gaelp_bayes.diagnostics import warn_if_poor
from gaelp_bayes.errors import DataError, GaelpError, NotYetSupportedError, UsageError

#: Known models in pipeline order, and the module that fits each.
MODELS = {
    "identity": "gaelp_bayes.models.identity",
    "latency": "gaelp_bayes.models.latency",
    "attribution": "gaelp_bayes.models.attribution",
    "market": "gaelp_bayes.models.market",
}


def available_models() -> list[str]:
    """Models whose implementation is installed."""
    out = []
    for name, mod in MODELS.items():
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError:
            continue
        out.append(name)
    return out


def parse_models(spec: str | None) -> list[str] | None:
    """``"latency,market"`` -> ``["latency", "market"]``; ``None`` means all available."""
    if spec is None or spec.strip() in ("", "all"):
        return None
    names = [s.strip().lower() for s in spec.split(",") if s.strip()]
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        raise UsageError(
            f"--models: unknown model(s) {', '.join(unknown)}; choose from {', '.join(MODELS)}"
        )
    return [n for n in MODELS if n in names]


def parse_as_of(value: str | None, events: pd.DataFrame) -> pd.Timestamp:
    """The end of observation: ``--as-of`` or the largest timestamp in the data."""
    if value is None:
        return pd.Timestamp(events["timestamp"].max())
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError):
        raise UsageError(
            f"--as-of: cannot read {value!r} as a timestamp; use ISO-8601 such as "
            "2026-01-31T00:00:00Z"
        ) from None
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def check_out_dir(out_dir: str | Path) -> None:
    """Refuse an ``--out`` that would overwrite something that is not a bundle.

    A new or empty folder, or an existing bundle (re-fit: replaced as a whole
    only once the new one is complete), is fine; a file, or a folder holding
    other things, is refused before any work starts, so nothing is lost.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise GaelpError(f"--out {out} is a file, not a folder; give a new folder for the bundle")
    if out.is_dir() and any(out.iterdir()) and not (out / "manifest.json").is_file():
        raise GaelpError(
            f"--out {out} is a folder with other files in it and no bundle manifest; "
            "give a new or empty folder (a bundle is never written over other files)"
        )


def fit(
    events_path: str | Path,
    out_dir: str | Path,
    *,
    config: Config,
    models: Sequence[str] | None = None,
    as_of: str | None = None,
    auctions_path: str | Path | None = None,
    fmt: str = "auto",
    step: Callable[[str], None] = lambda _msg: None,
) -> Path:
    """Fit the chosen models on an events export and write a bundle."""
    from gaelp_bayes.io import read_auctions, read_events

    check_out_dir(out_dir)
    step("reading and validating events")
    events = read_events(events_path, mode="strict", fmt=fmt).table
    auctions = None
    if auctions_path is not None:
        step("reading and validating auctions")
        auctions = read_auctions(auctions_path, mode="strict").table
    if events.empty:
        raise DataError(
            f"{events_path}: no events to fit (the file has a header but no rows)",
            hint="export a period with activity, or check the path",
        )
    end = parse_as_of(as_of, events)
    if end < events["timestamp"].min():
        raise UsageError(
            f"--as-of {end} is before the first event ({events['timestamp'].min()}); nothing to fit"
        )
    events = events[events["timestamp"] <= end]
    if auctions is not None:
        auctions = auctions[auctions["timestamp"] <= end]
    chosen = list(models) if models is not None else available_models()
    missing = [m for m in chosen if m not in available_models()]
    if missing:
        raise NotYetSupportedError(
            f"model(s) {', '.join(missing)} not implemented yet; available: "
            f"{', '.join(available_models()) or 'none'}"
        )
    if not chosen:
        raise NotYetSupportedError("no model is implemented yet")
    fitted = []
    tables: dict[str, pd.DataFrame] = {}
    person_map = None
    seconds: dict[str, float] = {}
    for name in chosen:
        step(f"fitting {name}")
        module = importlib.import_module(MODELS[name])
        kwargs = {}
        if "auctions" in inspect.signature(module.fit).parameters:
            kwargs["auctions"] = auctions
        t0 = time.perf_counter()
        model = module.fit(events, end, config, person_map=person_map, **kwargs)
        seconds[name] = time.perf_counter() - t0
        warn_if_poor(model.diagnostics(), name)
        fitted.append(model)
        # identity hands its device->person map draws to the models after it
        # (they fit over several draws, so linkage uncertainty propagates), and
        # its tables (links, persons, person draws) to the bundle
        if hasattr(model, "tables"):
            tables.update(model.tables())
        if hasattr(model, "person_map"):
            person_map = tables.get("person_draws", model.person_map())
    step("writing bundle")
    inputs = [Path(events_path)] + ([Path(auctions_path)] if auctions_path else [])
    return write_bundle(
        out_dir,
        fitted,
        as_of=end,
        config=config.to_dict(),
        inputs=inputs,
        tables=tables,
        fit_seconds=seconds,
    )
