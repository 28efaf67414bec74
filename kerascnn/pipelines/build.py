"""``build``: from a :class:`~kerascnn.pipelines.Dataset` to batches ready for ``model.fit``.

Two loaders, the same batches' contents:

* ``loader="numpy"`` (:class:`~kerascnn.pipelines.loader.BatchLoader`): shuffle + batch in
  NumPy, on every Keras backend, without TensorFlow. Images stay ``uint8`` unless the
  pipeline normalizes or mixes them (then float32). Augmentation must be in the model.
* ``loader="tf.data"``: the ``tf.data`` pipeline below; needed for augmentation in the input
  pipeline (``placement="pipeline"``) and tensorflow-datasets sources.

``loader="auto"`` takes ``tf.data`` on the TensorFlow backend and wherever only it can do
the job, NumPy otherwise. Order of the ``tf.data`` stages::

    source (uint8) -> cache -> shuffle(seed) -> batch -> float32
        -> augmentation layers (placement="pipeline", called with training=True)
        -> normalization (normalize_in="pipeline") -> labels (sparse / one-hot)
        -> MixUp / CutMix -> prefetch(AUTOTUNE)

With ``placement="model"`` the augmentation layers (and, with ``normalize_in="model"``, the
normalization layer) are returned in :attr:`Pipeline.model_layers`
(:attr:`Pipeline.model_augmentation` and :attr:`Pipeline.model_preprocessing`) for the model:
an :class:`kerascnn.tasks.ImageClassifier` takes them as ``augmentation`` and
``preprocessing`` (``ImageClassifier.from_model(net, ...)`` for a network of your own); ``fit`` calls them
with ``training=True`` and inference and exports skip them (kerascnn's augmentation layers
are the identity unless ``training`` is true). With ``mix_in="model"`` MixUp / CutMix is
returned in :attr:`Pipeline.mix` for the task's ``mixer`` and the batches hold the plain
images and integer labels: the pipeline returns data only.
The augmentation layers see whole batches in both placements, so the two are the same
computation on the same batches.
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np

from kerascnn.backends import backend, require_tensorflow
from kerascnn.checks import check_choice, check_int
from kerascnn.errors import UserInputError
from kerascnn.layers.augment.base import BaseAugmentation
from kerascnn.pipelines.augment_spec import parse_augment
from kerascnn.pipelines.dataset import Dataset, DatasetInfo
from kerascnn.pipelines.loader import BatchLoader
from kerascnn.pipelines.normalization import Normalization, resolve_normalization

PLACEMENTS = ("pipeline", "model")
LABEL_FORMATS = ("sparse", "onehot")
LOADERS = ("auto", "numpy", "tf.data")
SHUFFLE_BUFFER_BYTES = 256 * 2**20


@dataclasses.dataclass
class Pipeline:
    """What :func:`build` returns.

    Attributes:
        dataset: the batches of ``(images, labels)`` for ``model.fit``: a
            :class:`~kerascnn.pipelines.loader.BatchLoader` (``loader="numpy"``) or a batched
            ``tf.data.Dataset`` (``loader="tf.data"``).
        info: the source's :class:`DatasetInfo`.
        normalization: the resolved :class:`Normalization` (reuse it for validation data:
            ``build(val, normalize=train.normalization)``).
        augment_layers: the per-image augmentation layers (in either placement).
        model_layers: layers for the model (augmentation with ``placement="model"``,
            normalization with ``normalize_in="model"``): an ``ImageClassifier``'s
            ``augmentation`` (:attr:`model_augmentation`) and ``preprocessing``
            (:attr:`model_preprocessing`). The pipeline returns data only.
        mix: the kerascnn ``MixUp`` / ``CutMix`` layer of the augmentation, or ``None``:
            applied after batching (``mix_in="pipeline"``) or for the model's train step
            (``mix_in="model"``: ``ImageClassifier(mixer=pipe.mix)``).
        mix_in: ``"pipeline"`` or ``"model"``.
    """

    dataset: object
    info: DatasetInfo
    normalization: Normalization
    augment_layers: list
    model_layers: list
    placement: str
    normalize_in: str
    mix: keras.layers.Layer | None = None
    mix_in: str = "pipeline"

    @property
    def model_augmentation(self) -> list:
        """The augmentation layers for the model (``placement="model"``), else ``[]``."""
        return list(self.augment_layers) if self.placement == "model" else []

    @property
    def model_preprocessing(self) -> list:
        """The normalization layer for the model (``normalize_in="model"``), else ``[]``."""
        return list(self.model_layers[len(self.model_augmentation) :])

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


def _mean_pixel(augment, norm, dataset):
    """The per-channel mean pixel that ``padcrop``'s ``mean`` fill pads with: the
    standardization's own mean (so the padding is zero after it), else the data's. Read only
    when a spec string asks for it (the data's mean may take a pass over the images)."""
    items = [augment] if isinstance(augment, str) else list(augment or ())
    if not any(isinstance(item, str) and ":mean" in item for item in items):
        return None
    return norm.mean if norm.mode == "standardize" else dataset.mean


def build(
    dataset: Dataset,
    *,
    batch_size: int = 128,
    shuffle: bool = True,
    seed: int = 0,
    augment=None,
    placement: str = "pipeline",
    normalize="standardize",
    mean=None,
    std=None,
    normalize_in: str | None = None,
    labels: str | None = None,
    cache: bool | str = True,
    drop_remainder: bool = False,
    deterministic: bool = True,
    shuffle_buffer: int | None = None,
    loader: str = "auto",
    mix_in: str = "pipeline",
) -> Pipeline:
    """Batches of a dataset for ``model.fit``, with augmentation and normalization.

    Args:
        dataset: from :func:`kerascnn.pipelines.load`.
        batch_size: examples per batch.
        shuffle: shuffle (with ``seed``) and reshuffle every epoch; ``False`` for evaluation.
        seed: seed of the shuffle, of the augmentation layers built from a spec string (``seed``,
            ``seed + 1``, ...) and of MixUp / CutMix.
        augment: ``None``, a spec string (``"flip,padcrop,randaugment:2:9,cutout:16,mixup:0.2"``;
            see :mod:`kerascnn.pipelines.augment_spec`) or a list of Keras layers / spec items.
        placement: ``"pipeline"``: the augmentation layers run in ``tf.data`` on the CPU, called
            with ``training=True``; ``"model"``: they are returned in ``model_layers`` for the
            model (an ``ImageClassifier``). MixUp / CutMix: see ``mix_in``.
        normalize: ``"standardize"`` (per-channel ``(x - mean) / std``; ``mean``/``std`` given, or
            the dataset's recorded / published / computed ones), ``"scale"`` (to [0, 1]),
            ``"none"``, or a :class:`Normalization` (e.g. a training pipeline's).
        mean, std: per-channel statistics in pixel units for ``"standardize"``.
        normalize_in: ``"pipeline"`` or ``"model"`` (a ``Normalization`` / ``Rescaling`` layer in
            ``model_layers``, so the model and its exports take raw pixels). Default: same as
            ``placement``. Augmentation in the model needs normalization in the model too.
        labels: ``"sparse"`` (int class ids, for ``SparseCategoricalCrossentropy``) or
            ``"onehot"`` (for ``CategoricalCrossentropy``). Default: one-hot with MixUp /
            CutMix (which need it), else sparse.
        cache: ``tf.data`` only: ``True`` caches decoded images in memory, a string caches to
            that file prefix, ``False`` not at all. Sources already in memory (npz, the
            sample) are never cached.
        drop_remainder: drop a last, smaller batch.
        deterministic: same seed, same batches in the same order (augmentation layers are then
            mapped sequentially, since their random state advances with each call).
            ``False`` maps them in parallel and lets tf.data reorder for speed.
        shuffle_buffer: ``tf.data`` only: examples in the shuffle buffer; default: the whole
            dataset, up to 256 MiB (the NumPy loader always shuffles the whole dataset).
        loader: ``"numpy"``, ``"tf.data"`` or ``"auto"`` (see the module docstring).
            ``"tf.data"`` needs TensorFlow (any Keras backend can train on it).
        mix_in: where MixUp / CutMix of ``augment`` runs: ``"pipeline"`` (after batching;
            labels one-hot) or ``"model"`` (not applied: returned in :attr:`Pipeline.mix`
            for ``ImageClassifier(mixer=...)``, which mixes in its train step; labels stay
            as ``labels`` says, sparse by default).

    Returns:
        A :class:`Pipeline`.
    """
    if not isinstance(dataset, Dataset):
        raise UserInputError(
            f"dataset must be a kerascnn.pipelines.Dataset (from kerascnn.pipelines.load); "
            f"received {type(dataset).__name__}"
        )
    check_int("batch_size", batch_size)
    check_int("seed", seed, minimum=0)
    check_choice("placement", placement, PLACEMENTS)
    normalize_in = placement if normalize_in is None else normalize_in
    check_choice("normalize_in", normalize_in, PLACEMENTS)
    check_choice("loader", loader, LOADERS)
    check_choice("mix_in", mix_in, PLACEMENTS)
    if shuffle_buffer is not None:
        check_int("shuffle_buffer", shuffle_buffer)
    if any(d is None for d in dataset.image_shape):
        raise UserInputError(
            f"images of {dataset.info.name!r} vary in size; load it with image_size=(height, width)"
        )

    norm = resolve_normalization(normalize, dataset, mean, std)
    plan = parse_augment(
        augment, seed=seed, image_shape=dataset.image_shape, num_classes=dataset.num_classes,
        mean=_mean_pixel(augment, norm, dataset),
    )  # fmt: skip
    mix = plan.mix if mix_in == "pipeline" else None  # applied to the batches
    if labels is None:
        labels = "onehot" if mix is not None else "sparse"
    check_choice("labels", labels, LABEL_FORMATS)
    if mix is not None and labels != "onehot":
        raise UserInputError(
            f"{type(plan.mix).__name__} mixes labels, so it needs labels='onehot' (with a categorical loss); "
            f"received labels={labels!r}"
        )
    if placement == "model" and plan.layers and normalize_in == "pipeline":
        raise UserInputError(
            "placement='model' with normalize_in='pipeline' would augment normalized pixels; "
            "use normalize_in='model' (the default for placement='model')"
        )
    in_pipeline = list(plan.layers) if placement == "pipeline" else []
    loader = _choose_loader(loader, dataset, in_pipeline)
    make = _numpy_batches if loader == "numpy" else _tf_batches
    ds = make(
        dataset, batch_size=batch_size, shuffle=shuffle, seed=seed, augment_layers=in_pipeline,
        norm=norm if normalize_in == "pipeline" else None, onehot=labels == "onehot",
        mix=mix, cache=cache, drop_remainder=drop_remainder, deterministic=deterministic,
        shuffle_buffer=shuffle_buffer,
    )  # fmt: skip

    model_layers = list(plan.layers) if placement == "model" else []
    if normalize_in == "model":
        layer = norm.layer()
        if layer is not None:
            model_layers.append(layer)
    return Pipeline(
        ds, dataset.info, norm, list(plan.layers), model_layers, placement, normalize_in, plan.mix,
        mix_in,
    )  # fmt: skip


def _choose_loader(loader: str, dataset: Dataset, augment_layers: list) -> str:
    """``"numpy"`` or ``"tf.data"`` for ``build(loader=...)``; a one-line error when the
    choice cannot work here."""
    needs_tf = None
    if augment_layers:
        needs_tf = "augmentation in the input pipeline (placement='pipeline')"
    elif not dataset.readable:
        needs_tf = f"the tensorflow-datasets source {dataset.info.name!r}"
    if loader == "numpy" and needs_tf:
        raise UserInputError(
            f"loader='numpy' cannot serve {needs_tf}; use loader='tf.data' (needs TensorFlow)"
            + (" or placement='model'" if augment_layers else "")
        )
    if loader == "auto":
        loader = "tf.data" if needs_tf or backend() == "tensorflow" else "numpy"
    if loader == "tf.data":
        require_tensorflow(needs_tf or "loader='tf.data'")
    return loader


def _numpy_batches(
    dataset, *, batch_size, shuffle, seed, norm, onehot, mix, drop_remainder, **_tf_only
) -> BatchLoader:
    """The NumPy loader: raw uint8 batches, normalized / one-hot / mixed when asked."""
    num_classes = dataset.num_classes
    eye = np.eye(num_classes, dtype=np.float32)

    def prepare(x, y):
        if norm is not None or mix is not None:
            x = x.astype(np.float32)
        if norm is not None:
            x = norm(x)
        if onehot:
            y = eye[y]
        if mix is not None:
            x, y = (keras.ops.convert_to_numpy(t) for t in mix(x, y, training=True))
        return x, y

    plain = norm is None and not onehot and mix is None
    return BatchLoader(
        dataset, batch_size, shuffle=shuffle, seed=seed, drop_remainder=drop_remainder,
        transform=None if plain else prepare, random_transform=mix is not None,
    )  # fmt: skip


def _tf_batches(
    dataset, *, batch_size, shuffle, seed, augment_layers, norm, onehot, mix, cache,
    drop_remainder, deterministic, shuffle_buffer,
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
    num_classes = dataset.num_classes

    def prepare(x, y):
        x = augment_batch(tf.cast(x, tf.float32))
        if norm is not None:
            x = norm(x)
        if onehot:
            y = tf.one_hot(y, num_classes, dtype=tf.float32)
        return x, y

    ds = ds.map(prepare, num_parallel_calls=parallel if augment_layers else tf.data.AUTOTUNE)
    if mix is not None:
        ds = ds.map(lambda x, y: mix(x, y, training=True), num_parallel_calls=parallel)
    ds = ds.prefetch(tf.data.AUTOTUNE)
    options = tf.data.Options()
    options.deterministic = deterministic
    return ds.with_options(options)
