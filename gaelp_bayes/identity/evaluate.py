"""Checking links against a known device -> person map (synthetic data, labelled benchmarks)."""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["expected_calibration_error", "pairwise_scores", "true_pairs"]


def expected_calibration_error(p: np.ndarray, y: np.ndarray, bins: int = 10) -> float:
    """ECE with equal-width bins: sum over bins of (share of pairs) x |mean p - match rate|."""
    p = np.asarray(p, dtype=float)
    y = np.asarray(y, dtype=float)
    if p.size == 0:
        return float("nan")
    b = np.minimum((p * bins).astype(int), bins - 1)
    sp = np.bincount(b, weights=p, minlength=bins)
    sy = np.bincount(b, weights=y, minlength=bins)
    return float(np.abs(sp - sy).sum() / p.size)


def true_pairs(device_ids: np.ndarray, persons: pd.Series) -> int:
    """Number of device pairs that truly share a person (among ``device_ids``)."""
    per = pd.Series(device_ids).map(persons)
    cnt = per.value_counts().to_numpy()
    return int((cnt * (cnt - 1) // 2).sum())


def pairwise_scores(
    links: pd.DataFrame, truth: pd.DataFrame, threshold: float = 0.5, devices=None
) -> dict[str, float]:
    """Pairwise precision, recall, F1 at ``p_link >= threshold``, ECE and blocking recall.

    ``links`` has ``device_a``, ``device_b``, ``p_link`` (every candidate pair);
    ``truth`` has ``device_id``, ``person_id``. Recall counts every true pair
    among ``devices`` (default: the devices of ``truth``), so pairs lost in
    blocking count as misses. ``ece_unlabelled`` is computed on pairs whose
    ``known`` column is 0 when present.
    """
    persons = truth.set_index("device_id")["person_id"]
    y = links["device_a"].map(persons).to_numpy() == links["device_b"].map(persons).to_numpy()
    p = links["p_link"].to_numpy()
    pred = p >= threshold
    tp = int((pred & y).sum())
    total = true_pairs(truth["device_id"].to_numpy() if devices is None else devices, persons)
    precision = tp / max(int(pred.sum()), 1)
    recall = tp / max(total, 1)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    out = {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "ece": expected_calibration_error(p, y),
        "blocking_recall": int(y.sum()) / max(total, 1),
        "candidate_pairs": len(links),
        "true_pairs": total,
    }
    if "known" in links.columns:
        unl = links["known"].to_numpy() == 0
        out["ece_unlabelled"] = expected_calibration_error(p[unl], y[unl])
    return out
