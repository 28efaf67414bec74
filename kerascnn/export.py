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
* ``check_export_target(base_dir, version)``: the checks ``serving_export`` makes on its target
  before writing, for callers that want them before training (the CLI).

Everything that needs TensorFlow imports it through :func:`kerascnn.backends.require_tensorflow`
(one line naming what to install); importing this module does not import TensorFlow.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import time
import warnings

import keras
import numpy as np

from kerascnn.activations import outputs_are_probabilities
from kerascnn.backends import require_tensorflow
from kerascnn.errors import UserInputError
from kerascnn.inference import CLASS_NAMES_FILE, read_class_names

# CLASS_NAMES_FILE goes in assets.extra/, TensorFlow Serving's folder for extras
SIGNATURE_FILE = "signature.json"  # in assets.extra/: image shape and classes of the version
FEATURE = "SavedModel export"
STALE_TEMPORARY_SECONDS = 24 * 3600  # a temporary folder this old is stale whatever its PID
_TEMPORARY = re.compile(r"^\.tmp-(\d+)-(\d+)$")  # .tmp-VERSION-PID, see _write_version


class ExportTargetError(UserInputError):
    """The export target cannot take a new version: an existing file, a version folder given
    as the model folder, an unwritable location, an existing version or another signature.
    Raised by :func:`check_export_target` before anything is written."""


class ExportError(OSError):
    """Writing an export failed (disk full, read-only file system, ...). Nothing was left
    behind: no partial version and no temporary folder. ``errno`` is the OS error's."""


def _input_signature(model, tf):
    inputs = getattr(model, "inputs", None)
    if not inputs:
        raise UserInputError(
            "saved_model needs a built model with known inputs (a functional or Sequential "
            "model with an Input); call the model once on data or pass input_signature; "
            f"received a {type(model).__name__} without inputs"
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
    tf = require_tensorflow(FEATURE)
    signature = input_signature or _input_signature(model, tf)
    archive = keras.export.ExportArchive()
    archive.track(model)

    def serve(*args):
        return model(args[0] if len(args) == 1 else list(args), training=False)

    archive.add_endpoint("serve", serve, input_signature=signature)
    archive.write_out(str(path), verbose=verbose)
    return str(path)


def _versions(base: pathlib.Path) -> list[int]:
    if not base.is_dir():
        return []
    return sorted(int(p.name) for p in base.iterdir() if p.is_dir() and p.name.isdigit())


def _is_saved_model(path: pathlib.Path) -> bool:
    return (path / "saved_model.pb").is_file() or (path / "saved_model.pbtxt").is_file()


# --------------------------------------------------------------------------- the target
def _signature(image_shape, class_names) -> dict:
    """The parts of a ``serving_default`` signature that clients depend on."""
    signature = {}
    if image_shape is not None:
        signature["image_shape"] = [int(d) for d in image_shape]
    if class_names is not None:
        signature["num_classes"] = len(class_names)
        signature["class_names"] = [str(c) for c in class_names]
    return signature


def _describe(signature: dict) -> str:
    """``images (32, 32, 3), 10 classes [airplane, automobile, bird, cat, ...]``."""
    parts = []
    if signature.get("image_shape"):
        parts.append(f"images ({', '.join(str(d) for d in signature['image_shape'])})")
    if "num_classes" in signature:
        parts.append(f"{signature['num_classes']} classes")
    names = signature.get("class_names")
    if names:
        parts[-1] += " [" + ", ".join(names[:4]) + (", ...]" if len(names) > 4 else "]")
    return ", ".join(parts)


def saved_signature(version_dir: str | os.PathLike) -> dict | None:
    """Image shape, number of classes and class names of a version written by
    :func:`serving_export`: from its ``assets.extra/signature.json``, or else (older exports)
    from its ``serving_default`` signature and ``class_names.txt``; None when unreadable."""
    version_dir = pathlib.Path(version_dir)
    path = version_dir / "assets.extra" / SIGNATURE_FILE
    if path.is_file():
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            pass  # fall back to the SavedModel itself
    tf = require_tensorflow(FEATURE)
    try:
        serving = tf.saved_model.load(str(version_dir)).signatures["serving_default"]
        images = next(iter(serving.structured_input_signature[1].values()))
        outputs = serving.structured_outputs
        scores = outputs.get("logits", next(iter(outputs.values())))
        signature = _signature(
            images.shape[1:], read_class_names(pathlib.Path(version_dir) / "assets.extra")
        )
        signature["num_classes"] = int(scores.shape[-1])
        return signature
    except (OSError, KeyError, ValueError, TypeError, StopIteration, tf.errors.OpError):
        return None


def check_export_target(
    base_dir: str | os.PathLike,
    version: int | None = None,
    *,
    image_shape=None,
    class_names=None,
    allow_new_signature: bool = False,
) -> pathlib.Path:
    """Check that ``base_dir`` can take a new version and return its folder, ``base_dir/VERSION``.

    Cheap (no TensorFlow unless an old export without ``signature.json`` must be read), so
    that callers can run it before training. Raises :class:`ExportTargetError` (a
    ``ValueError``) with one line when:

    * ``version`` is not a positive integer or None;
    * ``base_dir`` is an existing file, or lies under one;
    * ``base_dir`` is a version folder (holds a ``saved_model.pb``, or is a numbered folder
      next to such versions): pass the model folder, its parent;
    * ``base_dir``, or its nearest existing ancestor, is not writable (permissions or a
      read-only file system);
    * ``base_dir/version`` already exists (versions are never overwritten);
    * ``image_shape`` or ``class_names`` is given and differs from the latest existing
      version's (a new signature would break that model's clients), unless
      ``allow_new_signature`` is true.

    Args:
        base_dir: the model's folder, e.g. ``saved_models/resnet20``.
        version: the version to write; None for one more than the highest existing one.
        image_shape: ``(height, width, channels)`` of the model to export, if known.
        class_names: its class names (their number is the number of classes), if known.
        allow_new_signature: accept another image shape or other classes than the latest
            version's.
    """
    base = pathlib.Path(base_dir)
    valid = isinstance(version, int) and not isinstance(version, bool) and version >= 1
    if version is not None and not valid:
        raise ExportTargetError(
            "version must be a positive integer, or None for the next free version; "
            f"received version={version!r}"
        )
    if base.exists() and not base.is_dir():
        raise ExportTargetError(
            f"base_dir {base} is an existing file; pass the model's folder, e.g. saved_models/NAME"
        )
    parent_has_versions = base.name.isdigit() and any(
        _is_saved_model(base.parent / str(v)) for v in _versions(base.parent)
    )
    if _is_saved_model(base) or parent_has_versions:
        raise ExportTargetError(
            f"base_dir {base} is a version folder of a SavedModel; pass the model folder "
            f"{base.parent} (versions are written inside it as {base.parent / 'N'})"
        )
    inside = next((p for p in base.parents if _is_saved_model(p)), None)
    if inside is not None:
        raise ExportTargetError(
            f"base_dir {base} is inside the SavedModel {inside}; pass a model folder such as "
            f"{inside.parent}"
        )
    anchor = base.absolute()
    while not anchor.exists():
        anchor = anchor.parent
    if not anchor.is_dir():
        raise ExportTargetError(f"cannot create base_dir {base}: {anchor} is a file")
    if not os.access(anchor, os.W_OK | os.X_OK):
        raise ExportTargetError(
            f"cannot write to base_dir {base}: {anchor} is not writable (permissions or a "
            "read-only file system)"
        )
    versions = _versions(base)
    latest = versions[-1] if versions else 0
    target = base / str(latest + 1 if version is None else version)
    if target.exists() or target.is_symlink():
        raise ExportTargetError(
            f"{target} already exists; versions are never overwritten (omit version to use "
            f"the next free one, {latest + 1})"
        )
    new = _signature(image_shape, class_names)
    if versions and new and not allow_new_signature:
        old = saved_signature(base / str(latest))
        if old is not None and any(old.get(k, new[k]) != new[k] for k in new):
            raise ExportTargetError(
                f"{target} would change the serving signature of {base}: version {latest} has "
                f"{_describe(old)}; the new model has {_describe(new)}; export to another model "
                "folder, or pass --allow-new-signature (allow_new_signature=True) to publish it "
                "anyway"
            )
    return target


def _remove_stale_temporaries(base: pathlib.Path) -> None:
    """Delete the ``.tmp-VERSION-PID`` folders of exports that were killed: those whose
    process no longer runs, or older than ``STALE_TEMPORARY_SECONDS``. Never those of a
    running export (of this process or another one on this machine)."""
    if not base.is_dir():
        return
    for path in base.iterdir():
        match = _TEMPORARY.match(path.name)
        if match is None or int(match.group(2)) == os.getpid():
            continue
        try:
            old = time.time() - path.stat().st_mtime > STALE_TEMPORARY_SECONDS
        except OSError:
            continue
        if old or not _process_alive(int(match.group(2))):
            shutil.rmtree(path, ignore_errors=True)


def _process_alive(pid: int) -> bool:
    if os.name == "nt":  # os.kill would terminate it; rely on the age rule there
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. PermissionError: it exists, owned by another user
        return True
    return True


def _write_version(archive, target: pathlib.Path, extras: dict[str, str], tf) -> None:
    """Write ``archive`` and the ``assets.extra`` files to a temporary folder next to
    ``target`` and rename it into place: a failure or a kill leaves no partial version."""
    tmp = target.parent / f".tmp-{target.name}-{os.getpid()}"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        archive.write_out(str(tmp), verbose=False)
        extra = tmp / "assets.extra"
        extra.mkdir(exist_ok=True)
        for name, text in extras.items():
            (extra / name).write_text(text)
        os.rename(tmp, target)
    except (OSError, tf.errors.OpError) as error:
        reason = getattr(error, "strerror", None) or getattr(error, "message", None) or error
        # TensorFlow's messages carry the op's internals: {{function_node ...}} and [Op:...]
        reason = (re.sub(r"\{\{.*?\}\}\s*|\s*\[Op:\w+\]", "", str(reason)).splitlines() or [""])[0]
        failure = ExportError(
            f"could not write the export {target}: {reason}; nothing was written (free some "
            "space or choose another base_dir)"
        )
        failure.errno = getattr(error, "errno", None)
        raise failure from error
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def serving_export(
    model: keras.Model,
    base_dir: str | os.PathLike,
    version: int | None = None,
    class_names=None,
    fold_batchnorm: bool = True,
    allow_new_signature: bool = False,
) -> str:
    """Export ``model`` for TensorFlow Serving at ``base_dir/VERSION`` and return that path.

    The ``serving_default`` signature takes ``images``: a ``uint8`` batch of raw pixels
    (0..255, as decoded from image files) of the model's input shape, and returns ``logits``
    (float32), ``probabilities`` (softmax of the logits), ``class_ids`` (int64 argmax) and
    ``class_names`` (string). The model must therefore take 0..255 pixels: normalization
    belongs inside it (see ``kerascnn.tasks.input_layers``: the task's preprocessing); a model
    trained on 0..1 floats would get inputs 255 times too large. The ``serve`` endpoint
    takes float32 pixels and returns the logits. Every call runs the model with
    ``training=False``. A model that ends in a softmax (``keras.layers.Softmax``,
    ``Activation("softmax")`` or ``activation="softmax"``, also in a nested model) is
    recognized: its outputs are the probabilities and their logarithms the logits.

    The class names are written to ``VERSION/assets.extra/class_names.txt``, and the image
    shape, number of classes and class names to ``VERSION/assets.extra/signature.json``.

    Args:
        model: a built Keras model with one image input and class scores as output
            (logits, or probabilities when it ends in a softmax).
        base_dir: the model's folder, e.g. ``saved_models/resnet20`` (not a version folder
            such as ``saved_models/resnet20/1``).
        version: a positive integer; default: one more than the highest existing version.
            An existing version is never overwritten.
        class_names: one name per class; default ``"0"``, ``"1"``, ...
        fold_batchnorm: export a copy with every batch norm folded into the convolution
            before it (``kerascnn.fold``; faster inference, benchmarks/README.md). The copy
            is checked against ``model`` on a random batch and used only if every output
            agrees within 1e-4 relative to the largest; otherwise ``model`` is exported
            as it is, with a warning.
        allow_new_signature: accept an image shape or classes that differ from the latest
            existing version's (by default refused: it would break that model's clients).

    Raises:
        ExportTargetError: (a ``ValueError``) the target cannot take the version; see
            :func:`check_export_target`, which runs first, before anything is traced.
        ExportError: (an ``OSError``) writing failed, e.g. the disk is full.
        kerascnn.backends.MissingDependencyError: TensorFlow is not installed.

    The export is written to a temporary folder ``base_dir/.tmp-VERSION-PID`` and renamed
    into place, so an interrupted export leaves no partial version behind; the temporary
    folders of killed exports (their process is gone) are removed by the next export.
    """
    tf = require_tensorflow(FEATURE)
    inputs = getattr(model, "inputs", None)
    if not inputs or len(inputs) != 1 or len(inputs[0].shape) != 4 or None in inputs[0].shape[1:]:
        raise UserInputError(
            "serving_export needs a model with one image input of fixed size (batch, height, "
            f"width, channels); received inputs={inputs!r}"
        )
    image_shape = tuple(inputs[0].shape[1:])
    num_classes = int(model.outputs[0].shape[-1])
    if class_names is None:
        class_names = [str(i) for i in range(num_classes)]
    class_names = [str(c) for c in class_names]
    if len(class_names) != num_classes:
        raise UserInputError(
            f"class_names must have one entry per output ({num_classes}); received "
            f"{len(class_names)} names: class_names={class_names!r}"
        )
    target = check_export_target(
        base_dir,
        version,
        image_shape=image_shape,
        class_names=class_names,
        allow_new_signature=allow_new_signature,
    )
    _remove_stale_temporaries(target.parent)
    probabilities_out = outputs_are_probabilities(model)
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
    extras = {
        CLASS_NAMES_FILE: "\n".join(class_names) + "\n",
        SIGNATURE_FILE: json.dumps(_signature(image_shape, class_names), indent=1) + "\n",
    }
    _write_version(archive, target, extras, tf)
    return str(target)


def _folded_if_equivalent(model: keras.Model, image_shape) -> keras.Model:
    from kerascnn.fold import fold_batchnorm

    try:
        folded = fold_batchnorm(model)
    except (ValueError, TypeError) as error:  # not a functional graph, a layer not clonable
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
