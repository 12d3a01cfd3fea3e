"""Shared fixtures: the real CIFAR-10 JPEGs from ../shared/data, unpacked once into the cache."""

from __future__ import annotations

import os

import pytest
import torch

torch.set_num_threads(int(os.environ.get("GLMC_ZOO_TEST_THREADS", min(2, os.cpu_count() or 1))))


@pytest.fixture(scope="session")
def cifar_root():
    from glmc_zoo.training.data import cifar10_jpeg_root

    return cifar10_jpeg_root()


@pytest.fixture(scope="session")
def cifar_test_images(cifar_root):
    """A fixed real subset: the first 20 test JPEGs of each class, with labels."""
    classes = sorted(p.name for p in (cifar_root / "test").iterdir())
    paths, labels = [], []
    for c, name in enumerate(classes):
        files = sorted((cifar_root / "test" / name).glob("*.jpg"))[:20]
        paths += [str(f) for f in files]
        labels += [c] * len(files)
    return paths, labels


@pytest.fixture(scope="session")
def w16_folder(tmp_path_factory):
    """A width-16 CIFAR-10 model in the weights format (random weights, non-trivial BN statistics)."""
    import timm

    from glmc_zoo.hub import save_pretrained

    torch.manual_seed(0)
    model = timm.create_model("glmc_resnet32_w16", num_classes=10)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
        model.fc_cb.weight.mul_(0.02)  # logits of a trained model's size (|logit| < 10), not ~150
    return save_pretrained(model.eval(), tmp_path_factory.mktemp("weights") / "w16")


@pytest.fixture(scope="session")
def w16_onnx(w16_folder, tmp_path_factory):
    from glmc_zoo.export.onnx import export_onnx

    out = tmp_path_factory.mktemp("onnx") / "w16.onnx"
    export_onnx(str(w16_folder), out)
    return out
