"""Class names of the datasets GLMC was trained on, in label-index order."""

from __future__ import annotations

import csv
import functools
import sys
from pathlib import Path

CIFAR10_LABELS: tuple[str, ...] = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)

# CIFAR-100 fine labels, in the dataset's label order (alphabetical).
CIFAR100_LABELS: tuple[str, ...] = (
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle",
    "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar", "cattle",
    "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch", "crab", "crocodile", "cup",
    "dinosaur", "dolphin", "elephant", "flatfish", "forest", "fox", "girl", "hamster", "house",
    "kangaroo", "keyboard", "lamp", "lawn_mower", "leopard", "lion", "lizard", "lobster", "man",
    "maple_tree", "motorcycle", "mountain", "mouse", "mushroom", "oak_tree", "orange", "orchid",
    "otter", "palm_tree", "pear", "pickup_truck", "pine_tree", "plain", "plate", "poppy",
    "porcupine", "possum", "rabbit", "raccoon", "ray", "road", "rocket", "rose", "sea", "seal",
    "shark", "shrew", "skunk", "skyscraper", "snail", "snake", "spider", "squirrel", "streetcar",
    "sunflower", "sweet_pepper", "table", "tank", "telephone", "television", "tiger", "tractor",
    "train", "trout", "tulip", "turtle", "wardrobe", "whale", "willow_tree", "wolf", "woman", "worm",
)


@functools.lru_cache(maxsize=1)
def imagenet_labels() -> tuple[str, ...]:
    """The 1000 ImageNet-1k class descriptions (`timm.data.ImageNetInfo().label_descriptions()`), read
    from the metadata files timm ships without importing timm (and torch): the weight-set registry
    needs them, and `glmc-zoo list` / `info` must start at once. Falls back to timm's own reader."""
    info = _timm_info_dir()
    if info is not None:
        synsets = (info / "imagenet_synsets.txt").read_text(encoding="utf-8").splitlines()
        lemmas = dict(csv.reader((info / "imagenet_synset_to_lemma.txt").read_text(encoding="utf-8").splitlines(),
                                 delimiter="\t"))
        return tuple(lemmas[s] for s in synsets)
    try:
        from timm.data import ImageNetInfo
    except ImportError:  # a deployment install without timm: these names label only records it cannot load
        return index_labels(1000)
    return tuple(ImageNetInfo().label_descriptions())


def _timm_info_dir() -> Path | None:
    """timm's `data/_info` folder, found on sys.path by its files alone (importing nothing)."""
    for entry in sys.path:
        d = Path(entry or ".") / "timm" / "data" / "_info"
        if (d / "imagenet_synsets.txt").is_file() and (d / "imagenet_synset_to_lemma.txt").is_file():
            return d
    return None


def index_labels(num_classes: int) -> tuple[str, ...]:
    """Labels by index ("class_0000", ...) where the names are not available offline."""
    return tuple(f"class_{i:04d}" for i in range(num_classes))
