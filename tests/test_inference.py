"""``kerascnn.inference.evaluate`` and ``kerascnn evaluate``: the loss follows the model's
outputs (logits or probabilities), checked against a NumPy cross-entropy."""

import keras
import numpy as np
import pytest
from conftest import write_brightness_npz

from kerascnn import cli, pipelines
from kerascnn.inference import evaluate
from kerascnn.tasks import ImageClassifier
from kerascnn.training.run import load_train_val

pytestmark = pytest.mark.jax


def _numpy_cross_entropy(outputs, labels, from_logits):
    outputs = np.asarray(outputs, np.float64)
    if from_logits:
        shifted = outputs - outputs.max(axis=-1, keepdims=True)
        log_p = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    else:
        log_p = np.log(outputs)
    return float(-np.mean(log_p[np.arange(len(labels)), labels]))


def _model(activation):
    """Brightness -> 3 class scores with fixed (NumPy) weights, so the outputs are the same
    on every backend and far from uniform."""
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    dense = keras.layers.Dense(3, activation=activation)
    model = keras.Model(inputs, dense(x))
    rng = np.random.default_rng(3)
    dense.set_weights([rng.normal(0, 3, (3, 3)), rng.normal(0, 1, 3)])
    return model


@pytest.mark.parametrize("activation", ["softmax", None])
def test_evaluate_reads_the_outputs_as_the_model_ends(activation, tmp_path):
    data = pipelines.load(str(write_brightness_npz(tmp_path / "d.npz", 70)), "train")
    x, y = data.numpy()
    model = _model(activation)
    outputs = model.predict(x.astype("float32"), verbose=0)
    batches = pipelines.build(data, batch_size=32, shuffle=False, normalize="none")
    loss, accuracy = evaluate(model, batches)
    want = _numpy_cross_entropy(outputs, y, from_logits=activation is None)
    assert loss == pytest.approx(want, rel=1e-5)
    assert accuracy == pytest.approx(np.mean(outputs.argmax(-1) == y))
    if activation == "softmax":  # read as logits (the former compiled loss): another number
        assert abs(loss - _numpy_cross_entropy(outputs, y, from_logits=True)) > 1e-3


def test_evaluate_of_a_softmax_task_leaves_its_compiled_state(tmp_path):
    data = pipelines.load(str(write_brightness_npz(tmp_path / "d.npz", 40)), "train")
    x, y = data.numpy()
    task = ImageClassifier.from_model(_model(None), activation="softmax", label_smoothing=0.1)
    task.compile()
    compiled_loss = task.loss
    outputs = task.predict(x.astype("float32"), verbose=0)
    np.testing.assert_allclose(outputs.sum(-1), 1.0, rtol=1e-5)
    loss, _ = evaluate(task, pipelines.build(data, batch_size=16, shuffle=False, normalize="none"))
    # plain cross-entropy of the probabilities: no label smoothing, no second softmax
    assert loss == pytest.approx(_numpy_cross_entropy(outputs, y, False), rel=1e-5)
    assert task.loss is compiled_loss


def test_cli_evaluate_reports_the_cross_entropy_of_a_softmax_model(tmp_path, capsys):
    npz = write_brightness_npz(tmp_path / "d.npz", 100)
    model = _model("softmax")
    path = tmp_path / "softmax.keras"
    model.save(path)
    assert cli.main(["evaluate", str(path), "--dataset", str(npz)]) == 0
    line = capsys.readouterr().out
    reported = float(line.split("loss ")[1].split(",")[0])
    _, val = load_train_val(str(npz), 0.1, 0)
    x, y = val.numpy()
    want = _numpy_cross_entropy(model.predict(x.astype("float32"), verbose=0), y, False)
    assert reported == pytest.approx(want, abs=6e-5)  # printed with 4 decimals


def _mirror_sensitive_model(activation):
    """Pixels -> 3 class scores through Flatten (a left-right flip changes the scores), fixed
    NumPy weights."""
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Flatten()(keras.layers.Rescaling(1 / 255.0)(inputs))
    dense = keras.layers.Dense(3, activation=activation)
    model = keras.Model(inputs, dense(x))
    rng = np.random.default_rng(5)
    dense.set_weights([rng.normal(0, 0.1, (32 * 32 * 3, 3)), rng.normal(0, 1, 3)])
    return model


@pytest.mark.parametrize("activation", ["softmax", None])
def test_flip_tta_scores_the_mean_probabilities_of_each_image_and_its_mirror(
    activation, tmp_path, capsys
):
    with np.load(write_brightness_npz(tmp_path / "d.npz", 60)) as d:
        x, y = d["x"].copy(), d["y"]
    x[:, :, :16] //= 2  # left and right halves differ, so the mirror image scores otherwise
    np.savez(tmp_path / "halves.npz", x=x, y=y)
    data = pipelines.load(str(tmp_path / "halves.npz"), "train")
    x, y = data.numpy()
    x = x.astype("float32")
    model = _mirror_sensitive_model(activation)

    def probabilities(images):
        out = model.predict(images, verbose=0).astype("float64")
        if activation is None:
            out = np.exp(out - out.max(-1, keepdims=True))
            out /= out.sum(-1, keepdims=True)
        return out

    p = (probabilities(x) + probabilities(x[:, :, ::-1])) / 2
    batches = pipelines.build(data, batch_size=16, shuffle=False, normalize="none")
    loss, accuracy = evaluate(model, batches, tta="flip")
    assert loss == pytest.approx(_numpy_cross_entropy(p, y, from_logits=False), rel=1e-5)
    assert accuracy == pytest.approx(np.mean(p.argmax(-1) == y))
    plain, _ = evaluate(model, batches)
    assert abs(plain - loss) > 1e-3  # the mirror images count
    with pytest.raises(ValueError, match=r"tta must be one of 'none', 'flip'; received tta='crop'"):
        evaluate(model, batches, tta="crop")
    # kerascnn evaluate --tta flip: the same on the validation part it reads
    model.save(tmp_path / "m.keras")
    command = ["evaluate", str(tmp_path / "m.keras"), "--dataset", str(tmp_path / "halves.npz")]
    assert cli.main([*command, "--tta", "flip"]) == 0
    line = capsys.readouterr().out
    assert "test-time augmentation flip" in line
    _, val = load_train_val(str(tmp_path / "halves.npz"), 0.1, 0)
    xv, yv = val.numpy()
    xv = xv.astype("float32")
    pv = (probabilities(xv) + probabilities(xv[:, :, ::-1])) / 2
    reported = float(line.split("loss ")[1].split(",")[0])
    assert reported == pytest.approx(_numpy_cross_entropy(pv, yv, False), abs=6e-5)


def test_the_clis_tta_choices_are_the_libraries():
    """``kerascnn evaluate --tta`` lists its choices without importing Keras; they must stay
    those ``inference.evaluate`` accepts."""
    from kerascnn.inference import TTA

    (subcommands,) = [
        a for a in cli.build_parser()._actions if a.__class__.__name__ == "_SubParsersAction"
    ]
    (tta,) = [a for a in subcommands.choices["evaluate"]._actions if "--tta" in a.option_strings]
    assert tuple(tta.choices) == TTA
