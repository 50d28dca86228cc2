"""Simplified Shapley value attribution (Zhao, Mahboobi & Bagheri 2018).

The players are channels; the worth of a coalition ``S`` is the number of
conversions of paths whose set of channels is contained in ``S``:
``v(S) = sum_{T subset of S} R(T)`` with ``R(T)`` the conversions of paths
whose distinct channels are exactly ``T``. For this game the Shapley value
has the closed form (Zhao et al., eq. 3)::

    phi_c = sum_{T containing c} R(T) / |T|

so each converting path's conversion is shared equally among its distinct
channels: exact, and linear in the number of paths (no 2^n coalitions).
:func:`shapley_bruteforce` computes the textbook definition for checks.

Example
-------
>>> shapley_attribution([("a", "b", "a"), ("a",)], [1, 1])
{'a': 1.5, 'b': 0.5}
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Sequence


def shapley_attribution(
    paths: Sequence[Sequence[str]], conversions: Sequence[float]
) -> dict[str, float]:
    """Simplified Shapley value per channel (conversions; sums to total conversions)."""
    out: dict[str, float] = defaultdict(float)
    for p, cv in zip(paths, conversions, strict=True):
        chans = set(p)
        for c in chans:
            out[c] += 0.0
        if cv and chans:
            for c in chans:
                out[c] += float(cv) / len(chans)
    return dict(sorted(out.items()))


def shapley_bruteforce(
    paths: Sequence[Sequence[str]], conversions: Sequence[float]
) -> dict[str, float]:
    """The Shapley value of the same game from its definition (exponential; for tests)."""
    R: dict[frozenset, float] = defaultdict(float)
    for p, cv in zip(paths, conversions, strict=True):
        if p:
            R[frozenset(p)] += float(cv)
    players = sorted({c for p in paths for c in p})
    n = len(players)

    def v(S: frozenset) -> float:
        return sum(r for T, r in R.items() if T <= S)

    out = {}
    for c in players:
        others = [q for q in players if q != c]
        tot = 0.0
        for k in range(n):
            w = math.factorial(k) * math.factorial(n - k - 1) / math.factorial(n)
            for S in itertools.combinations(others, k):
                s = frozenset(S)
                tot += w * (v(s | {c}) - v(s))
        out[c] = tot
    return out
