"""First-order Markov chain attribution with removal effects (Anderl et al. 2016).

States: ``start``, one per channel, and the absorbing ``conversion`` and
``null``. Every path contributes its transitions ``start -> c_1 -> ... ->
c_n`` with weight ``conversions + nulls`` of that path, and ``c_n ->
conversion`` / ``c_n -> null`` with weights ``conversions`` / ``nulls``.
Transition probabilities are the normalised counts. The removal effect of
channel ``c`` is ``1 - P_{-c}(conversion) / P(conversion)``, where
``P_{-c}`` sends every visit of ``c`` to ``null``; conversions are shared in
proportion to removal effects. Absorption probabilities are solved exactly
(a linear system), not simulated.

Example
-------
>>> r = markov_attribution([("a", "b"), ("b",)], conversions=[1, 0], nulls=[0, 1])
>>> {k: round(v, 3) for k, v in r.items()}
{'a': 0.333, 'b': 0.667}
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _index(paths: Sequence[Sequence[str]]) -> list[str]:
    return sorted({c for p in paths for c in p})


def transition_matrix(
    paths: Sequence[Sequence[str]],
    conversions: Sequence[float],
    nulls: Sequence[float],
    channels: list[str] | None = None,
) -> tuple[np.ndarray, list[str]]:
    """Row-normalised transitions over ``[start, *channels, conversion, null]``."""
    channels = channels or _index(paths)
    pos = {c: i + 1 for i, c in enumerate(channels)}
    n = len(channels) + 3
    conv_s, null_s = n - 2, n - 1
    counts = np.zeros((n, n))
    src, dst, w = [], [], []
    for p, cv, nl in zip(paths, conversions, nulls, strict=True):
        tot = float(cv) + float(nl)
        if not p or tot <= 0:
            continue
        states = [0, *(pos[c] for c in p)]
        src += states[:-1]
        dst += states[1:]
        w += [tot] * (len(states) - 1)
        src += [states[-1], states[-1]]
        dst += [conv_s, null_s]
        w += [float(cv), float(nl)]
    np.add.at(counts, (np.asarray(src, int), np.asarray(dst, int)), np.asarray(w, float))
    rows = counts.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        P = np.where(rows > 0, counts / rows, 0.0)
    return P, channels


def conversion_probability(P: np.ndarray, removed: int | None = None) -> float:
    """P(absorbed in ``conversion`` | start), optionally with one state sent to ``null``."""
    n = P.shape[0]
    conv_s = n - 2
    trans = list(range(n - 2))  # start + channels
    Q = P[np.ix_(trans, trans)].copy()
    r = P[trans, conv_s].copy()
    if removed is not None:
        Q[removed, :] = 0.0
        r[removed] = 0.0
    # states with no outgoing mass are dead ends (never left): absorb them in null
    A = np.eye(len(trans)) - Q
    x = np.linalg.lstsq(A, r, rcond=None)[0] if np.linalg.cond(A) > 1e12 else np.linalg.solve(A, r)
    return float(x[0])


def removal_effects(
    paths: Sequence[Sequence[str]], conversions: Sequence[float], nulls: Sequence[float]
) -> dict[str, float]:
    """Removal effect per channel (``1 - P_{-c} / P``)."""
    P, channels = transition_matrix(paths, conversions, nulls)
    base = conversion_probability(P)
    if base <= 0:
        return {c: 0.0 for c in channels}
    return {c: 1.0 - conversion_probability(P, i + 1) / base for i, c in enumerate(channels)}


def markov_attribution(
    paths: Sequence[Sequence[str]],
    conversions: Sequence[float],
    nulls: Sequence[float],
) -> dict[str, float]:
    """Conversions attributed per channel: total conversions shared by removal effect."""
    re = removal_effects(paths, conversions, nulls)
    total_re = sum(re.values())
    total = float(np.sum(conversions))
    if total_re <= 0:
        return {c: 0.0 for c in re}
    return {c: total * v / total_re for c, v in re.items()}
