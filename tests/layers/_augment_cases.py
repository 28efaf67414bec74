"""Every kerascnn augmentation layer with small, fast arguments (shared by the tests)."""

from kerascnn import layers as L


def image_layers(seed=1):
    return [
        L.RandomFlip("horizontal_and_vertical", seed=seed),
        L.RandomPadCrop(4, seed=seed),
        L.RandomTranslate(0.2, 0.2, seed=seed),
        L.RandomRotate(20, seed=seed),
        L.RandomShear(0.2, 0.2, seed=seed),
        L.RandomZoom(0.2, seed=seed),
        L.RandomBrightness(0.3, seed=seed),
        L.RandomContrast(0.3, seed=seed),
        L.RandomColor(0.3, seed=seed),
        L.RandomSharpness(0.5, seed=seed),
        L.Posterize(4, seed=seed),
        L.Solarize(128, seed=seed),
        L.AutoContrast(seed=seed),
        L.Equalize(seed=seed),
        L.Invert(seed=seed),
        L.Cutout(8, seed=seed),
        L.RandAugment(2, 9, seed=seed),
    ]


NAMES = [type(layer).__name__ for layer in image_layers()]
