"""The registry's rows, the backbones (``include_top=False`` / ``pooling``) and the stage
outputs of every family."""

import json
import pathlib
import sys

import keras
import numpy as np
import pytest

import kerascnn
from kerascnn.pipelines import PUBLISHED_STATS
from kerascnn.zoo import create, feature_extractor, feature_info, list_models, model_info

DATA = pathlib.Path(__file__).parent / "data"
sys.path.insert(0, str(DATA))
from make_architecture_snapshot import describe  # noqa: E402

# Written by tests/zoo/data/make_architecture_snapshot.py with the builders of commit 7ae3d7f,
# before the registry became data rows and the builders gained include_top / pooling.
SNAPSHOT = json.loads((DATA / "architecture_snapshot.json").read_text())

# One name per family. CI runs the cheap ones (at most a few seconds each on 2 cores); the
# other families' representatives and every other name are slow tests.
REPRESENTATIVES = {
    "lenet5", "alexnet", "vgg11", "resnet20", "resnet18", "plain20", "preact_resnet20",
    "resnext50_32x4d", "googlenet", "inception_v3", "mobilenet_v1", "mobilenet_v2",
    "mobilenet_v3_small", "efficientnet_b0", "densenet121", "convnext_tiny", "odenet",
}  # fmt: skip
HEAVY = {"resnext50_32x4d", "inception_v3", "densenet121", "convnext_tiny"}
# CI's budget: the backbone and probe tests run there for three families (a plain stack, a
# residual net, an inverted-residual net); every other family's are slow tests, run locally.
CI_FAMILIES = {"lenet5", "resnet20", "mobilenet_v2"}
# Building at the default input: the full VGG/AlexNet tops alone hold 50-130M weights.
SNAPSHOT_QUICK = {"lenet5", "resnet20", "plain20", "preact_resnet20", "mobilenet_v3_small",
                  "googlenet", "odenet"}  # fmt: skip
HUGE = {"resnet1202", "preact_resnet1001"}

# The backbone (include_top=False, pooling=None) at the default input: (height, width,
# channels) of its output, from the papers' and torchvision's / keras.applications' tables
# (ResNet-50: 7x7x2048; VGG: 7x7x512 after the last pool; AlexNet in D2L's layout: 5x5x256,
# a 6400-wide flatten; LeNet-5's C5: 1x1x120; CIFAR ResNets: 8x8x64; MobileNet v3 small's
# last conv: 576; Inception v3 at 299: 8x8x2048; ...).
BACKBONE_OUTPUT = {
    "lenet5": (1, 1, 120), "alexnet": (5, 5, 256), "vgg11": (7, 7, 512),
    "resnet20": (8, 8, 64), "resnet18": (7, 7, 512), "plain20": (8, 8, 64),
    "preact_resnet20": (8, 8, 64), "resnext50_32x4d": (7, 7, 2048), "googlenet": (7, 7, 1024),
    "inception_v3": (8, 8, 2048), "mobilenet_v1": (7, 7, 1024), "mobilenet_v2": (7, 7, 1280),
    "mobilenet_v3_small": (7, 7, 576), "efficientnet_b0": (7, 7, 1280),
    "densenet121": (7, 7, 1024), "convnext_tiny": (7, 7, 768), "odenet": (8, 8, 64),
}  # fmt: skip


def _names(selected=None, quick=REPRESENTATIVES - HEAVY):
    for name in list_models():
        if selected is not None and name not in selected:
            continue
        marks = [] if name in quick else [pytest.mark.slow]
        if name in HUGE:
            marks.append(pytest.mark.huge)
        yield pytest.param(name, marks=marks, id=name)


def test_snapshot_covers_every_registered_name():
    assert set(SNAPSHOT) == set(list_models())


@pytest.mark.parametrize("name", list(_names(quick=SNAPSHOT_QUICK)))
def test_every_name_builds_the_network_it_built_before(name):
    assert describe(create(name)) == SNAPSHOT[name]


@pytest.mark.parametrize(
    "filename", ["legacy_resnet.keras", "legacy_convnext.keras", "legacy_mobilenet_v3.keras"]
)
def test_keras_files_saved_before_the_change_load_and_predict_the_same(filename):
    stored = np.load(DATA / "legacy_predictions.npz")
    model = keras.models.load_model(DATA / filename)
    np.testing.assert_allclose(
        model.predict(stored["inputs"], verbose=0), stored[filename], rtol=1e-5, atol=1e-5
    )


def test_rows_hold_the_variant_data():
    info = model_info("resnet56")
    assert (info.family, info.dataset, info.recipe) == ("resnet", "cifar10", "resnet-cifar")
    assert dict(info.arguments) == {"depth": 56}
    assert (info.default_input_shape, info.default_num_classes) == ((32, 32, 3), 10)
    assert info.trainable_params == 853_018  # He et al. Table 6: 0.85M
    assert info.input_stats == PUBLISHED_STATS["cifar10"]
    assert model_info("inception_v3").default_input_shape == (299, 299, 3)
    assert model_info("efficientnet_b3").default_input_shape == (300, 300, 3)
    assert model_info("lenet5").default_input_shape == (32, 32, 1)
    assert model_info("vgg16").input_stats == ((123.675, 116.28, 103.53), (58.395, 57.12, 57.375))


def test_docs_model_table_is_generated_from_the_rows():
    from kerascnn.zoo import table

    docs = pathlib.Path(__file__).parents[2] / "docs" / "models.md"
    assert docs.read_text() == table.markdown(), (
        "docs/models.md is stale: python -m kerascnn.zoo.table --markdown docs/models.md"
    )
    assert "| resnet56 | resnet | 32x32x3 (10 classes) | 853,018 |" in docs.read_text()


def test_stored_rows_of_kerascnn_list_are_the_registrys():
    from kerascnn.listing import ROWS_PATH
    from kerascnn.zoo import table

    assert ROWS_PATH.read_text() == table.rows_json(), (
        f"{ROWS_PATH.name} is stale: python -m kerascnn.zoo.table --rows"
    )


def test_weights_that_do_not_exist_are_refused_by_name():
    with pytest.raises(ValueError, match=r"weights='cifar10' are not available for 'resnet56'"):
        create("resnet56", weights="cifar10")


def test_register_variant_adds_a_row_and_refuses_a_taken_name():
    from kerascnn.zoo.registry import _REGISTRY

    build = kerascnn.zoo.register_variant(
        "test_tiny_resnet", kerascnn.zoo.resnet, family="resnet", paper="test",
        dataset="cifar10", blocks=(1, 1, 1), filters=(4, 8, 16),
    )  # fmt: skip
    try:
        assert build().name == "test_tiny_resnet"
        assert create("test_tiny_resnet", num_classes=3).output_shape == (None, 3)
        info = model_info("test_tiny_resnet")
        assert dict(info.arguments) == {"blocks": (1, 1, 1), "filters": (4, 8, 16)}
        # not in the measured table: the listing measures it (1 + 3 blocks of 2 convs + fc)
        assert info.trainable_params is None and info.feature_strides is None
        from kerascnn.zoo import table

        (row,) = table.rows("test_tiny_resnet")
        assert row["features"] == "1/2/4"
        assert row["params"] == f"{sum(int(np.prod(w.shape)) for w in build().trainable_weights):,}"
        with pytest.raises(ValueError, match="already registered"):
            kerascnn.zoo.register_variant(
                "test_tiny_resnet", kerascnn.zoo.resnet, family="resnet", paper="test",
                dataset="cifar10",
            )  # fmt: skip
    finally:
        _REGISTRY.pop("test_tiny_resnet")


def test_register_variant_feature_strides_is_deprecated_and_ignored():
    from kerascnn.zoo.registry import _REGISTRY

    with pytest.warns(DeprecationWarning, match="feature_strides=.* deprecated and ignored"):
        kerascnn.zoo.register_variant(
            "test_old_style", kerascnn.zoo.resnet, family="resnet", paper="test",
            dataset="cifar10", feature_strides=(1, 2, 4), depth=20,
        )  # fmt: skip
    try:
        assert dict(model_info("test_old_style").arguments) == {"depth": 20}
    finally:
        _REGISTRY.pop("test_old_style")


def test_rows_are_written_once_as_literals():
    # each registered name appears as a quoted literal in exactly one family module, inside
    # a ModelInfo row (no rows made in loops or injected into the module's globals)
    zoo = pathlib.Path(kerascnn.zoo.__file__).parent
    sources = {p.name: p.read_text() for p in zoo.glob("*.py")}
    for name in list_models():
        homes = [f for f, text in sources.items() if f'ModelInfo("{name}",' in text]
        assert len(homes) == 1, (name, homes)
    for text in sources.values():
        assert "globals()" not in text


def small_input_shape(name):
    """A small input the architecture allows: strides and pooling do not depend on it."""
    if name == "inception_v3":
        return (75, 75, 3)
    if name == "alexnet":
        return (72, 72, 3)
    h, w, c = model_info(name).default_input_shape
    return (min(h, 64), min(w, 64), c)


@pytest.mark.parametrize("name", list(_names(set(BACKBONE_OUTPUT), quick=CI_FAMILIES)))
def test_backbone_output_and_its_pooling(name):
    assert create(name, include_top=False).output_shape == (None, *BACKBONE_OUTPUT[name])
    # at a small input: the pooled models are the backbone followed by NumPy's mean / max
    shape = small_input_shape(name)
    backbone = create(name, include_top=False, input_shape=shape)
    x = np.random.default_rng(0).uniform(0, 255, (1, *shape)).astype("float32")
    features = backbone.predict(x, verbose=0)
    for pooling, reduce in (("avg", np.mean), ("max", np.max)):
        pooled = create(name, include_top=False, pooling=pooling, input_shape=shape)
        assert pooled.output_shape == (None, BACKBONE_OUTPUT[name][-1])
        pooled.set_weights(backbone.get_weights())
        np.testing.assert_allclose(
            pooled.predict(x, verbose=0), reduce(features, axis=(1, 2)), rtol=1e-4, atol=1e-4
        )


@pytest.mark.parametrize("name", list(_names()))
def test_stage_outputs_have_the_documented_strides(name):
    shape = small_input_shape(name)
    backbone = create(name, include_top=False, input_shape=shape)
    info = feature_info(backbone)
    assert tuple(f.stride for f in info) == model_info(name).feature_strides
    assert [f.name for f in info] == [f"stage{k}" for k in range(1, len(info) + 1)]
    # the last stage is the backbone's output; the full model has the same stages
    assert info[-1].layer == backbone.layers[-1].name
    assert info[-1].channels == backbone.output_shape[-1]
    assert feature_info(create(name, input_shape=shape)) == info


def test_stage_outputs_of_a_resnet_are_its_stages():
    # He et al.'s CIFAR ResNet: three stages of 16, 32, 64 filters on 32, 16, 8 pixel maps
    extractor = feature_extractor(create("resnet56", include_top=False))
    assert {k: v.shape for k, v in extractor.output.items()} == {
        "stage1": (None, 32, 32, 16),
        "stage2": (None, 16, 16, 32),
        "stage3": (None, 8, 8, 64),
    }
    assert [f.layer for f in feature_info(create("resnet20"))] == [
        "stage1_block3_out", "stage2_block3_out", "stage3_block3_out"
    ]  # fmt: skip


@pytest.mark.parametrize("name", list(_names(REPRESENTATIVES, quick=CI_FAMILIES)))
def test_stage_outputs_feed_a_new_head_that_trains(name):
    shape = small_input_shape(name)
    backbone = create(name, include_top=False, input_shape=shape)
    extractor = feature_extractor(backbone)
    pooled = [
        keras.layers.GlobalAveragePooling2D(name=f"probe_{k}")(v)
        for k, v in extractor.output.items()
    ]
    logits = keras.layers.Dense(3, name="probe_fc")(keras.layers.Concatenate()(pooled))
    model = keras.Model(extractor.input, logits)
    model.compile(keras.optimizers.SGD(0.01), keras.losses.SparseCategoricalCrossentropy(True))
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1, (4, *shape)).astype("float32")
    y = np.array([0, 1, 2, 0])
    before = [w.numpy().copy() for w in backbone.trainable_weights]
    losses = [model.train_on_batch(x, y) for _ in range(3)]
    assert np.all(np.isfinite(losses))
    changed = [
        not np.array_equal(b, w.numpy())
        for b, w in zip(before, backbone.trainable_weights, strict=True)
    ]
    assert changed[0] and changed[-1], "gradients reach the first and the last stage"


def test_invalid_top_arguments_are_named():
    with pytest.raises(
        ValueError, match=r"include_top must be True or False; received include_top='no'"
    ):
        create("resnet20", include_top="no")
    with pytest.raises(
        ValueError, match=r"pooling must be one of None, 'avg', 'max'; received pooling='mean'"
    ):
        create("resnet20", include_top=False, pooling="mean")
    with pytest.raises(ValueError, match=r"pooling='avg' applies to include_top=False"):
        create("resnet20", pooling="avg")
    extractor_source = create("resnet20", include_top=False)
    with pytest.raises(
        ValueError, match=r"stages must be a non-empty list of stage1, stage2, stage3"
    ):
        feature_extractor(extractor_source, stages=["stage4"])
    with pytest.raises(ValueError, match="not a functional Keras model"):
        feature_info(keras.Sequential([keras.layers.Dense(2)]))
