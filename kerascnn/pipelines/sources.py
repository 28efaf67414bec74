"""Sources: tensorflow-datasets names, ``.npz`` files, image folders and the bundled sample.

ds = kerascnn.pipelines.load("cifar10-sample")                     # bundled, offline
ds = kerascnn.pipelines.load("cifar10", split="test", data_dir="~/tensorflow_datasets")
ds = kerascnn.pipelines.load("../shared/data/cifar10/train.npz", split="validation",
                             validation_fraction=0.1, seed=0)
ds = kerascnn.pipelines.load("photos/", image_size=(64, 64), on_bad_file="skip")
"""

from __future__ import annotations

import json
import os
import pathlib
import warnings
import zipfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from kerascnn.backends import INSTALL_HINT, MissingDependencyError
from kerascnn.checks import check_choice, check_options
from kerascnn.errors import DataValidationError, UserInputError
from kerascnn.pipelines.dataset import Dataset, DatasetInfo
from kerascnn.pipelines.normalization import PUBLISHED_STATS
from kerascnn.pipelines.splits import train_val_split
from kerascnn.pipelines.validate import check_labels, check_pixels

__all__ = [
    "array_dataset",
    "ASPECT_TOLERANCE",
    "available_sources",
    "BAD_FILE_POLICIES",
    "BadImageFileError",
    "DATA_DIR",
    "DataNotFoundError",
    "decode_file",
    "IMAGE_FORMATS",
    "load",
    "resize_images",
    "SAMPLE_FILE",
    "SAMPLE_META",
    "sample_metadata",
    "SAMPLE_NAME",
    "TFDS_NAMES",
]

DATA_DIR = pathlib.Path(__file__).resolve().parent / "data"
SAMPLE_NAME = "cifar10-sample"
SAMPLE_FILE = DATA_DIR / "cifar10_sample.npz"
SAMPLE_META = DATA_DIR / "cifar10_sample.json"

#: tensorflow-datasets image-classification datasets kerascnn knows (any other tfds name with
#: ``image`` / ``label`` features works too).
TFDS_NAMES = ("cifar10", "cifar100", "mnist", "fashion_mnist", "svhn_cropped", "imagenette")
BAD_FILE_POLICIES = ("error", "skip")
#: Image formats an image folder may hold (what ``tf.io.decode_image`` decodes too).
IMAGE_FORMATS = ("JPEG", "PNG", "GIF", "BMP")
#: Pillow's modes of 16-bit greyscale PNGs (the only 16-bit images Pillow does not bring to
#: 8 bits itself: its 16-bit RGB, RGBA and grey + alpha PNGs keep each sample's high byte).
_GREY_16_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")
#: How far (relative) an image's height / width ratio may be from the folder's size's before
#: resizing it counts as stretching (an aspect-ratio change).
ASPECT_TOLERANCE = 0.01


class DataNotFoundError(FileNotFoundError):
    """The requested data is not on this machine and may not be downloaded."""


class BadImageFileError(UserInputError):
    """An image folder holds files that cannot be decoded as images."""

    def __init__(self, message: str, paths: list[str], root: str | None = None, total=None):
        super().__init__(message)
        self.paths = paths
        self.root = root
        self.total = total


# --------------------------------------------------------------------------- public entry
def load(
    source: str | os.PathLike,
    split: str = "train",
    *,
    validation_fraction: float | None = None,
    seed: int = 0,
    image_size: tuple[int, int] | None = None,
    **source_options,
) -> Dataset:
    """Load a labelled image dataset with its metadata.

    Args:
        source: one of
            - ``"cifar10-sample"``: 2,000 train + 500 validation real CIFAR-10 training images
              bundled with kerascnn (works offline; see ``pipelines/data/README.md``);
            - a tensorflow-datasets name (``"cifar10"``, ``"cifar100"``, ``"mnist"``,
              ``"fashion_mnist"``, ``"svhn_cropped"``, ``"imagenette"``, ...);
            - a ``.npz`` file with ``x`` (N, H, W[, C]) uint8 pixels and ``y`` (N,) class ids, or
              per-split ``x_<split>`` / ``y_<split>`` arrays (``x_train``; ``x_val``,
              ``x_valid`` or ``x_validation`` for ``"validation"``; ...); class names come
              from a ``class_names`` array in the file or a ``classes.json`` next to it;
            - a folder with one sub-folder of images (JPEG, PNG, GIF, BMP) per class; the
              sub-folder names, sorted, are the class names. Files whose names start with
              ``.`` and files directly in the folder are ignored. Images are decoded by
              :func:`decode_file` (16-bit PNGs keep each sample's high byte).
        split: the source's split: tfds split strings (``"train"``, ``"test"``,
            ``"train[:10%]"``, ...); ``"train"`` or ``"validation"`` for the sample; ``"train"``
            (the whole file or folder, or ``x_train``) for npz files and folders.
            With ``validation_fraction``, ``"train"`` / ``"validation"`` name the two parts
            carved from the source's training data.
        validation_fraction: carve a stratified validation part of this share from the
            training data with ``seed`` (see :func:`kerascnn.pipelines.train_val_split`).
            An ``.npz`` file that holds its own validation split (``x_val`` / ``y_val``, or
            ``x_valid`` / ``x_validation`` ...) is not carved: ``"validation"`` is that split,
            ``"train"`` the file's whole training split, and a warning says so.
        seed: the seed of that split.
        image_size: ``(height, width)`` to resize images to (bilinear, antialiased, rounded back
            to uint8; images already that size are untouched). Required for tensorflow-datasets
            sources whose images vary in size. For folders, the default is the folder's most
            common image size (ties: the first in sorted file order); when images differ from
            it a warning names the size, and images of another aspect ratio (beyond
            :data:`ASPECT_TOLERANCE`) are refused with :class:`DataValidationError`, since
            resizing would stretch them; with an explicit ``image_size`` they are stretched
            and a warning lists them.
        **source_options: options of one kind of source (others ignore them):

            data_dir: tensorflow-datasets data directory (default: tfds's, ``~/tensorflow_datasets``).
            download: let tensorflow-datasets download and prepare missing data. Off by
                default, so a missing dataset fails at once with instructions instead of
                trying the network.
            channels: for image folders, 1 (grey) or 3 (RGB, default).
            on_bad_file: image folders only: ``"error"`` (default) raises
                :class:`BadImageFileError` listing every file that cannot be decoded as an
                image (corrupt images, stray text files, ...); ``"skip"`` leaves them out,
                warns with the count and paths, and records them in ``info.skipped_files``.
                Never silent.

    Returns:
        A :class:`~kerascnn.pipelines.Dataset`.

    Raises:
        DataNotFoundError: a tfds dataset that is not prepared in ``data_dir`` (with
            ``download=False``, or when the download fails); the message says how to prepare
            it and which local sources exist.
    """
    data_dir, download, channels, on_bad_file = _source_options(source_options)
    if image_size is not None:
        ok = isinstance(image_size, (tuple, list)) and len(image_size) == 2
        ok = ok and all(
            isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in image_size
        )
        if not ok:
            raise UserInputError(
                f"image_size must be (height, width) with positive integers; received image_size={image_size!r}"
            )
        image_size = tuple(image_size)
    if validation_fraction is not None:
        check_choice("split", split, ("train", "validation"))
        native = "train"
    else:
        native = split

    src = os.fspath(source)
    path = pathlib.Path(src).expanduser()
    if src == SAMPLE_NAME:
        ds = _load_sample(native)
    elif path.suffix == ".npz" or path.is_file():
        own = _npz_validation_keys(path) if validation_fraction is not None else None
        if own is not None:
            warnings.warn(
                f"{path}: holds its own validation split ({own[0]} / {own[1]}), which is the "
                f"validation data; validation_fraction={validation_fraction!r} is not applied "
                "(no part of the training arrays is held out)",
                stacklevel=2,
            )
            validation_fraction, native = None, split
        ds = _load_npz(path, native)
    elif path.is_dir():
        ds = _load_folder(path, native, image_size, channels or 3, on_bad_file)
    elif os.sep in src or "/" in src:
        raise DataNotFoundError(
            f"source={src!r} looks like a path but does not exist. {_local_sources_hint(data_dir)}"
        )
    else:
        ds = _load_tfds(src, native, data_dir, download, image_size)

    if image_size is not None and not path.is_dir():
        ds = _resized(ds, image_size)
    if validation_fraction is not None:
        train, val = train_val_split(ds, validation_fraction, seed)
        return train if split == "train" else val
    return ds


def available_sources(data_dir: str | os.PathLike | None = None) -> list[str]:
    """Sources that load on this machine without a network: the bundled sample and any
    tensorflow-datasets datasets prepared in ``data_dir``."""
    found = [SAMPLE_NAME] if SAMPLE_FILE.exists() else []
    root = pathlib.Path(
        data_dir or os.environ.get("TFDS_DATA_DIR", "~/tensorflow_datasets")
    ).expanduser()
    if root.is_dir():
        for info in sorted(root.glob("*/*/dataset_info.json")) + sorted(
            root.glob("*/*/*/dataset_info.json")
        ):
            name = info.relative_to(root).parts[0]
            if name not in found:
                found.append(name)
    return found


# --------------------------------------------------------------------------- helpers
#: :func:`load`'s ``**source_options`` and their defaults
SOURCE_OPTIONS = {"data_dir": None, "download": False, "channels": None, "on_bad_file": "error"}


def _source_options(options: dict) -> tuple:
    """``(data_dir, download, channels, on_bad_file)`` of :func:`load`'s options, checked."""
    options = check_options("load", options, SOURCE_OPTIONS)
    check_choice("on_bad_file", options["on_bad_file"], BAD_FILE_POLICIES)
    return tuple(options[key] for key in SOURCE_OPTIONS)


def _local_sources_hint(data_dir) -> str:
    return (
        f"Sources available offline on this machine: {', '.join(repr(s) for s in available_sources(data_dir))}; "
        "also any .npz file with x/y arrays (e.g. ../shared/data/cifar10/train.npz) and any folder "
        "with one sub-folder of images per class."
    )


def _resize_image(image, size, dtype=None):
    """Resize one image tensor to ``size`` unless it already has it; keep ``dtype`` (tf.data)."""
    import tensorflow as tf

    dtype = dtype or tf.uint8
    size = tuple(int(v) for v in size)

    def resize():
        r = tf.image.resize(image, size, method="bilinear", antialias=True)
        if dtype.is_integer:
            r = tf.clip_by_value(tf.round(r), dtype.min, dtype.max)
        return tf.cast(r, dtype)

    same = tf.reduce_all(tf.equal(tf.shape(image)[:2], size))
    out = tf.cond(same, lambda: tf.cast(image, dtype), resize)
    return tf.ensure_shape(out, [*size, image.shape[-1]])


def resize_images(images: np.ndarray, size) -> np.ndarray:
    """Resize a NumPy batch ``(n, H, W, C)`` to ``size`` as :func:`_resize_image` does
    (bilinear, antialiased, integer images rounded and clipped back to their dtype), with
    ``keras.ops`` on the running backend; images already that size are returned as they are."""
    import keras

    size = tuple(int(v) for v in size)
    if tuple(images.shape[1:3]) == size:
        return images
    out = keras.ops.image.resize(
        images.astype(np.float32), size, interpolation="bilinear", antialias=True
    )
    out = keras.ops.convert_to_numpy(out)
    if np.issubdtype(images.dtype, np.integer):
        info = np.iinfo(images.dtype)
        out = np.clip(np.round(out), info.min, info.max)
    return out.astype(images.dtype)


def _resized(ds: Dataset, image_size) -> Dataset:
    make = ds._make
    read = ds._read
    dtype = None

    def make_resized(indices):
        import tensorflow as tf

        nonlocal dtype
        base = make(indices)
        dtype = base.element_spec[0].dtype
        return base.map(
            lambda x, y: (_resize_image(x, image_size, dtype), y),
            num_parallel_calls=tf.data.AUTOTUNE,
        )

    def read_resized(indices):
        return resize_images(read(indices), image_size)

    info = ds.info
    shape = (*image_size, info.image_shape[-1])
    out = Dataset(
        DatasetInfo(
            info.name, info.split, info.class_names, shape, info.mean, info.std, info.stats_source
        ),
        make_resized,
        ds._labels,
        ds._size,
        ds._indices,
        read=None if read is None else read_resized,
    )
    return out


def array_dataset(
    name, split, x, y, class_names, mean=None, std=None, stats_source=None
) -> Dataset:
    """A :class:`Dataset` named ``name`` / ``split`` over in-memory arrays: images ``x``
    shaped ``(N, H, W, C)`` and integer labels ``y`` (a NumPy array) with ``class_names``;
    ``mean`` / ``std`` / ``stats_source`` are the recorded normalization statistics, if any."""

    def make(indices):
        import tensorflow as tf

        xs, ys = (x, y) if indices is None else (x[indices], y[indices])
        return tf.data.Dataset.from_tensor_slices((xs, ys.astype(np.int32)))

    info = DatasetInfo(name, split, tuple(class_names), tuple(x.shape[1:]), mean, std, stats_source)
    return Dataset(info, make, y.astype(np.int64), len(y), arrays=x)


def _check_arrays(x, y, where: str):
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or not np.issubdtype(x.dtype, np.number):
        raise DataValidationError(
            f"{where}: x must be a numeric array of images shaped (N, H, W) or (N, H, W, C); "
            f"received shape {x.shape}, dtype {x.dtype}"
        )
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if (
        y.ndim != 1
        or not np.issubdtype(y.dtype, np.integer)
        or len(y) != len(x)
        or (len(y) and y.min() < 0)
    ):
        raise DataValidationError(
            f"{where}: y must be non-negative integer class ids shaped (N,) with N = len(x) = {len(x)}; "
            f"received shape {y.shape}, dtype {y.dtype} (one-hot labels: pass y.argmax(-1))"
        )
    return x, y


# --------------------------------------------------------------------------- bundled sample
def sample_metadata() -> dict:
    """How the bundled ``cifar10-sample`` was drawn (seed, procedure, checksums, statistics)."""
    return json.loads(SAMPLE_META.read_text())


def _load_sample(split: str) -> Dataset:
    check_choice("split", split, ("train", "validation"))
    meta = sample_metadata()
    key = "train" if split == "train" else "val"
    with np.load(SAMPLE_FILE) as d:
        x, y = d[f"x_{key}"], d[f"y_{key}"]
    return array_dataset(
        SAMPLE_NAME,
        split,
        x,
        y,
        meta["class_names"],
        tuple(meta["train_mean"]),
        tuple(meta["train_std"]),
        "recorded",
    )


# --------------------------------------------------------------------------- npz files
def _open_npz(path: pathlib.Path):
    """The ``np.load`` archive of ``path``, with one-line errors for a missing or unreadable file."""
    if not path.exists():
        raise DataNotFoundError(
            f"source={os.fspath(path)!r}: no such file. {_local_sources_hint(None)}"
        )
    try:
        archive = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
        raise DataValidationError(
            f"{path}: not a readable NumPy .npz archive ({type(error).__name__}: "
            f"{str(error).splitlines()[0][:120]}); write it with numpy.savez(path, x=..., y=...)"
        ) from None
    if not hasattr(archive, "files"):  # a plain .npy file
        raise DataValidationError(
            f"{path}: a single NumPy array, not an .npz archive; write it with "
            "numpy.savez(path, x=..., y=...)"
        )
    return archive


def _npz_pair(keys, split: str) -> tuple[str, str] | None:
    """The ``(images, labels)`` keys of ``split`` among an npz file's ``keys``, or ``None``."""
    aliases = {"validation": ("val", "valid", "validation"), "train": ("train",)}.get(
        split, (split,)
    )
    pair = next(((f"x_{a}", f"y_{a}") for a in aliases if {f"x_{a}", f"y_{a}"} <= keys), None)
    if pair is None and split == "train" and {"x", "y"} <= keys:
        pair = ("x", "y")
    return pair


def _npz_validation_keys(path: pathlib.Path) -> tuple[str, str] | None:
    """The keys of the npz file's own validation split (``x_val`` / ``y_val``...), or ``None``."""
    with _open_npz(path) as d:
        return _npz_pair(set(d.files), "validation")


def _load_npz(path: pathlib.Path, split: str) -> Dataset:
    with _open_npz(path) as d:
        keys = set(d.files)
        pair = _npz_pair(keys, split)
        if pair is None:
            raise DataValidationError(
                f"{path}: no arrays for split={split!r}. The file holds {sorted(keys)}; kerascnn reads "
                "x / y (split 'train') or x_<split> / y_<split>. To carve a validation part, pass "
                "split='validation', validation_fraction=0.1."
            )
        try:
            x_raw, y_raw = d[pair[0]], d[pair[1]]
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
            raise DataValidationError(
                f"{path}: arrays {pair[0]} / {pair[1]} cannot be read ({type(error).__name__}: "
                f"{str(error).splitlines()[0][:120]}); the file is damaged or holds Python objects"
            ) from None
        x, y = _check_arrays(x_raw, y_raw, f"{path} [{pair[0]}, {pair[1]}]")
        names = [str(n) for n in d["class_names"]] if "class_names" in keys else None
    check_pixels(x, f"{path} [{pair[0]}]")
    if names is None and (path.parent / "classes.json").exists():
        names = [str(n) for n in json.loads((path.parent / "classes.json").read_text())]
    num_classes = int(y.max()) + 1 if len(y) else 0
    if names is None:
        names = [str(i) for i in range(num_classes)]
    else:
        check_labels(y, names, f"{path} [{pair[1]}]")
    return array_dataset(os.fspath(path), split, x, y, names)


# --------------------------------------------------------------------------- image files
def decode_file(path: str | os.PathLike, channels: int) -> np.ndarray:
    """One image file (JPEG, PNG, GIF or BMP; a GIF's first frame) as a uint8 array
    ``(H, W, channels)``, decoded with Pillow (no TensorFlow).

    kerascnn's one image decoder: image folders (both readers, so training and evaluation)
    and ``predict`` on ``.keras`` files and SavedModels all decode files with it.
    High-bit-depth PNGs are brought to 8 bits by keeping each sample's high byte,
    ``v >> 8`` (``floor(v / 256)``): the rule of libpng's ``png_set_strip_16``, of
    TensorFlow's ``decode_png`` and of Pillow's own 16-bit RGB / RGBA / grey + alpha readers,
    applied here to 16-bit greyscale too (Pillow opens those as 16-bit integers, which
    ``convert`` would clip to white). It maps an 8-bit value stored in 16 bits
    (``v * 257``) back to ``v`` and differs from ``round(v * 255 / 65535)`` by at most 1.
    Colour images become grey with Pillow's ``convert("L")`` (ITU-R 601-2 luma), grey ones
    RGB by repeating the channel; an alpha channel is dropped. Raises ``OSError`` /
    ``ValueError`` for a file that is not such an image."""
    from PIL import Image

    with Image.open(path, formats=IMAGE_FORMATS) as image:
        if image.mode in _GREY_16_MODES:
            image = Image.fromarray((np.asarray(image, np.uint16) >> 8).astype(np.uint8))
        array = np.asarray(image.convert("L" if channels == 1 else "RGB"))
    return array[..., None] if channels == 1 else array


def _decode(path, channels: int):
    """:func:`decode_file` in a ``tf.data`` map over file paths (the same decoder)."""
    import tensorflow as tf

    image = tf.numpy_function(
        lambda p: decode_file(os.fsdecode(p), channels), [path], tf.uint8, stateful=False
    )
    return tf.ensure_shape(image, [None, None, channels])


# --------------------------------------------------------------------------- image folders
def _scan_folder(paths: list[str], channels: int) -> tuple[list[int], list[tuple[int, int]]]:
    """Decode every file once (in threads): indices of the bad files, sizes of the good ones."""

    def probe(path):
        try:
            return decode_file(path, channels).shape[:2]
        except (OSError, ValueError, SyntaxError):  # Pillow's errors for bad or truncated files
            return None

    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        found = list(pool.map(probe, paths, chunksize=64))
    bad = [j for j, hw in enumerate(found) if hw is None]
    return bad, [tuple(hw) for hw in found if hw is not None]


def _same_aspect(size, other) -> bool:
    """Whether two ``(height, width)`` sizes have one aspect ratio, within ASPECT_TOLERANCE."""
    a, b = size[0] * other[1], size[1] * other[0]
    return abs(a - b) <= ASPECT_TOLERANCE * max(a, b)


def _folder_image_size(root, paths, sizes, image_size) -> tuple[int, int]:
    """The ``(height, width)`` every image of a folder is resized to: ``image_size`` if given,
    else the most common of ``sizes`` (one per path). Warns when images are resized to a
    guessed size or stretched to a given one; refuses stretching to a guessed size."""
    counts = Counter(sizes)
    size = tuple(image_size) if image_size is not None else counts.most_common(1)[0][0]
    others = [(p, hw) for p, hw in zip(paths, sizes, strict=True) if hw != size]
    stretched = [(p, hw) for p, hw in others if not _same_aspect(hw, size)]
    shown = "x".join(map(str, size))
    listing = ", ".join(f"{p} ({h}x{w})" for p, (h, w) in stretched[:3])
    listing += ", ..." if len(stretched) > 3 else ""
    if image_size is None and stretched:
        raise DataValidationError(
            f"{root}: {len(stretched)} of {len(paths)} images have another aspect ratio than "
            f"the folder's most common size, {shown} (height x width), which every image is "
            f"resized to: {listing}; crop them to that aspect ratio or remove them, or load the "
            "folder with --image-size HxW (image_size=(height, width)) to stretch every image "
            "to one size"
        )
    if image_size is None and others:
        warnings.warn(
            f"{root}: images differ in size; using the most common, {shown} ({counts[size]} of "
            f"{len(paths)} images): the other {len(others)} (same aspect ratio) are resized to "
            "it. Pass --image-size HxW (image_size=(height, width)) to choose another size.",
            stacklevel=4,
        )
    elif stretched:
        warnings.warn(
            f"{root}: {len(stretched)} of {len(paths)} images change aspect ratio when resized "
            f"to image_size={shown} (stretched): {listing}",
            stacklevel=4,
        )
    return size


def _load_folder(
    root: pathlib.Path, split: str, image_size, channels: int, on_bad_file: str
) -> Dataset:
    check_choice("split", split, ("train",))
    check_choice("channels", channels, (1, 3))
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise DataValidationError(
            f"{root}: no class sub-folders; expected one sub-folder of images per class"
        )
    paths, labels = [], []
    for label, d in enumerate(class_dirs):
        for f in sorted(d.rglob("*")):
            # a broken symlink is not a file, but it is not silently dropped: it is a bad file
            listed = f.is_file() or (f.is_symlink() and not f.exists())
            if listed and not any(part.startswith(".") for part in f.relative_to(d).parts):
                paths.append(os.fspath(f))
                labels.append(label)
    if not paths:
        raise DataValidationError(
            f"{root}: the class sub-folders hold no files; expected image files in them"
        )
    present = set(labels)
    empty = [d.name for i, d in enumerate(class_dirs) if i not in present]
    if empty:
        raise DataValidationError(
            f"{root}: class folder(s) {', '.join(empty)} hold no image files; remove them or add "
            "images (every sub-folder is a class)"
        )
    bad, sizes = _scan_folder(paths, channels)
    skipped: tuple[str, ...] = ()
    if bad:
        bad_paths = [paths[j] for j in bad]
        listing = "\n  ".join(bad_paths)
        if on_bad_file == "error":
            raise BadImageFileError(
                f"{root}: {len(bad)} of {len(paths)} files cannot be decoded as images "
                f"(JPEG, PNG, GIF or BMP):\n  {listing}\nRemove them, or pass on_bad_file='skip' "
                "to leave them out (they are then listed in info.skipped_files).",
                bad_paths,
                root=os.fspath(root),
                total=len(paths),
            )
        warnings.warn(
            f"{root}: skipped {len(bad)} of {len(paths)} files that cannot be decoded as images:\n  {listing}",
            stacklevel=3,
        )
        keep = sorted(set(range(len(paths))) - set(bad))
        paths = [paths[j] for j in keep]
        labels = [labels[j] for j in keep]
        skipped = tuple(bad_paths)
        present = set(labels)
        empty = [d.name for i, d in enumerate(class_dirs) if i not in present]
        if empty and paths:
            raise DataValidationError(
                f"{root}: class folder(s) {', '.join(empty)} hold no decodable image once the "
                f"{len(bad)} bad file(s) are skipped"
            )
    if not paths:
        raise DataValidationError(
            f"{root}: no decodable images; every file failed to decode (JPEG, PNG, GIF, BMP)"
        )
    image_size = _folder_image_size(root, paths, sizes, image_size)
    paths_arr = np.array(paths)
    labels_arr = np.array(labels, dtype=np.int64)

    def make(indices):
        import tensorflow as tf

        ps, ys = (
            (paths_arr, labels_arr)
            if indices is None
            else (paths_arr[indices], labels_arr[indices])
        )

        def read(p, y):
            image = _decode(p, channels)
            return _resize_image(image, image_size), tf.cast(y, tf.int32)

        return tf.data.Dataset.from_tensor_slices((ps, ys)).map(
            read, num_parallel_calls=tf.data.AUTOTUNE
        )

    def read_files(indices):
        images = [decode_file(paths_arr[i], channels) for i in indices]
        out = np.empty((len(images), *image_size, channels), np.uint8)
        for k, image in enumerate(images):
            out[k] = resize_images(image[None], image_size)[0]
        return out

    info = DatasetInfo(
        os.fspath(root),
        split,
        tuple(d.name for d in class_dirs),
        (*image_size, channels),
        skipped_files=skipped,
    )
    return Dataset(info, make, labels_arr, len(paths), read=read_files)


# --------------------------------------------------------------------------- tensorflow-datasets
def _tfds_error(name, data_dir, detail: str) -> DataNotFoundError:
    where = (
        f"data_dir={os.fspath(data_dir)!r}"
        if data_dir
        else "the default data_dir (~/tensorflow_datasets or $TFDS_DATA_DIR)"
    )
    return DataNotFoundError(
        f"tensorflow-datasets dataset {name!r} is not prepared in {where} ({detail}). "
        "To prepare it, on a machine with internet access run "
        f"`tfds build {name} --data_dir DIR` (or `tfds.builder({name!r}, data_dir=DIR).download_and_prepare()`) "
        "and copy DIR here, then pass data_dir=DIR; or call load(..., download=True) where the "
        f"network is reachable. {_local_sources_hint(data_dir)}"
    )


def _load_tfds(name: str, split: str, data_dir, download: bool, image_size) -> Dataset:
    try:
        import tensorflow as tf
        import tensorflow_datasets as tfds
    except ImportError:
        raise MissingDependencyError(
            f"source={name!r} is neither 'cifar10-sample' nor an existing .npz file or folder; "
            "as a tensorflow-datasets name it needs TensorFlow and tensorflow-datasets, which "
            f"are not installed here: {INSTALL_HINT}"
        ) from None

    data_dir = os.fspath(pathlib.Path(data_dir).expanduser()) if data_dir is not None else None
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except Exception as e:  # unknown name (DatasetNotFoundError) or a broken config
        raise UserInputError(
            f"source={name!r} is neither 'cifar10-sample', an existing .npz file or folder, nor a "
            f"tensorflow-datasets name ({type(e).__name__}: {str(e).splitlines()[0]}). Known image "
            f"datasets: {', '.join(TFDS_NAMES)}. {_local_sources_hint(data_dir)}"
        ) from None
    features = builder.info.features
    if "image" not in features or "label" not in features:
        raise UserInputError(
            f"tensorflow-datasets dataset {name!r} has no 'image' and 'label' features; "
            f"received features {sorted(features)}"
        )
    shape = tuple(features["image"].shape)
    if (shape[0] is None or shape[1] is None) and image_size is None:
        raise UserInputError(
            f"{name!r} images vary in size; pass image_size=(height, width), e.g. image_size=(160, 160)"
        )

    def tfds_load(**kw):
        try:
            return tfds.load(
                name,
                split=split,
                data_dir=data_dir,
                download=download,
                as_supervised=True,
                shuffle_files=False,
                **kw,
            )
        except AssertionError as e:  # tfds: "could not find data in ..."
            raise _tfds_error(name, data_dir, str(e).split(".")[0]) from None
        except (ValueError, KeyError) as e:
            if "split" in str(e).lower():
                raise UserInputError(
                    f"tensorflow-datasets dataset {name!r} has no split {split!r}: {e}"
                ) from None
            raise
        except Exception as e:
            if download:  # network failure while downloading
                raise _tfds_error(
                    name, data_dir, f"download failed: {type(e).__name__}: {e}"
                ) from None
            raise

    base = tfds_load()  # fails here, before anything else, when the data is absent

    def make(indices):
        ds = tfds_load().map(lambda x, y: (x, tf.cast(y, tf.int32)))
        if indices is None:
            return ds
        n = int(indices.max()) + 1 if len(indices) else 0
        mask = np.zeros(n, dtype=bool)
        mask[indices] = True
        mask = tf.constant(mask)
        return ds.take(n).enumerate().filter(lambda i, xy: tf.gather(mask, i)).map(lambda i, xy: xy)

    def labels():
        ds = tfds_load(decoders={"image": tfds.decode.SkipDecoding()}).map(lambda x, y: y)
        return np.concatenate([b.numpy() for b in ds.batch(8192)] or [np.zeros(0, np.int64)])

    names = tuple(features["label"].names)
    mean, std = PUBLISHED_STATS.get(name, (None, None))
    info = DatasetInfo(name, split, names, shape, mean, std, "published" if mean else None)
    card = int(base.cardinality())
    return Dataset(info, make, labels, card if card >= 0 else None)
