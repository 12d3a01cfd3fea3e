"""Long-tailed data for GLMC (reference section 4).

Sources: torchvision's CIFAR-10/100 on-disk format, image folders (`DIR/train/<class>/*`,
`DIR/test/<class>/*` or `val/`), and ImageNet-LT / iNaturalist split lists ("relative/path label").
Small images (side <= 64, CIFAR-like) are decoded once into a uint8 tensor and augmented in
batches on the training device; larger ones are read from files by DataLoader workers.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tarfile
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from glmc_zoo._meta import NORMALIZATION
from glmc_zoo.errors import DataError, ImageLoadError
from glmc_zoo.evaluation import list_class_folder as _list_folder
from glmc_zoo.evaluation import shot_groups  # noqa: F401  (re-exported)
from glmc_zoo.images import load_image
from glmc_zoo.preprocess import Preprocess
from glmc_zoo.training.configs import TrainConfig

CIFAR10_JPEG_SHA256 = "64197f78d86f900d545fa29e70423601f904c78fff281668a16c712dcb638c88"
IMAGENET_MEAN, IMAGENET_STD = NORMALIZATION["imagenet"]


# ---------------------------------------------------------------------------------------------
# The long-tailed profile and the two sample selections
# ---------------------------------------------------------------------------------------------


def long_tail_counts(n_max: int, num_classes: int, imbalance_factor: float) -> list[int]:
    """n_i = int(n_max * IF^(-i / (C - 1))) for class i of C (the exponential profile)."""
    if imbalance_factor < 1:
        raise DataError(f"imbalance factor {imbalance_factor} < 1: use 1 (keep as is), 10, 50, 100, ...")
    if num_classes == 1:
        return [n_max]
    return [int(n_max * imbalance_factor ** (-i / (num_classes - 1))) for i in range(num_classes)]


def select_long_tail(targets: np.ndarray, counts: list[int], method: str, seed: int) -> np.ndarray:
    """Indices (into `targets`, dataset order) of the kept training images.

    - "standard" (LDAM-DRW and most papers): seed 0; per class in label order, shuffle that class's
      indices (dataset order) and keep the first n_i. `seed` is ignored: the split is fixed.
    - "glmc": seeded with `seed` (3407 in the release); per class, `choice(n_in_class, n_i,
      replace=False)` over that class's images in dataset order.
    - "glmc_with_replacement": the same with replace=True, as the code before 2023-05-23 did (it
      produced the paper's numbers; duplicates are kept).
    """
    targets = np.asarray(targets)
    if method == "standard":
        rng = np.random.RandomState(0)
    elif method in ("glmc", "glmc_with_replacement"):
        rng = np.random.RandomState(seed)
    else:
        raise DataError(f"unknown split {method!r}: use standard, glmc or glmc_with_replacement")
    keep = []
    for c, n in enumerate(counts):
        idx = np.flatnonzero(targets == c)
        if n > len(idx):
            raise DataError(f"class {c} has {len(idx)} images but the profile asks for {n}")
        if method == "standard":
            idx = idx.copy()
            rng.shuffle(idx)
            keep.append(idx[:n])
        else:
            keep.append(idx[rng.choice(len(idx), n, replace=method == "glmc_with_replacement")])
    return np.concatenate(keep).astype(np.int64)


# ---------------------------------------------------------------------------------------------
# Datasets
# ---------------------------------------------------------------------------------------------


@dataclass
class Split:
    """One side (train or test) of a dataset: decoded images or file paths, and labels."""

    targets: np.ndarray  # (N,) int64
    images: np.ndarray | None = None  # (N, H, W, 3) uint8, for small images
    paths: list[str] | None = None  # for file-based data

    def __len__(self) -> int:
        return len(self.targets)

    def subset(self, indices: np.ndarray) -> Split:
        return Split(self.targets[indices],
                     None if self.images is None else self.images[indices],
                     None if self.paths is None else [self.paths[i] for i in indices])


@dataclass
class LongTailedData:
    train: Split
    test: Split
    classes: list[str]
    train_indices: np.ndarray  # positions in the full training set that were kept
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    # with a held-out test split (`holdout`): the test images' paths relative to the data root
    test_files: list[str] | None = None

    @property
    def class_counts(self) -> list[int]:
        return np.bincount(self.train.targets, minlength=len(self.classes)).tolist()

    @property
    def in_memory(self) -> bool:
        return self.train.images is not None


def _decode_all(paths: list[str], size: int) -> np.ndarray:
    """Decode image files to (N, size, size, 3) uint8 as deployment does: `predict`'s decoder
    (EXIF rotation; alpha, palette, 16-bit, CMYK to RGB), then, for other sizes, the short side
    resized to `size` (bilinear) and a centre crop, so non-square images keep their aspect. Every
    file is tried: a `DataError` lists all that fail, not only the first. One thread: these are small
    images (<= 64 px), where Python's per-file work, not decoding, is the cost (measured on 10,000
    CIFAR-10 JPEGs, 2-core AMD EPYC: 3.7 s in one thread, 5.3 s in two)."""

    out = np.empty((len(paths), size, size, 3), dtype=np.uint8)
    failed = []
    for i, p in enumerate(paths):
        try:
            out[i] = _fit(load_image(p), size)
        except ImageLoadError as e:
            failed.append(str(e))
    if failed:
        raise unreadable_files_error(failed)
    return out


def unreadable_files_error(failed: list[str]) -> DataError:
    """One error for all the files that cannot be read (each entry: "path: why")."""
    shown = "\n  ".join(failed[:10])
    more = f"\n  ... and {len(failed) - 10} more" if len(failed) > 10 else ""
    return DataError(f"{len(failed)} image file{'s' * (len(failed) != 1)} cannot be read:\n  {shown}{more}\n"
                     f"Replace each with a readable image, or remove it before the run starts (removing a "
                     f"training file changes the long-tailed split, so a run cannot be resumed across it).")


def _fit(im, size: int) -> np.ndarray:
    """RGB PIL image -> (size, size, 3) uint8 by the eval preprocessing's geometry at crop 1.0."""
    return np.asarray(Preprocess((3, size, size), crop_pct=1.0).resize_crop(im), dtype=np.uint8)


def _file_stamps(paths: list[str]) -> str:
    """One line per file (path, size, modification time): what the caches below are keyed by, so that a
    changed, added or removed file is read again."""
    lines = []
    for p in paths:
        st = os.stat(p)
        lines.append(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n")
    return "".join(lines)


def _decode_cached(paths: list[str], size: int, stamps: str | None = None) -> np.ndarray:
    """`_decode_all`, cached in the glmc-zoo cache folder under a key of the files' paths, sizes
    and modification times (a changed file is decoded again). Written atomically."""
    h = hashlib.sha1(f"{size}\0aspect-crop".encode())  # the decoding recipe is part of the key
    h.update((stamps if stamps is not None else _file_stamps(paths)).encode())
    path = cache_dir() / "decoded" / f"{h.hexdigest()[:24]}.npy"
    with cache_lock(path.stem):  # a second process waits for the first one's decoding and reads it
        if path.is_file():
            arr = np.load(path)
            if arr.shape == (len(paths), size, size, 3):
                return arr
        arr = _decode_all(paths, size)
        _write_cache(path, lambda f: np.save(f, arr))
    return arr


@contextlib.contextmanager
def cache_lock(name: str):
    """An exclusive lock on `name` in the cache folder, for work that concurrent processes (a run's ranks,
    test workers) would otherwise all do at once: the first does it, the others wait and then find it done.
    Released when the holder exits, however it ends (an advisory `flock`; no lock where there is none)."""
    try:
        import fcntl
    except ImportError:  # not POSIX: every process does the work itself, as before
        yield
        return
    path = cache_dir() / "locks" / f"{name}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _write_cache(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        write(f)
    os.replace(tmp, path)


def _largest_side(paths: list[str]) -> int:
    """The largest image side among `paths`, from the headers of all of them; a `DataError` lists
    every file whose header cannot be read (not an image, empty, unknown format)."""
    from PIL import Image

    largest, failed = 0, []
    for p in paths:
        try:
            with Image.open(p) as im:
                largest = max(largest, *im.size)
        except OSError as e:  # PIL's UnidentifiedImageError is an OSError too
            failed.append(f"{p}: {'empty file (0 bytes)' if os.path.getsize(p) == 0 else e}")
    if failed:
        raise unreadable_files_error(failed)
    return largest


def _largest_side_cached(paths: list[str], stamps: str) -> int:
    """`_largest_side`, remembered per set of files (paths, sizes, modification times): reading 60,000
    headers takes seconds, and every run and test on the same folder asked again. Only a scan in which
    every header was read is remembered, so unreadable files are named every time."""
    path = cache_dir() / "decoded" / f"{hashlib.sha1(b'largest-side' + stamps.encode()).hexdigest()[:24]}.side"
    with cache_lock(path.stem):
        try:
            return int(path.read_text())
        except (OSError, ValueError):
            pass
        largest = _largest_side(paths)
        _write_cache(path, lambda f: f.write(str(largest).encode()))
    return largest


def _full_folder_split(root: Path, image_size: int) -> tuple[list[str], list[str], Split]:
    """The class names, the files (in the split's order) and the split. Small images (every one <= 64 px,
    for a model input <= 64 px) are decoded once into memory; anything larger is read from the files by
    DataLoader workers."""
    classes, paths, targets = _list_folder(root)
    stamps = _file_stamps(paths)
    if _largest_side_cached(paths, stamps) <= 64 and image_size <= 64:  # unreadable files are named up front
        return classes, paths, Split(targets, images=_decode_cached(paths, image_size, stamps))
    return classes, paths, Split(targets, paths=paths)


def _mean_std(images: np.ndarray) -> tuple[tuple, tuple]:
    """The per-channel mean and std of uint8 (N, H, W, 3) images in [0, 1]. A channel that is constant over the
    training images (std 0: an all-black channel, a grey folder saved as RGB) gets std 1: it carries nothing to
    scale, and dividing by 0 would make every input NaN."""
    x = images.reshape(-1, 3).astype(np.float64) / 255.0
    std = x.std(0).round(8)
    return tuple(x.mean(0).round(8).tolist()), tuple(np.where(std > 1e-6, std, 1.0).tolist())


def load_image_folder(root: str | Path, image_size: int = 32, imbalance_factor: float = 1.0,
                      split: str = "standard", seed: int = 3407, max_images_per_class: int = 0,
                      mean: tuple | None = None, std: tuple | None = None, holdout: float = 0.0) -> LongTailedData:
    """`root/train/<class>/*` and `root/test/<class>/*` (or `val/`), made long-tailed with the
    exponential profile when `imbalance_factor` > 1, else used as it is.

    A folder with no test split (`root/<class>/*`, or `root/train/<class>/*` alone) needs `holdout`:
    that fraction of each class (at least one image, stratified, drawn with `seed`) becomes the test
    split, and its files are listed in `test_files`; the rest is the training set.

    With `imbalance_factor` > 1 the folder must be balanced enough: class i needs n_i images with
    n_max = the largest class (capped at `max_images_per_class` when given).
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: not a directory; expected {root}/train/<class>/ and {root}/test/<class>/ "
                        f"(or val/), or {root}/<class>/ with --set holdout=0.2")
    if not any(p.is_dir() for p in root.iterdir()):
        raise DataError(f"{root}: no folders in it; expected {root}/train/<class>/ and {root}/test/<class>/ "
                        f"(or val/), or {root}/<class>/ with --set holdout=0.2")
    test_dir = next((root / n for n in ("test", "val") if (root / n).is_dir()), None)
    source = root / "train" if (root / "train").is_dir() else root
    if test_dir is not None and source == root:
        raise DataError(f"{root}: has {test_dir.name}/ but no train/. Put the training images in "
                        f"{root}/train/<class>/")
    if test_dir is not None and holdout:
        raise DataError(f"--set holdout={holdout:g}: {root} has its own test split ({test_dir.name}/). Drop the "
                        f"holdout, or hold out from one folder of class folders that has no test/")
    if test_dir is None and not 0 < holdout < 1:
        raise DataError(f"{root}: no test split ({root}/test/<class>/ or val/). Hold out part of each class for "
                        f"testing with --set holdout=0.2, or add {root}/test/<class>/"
                        + (f" (holdout={holdout:g} must be between 0 and 1)" if holdout else ""))
    classes, paths, train = _full_folder_split(source, image_size)
    test_files = None
    if test_dir is not None:
        test_classes, _, test = _full_folder_split(test_dir, image_size)
        if test_classes != classes:
            raise DataError(f"{test_dir}: class folders {test_classes[:5]}... differ from train's {classes[:5]}...")
        positions = np.arange(len(train))
    else:
        test_pos, positions = holdout_indices(train.targets, classes, holdout, seed, source)
        train, test = train.subset(positions), train.subset(test_pos)
        test_files = [os.path.relpath(paths[i], root) for i in test_pos]
    keep = _long_tail_indices(train.targets, len(classes), imbalance_factor, split, seed, max_images_per_class)
    if mean is None and train.images is not None:
        mean, std = _mean_std(train.images[keep])
    mean, std = mean or IMAGENET_MEAN, std or IMAGENET_STD
    return LongTailedData(train.subset(keep), test, classes, positions[keep], tuple(mean), tuple(std), test_files)


def holdout_indices(targets: np.ndarray, classes: list[str], fraction: float, seed: int,
                    where: Path | str = "the folder") -> tuple[np.ndarray, np.ndarray]:
    """A stratified, seeded hold-out: round(fraction * n_c) images of each class (at least one, and at
    least one left for training) as the test split. Returns (test, train) positions, each sorted."""
    rng = np.random.default_rng(seed)
    test, too_small = [], []
    for c, name in enumerate(classes):
        idx = np.flatnonzero(targets == c)
        k = max(1, int(round(fraction * len(idx))))
        if len(idx) - k < 1:
            too_small.append(f"{name} ({len(idx)})")
            continue
        test.append(rng.choice(idx, k, replace=False))
    if too_small:
        raise DataError(f"{where}: holdout={fraction:g} leaves no training image in {len(too_small)} class"
                        f"{'es' * (len(too_small) != 1)}: {', '.join(too_small[:10])}{' ...' if len(too_small) > 10 else ''}"
                        f". Each class needs at least 2 images (one to test, one to train): add images to them.")
    test_pos = np.sort(np.concatenate(test))
    return test_pos, np.setdiff1d(np.arange(len(targets)), test_pos)


def _long_tail_indices(targets: np.ndarray, num_classes: int, imbalance_factor: float, split: str,
                       seed: int, max_images_per_class: int) -> np.ndarray:
    have = np.bincount(targets, minlength=num_classes)
    if imbalance_factor <= 1 and not max_images_per_class:
        return np.arange(len(targets))
    n_max = int(have.max())
    if max_images_per_class:
        n_max = min(n_max, max_images_per_class)
    counts = long_tail_counts(n_max, num_classes, imbalance_factor)
    counts = [min(n, int(h)) for n, h in zip(counts, have)] if imbalance_factor <= 1 else counts
    return select_long_tail(targets, counts, split, seed)




def load_data(cfg: TrainConfig, download: bool = False) -> LongTailedData:
    """The long-tailed train split and the balanced test split that `cfg` names (the first
    `test_per_class_limit` test images of each class when that is set), normalised as
    `cfg.normalization` says."""
    data = _load_source(cfg, download)
    empty = [name for name, n in zip(data.classes, data.class_counts) if n == 0]
    if empty:  # the rebalanced loss weighs a class by n^-tau: a class with no training images cannot be learned
        raise DataError(f"{cfg.dataset} at imbalance factor {cfg.imbalance_factor:g}: {len(empty)} class"
                        f"{'es' * (len(empty) != 1)} keep no training images ({', '.join(empty[:10])}"
                        f"{' ...' if len(empty) > 10 else ''}; counts {data.class_counts[:10]}"
                        f"{' ...' if len(data.class_counts) > 10 else ''}). The smallest class keeps about "
                        f"largest / imbalance factor images: lower imbalance_factor (--set imbalance_factor=N), "
                        f"or give those classes more images.")
    if cfg.normalization != "auto":
        if cfg.normalization not in NORMALIZATION:
            raise DataError(f"normalization={cfg.normalization!r} is not known: use auto or one of "
                            f"{', '.join(NORMALIZATION)}")
        mean, std = NORMALIZATION[cfg.normalization]
        data = replace(data, mean=mean, std=std)
    if cfg.test_per_class_limit:
        t = data.test.targets
        keep = np.concatenate([np.flatnonzero(t == c)[: cfg.test_per_class_limit] for c in range(len(data.classes))])
        data = replace(data, test=data.test.subset(keep))
    return data


def _load_source(cfg: TrainConfig, download: bool) -> LongTailedData:
    root = cfg.data_root
    if cfg.dataset in ("cifar10", "cifar100"):
        return load_cifar(cfg.dataset, root or "./data", cfg.imbalance_factor, cfg.split, cfg.seed,
                          cfg.max_images_per_class, download=download)
    if cfg.dataset == "imagefolder":
        folder = Path(root) if root else cifar10_jpeg_root()
        return load_image_folder(folder, cfg.image_size, cfg.imbalance_factor, cfg.split, cfg.seed,
                                 cfg.max_images_per_class, holdout=cfg.holdout)
    if cfg.dataset in ("imagenet_lt", "inat2018"):
        prefix = {"imagenet_lt": "ImageNet_LT", "inat2018": "iNaturalist18"}[cfg.dataset]
        root = Path(root or ".")
        mean, std = NORMALIZATION["imagenet" if cfg.dataset == "imagenet_lt" else "inat2018"]
        test_name = "val" if cfg.dataset == "inat2018" else "test"
        return load_split_lists(root, root / f"{prefix}_train.txt", root / f"{prefix}_{test_name}.txt", mean=mean, std=std)
    raise DataError(f"unknown dataset {cfg.dataset!r}: use cifar10, cifar100, imagefolder, imagenet_lt or inat2018")


def load_cifar(name: str, root: str | Path, imbalance_factor: float, split: str, seed: int,
               max_images_per_class: int = 0, download: bool = False) -> LongTailedData:
    """CIFAR-10/100 in torchvision's on-disk format under `root` (downloaded when `download`)."""
    from torchvision import datasets

    cls = {"cifar10": datasets.CIFAR10, "cifar100": datasets.CIFAR100}[name]
    try:
        tr, te = cls(str(root), train=True, download=download), cls(str(root), train=False, download=download)
    except RuntimeError as e:
        raise DataError(f"{root}: {name} not found in torchvision's format ({e}). Pass --data-root to a "
                        f"folder holding it, or allow the download with --download.") from e
    train = Split(np.asarray(tr.targets, dtype=np.int64), images=np.asarray(tr.data))
    test = Split(np.asarray(te.targets, dtype=np.int64), images=np.asarray(te.data))
    keep = _long_tail_indices(train.targets, len(tr.classes), imbalance_factor, split, seed, max_images_per_class)
    mean, std = NORMALIZATION[name]
    return LongTailedData(train.subset(keep), test, list(tr.classes), keep, mean, std)


def load_split_lists(root: str | Path, train_list: str | Path, test_list: str | Path,
                     mean: tuple = IMAGENET_MEAN, std: tuple = IMAGENET_STD) -> LongTailedData:
    """ImageNet-LT / iNaturalist 2018: "relative/path label" lines, paths under `root`."""
    def read(list_file):
        paths, targets = [], []
        try:
            lines = Path(list_file).read_text().splitlines()
        except OSError as e:
            raise DataError(f"{list_file}: cannot read the split list ({e.strerror})") from e
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            rel, _, label = line.rpartition(" ")
            if not rel or not label.strip().isdigit():
                raise DataError(f"{list_file}:{n}: expected 'relative/path label', got {line!r}")
            paths.append(str(Path(root) / rel))
            targets.append(int(label))
        return Split(np.asarray(targets, dtype=np.int64), paths=paths)

    train, test = read(train_list), read(test_list)
    missing = [f"{p}: no such file" for p in train.paths + test.paths if not os.path.isfile(p)]
    if missing:
        raise unreadable_files_error(missing)
    num_classes = int(max(train.targets.max(), test.targets.max())) + 1
    return LongTailedData(train, test, [str(i) for i in range(num_classes)], np.arange(len(train)),
                          tuple(mean), tuple(std))


# ---------------------------------------------------------------------------------------------
# The real CIFAR-10 JPEGs shipped beside the project (../shared/data)
# ---------------------------------------------------------------------------------------------


def cache_dir() -> Path:
    return Path(os.environ.get("GLMC_ZOO_CACHE", Path.home() / ".cache" / "glmc-zoo"))


def find_cifar10_jpeg_archive() -> Path:
    """`$GLMC_ZOO_CIFAR10_JPEG`, else `shared/data/cifar10-jpeg.tar.gz` beside or above the cwd."""
    env = os.environ.get("GLMC_ZOO_CIFAR10_JPEG")
    if env:
        return Path(env)
    for base in [Path.cwd(), *Path.cwd().parents, Path(__file__).resolve().parents[1].parent]:
        for cand in (base / "shared" / "data" / "cifar10-jpeg.tar.gz", base / "data" / "cifar10-jpeg.tar.gz"):
            if cand.is_file():
                return cand
    raise DataError("cifar10-jpeg.tar.gz not found: set GLMC_ZOO_CIFAR10_JPEG to its path "
                    "(it lies in ../shared/data beside the project)")


def cifar10_jpeg_root(archive: str | Path | None = None) -> Path:
    """Unpack the CIFAR-10 JPEG archive once into the cache (keyed by its checksum) and return the
    folder holding `train/` and `test/`. Unpacking goes to a temporary folder that is renamed into
    place, so a killed unpack never leaves a half-filled cache."""
    archive = Path(archive) if archive else find_cifar10_jpeg_archive()
    target = cache_dir() / f"cifar10-jpeg-{CIFAR10_JPEG_SHA256[:16]}"
    if (target / "test").is_dir() and (target / "train").is_dir():
        return target
    with cache_lock(target.name):  # concurrent processes: one unpacks, the others wait for it
        if (target / "test").is_dir() and (target / "train").is_dir():
            return target
        return _unpack(archive, target)


def _unpack(archive: Path, target: Path) -> Path:
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    if digest != CIFAR10_JPEG_SHA256:
        raise DataError(f"{archive}: sha256 {digest[:16]}... does not match the expected "
                        f"{CIFAR10_JPEG_SHA256[:16]}...: the archive is damaged or a different file")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".unpack-"))
    try:
        with tarfile.open(archive) as tf:
            tf.extractall(tmp, filter="data")
        try:
            os.replace(tmp, target)
        except OSError:  # another process (a second rank) unpacked it first
            if not (target / "test").is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


# ---------------------------------------------------------------------------------------------
# Batched augmentation of uint8 image tensors (the fast path: no per-sample Python work)
# ---------------------------------------------------------------------------------------------


def draw_crop_flip(b: int, generator: torch.Generator, pad: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """The random draws of `random_crop_flip` for a batch of `b`: offsets (2, B) (top, left, in
    [0, 2 pad]) and flips (B,) bool. Drawn for a whole global batch on every rank, then sliced, so a
    rank's images are augmented as in a single-process run on the same global batch."""
    off = torch.randint(0, 2 * pad + 1, (2, b), generator=generator)
    flip = torch.rand(b, generator=generator) < 0.5
    return off, flip


def apply_crop_flip(x: torch.Tensor, off: torch.Tensor, flip: torch.Tensor, pad: int = 4) -> torch.Tensor:
    """Crop (B, 3, S, S) uint8 images at `off` from their zero-padded copies, mirror where `flip`."""
    b, _, s, _ = x.shape
    dev = x.device
    off, flip = off.to(dev), flip.to(dev)
    xp = torch.nn.functional.pad(x, (pad, pad, pad, pad))  # (B, 3, S+2p, S+2p), zero fill
    ar = torch.arange(s, device=dev)
    rows = (off[0][:, None] + ar)[:, None, :, None]  # (B, 1, S, 1)
    cols = off[1][:, None] + ar  # (B, S)
    cols = torch.where(flip[:, None], cols.flip(1), cols)[:, None, None, :]  # (B, 1, 1, S)
    bi = torch.arange(b, device=dev)[:, None, None, None]
    ci = torch.arange(3, device=dev)[None, :, None, None]
    return xp[bi, ci, rows, cols]


def random_crop_flip(x: torch.Tensor, generator: torch.Generator, pad: int = 4) -> torch.Tensor:
    """RandomCrop(S, padding=pad, zero fill) + RandomHorizontalFlip on a batch, each image drawn
    independently. (B, 3, S, S) uint8 -> (B, 3, S, S) uint8, on x's device."""
    off, flip = draw_crop_flip(x.shape[0], generator, pad)
    return apply_crop_flip(x, off, flip, pad)


def normalize(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 (B, 3, S, S) -> float (B, 3, S, S): x / 255, then (x - mean) / std per channel."""
    return (x.float() / 255.0 - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)
