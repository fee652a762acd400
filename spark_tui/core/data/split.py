"""Seeded train/validation split: by fraction or count, stratified on a label."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Hashable, Sequence


def split_indices(
    n: int,
    *,
    val_fraction: float = 0.1,
    val_count: int | None = None,
    seed: int = 42,
    labels: Sequence[Hashable] | None = None,
) -> tuple[list[int], list[int]]:
    """Indices of train and validation rows (each sorted).

    `val_count` wins over `val_fraction`.  With `labels`, each label keeps its
    share in both splits (largest-remainder rounding).  A split never leaves the
    training set empty; a non-zero request on two or more rows gives at least
    one validation row.
    """
    if n <= 0:
        return [], []
    want = val_count if val_count is not None else round(n * max(0.0, val_fraction))
    if (val_count or val_fraction > 0) and want == 0 and n >= 2:
        want = 1
    want = max(0, min(want, n - 1))
    rng = random.Random(seed)
    if not labels:
        order = list(range(n))
        rng.shuffle(order)
        return sorted(order[want:]), sorted(order[:want])
    groups: dict[Hashable, list[int]] = defaultdict(list)
    for i, lab in enumerate(labels):
        groups[lab].append(i)
    keys = sorted(groups, key=repr)
    quotas = {k: want * len(groups[k]) / n for k in keys}
    alloc = {k: int(quotas[k]) for k in keys}
    rest = want - sum(alloc.values())
    for k in sorted(keys, key=lambda k: quotas[k] - alloc[k], reverse=True)[:rest]:
        alloc[k] += 1
    train: list[int] = []
    val: list[int] = []
    for k in keys:
        idx = groups[k][:]
        rng.shuffle(idx)
        take = min(alloc[k], len(idx))
        val += idx[:take]
        train += idx[take:]
    return sorted(train), sorted(val)
