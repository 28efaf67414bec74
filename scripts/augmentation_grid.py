"""Write a PNG grid of augmented real CIFAR-10 images: one row per layer, and RandAugment at
a few magnitudes.

    .venv/bin/python scripts/augmentation_grid.py [--out docs/images/augmentations.png]
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from kerascnn import layers as L  # noqa: E402

CIFAR = (
    pathlib.Path(os.environ.get("KERASCNN_SHARED", ROOT.parent / "shared"))
    / "data/cifar10/train.npz"
)


def rows():
    return [
        ("original", None),
        ("RandomFlip", L.RandomFlip("horizontal", probability=1.0, seed=1)),
        ("RandomPadCrop(4)", L.RandomPadCrop(4, seed=1)),
        ("RandomTranslate(.2)", L.RandomTranslate(0.2, 0.2, seed=1)),
        ("RandomRotate(30)", L.RandomRotate(30, seed=1)),
        ("RandomShear(.3)", L.RandomShear(0.3, 0.3, seed=1)),
        ("RandomZoom(.3)", L.RandomZoom(0.3, seed=1)),
        ("RandomBrightness", L.RandomBrightness(0.6, seed=1)),
        ("RandomContrast", L.RandomContrast(0.8, seed=1)),
        ("RandomColor", L.RandomColor(0.9, seed=1)),
        ("RandomSharpness", L.RandomSharpness(0.9, seed=1)),
        ("Posterize(3)", L.Posterize(3, probability=1.0, seed=1)),
        ("Solarize(128)", L.Solarize(128, probability=1.0, seed=1)),
        ("AutoContrast", L.AutoContrast(probability=1.0, seed=1)),
        ("Equalize", L.Equalize(probability=1.0, seed=1)),
        ("Invert", L.Invert(probability=1.0, seed=1)),
        ("Cutout(12)", L.Cutout(12, fill_value=127.0, seed=1)),
        *[(f"RandAugment(2, {m})", L.RandAugment(2, m, seed=1)) for m in (3, 9, 15)],
    ]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", default=str(ROOT / "docs/images/augmentations.png"))
    p.add_argument("--columns", type=int, default=8)
    p.add_argument("--scale", type=int, default=2)
    a = p.parse_args()
    if not CIFAR.exists():
        sys.exit(f"CIFAR-10 not found at {CIFAR} (set KERASCNN_SHARED)")
    data = np.load(CIFAR)
    # The file is class-major: take the first image of each class, so the grid shows many.
    picks = [int(np.flatnonzero(data["y"] == c % 10)[c // 10]) for c in range(a.columns)]
    x = data["x"][picks].astype("float32")
    s, label_w, pad = 32 * a.scale, 130, 2
    table = rows()
    grid = Image.new("RGB", (label_w + a.columns * (s + pad), len(table) * (s + pad)), "white")
    draw = ImageDraw.Draw(grid)
    for r, (name, layer) in enumerate(table):
        out = x if layer is None else np.asarray(layer(x, training=True))
        out = np.clip(np.round(out), 0, 255).astype("uint8")
        y0 = r * (s + pad)
        draw.text((4, y0 + s // 2 - 6), name, fill="black")
        for c in range(a.columns):
            tile = Image.fromarray(out[c]).resize((s, s), Image.NEAREST)
            grid.paste(tile, (label_w + c * (s + pad), y0))
    pathlib.Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    grid.save(a.out, optimize=True)
    print(a.out, os.path.getsize(a.out), "bytes")


if __name__ == "__main__":
    main()
