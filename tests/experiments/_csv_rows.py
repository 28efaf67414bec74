"""Reading back the CSV files the experiments write (kerascnn.experiments.common.write_csv)."""

import csv
import pathlib


def read_csv(path) -> list[dict]:
    """Rows of a CSV written by ``write_csv``, with numbers and booleans converted back."""

    def convert(value):
        for kind in (int, float):
            try:
                return kind(value)
            except ValueError:
                pass
        return {"True": True, "False": False}.get(value, value)

    with pathlib.Path(path).open(newline="") as f:
        return [{k: convert(v) for k, v in row.items()} for row in csv.DictReader(f)]
