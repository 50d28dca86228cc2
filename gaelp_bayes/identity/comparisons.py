"""Comparison patterns of candidate device pairs: discrete agreement levels.

Each candidate pair gets a few fields with levels (0 = least agreement or
missing, higher = more agreement):

``colocation``
    one joint field over the network and time evidence, so that their strong
    dependence (a household shares a home prefix *and* a region, and devices
    that share a prefix on several days are active over the same span) is
    modelled instead of double-counted by the conditional-independence
    assumption. It crosses

    * IP agreement: none (or only prefixes seen with more than the largest
      ``rarity_cuts`` devices) or, for the rarest shared prefix, a rarity class
      from ``rarity_cuts`` crossed with the number of days on which the two
      devices shared an uncrowded prefix (``day_cuts``);
    * co-activity: the overlap of the two devices' activity spans
      (intersection over union of [first, last] seen) cut at ``overlap_cuts``,
      or, for spans that barely overlap, the days between them (``gap_cuts``);
    * geo: whether the two devices' most frequent ``geo`` agree.
``user_agent``
    0 missing, 1 different, 2 same first token (OS family), 3 identical.
one field per extra attribute (e.g. ``segment``)
    0 missing, 1 different, 2 equal (most frequent value per device).

The device-type pair (``desktop|mobile``...) is the group across which the
model's parameters are partially pooled. ``label`` is 1 for pairs sharing a
``user_id`` (known links), -1 for pairs whose devices carry different non-null
``user_id`` s (known non-links), 0 otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from gaelp_bayes.identity.blocking import RULES, BlockingResult

__all__ = ["ComparisonConfig", "compare"]


@dataclass(frozen=True)
class ComparisonConfig:
    rarity_cuts: tuple[int, ...] = (3, 12, 50)
    day_cuts: tuple[int, ...] = (1, 2, 4)
    overlap_cuts: tuple[float, ...] = (0.1, 0.3, 0.6)
    gap_cuts: tuple[float, ...] = (1.0, 3.0, 7.0)
    attributes: tuple[str, ...] = ("segment",)
    use_geo: bool = True
    use_user_agent: bool = True


def _codes(values: pd.Series) -> np.ndarray:
    """Integer code per device (-1 for missing); equal codes mean equal values."""
    return pd.factorize(values.astype(object), use_na_sentinel=True)[0].astype(np.int64)


def _ua_level(ua: pd.Series, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per pair: 0 missing, 1 different, 2 same first token, 3 identical (codes per device)."""
    full = _codes(ua)
    tok = ua.astype(object).where(ua.notna(), "").astype(str)
    tok = tok.str.split(r"[/ ;()]", n=1, regex=True).str[0].str.lower()
    tcode = _codes(tok.where(tok != ""))  # an empty first token agrees with nothing
    fa, fb, ta, tb = full[a], full[b], tcode[a], tcode[b]
    miss = (fa < 0) | (fb < 0)
    return np.where(miss, 0, np.where(fa == fb, 3, np.where((ta == tb) & (ta >= 0), 2, 1))).astype(
        np.int64
    )


def _eq_level(values: pd.Series, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per pair: 0 missing, 1 different, 2 equal."""
    code = _codes(values)
    ca, cb = code[a], code[b]
    return np.where((ca < 0) | (cb < 0), 0, np.where(ca == cb, 2, 1)).astype(np.int64)


def _group(device_type: pd.Series, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per pair: ``"type|type"`` with the two device types in sorted order."""
    names = device_type.fillna("unknown").astype(str)
    code, uniq = pd.factorize(names, sort=True)
    lo, hi = np.minimum(code[a], code[b]), np.maximum(code[a], code[b])
    k = len(uniq)
    table = np.array([f"{uniq[i]}|{uniq[j]}" for i in range(k) for j in range(k)], dtype=object)
    return table[lo * k + hi]


def compare(blocked: BlockingResult, cfg: ComparisonConfig | None = None) -> pd.DataFrame:
    """One row per candidate pair: ``a``, ``b``, level columns, ``group``, ``label``.

    ``attrs["fields"]`` of the result lists the level columns in order.
    """
    cfg = cfg or ComparisonConfig()
    d, p = blocked.devices, blocked.pairs
    a = p["a"].to_numpy()
    b = p["b"].to_numpy()
    # device attributes are coded once per device and compared per pair as integers
    # (millions of pairs, far fewer devices)
    first, last = d["first_day"].to_numpy(), d["last_day"].to_numpy()
    out = pd.DataFrame({"a": a, "b": b})

    # IP: rarity of the rarest shared prefix x days shared on uncrowded prefixes
    n_pref = p["min_prefix_devices"].to_numpy(dtype=float)
    n_pref = np.where(np.isnan(n_pref), np.inf, n_pref)
    cuts = np.asarray(cfg.rarity_cuts, dtype=float)
    rarity = np.searchsorted(cuts, n_pref, side="left")  # 0 = rarest ... len(cuts) = common/none
    days = np.digitize(p["shared_days"].to_numpy(), cfg.day_cuts)  # 0..len(day_cuts)
    n_days = len(cfg.day_cuts) + 1
    ip = np.where(rarity >= len(cuts), 0, 1 + rarity * n_days + days)
    n_ip = 1 + len(cuts) * n_days

    lo = np.maximum(first[a], first[b])
    hi = np.minimum(last[a], last[b])
    span = np.maximum(last[a], last[b]) - np.minimum(first[a], first[b])
    overlap = np.where(span > 0, np.clip(hi - lo, 0, None) / np.where(span > 0, span, 1), 1.0)
    out["span_overlap"] = overlap
    # co-activity: spans that overlap by at least overlap_cuts[0] are graded by overlap;
    # the others by the time between them (days), so single-event devices still count
    gap = np.clip(lo - hi, 0, None)
    n_gap = len(cfg.gap_cuts) + 1
    ov = np.where(
        overlap >= cfg.overlap_cuts[0],
        n_gap - 1 + np.digitize(overlap, cfg.overlap_cuts),
        n_gap - 1 - np.digitize(gap, cfg.gap_cuts),
    )
    n_ov = n_gap + len(cfg.overlap_cuts)
    level = ip * n_ov + ov
    n_levels = n_ip * n_ov
    if cfg.use_geo and d["geo"].notna().any():
        geo = _eq_level(d["geo"], a, b) == 2
        level = level * 2 + geo
        n_levels *= 2
    out["colocation"] = level.astype(np.int64)
    fields = ["colocation"]
    if cfg.use_user_agent and d["user_agent"].notna().any():
        out["user_agent"] = _ua_level(d["user_agent"], a, b)
        fields.append("user_agent")
    for attr in cfg.attributes:
        if attr in d.columns and d[attr].notna().any():
            out[attr] = _eq_level(d[attr], a, b)
            fields.append(attr)

    out["group"] = _group(d["device_type"], a, b)

    shared_uid = (p["rules"].to_numpy() & (1 << RULES.index("user_id"))) != 0
    has_uid = d["user_id"].notna().to_numpy()
    conflict = has_uid[a] & has_uid[b] & ~shared_uid
    out["label"] = np.where(shared_uid, 1, np.where(conflict, -1, 0)).astype(np.int8)
    out.attrs["fields"] = fields
    out.attrs["levels"] = {"colocation": n_levels}
    return out
