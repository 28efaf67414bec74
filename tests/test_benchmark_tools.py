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


def test_xla_cpu_interleaves_the_cells_and_reports_ratios_of_medians(monkeypatch):
    """benchmarks/xla_cpu.py: rounds alternate on/off, off/on; the ratio is of the medians;
    a cell that failed to compile is reported with its error and leaves no ratio."""
    from benchmarks import xla_cpu

    asked = []
    rates = {("resnet20", True): [90.0, 60.0, 75.0], ("resnet20", False): [100.0, 150.0, 120.0]}

    class FakeCell:
        def __init__(self, backend, model, jit, steps, timeout):
            self.name, self.jit = f"{backend} {model} jit={jit}", jit
            self.answers = list(rates.get((model, jit), []))

        def read(self, timeout):
            if not self.answers:
                return {"error": "RuntimeError: compile failed"}
            return {"ready": True, "jit_compile_in_effect": self.jit, "first_step_s": 5.0,
                    "warmup_fit_s": 7.0, "warmup_steps": 3}  # fmt: skip

        def ask(self, timeout):
            asked.append(self.jit)
            rate = self.answers.pop(0)
            return {"images_per_s": rate, "step_s": 128 / rate}

        def stop(self):
            pass

    monkeypatch.setattr(xla_cpu, "Cell", FakeCell)
    steps = {True: 2, False: 2}
    pair = xla_cpu.measure_pair("tensorflow", "resnet20", steps, 3, 10, 10, log=lambda *a: None)
    assert asked == [True, False, False, True, True, False]
    assert pair["on"]["images_per_s"]["median"] == 75.0
    assert pair["off"]["images_per_s"] == {"median": 120.0, "min": 100.0, "max": 150.0,
                                           "runs": [100.0, 150.0, 120.0]}  # fmt: skip
    assert pair["ratio_on_off"] == 0.625
    # warm-up 7 s for 3 steps at the median pace of 128/75 s: 1.88 s of compilation
    assert pair["on"]["compile_s"] == round(7.0 - 3 * 128 / 75, 1)

    failed = xla_cpu.measure_pair("torch", "mobilenet_v2", steps, 2, 10, 10, log=lambda *a: None)
    assert failed["ratio_on_off"] is None and failed["on"]["images_per_s"] is None
    result = {
        "date": "2026-12-04", "command": "python benchmarks/xla_cpu.py", "seconds": 60.0,
        "machine": {"cpu_model": "AMD EPYC", "cpu_count": 2, "avx2": True},
        "versions": {"keras": "3.15.1"}, "pairs": [pair, failed],
    }  # fmt: skip
    text = xla_cpu.markdown(result, "benchmarks/results/x.json")
    assert (
        "| tensorflow | resnet20 | 120.0 [100.0..150.0] | 75.0 [60.0..90.0] | **0.62x** |" in text
    )
    assert "torch mobilenet_v2 jit on: `RuntimeError: compile failed`" in text
    assert "AMD EPYC, 2 cores, AVX2" in text and "`benchmarks/results/x.json`" in text


def test_make_preset_sums_the_epoch_times_of_a_resumed_runs_console_log():
    """``scripts/make_preset.py --console-log``: the training time of a preset is the sum of
    the epoch lines, each epoch once (a resume may print an epoch again: the last one counts)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_preset", ROOT / "scripts/make_preset.py")
    make_preset = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_preset)
    resumed = (
        "data: x.npz: 45000 training images\n"
        "epoch 1/3 - 85.5 s - accuracy: 0.3000 - loss: 1.9000\n"
        "epoch 2/3 - 90.0 s - accuracy: 0.4000 - loss: 1.6000\n"
        "tracing the training step: the first batch takes longer\n"
        "epoch 2/3 - 84.0 s - accuracy: 0.4000 - loss: 1.6000\n"
        "epoch 3/3 - 83.25 s - accuracy: 0.5000 - loss: 1.4000\n"
    )
    assert make_preset.console_epoch_seconds(resumed) == [85.5, 84.0, 83.25]
    keras_verbose_2 = "352/352 - 100s - 284ms/step - loss: 1.9\n352/352 - 96s - 273ms/step\n"
    assert make_preset.console_epoch_seconds(keras_verbose_2) == [100.0, 96.0]
