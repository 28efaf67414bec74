"""Seeded, stratified, disjoint train / validation splits.

The split is made per class: the examples of each class are permuted with a NumPy generator
seeded by ``seed`` and the first ``round(fraction * n_class)`` (adjusted so the total matches
``round(fraction * n)``) go to validation. Each class's share of the validation set is
therefore within one example of its share of the data, and the same seed gives the same
split on any machine (NumPy's ``default_rng`` / PCG64 stream is stable across versions).
"""

from __future__ import annotations

import numpy as np

from kerascnn.checks import check_float, check_int
from kerascnn.errors import DataValidationError, UserInputError

__all__ = [
    "stratified_split_indices",
    "train_val_split",
]


def stratified_split_indices(
    labels, fraction: float, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the train and validation parts of ``labels`` (both sorted, disjoint).

    Args:
        labels: 1-D integer class ids.
        fraction: share of examples for validation, in (0, 1).
        seed: the split's seed (int >= 0).

    Returns:
        ``(train_positions, validation_positions)``, sorted int64 arrays that together cover
        ``range(len(labels))`` exactly once.
    """
    check_float("validation_fraction", fraction, 0.0, 1.0)
    if fraction == 0.0:
        raise UserInputError(
            f"validation_fraction must be in (0, 1); received validation_fraction={fraction!r}"
        )
    check_int("seed", seed, minimum=0)
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise DataValidationError(
            f"labels must be 1-D class ids; received labels of shape {labels.shape}"
        )
    n = len(labels)
    n_val = int(round(fraction * n))
    if n_val < 1 or n_val >= n:
        raise UserInputError(
            f"validation_fraction={fraction!r} of {n} examples leaves an empty train or validation "
            "part; use a larger dataset or another fraction"
        )
    classes, counts = np.unique(labels, return_counts=True)
    # Largest-remainder apportionment: each class gets floor(share) or ceil(share).
    exact = counts * (n_val / n)
    take = np.floor(exact).astype(np.int64)
    order = np.argsort(-(exact - take), kind="stable")
    take[order[: n_val - take.sum()]] += 1

    rng = np.random.default_rng(seed)
    val = []
    for c, k in zip(classes, take, strict=True):
        members = np.flatnonzero(labels == c)
        val.append(rng.permutation(members)[:k])
    val = np.sort(np.concatenate(val))
    mask = np.ones(n, dtype=bool)
    mask[val] = False
    return np.flatnonzero(mask), val


def train_val_split(dataset, validation_fraction: float = 0.1, seed: int = 0):
    """Split a :class:`~kerascnn.pipelines.Dataset` into stratified ``(train, validation)`` parts.

    Both parts carry the same metadata; their ``mean`` / ``std`` are those of the source if it
    has recorded or published values, else computed on the **train part** only (so validation
    data never leaks into normalization).
    """
    train_pos, val_pos = stratified_split_indices(dataset.labels, validation_fraction, seed)
    train = dataset.subset(train_pos, split="train")
    if dataset.info.mean is None:
        mean, std = train.compute_stats()
        stats = {"mean": mean, "std": std, "stats_source": "computed"}
        train = train.with_info(**stats)
    else:
        stats = {}
    val = dataset.subset(val_pos, split="validation", **stats)
    return train, val
