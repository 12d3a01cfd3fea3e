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
