"""Device -> person maps from links, under the rule that different user_ids never merge.

Links are the edges of a graph on devices; a person is a connected component.
Transitivity can chain two logged-in devices with different ``user_id`` s
into one person; that is never allowed. It can also chain many persons'
devices through a few false links into one implausibly large "person".
Components without either problem come straight from
:func:`scipy.sparse.csgraph.connected_components`; the few with one are
rebuilt edge by edge (known links first, then by decreasing link
probability), skipping any edge that would merge two different
``user_id`` s or make a component larger than ``max_size`` devices (known
links are never skipped for size).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.sparse.csgraph import connected_components

__all__ = ["PersonNamer", "account_classes", "constrained_components", "person_ids"]


def account_classes(
    n_devices: int, uid_a: np.ndarray, uid_b: np.ndarray, user_id: np.ndarray | None = None
) -> np.ndarray:
    """Per device, an account class (-1 = no user_id).

    Devices with the same ``user_id`` (``user_id``: one value or null per
    device), or joined by a known link ``uid_a``-``uid_b``, transitively, share
    a class.
    """
    codes = (
        np.full(n_devices, -1, np.int64)
        if user_id is None
        else pd.factorize(pd.Series(user_id, dtype=object), use_na_sentinel=True)[0].astype(
            np.int64
        )
    )
    n_uid = int(codes.max()) + 1 if codes.size else 0
    has = codes >= 0
    src = np.concatenate([uid_a, np.flatnonzero(has)])
    dst = np.concatenate([uid_b, n_devices + codes[has]])
    touched = np.zeros(n_devices, bool)
    touched[uid_a] = True
    touched[uid_b] = True
    touched |= has
    if src.size == 0:
        return np.full(n_devices, -1, np.int64)
    size = n_devices + n_uid
    g = sparse.coo_matrix((np.ones(src.size, np.int8), (src, dst)), shape=(size, size))
    _, labels = connected_components(g, directed=False)
    return np.where(touched, labels[:n_devices], -1).astype(np.int64)


def constrained_components(
    n_devices: int,
    a: np.ndarray,
    b: np.ndarray,
    weight: np.ndarray,
    account: np.ndarray,
    max_size: int | None = None,
) -> np.ndarray:
    """Component label per device from edges ``a``-``b`` (``weight`` orders repairs).

    ``account`` is the device's account class (-1: none; see
    :func:`account_classes`); two devices of different classes never end up
    in one component. Edges with ``weight >= 2`` are treated as known links
    (merged first, whatever the size). ``max_size`` caps how many devices a
    component built from inferred links may hold (``None``: no cap).
    """
    if len(a) == 0:
        return np.arange(n_devices, dtype=np.int64)
    g = sparse.coo_matrix((np.ones(len(a), np.int8), (a, b)), shape=(n_devices, n_devices))
    _, labels = connected_components(g, directed=False)
    has = account >= 0
    bad = np.zeros(0, np.int64)
    if has.any():
        comp_acc = pd.DataFrame({"c": labels[has], "acc": account[has]})
        n_acc = comp_acc.groupby("c")["acc"].nunique()
        bad = n_acc.index[n_acc.to_numpy() > 1].to_numpy()
    if max_size is not None:
        sizes = np.bincount(labels)
        bad = np.union1d(bad, np.flatnonzero(sizes > max_size))
    if bad.size == 0:
        return labels.astype(np.int64)
    labels = labels.astype(np.int64).copy()
    in_bad = np.isin(labels, bad)
    e = np.flatnonzero(in_bad[a])
    order = e[np.argsort(-weight[e], kind="stable")]
    parent = {}
    acc_of = {}
    size_of: dict[int, int] = {}

    def find(x: int) -> int:
        root = x
        while parent.get(root, root) != root:
            root = parent[root]
        while parent.get(x, x) != root:
            parent[x], x = root, parent[x]
        return root

    for i in order:
        x, y = find(int(a[i])), find(int(b[i]))
        if x == y:
            continue
        ax = acc_of.get(x, account[x] if account[x] >= 0 else -1)
        ay = acc_of.get(y, account[y] if account[y] >= 0 else -1)
        if ax >= 0 and ay >= 0 and ax != ay:
            continue
        sx, sy = size_of.get(x, 1), size_of.get(y, 1)
        if max_size is not None and weight[i] < 2 and sx + sy > max_size:
            continue
        parent[y] = x
        acc_of[x] = ax if ax >= 0 else ay
        size_of[x] = sx + sy
    nodes = np.flatnonzero(in_bad)
    roots = np.array([find(int(v)) for v in nodes], dtype=np.int64)
    labels[nodes] = n_devices + roots  # fresh labels, disjoint from scipy's
    return labels


class PersonNamer:
    """Stable person ids for many labelings of the same devices (see :func:`person_ids`).

    Sorting a million string ids takes seconds; it is done once here, so
    each labeling (a posterior map draw) costs one integer group-by.
    """

    def __init__(self, device_ids: np.ndarray):
        device_ids = np.asarray(device_ids)
        order = np.argsort(device_ids, kind="stable")
        self._rank = np.empty(len(device_ids), np.int64)
        self._rank[order] = np.arange(len(device_ids))
        self._names = np.array(["p:" + str(d) for d in device_ids[order]], dtype=object)

    def __call__(self, labels: np.ndarray) -> np.ndarray:
        if len(labels) != len(self._rank):
            raise ValueError(f"{len(labels)} labels for {len(self._rank)} devices")
        smallest = pd.Series(self._rank).groupby(np.asarray(labels)).transform("min")
        return self._names[smallest.to_numpy()]


def person_ids(labels: np.ndarray, device_ids: np.ndarray) -> np.ndarray:
    """A stable person id per device: ``"p:" +`` the smallest device_id of its component.

    The same set of devices gets the same id in every draw, so draws can be
    compared and joined. For many labelings of the same devices use
    :class:`PersonNamer`.
    """
    return PersonNamer(device_ids)(labels)
