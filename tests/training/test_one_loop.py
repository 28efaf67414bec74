"""One training loop: ``fit`` (``model.fit``) and the multi-worker loop over ``strategy.run``
(``trainer="loop"``, run here under TensorFlow's default strategy, in this process) share
the callbacks and the bookkeeping: early stopping with the same patience and the best
weights restored, the NaN guard, the same ``log.csv`` columns and rows, the same
``result.json`` keys, resuming from the backup, and user callbacks.

The expectations are computed here, independently of the code under test: a NumPy forward
pass of the model's weights, and the patience rule applied to the logged values."""

import csv
import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import CrashAfterEpoch, RecordWeights, sign_arrays

from kerascnn.training import get_recipe
from kerascnn.training.distribute import fit_distributed
from kerascnn.training.loop import TrainingDiverged

TRAINERS = ("fit", "loop")
RESULT_KEYS = {"history", "epochs_run", "best_epoch", "stopped_early", "val_accuracy", "out_dir"}
LOG_COLUMNS = ["epoch", "accuracy", "loss", "val_accuracy", "val_loss"]


def _batches(arrays):
    return tf.data.Dataset.from_tensor_slices(arrays).batch(16)


def _model():
    keras.utils.set_random_seed(1)  # the same initial weights on every call
    return keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(2)]
    )


def _train(trainer, train, val, recipe, model=None, **kwargs):
    """``fit_distributed`` under the default strategy: ``trainer="fit"`` is kerascnn's
    ``fit`` (``model.fit``), ``trainer="loop"`` the multi-worker loop."""
    return fit_distributed(
        model or _model(), _batches(train), _batches(val), recipe, strategy="none",
        trainer=trainer, jit_compile=False, verbose=0, **kwargs,
    )  # fmt: skip


def _log(out):
    with open(out / "log.csv", newline="") as f:
        reader = csv.DictReader(f)
        return reader.fieldnames, [{k: float(v) for k, v in row.items()} for row in reader]


def _numpy_metrics(weights, x, y):
    """Mean sparse cross-entropy (from logits) and accuracy of the Dense-ReLU-Dense model."""
    w1, b1, w2, b2 = (np.asarray(w, "float64") for w in weights)
    logits = np.maximum(x @ w1 + b1, 0.0) @ w2 + b2
    top = logits.max(axis=1, keepdims=True)
    log_probs = logits - top - np.log(np.exp(logits - top).sum(axis=1, keepdims=True))
    loss = -log_probs[np.arange(len(y)), y].mean()
    return loss, (logits.argmax(axis=1) == y).mean()


def _patience_rule(values, patience):
    """(best index, index of the epoch that stops the run or None): the run stops after
    ``patience`` epochs in a row without a strictly higher value than the best so far."""
    best, best_index = -np.inf, None
    for index, value in enumerate(values):
        if value > best:
            best, best_index = value, index
        elif index - best_index >= patience:
            return best_index, index
    return best_index, None


@pytest.mark.parametrize("trainer", TRAINERS)
def test_early_stopping_is_honoured_alike_and_restores_the_best_epoch(tmp_path, trainer):
    """Validation labels are noise: validation accuracy stops improving within a few
    epochs, and both trainers stop by the same rule and bring back the best epoch."""
    patience = 3
    recipe = get_recipe("vgg-sweep", epochs=40, lr=0.05, early_stopping=patience)
    record = RecordWeights()
    model = _model()
    result = _train(trainer, sign_arrays(256, 0), sign_arrays(64, 1, random_labels=True), recipe,
                    model=model, out_dir=tmp_path, callbacks=[record])  # fmt: skip

    _, rows = _log(tmp_path)
    val = [row["val_accuracy"] for row in rows]
    best_index, stop_index = _patience_rule(val, patience)
    assert stop_index is not None and stop_index < 39  # the rule stops this run early
    assert [int(row["epoch"]) for row in rows] == list(range(stop_index + 1))
    assert result.stopped_early
    assert result.epochs_run == stop_index + 1
    assert result.best_epoch == best_index + 1
    assert result.val_accuracy == val[best_index]
    assert len(record.per_epoch) == stop_index + 1  # the user's callback saw every epoch
    changed = False
    for got, best, last in zip(
        model.weights, record.per_epoch[best_index], record.per_epoch[-1], strict=True
    ):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(got), best)
        changed = changed or not np.array_equal(best, last)
    assert changed  # the last epoch's weights differ: the restore is what made them equal
    saved = json.loads((tmp_path / "result.json").read_text())
    assert saved["epochs_run"] == stop_index + 1 and saved["best_epoch"] == best_index + 1
    assert not (tmp_path / "backup").exists()


def test_log_and_result_have_the_same_columns_rows_and_values_in_both_paths(tmp_path):
    """With a learning rate of 1e-12 the weights stay the initial ones, so every logged
    value is the NumPy forward pass of those weights; validation accuracy never improves
    after epoch 1, so patience 2 stops both runs after epoch 3 with epoch 1 the best."""
    train, val = sign_arrays(256, 0), sign_arrays(64, 1)
    recipe = get_recipe("vgg-sweep", epochs=10, lr=1e-12, early_stopping=2)
    initial = _model().get_weights()
    train_loss, train_acc = _numpy_metrics(initial, *train)
    val_loss, val_acc = _numpy_metrics(initial, *val)
    for trainer in TRAINERS:
        out = tmp_path / trainer
        result = _train(trainer, train, val, recipe, out_dir=out)
        columns, rows = _log(out)
        assert columns == LOG_COLUMNS, trainer
        assert [int(row["epoch"]) for row in rows] == [0, 1, 2], trainer
        for row in rows:
            np.testing.assert_allclose(
                [row["loss"], row["accuracy"], row["val_loss"], row["val_accuracy"]],
                [train_loss, train_acc, val_loss, val_acc], rtol=1e-5, err_msg=trainer,
            )  # fmt: skip
        saved = json.loads((out / "result.json").read_text())
        assert set(saved) == RESULT_KEYS, trainer
        assert set(saved["history"]) == set(LOG_COLUMNS) - {"epoch"}, trainer
        assert saved["history"]["val_accuracy"] == [row["val_accuracy"] for row in rows]
        assert (saved["epochs_run"], saved["best_epoch"], saved["stopped_early"]) == (3, 1, True)
        assert saved["val_accuracy"] == pytest.approx(val_acc, rel=1e-6)
        assert saved["out_dir"] == str(out)
        assert result.history == saved["history"]
        # the lock file stays: it names the folder's last owner
        assert sorted(p.name for p in out.iterdir()) == [
            ".lock", "best.keras", "log.csv", "model.keras", "result.json"
        ], trainer  # fmt: skip


@pytest.mark.parametrize("trainer", TRAINERS)
def test_nan_guard_names_the_epoch_and_batch_and_writes_nothing(tmp_path, trainer):
    recipe = get_recipe("vgg-sweep", optimizer="sgd", momentum=0.0, epochs=3, lr=1e30)
    with pytest.raises(TrainingDiverged, match=r"at epoch 1, batch \d+"):
        _train(trainer, sign_arrays(256, 0), sign_arrays(64, 1), recipe, out_dir=tmp_path)
    assert not (tmp_path / "log.csv").exists() and not (tmp_path / "result.json").exists()


def test_loop_resumes_from_its_backup_to_the_uninterrupted_run(tmp_path, capsys):
    """The loop's checkpoint backup is a callback in the shared list: a run that crashed
    after epoch 2 of 3 resumes there, logs each epoch once, and ends with the weights of
    the uninterrupted run."""
    train, val = sign_arrays(128, 0), sign_arrays(32, 1)
    recipe = get_recipe("vgg-sweep", epochs=3, lr=0.01, early_stopping=0)
    whole = _model()
    _train("loop", train, val, recipe, model=whole, out_dir=tmp_path / "a")

    with pytest.raises(KeyboardInterrupt):
        _train("loop", train, val, recipe, out_dir=tmp_path / "b", callbacks=[CrashAfterEpoch(1)])
    assert (tmp_path / "b" / "backup" / "checkpoint").exists()
    assert not (tmp_path / "b" / "result.json").exists()
    record = RecordWeights()
    resumed = _model()
    capsys.readouterr()
    result = fit_distributed(
        resumed, _batches(train), _batches(val), recipe, strategy="none", trainer="loop",
        out_dir=tmp_path / "b", callbacks=[record], verbose=2,
    )  # fmt: skip
    printed = capsys.readouterr().out
    assert "2 epoch(s) done" in printed and printed.count("epoch 3/3") == 1, printed
    assert len(record.per_epoch) == 1  # only the missing epoch ran
    assert result.epochs_run == 3
    _, rows = _log(tmp_path / "b")
    assert [int(row["epoch"]) for row in rows] == [0, 1, 2]
    assert not (tmp_path / "b" / "backup").exists()
    for a, b in zip(whole.get_weights(), resumed.get_weights(), strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-7)


def test_loop_calls_the_callback_hooks_as_model_fit_does():
    """A user callback sees the epoch hooks, one train-batch hook per batch with the
    running loss, and one validation pass per epoch; model.stop_training set by it ends
    the run after the epoch."""
    calls = []

    class Spy(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            calls.append(("train_begin",))

        def on_epoch_begin(self, epoch, logs=None):
            calls.append(("epoch_begin", epoch))

        def on_train_batch_end(self, batch, logs=None):
            assert set(logs) == {"loss", "accuracy"}
            calls.append(("batch", batch))

        def on_test_begin(self, logs=None):
            calls.append(("test_begin",))

        def on_test_end(self, logs=None):
            calls.append(("test_end", tuple(sorted(logs))))

        def on_epoch_end(self, epoch, logs=None):
            calls.append(("epoch_end", epoch, tuple(sorted(logs))))
            if epoch == 1:
                self.model.stop_training = True

        def on_train_end(self, logs=None):
            calls.append(("train_end",))

    recipe = get_recipe("vgg-sweep", epochs=5, early_stopping=0)
    result = _train("loop", sign_arrays(48, 0), sign_arrays(16, 1), recipe,
                    callbacks=[Spy(), keras.callbacks.TerminateOnNaN()])  # fmt: skip
    epoch_keys = ("accuracy", "loss", "val_accuracy", "val_loss")
    per_epoch = [("batch", 0), ("batch", 1), ("batch", 2), ("test_begin",),
                 ("test_end", ("accuracy", "loss"))]  # fmt: skip
    assert calls == [
        ("train_begin",),
        ("epoch_begin", 0), *per_epoch, ("epoch_end", 0, epoch_keys),
        ("epoch_begin", 1), *per_epoch, ("epoch_end", 1, epoch_keys),
        ("train_end",),
    ]  # fmt: skip
    assert result.epochs_run == 2 and not result.stopped_early


# ------------------------------------------- an ImageClassifier: the label format is the task's
def _task(**kwargs):
    """An ImageClassifier on 2x2x2 "images" (the 8 features of sign_arrays): flatten,
    Dense-ReLU, then the task's Dense predictions."""
    from kerascnn.tasks import ImageClassifier

    keras.utils.set_random_seed(1)
    images = keras.Input((2, 2, 2))
    features = keras.layers.Dense(16, activation="relu")(keras.layers.Flatten()(images))
    return ImageClassifier(keras.Model(images, features), 2, pooling=None, **kwargs)


def _images(arrays):
    x, y = arrays
    return x.reshape(-1, 2, 2, 2), y


def _numpy_smoothed_loss(weights, x, y, smoothing):
    """Mean cross-entropy (from logits) against labels smoothed as Keras does:
    ``onehot * (1 - s) + s / classes``."""
    w1, b1, w2, b2 = (np.asarray(w, "float64") for w in weights)
    logits = np.maximum(x.reshape(len(x), -1) @ w1 + b1, 0.0) @ w2 + b2
    top = logits.max(axis=1, keepdims=True)
    log_probs = logits - top - np.log(np.exp(logits - top).sum(axis=1, keepdims=True))
    target = np.eye(2)[y] * (1 - smoothing) + smoothing / 2
    return -(target * log_probs).sum(axis=1).mean()


@pytest.mark.parametrize("trainer", TRAINERS)
def test_a_task_trains_with_its_own_loss_on_integer_labels_in_both_paths(tmp_path, trainer):
    """Label smoothing makes the task's loss one-hot; the data stays integer labels, and
    both trainers (the loop too) convert them: with lr 1e-12 every logged loss is the
    NumPy smoothed cross-entropy of the initial weights."""
    train, val = _images(sign_arrays(64, 0)), _images(sign_arrays(32, 1))
    recipe = get_recipe("vgg-sweep", epochs=2, lr=1e-12, early_stopping=0, label_smoothing=0.2)
    task = _task(label_smoothing=0.2)
    initial = task.get_weights()
    _train(trainer, train, val, recipe, model=task, out_dir=tmp_path)
    _, rows = _log(tmp_path)
    for row in rows:
        np.testing.assert_allclose(
            [row["loss"], row["val_loss"]],
            [_numpy_smoothed_loss(initial, *train, 0.2), _numpy_smoothed_loss(initial, *val, 0.2)],
            rtol=1e-5,
        )  # fmt: skip


def test_the_loop_mixes_with_the_tasks_mixer_and_refuses_one_hot():
    """In the multi-worker loop a task with MixUp trains on mixed batches (the training loss
    is not the plain batches' one, the mixer's seed advances) and validates on the plain
    integer-labelled batches; one_hot is for plain models only."""
    from kerascnn.layers import MixUp

    train, val = _images(sign_arrays(64, 0)), _images(sign_arrays(32, 1))
    recipe = get_recipe("vgg-sweep", epochs=1, lr=1e-12, early_stopping=0)
    task = _task(mixer=MixUp(1.0, seed=4))
    initial = task.get_weights()
    state = keras.ops.convert_to_numpy(task.mixer.generator.state).copy()
    result = _train("loop", train, val, recipe, model=task)
    assert not np.array_equal(keras.ops.convert_to_numpy(task.mixer.generator.state), state)
    assert result.history["val_loss"][0] == pytest.approx(
        _numpy_smoothed_loss(initial, *val, 0.0), rel=1e-5
    )
    assert abs(result.history["loss"][0] - _numpy_smoothed_loss(initial, *train, 0.0)) > 1e-3
    with pytest.raises(ValueError, match="one_hot is for plain models"):
        _train("loop", train, val, recipe, model=_task(), one_hot=True)


@pytest.mark.parametrize("trainer", TRAINERS)
def test_early_stopping_resumes_with_its_state(tmp_path, trainer):
    """Cut one epoch after the best epoch (early stopping is waiting), resumed: the run
    stops where the uninterrupted one did and restores the same best weights."""
    train, val = sign_arrays(256, 0), sign_arrays(64, 1)
    recipe = get_recipe("vgg-sweep", epochs=12, lr=0.01, early_stopping=2)  # best 5, stops at 7
    whole = _model()
    result = _train(trainer, train, val, recipe, model=whole, out_dir=tmp_path / "a")
    assert result.stopped_early and 1 < result.best_epoch < result.epochs_run
    with pytest.raises(KeyboardInterrupt):  # after the backup of best_epoch + 1 epochs
        _train(trainer, train, val, recipe, out_dir=tmp_path / "b",
               callbacks=[CrashAfterEpoch(result.best_epoch)])  # fmt: skip
    resumed = _model()
    again = _train(trainer, train, val, recipe, model=resumed, out_dir=tmp_path / "b")
    assert (again.best_epoch, again.epochs_run, again.stopped_early) == (
        result.best_epoch, result.epochs_run, True,
    )  # fmt: skip
    for a, b in zip(whole.get_weights(), resumed.get_weights(), strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-7)
