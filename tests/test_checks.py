"""kerascnn.checks: one implementation of each argument check, raising UserInputError."""

import ast
import pathlib

import pytest

from kerascnn import checks
from kerascnn.errors import UserInputError


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: checks.check_int("n", 0), "n must be an integer >= 1; received n=0"),
        (lambda: checks.check_int("n", True), "n must be an integer >= 1; received n=True"),
        (lambda: checks.check_float("p", 1.0, 0.0, 1.0), r"p must be a number in \[0.0, 1.0\)"),
        (
            lambda: checks.check_float("p", 2, 0, 1, high_inclusive=True),
            r"p must be a number in \[0, 1\]; received p=2",
        ),
        (
            lambda: checks.check_choice("m", "c", ("a", "b")),
            "m must be one of 'a', 'b'; received m='c'",
        ),
        (lambda: checks.check_seed("a"), "seed must be None or an integer; received seed='a'"),
        (lambda: checks.check_pair("k", (1, 0)), r"k must be a positive integer or a pair of them"),
        (
            lambda: checks.check_input_shape((32, 32)),
            r"input_shape must be \(height, width, channels\)",
        ),
        (lambda: checks.check_data_format("nhwc"), "data_format must be None, 'channels_last'"),
    ],
)
def test_checks_raise_user_input_error_naming_argument_and_value(call, message):
    with pytest.raises(UserInputError, match=message):
        call()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            {"value": [6, 0]},
            "blocks must be a non-empty list of integers >= 1; received blocks=[6, 0]",
        ),
        ({"value": []}, "blocks must be a non-empty list of integers >= 1; received blocks=[]"),
        ({"value": 3}, "blocks must be a non-empty list of integers >= 1; received blocks=3"),
        (
            {"value": "3,4"},
            "blocks must be a non-empty list of integers >= 1; received blocks='3,4'",
        ),
        (
            {"value": (2, True)},
            "blocks must be a non-empty list of integers >= 1; received blocks=(2, True)",
        ),
        (
            {"value": (2, 2.0)},
            "blocks must be a non-empty list of integers >= 1; received blocks=(2, 2.0)",
        ),
        (
            {"value": (1, -1), "minimum": 0},
            "blocks must be a non-empty list of integers >= 0; received blocks=(1, -1)",
        ),
        (
            {"value": (16, 32), "length": 3, "per": "one per stage"},
            "blocks must be a list of 3 integers >= 1 (one per stage); received blocks=(16, 32)",
        ),
        (
            {"value": (16, 32, 64, 128), "length": 3},
            "blocks must be a list of 3 integers >= 1; received blocks=(16, 32, 64, 128)",
        ),
    ],
)
def test_check_int_list_message_names_argument_value_and_rule(kwargs, message):
    with pytest.raises(UserInputError) as info:
        checks.check_int_list("blocks", **kwargs)
    assert str(info.value) == message


def test_check_int_list_returns_a_tuple():
    assert checks.check_int_list("blocks", [3, 4, 6, 3]) == (3, 4, 6, 3)
    assert checks.check_int_list("blocks", (0, 2), minimum=0, length=2) == (0, 2)


def test_checks_return_the_normalized_value():
    assert checks.check_int("n", 0, minimum=0) == 0
    assert checks.check_float("p", 1, 0, 1, high_inclusive=True) == 1.0
    assert checks.check_pair("k", 3) == (3, 3)
    assert checks.check_input_shape([8, 8, 3]) == (8, 8, 3)
    assert checks.check_seed(None) is None
    assert checks.check_data_format(None) in ("channels_last", "channels_first")


def test_checks_import_nothing_from_kerascnn_but_errors():
    tree = ast.parse(pathlib.Path(checks.__file__).read_text())
    imported = {
        node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("kerascnn")
    }
    imported |= {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
        if alias.name.startswith("kerascnn")
    }
    assert imported == {"kerascnn.errors"}


def test_zoo_common_reexports_the_same_checks():
    from kerascnn.zoo import common

    assert common.check_int is checks.check_int
    assert common.check_choice is checks.check_choice
