"""``kerascnn.training.fit`` on every backend with the NumPy loader and the bundled sample:
early stopping restores the best epoch, and a crashed run resumes to the weights of an
uninterrupted one. CI runs these on JAX and PyTorch without TensorFlow."""

import csv

import keras
import numpy as np
import pytest
from conftest import CrashAfterEpoch, RecordWeights

import kerascnn
from kerascnn import pipelines
from kerascnn.tasks import ImageClassifier, input_layers

pytestmark = [pytest.mark.jax, pytest.mark.torch]


def sample_run():
    """A fresh small model with its pipelines, as a new process would build them: 256
    training and 128 validation images of the bundled CIFAR-10 sample, flip + pad-crop and
    standardization in the model."""
    train = pipelines.load("cifar10-sample", "train").subset(np.arange(256))
    val = pipelines.load("cifar10-sample", "validation").subset(np.arange(128))
    layers = input_layers(train, "flip,padcrop:2", seed=1)
    pipe = pipelines.build(train, batch_size=64, seed=1, normalize="none", loader="numpy")
    val_pipe = pipelines.build(val, batch_size=64, shuffle=False, normalize="none",
                               loader="numpy")  # fmt: skip
    keras.utils.set_random_seed(3)
    images = keras.Input((32, 32, 3))
    features = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(images)
    backbone = keras.Model(images, features)
    model = ImageClassifier(backbone, 10, **layers.task_options(), name="small")
    return model, pipe, val_pipe


def test_early_stopping_stops_after_patience_and_restores_the_best_epoch():
    """With a learning rate of 1e-12 validation accuracy never improves after epoch 1, so
    patience 2 stops after epoch 3 and the weights of epoch 1 come back."""
    model, pipe, val_pipe = sample_run()
    recipe = kerascnn.training.get_recipe("quick", epochs=10, lr=1e-12, early_stopping=2)
    record = RecordWeights()
    result = kerascnn.training.fit(model, pipe, val_pipe, recipe, callbacks=[record], verbose=0)
    assert result.epochs_run == 3 and result.stopped_early and result.best_epoch == 1
    for got, epoch1 in zip(model.weights, record.per_epoch[0], strict=True):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(got), epoch1)


def test_crashed_run_resumes_to_the_uninterrupted_weights(tmp_path):
    """Crash after epoch 2 of 3, rerun: the log holds each epoch once and the final weights
    equal the uninterrupted run's (the backup restores weights, optimizer, the loader's
    epoch order and the augmentation's random state)."""
    recipe = kerascnn.training.get_recipe("quick", epochs=3, early_stopping=0)
    whole, pipe, val_pipe = sample_run()
    kerascnn.training.fit(whole, pipe, val_pipe, recipe, out_dir=tmp_path / "a", verbose=0)

    crashed, pipe, val_pipe = sample_run()
    with pytest.raises(KeyboardInterrupt):
        kerascnn.training.fit(crashed, pipe, val_pipe, recipe, out_dir=tmp_path / "b",
                              callbacks=[CrashAfterEpoch(1)], verbose=0)  # fmt: skip
    assert (tmp_path / "b" / "backup").exists()
    resumed, pipe, val_pipe = sample_run()
    result = kerascnn.training.fit(
        resumed, pipe, val_pipe, recipe, out_dir=tmp_path / "b", verbose=0
    )
    assert result.epochs_run == 3
    with open(tmp_path / "b" / "log.csv") as f:
        assert [int(row["epoch"]) for row in csv.DictReader(f)] == [0, 1, 2]
    changed = False
    for a, b, c in zip(whole.weights, resumed.weights, crashed.weights, strict=True):
        a, b, c = (keras.ops.convert_to_numpy(t) for t in (a, b, c))
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
        changed = changed or not np.allclose(c, a, atol=1e-6)
    assert changed  # the third epoch moved the weights: the comparison above can fail


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="TensorFlow's fit path")
def test_fit_on_tensorflow_streams_the_loaders_epochs_through_one_iterator(monkeypatch):
    """On TensorFlow, ``fit`` feeds a loader as one endless ``tf.data`` stream (Keras would
    make a new iterator at each epoch start, a pause of up to 2.5 s measured in
    benchmarks/results/2026-12-01-main-command-b4b5ac4-566fd08.json): the stream starts once and reads the
    epochs in order, and the model sees what ``model.fit`` on the loader itself gives (same
    weights after 3 epochs)."""
    recipe = kerascnn.training.get_recipe("quick", epochs=3, early_stopping=0)
    streamed, pipe, val_pipe = sample_run()
    assert pipe.dataset.streams_endlessly
    starts = []
    epochs_from = pipe.dataset._epochs_from
    monkeypatch.setattr(pipe.dataset, "_epochs_from", lambda e: starts.append(e) or epochs_from(e))
    kerascnn.training.fit(streamed, pipe, val_pipe, recipe, verbose=0)
    assert starts == [0]  # one stream, started at epoch 0, for the 3 epochs

    direct, pipe, val_pipe = sample_run()
    kerascnn.training.loop.compile_model(direct, recipe, len(pipe.dataset))
    direct.fit(pipe.dataset, validation_data=val_pipe.dataset, epochs=3, verbose=0,
               shuffle=False, callbacks=[kerascnn.training.loop.LoaderEpoch(pipe.dataset)])  # fmt: skip
    for a, b in zip(streamed.weights, direct.weights, strict=True):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b),
                                   rtol=1e-5, atol=1e-6)  # fmt: skip
