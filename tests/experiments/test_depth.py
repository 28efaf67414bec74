"""The depth experiments (vgg-depth, degradation, ensembles, ode-vs-resnet) on tiny synthetic
data through the CLI: files, columns and the numbers the plots show."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from _csv_rows import read_csv

import kerascnn
from kerascnn import cli
from kerascnn.experiments import EXPERIMENTS, common, depth, ode
from kerascnn.zoo.features import blocks

TINY = ["--data", "synthetic:48", "--batch-size", "16", "--epochs", "1"]


@pytest.fixture(autouse=True)
def _eager():
    """Tracing a tf.function costs seconds per model; on 3 batches eager steps are faster."""
    tf.config.run_functions_eagerly(True)
    yield
    tf.config.run_functions_eagerly(False)


def run_cli(name, tmp_path, *extra, capsys=None):
    out = tmp_path / name
    assert cli.main(["experiment", name, *TINY, "--out", str(out), *extra]) == 0
    return out


def test_all_experiments_registered_with_quick_presets():
    assert {"vgg-depth", "degradation", "ensembles", "ode-vs-resnet"} <= set(EXPERIMENTS)
    for quick in (depth.VGG_QUICK, depth.DEG_QUICK, depth.ENS_QUICK, ode.QUICK):
        assert quick["subset"] <= 3000 and quick["epochs"] <= 5


def test_resolve_explicit_options_win_over_quick():
    full, quick = {"epochs": 30, "subset": None}, {"epochs": 2, "subset": 100}
    o = common.resolve({"quick": True, "epochs": 5, "subset": None}, full, quick)
    assert (o["epochs"], o["subset"]) == (5, 100)
    assert common.resolve({"quick": False}, full, quick)["epochs"] == 30


def test_load_data_subsets_are_stratified_and_disjoint():
    data = common.load_data("synthetic:200", subset=40, val_subset=12, seed=1)
    assert (len(data.train), len(data.val)) == (40, 12)
    assert np.bincount(data.train.labels).tolist() == [10, 10, 10, 10]
    assert not set(data.train.indices) & set(data.val.indices)


def test_vgg_depth_cells_are_means_and_params_are_count_params(tmp_path):
    out = run_cli("vgg-depth", tmp_path, "--blocks", "1,2", "--convs", "1,2",
                  "--filters", "4", "--repetitions", "2")  # fmt: skip
    for f in ("vgg-depth.csv", "vgg-depth-runs.csv", "vgg-depth-accuracy.png",
              "vgg-depth-params.png", "run.json"):  # fmt: skip
        assert (out / f).stat().st_size > 0, f
    cells = read_csv(out / "vgg-depth.csv")
    runs = read_csv(out / "vgg-depth-runs.csv")
    assert list(cells[0]) == depth.VGG_COLUMNS
    assert [(c["num_blocks"], c["convs_per_block"]) for c in cells] == [
        (1, 1),
        (1, 2),
        (2, 1),
        (2, 2),
    ]
    assert len(runs) == 8
    for cell in cells:
        mine = [
            r
            for r in runs
            if (r["num_blocks"], r["convs_per_block"])
            == (cell["num_blocks"], cell["convs_per_block"])
        ]
        assert len(mine) == 2
        assert cell["val_accuracy_mean"] == pytest.approx(
            np.mean([r["val_accuracy"] for r in mine])
        )
        assert cell["val_accuracy_std"] == pytest.approx(
            np.std([r["val_accuracy"] for r in mine], ddof=1)
        )
        assert cell["trained_runs"] == sum(r["trained"] for r in mine)
    # The parameter heatmap draws grid_matrix(cells, "params"): compare with built models.
    matrix = depth.grid_matrix(cells, "params", [1, 2], [1, 2])
    for i, nb in enumerate([1, 2]):
        for j, nc in enumerate([1, 2]):
            model = depth.vgg_model(nb, nc, 4, (16, 16, 3), 4)
            assert matrix[i, j] == model.count_params()
    assert len(set(matrix.ravel())) == 4


def test_vgg_depth_rejects_too_many_blocks(tmp_path):
    with pytest.raises(ValueError, match="blocks=5"):
        depth.run_vgg_depth(data="synthetic:48", blocks="5", convs="1", out=str(tmp_path))


def test_degradation_writes_curves(tmp_path):
    out = run_cli("degradation", tmp_path, "--depths", "8")
    rows = read_csv(out / "degradation.csv")
    assert list(rows[0]) == depth.DEG_COLUMNS
    assert sorted(r["model"] for r in rows) == ["plain8", "resnet8"]
    for r in rows:
        assert 0 <= r["train_error"] <= 1 and 0 <= r["val_error"] <= 1
    assert (out / "degradation.png").stat().st_size > 0


def test_ensembles_rows_per_deleted_block(tmp_path):
    out = run_cli("ensembles", tmp_path, "--depth", "8")
    rows = read_csv(out / "ensembles.csv")
    assert list(rows[0]) == depth.ENS_COLUMNS
    for model in ("resnet8", "plain8"):
        mine = [r for r in rows if r["model"] == model]
        assert [r["deleted_block"] for r in mine] == [
            "none", "stage1_block1", "stage2_block1", "stage3_block1"
        ]  # fmt: skip
        assert [r["downsampling"] for r in mine] == [False, False, True, True]
    assert (out / "ensembles.png").stat().st_size > 0


@pytest.mark.parametrize("residual", [True, False])
def test_deleting_a_block_changes_the_output_but_keeps_the_shape(residual):
    model = kerascnn.zoo.resnet(depth=14, residual=residual, input_shape=(16, 16, 3), num_classes=4)
    twin = kerascnn.zoo.resnet(depth=14, input_shape=(16, 16, 3), num_classes=4)
    x = np.random.default_rng(0).normal(size=(4, 16, 16, 3)).astype("float32")
    full = keras.ops.convert_to_numpy(model(x, training=False))
    names = [block.name for block in blocks(model, like=twin)]
    # the zoo names its layers stageS_blockB_...: the blocks found from the graph agree
    assert names == [f"stage{s}_block{b}" for s in (1, 2, 3) for b in (1, 2)]
    for name in names:
        pruned = depth.delete_block(model, name, like=twin)
        out = keras.ops.convert_to_numpy(pruned(x, training=False))
        assert out.shape == full.shape
        assert np.abs(out - full).max() > 1e-4, name
        # the block's two 3x3 convolutions (and their BN) are gone, nothing else
        assert len(pruned.trainable_weights) == len(model.trainable_weights) - 6, name
        assert not any(layer.name.startswith(name + "_conv") for layer in pruned.layers)
    # The original is untouched.
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(model(x, training=False)), full)


def _hand_built_residual_net():
    """Two residual blocks with names that say nothing: the second down-samples with a
    1x1 projection given to the Add second. Returns the model and its layers."""
    L = keras.layers
    keras.utils.set_random_seed(3)
    layer = {
        "stem": L.Conv2D(4, 3, padding="same", name="alpha"),
        "b1c1": L.Conv2D(4, 3, padding="same", activation="relu", name="beta"),
        "b1c2": L.Conv2D(4, 3, padding="same", name="gamma"),
        "add1": L.Add(name="delta"),
        "out1": L.ReLU(name="epsilon"),
        "b2c1": L.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="zeta"),
        "b2c2": L.Conv2D(8, 3, padding="same", name="eta"),
        "proj": L.Conv2D(8, 1, strides=2, name="theta"),
        "add2": L.Add(name="iota"),
        "out2": L.ReLU(name="kappa"),
        "pool": L.GlobalAveragePooling2D(name="lambda"),
        "fc": L.Dense(3, name="mu"),
    }
    inputs = keras.Input((8, 8, 3))
    h = layer["stem"](inputs)
    h = layer["out1"](layer["add1"]([h, layer["b1c2"](layer["b1c1"](h))]))
    h = layer["out2"](layer["add2"]([layer["b2c2"](layer["b2c1"](h)), layer["proj"](h)]))
    return keras.Model(inputs, layer["fc"](layer["pool"](h))), layer


def test_blocks_come_from_the_graph_not_the_layer_names():
    from kerascnn.zoo.features import blocks

    model, layer = _hand_built_residual_net()
    found = blocks(model)
    assert [b.name for b in found] == ["stage1_block1", "stage2_block1"]
    assert [(b.stride, b.downsampling, b.shortcut, b.convolutions) for b in found] == [
        (1, False, 0, 2), (2, True, 1, 2)
    ]  # fmt: skip
    assert found[1].add is layer["add2"] and layer["proj"] in found[1].layers
    assert layer["out1"] not in found[0].layers  # the output activation follows the block

    # deleting block 1 keeps its identity shortcut: the same as a model built without it
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype("float32")
    inputs = keras.Input((8, 8, 3))
    h = layer["out1"](layer["stem"](inputs))
    h = layer["out2"](layer["add2"]([layer["b2c2"](layer["b2c1"](h)), layer["proj"](h)]))
    expected = keras.Model(inputs, layer["fc"](layer["pool"](h)))
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(depth.delete_block(model, "stage1_block1")(x)),
        keras.ops.convert_to_numpy(expected(x)), rtol=1e-6, atol=1e-6,
    )  # fmt: skip
    # deleting block 2 keeps its projection (the Add's second input)
    inputs = keras.Input((8, 8, 3))
    h = layer["out1"](
        layer["add1"]([layer["stem"](inputs), layer["b1c2"](layer["b1c1"](layer["stem"](inputs)))])
    )
    h = layer["out2"](layer["proj"](h))
    expected = keras.Model(inputs, layer["fc"](layer["pool"](h)))
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(depth.delete_block(model, "stage2_block1")(x)),
        keras.ops.convert_to_numpy(expected(x)), rtol=1e-6, atol=1e-6,
    )  # fmt: skip


def test_a_plain_net_has_its_blocks_only_through_its_residual_twin():
    plain = kerascnn.zoo.resnet(depth=8, residual=False, input_shape=(16, 16, 3), num_classes=4)
    twin = kerascnn.zoo.resnet(depth=8, input_shape=(16, 16, 3), num_classes=4)
    assert blocks(plain) == []
    assert [block.name for block in blocks(plain, like=twin)] == [
        "stage1_block1",
        "stage2_block1",
        "stage3_block1",
    ]


def test_deleting_a_zero_residual_branch_changes_nothing():
    # With zero-initialized last BN scales every residual branch outputs 0, so a block is
    # exactly its skip path: deleting it must give the same output (the skip path is kept).
    model = kerascnn.zoo.resnet(
        depth=8, zero_init_residual=True, input_shape=(16, 16, 3), num_classes=4
    )
    x = np.random.default_rng(0).normal(size=(4, 16, 16, 3)).astype("float32")
    full = keras.ops.convert_to_numpy(model(x, training=False))
    for name in [block.name for block in blocks(model)]:
        out = keras.ops.convert_to_numpy(depth.delete_block(model, name)(x, training=False))
        np.testing.assert_allclose(out, full, rtol=1e-5, atol=1e-5)


def test_delete_unknown_block_names_the_blocks():
    model = kerascnn.zoo.resnet(depth=8, input_shape=(16, 16, 3), num_classes=4)
    with pytest.raises(ValueError, match="stage1_block1"):
        depth.delete_block(model, "stage9_block9")


def test_ode_vs_resnet_equal_parameters(tmp_path):
    out = run_cli("ode-vs-resnet", tmp_path, "--steps", "2", "--filters", "8")
    rows = read_csv(out / "ode-vs-resnet.csv")
    assert list(rows[0]) == ode.COLUMNS
    params = {r["model"]: r["params"] for r in rows}
    assert set(params) == {"resnet", "ode", "ode-wide"}
    assert params["ode"] < params["resnet"]
    assert abs(params["ode-wide"] - params["resnet"]) / params["resnet"] < 0.01
    evals = {r["model"]: r["function_evaluations"] for r in rows}
    assert evals == {"resnet": 2, "ode": 8, "ode-wide": 8}
    assert (out / "ode-vs-resnet.png").stat().st_size > 0
