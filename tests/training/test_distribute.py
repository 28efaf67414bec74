"""Distributed training: MirroredStrategy over two logical CPU devices, synchronized batch
normalization, MultiWorkerMirroredStrategy with two worker processes on 127.0.0.1, and
resuming after a worker dies.

Logical CPU devices must be configured before TensorFlow runs its first op, and
MultiWorkerMirroredStrategy must be created before any other op, so those tests run their
TensorFlow code in fresh subprocesses. Deselect the multi-process ones locally with
``-m "not multiprocess"`` (register the marker in pyproject.toml to silence pytest's
warning about it).
"""

import json
import os
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
from conftest import epochs_logged, free_ports, kill_second_when, stop_processes, write_class_npz

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_BACKEND": "tensorflow", "PYTHONPATH": REPO}
# Tolerance for "equal to the single-device run". The comparisons run in float64
# (keras.config.set_floatx), where the distributed and the single-device computations are the
# same math summed in a different order: measured gap 7e-16 after 3 SGD steps, so 1e-9 has
# ample headroom, while a per-replica (unsynchronized) batch norm misses it by seven orders of
# magnitude (measured 5e-2). In float32 the same runs differ by 1e-6 to 1e-4 depending on the
# data: rounding differences (sync BN's variance is E[x^2] - E[x]^2 from all-reduced sums),
# amplified by BN's 1/sigma on batches of 8 per replica; they vanish in float64.
WEIGHT_TOL = 1e-9

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="tf.distribute needs the TensorFlow backend"
)


def _python(script: str, timeout: float, env=None, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-c", script], env=env or ENV, cwd=REPO, capture_output=True,
        text=True, timeout=timeout, **kwargs,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    return result


def _last_json(stdout: str) -> dict:
    return json.loads([line for line in stdout.splitlines() if line.startswith("{")][-1])


def _tf_config(ports, index: int) -> str:
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    return json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})


# --------------------------------------------------------------------------- in-process


def test_scale_recipe_rules():
    from kerascnn.training import get_recipe
    from kerascnn.training.distribute import scale_recipe

    base = get_recipe("resnet-cifar")  # batch 128, lr 0.1
    linear = scale_recipe(base, 4)
    assert (linear.batch_size, linear.lr) == (512, pytest.approx(0.4))
    sqrt = scale_recipe(base, 4, "sqrt")
    assert (sqrt.batch_size, sqrt.lr) == (512, pytest.approx(0.2))
    assert scale_recipe(base, 4, "none") == base
    assert scale_recipe(base, 1) == base
    with pytest.raises(ValueError, match="lr_scaling"):
        scale_recipe(base, 2, "quadratic")
    with pytest.raises(ValueError, match="num_replicas"):
        scale_recipe(base, 0)


def test_resolve_strategy_names_and_tf_config(monkeypatch):
    import tensorflow as tf

    from kerascnn.training import distribute

    with pytest.raises(ValueError, match="strategy must be one of"):
        distribute.resolve_strategy("horovod")
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert distribute.num_workers() == 1
    default = distribute.resolve_strategy("auto")  # no GPU, no cluster: one device
    assert default is tf.distribute.get_strategy()
    assert distribute.worker_role(default) == (None, 0, True)
    monkeypatch.setenv("TF_CONFIG", _tf_config([1, 2, 3], 1))
    assert distribute.num_workers() == 3
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ValueError, match="TF_CONFIG is not valid JSON"):
        distribute.tf_config()


def test_shard_dataset_sets_the_policy():
    import tensorflow as tf

    from kerascnn.training.distribute import shard_dataset

    ds = shard_dataset(tf.data.Dataset.range(8).batch(2))
    policy = ds.options().experimental_distribute.auto_shard_policy
    assert policy == tf.data.experimental.AutoShardPolicy.DATA
    with pytest.raises(ValueError, match="shard_policy"):
        shard_dataset(ds, "rows")


def test_model_built_outside_the_scope_is_refused():
    import keras

    from kerascnn.training.distribute import _check_created_in_scope

    class Fake:
        class extended:  # noqa: N801
            @staticmethod
            def variable_created_in_scope(v):
                return False

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="not created under the strategy's scope"):
        _check_created_in_scope(model, Fake)


def test_loop_refuses_only_callbacks_it_cannot_run_and_explains_small_data():
    """The multi-worker loop (here under the default strategy) refuses a callback that
    cannot work there with one line naming it and why, and says why a too-small training
    set gives no batch."""
    import tensorflow as tf

    from kerascnn.training import get_recipe
    from kerascnn.training.distribute import fit_distributed

    def model():
        return keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])

    x, y = np.zeros((4, 3), "float32"), np.zeros(4, "int32")
    small = tf.data.Dataset.from_tensor_slices((x, y)).batch(8, drop_remainder=True)
    recipe = get_recipe("vgg-sweep", batch_size=8, epochs=1)
    refused = {
        keras.callbacks.BackupAndRestore("/tmp/unused"): "backs itself up",
        keras.callbacks.ReduceLROnPlateau(): "needs model.optimizer",
        keras.callbacks.TensorBoard("/tmp/unused"): "needs model.optimizer",
    }
    for callback, why in refused.items():
        with pytest.raises(ValueError) as error:
            fit_distributed(model, small, None, recipe, strategy="none", trainer="loop",
                            callbacks=[keras.callbacks.TerminateOnNaN(), callback])  # fmt: skip
        message = str(error.value)
        assert "\n" not in message
        assert message.startswith(f"the Keras callback {type(callback).__name__} cannot run")
        assert why in message
    # callbacks that only need model.fit's hooks are accepted: the data-size error comes next
    with pytest.raises(ValueError, match="smaller than one global batch of 8 examples"):
        fit_distributed(model, small, None, recipe, strategy="none", trainer="loop",
                        callbacks=[keras.callbacks.TerminateOnNaN()])  # fmt: skip


def test_cli_train_has_strategy_options():
    from kerascnn.cli import build_parser

    args = build_parser().parse_args(
        ["train", "lenet5", "--strategy", "multiworker", "--lr-scaling", "sqrt"]
    )
    assert (args.strategy, args.lr_scaling) == ("multiworker", "sqrt")
    assert build_parser().parse_args(["train", "lenet5"]).strategy == "auto"
    args = build_parser().parse_args(
        ["train", "lenet5", "--strategy", "data-parallel", "--norm", "sync_batch",
         "--coordinator", "10.0.0.1:1234", "--num-processes", "2", "--process-id", "1"]
    )  # fmt: skip
    assert (args.strategy, args.norm, args.coordinator, args.num_processes, args.process_id) == (
        "data-parallel",
        "sync_batch",
        "10.0.0.1:1234",
        2,
        1,
    )


# Both multi-device scripts (after `from kerascnn import zoo` and `get_recipe`): their recipe, 3 SGD
# steps on a global batch of 16, and build(norm), a small zoo ResNet that starts from the same
# weights every time, so that a distributed run and the one-device reference compare weight for
# weight.
SAME_START = r"""
recipe = get_recipe("vgg-sweep", optimizer="sgd", lr=0.05, momentum=0.9, schedule="constant",
                    epochs=1, batch_size=16)
keras.utils.set_random_seed(1)
init = zoo.resnet(depth=8, input_shape=(16, 16, 3), num_classes=10).get_weights()


def build(norm):
    model = zoo.resnet(depth=8, input_shape=(16, 16, 3), num_classes=10, norm=norm)
    model.set_weights(init)
    return model
"""

# ---------------------------------------------------- MirroredStrategy, two logical CPUs

MIRRORED = (
    r"""
import json
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras
import numpy as np

keras.config.set_floatx("float64")  # see WEIGHT_TOL in the test module

from kerascnn import zoo
from kerascnn.training import fit, get_recipe
from kerascnn.training.distribute import fit_distributed, resolve_strategy

out = {}
mirrored = resolve_strategy("mirrored", devices=["/cpu:0", "/cpu:1"])
out["replicas"] = mirrored.num_replicas_in_sync

# 1. synchronized batch norm: the statistics of the global batch, not of each replica's half
rng = np.random.default_rng(0)
halves = [rng.normal(0.0, 1.0, (8, 4)), rng.normal(3.0, 2.0, (8, 4))]
whole = np.concatenate(halves)
eps = 1e-3
with mirrored.scope():
    layers = {s: keras.layers.BatchNormalization(synchronized=s, momentum=0.0, epsilon=eps) for s in (True, False)}
    for layer in layers.values():
        layer.build((None, 4))
values = mirrored.experimental_distribute_values_from_function(
    lambda ctx: tf.constant(halves[ctx.replica_id_in_sync_group])
)
for synchronized, layer in layers.items():
    outputs = tf.function(lambda v, layer=layer: mirrored.run(lambda x: layer(x, training=True), args=(v,)))(values)
    got = np.concatenate([t.numpy() for t in mirrored.experimental_local_results(outputs)])
    global_stats = (whole - whole.mean(0)) / np.sqrt(whole.var(0) + eps)
    local_stats = np.concatenate([(h - h.mean(0)) / np.sqrt(h.var(0) + eps) for h in halves])
    key = "sync" if synchronized else "local"
    out[key + "_vs_global"] = float(np.abs(got - global_stats).max())
    out[key + "_vs_local"] = float(np.abs(got - local_stats).max())
    if synchronized:
        out["sync_moving_mean"] = float(np.abs(layer.moving_mean.numpy() - whole.mean(0)).max())
        out["sync_moving_var"] = float(np.abs(layer.moving_variance.numpy() - whole.var(0)).max())

# 2. a small zoo model: 3 SGD steps, global batch 16, same start, no augmentation
x = rng.normal(size=(48, 16, 16, 3))
y = rng.integers(0, 10, size=48)
ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
"""
    + SAME_START
    + r"""

reference = build("batch")
fit(reference, ds, None, recipe, jit_compile=False, verbose=0)
ref = reference.get_weights()


def gap(weights):
    return max(float(np.abs(a - b).max()) for a, b in zip(weights, ref, strict=True))


out["moved"] = gap(init)
for name, norm, trainer in (("sync_fit", "sync_batch", "fit"), ("sync_loop", "sync_batch", "loop"),
                            ("local_fit", "batch", "fit")):
    with mirrored.scope():
        model = build(norm)
    fit_distributed(model, ds, None, recipe, strategy=mirrored, trainer=trainer, jit_compile=False,
                    verbose=0)
    out[name] = gap(model.get_weights())
print(json.dumps(out))
"""
)


def test_mirrored_two_logical_cpus_sync_bn_and_same_weights_as_one_device():
    out = _last_json(_python(MIRRORED, timeout=300).stdout)
    assert out["replicas"] == 2
    # synchronized BN normalizes each replica's half with the global batch's statistics ...
    assert out["sync_vs_global"] < 1e-12
    assert out["sync_moving_mean"] < 1e-12 and out["sync_moving_var"] < 1e-12
    # ... unlike the default, which uses each half's own (the halves differ by design)
    assert out["local_vs_local"] < 1e-12
    assert out["local_vs_global"] > 0.3 and out["sync_vs_local"] > 0.3
    # 3 steps moved the weights, and both trainers under the strategy reproduce one device
    assert out["moved"] > 0.1
    assert out["sync_fit"] < WEIGHT_TOL, out
    assert out["sync_loop"] < WEIGHT_TOL, out  # kerascnn's strategy.run loop
    assert out["local_fit"] > 100 * WEIGHT_TOL, out  # per-replica BN really differs


# ------------------------------------------- MultiWorkerMirroredStrategy, two processes

WORKER = (
    r"""
import json, sys

from kerascnn.training.distribute import resolve_strategy

strategy = resolve_strategy("multiworker")  # first: before any other TensorFlow op

import keras
import numpy as np
import tensorflow as tf

keras.config.set_floatx("float64")  # see WEIGHT_TOL in the test module

from kerascnn import zoo
from kerascnn.training import fit, get_recipe
from kerascnn.training.distribute import fit_distributed, worker_role

rng = np.random.default_rng(0)
x = rng.normal(size=(64, 16, 16, 3))
y = rng.integers(0, 10, size=64)
ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)  # global batch 16, 8 per worker
"""
    + SAME_START
    + r"""

with strategy.scope():
    model = build("sync_batch")
result = fit_distributed(model, ds, None, recipe, strategy=strategy, verbose=0)
weights = model.get_weights()
task_type, task_id, chief = worker_role(strategy)
# the same run on one device, in this process, outside the strategy's scope
reference = build("batch")
fit(reference, ds, None, recipe, jit_compile=False, verbose=0)
gap = max(float(np.abs(a - b).max()) for a, b in zip(weights, reference.get_weights(), strict=True))
print(json.dumps({
    "task": task_id, "chief": chief, "replicas": strategy.num_replicas_in_sync,
    "epochs": result.epochs_run, "loss": result.history["loss"][-1],
    "checksum": float(sum(np.abs(w).sum() for w in weights)), "gap_to_one_device": gap,
}))
"""
)


@pytest.mark.multiprocess
def test_multiworker_two_processes_complete_an_epoch_with_the_same_loss():
    ports = free_ports(2)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER],
            env={**ENV, "TF_CONFIG": _tf_config(ports, i)},
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for i in range(2)
    ]
    try:
        outputs = [proc.communicate(timeout=240) for proc in procs]
    finally:
        stop_processes(procs)
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err[-4000:]
    reports = [_last_json(out) for out, _ in outputs]
    assert [r["task"] for r in reports] == [0, 1]
    assert [r["chief"] for r in reports] == [True, False]
    assert all(r["replicas"] == 2 and r["epochs"] == 1 for r in reports)
    assert reports[0]["loss"] == reports[1]["loss"]  # one all-reduced number
    assert np.isfinite(reports[0]["loss"])
    assert reports[0]["checksum"] == pytest.approx(reports[1]["checksum"], rel=1e-6)
    # gradients and batch statistics are synchronized across the two processes: the weights
    # equal those of one device training on the whole batch
    for r in reports:
        assert r["gap_to_one_device"] < WEIGHT_TOL, r


# ------------------------------------------ fault tolerance: a worker dies, both restart

EPOCHS = 4


def _start_workers(data, out, logs, attempt):
    ports = free_ports(2)
    command = [
        sys.executable, "-m", "kerascnn.cli", "train", "lenet5", "--dataset", str(data),
        "--recipe", "vgg-sweep", "--epochs", str(EPOCHS), "--batch-size", "8", "--augment", "",
        "--out", str(out), "--quiet", "--strategy", "multiworker",
    ]  # fmt: skip
    procs = []
    for i in range(2):
        log = open(logs / f"attempt{attempt}-worker{i}.txt", "w")  # noqa: SIM115
        env = {**ENV, "TF_CONFIG": _tf_config(ports, i)}
        procs.append(
            subprocess.Popen(command, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        )
        log.close()
    return procs


@pytest.mark.multiprocess
def test_multiworker_worker_killed_then_both_restarted_resume_from_last_epoch(tmp_path):
    data = tmp_path / "tiny.npz"
    write_class_npz(data, 640)
    out, logs = tmp_path / "run", tmp_path
    procs = _start_workers(data, out, logs, 1)
    try:
        # worker 1 dies after the first epoch's backup
        kill_second_when(procs, lambda: epochs_logged(out), logs / "attempt1-worker0.txt", 180)
        time.sleep(1.0)
        # worker 0 now waits on (or fails in) a collective with a dead peer: the cluster
        # manager restarts both, which is what we do
        assert procs[0].poll() is None or procs[0].returncode != 0
    finally:
        stop_processes(procs)
    done = epochs_logged(out)
    assert 1 <= len(done) < EPOCHS, f"killed too late: {done}"
    assert (out / "backup" / "checkpoint").exists()
    assert not (out / "result.json").exists()

    procs = _start_workers(data, out, logs, 2)
    try:
        for proc in procs:
            proc.wait(timeout=240)
    finally:
        stop_processes(procs)
    texts = [(logs / f"attempt2-worker{i}.txt").read_text() for i in range(2)]
    for proc, text in zip(procs, texts, strict=True):
        assert proc.returncode == 0, text[-4000:]
    resumed = [
        int(line.split(": ")[-1].split()[0]) for text in texts
        for line in text.splitlines() if "resumed from" in line
    ]  # fmt: skip
    assert len(resumed) == 2 and resumed[0] == resumed[1] and 1 <= resumed[0] < EPOCHS, resumed
    for text in texts:  # each worker ran only the missing epochs
        ran = [line for line in text.splitlines() if "] epoch " in line]
        assert len(ran) == EPOCHS - resumed[0], ran
    result = json.loads((out / "result.json").read_text())
    assert result["epochs_run"] == EPOCHS
    assert epochs_logged(out)[-1] == EPOCHS - 1
    assert (out / "model.keras").exists()
    assert not (out / "backup").exists()  # removed after the full run, as BackupAndRestore does
    losses = [
        [line.split("- loss: ")[1].split()[0] for line in text.splitlines() if "] epoch " in line]
        for text in texts
    ]
    assert losses[0] == losses[1]  # both workers report the same loss every epoch


@pytest.mark.multiprocess
def test_multiworker_with_augmentation_and_early_stopping_trains(tmp_path):
    """Augmentation layers in the model are created under the strategy's scope (their seed
    generators too); the recipe's early stopping is honoured, not dropped."""
    data = tmp_path / "tiny.npz"
    write_class_npz(data, 128)
    ports = free_ports(2)
    command = [
        sys.executable, "-m", "kerascnn.cli", "train", "lenet5", "--dataset", str(data),
        "--recipe", "vgg-sweep", "--epochs", "3", "--batch-size", "8", "--augment", "flip,padcrop:2",
        "--early-stopping", "1", "--lr", "1e-9", "--out", str(tmp_path / "run"), "--quiet",
        "--strategy", "multiworker",
    ]  # fmt: skip
    procs = [
        subprocess.Popen(
            command,
            env={**ENV, "TF_CONFIG": _tf_config(ports, i)},
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        for i in range(2)
    ]
    try:
        outputs = [proc.communicate(timeout=240)[0] for proc in procs]
    finally:
        stop_processes(procs)
    for proc, text in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, text[-4000:]
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    # lr 1e-9: validation accuracy cannot improve after epoch 1, so patience 1 stops after 2
    assert result["stopped_early"] and result["epochs_run"] == 2 and result["best_epoch"] == 1
    assert (tmp_path / "run" / "best.keras").exists()
    assert epochs_logged(tmp_path / "run") == [0, 1]
