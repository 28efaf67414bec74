"""Write architecture_snapshot.json: per registered name, the top model's layer names,
output shape and weight counts. Generated once at commit 7ae3d7f (before issue 18's
registry/backbone rewrite) so tests can check every name still builds the same network.

    python tests/zoo/data/make_architecture_snapshot.py
"""

import json
import pathlib

import keras
import numpy as np

from kerascnn.zoo import create, list_models

OUT = pathlib.Path(__file__).with_name("architecture_snapshot.json")


def describe(model) -> dict:
    return {
        "model_name": model.name,
        "layer_names": [layer.name for layer in model.layers],
        "output_shape": [list(t.shape[1:]) for t in model.outputs],
        "trainable_params": int(sum(int(np.prod(w.shape)) for w in model.trainable_weights)),
        "non_trainable_params": int(
            sum(int(np.prod(w.shape)) for w in model.non_trainable_weights)
        ),
    }


def main():
    snapshot = {}
    for name in list_models():
        snapshot[name] = describe(create(name))
        keras.utils.clear_session()
        print(name, snapshot[name]["trainable_params"], flush=True)
    OUT.write_text(json.dumps(snapshot, indent=0) + "\n")


if __name__ == "__main__":
    main()
