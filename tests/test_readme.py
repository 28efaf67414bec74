"""The README's first screen: the two commands, what the main one prints, the three uses as
runnable blocks, and no history (commit hashes) there; the blocks run as written."""

import pathlib
import re
import subprocess
import sys

from conftest import tf_only

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
USES = ("**A zoo model in a script**", "**A SavedModel for serving**", "**Trained presets")


def _first_screen() -> str:
    return "".join(README.read_text().splitlines(keepends=True)[:60])


def _use_blocks(text: str) -> list[str]:
    """The python block that follows each of the three uses' headings."""
    blocks = []
    for use in USES:
        after = text[text.index(use) :]
        start = after.index("```python\n") + len("```python\n")
        blocks.append(after[start : after.index("\n```", start)])
    return blocks


def test_the_first_60_lines_hold_the_commands_their_output_and_the_three_uses():
    screen = _first_screen()
    assert "<!-- main-command -->" in screen and "<!-- test-command -->" in screen
    assert re.search(r"^validation accuracy: 0\.\d{4}$", screen, re.M)
    assert "exported SavedModel: saved_models/resnet20/1" in screen
    assert len(_use_blocks(screen)) == 3  # each use's block closes within the 60 lines
    hashes = [w for w in re.findall(r"\b[0-9a-f]{7,40}\b", screen) if re.search(r"\d", w)]
    assert not [w for w in hashes if re.search(r"[a-f]", w)], hashes


@tf_only
def test_the_three_uses_run_as_written(tmp_path):
    """The blocks, one after the other in one process (the second exports the first's model),
    with the first's 20 epochs cut to 1."""
    code = "\n".join(_use_blocks(_first_screen())).replace("epochs=20", "epochs=1")
    assert "epochs=1," in code
    code += "\nprint('exported', path)\nprint('accuracy', accuracy)\n"
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert (tmp_path / "saved_models" / "mine" / "1" / "saved_model.pb").exists()
    stated = re.search(r"# ([0-9.]+) on 500 images", _first_screen()).group(1)
    shown = float(run.stdout.split("accuracy ")[-1])
    assert abs(shown - float(stated)) < 1e-3
