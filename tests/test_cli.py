"""The command line: `kerascnn list` and `kerascnn summary`, in-process and as a console script."""

import shutil
import subprocess
import sys

import pytest

from kerascnn import cli
from kerascnn.zoo import table
from kerascnn.zoo.registry import load_counts


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
    assert load_counts()[name] == table.measure(name)


def test_stored_table_covers_every_registered_model():
    from kerascnn.zoo import list_models

    assert set(load_counts()) == set(list_models())


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


LIGHT = """
import sys
sys.argv = ["kerascnn", *sys.argv[1:]]  # as the console script starts
from kerascnn import cli
try:
    code = cli.main(sys.argv[1:])
except SystemExit as stop:  # --help
    code = stop.code
heavy = [m for m in ("keras", "tensorflow", "jax", "torch") if m in sys.modules]
print("CODE", code, "HEAVY", ",".join(heavy) or "-")
"""


@pytest.mark.parametrize("argv", [["--help"], ["list"], ["--backend", "jax", "list", "vgg*"]])
def test_help_and_list_import_neither_keras_nor_tensorflow(argv):
    run = subprocess.run(
        [sys.executable, "-c", LIGHT, *argv], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().splitlines()[-1] == "CODE 0 HEAVY -", run.stdout[-500:]
    assert run.stderr == ""


def test_list_fits_the_terminal_and_wide_shows_every_column():
    from kerascnn.listing import format_rows, stored_rows

    columns, rows = stored_rows("*")
    assert len(rows) == len(table.rows()) and columns == list(table.COLUMNS)
    for width in (60, 80, 120):
        lines = format_rows(columns, rows, width=width)
        assert max(map(len, lines)) <= width or lines[0].split() == ["name", "family"]
        assert lines[0].split()[:2] == ["name", "family"]
    wide = format_rows(columns, rows, wide=True)
    assert wide[0].split() == list(table.COLUMNS)
    assert max(map(len, wide)) > 200  # the paper column: why it is not shown by default
    names = [line.split()[0] for line in wide[1:]]
    assert names == [r["name"] for r in table.rows()]  # the registry's natural order
