"""Checks of a data set before anything trains on it or evaluates with it.

Each check raises :class:`~kerascnn.errors.DataValidationError` (a ``ValueError``) with one
line naming the file and the offending value:

* :func:`check_pixels`: images must be integers in [0, 255] (kerascnn's models take raw
  uint8 pixels, and so do their exports: a model trained on floats in [0, 1] would see 255x
  larger inputs once exported). Float images, NaN / infinite pixels and integers outside
  [0, 255] are refused.
* :func:`check_labels`: labels must be class ids below the number of class names.
* :func:`check_trainable`: a training set needs two classes or more and examples of every
  class (an empty class is a mislabelled file or an empty folder, never intended).
* :func:`check_model_fits`: a model evaluated on a data set must take its image shape and
  output one score per class.
"""

from __future__ import annotations

import numpy as np

from kerascnn.errors import DataValidationError

__all__ = [
    "check_labels",
    "check_model_fits",
    "check_pixels",
    "check_trainable",
]


def check_pixels(x: np.ndarray, where: str) -> None:
    """Refuse images that are not integers in [0, 255] (NumPy array ``(N, H, W, C)``)."""
    if np.issubdtype(x.dtype, np.floating):
        finite = np.isfinite(x)
        if not finite.all():
            bad = int((~finite).sum())
            raise DataValidationError(
                f"{where}: {bad} pixel value(s) are NaN or infinite; store images as uint8 "
                "pixels 0..255"
            )
        low, high = (float(x.min()), float(x.max())) if x.size else (0.0, 0.0)
        raise DataValidationError(
            f"{where}: images are {x.dtype} (values {low:.4g}..{high:.4g}); kerascnn trains and "
            "exports on uint8 pixels 0..255: store them as uint8 "
            "((x * 255).round().astype('uint8') for images in 0..1)"
        )
    if not np.issubdtype(x.dtype, np.integer):
        raise DataValidationError(
            f"{where}: images have dtype {x.dtype}; store them as uint8 pixels 0..255"
        )
    if x.dtype != np.uint8 and x.size:
        low, high = int(x.min()), int(x.max())
        if low < 0 or high > 255:
            raise DataValidationError(
                f"{where}: pixel values go from {low} to {high}; kerascnn takes uint8 pixels "
                "0..255 (rescale them, then .astype('uint8'))"
            )


def check_labels(y: np.ndarray, class_names, where: str) -> None:
    """Refuse labels outside ``0 .. len(class_names) - 1``."""
    if not len(y):
        return
    high = int(y.max())
    if high >= len(class_names):
        index = int(np.argmax(y >= len(class_names)))
        raise DataValidationError(
            f"{where}: label {int(y[index])} (example {index}) but {len(class_names)} class "
            f"names, so labels must be 0..{len(class_names) - 1}"
        )


def check_trainable(train, validation=None) -> None:
    """Refuse a training set with fewer than two classes or with classes that have no
    training example (a ``kerascnn.pipelines.Dataset``; labels are read, not images)."""
    name = train.info.name
    if train.num_classes < 2:
        raise DataValidationError(
            f"{name}: {train.num_classes} class ({', '.join(train.class_names) or 'none'}); "
            "a classifier needs examples of two classes or more"
        )
    counts = np.bincount(train.labels, minlength=train.num_classes)
    if len(counts) > train.num_classes:
        raise DataValidationError(
            f"{name}: label {len(counts) - 1} but {train.num_classes} class names"
        )
    empty = [i for i, c in enumerate(counts) if c == 0]
    if empty:
        shown = ", ".join(f"{i} ({train.class_names[i]!r})" for i in empty[:10])
        more = f" and {len(empty) - 10} more" if len(empty) > 10 else ""
        raise DataValidationError(
            f"{name}: {len(empty)} of {train.num_classes} classes have no training examples: "
            f"{shown}{more}; fix the labels or the class names (classes.json / class_names)"
        )


def check_model_fits(model, dataset, model_name: str, class_names=None) -> None:
    """Refuse evaluating ``model`` on ``dataset`` when its input shape or its number of
    outputs differs from the data's image shape and number of classes, or when the model's
    ``class_names`` (its run folder's, if known) differ from the data's: accuracy would then
    count matches between different classes."""
    want = tuple(model.inputs[0].shape[1:])
    have = tuple(dataset.image_shape)
    fits = len(want) == len(have) and all(
        w is None or w == h for w, h in zip(want, have, strict=False)
    )
    if not fits:
        shape = "x".join("?" if d is None else str(d) for d in want)
        raise DataValidationError(
            f"{model_name} takes {shape} images; {dataset.info.name} has "
            f"{'x'.join(str(d) for d in have)} images"
        )
    outputs = int(model.outputs[0].shape[-1])
    if outputs != dataset.num_classes:
        raise DataValidationError(
            f"{model_name} outputs {outputs} classes; {dataset.info.name} has "
            f"{dataset.num_classes} ({', '.join(dataset.class_names[:10])}"
            f"{', ...' if dataset.num_classes > 10 else ''})"
        )
    if class_names is not None and list(class_names) != list(dataset.class_names):
        raise DataValidationError(
            f"{model_name} was trained on the classes {_listed(class_names)}; "
            f"{dataset.info.name} has {_listed(dataset.class_names)} (another order or other "
            "classes: its labels would be scored against the wrong outputs)"
        )


def _listed(names) -> str:
    names = [str(n) for n in names]
    return "(" + ", ".join(names[:10]) + (", ..." if len(names) > 10 else "") + ")"
