"""Keras callbacks of kerascnn."""

from __future__ import annotations

import time
import warnings

import keras

from kerascnn.checks import check_choice, check_int
from kerascnn.errors import UserInputError
from kerascnn.layers.dropout import DropoutBase, check_rate

__all__ = [
    "DropoutSchedule",
    "EpochLine",
]


class DropoutSchedule(keras.callbacks.Callback):
    """Early or late dropout (Liu et al. 2023): switch the dropout rate at ``cutoff_epoch``.

    ``mode="early"``: the rate is on for epochs ``< cutoff_epoch`` and 0 afterwards (fights
    underfitting); ``mode="late"``: 0 before ``cutoff_epoch`` and on from it (fights
    overfitting). It acts on every layer of kerascnn's dropout family in the model
    (``kerascnn.layers.Dropout``, ``SpatialDropout``, ``StochasticDepth``, DropConnect, ...):
    their rate is a variable read inside the compiled train step, so the change takes effect
    at the next epoch without retracing, under XLA and on JAX. Keras's own dropout layers
    keep a constant rate baked into the graph; they are left alone, with a warning.

    Args:
        mode: ``"early"`` or ``"late"``.
        rate: the rate while dropout is on, for every layer; ``None`` (default) uses each
            layer's own constructor rate (keeps a stochastic-depth decay across blocks).
        cutoff_epoch: the first epoch (0-based, as ``on_epoch_begin`` counts) of the second
            phase.
        verbose: print the switch.

    Reference: Liu et al., "Dropout Reduces Underfitting", ICML 2023.

    Example:
        >>> model.fit(ds, epochs=100, callbacks=[DropoutSchedule("early", rate=0.1, cutoff_epoch=20)])
    """

    def __init__(
        self, mode: str, rate: float | None = None, cutoff_epoch: int = 1, verbose: int = 0
    ):
        super().__init__()
        check_choice("mode", mode, ("early", "late"))
        if rate is not None:
            check_rate(rate)
        check_int("cutoff_epoch", cutoff_epoch, 0)
        self.mode = mode
        self.rate = rate
        self.cutoff_epoch = cutoff_epoch
        self.verbose = verbose
        self._layers: list[DropoutBase] = []

    def _find_layers(self):
        layers = list(self.model._flatten_layers(include_self=False))
        ours = [layer for layer in layers if isinstance(layer, DropoutBase)]
        fixed = [
            layer.name
            for layer in layers
            if isinstance(
                layer,
                (keras.layers.Dropout, keras.layers.GaussianDropout, keras.layers.AlphaDropout),
            )
        ]
        if fixed:
            warnings.warn(
                f"DropoutSchedule cannot change the rate of Keras dropout layers {fixed}: their "
                "rate is a constant in the graph. Use kerascnn.layers.Dropout / SpatialDropout.",
                stacklevel=3,
            )
        if not ours:
            raise UserInputError(
                f"DropoutSchedule found no kerascnn dropout-family layer in model {self.model.name!r}; "
                "use kerascnn.layers.Dropout, SpatialDropout, StochasticDepth or DropConnect layers"
            )
        return ours

    def active(self, epoch: int) -> bool:
        """Whether dropout is on during ``epoch``."""
        before = epoch < self.cutoff_epoch
        return before if self.mode == "early" else not before

    def on_train_begin(self, logs=None):
        self._layers = self._find_layers()

    def on_epoch_begin(self, epoch, logs=None):
        on = self.active(epoch)
        for layer in self._layers:
            layer.set_rate((layer.rate if self.rate is None else self.rate) if on else 0.0)
        if self.verbose:
            print(f"DropoutSchedule: epoch {epoch}: dropout {'on' if on else 'off'}")


class EpochLine(keras.callbacks.Callback):
    """Progress for logs and pipes: before the first training step a line saying that the
    step is being compiled (its first batch takes seconds to tens of seconds, which a
    progress bar shows as a long ETA), and, with ``per_epoch``, one line per epoch:
    ``epoch 2/10 - 41.3 s - accuracy: 0.5123 - loss: 1.3801 - val_accuracy: ...``. Plain
    text: no carriage returns, colours or backspaces (Keras's bar writes those).

    Args:
        epochs: the run's number of epochs.
        say: prints one line (default: ``print`` to stdout, flushed).
        per_epoch: print the epoch lines (else only the compile notice, next to Keras's bar).
    """

    def __init__(self, epochs: int, say=None, per_epoch: bool = True):
        super().__init__()
        self.epochs, self.per_epoch = epochs, per_epoch
        self.say = say or (lambda message: print(message, flush=True))
        self._noticed = False
        self._start = None

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_train_batch_begin(self, batch, logs=None):
        if self._noticed:
            return
        self._noticed = True
        if getattr(self.model, "jit_compile", False):
            self.say("compiling the training step with XLA: the first batch takes longer")
        elif keras.backend.backend() == "tensorflow":
            self.say("tracing the training step: the first batch takes longer")

    def on_epoch_end(self, epoch, logs=None):
        if not self.per_epoch:
            return
        took = f" - {time.perf_counter() - self._start:.1f} s" if self._start else ""
        shown = " - ".join(f"{k}: {float(v):.4f}" for k, v in sorted((logs or {}).items()))
        self.say(f"epoch {epoch + 1}/{self.epochs}{took} - {shown}")
