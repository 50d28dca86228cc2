"""Classic attribution baselines behind one interface.

Every method maps persons' paths (channels of their touches in time order,
with touch times) and whether each converted to conversions credited per
channel; every method's credits sum to the number of converters with at
least one touch. ``run_baselines`` runs them all, as summary.json's
``attribution.baselines`` block.

========================  ==========================================================
``last_touch``            the conversion goes to the last touch's channel
``first_touch``           ... to the first touch's channel
``linear``                shared equally among the touches
``time_decay``            shared in proportion to ``2 ** (-(T - t) / half_life)``
``position_based``        40% first touch, 40% last, 20% shared by the middle ones
                          (one touch: 100%; two: 50/50)
``markov``                first-order Markov chain removal effect, non-converting
                          paths included (:mod:`~gaelp_bayes.attribution.markov`)
``shapley``               simplified Shapley value (Zhao et al. 2018,
                          :mod:`~gaelp_bayes.attribution.shapley`)
========================  ==========================================================

Example
-------
>>> p = Path(channels=("a", "b", "c"), days=(0.0, 1.0, 2.0), end_days=3.0, converted=True)
>>> {c: round(v, 6) for c, v in BASELINES["position_based"]([p]).items()}
{'a': 0.4, 'b': 0.2, 'c': 0.4}
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from gaelp_bayes.attribution.markov import markov_attribution
from gaelp_bayes.attribution.shapley import shapley_attribution


@dataclass(frozen=True)
class Path:
    """One person's touches: channels and times (days, ascending), end and outcome."""

    channels: tuple[str, ...]
    days: tuple[float, ...]
    end_days: float
    converted: bool


Method = Callable[[Sequence[Path]], dict[str, float]]


def _per_touch(paths: Sequence[Path], weights: Callable[[Path], np.ndarray]) -> dict[str, float]:
    out: dict[str, float] = defaultdict(float)
    for p in paths:
        for c in p.channels:
            out[c] += 0.0
        if not p.converted or not p.channels:
            continue
        w = np.asarray(weights(p), dtype=float)
        w = w / w.sum()
        for c, x in zip(p.channels, w, strict=True):
            out[c] += float(x)
    return dict(sorted(out.items()))


def last_touch(paths: Sequence[Path]) -> dict[str, float]:
    return _per_touch(paths, lambda p: np.eye(len(p.channels))[-1])


def first_touch(paths: Sequence[Path]) -> dict[str, float]:
    return _per_touch(paths, lambda p: np.eye(len(p.channels))[0])


def linear(paths: Sequence[Path]) -> dict[str, float]:
    return _per_touch(paths, lambda p: np.ones(len(p.channels)))


def time_decay(paths: Sequence[Path], half_life_days: float = 7.0) -> dict[str, float]:
    def w(p: Path) -> np.ndarray:
        age = p.end_days - np.asarray(p.days, dtype=float)
        return np.exp2(-(age - age.min()) / half_life_days)

    return _per_touch(paths, w)


def position_based(paths: Sequence[Path], ends: float = 0.4) -> dict[str, float]:
    def w(p: Path) -> np.ndarray:
        n = len(p.channels)
        if n == 1:
            return np.ones(1)
        if n == 2:
            return np.array([0.5, 0.5])
        out = np.full(n, (1.0 - 2 * ends) / (n - 2))
        out[0] = out[-1] = ends
        return out

    return _per_touch(paths, w)


def markov(paths: Sequence[Path]) -> dict[str, float]:
    groups: dict[tuple[str, ...], list[float]] = defaultdict(lambda: [0.0, 0.0])
    for p in paths:
        if p.channels:
            groups[p.channels][0 if p.converted else 1] += 1.0
    keys = list(groups)
    return markov_attribution(keys, [groups[k][0] for k in keys], [groups[k][1] for k in keys])


def shapley(paths: Sequence[Path]) -> dict[str, float]:
    return shapley_attribution([p.channels for p in paths], [float(p.converted) for p in paths])


BASELINES: dict[str, Method] = {
    "last_touch": last_touch,
    "first_touch": first_touch,
    "linear": linear,
    "time_decay": time_decay,
    "position_based": position_based,
    "markov": markov,
    "shapley": shapley,
}


def paths_from_touches(touches) -> list[Path]:
    """One :class:`Path` per person of a :class:`~gaelp_bayes.attribution.touches.Touches`."""
    names = np.asarray(touches.channels, dtype=object)
    starts = np.searchsorted(touches.person, np.arange(touches.n_persons + 1))
    ch = names[touches.channel]
    out = []
    for i in range(touches.n_persons):
        a, b = starts[i], starts[i + 1]
        out.append(
            Path(
                channels=tuple(ch[a:b]),
                days=tuple(touches.days[a:b].tolist()),
                end_days=float(touches.end_days[i]),
                converted=bool(touches.converted[i]),
            )
        )
    return out


def run_baselines(touches, half_life_days: float = 7.0) -> dict[str, dict[str, float]]:
    """Every baseline on the persons' paths: ``{method: {channel: conversions}}``."""
    paths = paths_from_touches(touches)
    out = {}
    for name, fn in BASELINES.items():
        res = fn(paths, half_life_days) if name == "time_decay" else fn(paths)
        out[name] = {c: float(res.get(c, 0.0)) for c in touches.channels}
    return out
