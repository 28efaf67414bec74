"""The benchmark helpers that produce the README's speed figures: the epoch-start pause read
from Keras's progress bar, the machine label, and the README's speed table, which must be the
table of the results file it names."""

import json
import pathlib
import re

import pytest
from keras.src.utils import progbar

from benchmarks import machine, summary
from benchmarks.main_command import epoch_rows

ROOT = pathlib.Path(__file__).resolve().parents[1]


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def time(self):
        return self.now


def progress_output(monkeypatch, capsys, epochs):
    """What ``fit``'s progress bar prints for the given step times, on a fake clock: per
    epoch ``(step_seconds, validation_seconds)``."""
    clock = FakeClock()
    monkeypatch.setattr(progbar, "time", clock)
    for number, (steps, validation) in enumerate(epochs, 1):
        print(f"Epoch {number}/{len(epochs)}")
        bar = progbar.Progbar(target=len(steps))
        for k, seconds in enumerate(steps, 1):
            clock.now += seconds
            bar.update(k, [("loss", 1.0)])
        clock.now += validation
        bar.update(len(steps), [("loss", 1.0), ("val_loss", 1.0)], finalize=True)
    return capsys.readouterr().out


def test_epoch_rows_reads_the_first_step_and_the_steady_step_from_keras_progress_bar(
    monkeypatch, capsys
):
    # a 3.7 s first epoch start (tracing), a 2.48 s pause at epoch 3, 0.07-0.09 s steps
    epochs = [
        ([3.7] + [0.08] * 31, 1.5),
        ([0.095] + [0.07] * 31, 0.4),
        ([2.48] + [0.06, 0.09] * 15 + [0.075], 0.4),
    ]
    rows = epoch_rows(progress_output(monkeypatch, capsys, epochs))
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    for row, (steps, _) in zip(rows, epochs, strict=True):
        steady = sum(steps[1:-1]) / (len(steps) - 2)  # the bar's mean of steps 2..31
        # the first step: to the millisecond below 1 s; from 1 s up from the ETA, whole
        # seconds over 31 steps
        tolerance = 0.001 if steps[0] < 1 else 1 / 31
        assert row["first_step_s"] == pytest.approx(steps[0], abs=tolerance)
        assert row["steady_step_s"] == pytest.approx(steady, abs=0.001)
        assert row["pause_s"] == pytest.approx(steps[0] - steady, abs=tolerance + 0.001)


def test_machine_label_names_the_cpu_and_its_vector_flags():
    info = {"cpu_model": "AMD EPYC", "cpu_count": 2, "avx2": True, "fma": True,
            "avx512f": False, "avx512_bf16": False, "amx_tile": False}  # fmt: skip
    assert machine.label(info) == "AMD EPYC, 2 cores, AVX2 + FMA, no AVX-512"
    info.update(avx512f=True, avx512_bf16=True, isa_caps={"ONEDNN_MAX_CPU_ISA": "AVX2"})
    assert machine.label(info) == (
        "AMD EPYC, 2 cores, AVX2 + FMA + AVX-512 + AVX512_BF16; capped at ONEDNN_MAX_CPU_ISA=AVX2"
    )
    here = machine.cpu()
    assert here["cpu_count"] >= 1 and isinstance(here["cpu_model"], str)


def test_summary_rows_are_the_ratios_of_the_results_file(tmp_path):
    def entry(median, lo, hi):
        return {"median": median, "min": lo, "max": hi}

    result = {
        "command": "python -m benchmarks.run --summary",
        "date": "2026-12-01",
        "machine": {"cpu_model": "X", "cpu_count": 2, "load_average_at_start": [0.25]},
        "benchmarks": {
            "peak": {"best_gflops": 200.0},
            "train_cifar": {"resnet56": {
                "train_gflop_per_image": 0.75,
                "images_per_s": {"kerascnn": entry(120, 110, 130),
                                 "torch_channels_last": entry(100, 95, 105),
                                 "torch_nchw": entry(80, 70, 90),
                                 "plain_keras": entry(60, 50, 70)},
            }},
            "inference": {"images_per_s": {"serving_export": entry(700, 650, 720),
                                           "torch_eval_channels_last": entry(500, 480, 520),
                                           "model_predict": entry(350, 300, 400)}},
        },
    }  # fmt: skip
    table = dict((name, value) for name, value, _ in summary.rows(result))
    assert table["ResNet-56 training: kerascnn / PyTorch channels_last"] == "1.20x"
    assert table["ResNet-56 training: kerascnn / plain Keras"] == "2.00x"
    assert table["ResNet-56 training: kerascnn's share of the peak"] == "45 %"  # 120*0.75/200
    assert table["ResNet-56 inference: serving_export / PyTorch eval channels_last"] == "1.40x"
    text = summary.markdown(result, "benchmarks/results/x.json")
    assert (
        "| ResNet-56 training: kerascnn / PyTorch channels_last | 1.20x (target 1.0x: met) |"
        in text
    )
    assert "(target 1.2x: met)" in text and "`benchmarks/results/x.json`" in text


def test_readme_speed_table_is_the_table_of_the_results_file_it_names():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"<!-- speed-table: (\S+) -->\n(.*?)\n<!-- /speed-table -->", readme, re.S)
    assert blocks, "README.md has no <!-- speed-table: PATH --> block"
    for path, table in blocks:
        result = json.loads((ROOT / path).read_text())
        assert table.strip() == summary.markdown(result, path).strip(), (
            f"README's speed table differs from {path}: regenerate it with "
            f"python -m benchmarks.run --summary {path}"
        )
