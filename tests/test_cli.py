"""The command line: `kerascnn list` and `kerascnn summary`, in-process and as a console script."""

import shutil
import subprocess
import sys

import pytest

from kerascnn import cli
from kerascnn.zoo import table


def test_list_prints_a_table_with_counts(capsys):
    assert cli.main(["list", "resnet5*"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:5] == ["name", "family", "input", "params", "MACs"]
    rows = {line.split()[0]: line for line in out[1:]}
    assert list(rows) == ["resnet50", "resnet56"]
    assert "853,018" in rows["resnet56"] and "125.49M" in rows["resnet56"]
    assert "25,557,032" in rows["resnet50"] and "224x224x3" in rows["resnet50"]


def test_unknown_model_suggests_close_names_and_exits_non_zero(capsys):
    assert cli.main(["summary", "resnet57"]) == 2
    err = capsys.readouterr().err
    assert "Unknown model name='resnet57'" in err and "resnet56" in err
    assert "Traceback" not in err
    assert cli.main(["list", "nomatch*"]) == 2


def test_summary_prints_the_keras_summary(capsys):
    assert cli.main(["summary", "lenet5"]) == 0
    out = capsys.readouterr().out
    assert "c3_conv" in out and "61,706" in out and "MACs per image: 416,520" in out


@pytest.mark.parametrize(
    "name",
    ["resnet20", "resnet56", "mobilenet_v2", "lenet5", "preact_resnet20", "plain56", "odenet"],
)
def test_stored_table_matches_fresh_builds(name):
    assert table.load_table()[name] == table.measure(name)


def test_stored_table_covers_every_registered_model():
    from kerascnn.zoo import list_models

    assert set(table.load_table()) == set(list_models())


@pytest.mark.skipif(
    shutil.which("kerascnn") is None and not (sys.prefix and True), reason="no console script"
)
def test_console_script_runs():
    exe = shutil.which("kerascnn")
    command = [exe] if exe else [sys.executable, "-m", "kerascnn.cli"]
    result = subprocess.run(
        [*command, "list", "lenet*"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "lenet5" in result.stdout
    bad = subprocess.run(
        [*command, "summary", "vgg17"], capture_output=True, text=True, timeout=120
    )
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and "vgg1" in bad.stderr
