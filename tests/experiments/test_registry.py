"""The experiment registry is data: listing, `kerascnn list` and `import kerascnn` import no
experiment module and work without matplotlib (the `plots` extra)."""

import subprocess
import sys
import textwrap

from kerascnn.experiments import EXPERIMENTS

# Run in a fresh interpreter in which `import matplotlib` fails.
_WITHOUT_MATPLOTLIB = textwrap.dedent(
    """
    import sys

    class _NoMatplotlib:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "matplotlib":
                raise ModuleNotFoundError(f"No module named {name!r}")

    sys.meta_path.insert(0, _NoMatplotlib())
    import kerascnn
    from kerascnn import cli

    rc = cli.main(sys.argv[1:])
    loaded = sorted(m for m in sys.modules if m.startswith("kerascnn.experiments."))
    print("RESULT", rc, "matplotlib" in sys.modules, ",".join(loaded))
    """
)


def _run_without_matplotlib(*argv):
    result = subprocess.run(
        [sys.executable, "-c", _WITHOUT_MATPLOTLIB, *argv],
        capture_output=True,
        text=True,
        timeout=300,
    )
    line = next(x for x in result.stdout.splitlines() if x.startswith("RESULT"))
    _, rc, matplotlib_loaded, loaded = line.split(" ", 3)
    return int(rc), matplotlib_loaded == "True", loaded.split(","), result.stderr


def test_every_experiment_has_a_one_line_help_and_resolvable_functions():
    for name, experiment in EXPERIMENTS.items():
        assert experiment.name == name
        assert experiment.help and "\n" not in experiment.help
        for target in (experiment.run_target, experiment.arguments_target):
            module, _, function = target.partition(":")
            assert module.startswith("kerascnn.experiments.") and function


def test_list_imports_no_experiment_module_and_needs_no_matplotlib():
    rc, matplotlib_loaded, loaded, stderr = _run_without_matplotlib("list", "lenet*")
    assert rc == 0, stderr
    assert not matplotlib_loaded
    assert loaded == ["kerascnn.experiments.registry"]


def test_experiment_without_matplotlib_fails_with_one_line_naming_the_extra(tmp_path):
    rc, _, loaded, stderr = _run_without_matplotlib(
        "experiment", "ode-vs-resnet", "--data", "synthetic:40", "--out", str(tmp_path)
    )
    assert rc == 2
    assert "Traceback" not in stderr
    assert "pip install 'kerascnn[plots]'" in stderr
    assert "kerascnn.experiments.regularization" not in loaded  # only the one that runs
    assert not list(tmp_path.iterdir())  # refused before training


def test_invalid_experiment_inputs_are_the_users_error():
    import pytest

    from kerascnn.errors import UserInputError
    from kerascnn.experiments import common, register_experiment

    with pytest.raises(
        UserInputError,
        match=r"name must be a new experiment name; received name='degradation', which is "
        r"already registered",
    ):
        register_experiment("degradation", "again", print, print)
    with pytest.raises(
        UserInputError,
        match=r"depths must be a non-empty list of integers >= 1; received depths=\[20, 0\]",
    ):
        common.parse_ints("20,0", "depths")
    with pytest.raises(
        UserInputError,
        match=r"depths must be comma-separated integers >= 1; received "
        r"depths='20,x'",
    ):
        common.parse_ints("20,x", "depths")
    assert common.parse_ints("20, 56", "depths") == [20, 56]
    assert common.parse_ints((3, 4), "blocks") == [3, 4]
