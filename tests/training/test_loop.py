"""The fit loop: early stopping with restored best weights, the NaN guard, XLA choice."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import RecordWeights, sign_arrays

from kerascnn.training import loop as fit_module
from kerascnn.training.loop import TrainingDiverged, fit
from kerascnn.training.recipes import get_recipe


def _data(n, seed, random_labels=False):
    x, y = sign_arrays(n, seed, random_labels)
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(16)


def test_early_stopping_stops_and_restores_the_best_weights(tmp_path):
    keras.utils.set_random_seed(1)
    model = keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(2)]
    )
    recipe = get_recipe("vgg-sweep", epochs=40, lr=0.05, early_stopping=3)
    recorder = RecordWeights()
    # Validation labels are noise: validation accuracy stops improving within a few epochs.
    result = fit(
        model,
        _data(256, 0),
        _data(64, 1, random_labels=True),
        recipe,
        out_dir=tmp_path,
        callbacks=[recorder],
        verbose=0,
    )
    assert result.stopped_early
    assert result.epochs_run < 40
    assert result.epochs_run == result.best_epoch + 3
    val = result.history["val_accuracy"]
    assert result.val_accuracy == max(val) == val[result.best_epoch - 1]
    for restored, best in zip(
        model.weights, recorder.per_epoch[result.best_epoch - 1], strict=True
    ):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(restored), best)
    assert {"model.keras", "best.keras", "log.csv", "result.json"} <= {
        p.name for p in tmp_path.iterdir()
    }
    assert not (tmp_path / "backup").exists()  # BackupAndRestore cleans up after a completed run
    rows = (tmp_path / "log.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + result.epochs_run


def test_nan_loss_raises_with_the_epoch():
    model = keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(2)]
    )
    recipe = get_recipe("vgg-sweep", optimizer="sgd", momentum=0.0, epochs=3, lr=1e30)
    with pytest.raises(TrainingDiverged, match=r"at epoch 1, batch \d+"):
        fit(model, _data(256, 0), None, recipe, verbose=0)


def test_jit_compile_auto_follows_the_gpus_and_can_be_forced():
    has_gpu = bool(tf.config.list_physical_devices("GPU"))
    assert fit_module.resolve_jit_compile("auto") is has_gpu  # XLA on with a GPU, off on CPU
    assert fit_module.resolve_jit_compile(True) is True
    with pytest.raises(
        ValueError, match="jit_compile must be True, False or 'auto'; received jit_compile='yes'"
    ):
        fit_module.resolve_jit_compile("yes")


def test_fit_refuses_an_unknown_option_naming_the_options():
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(2)])
    with pytest.raises(
        ValueError,
        match=r"fit\(\) has no option 'jit' \(received jit=True\); its options are: "
        "jit_compile, steps_per_execution, tensorboard, one_hot",
    ):
        fit(model, _data(32, 0), None, get_recipe("vgg-sweep", epochs=1), jit=True, verbose=0)
    assert not model.compiled  # refused before compiling


def test_a_plain_model_is_deprecated_and_its_loss_follows_its_softmax():
    keras.utils.set_random_seed(2)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(2, activation="softmax")])
    with pytest.warns(DeprecationWarning, match="training a plain keras.Model .* is deprecated"):
        fit(model, _data(64, 0), None, get_recipe("vgg-sweep", epochs=1), verbose=0)
    x, y = sign_arrays(64, 3)
    p = model.predict(x, verbose=0).astype("float64")
    loss = model.evaluate(x, y, verbose=0, return_dict=True)["loss"]
    # the cross-entropy of the probabilities, not of a softmax of them
    assert loss == pytest.approx(-np.mean(np.log(p[np.arange(64), y])), rel=1e-5)


def test_forced_xla_stays_on_for_a_model_with_kerascnn_augmentation():
    from kerascnn.layers import RandomFlip, RandomPadCrop

    model = keras.Sequential(
        [keras.Input((8, 8, 3)), RandomPadCrop(2), RandomFlip(), keras.layers.Conv2D(4, 3),
         keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2)]
    )  # fmt: skip
    x = np.random.default_rng(0).uniform(size=(32, 8, 8, 3)).astype("float32")
    ds = tf.data.Dataset.from_tensor_slices((x, np.arange(32) % 2)).batch(16)
    fit(model, ds, None, get_recipe("vgg-sweep", epochs=1), jit_compile=True, verbose=0)
    assert model.jit_compile is True


class _CrashAfterFirstEpoch(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        raise KeyboardInterrupt


def test_backup_of_another_model_is_moved_aside_and_training_starts_from_scratch(tmp_path):
    """A backup that does not load into this model (another architecture, same folder) is
    moved aside with a warning naming it; the model keeps its own initial weights."""

    def model(width):
        return keras.Sequential(
            [keras.Input((8,)), keras.layers.Dense(width, activation="relu"), keras.layers.Dense(2)]
        )

    recipe = get_recipe("vgg-sweep", epochs=2)
    with pytest.raises(KeyboardInterrupt):
        fit(model(16), _data(64, 0), None, recipe, out_dir=tmp_path,
            callbacks=[_CrashAfterFirstEpoch()], verbose=0)  # fmt: skip
    assert (tmp_path / "backup" / "training_metadata.json").exists()
    other = model(4)
    initial = [w.copy() for w in other.get_weights()]
    recorder = RecordWeights()

    class FirstBatch(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            if not hasattr(self, "seen"):
                self.seen = [keras.ops.convert_to_numpy(w).copy() for w in self.model.weights]

    first = FirstBatch()
    with pytest.warns(UserWarning, match=r"moved it to .*backup\.corrupt-"):
        result = fit(other, _data(64, 0), None, recipe, out_dir=tmp_path,
                     callbacks=[recorder, first], verbose=0)  # fmt: skip
    assert result.epochs_run == 2 and len(recorder.per_epoch) == 2  # from epoch 1, not resumed
    for got, want in zip(first.seen, initial, strict=True):
        np.testing.assert_array_equal(got, want)  # the failed load left no weight behind
    assert [p.name.startswith("backup.corrupt-") for p in tmp_path.iterdir()].count(True) == 1


def test_a_backup_written_before_files_carried_their_epoch_is_resumed(tmp_path):
    """Run folders of earlier versions hold ``latest.weights.h5`` / ``random_states.npz``
    and metadata without file names; they resume to the uninterrupted run's weights."""
    import json

    def model():
        keras.utils.set_random_seed(3)
        return keras.Sequential(
            [keras.Input((8,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(2)]
        )

    recipe = get_recipe("vgg-sweep", epochs=3)
    whole = model()
    fit(whole, _data(64, 0), None, recipe, out_dir=tmp_path / "whole", verbose=0)
    out = tmp_path / "cut"
    with pytest.raises(KeyboardInterrupt):
        fit(model(), _data(64, 0), None, recipe, out_dir=out,
            callbacks=[_CrashAfterFirstEpoch()], verbose=0)  # fmt: skip
    backup = out / "backup"
    meta = json.loads((backup / "training_metadata.json").read_text())
    (backup / meta["files"]["weights"]).rename(backup / "latest.weights.h5")
    (backup / meta["files"]["random_states"]).rename(backup / "random_states.npz")
    (backup / "training_metadata.json").write_text(json.dumps({"epoch": 1, "batch": 0}))
    resumed = model()
    record = RecordWeights()
    fit(resumed, _data(64, 0), None, recipe, out_dir=out, callbacks=[record], verbose=0)
    assert len(record.per_epoch) == 2  # epochs 2 and 3 only
    for a, b in zip(whole.get_weights(), resumed.get_weights(), strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-6)
