"""Every kerascnn augmentation layer with small, fast arguments (shared by the tests)."""

import functools

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


# --------------------------------------------------------------------------- Pillow references
PILLOW_FILL = (128, 128, 128)  # RandAugment's fill grey (randaugment.FILL_GREY), timm's default


def pillow(op, images):
    """``op`` (a function of one PIL image) applied to each uint8 image of ``images``, as
    a float32 batch."""
    import numpy as np
    from PIL import Image

    return np.stack([np.asarray(op(Image.fromarray(i))) for i in images]).astype("float32")


def pillow_affine(linear, shift=(0.0, 0.0), fill=PILLOW_FILL):
    """A function of one PIL image: Pillow's ``Image.transform(AFFINE)`` with nearest
    resampling and ``fill``, for the map that samples each output pixel at
    ``linear @ (p - c) + c - shift`` (``linear`` = ``(a, b, d, e)`` about the image centre
    ``c``; ``shift`` = ``(dx, dy)`` moves the content right and down). Pillow's coordinates
    put pixel ``i`` on ``[i, i + 1)``, so its centre is ``(width / 2, height / 2)``."""
    from PIL import Image

    a, b, d, e = linear

    def op(image):
        cx, cy = image.width / 2, image.height / 2
        data = (a, b, cx - a * cx - b * cy - shift[0], d, e, cy - d * cx - e * cy - shift[1])
        return image.transform(image.size, Image.AFFINE, data, Image.NEAREST, fillcolor=fill)

    return op


@functools.lru_cache(maxsize=4)
def cifar_images(path, n: int = 400):
    """The first ``n`` uint8 images of the CIFAR-10 ``.npz`` at ``path`` (the ``cifar_npz``
    fixture), read once per test session (decompressing all 50,000 takes seconds)."""
    import numpy as np

    with np.load(path) as data:
        images = data["x"][:n]
    images.setflags(write=False)
    return images
