"""``kerascnn list`` without Keras or TensorFlow: the registry's rows as stored data.

The rows (name, family, input, parameters, multiply-adds, feature strides, recipe, weights,
paper) are generated from the registry into ``zoo/model_rows.json`` by
``python -m kerascnn.zoo.table --rows``; a test checks they equal the live registry's. This
module imports neither Keras nor the zoo, so listing is instant.
"""

from __future__ import annotations

import fnmatch
import json
import pathlib
import re
import shutil

__all__ = ["ROWS_PATH", "format_rows", "stored_rows"]

ROWS_PATH = pathlib.Path(__file__).with_name("zoo") / "model_rows.json"
# The columns shown when the terminal is too narrow for all, in the order they are dropped
# from the right; --wide shows every column.
NARROW_COLUMNS = ("name", "family", "input", "params", "MACs", "weights")


def _natural_key(name: str):
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def stored_rows(pattern: str = "*") -> tuple[list[str], list[dict]]:
    """The stored columns and the rows whose name matches the shell-style ``pattern``, in
    natural order (as :func:`kerascnn.zoo.list_models`)."""
    data = json.loads(ROWS_PATH.read_text())
    rows = [r for r in data["rows"] if fnmatch.fnmatchcase(r["name"], pattern)]
    return data["columns"], sorted(rows, key=lambda r: _natural_key(r["name"]))


def format_rows(columns, rows, width: int | None = None, wide: bool = False) -> list[str]:
    """The table as lines: every column with ``wide``, else as many of
    :data:`NARROW_COLUMNS` as fit ``width`` (default: the terminal's)."""
    width = width or shutil.get_terminal_size((100, 24)).columns

    def render(shown):
        widths = [max(len(c), *(len(r[c]) for r in rows)) for c in shown]
        lines = ["  ".join(c.ljust(w) for c, w in zip(shown, widths, strict=True)).rstrip()]
        lines += [
            "  ".join(r[c].ljust(w) for c, w in zip(shown, widths, strict=True)).rstrip()
            for r in rows
        ]
        return lines

    if wide:
        return render(list(columns))
    shown = [c for c in NARROW_COLUMNS if c in columns]
    lines = render(shown)
    while len(shown) > 2 and max(len(line) for line in lines) > width:
        shown.pop()
        lines = render(shown)
    return lines
