"""Stratified, seeded, disjoint validation splits."""

import numpy as np
import pytest

from kerascnn import pipelines
from kerascnn.pipelines.splits import stratified_split_indices

UNBALANCED = np.repeat(np.arange(5), [3, 17, 40, 101, 9])


@pytest.mark.parametrize("fraction", [0.1, 0.25, 0.5, 0.9])
@pytest.mark.parametrize("seed", [0, 7])
def test_split_disjoint_covering_and_stratified(fraction, seed):
    tr, va = stratified_split_indices(UNBALANCED, fraction, seed)
    assert not set(tr) & set(va)
    np.testing.assert_array_equal(np.sort(np.concatenate([tr, va])), np.arange(len(UNBALANCED)))
    assert len(va) == round(fraction * len(UNBALANCED))
    counts = np.bincount(UNBALANCED)
    val_counts = np.bincount(UNBALANCED[va], minlength=5)
    assert np.all(np.abs(val_counts - counts * len(va) / len(UNBALANCED)) <= 1.0)


def test_split_stable_for_a_seed_and_changes_with_it():
    a = stratified_split_indices(UNBALANCED, 0.2, seed=3)
    b = stratified_split_indices(UNBALANCED, 0.2, seed=3)
    c = stratified_split_indices(UNBALANCED, 0.2, seed=4)
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])
    # pinned: NumPy's PCG64 stream is stable across versions, so this split is too
    assert stratified_split_indices(np.arange(20) % 2, 0.2, seed=0)[1].tolist() == [5, 8, 12, 19]


def test_split_errors_name_the_argument():
    with pytest.raises(
        ValueError,
        match=r"validation_fraction must be a number in \[0.0, 1.0\); received validation_fraction=1.5",
    ):
        stratified_split_indices(UNBALANCED, 1.5)
    with pytest.raises(ValueError, match="leaves an empty train or validation part"):
        stratified_split_indices(np.array([0, 1]), 0.1)
    with pytest.raises(
        ValueError, match="split must be one of 'train', 'validation'; received split='test'"
    ):
        pipelines.load("cifar10-sample", split="test", validation_fraction=0.1)


def test_train_val_split_of_a_dataset_uses_train_statistics(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (200, 4, 4, 3), dtype=np.uint8)
    y = rng.integers(0, 4, 200)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    ds = pipelines.load(tmp_path / "d.npz")
    train, val = pipelines.train_val_split(ds, 0.2, seed=1)
    assert len(train) == 160 and len(val) == 40
    np.testing.assert_array_equal(val.numpy()[0], x[val.indices])
    np.testing.assert_array_equal(val.labels, y[val.indices])
    expect = x[train.indices].reshape(-1, 3).astype(np.float64)
    assert train.mean == pytest.approx(tuple(expect.mean(0))) and val.mean == train.mean
    assert val.std == pytest.approx(tuple(expect.std(0)))
    # load(..., split=..., validation_fraction=...) gives the same parts
    val2 = pipelines.load(tmp_path / "d.npz", split="validation", validation_fraction=0.2, seed=1)
    np.testing.assert_array_equal(val2.indices, val.indices)
