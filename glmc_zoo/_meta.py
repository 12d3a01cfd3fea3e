"""Package-wide constants kept in one place."""

__version__ = "0.3.0.dev0"

#: The Hugging Face Hub organisation under which every glmc-zoo weight set is (to be) published.
HF_ORG = "glmc-zoo"

#: Per-dataset normalisation, (mean, std), as the released GLMC code writes them (reference section 4).
NORMALIZATION: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "cifar10": ((0.49139968, 0.48215827, 0.44653124), (0.24703233, 0.24348505, 0.26158768)),
    "cifar100": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "inat2018": ((0.466, 0.471, 0.380), (0.195, 0.194, 0.192)),
}

#: File suffixes read as images, by the trainer's folder loader and by `predict`.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
