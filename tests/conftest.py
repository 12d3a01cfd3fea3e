"""Shared fixtures: the real CIFAR-10 JPEGs from ../shared/data, unpacked once into the cache."""

from __future__ import annotations

import os

import pytest
import torch

# Under pytest-xdist (the README's command runs two workers on two cores) each worker takes one thread.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
_THREADS = int(os.environ.get("GLMC_ZOO_TEST_THREADS", max(1, min(2, os.cpu_count() or 1) // _WORKERS)))
torch.set_num_threads(_THREADS)
# ... and so does every process a test starts (the CLI, torchrun's ranks): a child with torch's default of one
# thread per core beside the other worker puts three busy OpenMP threads on two cores, which measured 4x slower
if "PYTEST_XDIST_WORKER" in os.environ:  # a worker: its children match it (the controller's value is inherited)
    os.environ["OMP_NUM_THREADS"] = str(_THREADS)
else:
    os.environ.setdefault("OMP_NUM_THREADS", str(_THREADS))

#: What every training test pins, so that its numbers do not depend on the CPU it runs on: fp32 (amp=auto
#: would take bf16 on a CPU with AVX512-BF16/AMX, and the tolerances are fp32's) and no torch.compile
#: (compile=on costs minutes of compiling per test; compile=auto compiles on CUDA). The bf16 and compiled paths
#: have tests of their own, the bf16 ones run where the CPU computes bf16 natively.
PINNED = dict(amp="none", compile="off")


#: The test files by their measured time, longest first, so that pytest-xdist's two workers (whole files each,
#: `--dist loadfile`, so that a module's shared runs are made once) end together. xdist's own reordering (by
#: the number of tests in a file, which started the one-test files of minutes last) is off: pyproject's
#: `--no-loadscope-reorder`.
_LONG_FIRST = ("test_distributed.py", "test_precision.py", "test_training_run.py", "test_training.py", "test_careless.py",
               "test_backbones.py", "test_deploy.py", "test_models.py", "test_shipped_model.py", "test_maxnorm.py",
               "test_export.py", "test_hub.py", "test_cli.py")


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(_LONG_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: file order kept otherwise


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: trains or launches processes for more than a few seconds; "
                                       "`pytest -m 'not slow'` is the quick inner loop")


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


@pytest.fixture(scope="session")
def small_lt(cifar_root):
    """A small long-tailed slice of the real CIFAR-10 (IF 10, at most 300 per class: 1,222 images) and
    a fixed 1,000-image test subset (the first 100 test images of every class)."""
    from dataclasses import replace

    from glmc_zoo.training.data import load_image_folder

    data = load_image_folder(cifar_root, 32, imbalance_factor=10, split="standard", max_images_per_class=300)
    keep = torch.cat([torch.nonzero(torch.as_tensor(data.test.targets) == c)[:100, 0] for c in range(10)]).numpy()
    return replace(data, test=data.test.subset(keep))


@pytest.fixture(scope="session")
def tiny_lt(small_lt):
    """The smallest data that still exercises every class: every 6th image of `small_lt` (204 images, each
    class kept) and its first 20 test images per class (200)."""
    from dataclasses import replace

    import numpy as np

    keep = np.arange(0, len(small_lt.train), 6)
    test = np.concatenate([np.flatnonzero(small_lt.test.targets == c)[:20] for c in range(10)])
    return replace(small_lt, train=small_lt.train.subset(keep), train_indices=small_lt.train_indices[keep],
                   test=small_lt.test.subset(test))
