"""Named training recipes: optimizer, learning-rate schedule, loss and metrics, with overrides.

recipe = kerascnn.training.get_recipe("resnet-cifar", epochs=30, lr=0.05)
model.compile(**recipe.compile_args(steps_per_epoch=len(train)))
"""

from __future__ import annotations

import dataclasses
import math

import keras

from kerascnn.checks import check_bool, check_choice, check_float, check_int
from kerascnn.errors import UserInputError

__all__ = [
    "CoupledSGD",
    "DECAY_MODES",
    "get_recipe",
    "OneCycle",
    "OPTIMIZERS",
    "Recipe",
    "RECIPES",
    "SCHEDULES",
    "steps_per_epoch",
]

SCHEDULES = ("constant", "step", "cosine", "onecycle")
OPTIMIZERS = ("sgd", "adam", "adamw")
DECAY_MODES = ("coupled", "decoupled")


@keras.saving.register_keras_serializable(package="kerascnn")
class CoupledSGD(keras.optimizers.SGD):
    """SGD whose weight decay is an L2 term added to the gradient before momentum,
    ``g <- g + weight_decay * w`` (PyTorch's ``SGD(weight_decay=...)``, the recipe of He et
    al. 2016). Keras's ``SGD(weight_decay=...)`` instead decays the weights directly
    (decoupled, Loshchilov & Hutter 2017); with momentum the two differ.

    Args:
        l2_decay: the coupled decay coefficient (``1e-4`` in He et al.).
        decay_vectors: ``False`` leaves every variable of rank <= 1 out of the decay: the
            normalization layers' scales and offsets and the biases (timm's
            ``param_groups_weight_decay`` rule); ``True`` (default) decays every trainable
            variable, as ``torch.optim.SGD(model.parameters(), weight_decay=...)`` and He et
            al.'s fb.resnet.torch do.
        **kwargs: ``keras.optimizers.SGD`` arguments (without ``weight_decay``).
    """

    def __init__(self, l2_decay: float = 0.0, decay_vectors: bool = True, **kwargs):
        if kwargs.get("weight_decay"):
            raise UserInputError(
                "CoupledSGD takes l2_decay=, not weight_decay= (that is Keras's decoupled decay); "
                f"received weight_decay={kwargs['weight_decay']!r}"
            )
        kwargs.pop("weight_decay", None)
        super().__init__(**kwargs)
        ok = isinstance(l2_decay, (int, float)) and not isinstance(l2_decay, bool)
        if not ok or not math.isfinite(l2_decay) or l2_decay < 0:
            raise UserInputError(
                f"l2_decay must be a finite number >= 0; received l2_decay={l2_decay!r}"
            )
        self.l2_decay = float(l2_decay)
        self.decay_vectors = check_bool("decay_vectors", decay_vectors)

    def decays(self, variable) -> bool:
        """Whether ``variable`` gets the L2 term."""
        return bool(self.l2_decay) and (self.decay_vectors or len(variable.shape) > 1)

    def update_step(self, gradient, variable, learning_rate):
        if self.decays(variable):
            gradient = keras.ops.add(gradient, keras.ops.multiply(self.l2_decay, variable))
        return super().update_step(gradient, variable, learning_rate)

    def get_config(self):
        return {
            **super().get_config(),
            "l2_decay": self.l2_decay,
            "decay_vectors": self.decay_vectors,
        }


@keras.saving.register_keras_serializable(package="kerascnn")
class OneCycle(keras.optimizers.schedules.LearningRateSchedule):
    """One-cycle schedule (Smith & Topin 2019): linear warm-up from ``peak / div`` to
    ``peak`` over ``warmup`` of the steps, then linear decay to 0."""

    def __init__(self, peak: float, total_steps: int, warmup: float = 0.25, div: float = 10.0):
        self.peak, self.total_steps, self.warmup, self.div = (
            float(peak),
            int(total_steps),
            float(warmup),
            float(div),
        )

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        up = max(1.0, self.warmup * self.total_steps)
        start = self.peak / self.div
        rising = start + (self.peak - start) * step / up
        falling = self.peak * keras.ops.maximum(
            0.0, (self.total_steps - step) / max(1.0, self.total_steps - up)
        )
        return keras.ops.where(step < up, rising, falling)

    def get_config(self):
        return {
            "peak": self.peak,
            "total_steps": self.total_steps,
            "warmup": self.warmup,
            "div": self.div,
        }


@dataclasses.dataclass(frozen=True)
class Recipe:
    """A training set-up. Every field can be overridden by :func:`get_recipe`.

    Attributes:
        name, description: what it is and where it comes from.
        optimizer: ``"sgd"``, ``"adam"`` or ``"adamw"``.
        lr: peak learning rate (scaled linearly with ``batch_size / 128`` by nobody: set it).
        momentum: SGD momentum (Nesterov off).
        weight_decay: decay coefficient; see ``decay``.
        decay: ``"coupled"`` (L2 term in the gradient, :class:`CoupledSGD`; Adam gets Keras's
            L2-equivalent) or ``"decoupled"`` (Keras's ``weight_decay``: AdamW, SGDW).
        decay_vectors: ``False`` leaves normalization scales / offsets and biases (every
            variable of rank <= 1) out of the decay: :class:`CoupledSGD`'s own rule with
            ``decay="coupled"`` SGD; the optimizer's ``exclude_from_weight_decay`` with
            ``decay="decoupled"`` (SGDW, AdamW; :meth:`make_optimizer` needs the variables).
        schedule: ``"constant"``, ``"step"`` (divide by 10 at ``milestones``, fractions of
            the run), ``"cosine"`` or ``"onecycle"``.
        epochs, batch_size: the run's length and batch.
        label_smoothing: for the cross-entropy.
        augment: the augmentation spec the recipe was published with.
        early_stopping: patience in epochs (``0`` = off).
    """

    name: str
    description: str
    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 0.0
    decay: str = "coupled"
    decay_vectors: bool = True
    schedule: str = "step"
    milestones: tuple[float, ...] = (0.5, 0.75)
    epochs: int = 30
    batch_size: int = 128
    label_smoothing: float = 0.0
    augment: str = ""
    early_stopping: int = 0

    def validate(self) -> Recipe:
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_choice("schedule", self.schedule, SCHEDULES)
        check_choice("decay", self.decay, DECAY_MODES)
        check_bool("decay_vectors", self.decay_vectors)
        for field, low in (
            ("lr", 0.0),
            ("weight_decay", 0.0),
            ("momentum", 0.0),
        ):
            value = getattr(self, field)
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            ok = ok and math.isfinite(value) and value >= low and (field != "lr" or value > 0)
            if not ok:
                relation = ">" if field == "lr" else ">="
                raise UserInputError(
                    f"{field} must be a finite number {relation} {low}; received {field}={value!r}"
                )
        check_float("label_smoothing", self.label_smoothing, 0.0, 1.0)
        milestones = self.milestones
        if not all(
            isinstance(m, (int, float)) and math.isfinite(m) and 0 < m < 1 for m in milestones
        ):
            raise UserInputError(
                f"milestones must be fractions of the run in (0, 1); received milestones={milestones!r}"
            )
        for field in ("epochs", "batch_size"):
            check_int(field, getattr(self, field))
        if not isinstance(self.early_stopping, int) or self.early_stopping < 0:
            raise UserInputError(
                f"early_stopping must be an integer >= 0 (patience in epochs, 0 = off); "
                f"received early_stopping={self.early_stopping!r}"
            )
        return self

    def learning_rate(self, steps_per_epoch: int):
        """The learning rate or schedule for a run of ``epochs * steps_per_epoch`` steps."""
        total = max(1, self.epochs * steps_per_epoch)
        if self.schedule == "constant":
            return self.lr
        if self.schedule == "step":
            bounds = sorted({max(1, int(m * total)) for m in self.milestones})
            values = [self.lr * 0.1**i for i in range(len(bounds) + 1)]
            return keras.optimizers.schedules.PiecewiseConstantDecay(bounds, values)
        if self.schedule == "cosine":
            return keras.optimizers.schedules.CosineDecay(self.lr, total)
        return OneCycle(self.lr, total)

    def make_optimizer(self, steps_per_epoch: int, variables=None) -> keras.optimizers.Optimizer:
        """The optimizer with the learning rate or schedule of :meth:`learning_rate`.
        ``variables``: the model's trainable variables; with ``decay_vectors=False`` and
        decoupled decay, those of rank <= 1 are excluded from it (required then)."""
        optimizer = self._optimizer(self.learning_rate(steps_per_epoch))
        if not self.decay_vectors and self.weight_decay and self.decay == "decoupled":
            if variables is None:
                raise UserInputError(
                    "decay_vectors=False with decoupled decay needs the model's variables: "
                    "call make_optimizer(steps_per_epoch, model.trainable_variables)"
                )
            optimizer.exclude_from_weight_decay(
                var_list=[v for v in variables if len(v.shape) <= 1]
            )
        return optimizer

    def _optimizer(self, lr) -> keras.optimizers.Optimizer:
        wd = self.weight_decay or None
        if self.optimizer == "sgd":
            if self.decay == "coupled":
                return CoupledSGD(
                    l2_decay=self.weight_decay, decay_vectors=self.decay_vectors,
                    learning_rate=lr, momentum=self.momentum,
                )  # fmt: skip
            return keras.optimizers.SGD(learning_rate=lr, momentum=self.momentum, weight_decay=wd)
        if self.optimizer == "adam" and self.decay == "coupled" and wd:
            raise UserInputError(
                "optimizer='adam' with decay='coupled' needs the L2 penalty in the model "
                "(build it with l2=...); use decay='decoupled' (AdamW) for optimizer weight decay; "
                f"received weight_decay={self.weight_decay!r}"
            )
        if self.optimizer == "adamw" or (self.optimizer == "adam" and wd):
            return keras.optimizers.AdamW(learning_rate=lr, weight_decay=self.weight_decay)
        return keras.optimizers.Adam(learning_rate=lr)

    def make_loss(self, one_hot: bool, from_logits: bool = True) -> keras.losses.Loss:
        """The cross-entropy of labels that are one-hot or integer class ids, on logits (or
        probabilities: ``from_logits=False``), with the recipe's ``label_smoothing``."""
        if one_hot or self.label_smoothing:
            if not one_hot:
                raise UserInputError(
                    "label_smoothing needs one-hot labels (train a kerascnn.tasks."
                    "ImageClassifier(label_smoothing=...), which converts integer labels); "
                    f"received label_smoothing={self.label_smoothing!r} with integer labels"
                )
            return keras.losses.CategoricalCrossentropy(
                from_logits=from_logits, label_smoothing=self.label_smoothing
            )
        return keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits)

    def compile_args(
        self, steps_per_epoch: int, one_hot: bool = False, from_logits: bool = True
    ) -> dict:
        """Keyword arguments for ``model.compile``: optimizer, loss (:meth:`make_loss`),
        metrics."""
        metric = (
            keras.metrics.CategoricalAccuracy
            if one_hot
            else keras.metrics.SparseCategoricalAccuracy
        )
        return {
            "optimizer": self.make_optimizer(steps_per_epoch),
            "loss": self.make_loss(one_hot, from_logits),
            "metrics": [metric(name="accuracy")],
        }

    def needs_one_hot(self) -> bool:
        return bool(self.label_smoothing) or any(
            item.split(":")[0] in ("mixup", "cutmix") for item in self.augment.split(",") if item
        )


RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in (
        Recipe(
            "resnet-cifar",
            "He et al. 2016 sec. 4.2: SGD momentum 0.9, lr 0.1, coupled weight decay 1e-4, batch 128, "
            "lr / 10 at 50 % and 75 % of the run (32k/48k of 64k iterations), pad-crop + flip.",
            weight_decay=1e-4,
            epochs=164,
            augment="padcrop,flip",
        ),
        Recipe(
            "resnet-cifar-cosine",
            "resnet-cifar with a cosine schedule instead of the steps.",
            weight_decay=1e-4,
            schedule="cosine",
            epochs=164,
            augment="padcrop,flip",
        ),
        Recipe(
            "vgg-sweep",
            "The lecture's depth sweep: Adam lr 1e-3, 3 epochs, no augmentation.",
            optimizer="adam",
            lr=1e-3,
            schedule="constant",
            epochs=3,
        ),
        Recipe(
            "adamw",
            "AdamW (Loshchilov & Hutter 2017): lr 1e-3, decoupled weight decay 0.05, cosine schedule.",
            optimizer="adamw",
            lr=1e-3,
            weight_decay=0.05,
            decay="decoupled",
            schedule="cosine",
            epochs=50,
            augment="padcrop,flip",
        ),
        Recipe(
            "fast-cifar",
            "Fast one-cycle CIFAR recipe (after Page's ResNet-9 / airbench): SGD momentum 0.9, "
            "one-cycle peak lr 0.4, decoupled decay 5e-4, label smoothing 0.2, batch 512.",
            lr=0.4,
            weight_decay=5e-4,
            decay="decoupled",
            schedule="onecycle",
            epochs=24,
            batch_size=512,
            label_smoothing=0.2,
            augment="padcrop,flip",
        ),
        Recipe(
            "quick",
            "The README's main job: Adam with a one-cycle schedule on the bundled sample, a few minutes on 2 CPU cores.",
            optimizer="adamw",
            lr=3e-3,
            weight_decay=5e-4,
            decay="decoupled",
            schedule="onecycle",
            epochs=15,
            batch_size=64,
            augment="padcrop,flip",
            early_stopping=5,
        ),
    )
}


def get_recipe(name: str, **overrides) -> Recipe:
    """The recipe ``name`` with ``overrides`` (``None`` values are ignored)."""
    if name not in RECIPES:
        import difflib

        close = difflib.get_close_matches(name, list(RECIPES), n=3, cutoff=0.4)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise UserInputError(f"Unknown recipe={name!r}.{hint} Known recipes: {', '.join(RECIPES)}")
    fields = {f.name for f in dataclasses.fields(Recipe)}
    unknown = set(overrides) - fields
    if unknown:
        raise UserInputError(
            f"Unknown recipe field(s) {sorted(unknown)}; allowed: {sorted(fields - {'name', 'description'})}"
        )
    changes = {k: v for k, v in overrides.items() if v is not None}
    if "milestones" in changes:
        changes["milestones"] = tuple(changes["milestones"])
    return dataclasses.replace(RECIPES[name], **changes).validate()


def steps_per_epoch(num_examples: int, batch_size: int) -> int:
    return max(1, math.ceil(num_examples / batch_size))
