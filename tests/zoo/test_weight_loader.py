"""One weight loader: a family builder's ``weights=`` and ``zoo.create(name, weights=)`` load
through ``registry.load_pretrained``, presets and torchvision checkpoints alike."""

import numpy as np
import pytest

from kerascnn import zoo

torch = pytest.importorskip("torch", reason="the reference is PyTorch's torchvision")

from test_torchvision_conversion import TOLERANCE, random_torchvision, relative  # noqa: E402


def test_a_family_builder_loads_a_torchvision_checkpoint_as_create_does(tmp_path):
    net = random_torchvision("resnet18")
    torch.save(net.state_dict(), tmp_path / "r.pth")
    options = dict(num_classes=10, input_shape=(64, 64, 3), include_preprocessing=False)
    by_builder = zoo.resnet(depth=18, weights=str(tmp_path / "r.pth"), **options)
    by_name = zoo.create("resnet18", weights=str(tmp_path / "r.pth"), **options)
    x = np.random.default_rng(1).normal(size=(2, 64, 64, 3)).astype("float32")
    with torch.no_grad():
        reference = net(torch.from_numpy(x.transpose(0, 3, 1, 2))).numpy()
    assert relative(by_builder.predict(x, verbose=0), reference) < TOLERANCE
    np.testing.assert_array_equal(by_builder.predict(x, verbose=0), by_name.predict(x, verbose=0))
