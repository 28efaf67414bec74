"""GPU training-step benchmark: kerascnn on Keras/JAX (XLA) vs PyTorch eager and torch.compile.

For a machine with JAX (CUDA) and PyTorch but no TensorFlow and no network. Keras and its
small pure-Python dependencies travel as wheels; kerascnn is imported plainly from this
checkout (it needs no TensorFlow on the JAX backend):

    pip install --no-index --find-links wheels/ keras        # wheels made with `pip download keras`
    python benchmarks/gpu_jax.py                               # full run on the GPU
    python benchmarks/gpu_jax.py --quick                       # seconds-to-minutes smoke run (CPU ok)

Measures, in one process, training images/s of CIFAR ResNet-56 (32x32, batch 128) and
ResNet-50 (224x224, batch 128; ``--quick``: 64x64, batch 8):

    keras_jax          kerascnn.zoo.resnet with KERAS_BACKEND=jax, one jitted stateless train
                       step (always XLA), data already on the device
    torch_eager        the same network in PyTorch, channels_last
    torch_compile      the same, ``torch.compile(model)``

each in float32 and mixed precision (bfloat16: Keras ``mixed_bfloat16``, PyTorch ``autocast``;
``--precision float16`` for float16 with loss scaling in Keras), with and without in-model
augmentation (random flip + 4-pixel reflect pad-crop per image: kerascnn's ``RandomFlip`` and
``RandomPadCrop`` in Keras, the same ops written in PyTorch). Candidates are timed in
interleaved rounds after warm-up (compilation time is reported separately).

Writes ``benchmarks/results/<date>-gpu-<device>.json`` with the device name, versions, command,
per-candidate median/min/max images/s and the ratio keras_jax / torch_eager per setting (the
issue's target: >= 1.0 for ResNet-56 with mixed precision).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import platform
import re
import statistics
import sys
import time

os.environ["KERAS_BACKEND"] = "jax"
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # PyTorch CPU on a shared machine: see run.py

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import jax  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

if keras.backend.backend() != "jax":
    raise SystemExit("set KERAS_BACKEND=jax before keras is imported (this script does)")


import kerascnn  # noqa: E402  (no TensorFlow needed on the JAX backend)
from benchmarks import nets  # noqa: E402


# --------------------------------------------------------------------------- timing
def summarize(values):
    med = statistics.median(values)
    return {
        "median": round(med, 1),
        "min": round(min(values), 1),
        "max": round(max(values), 1),
        "spread_pct": round(100 * (max(values) - min(values)) / med, 1),
        "runs": [round(v, 1) for v in values],
    }


def interleave(runners, rounds):
    names = list(runners)
    out = {n: [] for n in names}
    for r in range(rounds):
        k = r % len(names)
        for n in names[k:] + names[:k]:
            out[n].append(runners[n]())
    return {n: summarize(v) for n, v in out.items()}


# --------------------------------------------------------------------------- Keras / JAX
def keras_model(depth, input_shape, num_classes, augment):
    keras.utils.set_random_seed(0)
    net = kerascnn.zoo.resnet(depth=depth, input_shape=input_shape, num_classes=num_classes)
    if not augment:
        return net
    inputs = keras.Input(input_shape)
    x = kerascnn.layers.RandomFlip(seed=1)(inputs)
    x = kerascnn.layers.RandomPadCrop(4, seed=2)(x)
    return keras.Model(inputs, net(x))


def keras_runner(depth, shape, classes, batch, steps, precision, augment):
    """A jitted stateless train step (``model.stateless_call`` + ``optimizer.stateless_apply``,
    the Keras-on-JAX pattern that ``model.fit`` uses), timed over ``steps`` steps."""
    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy({"float32": "float32"}.get(precision, f"mixed_{precision}"))
    try:
        model = keras_model(depth, shape, classes, augment)
    finally:
        keras.config.set_dtype_policy(policy)
    optimizer = keras.optimizers.SGD(0.01, momentum=0.9)
    if precision == "float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    optimizer.build(model.trainable_variables)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def compute_loss(trainable, non_trainable, x, y):
        logits, non_trainable = model.stateless_call(trainable, non_trainable, x, training=True)
        loss = loss_fn(y, keras.ops.cast(logits, "float32"))
        scaled = optimizer.scale_loss(loss) if precision == "float16" else loss
        return scaled, (loss, non_trainable)

    grad_fn = jax.value_and_grad(compute_loss, has_aux=True)

    @jax.jit
    def train_step(state, x, y):
        trainable, non_trainable, opt_vars = state
        (_, (loss, non_trainable)), grads = grad_fn(trainable, non_trainable, x, y)
        trainable, opt_vars = optimizer.stateless_apply(opt_vars, grads, trainable)
        return loss, (trainable, non_trainable, opt_vars)

    rng = np.random.default_rng(0)
    x = jax.device_put(rng.normal(size=(batch, *shape)).astype("float32"))
    y = jax.device_put(rng.integers(0, classes, size=batch).astype("int32"))
    loss, state, compile_s = nets.jax_first_step(model, optimizer, train_step, x, y)
    box = {"state": state, "loss": float(loss)}

    def run():
        s = box["state"]
        t = time.perf_counter()
        for _ in range(steps):
            loss, s = train_step(s, x, y)
        jax.block_until_ready(loss)
        dt = time.perf_counter() - t
        box["state"], box["loss"] = s, float(loss)
        return batch * steps / dt

    run.info = {"compile_s": round(compile_s, 1), "box": box}
    return run


# --------------------------------------------------------------------------- PyTorch
def torch_augment(x, gen):
    """Per-image random horizontal flip + reflect pad 4 + random 32x32 (HxW) crop, NCHW/CL."""
    import torch
    from torch.nn import functional as F

    n, _, h, w = x.shape
    flip = torch.rand(n, device=x.device, generator=gen) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    p = F.pad(x, (4, 4, 4, 4), mode="reflect")
    oy = torch.randint(0, 9, (n,), device=x.device, generator=gen)
    ox = torch.randint(0, 9, (n,), device=x.device, generator=gen)
    rows = (oy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (ox[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
    b = torch.arange(n, device=x.device)[:, None, None, None]
    c = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
    return p[b, c, rows, cols]


def torch_runner(depth, shape, classes, batch, steps, precision, augment, compiled, device):
    import torch
    from torch.nn import functional as F

    torch.manual_seed(0)
    net = nets.torch_cifar_resnet(depth, classes) if depth != 50 else nets.torch_resnet50(classes)
    net = net.to(device).to(memory_format=torch.channels_last).train()
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    h, w, c = shape
    x = torch.randn(batch, c, h, w, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, classes, (batch,), device=device)
    gen = torch.Generator(device=device)
    gen.manual_seed(0)
    forward = torch.compile(net) if compiled else net
    amp_dtype = {"bfloat16": torch.bfloat16, "float16": torch.float16}.get(precision)
    scaler = torch.amp.GradScaler(device.type) if precision == "float16" else None

    def step():
        xb = torch_augment(x, gen).contiguous(memory_format=torch.channels_last) if augment else x
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            loss = F.cross_entropy(forward(xb).float(), y)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            opt.step()
        return loss

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    t = time.perf_counter()
    for _ in range(2 if compiled else 1):  # compile (and the recompile torch.compile may do)
        step()
    sync()
    compile_s = time.perf_counter() - t
    box = {}

    def run():
        t = time.perf_counter()
        for _ in range(steps):
            loss = step()
        sync()
        box["loss"] = loss.item()
        return batch * steps / (time.perf_counter() - t)

    run.info = {"compile_s": round(compile_s, 1), "box": box}
    return run


# --------------------------------------------------------------------------- main
def device_info():
    info = {"jax_devices": [f"{d.platform}:{d.device_kind}" for d in jax.devices()]}
    info["jax_backend"] = jax.default_backend()
    try:
        import torch

        info["torch_cuda"] = torch.cuda.is_available()
        if torch.cuda.is_available():
            info["torch_device"] = torch.cuda.get_device_name(0)
    except ImportError:
        info["torch"] = None
    info["name"] = info.get("torch_device") or jax.devices()[0].device_kind
    return info


def versions():
    v = {"python": platform.python_version(), "jax": jax.__version__, "keras": keras.__version__}
    v["kerascnn"] = kerascnn.__version__
    try:
        import torch

        v["torch"] = torch.__version__
    except ImportError:
        v["torch"] = None
    return v


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run (CPU ok)")
    parser.add_argument("--models", default="resnet56,resnet50")
    parser.add_argument("--precision", default="float32,bfloat16", help="float32,bfloat16,float16")
    parser.add_argument("--augment", default="off,on")
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--steps", type=int, default=None, help="steps per timed round")
    parser.add_argument("--out", type=pathlib.Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)

    have_torch = nets.torch_available()
    if have_torch:
        import torch

        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = False  # float32 means float32 on both sides
        torch.backends.cudnn.allow_tf32 = False
    jax.config.update("jax_default_matmul_precision", "highest")
    quick = args.quick
    rounds = args.rounds or (2 if quick else 5)
    specs = {
        "resnet56": (56, (32, 32, 3), 10, 8 if quick else 128, args.steps or (2 if quick else 20)),
        "resnet50": (
            50,
            (64, 64, 3) if quick else (224, 224, 3),
            1000,
            4 if quick else 128,
            args.steps or (1 if quick else 10),
        ),
    }
    result = {
        "benchmark": "gpu_jax",
        "date": datetime.date.today().isoformat(),
        "command": "python benchmarks/gpu_jax.py "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "device": device_info(),
        "versions": versions(),
        "note": "float32 is strict on both sides (no TF32); mixed precision is bfloat16 "
        "autocast (PyTorch) / mixed_bfloat16 policy (Keras)",
        "results": {},
    }
    print(json.dumps(result["device"]), flush=True)
    for model_name in args.models.split(","):
        depth, shape, classes, batch, steps = specs[model_name]
        for precision in args.precision.split(","):
            for augment in (a == "on" for a in args.augment.split(",")):
                key = f"{model_name}/{precision}/{'augment' if augment else 'no_augment'}"
                runners = {
                    "keras_jax": keras_runner(
                        depth, shape, classes, batch, steps, precision, augment
                    )
                }
                if have_torch:
                    runners["torch_eager"] = torch_runner(
                        depth, shape, classes, batch, steps, precision, augment, False, device
                    )
                    if not args.no_compile:
                        try:
                            runners["torch_compile"] = torch_runner(
                                depth,
                                shape,
                                classes,
                                batch,
                                steps,
                                precision,
                                augment,
                                True,
                                device,
                            )
                        except Exception as e:  # inductor needs a compiler; record, go on
                            result["results"].setdefault(key, {})["torch_compile_error"] = (
                                f"{type(e).__name__}: {str(e)[:300]}"
                            )
                res = interleave(runners, rounds)
                entry = result["results"].setdefault(key, {})
                entry.update(
                    {
                        "batch": batch,
                        "input_shape": list(shape),
                        "steps_per_round": steps,
                        "images_per_s": res,
                        "compile_s": {k: r.info["compile_s"] for k, r in runners.items()},
                        "final_loss": {
                            k: round(r.info["box"]["loss"], 3) for k, r in runners.items()
                        },
                    }
                )
                if "torch_eager" in res:
                    entry["keras_jax_vs_torch_eager"] = round(
                        res["keras_jax"]["median"] / res["torch_eager"]["median"], 3
                    )
                if "torch_compile" in res:
                    entry["keras_jax_vs_torch_compile"] = round(
                        res["keras_jax"]["median"] / res["torch_compile"]["median"], 3
                    )
                line = ", ".join(f"{k} {v['median']:.0f}" for k, v in res.items())
                print(f"{key}: {line} images/s", flush=True)
                del runners
                keras.utils.clear_session()
    args.out.mkdir(parents=True, exist_ok=True)
    dev = re.sub(r"[^A-Za-z0-9]+", "-", result["device"]["name"]).strip("-").lower()
    path = args.out / f"{result['date']}-gpu-{dev}{'-quick' if quick else ''}.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {path}")
    return result


if __name__ == "__main__":
    main()
