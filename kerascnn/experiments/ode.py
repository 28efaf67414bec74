"""``ode-vs-resnet``: a ResNet with T blocks against an ODE block with T steps (Chen et al. 2018).

Three networks with the same stem and head (``kerascnn.zoo.odenet``):

* ``resnet``: T residual blocks ``h + f_k(h)``, each function with its own weights;
* ``ode``: one function ``f(h, t)`` integrated over ``[0, 1]`` in T steps (Euler: the same
  computation as the ResNet with tied weights and a time input; RK4: 4 evaluations a step),
  with about 1/T of the ResNet's block parameters;
* ``ode-wide``: the ODE block with the hidden width of ``f`` widened so that the whole
  network has as many parameters as the ResNet ("at equal parameters").
"""

from __future__ import annotations

import time

import keras
import numpy as np

from kerascnn.experiments import common

__all__ = [
    "add_arguments",
    "COLUMNS",
    "FULL",
    "matched_hidden",
    "QUICK",
    "run",
]

FULL = {
    "steps": 6,
    "filters": 64,
    "method": "rk4",
    "epochs": 15,
    "batch_size": 128,
    "lr": 1e-3,
    "subset": None,
    "val_subset": None,
}
QUICK = {
    "steps": 4,
    "filters": 32,
    "method": "rk4",
    "epochs": 3,
    "batch_size": 64,
    "subset": 3000,
    "val_subset": 1000,
}
COLUMNS = [
    "model",
    "block",
    "steps",
    "method",
    "hidden",
    "params",
    "function_evaluations",
    "epoch",
    "train_loss",
    "train_accuracy",
    "val_loss",
    "val_accuracy",
    "epoch_seconds",
]


def matched_hidden(filters: int, steps: int, method: str, input_shape, num_classes) -> int:
    """Hidden width of the ODE function that gives an ``odenet`` the parameter count of the
    ResNet with ``steps`` blocks (parameters are linear in the hidden width)."""
    from kerascnn.zoo import odenet

    def params(**kw):
        keras.utils.clear_session(free_memory=False)
        return odenet(
            filters=filters, steps=steps, method=method, input_shape=input_shape,
            num_classes=num_classes, **kw,
        ).count_params()  # fmt: skip

    target = params(block="resnet")
    p1, p2 = params(hidden=filters), params(hidden=2 * filters)
    slope = (p2 - p1) / filters
    return max(1, int(round(filters + (target - p1) / slope)))


def run(**options) -> dict:
    """Train the three networks; writes ``ode-vs-resnet.csv``, ``ode-vs-resnet.png`` and
    ``run.json``."""
    from kerascnn.layers.ode import evaluations_per_step
    from kerascnn.training import get_recipe
    from kerascnn.zoo import odenet

    name = "ode-vs-resnet"
    started = time.time()
    o = common.resolve(options, FULL, QUICK)
    steps, filters = common.parse_ints([o["steps"], o["filters"]], "steps/filters")
    out = common.output_dir(o["out"], name)
    data = common.load_experiment_data(name, o)
    shape, classes = data.image_shape, data.num_classes
    wide = matched_hidden(filters, steps, o["method"], shape, classes)
    variants = [
        ("resnet", {"block": "resnet"}, filters, steps),
        ("ode", {"block": "ode", "method": o["method"]}, filters, steps * evaluations_per_step(o["method"])),
        ("ode-wide", {"block": "ode", "method": o["method"], "hidden": wide}, wide,
         steps * evaluations_per_step(o["method"])),
    ]  # fmt: skip
    recipe = get_recipe("vgg-sweep", epochs=o["epochs"], batch_size=o["batch_size"], lr=o["lr"])
    train_pipe, val_pipe, layers = data.pipelines(o["batch_size"], seed=o["seed"])
    rows, curves = [], {}
    for label, kwargs, hidden, evaluations in variants:
        common.reset_keras(o["seed"])
        model = odenet(
            filters=filters, steps=steps, input_shape=shape, num_classes=classes, **kwargs
        )
        params = model.count_params()
        result = common.train(common.classifier(model, layers), train_pipe, val_pipe, recipe)
        h = result.history
        curves[label] = (params, h)
        rows += [
            {
                "model": label,
                "block": kwargs["block"],
                "steps": steps,
                "method": kwargs.get("method", "(resnet)"),
                "hidden": hidden,
                "params": params,
                "function_evaluations": evaluations,
                **epoch,
            }
            for epoch in result.epoch_rows()
        ]
        common.log(
            name,
            f"{label}: {params:,} params, val acc {h['val_accuracy'][-1]:.3f}, "
            f"{result.seconds:.1f} s",
        )
    csv_path = common.write_csv(out / f"{name}.csv", rows, COLUMNS)

    plt = common.pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for label, (params, h) in curves.items():
        epochs = np.arange(1, len(h["loss"]) + 1)
        text = f"{label} ({params:,} params)"
        axes[0].plot(epochs, h["loss"], "o-", label=text)
        axes[1].plot(epochs, h["val_accuracy"], "o-", label=text)
    axes[0].set_ylabel("training loss")
    axes[1].set_ylabel("validation accuracy")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(
        f"ResNet with {steps} blocks vs ODE block with {steps} {o['method']} steps", fontsize=10
    )
    note = f"Adam lr {o['lr']}, state width {filters}, ode-wide hidden width {wide}"
    return common.finish_run(fig, name, o, data, out, started, note, csv=csv_path)


def add_arguments(parser) -> None:
    common.add_common_arguments(parser, FULL, QUICK)
    parser.add_argument("--steps", type=int, help="T: residual blocks / solver steps")
    parser.add_argument("--filters", type=int, help="channels of the stem and the ODE state")
    parser.add_argument("--method", choices=("euler", "midpoint", "rk4"), help="ODE solver")
    parser.add_argument("--lr", type=float, help="Adam learning rate (default 1e-3)")
