"""The registry's table: family, default input, trainable parameters and MACs per model.

Building every model to count it takes minutes (VGG-19 alone has 144M weights), so
``kerascnn list`` reads a table stored with the package; ``python -m kerascnn.zoo.table``
rebuilds it, and a test checks that it matches freshly built models.
"""

from __future__ import annotations

import json
import pathlib

import numpy as np

from kerascnn.zoo.flops import count_flops
from kerascnn.zoo.registry import create, list_models, model_info

TABLE_PATH = pathlib.Path(__file__).with_name("model_table.json")


def measure(name: str) -> dict:
    """Build ``name`` with its defaults and count it."""
    model = create(name)
    return {
        "trainable_params": int(sum(int(np.prod(w.shape)) for w in model.trainable_weights)),
        "macs": count_flops(model),
    }


def load_table() -> dict[str, dict]:
    if TABLE_PATH.exists():
        return json.loads(TABLE_PATH.read_text())
    return {}


def rows(pattern: str = "*") -> list[dict]:
    """One row per registered name matching ``pattern``; unknown counts are measured."""
    table = load_table()
    out = []
    for name in list_models(pattern):
        info = model_info(name)
        counts = table.get(name) or measure(name)
        out.append(
            {
                "name": name,
                "family": info.family,
                "input": "x".join(str(d) for d in info.default_input_shape),
                "classes": info.default_num_classes,
                **counts,
                "paper": info.paper,
            }
        )
    return out


def main() -> None:
    import keras

    table = {}
    for name in list_models():
        table[name] = measure(name)
        keras.utils.clear_session()
        print(name, table[name], flush=True)
    TABLE_PATH.write_text(json.dumps(table, indent=1) + "\n")


if __name__ == "__main__":
    main()
