"""Long-tailed splits, samplers and the batched augmentation."""

from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF

from glmc_zoo.training.batches import epoch_plan, rank_slice
from glmc_zoo.training.data import (
    DataError,
    load_image_folder,
    long_tail_counts,
    random_crop_flip,
    select_long_tail,
    shot_groups,
)
from glmc_zoo.training.method import class_weights


@pytest.mark.parametrize("n_max,c,imb,total", [
    (5000, 10, 100, 12406), (5000, 10, 50, 13996), (5000, 10, 10, 20431),
    (500, 100, 100, 10847), (500, 100, 50, 12608), (500, 100, 10, 19573),
])
def test_profile_totals_match_the_reference(n_max, c, imb, total):
    counts = long_tail_counts(n_max, c, imb)
    assert sum(counts) == total and counts[0] == n_max and counts[-1] == int(n_max / imb)


def _balanced_targets(c=10, n=5000):
    return np.repeat(np.arange(c), n)[np.random.RandomState(123).permutation(c * n)]


def test_standard_split_is_ldams_procedure():
    targets = _balanced_targets()
    counts = long_tail_counts(5000, 10, 100)
    np.random.seed(0)  # the LDAM-DRW code, written out independently
    expected = []
    for c, n in enumerate(counts):
        idx = np.where(targets == c)[0]
        np.random.shuffle(idx)
        expected.append(idx[:n])
    got = select_long_tail(targets, counts, "standard", seed=999)
    assert np.array_equal(got, np.concatenate(expected))


def test_glmc_split_deterministic_without_replacement():
    targets = _balanced_targets()
    counts = long_tail_counts(5000, 10, 100)
    a = select_long_tail(targets, counts, "glmc", 3407)
    assert np.array_equal(a, select_long_tail(targets, counts, "glmc", 3407))
    assert len(np.unique(a)) == len(a) == 12406
    assert np.bincount(targets[a]).tolist() == counts
    assert not np.array_equal(a, select_long_tail(targets, counts, "glmc", 1))
    rng = np.random.RandomState(3407)
    first = np.flatnonzero(targets == 0)[rng.choice(5000, 5000, replace=False)]
    assert np.array_equal(a[:5000], first)
    w = select_long_tail(targets, counts, "glmc_with_replacement", 3407)
    assert len(w) == 12406 and len(np.unique(w)) < len(w)  # the pre-fix code kept duplicates


def test_split_errors():
    with pytest.raises(DataError, match="unknown split"):
        select_long_tail(np.zeros(10, int), [5], "random", 0)
    with pytest.raises(DataError, match="asks for"):
        select_long_tail(np.zeros(10, int), [50], "glmc", 0)


def test_shot_groups():
    g = shot_groups([500, 101, 100, 21, 20, 1])
    assert g["many"].tolist() == [0, 1] and g["medium"].tolist() == [2, 3] and g["few"].tolist() == [4, 5]


def test_rebalanced_sampler_class_frequencies():
    counts = torch.tensor(long_tail_counts(5000, 10, 100))
    targets = torch.repeat_interleave(torch.arange(10), counts)
    n = len(targets)
    for q, expected in ((1.0, torch.full((10,), 0.1)), (0.0, counts / counts.sum()),
                        (0.5, counts.double().sqrt() / counts.double().sqrt().sum())):
        w = class_weights(counts, q)[targets]
        uni, reb = zip(*epoch_plan(n, 64, w, seed=0, epoch=0))
        assert torch.equal(torch.sort(torch.cat(uni)).values, torch.arange(n))  # uniform: every image once
        freq = torch.bincount(targets[torch.cat(reb)], minlength=10) / n
        assert torch.allclose(freq.double(), expected.double(), atol=0.012), (q, freq)
        assert [len(r) for r in reb] == [len(u) for u in uni]


def test_two_ranks_together_see_the_global_batches():
    w = torch.ones(1001)
    plan = epoch_plan(1001, 64, w, 3, 5, world=2)
    assert len(plan) == 16 and len(plan[-1][0]) == 41  # the last batch is kept: both ranks get images
    single = epoch_plan(1001, 64, w, 3, 5)  # the global batches do not depend on the number of ranks
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(plan, single))
    assert len(epoch_plan(1025, 64, w.new_ones(1025), 3, 5, world=2)) == 16  # a last batch of 1 is dropped
    for b in (64, 41, 7, 2):
        parts = [rank_slice(b, r, 2) for r in (0, 1)]
        assert [(p.start, p.stop) for p in parts] == [(q[0].item(), q[-1].item() + 1)
                                                     for q in torch.tensor_split(torch.arange(b), 2)]


def test_batched_crop_flip_equals_torchvision():
    torch.manual_seed(0)
    x = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8)
    out = random_crop_flip(x, torch.Generator().manual_seed(7))
    g = torch.Generator().manual_seed(7)  # the same draws, in the same order
    off = torch.randint(0, 9, (2, 6), generator=g)
    flip = torch.rand(6, generator=g) < 0.5
    for i in range(6):
        ref = TF.crop(TF.pad(x[i], [4], fill=0), int(off[0, i]), int(off[1, i]), 32, 32)
        if flip[i]:
            ref = TF.hflip(ref)
        assert torch.equal(out[i], ref)
    assert flip.any() and not flip.all()


def test_image_folder_long_tailed(cifar_root):
    data = load_image_folder(cifar_root, 32, imbalance_factor=100, split="standard", max_images_per_class=500)
    assert data.class_counts == long_tail_counts(500, 10, 100)
    assert data.train.images.shape == (sum(data.class_counts), 32, 32, 3) and len(data.test) == 10000
    assert data.classes[0] == "airplane" and data.classes[-1] == "truck"


def test_image_folder_errors(tmp_path):
    with pytest.raises(DataError, match="expected .*train/<class>"):
        load_image_folder(tmp_path)


def test_folders_are_listed_recursively_without_hidden_files(tmp_path, cifar_root):
    """Nested class folders count; macOS's `._x.jpg`, `.DS_Store` and `.ipynb_checkpoints/` do not, for
    training and `predict` alike."""
    import shutil

    from glmc_zoo.inference import expand_sources
    from glmc_zoo.training.data import load_image_folder

    src = sorted((cifar_root / "train" / "cat").glob("*.jpg"))[:4]
    for split in ("train", "test"):
        (tmp_path / split / "cat" / "2019").mkdir(parents=True)
        shutil.copy(src[0], tmp_path / split / "cat" / "2019" / "a.jpg")
        shutil.copy(src[1], tmp_path / split / "cat" / "b.jpg")
        (tmp_path / split / "cat" / "._b.jpg").write_bytes(b"\x00\x05\x16\x07 AppleDouble, not a JPEG")
        (tmp_path / split / "cat" / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
        (tmp_path / split / ".ipynb_checkpoints").mkdir()
        (tmp_path / split / "cat" / ".ipynb_checkpoints").mkdir()
        shutil.copy(src[2], tmp_path / split / "cat" / ".ipynb_checkpoints" / "c.jpg")
        (tmp_path / split / "dog").mkdir()
        shutil.copy(src[3], tmp_path / split / "dog" / "d.jpg")
    (tmp_path / "train" / "cat" / "2019" / "loop").symlink_to(tmp_path / "train" / "cat")  # a link loop ends
    data = load_image_folder(tmp_path)
    assert data.classes == ["cat", "dog"] and data.class_counts == [2, 1] and len(data.test) == 3
    listed = expand_sources([str(tmp_path / "train")])
    assert [str(p.relative_to(tmp_path / "train")) for p in map(Path, listed)] == ["cat/2019/a.jpg", "cat/b.jpg",
                                                                                    "dog/d.jpg"]


def test_folder_with_an_empty_class_is_refused_by_name(tmp_path, cifar_root):
    import shutil

    from glmc_zoo.errors import DataError
    from glmc_zoo.training.data import load_image_folder

    for split in ("train", "test"):
        for name in ("cat", "dog"):
            (tmp_path / split / name).mkdir(parents=True)
        for f in sorted((cifar_root / split / "cat").glob("*.jpg"))[:3]:
            shutil.copy(f, tmp_path / split / "cat" / f.name)
    (tmp_path / "train" / "dog" / "notes.txt").write_text("not an image")
    with pytest.raises(DataError, match="class folders with no image files.*dog"):
        load_image_folder(tmp_path)


def test_small_non_square_images_keep_their_aspect(tmp_path):
    """In-memory decoding crops the centre like the eval preprocessing instead of squashing."""
    import numpy as np
    from PIL import Image

    from glmc_zoo.inference import Preprocess
    from glmc_zoo.training.data import load_image_folder

    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for c in ("a", "b"):
            (tmp_path / split / c).mkdir(parents=True)
            for i in range(2):
                Image.fromarray(rng.integers(0, 256, (24, 48, 3), dtype=np.uint8)).save(tmp_path / split / c / f"{i}.png")
    data = load_image_folder(tmp_path, image_size=16)
    assert data.in_memory and data.train.images.shape == (4, 16, 16, 3)
    pre = Preprocess((3, 16, 16), (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), crop_pct=1.0)
    want = pre(Image.open(tmp_path / "test" / "a" / "0.png").convert("RGB"))  # (3, 16, 16) in [0, 1]
    got = data.test.images[0].transpose(2, 0, 1).astype(np.float32) / 255.0
    assert np.abs(got - want).max() < 1e-6


def test_header_scan_is_remembered_per_set_of_files_and_failures_are_not(tmp_path, monkeypatch):
    """A folder's header scan (every file's size) is read once per set of files: an added, changed or removed
    file makes a new scan; an unreadable file is named every time, never remembered as fine."""
    import os

    from PIL import Image

    from glmc_zoo.training import data as D

    monkeypatch.setenv("GLMC_ZOO_CACHE", str(tmp_path / "cache"))
    for c, side in (("a", 20), ("b", 40)):
        (tmp_path / "d" / c).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (side, side), (i * 40, 0, 0)).save(tmp_path / "d" / c / f"{i}.png")
    calls = []
    real = D._largest_side
    monkeypatch.setattr(D, "_largest_side", lambda paths: calls.append(len(paths)) or real(paths))
    _, paths, _ = D._list_folder(tmp_path / "d")
    assert D._largest_side_cached(paths, D._file_stamps(paths)) == 40
    assert D._largest_side_cached(paths, D._file_stamps(paths)) == 40 and calls == [6]  # remembered
    Image.new("RGB", (70, 50)).save(tmp_path / "d" / "a" / "0.png")  # changed: a new scan, a new answer
    os.utime(tmp_path / "d" / "a" / "0.png", ns=(1, 1))
    assert D._largest_side_cached(paths, D._file_stamps(paths)) == 70 and calls == [6, 6]
    (tmp_path / "d" / "b" / "1.png").write_bytes(b"not an image")
    for _ in range(2):
        with pytest.raises(DataError, match="1.png"):
            D._largest_side_cached(paths, D._file_stamps(paths))
    assert calls == [6, 6, 6, 6]


@pytest.mark.slow
def test_cache_lock_makes_a_second_process_wait(tmp_path):
    """The lock around unpacking and decoding into the cache: a process that finds it held waits until the
    holder lets go (here: until the parent tells the holder to, half a second after the second asked)."""
    import subprocess
    import sys
    import time

    code = ("import os, sys, time; os.environ['GLMC_ZOO_CACHE'] = sys.argv[1]\n"
            "from glmc_zoo.training.data import cache_lock\n"
            "print('asking', flush=True); t = time.monotonic()\n"
            "with cache_lock('x'):\n"
            "    print('holding', round(time.monotonic() - t, 2), flush=True); sys.stdin.readline()\n")
    run = lambda: subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdin=subprocess.PIPE,  # noqa: E731
                                   stdout=subprocess.PIPE, text=True)
    first, second = run(), None
    try:
        assert first.stdout.readline() == "asking\n" and first.stdout.readline().startswith("holding")
        second = run()
        assert second.stdout.readline() == "asking\n"
        time.sleep(0.5)
        first.stdin.write("\n")
        first.stdin.flush()
        waited = float(second.stdout.readline().split()[1])
        second.stdin.write("\n")
        second.stdin.flush()
        assert first.wait(timeout=30) == 0 and second.wait(timeout=30) == 0
    finally:
        for p in (first, second):
            if p is not None:
                p.kill()
    assert waited >= 0.5
