"""kerascnn speed, measured side by side.

    python -m benchmarks.run [--quick] [--only NAME[,NAME...]] [--out DIR]

Benchmarks (``--only`` takes these names):

    peak            float32 matrix product GFLOP/s now (the machine's ceiling under today's load)
    train_cifar     training images/s, batch 128, CIFAR ResNet-20 and ResNet-56: kerascnn (Keras
                    BatchNormalization, the zoo default), kerascnn with FusedBatchNormalization,
                    a plain hand-written Keras model, PyTorch NCHW and channels_last
    train_imagenet  training images/s, ResNet-50 at 224x224, batch 32: kerascnn (both batch
                    norms), keras.applications.ResNet50, PyTorch NCHW and channels_last
    inference       ResNet-56 inference images/s at batch 128 and batch-1 latency p50/p99:
                    kerascnn.export.serving_export of the zoo model (fused batch norm, folded
                    into the convolutions by the export, its float32 ``serve`` endpoint),
                    export.saved_model of the model as is (Keras and fused batch norm);
                    tf.function; model.predict; PyTorch eval (NCHW, channels_last)
    augment         ResNet-56 training step with in-model flip + pad-crop, with RandAugment, none
    xla             training step with jit_compile on vs off (Keras and fused batch norm)
    levers          steps_per_execution, bfloat16 mixed precision, Grappler options, thread
                    settings (child processes), oneDNN off (full run only)
    pipeline        kerascnn.pipelines images/s (flip + pad-crop in the tf.data map)
    profile         where the time goes: TensorFlow op types of the ResNet-56 train step
                    (Keras vs fused batch norm) and of the SavedModel inference (as is vs folded)

Every comparison runs in one process: each candidate is built and warmed up, then the
candidates are timed in turns (the order rotates each round) so that the load of other jobs
on a shared machine falls on all of them alike. Reported: median images/s, min, max and the
spread ``(max - min) / median``; ratios are of medians measured in the same rounds.

Results: ``benchmarks/results/<date>-<machine>.json`` and ``.md`` (a markdown table), with the
machine, versions and command. ``--quick`` (about 10 minutes on 2 cores) takes fewer steps and
rounds; its numbers are noisier.
"""

from __future__ import annotations

import argparse
import datetime
import glob
import json
import os
import pathlib
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# PyTorch's CPU wheels use GNU OpenMP, whose threads spin while they wait. On a machine shared
# with other jobs (more runnable threads than cores) that collapses PyTorch's speed: a
# ResNet-20 training step measured 9 images/s with the default policy and 134 with PASSIVE, in
# the same minutes. TensorFlow's own thread pools are not affected. Set it before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import kerascnn  # noqa: E402
from benchmarks import machine, nets, summary  # noqa: E402
from kerascnn.fold import fold_batchnorm  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
REF_PEAK_GFLOPS = 250.0  # REFERENCES.md, "Throughput on this machine"
LR = 0.01  # small enough that random-label training stays finite for the timed steps


# --------------------------------------------------------------------------- timing
def summarize(values):
    med = statistics.median(values)
    return {
        "median": round(med, 2),
        "min": round(min(values), 2),
        "max": round(max(values), 2),
        "spread_pct": round(100.0 * (max(values) - min(values)) / med, 1) if med else None,
        "runs": [round(v, 2) for v in values],
    }


def interleave(runners: dict, rounds: int) -> dict:
    """Call each ``runner() -> value`` once per round, rotating the order; summaries."""
    names = list(runners)
    out = defaultdict(list)
    for r in range(rounds):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            out[name].append(runners[name]())
    return {name: summarize(out[name]) for name in names}


def log(*args):
    print(*args, flush=True)


def show(title, res, unit="images/s", base=None):
    log(f"  {title}")
    for name, s in res.items():
        ratio = ""
        if base and base in res and res[base]["median"]:
            ratio = f"  ({s['median'] / res[base]['median']:.2f}x {base})"
        log(f"    {name:34s} {s['median']:9.1f} {unit}  [{s['min']:.1f}..{s['max']:.1f}]{ratio}")


def ratios(res, base):
    b = res[base]["median"]
    return {k: round(v["median"] / b, 3) for k, v in res.items()}


# --------------------------------------------------------------------------- builders
def cifar_data(batch, shape=(32, 32, 3), classes=10, scale=1.0, seed=0):
    rng = np.random.default_rng(seed)
    x = (rng.normal(size=(batch, *shape)) * scale).astype("float32")
    y = rng.integers(0, classes, size=batch).astype("int32")
    return x, y


def keras_trainer(model, x, y, steps, jit_compile=False, steps_per_execution=1):
    """A runner timing ``steps`` training steps of ``model`` on one in-memory batch: Keras's
    own compiled train function (what ``fit`` calls each step) on one ``tf.data`` iterator
    kept for the whole benchmark. A ``model.fit`` call per round would also time Keras's
    per-call setup and a new ``tf.data`` iterator, which sometimes took 1.4-2.5 s on its own
    (benchmarks/results/2026-12-01-main-command-b4b5ac4-566fd08.json) against a 0.1-0.5 s step."""
    model.compile(
        keras.optimizers.SGD(LR, momentum=0.9),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=jit_compile,
        steps_per_execution=steps_per_execution,
    )
    iterator = iter(tf.data.Dataset.from_tensors((x, y)).repeat())
    model.make_train_function()
    train_function = model.train_function
    calls = max(1, steps // steps_per_execution)
    train_function(iterator)  # trace and compile
    batch = x.shape[0]
    state = {}

    def run():
        t = time.perf_counter()
        for _ in range(calls):
            logs = train_function(iterator)
        state["loss"] = float(logs["loss"])  # waits for the last step
        dt = time.perf_counter() - t
        return batch * calls * steps_per_execution / dt

    run.state = state
    return run


def torch_trainer(net, x, y, steps, channels_last):
    import torch
    from torch.nn import functional as F

    torch.set_flush_denormal(True)
    xt = torch.from_numpy(np.ascontiguousarray(np.transpose(x, (0, 3, 1, 2))))
    yt = torch.from_numpy(y.astype("int64"))
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
        xt = xt.contiguous(memory_format=torch.channels_last)
    net.train()
    opt = torch.optim.SGD(net.parameters(), lr=LR, momentum=0.9)
    state = {}

    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(net(xt), yt)
        loss.backward()
        opt.step()
        return loss

    step()

    def run():
        t = time.perf_counter()
        for _ in range(steps):
            loss = step()
        dt = time.perf_counter() - t
        state["loss"] = loss.item()
        return x.shape[0] * steps / dt

    run.state = state
    return run


def keras_batch_norm(name):
    return keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=name)


def kerascnn_resnet(depth, fused=True, **kw):
    """kerascnn's ResNet; ``fused=True`` is its default (``norm="batch"``, the fused kernel),
    ``fused=False`` swaps in Keras's own BatchNormalization (same weights)."""
    keras.utils.set_random_seed(0)
    norm = "batch" if fused else keras_batch_norm
    return kerascnn.zoo.resnet(depth=depth, norm=norm, **kw)


def macs(model):
    from kerascnn.zoo.flops import count_flops

    return count_flops(model)


# --------------------------------------------------------------------------- benchmarks
def bench_peak(cfg):
    """Float32 matrix product GFLOP/s, best of a few, at 1024 and 2048 (4096 in full)."""
    out = {}
    for n in (1024, 2048) + (() if cfg.quick else (4096,)):
        a = tf.random.normal((n, n))
        b = tf.random.normal((n, n))
        f = tf.function(lambda a, b: tf.matmul(a, b))
        f(a, b).numpy()
        best = 0.0
        for _ in range(5):
            t = time.perf_counter()
            f(a, b).numpy()
            best = max(best, 2 * n**3 / (time.perf_counter() - t) / 1e9)
        out[f"matmul_{n}_gflops"] = round(best, 1)
    out["best_gflops"] = max(out.values())
    log(f"  matmul peak now: {out}")
    return out


def bench_train_cifar(cfg):
    out = {}
    batch = 128
    have_torch = nets.torch_available()
    for depth in (20, 56):
        steps = cfg.steps_cifar * (2 if depth == 20 else 1)
        x, y = cifar_data(batch)
        base = kerascnn_resnet(depth)
        runners = {
            "kerascnn": keras_trainer(base, x, y, steps),
            "kerascnn_keras_bn": keras_trainer(kerascnn_resnet(depth, fused=False), x, y, steps),
            "plain_keras": keras_trainer(nets.plain_keras_cifar_resnet(depth), x, y, steps),
        }
        if have_torch:
            runners["torch_nchw"] = torch_trainer(
                nets.torch_cifar_resnet(depth), x, y, steps, False
            )
            runners["torch_channels_last"] = torch_trainer(
                nets.torch_cifar_resnet(depth), x, y, steps, True
            )
        res = interleave(runners, cfg.rounds)
        flops = 6.0 * macs(base)
        entry = {
            "batch": batch,
            "steps_per_round": steps,
            "images_per_s": res,
            "ratio_to_kerascnn": ratios(res, "kerascnn"),
            "train_gflop_per_image": round(flops / 1e9, 3),
            "final_loss": {
                k: round(r.state.get("loss", float("nan")), 3) for k, r in runners.items()
            },
        }
        entry["ceiling_images_per_s_at_250_gflops"] = round(REF_PEAK_GFLOPS * 1e9 / flops, 1)
        entry["pct_of_ceiling"] = {
            k: round(100 * v["median"] / entry["ceiling_images_per_s_at_250_gflops"], 1)
            for k, v in res.items()
        }
        if have_torch:
            entry["ratio_to_torch_channels_last"] = ratios(res, "torch_channels_last")
        show(f"ResNet-{depth} training, batch {batch}", res, base="kerascnn")
        out[f"resnet{depth}"] = entry
        del runners
        keras.utils.clear_session()
    return out


def bench_train_imagenet(cfg):
    batch = 32
    steps = cfg.steps_imagenet
    x, y = cifar_data(batch, (224, 224, 3), 1000)
    base = kerascnn_resnet(50)
    runners = {
        "kerascnn": keras_trainer(base, x, y, steps),
        "kerascnn_keras_bn": keras_trainer(kerascnn_resnet(50, fused=False), x, y, steps),
        "keras_applications": keras_trainer(
            keras.applications.ResNet50(weights=None, classifier_activation=None), x, y, steps
        ),
    }
    if nets.torch_available():
        if not cfg.quick:
            runners["torch_nchw"] = torch_trainer(nets.torch_resnet50(), x, y, steps, False)
        runners["torch_channels_last"] = torch_trainer(nets.torch_resnet50(), x, y, steps, True)
    res = interleave(runners, cfg.rounds_imagenet)
    flops = 6.0 * macs(base)
    show(f"ResNet-50 224x224 training, batch {batch}", res, base="kerascnn")
    out = {
        "batch": batch,
        "steps_per_round": steps,
        "images_per_s": res,
        "ratio_to_kerascnn": ratios(res, "kerascnn"),
        "train_gflop_per_image": round(flops / 1e9, 2),
        "ceiling_images_per_s_at_250_gflops": round(REF_PEAK_GFLOPS * 1e9 / flops, 2),
        "final_loss": {k: round(r.state.get("loss", float("nan")), 3) for k, r in runners.items()},
    }
    if "torch_channels_last" in res:
        out["ratio_to_torch_channels_last"] = ratios(res, "torch_channels_last")
    del runners
    keras.utils.clear_session()
    return out


def _latency_runner(call, x1, n):
    samples = []

    def run():
        for _ in range(n):
            t = time.perf_counter()
            call(x1)
            samples.append(1000.0 * (time.perf_counter() - t))
        return statistics.median(samples[-n:])

    run.samples = samples
    return run


def bench_inference(cfg):
    depth = 56
    batch = 128
    model = kerascnn_resnet(depth, fused=False)
    # non-trivial statistics, so folding is tested on real numbers
    x_warm, _ = cifar_data(256, seed=3)
    for _ in range(3):
        model(x_warm, training=True)
    fused = kerascnn_resnet(depth, fused=True)
    fused.set_weights(model.get_weights())
    x, _ = cifar_data(batch, seed=1)
    x1 = x[:1]
    xt, xt1 = tf.constant(x), tf.constant(x1)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="kerascnn-bench-"))
    loaded = {
        "savedmodel": tf.saved_model.load(kerascnn.export.saved_model(model, tmp / "plain")),
        # the product's export: batch norm folded, the float32 ``serve`` endpoint
        "serving_export": tf.saved_model.load(
            kerascnn.export.serving_export(fused, tmp / "serving")
        ),
        "savedmodel_fused_bn": tf.saved_model.load(
            kerascnn.export.saved_model(fused, tmp / "fused")
        ),
    }
    expected = model(x, training=False).numpy()
    check = {k: float(np.abs(v.serve(xt).numpy() - expected).max()) for k, v in loaded.items()}
    tf_fn = tf.function(lambda x: model(x, training=False))
    calls = {k: (lambda a, v=v: v.serve(a).numpy()) for k, v in loaded.items()}
    calls["tf_function"] = lambda a: tf_fn(a).numpy()
    n_predict = 10 * batch
    x_predict = np.concatenate([x] * 10)
    torch_calls = {}
    if nets.torch_available():
        import torch

        for layout in ("nchw", "channels_last"):
            net = nets.torch_cifar_resnet(depth).eval()
            if layout == "channels_last":
                net = net.to(memory_format=torch.channels_last)

            def tcall(a, net=net, cl=layout == "channels_last"):
                t = torch.from_numpy(np.ascontiguousarray(np.transpose(a, (0, 3, 1, 2))))
                if cl:
                    t = t.contiguous(memory_format=torch.channels_last)
                with torch.inference_mode():
                    return net(t).numpy()

            torch_calls[f"torch_eval_{layout}"] = tcall
    # batch 128 throughput
    runners = {}
    reps = cfg.infer_batches
    for name, call in calls.items():
        arg = xt
        call(arg)

        def run(call=call, arg=arg):
            t = time.perf_counter()
            for _ in range(reps):
                call(arg)
            return batch * reps / (time.perf_counter() - t)

        runners[name] = run
    model.predict(x_predict, batch_size=batch, verbose=0)

    def run_predict():
        t = time.perf_counter()
        model.predict(x_predict, batch_size=batch, verbose=0)
        return n_predict / (time.perf_counter() - t)

    runners["model_predict"] = run_predict
    for name, call in torch_calls.items():
        call(x)

        def run(call=call):
            t = time.perf_counter()
            for _ in range(reps):
                call(x)
            return batch * reps / (time.perf_counter() - t)

        runners[name] = run
    res = interleave(runners, cfg.rounds)
    show(f"ResNet-56 inference, batch {batch}", res, base="savedmodel")
    # batch 1 latency
    lat_runners = {}
    n1 = cfg.latency_calls
    for name, call in calls.items():
        call(xt1)
        lat_runners[name] = _latency_runner(lambda a, call=call: call(tf.constant(a)), x1, n1)
    model.predict(x1, verbose=0)
    lat_runners["model_predict"] = _latency_runner(
        lambda a: model.predict(a, verbose=0), x1, max(5, n1 // 4)
    )
    for name, call in torch_calls.items():
        call(x1)
        lat_runners[name] = _latency_runner(call, x1, n1)
    interleave(lat_runners, cfg.rounds)
    latency = {}
    for name, r in lat_runners.items():
        s = np.asarray(r.samples)
        latency[name] = {
            "p50_ms": round(float(np.percentile(s, 50)), 2),
            "p99_ms": round(float(np.percentile(s, 99)), 2),
            "calls": int(s.size),
        }
        log(
            f"    batch-1 {name:30s} p50 {latency[name]['p50_ms']:7.2f} ms  p99 {latency[name]['p99_ms']:7.2f} ms"
        )
    out = {
        "model": "kerascnn.zoo.resnet(depth=56)",
        "batch": batch,
        "images_per_s": res,
        "ratio_to_savedmodel": ratios(res, "savedmodel"),
        "inference_gflop_per_image": round(2 * macs(model) / 1e9, 3),
        "ceiling_images_per_s_at_250_gflops": round(REF_PEAK_GFLOPS * 1e9 / (2 * macs(model)), 1),
        "batch1_latency": latency,
        "max_abs_diff_vs_model": check,
    }
    if "torch_eval_channels_last" in res:
        best_torch = max(res[k]["median"] for k in torch_calls)
        out["serving_export_vs_best_torch_eval"] = round(
            res["serving_export"]["median"] / best_torch, 3
        )
    return out


def bench_augment(cfg):
    from kerascnn import layers as L

    depth = 20 if cfg.quick else 56
    batch = 128
    steps = cfg.steps_cifar * (2 if depth == 20 else 1)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, size=(batch, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 10, size=batch).astype("int32")

    def with_front(front, fused=False):
        net = kerascnn_resnet(depth, fused=fused)
        if not front:
            return net
        inputs = keras.Input((32, 32, 3))
        h = inputs
        for layer in front:
            h = layer(h)
        return keras.Model(inputs, net(h))

    runners = {
        "none": keras_trainer(with_front([]), x, y, steps),
        "flip_padcrop": keras_trainer(
            with_front([L.RandomFlip(seed=1), L.RandomPadCrop(4, seed=2)]), x, y, steps
        ),
        "randaugment": keras_trainer(
            with_front([L.RandAugment(num_ops=2, magnitude=9, seed=3)]), x, y, steps
        ),
        "none_fused_bn": keras_trainer(with_front([], fused=True), x, y, steps),
        "flip_padcrop_fused_bn": keras_trainer(
            with_front([L.RandomFlip(seed=1), L.RandomPadCrop(4, seed=2)], fused=True), x, y, steps
        ),
    }
    res = interleave(runners, cfg.rounds)
    show(f"ResNet-{depth} training with in-model augmentation", res, base="none")
    cost = {
        "flip_padcrop_pct": round(
            100 * (res["none"]["median"] / res["flip_padcrop"]["median"] - 1), 1
        ),
        "randaugment_pct": round(
            100 * (res["none"]["median"] / res["randaugment"]["median"] - 1), 1
        ),
        "flip_padcrop_fused_bn_pct": round(
            100 * (res["none_fused_bn"]["median"] / res["flip_padcrop_fused_bn"]["median"] - 1), 1
        ),
    }
    log(f"    step-time cost: {cost}")
    keras.utils.clear_session()
    return {"depth": depth, "batch": batch, "images_per_s": res, "step_time_cost": cost}


def bench_xla(cfg):
    depth = 20 if cfg.quick else 56
    batch = 128
    steps = cfg.steps_cifar * (2 if depth == 20 else 1)
    x, y = cifar_data(batch)
    runners = {
        "keras_bn": keras_trainer(kerascnn_resnet(depth, fused=False), x, y, steps),
        "keras_bn_xla": keras_trainer(
            kerascnn_resnet(depth, fused=False), x, y, steps, jit_compile=True
        ),
        "fused_bn": keras_trainer(kerascnn_resnet(depth, fused=True), x, y, steps),
        "fused_bn_xla": keras_trainer(
            kerascnn_resnet(depth, fused=True), x, y, steps, jit_compile=True
        ),
    }
    res = interleave(runners, cfg.rounds)
    show(f"ResNet-{depth} training, XLA on/off", res, base="keras_bn")
    keras.utils.clear_session()
    return {
        "depth": depth,
        "batch": batch,
        "images_per_s": res,
        "ratio_to_keras_bn": ratios(res, "keras_bn"),
    }


def _child_train(depth, steps, rounds):
    """Run in a child process: ResNet training and inference images/s (thread levers)."""
    x, y = cifar_data(128)
    run = keras_trainer(kerascnn_resnet(depth, fused=True), x, y, steps)
    model = kerascnn_resnet(depth, fused=True)
    f = tf.function(lambda a: model(a, training=False))
    xt = tf.constant(x)
    f(xt)

    def infer():
        t = time.perf_counter()
        for _ in range(5):
            f(xt).numpy()
        return 5 * 128 / (time.perf_counter() - t)

    res = interleave({"train": run, "infer": infer}, rounds)
    print("CHILD_RESULT " + json.dumps({k: v["median"] for k, v in res.items()}), flush=True)


def _spawn(env_extra, args, timeout=600):
    env = {**os.environ, **env_extra}
    cmd = [sys.executable, "-m", "benchmarks.run", *args]
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    for line in p.stdout.splitlines():
        if line.startswith("CHILD_RESULT "):
            return json.loads(line[len("CHILD_RESULT ") :])
    return {"error": (p.stderr or p.stdout)[-500:]}


def bench_levers(cfg):
    out = {}
    batch = 128
    x, y = cifar_data(batch)
    depth = 20
    steps = cfg.steps_cifar * 2
    # steps_per_execution, bfloat16, Grappler options: one interleaved in-process comparison
    runners = {
        "fused_bn_spe1": keras_trainer(kerascnn_resnet(depth, fused=True), x, y, steps),
        f"fused_bn_spe{steps}": keras_trainer(
            kerascnn_resnet(depth, fused=True), x, y, steps, steps_per_execution=steps
        ),
        "keras_bn": keras_trainer(kerascnn_resnet(depth, fused=False), x, y, steps),
    }
    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        runners["keras_bn_mixed_bfloat16"] = keras_trainer(
            kerascnn_resnet(depth, fused=False), x, y, steps
        )
        runners["fused_bn_mixed_bfloat16"] = keras_trainer(
            kerascnn_resnet(depth, fused=True), x, y, steps
        )
    finally:
        keras.config.set_dtype_policy(policy)
    res = interleave(runners, cfg.rounds)
    show(f"ResNet-{depth} training levers, batch {batch}", res, base="fused_bn_spe1")
    out["in_process"] = {
        "depth": depth,
        "images_per_s": res,
        "ratio_to_fused_bn_spe1": ratios(res, "fused_bn_spe1"),
        "final_loss": {k: round(r.state.get("loss", float("nan")), 3) for k, r in runners.items()},
    }
    del runners
    keras.utils.clear_session()
    # threads, Grappler options and oneDNN: a fresh process each (set before the first op)
    configs = {
        "default": {},
        "intra1_inter1": {"KERASCNN_BENCH_THREADS": "1,1"},
        "grappler_remapping_off": {"KERASCNN_BENCH_GRAPPLER": '{"remapping": false}'},
    }
    if not cfg.quick:
        configs["intra2_inter1"] = {"KERASCNN_BENCH_THREADS": "2,1"}
        configs["intra2_inter2_omp2"] = {"KERASCNN_BENCH_THREADS": "2,2", "OMP_NUM_THREADS": "2"}
        configs["grappler_off"] = {"KERASCNN_BENCH_GRAPPLER": '{"disable_meta_optimizer": true}'}
        configs["onednn_off"] = {"TF_ENABLE_ONEDNN_OPTS": "0"}
    child_rounds = 1 if cfg.quick else 2
    child = defaultdict(lambda: defaultdict(list))
    for _ in range(child_rounds):
        for name, env in configs.items():
            r = _spawn(env, ["--child", f"{depth},{steps},{2 if cfg.quick else 3}"])
            for k, v in r.items():
                child[name][k].append(v)
            log(f"    threads/oneDNN {name:22s} {r}")
    out["processes"] = {
        "note": "fused-BN ResNet-20, train (the compiled train step) and tf.function inference images/s at batch "
        "128, one child process per setting, settings alternated",
        "results": {
            n: {k: (statistics.median(v) if k != "error" else v[-1]) for k, v in d.items()}
            for n, d in child.items()
        },
    }
    return out


def bench_pipeline(cfg):
    from kerascnn import pipelines

    npz = ROOT.parent / "shared" / "data" / "cifar10" / "train.npz"
    source = os.fspath(npz) if npz.exists() else "cifar10-sample"
    ds = pipelines.load(source)
    batches = 20 if cfg.quick else 60
    rates = []
    pipe = pipelines.build(ds, batch_size=128, augment="flip,padcrop", seed=0)
    it = iter(pipe.dataset.repeat())
    next(it)
    for _ in range(cfg.rounds):
        t = time.perf_counter()
        n = 0
        for _ in range(batches):
            n += int(next(it)[0].shape[0])
        rates.append(n / (time.perf_counter() - t))
    res = summarize(rates)
    log(f"  pipeline (flip+padcrop, batch 128, {source}): {res['median']:.0f} images/s")
    return {"source": source, "augment": "flip,padcrop", "batch": 128, "images_per_s": res}


# --------------------------------------------------------------------------- profile
def _op_profile(fn, calls):
    """Seconds per TensorFlow op type over ``calls`` calls of ``fn`` (host CPU trace)."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    logdir = tempfile.mkdtemp(prefix="kerascnn-prof-")
    fn()
    tf.profiler.experimental.start(logdir)
    t = time.perf_counter()
    for _ in range(calls):
        fn()
    wall = time.perf_counter() - t
    tf.profiler.experimental.stop()
    path = sorted(glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True))[-1]
    space = xplane_pb2.XSpace()
    space.ParseFromString(pathlib.Path(path).read_bytes())
    by_type = defaultdict(float)
    for plane in space.planes:
        if not plane.name.startswith("/host:CPU"):
            continue
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):
                continue
            for ev in line.events:
                md = plane.event_metadata[ev.metadata_id]
                if ":" in md.name and md.display_name:
                    by_type[md.display_name] += ev.duration_ps * 1e-12
    total = sum(by_type.values())
    top = sorted(by_type.items(), key=lambda kv: -kv[1])[:12]
    return {
        "wall_s_per_call": round(wall / calls, 4),
        "op_s_per_call": round(total / calls, 4),
        "top_ops_pct": {k: round(100 * v / total, 1) for k, v in top},
    }


def bench_profile(cfg):
    out = {}
    batch = 128
    x, y = cifar_data(batch)
    xt, yt = tf.constant(x), tf.constant(y)
    for name, fused in (("keras_bn", False), ("fused_bn", True)):
        model = kerascnn_resnet(56, fused=fused)
        opt = keras.optimizers.SGD(LR, momentum=0.9)
        loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

        @tf.function
        def step(model=model, opt=opt, loss_fn=loss_fn):
            with tf.GradientTape() as tape:
                loss = loss_fn(yt, model(xt, training=True))
            grads = tape.gradient(loss, model.trainable_variables)
            opt.apply(grads, model.trainable_variables)
            return loss

        calls = 1 if cfg.quick else 3
        out[f"resnet56_train_step_{name}"] = _op_profile(lambda step=step: step().numpy(), calls)
    model = kerascnn_resnet(56)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="kerascnn-bench-"))
    for name, m in (("savedmodel", model), ("savedmodel_folded_bn", fold_batchnorm(model))):
        loaded = tf.saved_model.load(kerascnn.export.saved_model(m, tmp / name))
        out[f"resnet56_inference_{name}"] = _op_profile(lambda lo=loaded: lo.serve(xt).numpy(), 5)
    for k, v in out.items():
        top = ", ".join(f"{op} {pct}%" for op, pct in list(v["top_ops_pct"].items())[:6])
        log(f"    {k}: {v['wall_s_per_call'] * 1000:.0f} ms/call; {top}")
    return out


BENCHES = {
    "peak": bench_peak,
    "train_cifar": bench_train_cifar,
    "train_imagenet": bench_train_imagenet,
    "inference": bench_inference,
    "augment": bench_augment,
    "xla": bench_xla,
    "levers": bench_levers,
    "pipeline": bench_pipeline,
    "profile": bench_profile,
}


# --------------------------------------------------------------------------- report
def machine_info():
    info = machine.cpu()
    info.update({
        "hostname": socket.gethostname(),
        "gpus": [g.name for g in tf.config.list_physical_devices("GPU")],
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
    })  # fmt: skip
    return info


def versions():
    v = {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "kerascnn": kerascnn.__version__,
        "numpy": np.__version__,
    }
    try:
        import torch

        v["torch"] = torch.__version__
        v["torch_threads"] = torch.get_num_threads()
    except ImportError:
        v["torch"] = None
    return v


def markdown(result):
    lines = [
        f"# kerascnn benchmarks, {result['date']}",
        "",
        f"Machine: {machine.label(result['machine'])}, "
        f"load average at start {result['machine'].get('load_average_at_start')}. Versions: "
        + ", ".join(f"{k} {v}" for k, v in result["versions"].items())
        + ".",
        "",
        f"Command: `{result['command']}` ({'quick' if result['quick'] else 'full'} run, "
        f"{result['wall_s']:.0f} s). Medians of interleaved rounds; [min..max].",
        "",
    ]
    b = result["benchmarks"]
    if "peak" in b:
        lines += [f"Float32 matmul now: {b['peak']['best_gflops']} GFLOP/s (reference 250).", ""]

    def table(title, res, base, extra=None):
        lines.extend(
            [
                f"## {title}",
                "",
                "| candidate | images/s | range | vs " + base + " |",
                "|---|---|---|---|",
            ]
        )
        for name, s in res.items():
            lines.append(
                f"| {name} | {s['median']:.1f} | {s['min']:.1f}..{s['max']:.1f} | "
                f"{s['median'] / res[base]['median']:.2f}x |"
            )
        if extra:
            lines.extend(["", extra])
        lines.append("")

    for depth in (20, 56):
        e = b.get("train_cifar", {}).get(f"resnet{depth}")
        if e:
            table(
                f"Training, CIFAR ResNet-{depth}, batch {e['batch']}",
                e["images_per_s"],
                "kerascnn",
                f"Ceiling at 250 GFLOP/s: {e['ceiling_images_per_s_at_250_gflops']} images/s; "
                f"% of ceiling: {e['pct_of_ceiling']}.",
            )
    if "train_imagenet" in b:
        e = b["train_imagenet"]
        table(f"Training, ResNet-50 224x224, batch {e['batch']}", e["images_per_s"], "kerascnn")
    if "inference" in b:
        e = b["inference"]
        table(
            f"Inference, ResNet-56, batch {e['batch']}",
            e["images_per_s"],
            "savedmodel",
            f"Ceiling at 250 GFLOP/s: {e['ceiling_images_per_s_at_250_gflops']} images/s.",
        )
        lines += ["| batch 1 | p50 ms | p99 ms |", "|---|---|---|"]
        for name, s in e["batch1_latency"].items():
            lines.append(f"| {name} | {s['p50_ms']} | {s['p99_ms']} |")
        lines.append("")
    if "augment" in b:
        e = b["augment"]
        table(
            f"In-model augmentation, ResNet-{e['depth']} training",
            e["images_per_s"],
            "none",
            f"Step-time cost: {e['step_time_cost']}.",
        )
    if "xla" in b:
        e = b["xla"]
        table(f"XLA, ResNet-{e['depth']} training", e["images_per_s"], "keras_bn")
    if "levers" in b:
        e = b["levers"]["in_process"]
        table(
            f"Levers, ResNet-{e['depth']} training",
            e["images_per_s"],
            "fused_bn_spe1",
        )
        lines += [
            "| process setting | train images/s | tf.function inference images/s |",
            "|---|---|---|",
        ]
        for name, r in b["levers"]["processes"]["results"].items():
            lines.append(f"| {name} | {r.get('train', r.get('error'))} | {r.get('infer', '')} |")
        lines.append("")
    if "pipeline" in b:
        e = b["pipeline"]
        lines += [
            f"## Input pipeline\n\n{e['augment']}, batch {e['batch']}: "
            f"{e['images_per_s']['median']:.0f} images/s ({e['source']}).",
            "",
        ]
    if "profile" in b:
        lines += ["## Profile (share of TensorFlow op time)", ""]
        for name, p in b["profile"].items():
            ops = ", ".join(f"{k} {v}%" for k, v in p["top_ops_pct"].items())
            lines.append(f"- {name}: {p['wall_s_per_call'] * 1000:.0f} ms/call: {ops}")
        lines.append("")
    return "\n".join(lines)


class Config:
    def __init__(self, quick):
        self.quick = quick
        self.rounds = 3 if quick else 5
        self.rounds_imagenet = 2 if quick else 3
        self.steps_cifar = 2 if quick else 4
        self.steps_imagenet = 1 if quick else 3
        self.infer_batches = 2 if quick else 5
        self.latency_calls = 20 if quick else 60


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps and rounds (~10 min)")
    parser.add_argument("--only", default=None, help="comma-separated: " + ", ".join(BENCHES))
    parser.add_argument("--out", type=pathlib.Path, default=RESULTS)
    parser.add_argument(
        "--summary",
        nargs="?",
        const="",
        metavar="RESULTS_JSON",
        help="print the table of the ratios the README quotes (benchmarks/summary.py): of the "
        "given results file, or (no file) after measuring " + ", ".join(summary.BENCHMARKS),
    )
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        depth, steps, rounds = (int(v) for v in args.child.split(","))
        return _child_train(depth, steps, rounds)
    if args.summary:
        log(summary.markdown(summary.load(args.summary), args.summary))
        return None
    if args.summary == "" and not args.only:
        args.only = ",".join(summary.BENCHMARKS)
    names = list(BENCHES) if not args.only else [n.strip() for n in args.only.split(",")]
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; choose from {', '.join(BENCHES)}")
    cfg = Config(args.quick)
    start = time.perf_counter()
    result = {
        "date": datetime.date.today().isoformat(),
        "command": "python -m benchmarks.run " + " ".join(sys.argv[1:] if argv is None else argv),
        "quick": args.quick,
        "machine": machine_info(),
        "versions": versions(),
        "benchmarks": {},
    }
    for name in names:
        log(f"== {name}")
        t = time.perf_counter()
        try:
            result["benchmarks"][name] = BENCHES[name](cfg)
        except Exception as e:  # keep the other benchmarks' results
            log(f"  {name} failed: {type(e).__name__}: {e}")
            result["benchmarks"][name] = {"error": f"{type(e).__name__}: {e}"}
        log(f"  ({time.perf_counter() - t:.0f} s)")
    result["wall_s"] = round(time.perf_counter() - start, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"{result['date']}-{socket.gethostname().split('.')[0]}"
    if args.only:
        stem += "-" + "-".join(names)
    if args.quick:
        stem += "-quick"
    if result["machine"].get("isa_caps"):  # a run with the instruction set capped
        stem += "-" + "-".join(f"{k}-{v}" for k, v in result["machine"]["isa_caps"].items())
    (args.out / f"{stem}.json").write_text(json.dumps(result, indent=1) + "\n")
    (args.out / f"{stem}.md").write_text(markdown(result) + "\n")
    log(f"wrote {args.out / (stem + '.json')} and .md ({result['wall_s']:.0f} s)")
    if args.summary == "":
        log(summary.markdown(result, _relative(args.out / f"{stem}.json")))
    return result


def _relative(path: pathlib.Path) -> str:
    path = path.resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def _apply_process_env():
    """Thread and Grappler settings of a ``levers`` child process (before the first op)."""
    spec = os.environ.get("KERASCNN_BENCH_THREADS")
    if spec:
        intra, inter = (int(v) for v in spec.split(","))
        tf.config.threading.set_intra_op_parallelism_threads(intra)
        tf.config.threading.set_inter_op_parallelism_threads(inter)
    grappler = os.environ.get("KERASCNN_BENCH_GRAPPLER")
    if grappler:
        tf.config.optimizer.set_experimental_options(json.loads(grappler))


_apply_process_env()

if __name__ == "__main__":
    main()
