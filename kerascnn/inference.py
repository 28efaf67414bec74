"""Top-k classes of image files, from a ``.keras`` model (every backend) or a SavedModel.

    kerascnn.inference.predict_files("runs/resnet20/model.keras", ["cat.png"])
    kerascnn.inference.predict_files("saved_models/resnet20/1", ["cat.png"])   # TensorFlow

A ``.keras`` model is loaded with Keras on the running backend, so this works without
TensorFlow; class names come from ``class_names.txt`` beside the file (``kerascnn train``
writes it into the run folder). A SavedModel folder (``kerascnn.export.serving_export``'s) is
queried through its ``serving_default`` signature (TensorFlow); its class names are in its
``assets.extra``. Both read images with :func:`read_image`, which
decodes them as training does (:func:`kerascnn.pipelines.sources.decode_file`).

:func:`evaluate` measures a model's cross-entropy and accuracy on batches of integer labels,
whether the model outputs logits or probabilities (``kerascnn evaluate``).
"""

from __future__ import annotations

import os
import pathlib

import keras
import numpy as np

from kerascnn.activations import outputs_are_probabilities
from kerascnn.backends import require_tensorflow

__all__ = [
    "CLASS_NAMES_FILE",
    "TTA",
    "evaluate",
    "load_keras_model",
    "predict_files",
    "read_class_names",
    "read_image",
    "top_k_line",
]

CLASS_NAMES_FILE = "class_names.txt"


def top_k_line(file, probabilities, names, top_k: int) -> str:
    """``"FILE: name p, name p, ..."``: the ``top_k`` most probable classes of one image."""
    order = np.argsort(-probabilities)[: max(1, min(top_k, len(probabilities)))]
    ranked = ", ".join(f"{names[i] if names else i} {probabilities[i]:.3f}" for i in order)
    return f"{file}: {ranked}"


def read_class_names(folder) -> list[str] | None:
    """The class names in ``folder/class_names.txt`` (one per line), or ``None``."""
    path = pathlib.Path(folder) / CLASS_NAMES_FILE
    return path.read_text().splitlines() if path.exists() else None


def read_image(file, image_shape) -> np.ndarray:
    """The image file ``file`` as a uint8 array ``(height, width, channels)`` for a model
    whose input is ``image_shape``, decoded as image folders are for training
    (:func:`kerascnn.pipelines.sources.decode_file`: 16-bit PNGs keep each sample's high
    byte). Raises ``FileNotFoundError`` for a missing file and
    :class:`~kerascnn.errors.UserInputError` (a ``ValueError``) naming the file for one that
    is not a decodable image or does not have the model's height and width."""
    from kerascnn.errors import UserInputError
    from kerascnn.pipelines.sources import decode_file

    height, width, channels = (int(d) for d in image_shape)
    if not os.path.isfile(file):
        raise FileNotFoundError(f"image file not found: {file}")
    try:
        image = decode_file(file, channels)
    except (OSError, SyntaxError, ValueError) as error:
        raise UserInputError(f"{file} is not a decodable image ({error})") from None
    if image.shape[:2] != (height, width):
        raise UserInputError(
            f"{file} is {'x'.join(map(str, image.shape))}; the model takes "
            f"{height}x{width}x{channels} images (resize it first)"
        )
    return image


def load_keras_model(path: str | os.PathLike) -> keras.Model:
    """``keras.models.load_model(path, safe_mode=True)`` with one-line errors: a missing
    file (``FileNotFoundError``) and a file that is not a valid ``.keras`` archive (truncated,
    or another format: :class:`~kerascnn.errors.UserInputError`)."""
    import zipfile

    import kerascnn.tasks  # noqa: F401  (registers ImageClassifier for loading)
    from kerascnn.errors import UserInputError

    path = pathlib.Path(path)
    if not path.exists():
        raise FileNotFoundError(f"model file not found: {path}")
    if path.is_dir() or path.suffix != ".keras":
        raise UserInputError(
            f"{path} is not a .keras file; pass a model saved by Keras 3 (RUN/model.keras)"
        )
    if not zipfile.is_zipfile(path):
        raise UserInputError(
            f"{path} is not a valid .keras file (not a complete zip archive: truncated or "
            "another format); use the run folder's other model file or train again"
        )
    try:
        return keras.models.load_model(path, safe_mode=True)
    except (zipfile.BadZipFile, OSError, KeyError, EOFError) as error:
        raise UserInputError(
            f"{path} is not a valid .keras file ({type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else 'unreadable'})"
        ) from None


#: :func:`evaluate`'s test-time augmentations
TTA = ("none", "flip")


def evaluate(model: keras.Model, batches, tta: str = "none") -> tuple[float, float]:
    """``(loss, accuracy)`` of ``model`` on ``batches`` of ``(images, integer labels)``.

    The loss is the mean cross-entropy of the model's outputs, read as probabilities or as
    logits as the model's output layer says (:func:`~kerascnn.activations.outputs_are_probabilities`:
    a softmax-ended model's outputs are not put through a second softmax), without a task's
    label smoothing; the accuracy is the fraction of images whose largest output is the
    label. The model's compiled state is left alone.

    ``batches``: a kerascnn ``Pipeline``, a ``keras.utils.PyDataset`` or a batched
    ``tf.data.Dataset`` (what ``kerascnn.pipelines.build(..., shuffle=False)`` returns).
    ``tta``: ``"none"``, or ``"flip"``: the class probabilities of each image and of its
    mirror image (left-right) averaged, then scored (flip averaging, the test-time
    augmentation of the CIFAR ResNet papers' successors)."""
    from kerascnn.checks import check_choice

    check_choice("tta", tta, TTA)
    from_logits = not outputs_are_probabilities(model)

    def probabilities(images):
        out = model.predict_on_batch(images)
        return keras.ops.convert_to_numpy(keras.ops.softmax(out) if from_logits else out)

    loss_sum, correct, count = 0.0, 0, 0
    for x, y in getattr(batches, "dataset", batches):
        if tta == "flip":
            x = np.asarray(keras.ops.convert_to_numpy(x))
            out, logits = (probabilities(x) + probabilities(x[:, :, ::-1])) / 2, False
        else:
            out, logits = model.predict_on_batch(x), from_logits
        y = np.asarray(keras.ops.convert_to_numpy(y)).astype("int64").reshape(-1)
        losses = keras.losses.sparse_categorical_crossentropy(y, out, from_logits=logits)
        loss_sum += float(np.sum(keras.ops.convert_to_numpy(losses), dtype="float64"))
        correct += int(np.sum(np.argmax(keras.ops.convert_to_numpy(out), axis=-1) == y))
        count += len(y)
    if count == 0:
        from kerascnn.errors import UserInputError

        raise UserInputError("evaluate received no batches (an empty dataset)")
    return loss_sum / count, correct / count


def predict_files(model_path: str | os.PathLike, files, top_k: int = 3) -> list[str]:
    """One line per image file with its ``top_k`` classes and probabilities.

    ``model_path`` is a ``.keras`` file or a SavedModel folder (``serving_export``'s
    ``saved_models/NAME/VERSION``). Images must have the model's input size (a clear error
    names the file and both sizes otherwise)."""
    path = pathlib.Path(model_path)
    if path.is_dir():
        if not (path / "saved_model.pb").is_file():
            raise FileNotFoundError(
                f"no SavedModel at {model_path} (a folder without saved_model.pb); pass "
                "saved_models/NAME/VERSION or a .keras file"
            )
        return _saved_model_predictions(path, files, top_k)
    if path.suffix != ".keras":
        raise FileNotFoundError(
            f"no model at {model_path}: expected a .keras file or a SavedModel folder "
            "(saved_models/NAME/VERSION)"
        )
    model = load_keras_model(path)
    names = read_class_names(path.parent)
    lines = []
    for file in files:
        image = read_image(file, model.inputs[0].shape[1:])
        out = keras.ops.convert_to_numpy(model(image[None].astype("float32"), training=False))
        out = out[0].astype("float64")
        if not outputs_are_probabilities(model):
            out = np.exp(out - out.max())
            out /= out.sum()
        lines.append(top_k_line(file, out, names, top_k))
    return lines


def _saved_model_predictions(saved_model_dir: pathlib.Path, files, top_k: int) -> list[str]:
    """:func:`predict_files` for a SavedModel written by ``serving_export``: its
    ``serving_default`` signature outputs probabilities; its class names are in
    ``assets.extra``."""
    tf = require_tensorflow("Predicting from a SavedModel")

    if not pathlib.Path(saved_model_dir, "saved_model.pb").exists():
        raise FileNotFoundError(
            f"no SavedModel at {saved_model_dir} (expected saved_model.pb there)"
        )
    loaded = tf.saved_model.load(str(saved_model_dir))
    serving = loaded.signatures["serving_default"]
    spec = serving.structured_input_signature[1]["images"]
    names = read_class_names(pathlib.Path(saved_model_dir) / "assets.extra")
    lines = []
    for file in files:
        image = read_image(file, spec.shape[1:])
        out = serving(images=tf.constant(image[None]))
        probabilities = out["probabilities"].numpy()[0]
        lines.append(top_k_line(file, probabilities, names, top_k))
    return lines
