"""The networks the benchmarks compare kerascnn against, written out by hand.

- ``plain_keras_cifar_resnet(depth)``: CIFAR ResNet v1 (He et al. 2016, section 4.2, option A
  shortcuts) as a plain hand-written Keras functional model: what a user would write without
  kerascnn. Same layers, initializers and batch-norm settings (momentum 0.9, eps 1e-5) as
  ``kerascnn.zoo.resnet(depth=...)``, so the trainable parameter counts agree (853,018 for 56).
- ``torch_cifar_resnet(depth)`` and ``torch_resnet50()``: the same networks in PyTorch
  (torchvision's ResNet-50 layout, no torchvision needed), imported only when torch is.

Nothing here imports TensorFlow or kerascnn, so ``benchmarks/gpu_jax.py`` can use it on a
JAX-only machine.
"""

from __future__ import annotations

import keras
from keras import ops


class _ShortcutA(keras.layers.Layer):
    """Option A shortcut: subsample by 2, zero-pad the new channels (half before, half after)."""

    def __init__(self, out_channels, **kwargs):
        super().__init__(**kwargs)
        self.out_channels = out_channels

    def call(self, x):
        x = x[:, ::2, ::2, :]
        extra = self.out_channels - x.shape[-1]
        return ops.pad(x, [[0, 0], [0, 0], [0, 0], [extra // 2, extra - extra // 2]])

    def compute_output_shape(self, s):
        return (
            s[0],
            None if s[1] is None else -(-s[1] // 2),
            None if s[2] is None else -(-s[2] // 2),
            self.out_channels,
        )


def plain_keras_cifar_resnet(depth=56, input_shape=(32, 32, 3), num_classes=10, bn=None):
    """Hand-written CIFAR ResNet v1 (basic blocks, option A). ``bn(name)`` overrides the
    batch-norm layer (default ``keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5)``)."""
    n = (depth - 2) // 6
    bn = bn or (lambda name: keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=name))

    def conv(x, f, s, name):
        if s > 1:
            x = keras.layers.ZeroPadding2D(1, name=name + "_pad")(x)
        return keras.layers.Conv2D(
            f,
            3,
            strides=s,
            padding="same" if s == 1 else "valid",
            use_bias=False,
            kernel_initializer="he_normal",
            name=name,
        )(x)

    inputs = keras.Input(input_shape)
    x = conv(inputs, 16, 1, "conv0")
    x = keras.layers.ReLU()(bn("bn0")(x))
    for stage, f in enumerate((16, 32, 64)):
        for i in range(n):
            s = 2 if (stage > 0 and i == 0) else 1
            name = f"s{stage}b{i}"
            y = conv(x, f, s, name + "_c1")
            y = keras.layers.ReLU()(bn(name + "_bn1")(y))
            y = bn(name + "_bn2")(conv(y, f, 1, name + "_c2"))
            shortcut = _ShortcutA(f, name=name + "_short")(x) if s > 1 else x
            x = keras.layers.ReLU()(keras.layers.Add()([shortcut, y]))
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(num_classes)(x)
    return keras.Model(inputs, outputs, name=f"plain_keras_resnet{depth}")


# --------------------------------------------------------------------------- PyTorch
def torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def torch_cifar_resnet(depth=56, num_classes=10):
    """CIFAR ResNet v1 with option A shortcuts in PyTorch (NCHW module; use
    ``.to(memory_format=torch.channels_last)`` for channels_last)."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.b1 = nn.BatchNorm2d(cout)
            self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.b2 = nn.BatchNorm2d(cout)
            self.stride, self.extra = stride, cout - cin

        def forward(self, x):
            y = F.relu(self.b1(self.c1(x)))
            y = self.b2(self.c2(y))
            s = x
            if self.stride > 1:
                s = s[:, :, ::2, ::2]
            if self.extra:
                s = F.pad(s, (0, 0, 0, 0, self.extra // 2, self.extra - self.extra // 2))
            return F.relu(y + s)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            n = (depth - 2) // 6
            self.conv = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
            self.bn = nn.BatchNorm2d(16)
            blocks, cin = [], 16
            for stage, f in enumerate((16, 32, 64)):
                for i in range(n):
                    blocks.append(Block(cin, f, 2 if (stage and i == 0) else 1))
                    cin = f
            self.blocks = nn.Sequential(*blocks)
            self.fc = nn.Linear(64, num_classes)
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")

        def forward(self, x):
            x = self.blocks(F.relu(self.bn(self.conv(x))))
            return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))

    return Net()


def torch_resnet50(num_classes=1000):
    """torchvision's ResNet-50 (v1.5: stride in the 3x3 conv), 25,557,032 parameters."""
    import torch
    from torch import nn

    class Bottleneck(nn.Module):
        def __init__(self, cin, width, stride):
            super().__init__()
            cout = width * 4
            self.body = nn.Sequential(
                nn.Conv2d(cin, width, 1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
                nn.Conv2d(width, width, 3, stride, 1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
                nn.Conv2d(width, cout, 1, bias=False),
                nn.BatchNorm2d(cout),
            )
            self.down = None
            if stride != 1 or cin != cout:
                self.down = nn.Sequential(
                    nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
                )
            self.relu = nn.ReLU(inplace=True)

        def forward(self, x):
            s = x if self.down is None else self.down(x)
            return self.relu(self.body(x) + s)

    layers = [
        nn.Conv2d(3, 64, 7, 2, 3, bias=False),
        nn.BatchNorm2d(64),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2, 1),
    ]
    cin = 64
    for stage, (n, width) in enumerate(zip((3, 4, 6, 3), (64, 128, 256, 512), strict=True)):
        for i in range(n):
            layers.append(Bottleneck(cin, width, 2 if (stage and i == 0) else 1))
            cin = width * 4
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2048, num_classes)]
    return torch.nn.Sequential(*layers)


def jax_first_step(model, optimizer, train_step, x, y):
    """JAX: the state ``(trainable, non-trainable, optimizer variables)`` of ``model`` and
    ``optimizer``, one jitted ``train_step(state, x, y) -> (loss, state)`` on it (compiling
    it), and the seconds that took: ``(loss, state, compile_seconds)``."""
    import time

    import jax

    state = (
        [v.value for v in model.trainable_variables],
        [v.value for v in model.non_trainable_variables],
        [v.value for v in optimizer.variables],
    )
    start = time.perf_counter()
    loss, state = train_step(state, x, y)
    jax.block_until_ready(loss)
    return loss, state, time.perf_counter() - start
