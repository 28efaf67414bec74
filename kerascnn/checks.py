"""The argument checks shared by every part of kerascnn.

Each check returns the (normalized) value or raises :class:`~kerascnn.errors.UserInputError`
(a ``ValueError``) whose message names the argument, the value received and what is allowed,
e.g. ``batch_size must be an integer >= 1; received batch_size=0``. The command line prints
such errors as one line.

This module sits at the bottom of kerascnn's import graph: it imports nothing from kerascnn
but :mod:`kerascnn.errors`, so the zoo, the layers, the pipelines and the training code can
all use it without importing each other. Checks that only make sense for one layer or one
builder stay with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kerascnn.errors import UserInputError

__all__ = [
    "check_bool",
    "check_choice",
    "check_data_format",
    "check_float",
    "check_input_shape",
    "check_jit_compile",
    "check_int",
    "check_options",
    "check_int_list",
    "check_pair",
    "check_seed",
]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_int(name: str, value: Any, minimum: int = 1) -> int:
    """``value`` if it is an int >= ``minimum`` (``bool`` is refused)."""
    if not _is_int(value) or value < minimum:
        raise UserInputError(f"{name} must be an integer >= {minimum}; received {name}={value!r}")
    return value


def check_int_list(
    name: str, value: Any, minimum: int = 1, length: int | None = None, per: str | None = None
) -> tuple[int, ...]:
    """``value`` (a non-empty list or tuple of ints each >= ``minimum``, of exactly ``length``
    entries when given) as a tuple; ``per`` says what one entry stands for in the message
    (``"one per stage"``)."""
    ok = (
        isinstance(value, (list, tuple))
        and len(value) > 0
        and (length is None or len(value) == length)
        and all(_is_int(v) and v >= minimum for v in value)
    )
    if not ok:
        count = "a non-empty list of" if length is None else f"a list of {length}"
        what = f" ({per})" if per else ""
        raise UserInputError(
            f"{name} must be {count} integers >= {minimum}{what}; received {name}={value!r}"
        )
    return tuple(value)


def check_bool(name: str, value: Any) -> bool:
    """``value`` if it is ``True`` or ``False`` (``0``, ``1`` and strings are refused)."""
    if not isinstance(value, bool):
        raise UserInputError(f"{name} must be True or False; received {name}={value!r}")
    return value


def check_float(
    name: str, value: Any, low: float, high: float, high_inclusive: bool = False
) -> float:
    """``value`` as a float in ``[low, high)``, or in ``[low, high]`` with
    ``high_inclusive=True``."""
    ok = _is_number(value) and low <= value and (value <= high if high_inclusive else value < high)
    if not ok:
        bracket = "]" if high_inclusive else ")"
        raise UserInputError(
            f"{name} must be a number in [{low}, {high}{bracket}; received {name}={value!r}"
        )
    return float(value)


def check_choice(name: str, value: Any, allowed: Sequence[Any]) -> Any:
    """``value`` if it is one of ``allowed`` (the message lists them)."""
    if value not in allowed:
        raise UserInputError(
            f"{name} must be one of {', '.join(repr(a) for a in allowed)}; received {name}={value!r}"
        )
    return value


def check_options(function: str, options: dict, defaults: dict) -> dict:
    """A function's ``**options`` with ``defaults`` filled in; a name not in ``defaults`` is
    refused: ``fit() has no option 'x' (received x=1); its options are: a, b``."""
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        name = unknown[0]
        raise UserInputError(
            f"{function}() has no option {name!r} (received {name}={options[name]!r}); "
            f"its options are: {', '.join(defaults)}"
        )
    return {**defaults, **options}


def check_jit_compile(value: Any) -> Any:
    """``value`` if it is ``True``, ``False`` or ``"auto"`` (Keras's ``jit_compile``)."""
    if value != "auto" and not isinstance(value, bool):
        raise UserInputError(
            f"jit_compile must be True, False or 'auto'; received jit_compile={value!r}"
        )
    return value


def check_seed(seed: Any, name: str = "seed") -> int | None:
    """``seed`` if it is ``None`` or an int."""
    if seed is not None and not _is_int(seed):
        raise UserInputError(f"{name} must be None or an integer; received {name}={seed!r}")
    return seed


def check_pair(name: str, value: Any) -> tuple[int, int]:
    """``value`` (a positive int, or a pair of them) as a pair ``(a, b)``."""
    if _is_int(value):
        value = (value, value)
    ok = isinstance(value, (tuple, list)) and len(value) == 2
    if not ok or not all(_is_int(v) and v >= 1 for v in value):
        raise UserInputError(
            f"{name} must be a positive integer or a pair of them; received {name}={value!r}"
        )
    return tuple(value)


def check_input_shape(input_shape: Any) -> tuple[int, int, int]:
    """``input_shape`` as ``(height, width, channels)`` of positive ints (channels-last)."""
    ok = (
        isinstance(input_shape, (tuple, list))
        and len(input_shape) == 3
        and all(_is_int(d) and d > 0 for d in input_shape)
    )
    if not ok:
        raise UserInputError(
            "input_shape must be (height, width, channels) with positive integers "
            f"(channels-last); received input_shape={input_shape!r}"
        )
    return tuple(input_shape)


def check_data_format(data_format: Any) -> str:
    """``"channels_last"`` or ``"channels_first"``; ``None`` means Keras's
    ``keras.config.image_data_format()``."""
    if data_format is None:
        import keras  # here, so that importing the checks does not import Keras

        return keras.config.image_data_format()
    if data_format not in ("channels_last", "channels_first"):
        raise UserInputError(
            "data_format must be None, 'channels_last' or 'channels_first'; "
            f"received data_format={data_format!r}"
        )
    return data_format
