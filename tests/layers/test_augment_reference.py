"""Augmentation functions against independent references on fixed parameters, and the
random layers' statistics (fixed seeds, tolerances derived from the distribution)."""

import math

import keras
import numpy as np
import pytest
from _augment_cases import PILLOW_FILL, cifar_images, pillow, pillow_affine

from kerascnn.layers import augment as A


def _img(n=4, h=12, w=10, c=3, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, c)).astype("float32")


def _np(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


def _translate_ref(x, dy, dx, fill):
    out = np.full_like(x, fill)
    h, w = x.shape[:2]
    out[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = x[
        max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)
    ]
    return out


@pytest.mark.jax
@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
def test_integer_translation_equals_roll_with_fill(interpolation):
    x = _img()
    shifts = [(3, -2), (-1, 4), (0, 0), (5, 5)]
    dy = np.array([s[0] for s in shifts], "float32")
    dx = np.array([s[1] for s in shifts], "float32")
    y = _np(A.affine_transform(x, A.translation_matrix(dx, dy), interpolation, "constant", 7.0))
    for i, (sy, sx) in enumerate(shifts):
        ref = np.roll(x[i], (sy, sx), axis=(0, 1))
        ref = _translate_ref(x[i], sy, sx, 7.0)
        np.testing.assert_allclose(y[i], ref, atol=1e-4)
    # and np.roll itself where nothing wraps: the kept region equals the rolled image
    np.testing.assert_allclose(
        y[0][3:, :-2], np.roll(x[0], (3, -2), axis=(0, 1))[3:, :-2], atol=1e-4
    )


@pytest.mark.jax
def test_rotate_90_equals_rot90_and_reflect_fill_mirrors():
    x = _img(2, 9, 9)  # square, so 90 degrees maps the grid onto itself
    angles = np.array([math.pi / 2, -math.pi / 2], "float32")
    m = A.rotation_matrix(angles, 9, 9)
    nearest = _np(A.affine_transform(x, m, "nearest"))
    np.testing.assert_array_equal(nearest[0], np.rot90(x[0], 1))
    np.testing.assert_array_equal(nearest[1], np.rot90(x[1], -1))
    bilinear = _np(A.affine_transform(x, m, "bilinear"))
    np.testing.assert_allclose(bilinear[0], np.rot90(x[0], 1), atol=1e-3)
    # reflect fill: a shift by 2 to the right mirrors the first 2 columns (edge repeated)
    y = _np(
        A.affine_transform(
            x, A.translation_matrix(np.array([2.0, 2.0]), np.zeros(2)), "nearest", "reflect"
        )
    )
    np.testing.assert_array_equal(y[0][:, 2:], x[0][:, :-2])
    np.testing.assert_array_equal(y[0][:, :2], x[0][:, 1::-1])


@pytest.mark.jax
def test_flip_equals_np_flip():
    x = _img()
    fh = np.array([True, False, True, False])
    fv = np.array([True, True, False, False])
    y = _np(A.flip(x, fh, fv))
    for i in range(4):
        ref = x[i]
        ref = np.flip(ref, 1) if fh[i] else ref
        ref = np.flip(ref, 0) if fv[i] else ref
        np.testing.assert_array_equal(y[i], ref)


@pytest.mark.jax
@pytest.mark.parametrize("fill", ["reflect", "constant"])
def test_pad_crop_is_a_window_of_the_padded_image(fill):
    x = _img()
    oy, ox = np.array([0, 8, 3, 4], "int32"), np.array([8, 0, 5, 4], "int32")
    y = _np(A.pad_crop(x, oy, ox, 4, fill, 0.0))
    mode = {"reflect": "reflect", "constant": "constant"}[fill]
    padded = np.pad(x, [(0, 0), (4, 4), (4, 4), (0, 0)], mode=mode)
    for i in range(4):
        np.testing.assert_array_equal(y[i], padded[i, oy[i] : oy[i] + 12, ox[i] : ox[i] + 10])
    np.testing.assert_array_equal(y[3], x[3])  # centre window = identity


@pytest.mark.jax
def test_pad_crop_with_one_fill_value_per_channel_is_numpy_pad_per_channel():
    x = _img()
    mean = [125.3, 122.9, 113.8]  # e.g. the data's mean pixel: zeros after standardization
    oy, ox = np.array([0, 8, 3, 4], "int32"), np.array([8, 0, 5, 4], "int32")
    y = _np(A.pad_crop(x, oy, ox, 4, "constant", mean))
    padded = np.concatenate(
        [
            np.pad(x[..., c : c + 1], [(0, 0), (4, 4), (4, 4), (0, 0)], constant_values=v)
            for c, v in enumerate(mean)
        ],
        axis=-1,
    )
    for i in range(4):
        np.testing.assert_array_equal(y[i], padded[i, oy[i] : oy[i] + 12, ox[i] : ox[i] + 10])
    # standardized with that mean, the border is exactly what He et al. pad with: zero
    # (image 0's window starts at row 0: its first 4 rows are padding)
    np.testing.assert_array_equal(y[0, :4] - np.float32(mean), 0.0)
    layer = A.RandomPadCrop(4, fill="constant", fill_value=mean, seed=3)
    assert A.RandomPadCrop.from_config(layer.get_config()).fill_value == mean
    with pytest.raises(ValueError, match=r"fill_value has 2 values .* images have 3 channels"):
        A.RandomPadCrop(4, fill="constant", fill_value=[1.0, 2.0])(x, training=True)


@pytest.mark.jax
def test_posterize_solarize_invert_exact():
    x = _img()
    xi = x.astype(np.uint8)
    for bits in (1, 3, 4, 8):
        np.testing.assert_array_equal(
            _np(A.posterize(x, bits)), xi & np.uint8((0xFF << (8 - bits)) & 0xFF)
        )
    np.testing.assert_array_equal(_np(A.solarize(x, 128.0)), np.where(xi < 128, xi, 255 - xi))
    np.testing.assert_array_equal(_np(A.invert(x)), 255 - xi)
    # the same on the (0, 1) value range
    np.testing.assert_allclose(_np(A.invert(x / 255.0, (0, 1))), (255 - xi) / 255.0, atol=1e-6)
    np.testing.assert_allclose(_np(A.posterize(x / 255.0, 3, (0, 1))) * 255, xi & 0xE0, atol=1e-3)


def test_equalize_and_autocontrast_match_pillow_on_cifar(cifar_npz):
    ImageOps = pytest.importorskip("PIL.ImageOps")
    images = cifar_images(cifar_npz)[:64]
    x = images.astype("float32")
    eq = _np(A.equalize(x))
    assert np.abs(eq - pillow(ImageOps.equalize, images)).max() <= 1.0
    ac = _np(A.autocontrast(x))
    # Pillow truncates (int()) the stretched value; ours is exact: within one grey level
    assert np.abs(ac - pillow(ImageOps.autocontrast, images)).max() <= 1.0 + 1e-3
    # value_range (0, 1) gives the same result scaled
    np.testing.assert_allclose(_np(A.equalize(x / 255.0, (0, 1))) * 255.0, eq, atol=1e-3)


def test_enhance_ops_match_pillow_image_enhance(cifar_npz):
    ImageEnhance = pytest.importorskip("PIL.ImageEnhance")
    images = cifar_images(cifar_npz)[:16]
    x = images.astype("float32")
    for fn, cls in [
        (A.adjust_brightness, ImageEnhance.Brightness),
        (A.adjust_saturation, ImageEnhance.Color),
        (A.adjust_sharpness, ImageEnhance.Sharpness),
    ]:
        for factor in (0.3, 1.7):
            ours = _np(fn(x, factor))
            ref = pillow(lambda im, cls=cls, factor=factor: cls(im).enhance(factor), images)
            assert np.abs(ours - ref).max() <= 2.0, (fn.__name__, factor)
    ours = _np(A.adjust_contrast(x, 1.5))
    ref = pillow(lambda im: ImageEnhance.Contrast(im).enhance(1.5), images)
    assert np.abs(ours - ref).max() <= 2.0  # Pillow rounds the mean grey to an integer


@pytest.mark.jax
def test_posterize_solarize_invert_equal_pillow_image_ops(cifar_npz):
    """``ImageOps.posterize`` / ``solarize`` / ``invert`` on real CIFAR-10 images, every bit
    depth and thresholds inside, at and beyond the range: exact (measured: 0 difference)."""
    ImageOps = pytest.importorskip("PIL.ImageOps")
    images = cifar_images(cifar_npz)[:16]
    x = images.astype("float32")
    for bits in range(1, 9):
        ref = pillow(lambda im, bits=bits: ImageOps.posterize(im, bits), images)
        np.testing.assert_array_equal(_np(A.posterize(x, bits)), ref, err_msg=f"bits={bits}")
    for threshold in (0, 1, 64, 128, 200.5, 255, 256):
        ref = pillow(lambda im, t=threshold: ImageOps.solarize(im, t), images)
        np.testing.assert_array_equal(_np(A.solarize(x, threshold)), ref, err_msg=f"{threshold}")
    np.testing.assert_array_equal(_np(A.invert(x)), pillow(ImageOps.invert, images))


@pytest.mark.jax
def test_geometric_warps_equal_pillow_with_nearest_resampling(cifar_npz):
    """Rotations (``Image.rotate``), shears and sub-pixel translations (``Image.transform``
    AFFINE) with nearest resampling and a constant grey fill, on real CIFAR-10 images.
    Measured (TensorFlow and JAX, 16 images): 0 differing pixels in every case. Bound: at
    most 0.1 % of the pixels, for a source coordinate that lands exactly halfway between
    two pixels and may round either way on another platform."""
    Image = pytest.importorskip("PIL.Image")
    images = cifar_images(cifar_npz)[:16]
    x = images.astype("float32")
    n, h, w, _ = x.shape
    ones = np.ones(n, "float32")
    cases = []
    for degrees in (17.0, -45.0, 90.0, 133.0, 5.5):
        matrix = A.rotation_matrix(ones * math.radians(degrees), h, w)
        ref = lambda im, d=degrees: im.rotate(d, Image.NEAREST, fillcolor=PILLOW_FILL)  # noqa: E731
        cases.append((f"rotate {degrees}", matrix, ref))
    for sx, sy in ((0.1, 0.0), (-0.25, 0.0), (0.0, 0.3), (0.0, -0.17)):
        matrix = A.shear_matrix(ones * sx, ones * sy, h, w)
        cases.append((f"shear {sx}, {sy}", matrix, pillow_affine((1.0, sx, sy, 1.0))))
    for dx, dy in ((3.0, -5.0), (2.4, 0.0), (-7.6, 11.3), (0.5, 0.5)):
        matrix = A.translation_matrix(ones * dx, ones * dy)
        cases.append((f"translate {dx}, {dy}", matrix, pillow_affine((1, 0, 0, 1), (dx, dy))))
    for name, matrix, ref in cases:
        ours = _np(A.affine_transform(x, matrix, "nearest", "constant", PILLOW_FILL[0]))
        differ = (ours != pillow(ref, images)).mean()
        assert differ <= 1e-3, (name, differ)


@pytest.mark.jax
def test_cutout_patch_and_per_channel():
    x = np.ones((2, 10, 10, 4), "float32")
    y = _np(A.cutout(x, np.array([5, 0]), np.array([5, 9]), 4, 0.0))
    assert (y[0] == 0).all(axis=-1).sum() == 16  # full 4x4 patch
    assert (y[1] == 0).all(axis=-1).sum() == 2 * 3  # clipped at the corner: rows 0-1, cols 7-9
    yc = _np(
        A.cutout(
            x, np.array([[2, 7, 5, 5], [5, 5, 5, 5]]), np.array([[2, 7, 5, 5], [5, 5, 5, 5]]), 4
        )
    )
    assert not np.array_equal(yc[0, ..., 0], yc[0, ..., 1])  # independent patches per channel
    assert (yc == 0).sum() == 16 * 8


def _binomial_tol(n, p, z=4.0):
    """A 4-sigma band of a Binomial(n, p) count (two-sided p < 1e-4)."""
    return z * math.sqrt(n * p * (1 - p))


@pytest.mark.jax
def test_flip_fraction_is_binomial():
    n = 4000
    x = np.zeros((n, 2, 2, 1), "float32")
    x[:, :, 0] = 1.0  # left column 1: flipped images have it on the right
    y = _np(A.RandomFlip("horizontal", seed=7)(x, training=True))
    flipped = int((y[:, 0, 1, 0] == 1).sum())
    assert abs(flipped - n / 2) < _binomial_tol(n, 0.5)


@pytest.mark.jax
def test_pad_crop_offsets_uniform():
    n = 4000
    x = np.tile((np.arange(16, dtype="float32") + 1).reshape(1, 4, 4, 1), (n, 1, 1, 1))
    y = _np(A.RandomPadCrop(1, fill="constant", seed=5)(x, training=True))
    # with padding 1, output pixel (1, 1) is input pixel (oy, ox): its value encodes the offset
    offsets = y[:, 1, 1, 0].astype(int) - 1
    counts = np.bincount(offsets, minlength=16).reshape(4, 4)
    assert counts[:3, :3].sum() == n  # offsets 0..2 on each axis only
    assert (np.abs(counts[:3, :3] - n / 9) < _binomial_tol(n, 1 / 9)).all()


@pytest.mark.jax
def test_cutout_area_fraction():
    n = 2000
    x = np.ones((n, 16, 16, 1), "float32")
    y = _np(A.Cutout(4, seed=3)(x, training=True))
    cut = (y == 0).reshape(n, -1).sum(1)
    # expected area of a 4x4 patch with a uniform centre on 16x16, clipped at the borders:
    # per axis, centre c in 0..15 covers [c-2, c+2) ∩ [0, 16)
    per_axis = np.mean([min(c + 2, 16) - max(c - 2, 0) for c in range(16)])
    expected = per_axis**2
    sd = cut.std()
    assert abs(cut.mean() - expected) < 4 * sd / math.sqrt(n)


@pytest.mark.jax
def test_rotate_angles_within_range_and_symmetric():
    layer = A.RandomRotate(30, seed=2)
    m = _np(layer.matrices(4000, 32, 32))
    angles = np.degrees(np.arctan2(m[:, 1, 0], m[:, 0, 0]))
    assert angles.min() >= -30 and angles.max() <= 30
    # Uniform(-30, 30): mean 0, sd 30 / sqrt(3); 4-sigma band of the sample mean
    assert abs(angles.mean()) < 4 * (30 / math.sqrt(3)) / math.sqrt(4000)
