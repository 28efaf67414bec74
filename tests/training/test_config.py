"""RunConfig: one object per run, checked when made, the only way options reach a run."""

import dataclasses
import json

import numpy as np
import pytest

from kerascnn.errors import UserInputError
from kerascnn.training import RECIPES, RunConfig, train, train_from_names
from kerascnn.training.config import RECIPE_OVERRIDES


def test_recipe_fields_are_the_recipes_own():
    recipe = dataclasses.asdict(RECIPES["quick"])
    assert set(RECIPE_OVERRIDES) == set(recipe) - {"name", "description"}


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"placement": "gpu"}, "placement must be one of 'model', 'pipeline'; received placement='gpu'"),
        ({"validation_fraction": 1.5}, "validation_fraction must be a number in [0.0, 1.0); received validation_fraction=1.5"),
        ({"mixed_precision": "float16"}, "mixed_precision must be one of None, 'mixed_float16', 'mixed_bfloat16'; received mixed_precision='float16'"),
        ({"jit_compile": "yes"}, "jit_compile must be True, False or 'auto'; received jit_compile='yes'"),
        ({"lr_scaling": "cubic"}, "lr_scaling must be one of 'linear', 'sqrt', 'none'; received lr_scaling='cubic'"),
        ({"overwrite": 1}, "overwrite must be True or False; received overwrite=1"),
        ({"image_size": (32, 0)}, "image_size must be a positive integer or a pair of them; received image_size=(32, 0)"),
        ({"recipe_overrides": {"epoch": 3}}, "recipe_overrides has unknown field(s) 'epoch'; allowed: "),
        ({"on_bad_file": "ignore"}, "on_bad_file must be one of 'error', 'skip'; received on_bad_file='ignore'"),
    ],
)  # fmt: skip
def test_a_bad_value_is_refused_naming_the_field_the_value_and_what_is_allowed(changes, message):
    with pytest.raises(UserInputError) as error:
        RunConfig("resnet20", **changes)
    assert str(error.value).startswith(message)


def test_options_split_into_config_fields_and_recipe_fields():
    config = RunConfig.from_options(
        "resnet20", "data.npz", recipe="resnet-cifar", epochs=3, lr=0.05, seed=4, batch_size=None
    )
    assert config.dataset == "data.npz" and config.recipe == "resnet-cifar" and config.seed == 4
    assert config.recipe_overrides == {"epochs": 3, "lr": 0.05}  # None: the recipe's own
    with pytest.raises(UserInputError, match="unknown run option 'epoch'; allowed: "):
        RunConfig.from_options("resnet20", epoch=3)


def test_the_config_is_frozen_and_replace_checks_again():
    config = RunConfig("resnet20")
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.seed = 3
    assert config.replace(seed=3).seed == 3
    with pytest.raises(UserInputError, match="placement"):
        config.replace(placement="tpu")


def test_describe_is_json(tmp_path):
    config = RunConfig("resnet20", out_dir=tmp_path, image_size=[16, 16])
    described = json.loads(json.dumps(config.describe()))
    assert described["out_dir"] == str(tmp_path) and described["image_size"] == [16, 16]
    assert described["model"] == "resnet20" and described["recipe"] == "quick"


def test_train_from_names_is_train_of_its_config(tmp_path):
    """The keyword form and the config form run the same training (same seed: same weights)."""
    options = dict(recipe="quick", epochs=1, batch_size=64, seed=2)
    by_names = train_from_names("lenet5", out_dir=tmp_path / "a", verbose=0, **options)
    config = RunConfig.from_options("lenet5", out_dir=tmp_path / "b", **options)
    by_config = train(config, verbose=0)
    for a, b in zip(by_names.model.get_weights(), by_config.model.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)
    recorded = json.loads((tmp_path / "b" / "command.json").read_text())
    assert recorded["model"] == "lenet5" and recorded["seed"] == 2
    assert recorded["recipe"]["epochs"] == 1 and recorded["recipe"]["batch_size"] == 64


def test_the_paper_recipe_is_the_one_the_models_row_names():
    """``recipe="paper"`` reads the registry row (He et al.'s schedule for the CIFAR ResNets)
    and is recorded resolved; a row without one is refused in one line naming the choices."""
    from kerascnn import zoo

    assert zoo.model_info("resnet20").recipe == "resnet-cifar"
    config = RunConfig("resnet20", recipe="paper")
    assert config.recipe == "resnet-cifar"
    assert config.describe()["recipe"] == "resnet-cifar"
    assert zoo.model_info("lenet5").recipe is None
    with pytest.raises(
        UserInputError, match=r"^recipe='paper': the row of 'lenet5' names no recipe .*quick"
    ):
        RunConfig("lenet5", recipe="paper")
