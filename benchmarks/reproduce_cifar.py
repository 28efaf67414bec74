"""Reproduce He et al. 2016's CIFAR-10 ResNets with kerascnn, beside a PyTorch reference.

One run trains, for each depth, kerascnn's product path and a PyTorch reference on the same
seeded split, and records per-epoch validation error and wall time of both:

* data: the paper's protocol, 45,000 training / 5,000 validation images, a stratified split
  (``kerascnn.pipelines.stratified_split_indices``, seed 0) of the CIFAR-10 training set,
  read from ``train_jpeg.npz`` (JPEG bytes, decoded with Pillow) or ``train.npz`` (pixels);
  the format is detected by the file's keys;
* kerascnn: ``kerascnn.zoo.resnet(depth=D)`` with ``kerascnn.tasks.input_layers(train,
  "padcrop:4:mean,flip")`` in the model, fed by ``kerascnn.pipelines.build(...,
  normalize="none", loader="numpy")``,
  trained by ``kerascnn.training.fit(..., out_dir=<state>)`` with ``get_recipe("resnet-cifar")``
  (Keras on TensorFlow by default, ``--keras-backend jax`` too; ``--jit auto``: XLA on a GPU,
  off on the CPU, as ``kerascnn train``);
* PyTorch reference: ``benchmarks.nets.torch_cifar_resnet(D)`` (He init, option A shortcuts),
  channels_last, SGD momentum 0.9, lr 0.1 divided by 10 at the recipe's own boundaries (read
  from the kerascnn recipe's schedule, so both change at the same step), coupled weight decay
  1e-4 (``torch.optim.SGD(weight_decay=...)``), batch 128, per-channel standardization with
  the training split's mean/std, pad 4 + random 32x32 crop + horizontal flip, on the device.

Both sides get the same options: ``--pad-fill mean`` (default: the padding is zero after
standardization, He et al.'s choice; kerascnn's ``padcrop:4:mean``), ``zero`` (black pixels)
or ``reflect``; ``--no-decay-vectors`` leaves BN scales / offsets and biases out of the
decay (kerascnn's ``CoupledSGD(decay_vectors=False)``, torch parameter groups);
``--precision mixed_bfloat16`` (Keras policy, torch autocast). kerascnn only:
``--bn-momentum`` / ``--bn-epsilon`` (through the zoo's ``norm=`` hook).

Resuming: each side keeps its state after every epoch under ``--state-dir/RUN/``
(kerascnn: its ``training.fit`` run folder, whose backup holds the weights, optimizer and
augmentation seeds; PyTorch: one ``torch.save`` file with the weights, optimizer, random
generators, step and logged epochs, written atomically). Rerunning the same command with
the same ``--run`` resumes each side from its last finished epoch, keeps the epochs the
results JSON already holds, and skips sides that finished. ``--stop-after-epochs N`` stops
each side after N epochs of this invocation (a long run cut into sessions). On the 2-core
CPU, for example (the paired short run, then the full one):

    nohup python benchmarks/reproduce_cifar.py --data ../shared/data/cifar10/train.npz \
        --epochs 30 --run reproduce-cifar-cpu-30ep --state-dir /work/runs/reproduce_cifar \
        > /work/runs/reproduce-cifar-cpu-30ep.log 2>&1 &
    nohup python benchmarks/reproduce_cifar.py --data ../shared/data/cifar10/train.npz \
        --only kerascnn --run reproduce-cifar-cpu-164ep ... &

``--fit-vs-step DEPTH`` (JAX only): on the same data, steady-state ``fit`` training
images/s of kerascnn ResNet-DEPTH (recipe resnet-cifar, 5 epochs, XLA on, augmentation in the
model, no validation) against one jitted stateless train step (``model.stateless_call`` +
``jax.value_and_grad`` + ``optimizer.stateless_apply``, one batch already on the device);
reports ``fit / step`` (target >= 0.9). It runs before the reproduction, alone on the device.

Output: ``<out>/RUN.json`` (default RUN ``<date>-reproduce-cifar-<device>[-quick]``) (machine, versions, command,
seeds, split description with per-class counts and the SHA-256 of the validation indices, per
depth and side: per-epoch validation error %, train loss, wall seconds, training images/s, final
and best error, total seconds, parameter count; He et al.'s Table 6 errors), rewritten after
every epoch so a run cut short still leaves its epochs, and a README-ready markdown table
printed at the end. ``--parallel`` trains the two sides in two processes at once (each writes
``...-kerascnn.json`` / ``...-torch.json``, merged at the end): on a GPU that a batch-128
ResNet-20 leaves mostly idle it nearly halves the wall time, but each side's seconds then
include the other's contention (the JSON says ``"concurrent": true``).

Time on the GPU machine (one H200; estimates from DEVICE.md's figures, not yet measured):
kerascnn ResNet-20 float32 ``fit`` ran at 42,000 img/s there (1.18 s per 50,000-image epoch,
217 s for the 164-epoch recipe), so 164 epochs on 45,000 images take about
164 x (1.07 + ~0.1 validation) = ~190 s plus ~15 s of compilation. PyTorch eager ran ResNet-56
at ~6,500 img/s; scaled by depth, ResNet-20 at ~18,000 img/s: ~2.5 s per epoch, ~420 s per run.
Deeper nets scale roughly with depth; per run (164 epochs), kerascnn / PyTorch:

    ResNet-20   ~0.2k / ~0.4k s        ResNet-56    ~0.5k / ~1.2k s
    ResNet-32   ~0.3k / ~0.7k s        ResNet-110   ~1.0k / ~2.4k s
    ResNet-44   ~0.4k / ~1.0k s        (--epochs 182, the paper's 64k iterations: +11 %)

``--fit-vs-step 56``: 5 fit epochs of 45,000 images (~12,000 img/s float32) + 5 x 100 steps
+ two compilations: about 60 s. A session has 15 minutes of device time and at most 10
minutes per command, so one session fits the fit-vs-step check and both sides of ResNet-20
(with ``--parallel``), not more; each deeper depth needs a session of its own
(``--depths 32 --parallel``; ResNet-56's and 110's PyTorch side alone exceed 10 minutes: run
them with ``--only kerascnn``, and the reference on several sessions or not at all).

On the GPU machine (Python 3.12, JAX + PyTorch, no TensorFlow, no Keras), once, here in the
checkout (``.whl`` and ``.carry`` are ignored folders that travel with ``carry``):

    echo /.whl/ >> .git/info/exclude; echo /.carry/ >> .git/info/exclude
    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \\
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \\
        --platform manylinux_2_17_x86_64 -d .whl keras==3.15.1 namex optree
    mkdir -p .carry && cp ../shared/data/cifar10/train_jpeg.npz .carry/

then the one command (``run`` tool with ``carry=[".whl", ".carry"]``, ``timeout_s=600``):

    python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site && timeout 590 python3 benchmarks/reproduce_cifar.py --keras-backend jax --jit on --data .carry/train_jpeg.npz --depths 20 --parallel --fit-vs-step 56 --out $OUT

(~60 s for the fit-vs-step check alone on the device, then ~450 s for both sides of
ResNet-20 at once). Every JSON is rewritten after each epoch, so a run stopped by the timeout
still brings back its epochs. Copy the files from ``$OUT`` to ``benchmarks/results/``. If the
PyTorch side turns out slower than estimated, split it over two calls of the same session:
``... --depths 20 --only kerascnn --fit-vs-step 56`` then ``... --depths 20 --only torch``.

On the CPU here: ``python benchmarks/reproduce_cifar.py --quick --out /tmp/rq`` (512 training /
256 validation images, ResNet-20, 2 epochs, batch 64: under a minute per side).
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import io
import json
import os
import pathlib
import platform
import re
import statistics
import subprocess
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "cifar10" / "train_jpeg.npz"
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
#: He et al. 2016, Table 6: CIFAR-10 test error (%) of the CIFAR ResNets (best of 5 runs for 110).
HE_ET_AL = {20: 8.75, 32: 7.51, 44: 7.17, 56: 6.97, 110: 6.43}
PAPER_ITERATIONS = 64_000
JIT = {"auto": "auto", "on": True, "off": False}


# --------------------------------------------------------------------------- data
def _decode_chunk(data: bytes, offsets: np.ndarray) -> np.ndarray:
    from PIL import Image

    return np.stack(
        [
            np.asarray(Image.open(io.BytesIO(data[a:b])).convert("RGB"))
            for a, b in zip(offsets[:-1], offsets[1:], strict=True)
        ]
    )


def load_images(
    path: pathlib.Path, workers: int, min_chunk: int = 256
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Images (uint8 NHWC) and labels of ``path``: ``x``/``y`` pixels, or ``data``/``offsets``/``y``
    JPEG bytes decoded with Pillow (in up to ``workers`` processes, ``min_chunk`` images or more
    each). Call it before JAX or TensorFlow start their threads: the pool forks."""
    t = time.perf_counter()
    with np.load(path, allow_pickle=False) as z:
        keys = set(z.files)
        if {"x", "y"} <= keys:
            x, y, fmt = z["x"], z["y"], "pixels (x, y)"
        elif {"data", "offsets", "y"} <= keys:
            data, offsets, y, fmt = z["data"], z["offsets"].astype(np.int64), z["y"], "jpeg"
        else:
            raise SystemExit(
                f"{path}: expected arrays x, y (train.npz) or data, offsets, y (train_jpeg.npz); "
                f"found {sorted(keys)}"
            )
    if fmt == "jpeg":
        n = len(offsets) - 1
        cuts = np.linspace(0, n, max(1, min(workers, n // min_chunk or 1)) + 1).astype(int)
        parts = [
            (data[offsets[a] : offsets[b]].tobytes(), offsets[a : b + 1] - offsets[a])
            for a, b in zip(cuts[:-1], cuts[1:], strict=True)
        ]
        if len(parts) > 1:
            from concurrent.futures import ProcessPoolExecutor

            with ProcessPoolExecutor(len(parts)) as pool:
                x = np.concatenate(list(pool.map(_decode_chunk, *zip(*parts, strict=True))))
        else:
            x = _decode_chunk(*parts[0])
    x, y = np.ascontiguousarray(x, dtype=np.uint8), np.asarray(y).astype(np.int64)
    info = {
        "path": str(path),
        "format": fmt,
        "images": len(y),
        "file_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "pixels_sha256": hashlib.sha256(x.tobytes()).hexdigest(),
        "load_seconds": round(time.perf_counter() - t, 2),
    }
    return x, y, info


def make_split(y, train_size: int, val_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified, seeded positions: ``val_size`` for validation, then ``train_size`` of the
    rest (all of it when it is that size: 45,000 / 5,000 of CIFAR-10's 50,000)."""
    from kerascnn.pipelines import stratified_split_indices

    n = len(y)
    if val_size + train_size > n:
        raise SystemExit(f"--train-size + --val-size = {train_size + val_size} > {n} images")
    train_pos, val_pos = stratified_split_indices(y, val_size / n, seed)
    if train_size < len(train_pos):
        _, keep = stratified_split_indices(y[train_pos], train_size / len(train_pos), seed)
        train_pos = train_pos[keep]
    return train_pos, val_pos


def split_description(y, train_pos, val_pos, seed, data_info) -> dict:
    counts = lambda pos: np.bincount(y[pos], minlength=len(CLASSES)).tolist()  # noqa: E731
    return {
        "source": data_info,
        "train": len(train_pos),
        "validation": len(val_pos),
        "seed": seed,
        "method": "kerascnn.pipelines.stratified_split_indices(y, val/n, seed); train: the rest, "
        "or a stratified subset of it with the same seed when smaller",
        "train_per_class": counts(train_pos),
        "validation_per_class": counts(val_pos),
        "validation_indices_sha256": hashlib.sha256(
            np.asarray(val_pos, np.int64).tobytes()
        ).hexdigest(),
        "train_indices_sha256": hashlib.sha256(
            np.asarray(train_pos, np.int64).tobytes()
        ).hexdigest(),
    }


# --------------------------------------------------------------------------- machine
def machine_info(keras_backend: str, with_torch: bool) -> dict:
    from benchmarks import machine

    info = {**machine.cpu(), "keras_backend": keras_backend}
    gpu = None
    if keras_backend == "jax":
        import jax

        info["jax_devices"] = [f"{d.platform}:{d.device_kind}" for d in jax.devices()]
        info["jax_default_matmul_precision"] = str(jax.config.jax_default_matmul_precision)
        if jax.default_backend() == "gpu":
            gpu = jax.devices()[0].device_kind
    if with_torch:
        import torch

        info["torch_cuda"] = torch.cuda.is_available()
        if torch.cuda.is_available():
            info["torch_device"] = gpu = torch.cuda.get_device_name(0)
    info["gpu"] = gpu
    info["name"] = gpu or "cpu"
    return info


def versions(keras_backend: str, with_torch: bool) -> dict:
    import keras
    import PIL

    import kerascnn

    v = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "pillow": PIL.__version__,
        "keras": keras.__version__,
        "kerascnn": kerascnn.__version__,
    }
    if keras_backend == "jax":
        import jax

        v["jax"] = jax.__version__
    elif keras_backend == "tensorflow":
        import tensorflow as tf

        v["tensorflow"] = tf.__version__
    if with_torch or keras_backend == "torch":
        import torch

        v["torch"] = torch.__version__
    return v


# --------------------------------------------------------------------------- kerascnn side
PAD_FILLS = ("mean", "zero", "reflect")


def augment_spec(pad_fill: str) -> str:
    """The kerascnn augmentation of both sides: ``padcrop:4:<fill>,flip``. ``mean`` pads with
    the training split's mean pixel, zero after standardization (He et al.; fb.resnet.torch
    pads the standardized image with zeros); ``zero`` with black pixels (torchvision's
    ``RandomCrop(32, padding=4)`` before ``Normalize``, as most PyTorch CIFAR scripts);
    ``reflect`` mirrors (kerascnn's ``padcrop`` default)."""
    return f"padcrop:4:{pad_fill},flip"


class Interrupted(Exception):
    """``--stop-after-epochs``: a side stopped on purpose, its state saved to resume from."""


def make_norm(args):
    if args.bn_momentum is None and args.bn_epsilon is None:
        return "batch", "zoo default norm='batch' (momentum 0.9, epsilon 1e-5)"
    import kerascnn
    from kerascnn.zoo import common

    momentum = common.BN_MOMENTUM if args.bn_momentum is None else args.bn_momentum
    epsilon = common.BN_EPSILON if args.bn_epsilon is None else args.bn_epsilon

    def norm(name):
        return kerascnn.layers.FusedBatchNormalization(
            momentum=momentum, epsilon=epsilon, name=name
        )

    return norm, f"FusedBatchNormalization(momentum={momentum}, epsilon={epsilon})"


def keras_model(layers, depth: int, precision: str, norm):
    """kerascnn ResNet-``depth`` as an ``ImageClassifier`` with the input ``layers``
    (``kerascnn.tasks.input_layers``) and its own top; float32 logits under any precision."""
    import keras

    import kerascnn
    from kerascnn.tasks import ImageClassifier

    previous = keras.mixed_precision.global_policy()
    if precision != "float32":
        keras.mixed_precision.set_global_policy(precision)
    try:
        core = kerascnn.zoo.resnet(depth=depth, input_shape=(32, 32, 3), num_classes=10, norm=norm)
        net = ImageClassifier.from_model(core, **layers.task_options(), name=f"resnet{depth}")
    finally:
        keras.mixed_precision.set_global_policy(previous)
    params = sum(int(np.prod(w.shape)) for w in core.trainable_weights)
    return net, params


def epoch_logger(side: str, n_train: int, save, rows=(), stop_after: int | None = None):
    import keras

    class EpochLog(keras.callbacks.Callback):
        """Per epoch: validation error %, train loss, wall seconds, training images/s (the
        training part of the epoch: from its start to the start of validation)."""

        def __init__(self):
            super().__init__()
            self.rows = list(rows)  # the epochs of earlier invocations (a resumed run)
            self.done_here = 0

        def on_epoch_begin(self, epoch, logs=None):
            # the run folder's backup of the last epoch is written by now: stop here
            if stop_after is not None and self.done_here >= stop_after:
                raise Interrupted(f"{side}: stopped after {self.done_here} epochs (resumable)")
            self.t0, self.t_val = time.perf_counter(), None

        def on_test_begin(self, logs=None):
            if self.t_val is None:
                self.t_val = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            t = time.perf_counter()
            logs = logs or {}
            train_s = (self.t_val or t) - self.t0
            row = {
                "epoch": epoch + 1,
                "train_loss": round(float(logs.get("loss", float("nan"))), 4),
                "wall_s": round(t - self.t0, 3),
                "train_s": round(train_s, 3),
                "images_per_s": round(n_train / train_s, 1),
            }
            if "val_accuracy" in logs:
                row["val_error"] = round(100 * (1 - float(logs["val_accuracy"])), 2)
            self.rows = [r for r in self.rows if r["epoch"] < row["epoch"]] + [row]
            self.done_here += 1
            print(f"[{side}] {json.dumps(row)}", flush=True)
            if save is not None:
                save(self.rows)

    return EpochLog()


def build_pipes(x_tr, y_tr, x_va, y_va, args, batch_size, augment):
    """``(layers, pipe, val_pipe)``: the task's input layers of ``augment`` (all in the
    model) and the NumPy pipelines of raw pixels."""
    from kerascnn import pipelines
    from kerascnn.pipelines.sources import array_dataset
    from kerascnn.tasks import input_layers

    train_ds = array_dataset("cifar10-train", "train", x_tr, y_tr, CLASSES)
    layers = input_layers(train_ds, augment, seed=args.seed)
    pipe = pipelines.build(
        train_ds, batch_size=batch_size, seed=args.seed, normalize="none", loader="numpy"
    )
    val_pipe = None
    if x_va is not None:
        val_ds = array_dataset("cifar10-train", "validation", x_va, y_va, CLASSES)
        val_pipe = pipelines.build(
            val_ds, batch_size=min(500, len(y_va)), shuffle=False,
            normalize="none", loader="numpy",
        )  # fmt: skip
    return layers, pipe, val_pipe


def run_kerascnn(depth, data, args, recipe_kw, save, state: pathlib.Path, rows) -> dict:
    """Train kerascnn's side; ``state`` is its run folder (``training.fit(out_dir=...)``):
    rerunning after an interruption resumes from the last finished epoch, ``rows`` being
    the epochs logged before."""
    import keras

    from kerascnn import training

    x_tr, y_tr, x_va, y_va = data
    keras.utils.clear_session()
    keras.utils.set_random_seed(args.seed)
    t_start = time.perf_counter()
    recipe = training.get_recipe("resnet-cifar", **recipe_kw)
    augment = augment_spec(args.pad_fill)
    norm, norm_text = make_norm(args)
    layers, pipe, val_pipe = build_pipes(x_tr, y_tr, x_va, y_va, args, recipe.batch_size, augment)
    net, params = keras_model(layers, depth, args.precision, norm)
    log = epoch_logger(f"kerascnn resnet{depth}", len(y_tr), save, rows, args.stop_after_epochs)
    t_fit = time.perf_counter()
    training.fit(
        net, pipe, val_pipe, recipe, out_dir=state, jit_compile=JIT[args.jit], callbacks=[log],
        verbose=0,
    )  # fmt: skip
    fit_s = time.perf_counter() - t_fit
    steps = -(-len(y_tr) // recipe.batch_size)
    return {
        **summarize_rows(log.rows),
        "parameters": params,
        "fit_seconds": round(fit_s, 1),
        "side_seconds": round(time.perf_counter() - t_start, 1),
        "setup": {
            "model": f"kerascnn.zoo.resnet(depth={depth}, norm={norm_text})",
            "augment": f"spec {augment!r}, placement='model'",
            "run_folder": str(state),
            "normalization": {
                "mean": list(layers.normalization.mean),
                "std": list(layers.normalization.std),
            },
            "recipe": recipe_dict(recipe),
            "lr_boundaries_steps": lr_boundaries(recipe, steps)[0],
            "steps_per_epoch": steps,
            "precision": args.precision,
            "jit_compile": args.jit,
            "keras_backend": keras.backend.backend(),
            "loader": "numpy (kerascnn BatchLoader)",
        },
    }


def recipe_dict(recipe) -> dict:
    import dataclasses

    out = dataclasses.asdict(recipe)
    out["milestones"] = list(out["milestones"])
    return out


def lr_boundaries(recipe, steps_per_epoch: int) -> tuple[list[int], list[float]]:
    """The kerascnn recipe's own step schedule: Keras's ``PiecewiseConstantDecay`` uses
    ``values[i]`` while ``iterations <= boundaries[i]`` (iterations counted before the update)."""
    schedule = recipe.learning_rate(steps_per_epoch)
    if isinstance(schedule, (int, float)):
        return [], [float(schedule)]
    if not hasattr(schedule, "boundaries"):
        raise SystemExit(f"the torch reference implements step schedules only; got {schedule}")
    return [int(b) for b in schedule.boundaries], [float(v) for v in schedule.values]


def summarize_rows(rows) -> dict:
    errors = [r["val_error"] for r in rows if "val_error" in r]
    steady = [r["images_per_s"] for r in rows[1:]] or [r["images_per_s"] for r in rows]
    return {
        "epochs_run": len(rows),
        "final_error": errors[-1] if errors else None,
        "best_error": min(errors) if errors else None,
        "best_epoch": (errors.index(min(errors)) + 1) if errors else None,
        "wall_seconds_total": round(sum(r["wall_s"] for r in rows), 1),
        "images_per_s_median": round(statistics.median(steady), 1) if steady else None,
        "epochs": rows,
    }


# --------------------------------------------------------------------------- PyTorch side
def run_torch(depth, data, args, recipe_kw, mean, std, save, state: pathlib.Path) -> dict:
    """Train the PyTorch reference; after every epoch its whole state (weights, optimizer,
    random generators, step, logged epochs) goes to ``state`` (written atomically), from which
    a rerun resumes."""
    import torch
    from torch.nn import functional as F

    from benchmarks import nets
    from kerascnn import training

    x_tr, y_tr, x_va, y_va = data
    t_start = time.perf_counter()
    recipe = training.get_recipe("resnet-cifar", **recipe_kw)
    if recipe.optimizer != "sgd" or recipe.decay != "coupled":
        raise SystemExit("the torch reference implements SGD with coupled decay only")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    net = nets.torch_cifar_resnet(depth, 10).to(device).to(memory_format=torch.channels_last)
    params = sum(p.numel() for p in net.parameters() if p.requires_grad)
    batch = recipe.batch_size
    steps = -(-len(y_tr) // batch)
    bounds, values = lr_boundaries(recipe, steps)
    if recipe.decay_vectors:
        groups = [{"params": list(net.parameters())}]
    else:  # no decay on BN scales / offsets and biases (rank <= 1), as CoupledSGD(decay_vectors=False)
        vectors = [q for q in net.parameters() if q.ndim <= 1]
        matrices = [q for q in net.parameters() if q.ndim > 1]
        groups = [{"params": matrices}, {"params": vectors, "weight_decay": 0.0}]
    opt = torch.optim.SGD(
        groups, lr=values[0], momentum=recipe.momentum, weight_decay=recipe.weight_decay
    )
    amp = {"mixed_bfloat16": torch.bfloat16}.get(args.precision)
    m = torch.tensor(mean, dtype=torch.float32, device=device)
    s = torch.tensor(std, dtype=torch.float32, device=device)

    def to_device(x):  # uint8 NHWC -> standardized float32, NCHW shape, channels_last memory
        x = (torch.from_numpy(x).to(device).float() - m) / s
        return x.permute(0, 3, 1, 2)

    xt, yt = to_device(x_tr), torch.from_numpy(y_tr).to(device)
    xv, yv = to_device(x_va), torch.from_numpy(y_va).to(device)
    gen = torch.Generator(device=device)
    gen.manual_seed(args.seed)
    cpu_gen = torch.Generator()
    cpu_gen.manual_seed(args.seed)
    ar = torch.arange(32, device=device)

    def pad(x):  # --pad-fill, in standardized units
        if args.pad_fill == "reflect":
            return F.pad(x, (4, 4, 4, 4), mode="reflect")
        p = F.pad(x, (4, 4, 4, 4))  # zeros: the mean pixel once standardized ("mean")
        if args.pad_fill == "zero":  # black pixels: -mean / std once standardized
            border = F.pad(torch.zeros_like(x[:1, :1]), (4, 4, 4, 4), value=1.0)
            p = p + border * (-m / s)[None, :, None, None]
        return p

    def augment(x):  # flip, pad 4, random 32x32 crop; per image
        n = x.shape[0]
        flip = torch.rand(n, device=device, generator=gen) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(3), x)
        p = pad(x)
        oy = torch.randint(0, 9, (n,), device=device, generator=gen)
        ox = torch.randint(0, 9, (n,), device=device, generator=gen)
        rows = (oy[:, None] + ar)[:, None, :, None]
        cols = (ox[:, None] + ar)[:, None, None, :]
        b = torch.arange(n, device=device)[:, None, None, None]
        c = torch.arange(x.shape[1], device=device)[None, :, None, None]
        return p[b, c, rows, cols].contiguous(memory_format=torch.channels_last)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    def evaluate():
        net.eval()
        correct = torch.zeros((), device=device, dtype=torch.int64)
        with torch.no_grad(), torch.autocast(device.type, dtype=amp, enabled=amp is not None):
            for i in range(0, len(yv), 500):
                xb = xv[i : i + 500].contiguous(memory_format=torch.channels_last)
                correct += (net(xb).argmax(1) == yv[i : i + 500]).sum()
        net.train()
        return 100.0 * (1.0 - correct.item() / len(yv))

    rows, it, first = [], 0, 0
    if state.exists():
        saved = torch.load(state, map_location=device, weights_only=False)
        net.load_state_dict(saved["net"])
        opt.load_state_dict(saved["optimizer"])
        gen.set_state(saved["generator"])
        cpu_gen.set_state(saved["cpu_generator"])
        rows, it, first = saved["rows"], saved["step"], saved["epoch"]
        print(f"[torch resnet{depth}] resuming after epoch {first} from {state}", flush=True)

    def checkpoint(epoch):
        tmp = state.with_name(state.name + ".tmp")
        torch.save(
            {
                "net": net.state_dict(), "optimizer": opt.state_dict(),
                "generator": gen.get_state(), "cpu_generator": cpu_gen.get_state(),
                "rows": rows, "step": it, "epoch": epoch,
            },
            tmp,
        )  # fmt: skip
        os.replace(tmp, state)

    state.parent.mkdir(parents=True, exist_ok=True)
    net.train()
    for epoch in range(first, recipe.epochs):
        if args.stop_after_epochs is not None and epoch - first >= args.stop_after_epochs:
            raise Interrupted(f"torch resnet{depth}: stopped after {epoch - first} epochs")
        t0 = time.perf_counter()
        order = torch.randperm(len(yt), generator=cpu_gen).to(device)
        loss_sum = torch.zeros((), device=device)
        for i in range(steps):
            idx = order[i * batch : (i + 1) * batch]
            xb, yb = augment(xt[idx]), yt[idx]
            lr = values[sum(it > b for b in bounds)]
            for group in opt.param_groups:
                group["lr"] = lr
            opt.zero_grad(set_to_none=True)
            with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
                loss = F.cross_entropy(net(xb).float(), yb)
            loss.backward()
            opt.step()
            loss_sum += loss.detach() * len(idx)
            it += 1
        sync()
        t_val = time.perf_counter()
        error = evaluate()
        t = time.perf_counter()
        row = {
            "epoch": epoch + 1,
            "train_loss": round(loss_sum.item() / len(yt), 4),
            "wall_s": round(t - t0, 3),
            "train_s": round(t_val - t0, 3),
            "images_per_s": round(len(yt) / (t_val - t0), 1),
            "val_error": round(error, 2),
        }
        rows.append(row)
        print(f"[torch resnet{depth}] {json.dumps(row)}", flush=True)
        checkpoint(epoch + 1)
        save(rows)
    return {
        **summarize_rows(rows),
        "parameters": params,
        "side_seconds": round(time.perf_counter() - t_start, 1),
        "setup": {
            "model": f"benchmarks.nets.torch_cifar_resnet({depth}) (He init, option A), "
            "channels_last",
            "optimizer": f"torch.optim.SGD(momentum={recipe.momentum}, "
            f"weight_decay={recipe.weight_decay}) on "
            + ("all parameters" if recipe.decay_vectors else "parameters of rank > 1"),
            "state": str(state),
            "lr_boundaries_steps": bounds,
            "lr_values": values,
            "steps_per_epoch": steps,
            "batch_size": batch,
            "augment": f"flip + pad 4 ({args.pad_fill}) + random 32x32 crop, on device",
            "normalization": {"mean": list(mean), "std": list(std)},
            "precision": args.precision,
            "device": str(device),
            "cudnn_benchmark": device.type == "cuda",
            "tf32": {
                "cudnn": bool(torch.backends.cudnn.allow_tf32),
                "matmul": bool(torch.backends.cuda.matmul.allow_tf32),
            },
        },
    }


# --------------------------------------------------------------------------- fit vs step
def fit_vs_step(depth, data, args, epochs, batch_size, step_rounds, steps_per_round) -> dict:
    """Steady-state ``fit`` images/s against a jitted stateless step of the same model."""
    import jax
    import keras

    from benchmarks import nets
    from kerascnn import training

    if keras.backend.backend() != "jax":
        raise SystemExit("--fit-vs-step needs the JAX backend")
    x_tr, y_tr, _, _ = data
    keras.utils.clear_session()
    keras.utils.set_random_seed(args.seed)
    recipe = training.get_recipe("resnet-cifar", epochs=epochs, batch_size=batch_size)
    layers, pipe, _ = build_pipes(x_tr, y_tr, None, None, args, batch_size, "padcrop,flip")
    net, params = keras_model(layers, depth, args.precision, "batch")
    log = epoch_logger(f"fit resnet{depth}", len(y_tr), None)
    t = time.perf_counter()
    training.fit(net, pipe, None, recipe, jit_compile=True, callbacks=[log], verbose=0)
    fit_total = time.perf_counter() - t
    fit_ips = [r["images_per_s"] for r in log.rows[1:]] or [log.rows[0]["images_per_s"]]

    keras.utils.clear_session()
    keras.utils.set_random_seed(args.seed)
    layers, pipe, _ = build_pipes(x_tr, y_tr, None, None, args, batch_size, "padcrop,flip")
    model, _ = keras_model(layers, depth, args.precision, "batch")
    steps = -(-len(y_tr) // batch_size)
    optimizer = recipe.make_optimizer(steps)
    optimizer.build(model.trainable_variables)
    loss_fn = model.default_loss()  # the task's: sparse labels, logits

    def compute_loss(trainable, non_trainable, x, y):
        logits, non_trainable = model.stateless_call(trainable, non_trainable, x, training=True)
        return loss_fn(y, logits), non_trainable

    grad_fn = jax.value_and_grad(compute_loss, has_aux=True)

    @jax.jit
    def train_step(state, x, y):
        trainable, non_trainable, opt_vars = state
        (loss, non_trainable), grads = grad_fn(trainable, non_trainable, x, y)
        trainable, opt_vars = optimizer.stateless_apply(opt_vars, grads, trainable)
        return loss, (trainable, non_trainable, opt_vars)

    x = jax.device_put(x_tr[:batch_size].astype("float32"))
    y = jax.device_put(y_tr[:batch_size].astype("int32"))
    loss, state, compile_s = nets.jax_first_step(model, optimizer, train_step, x, y)
    step_ips = []
    for _ in range(step_rounds):
        t = time.perf_counter()
        for _ in range(steps_per_round):
            loss, state = train_step(state, x, y)
        jax.block_until_ready(loss)
        step_ips.append(batch_size * steps_per_round / (time.perf_counter() - t))
    fit_med, step_med = statistics.median(fit_ips), statistics.median(step_ips)
    result = {
        "depth": depth,
        "parameters": params,
        "train_images": len(y_tr),
        "batch_size": batch_size,
        "precision": args.precision,
        "fit": {
            "epochs": log.rows,
            "steady_images_per_s": [round(v, 1) for v in fit_ips],
            "median_images_per_s": round(fit_med, 1),
            "seconds_total": round(fit_total, 1),
            "how": "kerascnn.training.fit(jit_compile=True), recipe resnet-cifar, augmentation in "
            "the model, numpy loader, no validation; training images/s of epochs 2..",
        },
        "step": {
            "images_per_s": [round(v, 1) for v in step_ips],
            "median_images_per_s": round(step_med, 1),
            "compile_s": round(compile_s, 1),
            "steps_per_round": steps_per_round,
            "how": "jax.jit(model.stateless_call + jax.value_and_grad + optimizer.stateless_apply), "
            "same model and recipe optimizer, one batch already on the device",
        },
        "fit_over_step": round(fit_med / step_med, 3),
        "target": ">= 0.9",
    }
    print(
        f"[fit-vs-step resnet{depth}] fit {fit_med:.0f} img/s, step {step_med:.0f} img/s, "
        f"ratio {fit_med / step_med:.3f}",
        flush=True,
    )
    return result


# --------------------------------------------------------------------------- report
def markdown_table(result) -> str:
    lines = [
        "| depth | kerascnn error % | PyTorch reference error % | He et al. % | epochs | seconds "
        "(kerascnn / PyTorch) |",
        "|---|---|---|---|---|---|",
    ]

    def cell(side, key):
        v = (side or {}).get(key)
        return "-" if v is None else (f"{v:.2f}" if isinstance(v, float) else str(v))

    for depth, entry in result["depths"].items():
        k, t = entry.get("kerascnn"), entry.get("torch")
        epochs = (k or t or {}).get("epochs_run", "-")
        he = HE_ET_AL.get(int(depth))
        lines.append(
            f"| {depth} | {cell(k, 'final_error')} (best {cell(k, 'best_error')}) "
            f"| {cell(t, 'final_error')} (best {cell(t, 'best_error')}) "
            f"| {'-' if he is None else he} | {epochs} "
            f"| {cell(k, 'wall_seconds_total')} / {cell(t, 'wall_seconds_total')} |"
        )
    return "\n".join(lines)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=pathlib.Path, default=DEFAULT_DATA,
                   help="train_jpeg.npz (data/offsets/y) or train.npz (x/y)")  # fmt: skip
    p.add_argument("--depths", default=None, help="comma-separated, e.g. 20,32,44,56,110")
    p.add_argument("--epochs", type=int, default=None,
                   help="default: the recipe's 164 (--epochs 182 = the paper's 64k iterations "
                   "on 45k images)")  # fmt: skip
    p.add_argument("--lr", type=float, default=None, help="default: the recipe's 0.1")
    p.add_argument(
        "--seed", type=int, default=0, help="training seed (shuffle, augmentation, init)"
    )
    p.add_argument("--split-seed", type=int, default=0)
    p.add_argument("--train-size", type=int, default=None, help="default 45000 (quick: 512)")
    p.add_argument("--val-size", type=int, default=None, help="default 5000 (quick: 256)")
    p.add_argument("--batch-size", type=int, default=None, help="default: the recipe's 128")
    p.add_argument("--only", choices=("kerascnn", "torch", "both", "none"), default="both")
    p.add_argument("--precision", choices=("float32", "mixed_bfloat16"), default="float32")
    p.add_argument("--pad-fill", choices=PAD_FILLS, default="mean",
                   help="padding of the pad-and-crop, both sides: mean (zero after "
                   "standardization, He et al.; default), zero (black pixels), reflect")  # fmt: skip
    p.add_argument("--decay-vectors", action=argparse.BooleanOptionalAction, default=True,
                   help="weight decay on BN scales / offsets and biases too (He et al.: yes); "
                   "--no-decay-vectors leaves them out, both sides")  # fmt: skip
    p.add_argument("--jit", choices=tuple(JIT), default="auto",
                   help="kerascnn's jit_compile (auto: XLA on a GPU, off on the CPU)")  # fmt: skip
    p.add_argument("--run", default=None,
                   help="the run's name: results <out>/RUN.json, state <state-dir>/RUN/; rerun "
                   "the same command to resume it (default: DATE-reproduce-cifar-DEVICE)")  # fmt: skip
    p.add_argument("--state-dir", type=pathlib.Path, default=ROOT / "runs" / "reproduce_cifar",
                   help="where each run keeps its per-epoch state (weights, optimizer, random "
                   "generators) to resume from")  # fmt: skip
    p.add_argument("--stop-after-epochs", type=int, default=None,
                   help="stop each side after this many epochs of this invocation, its state "
                   "saved (a long run cut into sessions; rerun to go on)")  # fmt: skip
    p.add_argument("--bn-momentum", type=float, default=None)
    p.add_argument("--bn-epsilon", type=float, default=None)
    p.add_argument("--keras-backend", default="tensorflow", choices=("jax", "tensorflow", "torch"))
    p.add_argument("--fit-vs-step", type=int, default=0, metavar="DEPTH",
                   help="also measure fit vs a jitted stateless step for ResNet-DEPTH (JAX)")  # fmt: skip
    p.add_argument("--fit-vs-step-epochs", type=int, default=None, help="default 5 (quick: 2)")
    p.add_argument("--parallel", action=argparse.BooleanOptionalAction, default=False,
                   help="train the kerascnn and torch sides in two processes at once")  # fmt: skip
    p.add_argument("--workers", type=int, default=min(16, os.cpu_count() or 1),
                   help="processes decoding JPEG")  # fmt: skip
    p.add_argument("--quick", action="store_true",
                   help="512 train / 256 validation images, ResNet-20, 2 epochs, batch 64")  # fmt: skip
    p.add_argument("--out", type=pathlib.Path, default=ROOT / "benchmarks" / "results")
    p.add_argument("--json-name", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    q = args.quick
    args.depths = [int(d) for d in (args.depths or "20").split(",") if d.strip()]
    args.train_size = args.train_size or (512 if q else 45_000)
    args.val_size = args.val_size or (256 if q else 5_000)
    args.batch_size = args.batch_size or (64 if q else None)
    args.epochs = args.epochs or (2 if q else None)
    args.fit_vs_step_epochs = args.fit_vs_step_epochs or (2 if q else 5)
    return args


def child_command(argv, side: str, name: str) -> list[str]:
    return [
        sys.executable, str(pathlib.Path(__file__).resolve()), *argv, "--no-parallel",
        "--fit-vs-step", "0", "--only", side, "--json-name", name,
    ]  # fmt: skip


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    os.environ["KERAS_BACKEND"] = args.keras_backend
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # torch on a shared CPU: benchmarks/README
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with_torch = args.only in ("torch", "both")

    # Decode before JAX / TensorFlow start threads (the pool forks).
    x, y, data_info = load_images(args.data, args.workers)

    import keras

    if keras.backend.backend() != args.keras_backend:
        raise SystemExit(f"keras was imported before KERAS_BACKEND={args.keras_backend} was set")
    import kerascnn  # noqa: F401  (registers the layers)

    train_pos, val_pos = make_split(y, args.train_size, args.val_size, args.split_seed)
    data = (x[train_pos], y[train_pos], x[val_pos], y[val_pos])
    recipe_kw = {
        "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
        "decay_vectors": args.decay_vectors,
    }  # fmt: skip
    from kerascnn import training

    recipe = training.get_recipe("resnet-cifar", **recipe_kw)
    date = datetime.date.today().isoformat()
    machine = machine_info(args.keras_backend, with_torch)
    dev = re.sub(r"[^A-Za-z0-9]+", "-", machine["name"]).strip("-").lower()
    run = args.run or f"{date}-reproduce-cifar-{dev}{'-quick' if args.quick else ''}"
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / (args.json_name or f"{run}.json")
    state_dir = args.state_dir / (pathlib.Path(args.json_name).stem if args.json_name else run)
    earlier = json.loads(path.read_text()) if path.exists() else None
    if earlier is None and state_dir.is_dir() and any(state_dir.iterdir()):
        raise SystemExit(
            f"{state_dir} holds the state of a run whose results {path} are missing: put the "
            "JSON back (git checkout) to resume, or delete the state folder to start again"
        )
    result = {
        "benchmark": "reproduce_cifar",
        "date": date,
        "command": "python benchmarks/reproduce_cifar.py " + " ".join(argv),
        "machine": machine,
        "versions": versions(args.keras_backend, with_torch),
        "seeds": {"training": args.seed, "split": args.split_seed},
        "split": split_description(y, train_pos, val_pos, args.split_seed, data_info),
        "recipe": recipe_dict(recipe),
        "options": {
            "pad_fill": args.pad_fill,
            "decay_vectors": args.decay_vectors,
            "bn_momentum": args.bn_momentum,
            "bn_epsilon": args.bn_epsilon,
            "precision": args.precision,
            "jit": args.jit,
            "applies_to": "pad_fill, decay_vectors, precision: both sides; bn_*, jit: kerascnn",
        },
        "state_dir": str(state_dir),
        "he_et_al_2016_table6_test_error": HE_ET_AL,
        "he_et_al_note": "CIFAR-10 test error after 64k iterations on 50k images; here: "
        "validation error on a 5k split of the training set, so only close, not identical",
        "concurrent": bool(args.parallel and args.only == "both"),
        "fit_vs_step": None,
        "depths": {},
    }
    if earlier is not None:  # a resumed run: keep what the earlier invocations measured
        if (
            earlier.get("split", {}).get("validation_indices_sha256")
            != result["split"]["validation_indices_sha256"]
            or earlier.get("recipe") != result["recipe"]
        ):
            raise SystemExit(
                f"{path} holds a run with another split or recipe; pass another --run to start "
                "a new one"
            )
        result["depths"] = earlier.get("depths", {})
        result["invocations"] = earlier.get("invocations", []) + [earlier["command"]]

    def write():
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(result, indent=1) + "\n")
        os.replace(tmp, path)

    write()
    print(f"split: {len(train_pos)} train / {len(val_pos)} validation; data {data_info['format']} "
          f"in {data_info['load_seconds']} s; machine {machine['name']}", flush=True)  # fmt: skip
    if args.fit_vs_step:
        quick = args.quick
        result["fit_vs_step"] = fit_vs_step(
            args.fit_vs_step, data, args, args.fit_vs_step_epochs, args.batch_size or 128,
            2 if quick else 5, 4 if quick else 100,
        )  # fmt: skip
        write()

    if args.parallel and args.only == "both" and args.depths:
        names = {side: f"{path.stem}-{side}.json" for side in ("kerascnn", "torch")}
        procs = {s: subprocess.Popen(child_command(argv, s, n)) for s, n in names.items()}
        codes = {s: p.wait() for s, p in procs.items()}
        for side, name in names.items():
            result.setdefault("parts", {})[side] = {"file": name, "returncode": codes[side]}
            try:
                part = json.loads((args.out / name).read_text())
            except (OSError, ValueError) as error:
                print(f"[{side}] no results: {error}", flush=True)
                continue
            for depth, entry in part["depths"].items():
                result["depths"].setdefault(depth, {})[side] = entry.get(side)
        write()
    elif args.only != "none":
        mean = std = None
        stopped = []
        for depth in args.depths:
            entry = result["depths"].setdefault(str(depth), {})
            sides = ("kerascnn", "torch") if args.only == "both" else (args.only,)
            for side in sides:
                done = entry.get(side) or {}
                if done and not done.get("partial") and done.get("epochs_run") == recipe.epochs:
                    print(f"[{side} resnet{depth}] finished earlier: {done['final_error']} %")
                    continue

                def save(rows, entry=entry, side=side):
                    entry[side] = {"partial": True, **summarize_rows(rows)}
                    write()

                state = state_dir / f"{side}-resnet{depth}"
                try:
                    if side == "kerascnn":
                        rows = done.get("epochs", [])
                        entry[side] = run_kerascnn(depth, data, args, recipe_kw, save, state, rows)
                    else:
                        if mean is None:
                            from kerascnn.pipelines.sources import array_dataset

                            probe = array_dataset("cifar10-train", "train", *data[:2], CLASSES)
                            mean, std = probe.mean, probe.std
                        entry[side] = run_torch(
                            depth, data, args, recipe_kw, mean, std, save, state.with_suffix(".pt")
                        )
                except Interrupted as stop:
                    print(stop, flush=True)
                    stopped.append(str(stop))
                write()
        if stopped:
            print(f"stopped on purpose; rerun the same command to resume ({path})", flush=True)
    table = markdown_table(result)
    result["markdown_table"] = table
    write()
    print(table)
    print(f"wrote {path}", flush=True)
    return result


if __name__ == "__main__":
    main()
