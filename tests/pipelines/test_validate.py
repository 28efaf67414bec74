"""Inputs are validated when loaded: pixel dtype and range, labels against class names,
empty classes, one-class training sets, empty class folders, broken symlinks."""

import os

import numpy as np
import pytest

from kerascnn import pipelines
from kerascnn.errors import DataValidationError, UserInputError
from kerascnn.pipelines.validate import check_trainable
from kerascnn.training.recipes import get_recipe

pytestmark = pytest.mark.jax


def _images(n, dtype="uint8", high=255):
    return np.random.default_rng(0).uniform(0, high, size=(n, 8, 8, 3)).astype(dtype)


def test_float_images_are_refused_with_the_conversion(tmp_path):
    path = tmp_path / "f.npz"
    np.savez(path, x=_images(10, "float64", 1.0), y=np.arange(10) % 2)
    with pytest.raises(DataValidationError, match=r"\(x \* 255\).round\(\).astype\('uint8'\)"):
        pipelines.load(path)


def test_non_finite_pixels_and_out_of_range_integers_are_refused(tmp_path):
    x = _images(10, "float32")
    x[3, 0, 0, 0] = np.inf
    np.savez(tmp_path / "inf.npz", x=x, y=np.arange(10) % 2)
    with pytest.raises(DataValidationError, match="1 pixel value"):
        pipelines.load(tmp_path / "inf.npz")
    np.savez(tmp_path / "neg.npz", x=_images(10, "int32") - 5, y=np.arange(10) % 2)
    with pytest.raises(DataValidationError, match="pixel values go from -5"):
        pipelines.load(tmp_path / "neg.npz")
    np.savez(tmp_path / "ok.npz", x=_images(10, "int32"), y=np.arange(10) % 2)
    assert pipelines.load(tmp_path / "ok.npz").num_classes == 2  # integers in 0..255 are fine


def test_label_beyond_the_class_names_is_refused(tmp_path):
    path = tmp_path / "l.npz"
    np.savez(path, x=_images(4), y=np.array([0, 1, 2, 99]), class_names=np.array(["a", "b", "c"]))
    with pytest.raises(
        DataValidationError, match="label 99 .* 3 class names, so labels must be 0..2"
    ):
        pipelines.load(path)


def test_training_sets_need_every_class_and_two_of_them(tmp_path):
    np.savez(tmp_path / "gap.npz", x=_images(6), y=np.array([0, 2, 0, 2, 0, 2]))
    with pytest.raises(
        DataValidationError, match=r"1 of 3 classes have no training examples: 1 \('1'\)"
    ):
        check_trainable(pipelines.load(tmp_path / "gap.npz"))
    np.savez(tmp_path / "one.npz", x=_images(6), y=np.zeros(6, int))
    with pytest.raises(DataValidationError, match="needs examples of two classes"):
        check_trainable(pipelines.load(tmp_path / "one.npz"))


def _png(path):
    from PIL import Image

    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(path)


def test_empty_class_folder_is_refused(tmp_path):
    for name in ("a", "b", "empty"):
        (tmp_path / name).mkdir()
    _png(tmp_path / "a" / "1.png")
    _png(tmp_path / "b" / "1.png")
    with pytest.raises(DataValidationError, match="class folder.s. empty hold no image files"):
        pipelines.load(tmp_path)


def test_broken_symlink_is_reported_like_an_undecodable_file(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        _png(tmp_path / name / "1.png")
        _png(tmp_path / name / "2.png")
    os.symlink(tmp_path / "nowhere.png", tmp_path / "a" / "3.png")
    with pytest.raises(pipelines.BadImageFileError) as info:
        pipelines.load(tmp_path)
    assert info.value.paths == [str(tmp_path / "a" / "3.png")]
    with pytest.warns(UserWarning, match="skipped 1 of 5"):
        ds = pipelines.load(tmp_path, on_bad_file="skip")
    assert len(ds) == 4 and ds.info.skipped_files == (str(tmp_path / "a" / "3.png"),)


@pytest.mark.parametrize(
    "field, value",
    [("lr", float("nan")), ("lr", float("inf")), ("weight_decay", float("nan")),
     ("momentum", float("-inf")), ("label_smoothing", float("nan")), ("milestones", (0.5, float("nan")))],
)  # fmt: skip
def test_recipe_refuses_non_finite_values(field, value):
    with pytest.raises(ValueError, match=f"{field} must be"):
        get_recipe("resnet-cifar", **{field: value})


def _empty_class_folder(tmp_path):
    (tmp_path / "folder" / "cat").mkdir(parents=True)
    return tmp_path / "folder"


@pytest.mark.parametrize(
    "call, error, pattern",
    [
        (  # pipelines.augment_spec
            lambda tmp_path: pipelines.parse_augment("flip:horizontal:vertical"),
            UserInputError,
            r"augment item 'flip:horizontal:vertical' has 2 ':' arguments; flip takes at most 1",
        ),
        (
            lambda tmp_path: pipelines.parse_augment("cutout:big"),
            UserInputError,
            r"augment item 'cutout:big': its ':' arguments must be numbers \(int\); "
            r"received 'big'",
        ),
        (  # pipelines.dataset
            lambda tmp_path: pipelines.load("cifar10-sample").subset([10**6]),
            UserInputError,
            r"indices must be a 1-D array of positions in \[0, 2000\)",
        ),
        (  # pipelines.splits
            lambda tmp_path: pipelines.stratified_split_indices(np.zeros((4, 2), int), 0.5),
            DataValidationError,
            r"labels must be 1-D class ids; received labels of shape \(4, 2\)",
        ),
        (  # pipelines.normalization
            lambda tmp_path: pipelines.resolve_normalization("scale", mean=(0.5,), std=(0.2,)),
            UserInputError,
            r"mean/std are only used with normalize='standardize'; received normalize='scale'",
        ),
        (  # pipelines.sources
            lambda tmp_path: pipelines.load("cifar10-sample", image_size=(32, 0)),
            UserInputError,
            r"image_size must be \(height, width\) with positive integers; received "
            r"image_size=\(32, 0\)",
        ),
        (
            lambda tmp_path: pipelines.load(_empty_class_folder(tmp_path)),
            DataValidationError,
            r"the class sub-folders hold no files; expected image files in them",
        ),
    ],
)
def test_invalid_pipeline_inputs_are_the_users_error(tmp_path, call, error, pattern):
    with pytest.raises(error, match=pattern):
        call(tmp_path)
