"""Inputs a user can type that printed tracebacks (issue 25): an unknown or missing backend,
a file named .npz that is not one, a damaged .npz, a negative seed. Each gets one line that
names the argument or file, the value and what is allowed."""

import subprocess
import sys

import numpy as np
import pytest

from kerascnn import backends, cli, pipelines
from kerascnn.errors import DataValidationError


def test_an_unknown_keras_backend_is_refused_in_one_line_before_keras_loads(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "kerascnn.cli", "list"],
        env={"PATH": "/usr/bin:/bin", "KERAS_BACKEND": "mxnet", "TF_CPP_MIN_LOG_LEVEL": "3"},
        capture_output=True, text=True, timeout=300, cwd=tmp_path, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "kerascnn: error: KERAS_BACKEND='mxnet' is not a Keras backend kerascnn runs on; use one "
        "of tensorflow, jax, torch"
    ]


def test_a_backend_that_is_not_installed_names_the_extra_to_install(monkeypatch):
    monkeypatch.delitem(sys.modules, "keras")  # as before Keras is first imported
    real = backends.importlib.util.find_spec
    monkeypatch.setattr(
        backends.importlib.util, "find_spec", lambda name: None if name == "jax" else real(name)
    )
    with pytest.raises(ValueError, match=r"^--backend='jax': jax is not installed in this "
                       r"environment \(pip install 'kerascnn\[jax\]'\)$"):  # fmt: skip
        backends.check_backend("jax", "--backend")
    backends.check_backend("tensorflow", "--backend")  # installed: no error


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"hello, not numpy", "not a readable NumPy .npz archive"),
        ("truncated", "not a readable NumPy .npz archive"),
        ("objects", "cannot be read .* holds Python objects"),
    ],
)
def test_files_named_npz_that_cannot_be_read_are_refused_in_one_line(tmp_path, content, reason):
    path = tmp_path / "data.npz"
    if content == "truncated":
        np.savez(path, x=np.zeros((4, 8, 8, 3), np.uint8), y=np.arange(4))
        path.write_bytes(path.read_bytes()[:200])
    elif content == "objects":
        np.savez(path, x=np.array([object()] * 4), y=np.arange(4))
    else:
        path.write_bytes(content)
    with pytest.raises(DataValidationError, match=reason) as caught:
        pipelines.load(path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)
    assert cli.main(["train", "lenet5", "--dataset", str(path), "--out", str(tmp_path / "r")]) == 2


@pytest.mark.parametrize("seed", ["-1", "4294967296", "x"])
def test_a_seed_outside_numpys_range_is_refused_by_the_parser(seed, capsys):
    with pytest.raises(SystemExit) as caught:
        cli.main(["train", "lenet5", "--seed", seed])
    assert caught.value.code == 2
    assert f"argument --seed: must be an integer in 0..4294967295; received {seed!r}" in (
        capsys.readouterr().err
    )
