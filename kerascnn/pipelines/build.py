"""``build``: from a :class:`~kerascnn.pipelines.Dataset` to batches of data for ``fit``.

The pipeline returns data: batches of images and integer class ids, shuffled, cached,
optionally augmented and normalized on the CPU. What the model does to its input (in-model
augmentation, the standardization that makes it take raw pixels, MixUp / CutMix in its train
step) is the task's: :func:`kerascnn.tasks.input_layers` makes those layers from the same
``augment`` spec, and :class:`kerascnn.tasks.ImageClassifier` takes them.

Two loaders, the same batches' contents:

* ``loader="numpy"`` (:class:`~kerascnn.pipelines.loader.BatchLoader`): shuffle + batch in
  NumPy, on every Keras backend, without TensorFlow. Images stay ``uint8`` unless the
  pipeline normalizes them (then float32). Augmentation must be in the model.
* ``loader="tf.data"``: the ``tf.data`` pipeline below; needed for augmentation in the input
  pipeline (``augment=``) and tensorflow-datasets sources.

``loader="auto"`` takes ``tf.data`` on the TensorFlow backend and wherever only it can do
the job, NumPy otherwise. Order of the ``tf.data`` stages::

    source (uint8) -> cache -> shuffle(seed) -> batch -> float32
        -> augmentation layers (called with training=True) -> normalization
        -> prefetch(AUTOTUNE)

The augmentation layers see whole batches, in the pipeline as in the model, so the two are
the same computation on the same batches.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np

from kerascnn.backends import backend, require_tensorflow
from kerascnn.checks import check_choice, check_int, check_options
from kerascnn.errors import UserInputError
from kerascnn.layers.augment.base import BaseAugmentation
from kerascnn.pipelines.augment_spec import fill_mean, parse_augment
from kerascnn.pipelines.dataset import Dataset, DatasetInfo
from kerascnn.pipelines.loader import BatchLoader
from kerascnn.pipelines.normalization import Normalization, resolve_normalization

LOADERS = ("auto", "numpy", "tf.data")
SHUFFLE_BUFFER_BYTES = 256 * 2**20


@dataclasses.dataclass
class Pipeline:
    """What :func:`build` returns.

    Attributes:
        dataset: the batches of ``(images, integer labels)`` for ``fit``: a
            :class:`~kerascnn.pipelines.loader.BatchLoader` (``loader="numpy"``) or a batched
            ``tf.data.Dataset`` (``loader="tf.data"``).
        info: the source's :class:`DatasetInfo`.
        normalization: the resolved :class:`Normalization` (reuse it for validation data:
            ``build(val, normalize=train.normalization)``).
        augment_layers: the augmentation layers applied in the pipeline.
    """

    dataset: object
    info: DatasetInfo
    normalization: Normalization
    augment_layers: list

    def __iter__(self):
        return iter(self.dataset)

    def __len__(self) -> int:
        """Batches per epoch."""
        if isinstance(self.dataset, BatchLoader):
            return len(self.dataset)
        steps = int(self.dataset.cardinality())
        if steps < 0:
            raise UserInputError("the tf.data pipeline has an unknown number of batches")
        return steps


def augmenter(layers, batch_size: int):
    """A function that applies ``layers`` (with ``training=True``) to a float32 batch in a
    ``tf.data`` map.

    When every layer is one of kerascnn's augmentation layers (built to compile), batches of
    exactly ``batch_size`` images run as one XLA program with that static batch size
    (RandAugment then processes only the images that chose each operation: about 4x faster
    than the plain graph on CPU, ``benchmarks/randaugment_throughput.py``); a smaller last
    batch, and any other layer, runs in the plain graph."""

    def apply(x):
        for layer in layers:
            x = layer(x, training=True)
        return x

    if not layers or not all(isinstance(layer, BaseAugmentation) for layer in layers):
        return apply
    import tensorflow as tf

    compiled = tf.function(apply, jit_compile=True)

    def augment(x):
        full = tf.shape(x)[0] == batch_size
        return tf.cond(
            full, lambda: compiled(tf.ensure_shape(x, [batch_size, *x.shape[1:]])), lambda: apply(x)
        )

    return augment


def _default_shuffle_buffer(dataset: Dataset) -> int:
    shape = dataset.image_shape
    if any(d is None for d in shape):
        return min(len(dataset), 1024)
    per_image = int(np.prod(shape))
    return max(1, min(len(dataset), max(1024, SHUFFLE_BUFFER_BYTES // per_image)))


#: :func:`build`'s ``**options`` and their defaults
BUILD_OPTIONS = {
    "mean": None,
    "std": None,
    "drop_remainder": False,
    "deterministic": True,
    "shuffle_buffer": None,
}
#: former :func:`build` arguments: the model's layers are the task's now
_MOVED_TO_THE_TASK = ("placement", "normalize_in", "mix_in", "labels")


def build(
    dataset: Dataset,
    *,
    batch_size: int = 128,
    shuffle: bool = True,
    seed: int = 0,
    augment=None,
    normalize=None,
    cache: bool | str = True,
    loader: str = "auto",
    **options,
) -> Pipeline:
    """Batches of ``(images, integer labels)`` of a dataset, optionally augmented and
    normalized in the pipeline.

    Args:
        dataset: from :func:`kerascnn.pipelines.load`.
        batch_size: examples per batch.
        shuffle: shuffle (with ``seed``) and reshuffle every epoch; ``False`` for evaluation.
        seed: seed of the shuffle and of the augmentation layers built from a spec string
            (``seed``, ``seed + 1``, ...).
        augment: augmentation applied in the input pipeline, on the CPU, with
            ``training=True``: ``None``, a spec string (``"flip,padcrop,randaugment:2:9"``;
            see :mod:`kerascnn.pipelines.augment_spec`) or a list of Keras layers / spec
            items. MixUp / CutMix mix labels: they are the task's (``mixer=``). For
            augmentation in the model, give the spec to :func:`kerascnn.tasks.input_layers`
            instead.
        normalize: ``"none"`` (raw pixels: a task's preprocessing standardizes them, see
            :func:`kerascnn.tasks.input_layers`), ``"standardize"`` (per-channel
            ``(x - mean) / std``; the ``mean`` / ``std`` options, or the dataset's recorded /
            published / computed ones), ``"scale"`` (to [0, 1]), or a
            :class:`Normalization` (e.g. a training pipeline's). Not given: ``"standardize"``
            with a ``FutureWarning``; the default becomes ``"none"``.
        cache: ``tf.data`` only: ``True`` caches decoded images in memory, a string caches to
            that file prefix, ``False`` not at all. Sources already in memory (npz, the
            sample) are never cached.
        loader: ``"numpy"``, ``"tf.data"`` or ``"auto"`` (see the module docstring).
            ``"tf.data"`` needs TensorFlow (any Keras backend can train on it).
        **options (:data:`BUILD_OPTIONS`):

            mean, std: per-channel statistics in pixel units for ``"standardize"``.
            drop_remainder: drop a last, smaller batch (default False).
            deterministic: same seed, same batches in the same order (default True;
                augmentation layers are then mapped sequentially, since their random state
                advances with each call). ``False`` maps them in parallel and lets tf.data
                reorder for speed.
            shuffle_buffer: ``tf.data`` only: examples in the shuffle buffer; default: the
                whole dataset, up to 256 MiB (the NumPy loader always shuffles the whole
                dataset).

    Returns:
        A :class:`Pipeline`.
    """
    moved = [key for key in _MOVED_TO_THE_TASK if key in options]
    if moved:
        raise UserInputError(
            f"build() no longer takes {moved[0]}= (received {moved[0]}={options[moved[0]]!r}): "
            "the pipeline returns integer labels and the model's layers are the task's: "
            "ImageClassifier(..., **kerascnn.tasks.input_layers(dataset, augment).task_options())"
        )
    options = check_options("build", options, BUILD_OPTIONS)
    if not isinstance(dataset, Dataset):
        raise UserInputError(
            f"dataset must be a kerascnn.pipelines.Dataset (from kerascnn.pipelines.load); "
            f"received {type(dataset).__name__}"
        )
    check_int("batch_size", batch_size)
    check_int("seed", seed, minimum=0)
    check_choice("loader", loader, LOADERS)
    if options["shuffle_buffer"] is not None:
        check_int("shuffle_buffer", options["shuffle_buffer"])
    if any(d is None for d in dataset.image_shape):
        raise UserInputError(
            f"images of {dataset.info.name!r} vary in size; load it with image_size=(height, width)"
        )

    if normalize is None:
        warnings.warn(
            "pipelines.build standardizes by default, and the default becomes normalize='none' "
            "(raw pixels; the task standardizes): pass normalize='none' or 'standardize'",
            FutureWarning,
            stacklevel=2,
        )
        normalize = "standardize"
    norm = resolve_normalization(normalize, dataset, options["mean"], options["std"])
    plan = parse_augment(
        augment, seed=seed, image_shape=dataset.image_shape, num_classes=dataset.num_classes,
        mean=fill_mean(augment, norm, dataset),
    )  # fmt: skip
    if plan.mix is not None:
        raise UserInputError(
            f"{type(plan.mix).__name__} mixes labels, which the pipeline leaves as integer class "
            f"ids: give it to the task (ImageClassifier(mixer=...), kerascnn.tasks.input_layers); "
            f"received augment={augment!r}"
        )
    layers = list(plan.layers)
    loader = _choose_loader(loader, dataset, layers)
    make = _numpy_batches if loader == "numpy" else _tf_batches
    ds = make(
        dataset, batch_size=batch_size, shuffle=shuffle, seed=seed, augment_layers=layers,
        norm=None if norm.mode == "none" else norm, cache=cache,
        drop_remainder=options["drop_remainder"], deterministic=options["deterministic"],
        shuffle_buffer=options["shuffle_buffer"],
    )  # fmt: skip
    return Pipeline(ds, dataset.info, norm, layers)


def _choose_loader(loader: str, dataset: Dataset, augment_layers: list) -> str:
    """``"numpy"`` or ``"tf.data"`` for ``build(loader=...)``; a one-line error when the
    choice cannot work here."""
    needs_tf = None
    if augment_layers:
        needs_tf = "augmentation in the input pipeline (augment=)"
    elif not dataset.readable:
        needs_tf = f"the tensorflow-datasets source {dataset.info.name!r}"
    if loader == "numpy" and needs_tf:
        raise UserInputError(
            f"loader='numpy' cannot serve {needs_tf}; use loader='tf.data' (needs TensorFlow)"
            + (
                " or put the augmentation in the model (kerascnn.tasks.input_layers)"
                if augment_layers
                else ""
            )
        )
    if loader == "auto":
        loader = "tf.data" if needs_tf or backend() == "tensorflow" else "numpy"
    if loader == "tf.data":
        require_tensorflow(needs_tf or "loader='tf.data'")
    return loader


def _numpy_batches(
    dataset, *, batch_size, shuffle, seed, norm, drop_remainder, **_tf_only
) -> BatchLoader:
    """The NumPy loader: raw uint8 batches, normalized (float32) when asked."""

    def prepare(x, y):
        return norm(x.astype(np.float32)), y

    return BatchLoader(
        dataset, batch_size, shuffle=shuffle, seed=seed, drop_remainder=drop_remainder,
        transform=None if norm is None else prepare,
    )  # fmt: skip


def _tf_batches(
    dataset, *, batch_size, shuffle, seed, augment_layers, norm, cache, drop_remainder,
    deterministic, shuffle_buffer,
):  # fmt: skip
    """The ``tf.data`` pipeline of the module docstring."""
    import tensorflow as tf

    ds = dataset.as_tf()
    if cache and not dataset.in_memory:
        ds = ds.cache("" if cache is True else str(cache))
    if shuffle:
        buffer = shuffle_buffer or _default_shuffle_buffer(dataset)
        ds = ds.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)

    parallel = 1 if deterministic else tf.data.AUTOTUNE
    augment_batch = augmenter(augment_layers, batch_size)

    def prepare(x, y):
        x = augment_batch(tf.cast(x, tf.float32))
        if norm is not None:
            x = norm(x)
        return x, y

    ds = ds.map(prepare, num_parallel_calls=parallel if augment_layers else tf.data.AUTOTUNE)
    ds = ds.prefetch(tf.data.AUTOTUNE)
    options = tf.data.Options()
    options.deterministic = deterministic
    return ds.with_options(options)
