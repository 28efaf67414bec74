"""The registry as a table: ``kerascnn list`` and docs/models.md are generated from the rows.

Building every model to count it takes minutes (VGG-19 alone has 144M weights), so what is
measured on the built network (parameter and multiply-add counts, stage strides) comes from
``model_table.json``, stored with the package; ``python -m kerascnn.zoo.table`` measures it
again (and rewrites docs/models.md with ``--markdown docs/models.md``), and tests check it
against freshly built models.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from kerascnn.zoo.features import feature_info
from kerascnn.zoo.flops import count_flops
from kerascnn.zoo.registry import TABLE_PATH, create, list_models, model_info

__all__ = ["COLUMNS", "format_count", "markdown", "measure", "rows", "rows_json"]

COLUMNS = ("name", "family", "input", "params", "MACs", "features", "recipe", "weights", "paper")


def measure(name: str) -> dict:
    """Build ``name`` with its defaults and measure it: trainable parameters, multiply-adds
    and the strides of its stage outputs (:func:`kerascnn.zoo.feature_info`)."""
    model = create(name)
    return {
        "trainable_params": int(sum(int(np.prod(w.shape)) for w in model.trainable_weights)),
        "macs": count_flops(model),
        "feature_strides": [f.stride for f in feature_info(model)],
    }


def format_count(n: int) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(n)


def rows(pattern: str = "*") -> list[dict]:
    """One row of :data:`COLUMNS` (strings) per registered name matching ``pattern``;
    counts missing from the stored table are measured."""
    out = []
    for name in list_models(pattern):
        info = model_info(name)
        params, macs, strides = info.trainable_params, info.macs, info.feature_strides
        if params is None or macs is None or strides is None:
            measured = measure(name)
            params, macs = measured["trainable_params"], measured["macs"]
            strides = measured["feature_strides"]
        out.append(
            {
                "name": name,
                "family": info.family,
                "input": "x".join(str(d) for d in info.default_input_shape)
                + f" ({info.default_num_classes} classes)",
                "params": f"{params:,}",
                "MACs": format_count(macs),
                "features": "/".join(str(s) for s in strides),
                "recipe": info.recipe or "-",
                "weights": ", ".join(info.weights) or "-",
                "paper": info.paper,
            }
        )
    return out


def markdown() -> str:
    """docs/models.md: every registered name, generated from the registry's rows."""
    lines = [
        "# Models",
        "",
        "Generated from the registry's rows by `python -m kerascnn.zoo.table --markdown "
        "docs/models.md` (a test checks it is current). `params`: trainable parameters and "
        "`MACs`: multiply-adds of one image, both with the defaults, and `features`: the "
        "strides of the stage outputs of `kerascnn.zoo.feature_extractor`, all three measured "
        "on the built network (`model_table.json`); "
        "`recipe`: the default training recipe (`kerascnn.training.RECIPES`); `weights`: "
        "trained weights for `create(name, weights=...)`.",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    lines += ["| " + " | ".join(row[c] for c in COLUMNS) + " |" for row in rows()]
    return "\n".join(lines) + "\n"


def rows_json() -> str:
    """``model_rows.json``: every row, read by ``kerascnn list`` without Keras
    (:mod:`kerascnn.listing`); regenerate with ``python -m kerascnn.zoo.table --rows``."""
    return json.dumps({"columns": list(COLUMNS), "rows": rows()}, indent=0) + "\n"


def main(argv=None) -> None:
    import keras

    from kerascnn.listing import ROWS_PATH

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", help="only write the markdown table to this path")
    parser.add_argument("--rows", action="store_true", help=f"only write {ROWS_PATH.name}")
    args = parser.parse_args(argv)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(markdown())
        return
    if args.rows:
        ROWS_PATH.write_text(rows_json())
        return
    table = {}
    for name in list_models():
        table[name] = measure(name)
        keras.utils.clear_session()
        print(name, table[name], flush=True)
    TABLE_PATH.write_text(json.dumps(table, indent=1) + "\n")


if __name__ == "__main__":
    main()
