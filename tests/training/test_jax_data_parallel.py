"""Data parallelism on the JAX backend (``keras.distribution.DataParallel``) on the CPU: two
and four virtual devices (``XLA_FLAGS=--xla_force_host_platform_device_count=N``, which must
be set before JAX starts: each check runs in a fresh process) and two processes on 127.0.0.1.

The references are computed independently, on one device, with plain Keras and JAX
(``model.stateless_call`` and ``jax.grad``), not with kerascnn's distribution code.
"""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from conftest import epochs_logged, free_ports, kill_second_when, stop_processes, write_class_npz

pytestmark = [
    pytest.mark.jax,
    pytest.mark.skipif(keras.backend.backend() != "jax", reason="keras.distribution on JAX"),
]

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# PYTHONPATH keeps what conftest put there: with KERASCNN_NO_TENSORFLOW=1, the blocker that
# keeps TensorFlow out of the child processes too
ENV = {
    **os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "3",
    "PYTHONPATH": os.pathsep.join(p for p in (REPO, os.environ.get("PYTHONPATH")) if p),
}  # fmt: skip
# float32 weights after one SGD step: the distributed step sums the same numbers in another
# order (measured gaps below 1e-6), while per-replica statistics move the weights by more
# than 1e-3 (asserted, so the comparison can fail).
WEIGHT_TOL = 1e-5


def _env(devices: int | None = None) -> dict:
    env = {k: v for k, v in ENV.items() if k != "XLA_FLAGS"}
    if devices:
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    return env


def _python(script: str, devices: int, timeout: float = 300) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", script], env=_env(devices), cwd=REPO, capture_output=True,
        text=True, timeout=timeout,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads([line for line in result.stdout.splitlines() if line.startswith("{")][-1])


# ------------------------------------------------------------- sharding and process set-up


class _Loader(keras.utils.PyDataset):
    """Global batches of ``size`` rows numbered 0..n-1 (what kerascnn's BatchLoader serves)."""

    def __init__(self, n, size):
        super().__init__()
        self.num_examples, self.batch_size = n, size
        self.rows = np.arange(n)

    def __len__(self):
        return -(-self.num_examples // self.batch_size)

    def __getitem__(self, i):
        rows = self.rows[i * self.batch_size : (i + 1) * self.batch_size]
        return rows.astype("float32")[:, None], rows


def test_each_process_gets_its_rows_of_every_global_batch():
    from kerascnn.training.jax_parallel import ProcessBatches

    loader = _Loader(21, 8)  # batches of 8, 8, 5
    shards = [ProcessBatches(loader, num_devices=4, num_processes=2, process_id=i)
              for i in range(2)]  # fmt: skip
    assert [len(s) for s in shards] == [3, 3]
    for index, expected in enumerate([range(0, 8), range(8, 16), range(16, 20)]):
        # process 0's rows then process 1's: the global batch, cut to a multiple of 4 devices
        got = np.concatenate([s[index][1] for s in shards])
        assert got.tolist() == list(expected)
        assert all(s[index][0][:, 0].tolist() == s[index][1].tolist() for s in shards)
    # a last batch smaller than one example per device is left out
    assert len(ProcessBatches(_Loader(19, 8), num_devices=4)) == 2


def test_process_options_are_checked_in_one_line(monkeypatch):
    from kerascnn.errors import UserInputError
    from kerascnn.training.jax_parallel import initialize

    for name in ("JOB_ADDRESSES", "NUM_PROCESSES", "PROCESS_ID"):
        monkeypatch.delenv(f"KERAS_DISTRIBUTION_{name}", raising=False)
    assert initialize() is False  # one process: nothing to join
    assert initialize("127.0.0.1:1234", 1, 0) is False
    cases = {
        ("127.0.0.1:1234", 2, None): "missing: process_id",
        ("localhost", 2, 0): "coordinator must be HOST:PORT; received coordinator='localhost'",
        ("127.0.0.1:1234", 2, 2): "process_id must be in [0, 2); received process_id=2",
        ("127.0.0.1:1234", 0, 0): "num_processes must be >= 1; received num_processes=0",
    }
    for args, message in cases.items():
        with pytest.raises(UserInputError) as error:
            initialize(*args)
        assert message in str(error.value) and "\n" not in str(error.value)
    monkeypatch.setenv("KERAS_DISTRIBUTION_NUM_PROCESSES", "2")
    with pytest.raises(UserInputError, match="missing: coordinator, process_id"):
        initialize()


# ------------------------------------------------- (a) one step equals the one-device step

ONE_STEP = r"""
import json
import jax
import keras
import numpy as np

from kerascnn import zoo
from kerascnn.training import fit, get_recipe
from kerascnn.training.jax_parallel import data_parallel

DEVICES = jax.device_count()
B, LR, MOMENTUM = 16, 0.1, 0.9
rng = np.random.default_rng(0)
x = rng.normal(size=(B, 16, 16, 3)).astype("float32")
y = rng.integers(0, 10, size=B).astype("int32")
x[B // 2:] = 2.0 * x[B // 2:] + 1.0  # the devices' shares differ: their statistics too
keras.utils.set_random_seed(1)
init = zoo.resnet(depth=8, input_shape=(16, 16, 3), num_classes=10).get_weights()


def build():
    model = zoo.resnet(depth=8, input_shape=(16, 16, 3), num_classes=10)
    model.set_weights(init)
    return model


def reference(groups):
    # One device, plain Keras + JAX: the batch's loss as the sum over `groups` equal parts,
    # each part through the model on its own (its own batch statistics), divided by B; the
    # gradients summed, the moving statistics averaged over the parts; one SGD step.
    model = build()
    trainable = [v.value for v in model.trainable_variables]
    non_trainable = [v.value for v in model.non_trainable_variables]

    def loss(trainable, xs, ys, penalty):
        logits, updated, losses = model.stateless_call(
            trainable, non_trainable, xs, training=True, return_losses=True)
        ce = keras.losses.sparse_categorical_crossentropy(ys, logits, from_logits=True)
        return ce.sum() / B + (sum(losses) if penalty and losses else 0.0), updated

    step = jax.jit(jax.value_and_grad(loss, has_aux=True), static_argnums=3)
    grads, updates = None, []
    k = B // groups
    for g in range(groups):
        (_, updated), grad = step(trainable, x[g * k:(g + 1) * k], y[g * k:(g + 1) * k], g == 0)
        grads = grad if grads is None else [a + b for a, b in zip(grads, grad)]
        updates.append(updated)
    for v, *values in zip(model.non_trainable_variables, *updates):
        v.assign(np.mean([np.asarray(u) for u in values], axis=0))
    optimizer = keras.optimizers.SGD(LR, momentum=MOMENTUM)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return model.get_weights()


class OneBatch(keras.utils.PyDataset):
    def __len__(self):
        return 1

    def __getitem__(self, index):
        return x, y


recipe = get_recipe("vgg-sweep", optimizer="sgd", lr=LR, momentum=MOMENTUM, weight_decay=0.0,
                    schedule="constant", epochs=1, batch_size=B, early_stopping=0)
out = {"devices": DEVICES}
refs = {"global": reference(1), "replica": reference(DEVICES)}
for batch_norm in ("global", "replica"):
    dist = data_parallel(batch_norm=batch_norm)
    with dist.scope():
        model = build()
    fit(model, OneBatch(), None, recipe, distribution=dist, verbose=0)
    weights = model.get_weights()
    out["jit_" + batch_norm] = bool(model.jit_compile)
    for name, ref in refs.items():
        out[f"{batch_norm}_vs_{name}"] = max(
            float(np.abs(a - b).max()) for a, b in zip(weights, ref, strict=True))
out["moved"] = max(float(np.abs(a - b).max()) for a, b in zip(refs["global"], init))
print(json.dumps(out))
"""


@pytest.mark.parametrize("devices", [2, 4])
def test_one_data_parallel_step_equals_the_one_device_step(devices):
    out = _python(ONE_STEP, devices)
    assert out["devices"] == devices
    assert out["moved"] > 0.01  # the step changed the weights
    # synchronized statistics: the one-device step on the whole global batch
    assert out["global_vs_global"] < WEIGHT_TOL, out
    # per-replica statistics: each device's share normalized by its own mean and variance
    assert out["replica_vs_replica"] < WEIGHT_TOL, out
    # and the two choices really differ (each comparison above can fail)
    assert out["global_vs_replica"] > 100 * WEIGHT_TOL, out
    assert out["replica_vs_global"] > 100 * WEIGHT_TOL, out
    assert out["jit_global"] and out["jit_replica"]


# ----------------------- (b), (c) augmentation keeps jit on; early stopping under the distribution

AUGMENTED = r"""
import json, sys
import keras
from kerascnn.training import train_from_names

run = train_from_names(
    "lenet5", sys.argv[1], recipe="vgg-sweep", epochs=3, batch_size=8, lr=1e-9,
    augment="flip,padcrop:2,mixup", early_stopping=1, out_dir=sys.argv[2],
    strategy="data-parallel", verbose=0,
)
print(json.dumps({
    "jit": run.model.jit_compile,
    "devices": len(keras.distribution.list_devices()),
    "augmentation": [type(layer).__name__ for layer in run.model.augmentation],
    "mixer": type(run.model.mixer).__name__ if run.model.mixer is not None else None,
}))
"""


def test_augmentation_keeps_jit_on_and_early_stopping_under_data_parallel(tmp_path):
    data = tmp_path / "tiny.npz"
    write_class_npz(data, 96)
    out = tmp_path / "run"
    report = _python(AUGMENTED.replace("sys.argv[1]", repr(str(data))).replace(
        "sys.argv[2]", repr(str(out))), devices=2)  # fmt: skip
    assert report["devices"] == 2
    assert report["augmentation"] and report["mixer"], report  # augmentation and MixUp are on
    assert report["jit"] is True, report  # kerascnn's layers keep XLA on
    result = json.loads((out / "result.json").read_text())
    # lr 1e-9: validation accuracy cannot improve after epoch 1, so patience 1 stops after 2
    assert result["stopped_early"] and result["epochs_run"] == 2 and result["best_epoch"] == 1
    assert epochs_logged(out) == [0, 1]
    assert (out / "best.keras").exists() and (out / "model.keras").exists()
    assert not (out / "backup").exists()


# ------------------- (c) two processes, one killed, both restarted: the one-process weights

EPOCHS = 3


def _train(data, out, log, *, process=None, port=None, devices=None):
    """``kerascnn train`` with ``--strategy data-parallel``: process ``process`` of two on
    ``port``, or one process over ``devices`` virtual devices."""
    command = [
        sys.executable, "-m", "kerascnn.cli", "train", "lenet5", "--dataset", str(data),
        "--recipe", "vgg-sweep", "--epochs", str(EPOCHS), "--batch-size", "8",
        "--augment", "flip,padcrop:2", "--out", str(out), "--strategy", "data-parallel",
    ]  # fmt: skip
    if process is not None:
        command += ["--coordinator", f"127.0.0.1:{port}", "--num-processes", "2",
                    "--process-id", str(process)]  # fmt: skip
    with open(log, "w") as f:
        return subprocess.Popen(command, env=_env(devices), cwd=REPO, stdout=f,
                                stderr=subprocess.STDOUT)  # fmt: skip


def _two(data, out, logs, attempt):
    (port,) = free_ports(1)
    return [_train(data, out, logs / f"attempt{attempt}-process{i}.txt", process=i, port=port)
            for i in range(2)]  # fmt: skip


def _weights(path):
    import kerascnn  # noqa: F401  (registers kerascnn's layers)

    return keras.saving.load_model(path).get_weights()


@pytest.mark.multiprocess
def test_two_processes_killed_and_restarted_end_with_the_one_process_weights(tmp_path):
    data = tmp_path / "tiny.npz"
    write_class_npz(data, 96)
    run, ref = tmp_path / "run", tmp_path / "ref"
    # the reference: one process over two virtual devices, uninterrupted
    reference = _train(data, ref, tmp_path / "reference.txt", devices=2)
    procs = _two(data, run, tmp_path, 1)
    try:
        # process 1 dies after the first epoch's backup
        backup = run / "backup" / "training_metadata.json"
        kill_second_when(procs, backup.exists, tmp_path / "attempt1-process0.txt", 240)
    finally:
        stop_processes(procs)  # process 0 then waits on a dead peer: the launcher restarts both
    done = epochs_logged(run)
    assert 1 <= len(done) < EPOCHS, f"killed too late: {done}"
    assert not (run / "result.json").exists()

    procs = _two(data, run, tmp_path, 2)
    try:
        for proc in procs + [reference]:
            proc.wait(timeout=240)
    finally:
        stop_processes(procs + [reference])
    texts = [(tmp_path / f"attempt2-process{i}.txt").read_text() for i in range(2)]
    for proc, text in zip(procs, texts, strict=True):
        assert proc.returncode == 0, text[-4000:]
    assert reference.returncode == 0, (tmp_path / "reference.txt").read_text()[-4000:]
    for text in texts:  # every process ran only the missing epochs
        ran = [line for line in text.splitlines() if line.startswith("epoch ")]
        assert len(ran) == EPOCHS - len(done), ran
    result = json.loads((run / "result.json").read_text())
    assert result["epochs_run"] == EPOCHS and epochs_logged(run) == list(range(EPOCHS))
    assert not (run / "backup").exists()
    # process 0 alone wrote the run folder; the resumed two-process run ends where the
    # uninterrupted one-process run ends
    gap = max(float(np.abs(a - b).max()) for a, b in zip(
        _weights(run / "model.keras"), _weights(ref / "model.keras"), strict=True))  # fmt: skip
    assert gap < WEIGHT_TOL, gap
    moved = json.loads((ref / "result.json").read_text())["history"]["loss"]
    assert moved[-1] < moved[0]  # it trained
