"""Deterministic, serving-ready exports.

* ``saved_model(model, path)``: the minimal SavedModel whose ``serve`` endpoint (also
  ``serving_default``) runs the model with ``training=False``, so augmentation and dropout
  are off and BatchNormalization uses its moving statistics.
* ``serving_export(model, "saved_models/NAME")``: the layout TensorFlow Serving expects
  (``saved_models/NAME/VERSION/``, never overwriting a version), a ``serving_default``
  signature taking raw ``uint8`` pixel batches named ``images`` and returning ``logits``,
  ``probabilities``, ``class_ids`` and ``class_names``; class names stored with the model.
* ``onnx_export(model, path)``: ONNX through Keras's exporter (needs the ``onnx`` extra).
* ``predict_files(saved_model_dir, files)``: top-k classes of image files, with TensorFlow only.
"""

from __future__ import annotations

import os
import pathlib
import shutil

import keras
import numpy as np

CLASS_NAMES_FILE = "class_names.txt"  # in assets.extra/, TensorFlow Serving's folder for extras


def _input_signature(model):
    import tensorflow as tf

    inputs = getattr(model, "inputs", None)
    if not inputs:
        raise ValueError(
            "saved_model needs a built model with known inputs (a functional or Sequential "
            "model with an Input); call the model once on data or pass input_signature"
        )
    return [tf.TensorSpec(shape=t.shape, dtype=t.dtype, name=t.name.split(":")[0]) for t in inputs]


def saved_model(
    model: keras.Model, path: str | os.PathLike, input_signature=None, verbose: bool = False
) -> str:
    """Write ``model`` as a SavedModel at ``path`` with a deterministic serving endpoint.

    Args:
        model: a built Keras model.
        path: the SavedModel folder to write.
        input_signature: list of ``tf.TensorSpec``; by default the model's inputs with a
            free batch dimension.
        verbose: print the endpoint summary.

    Returns:
        ``path`` as a string. Load with ``tf.saved_model.load(path)`` and call
        ``.serve(x)`` or ``.signatures["serving_default"]``.
    """
    signature = input_signature or _input_signature(model)
    archive = keras.export.ExportArchive()
    archive.track(model)

    def serve(*args):
        return model(args[0] if len(args) == 1 else list(args), training=False)

    archive.add_endpoint("serve", serve, input_signature=signature)
    archive.write_out(str(path), verbose=verbose)
    return str(path)


def _versions(base: pathlib.Path) -> list[int]:
    if not base.exists():
        return []
    return sorted(int(p.name) for p in base.iterdir() if p.is_dir() and p.name.isdigit())


def _outputs_are_probabilities(model: keras.Model) -> bool:
    last = model.layers[-1]
    while isinstance(last, keras.Model):
        last = last.layers[-1]
    activation = getattr(last, "activation", None)
    return getattr(activation, "__name__", "") == "softmax"


def serving_export(
    model: keras.Model,
    base_dir: str | os.PathLike,
    version: int | None = None,
    class_names=None,
    fold_batchnorm: bool = True,
) -> str:
    """Export ``model`` for TensorFlow Serving at ``base_dir/VERSION`` and return that path.

    The ``serving_default`` signature takes ``images``: a ``uint8`` batch of raw pixels of
    the model's input shape (normalization belongs inside the model: see
    ``kerascnn.pipelines.build(normalize_in="model")``), and returns ``logits`` (float32),
    ``probabilities`` (softmax of the logits), ``class_ids`` (int64 argmax) and
    ``class_names`` (string). The ``serve`` endpoint takes float32 pixels and returns the
    logits. Every call runs the model with ``training=False``. The class names are also
    written to ``VERSION/assets.extra/class_names.txt``.

    Args:
        model: a built Keras model with one image input and class scores as output
            (logits, or probabilities when its last layer is a softmax).
        base_dir: the model's folder, e.g. ``saved_models/resnet20``.
        version: a positive integer; default: one more than the highest existing version.
            An existing version is never overwritten (``FileExistsError``).
        class_names: one name per class; default ``"0"``, ``"1"``, ...
        fold_batchnorm: export a copy with every batch norm folded into the convolution
            before it (``kerascnn.fold``; faster inference, benchmarks/README.md). The copy
            is checked against ``model`` on a random batch and used only if every output
            agrees within 1e-4 relative to the largest; otherwise ``model`` is exported
            as it is, with a warning.

    The export is written to a temporary folder next to the target and renamed into place,
    so an interrupted export leaves no partial version behind.
    """
    import tensorflow as tf

    base = pathlib.Path(base_dir)
    if version is None:
        version = (_versions(base) or [0])[-1] + 1
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"version must be a positive integer; received version={version!r}")
    target = base / str(version)
    if target.exists():
        raise FileExistsError(
            f"{target} already exists; versions are never overwritten (omit version to use "
            f"the next free one, {(_versions(base) or [0])[-1] + 1})"
        )
    inputs = getattr(model, "inputs", None)
    if not inputs or len(inputs) != 1 or len(inputs[0].shape) != 4 or None in inputs[0].shape[1:]:
        raise ValueError(
            "serving_export needs a model with one image input of fixed size (batch, height, "
            f"width, channels); received inputs={inputs!r}"
        )
    image_shape = tuple(inputs[0].shape[1:])
    num_classes = int(model.outputs[0].shape[-1])
    if class_names is None:
        class_names = [str(i) for i in range(num_classes)]
    class_names = [str(c) for c in class_names]
    if len(class_names) != num_classes:
        raise ValueError(
            f"class_names must have one entry per output ({num_classes}); received {len(class_names)} names"
        )
    probabilities_out = _outputs_are_probabilities(model)
    if fold_batchnorm:
        model = _folded_if_equivalent(model, image_shape)

    archive = keras.export.ExportArchive()
    archive.track(model)
    names = tf.constant(class_names)

    expected_shape = "(batch, " + ", ".join(str(d) for d in image_shape) + ")"

    def checked(pixels):
        # The signature's shape is not enforced when a model accepts other sizes (global
        # pooling does), so refuse them here with a message that names the expected shape.
        shape = tf.shape(pixels)
        padded = tf.concat([shape, tf.zeros([4], tf.int32)], 0)[:4]
        ok = tf.logical_and(
            tf.equal(tf.size(shape), 4), tf.reduce_all(tf.equal(padded[1:], image_shape))
        )
        message = f"images must have shape {expected_shape}; received shape"
        with tf.control_dependencies([tf.debugging.Assert(ok, [message, shape])]):
            return tf.identity(pixels)

    def scores(pixels):
        out = tf.cast(model(tf.cast(checked(pixels), tf.float32), training=False), tf.float32)
        if probabilities_out:
            return tf.math.log(tf.maximum(out, 1e-30)), out
        return out, tf.nn.softmax(out, axis=-1)

    def serving_default(images):
        logits, probabilities = scores(images)
        class_ids = tf.argmax(logits, axis=-1)
        return {
            "logits": logits,
            "probabilities": probabilities,
            "class_ids": class_ids,
            "class_names": tf.gather(names, class_ids),
        }

    def serve(pixels):
        return scores(pixels)[0]

    archive.add_endpoint(
        "serving_default", serving_default,
        input_signature=[tf.TensorSpec((None, *image_shape), tf.uint8, name="images")],
    )  # fmt: skip
    archive.add_endpoint(
        "serve",
        serve,
        input_signature=[tf.TensorSpec((None, *image_shape), tf.float32, name="pixels")],
    )
    base.mkdir(parents=True, exist_ok=True)
    tmp = base / f".tmp-{version}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        archive.write_out(str(tmp), verbose=False)
        extra = tmp / "assets.extra"
        extra.mkdir(exist_ok=True)
        (extra / CLASS_NAMES_FILE).write_text("\n".join(class_names) + "\n")
        os.rename(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return str(target)


def _folded_if_equivalent(model: keras.Model, image_shape) -> keras.Model:
    import warnings

    from kerascnn.fold import fold_batchnorm

    try:
        folded = fold_batchnorm(model)
    except ValueError as error:  # not a functional graph
        warnings.warn(f"exporting without folding batch norms: {error}", stacklevel=3)
        return model
    x = np.random.default_rng(0).integers(0, 256, size=(8, *image_shape)).astype("float32")
    expected = keras.ops.convert_to_numpy(model(x, training=False))
    got = keras.ops.convert_to_numpy(folded(x, training=False))
    tolerance = 1e-4 * max(1.0, float(np.abs(expected).max()))
    if not np.all(np.abs(got - expected) <= tolerance):
        warnings.warn(
            "exporting without folding batch norms: the folded model's outputs differ", stacklevel=3
        )
        return model
    return folded


def onnx_export(model: keras.Model, path: str | os.PathLike) -> str:
    """Write ``model`` as ONNX (inference mode) with Keras's exporter (tf2onnx on the
    TensorFlow backend). Install the ``onnx`` extra: ``pip install 'kerascnn[onnx]'``."""
    try:
        import tf2onnx  # noqa: F401
    except ImportError as error:
        raise ImportError("ONNX export needs tf2onnx: pip install 'kerascnn[onnx]'") from error
    shape = tuple(model.inputs[0].shape[1:])
    model(np.zeros((1, *shape), "float32"), training=False)  # Keras's exporter needs a called model
    model.export(str(path), format="onnx", verbose=False)
    return str(path)


def load_class_names(saved_model_dir: str | os.PathLike) -> list[str] | None:
    path = pathlib.Path(saved_model_dir) / "assets.extra" / CLASS_NAMES_FILE
    return path.read_text().splitlines() if path.exists() else None


def predict_files(saved_model_dir: str | os.PathLike, files, top_k: int = 3) -> list[str]:
    """Top-k predictions for image files from a SavedModel written by :func:`serving_export`.

    Images are decoded with TensorFlow; an image of another size than the model's input
    is refused with a message naming the file and both sizes (resize it first).
    """
    import tensorflow as tf

    if not pathlib.Path(saved_model_dir, "saved_model.pb").exists():
        raise FileNotFoundError(
            f"no SavedModel at {saved_model_dir} (expected saved_model.pb there)"
        )
    loaded = tf.saved_model.load(str(saved_model_dir))
    serving = loaded.signatures["serving_default"]
    spec = serving.structured_input_signature[1]["images"]
    height, width, channels = spec.shape[1:]
    names = load_class_names(saved_model_dir)
    lines = []
    for file in files:
        if not os.path.exists(file):
            raise FileNotFoundError(f"image file not found: {file}")
        try:
            image = tf.io.decode_image(
                tf.io.read_file(str(file)), channels=channels, expand_animations=False
            )
        except tf.errors.InvalidArgumentError as error:
            raise ValueError(f"{file} is not a decodable image") from error
        if tuple(image.shape[:2]) != (height, width):
            raise ValueError(
                f"{file} is {image.shape[0]}x{image.shape[1]}; the model takes {height}x{width} images"
            )
        out = serving(images=image[None])
        probabilities = out["probabilities"].numpy()[0]
        order = np.argsort(-probabilities)[: max(1, min(top_k, len(probabilities)))]
        ranked = ", ".join(f"{names[i] if names else i} {probabilities[i]:.3f}" for i in order)
        lines.append(f"{file}: {ranked}")
    return lines
