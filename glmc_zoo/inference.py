"""Prediction on images: `Predictor`, over the images (`glmc_zoo.images`), the eval preprocessing
(`glmc_zoo.preprocess`) and a PyTorch or onnxruntime backend (`glmc_zoo.backends`), whose names this
module also offers. It does not import torch: the onnxruntime path runs where only onnxruntime, numpy
and Pillow are installed.

    from glmc_zoo.inference import Predictor
    p = Predictor()                       # the bundled default model, PyTorch on the CPU
    p.predict(["cat.jpg"], top_k=3)
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from glmc_zoo.backends import OnnxBackend, TorchBackend  # noqa: F401
from glmc_zoo.errors import ImageLoadError, InferenceError
from glmc_zoo.images import (  # noqa: F401  (re-exported: the names this module always offered)
    DRAFTED,
    MAX_ASPECT,
    MAX_PIXELS,
    MAX_SIDE,
    check_image_size,
    expand_sources,
    image_file_paths,
    image_files,
    load_image,
)
from glmc_zoo.preprocess import Preprocess  # noqa: F401

#: The model used when none is named: trained by this project and shipped in the package.
DEFAULT_MODEL = "glmc_resnet32_w16.cifar10_lt_if100_e200_jpeg"
#: `Predictor(draft=True)` drafts a JPEG down to a short side of at least this times the model's resize
#: target: the smallest factor that kept top-1 equal to a full decode on >= 99.5% of real photos
#: (`benchmarks/draft_decode.py`).
DRAFT_FACTOR = 8

# ---------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------


@dataclass
class Prediction:
    source: str
    predictions: list[dict] = field(default_factory=list)  # [{"label", "index", "score"}]
    error: str | None = None

    def to_dict(self) -> dict:
        return dict(source=self.source, predictions=self.predictions, error=self.error)


def _as_items(sources):
    """What `Predictor.predict` takes: one image as a list of one; an (N, H, W, C) array as its N images;
    any other iterable as it is. Anything else is a TypeError that says what to give."""
    single = (str, os.PathLike, bytes, bytearray, memoryview, Image.Image)
    if isinstance(sources, single) or hasattr(sources, "read"):
        return [sources]
    if isinstance(sources, np.ndarray):
        return list(sources) if sources.ndim == 4 else [sources]
    try:
        return iter(sources)
    except TypeError:
        raise TypeError(f"Predictor.predict: a {type(sources).__name__} is neither an image nor an iterable of images; "
                        f"give a path, bytes, a file object, a PIL image or an array, or a list of them") from None


def _prefetch(pool: ThreadPoolExecutor, fn, items, ahead: int) -> Iterator:
    """`pool.map(fn, items)` in order, with at most `ahead` items in flight (bounded memory)."""
    from collections import deque

    queue: deque = deque()
    it = iter(items)
    for item in it:
        queue.append(pool.submit(fn, item))
        if len(queue) >= ahead:
            yield queue.popleft().result()
    while queue:
        yield queue.popleft().result()


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


# ---------------------------------------------------------------------------------------------
# The predictor
# ---------------------------------------------------------------------------------------------


def bundled_onnx(name: str = DEFAULT_MODEL) -> Path:
    """The verified `.onnx` export shipped beside a bundled weight set (made by `glmc-zoo export`
    from its safetensors; tests check that the two agree)."""
    return Path(__file__).parent / "weights" / name / "model.onnx"


def _has_module(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


class Predictor:
    """Top-k predictions for images, on PyTorch or onnxruntime.

    `model`: a registry name or `arch.tag`, `hf-hub:`, `local-dir:` or a weights folder (torch
    backend), or an `.onnx` file (onnx backend). `backend="auto"` picks onnx for `.onnx` files.

    `draft=True` (the default) decodes a large JPEG at the smallest DCT scale (1/2, 1/4, 1/8) whose short
    side is still >= DRAFT_FACTOR x the model's resize target, then resamples the full decode's crop box
    from it: 2.5x faster on 2000 px photos, and top-1 equal to a full decode on >= 99.5% of real photos for the
    bundled models (`benchmarks/draft_decode.py`; numbers in the README). `draft=False` decodes fully: the
    eval preprocessing bit for bit (what `eval` and training report). Images other than JPEG, and JPEGs
    too small to draft, are decoded fully either way.

    `workers`: decoding threads (Pillow releases the GIL while it decodes and resamples), which run
    ahead of the model by at most two batches.
    """

    def __init__(self, model: str | None = None, backend: str = "auto", device: str = "auto",
                 tensorrt: bool = False, draft: bool = True, workers: int | None = None):
        if backend not in ("auto", "torch", "onnx"):
            raise InferenceError(f"--backend {backend!r}: use auto, torch or onnx")
        if model is None:  # the bundled default: its verified .onnx where onnxruntime is installed
            onnx_ok = backend == "onnx" or (backend == "auto" and _has_module("onnxruntime"))
            model = str(bundled_onnx()) if onnx_ok and bundled_onnx().is_file() else DEFAULT_MODEL
        if backend == "auto":
            backend = "onnx" if str(model).endswith(".onnx") else "torch"
        if backend == "onnx":
            if not str(model).endswith(".onnx"):
                raise InferenceError(f"--backend onnx needs an .onnx file, got {model!r}; export one with "
                                     f"`glmc-zoo export {model} --output model.onnx`")
            self.backend = OnnxBackend(model, device, tensorrt)
        elif backend == "torch":
            if str(model).endswith(".onnx"):
                raise InferenceError(f"{model}: an .onnx file runs on the onnx backend (--backend onnx or auto)")
            self.backend = TorchBackend(model, device)
        self.preprocess = self.backend.preprocess
        self.labels = self.backend.labels
        self.draft = draft
        self.workers = workers or min(8, (os.cpu_count() or 1) + 1)  # decoding threads (Pillow releases the GIL)

    @property
    def device(self) -> str:
        return self.backend.device

    def _load(self, source) -> tuple[np.ndarray | None, str | None]:
        try:
            draft = DRAFT_FACTOR * self.preprocess.scale_size if self.draft else None
            return self.preprocess(load_image(source, draft_size=draft)), None
        except ImageLoadError as e:
            return None, str(e)

    def iter_predict(self, sources, top_k: int = 5, batch_size: int = 64) -> Iterator[Prediction]:
        """Yield one `Prediction` per source, in order; decoding runs in threads ahead of the model.

        `sources`: any iterable of images (a list, a generator: read as it goes, at most 2 x batch_size
        images in flight), or one image (a path, bytes, a file object, a PIL image, an (H, W[, C]) array).
        """
        top_k = max(1, min(top_k, len(self.labels)))
        names: list[str] = []

        def named(items):
            for i, s in enumerate(items):
                names.append(str(s) if isinstance(s, (str, os.PathLike)) else f"<{type(s).__name__} {i}>")
                yield s

        with ThreadPoolExecutor(self.workers) as pool:
            loaded = _prefetch(pool, self._load, named(_as_items(sources)), ahead=2 * batch_size)
            batch_x, batch_i, pending = [], [], []
            for i, (x, err) in enumerate(loaded):
                pending.append(Prediction(names[i], error=err))
                if x is not None:
                    batch_x.append(x)
                    batch_i.append(len(pending) - 1)
                if len(batch_x) >= batch_size:  # every pending item is now an error or in this batch
                    self._run(batch_x, batch_i, pending, top_k)
                    yield from pending
                    batch_x, batch_i, pending = [], [], []
            if batch_x:
                self._run(batch_x, batch_i, pending, top_k)
            yield from pending

    def _run(self, xs: list[np.ndarray], idx: list[int], pending: list[Prediction], top_k: int) -> None:
        probs = _softmax(self.backend(np.stack(xs)))
        top = np.argsort(-probs, axis=1, kind="stable")[:, :top_k]
        for row, i in enumerate(idx):
            pending[i].predictions = [dict(label=self.labels[j], index=int(j), score=float(probs[row, j]))
                                      for j in top[row]]

    def predict(self, sources, top_k: int = 5, batch_size: int = 64) -> list[Prediction]:
        """One `Prediction` per source (path, encoded bytes, binary file object, PIL image or uint8
        array), in input order. `sources` is any iterable of them, or a single one (a list of one
        `Prediction` comes back). A source that cannot be read, or is of no such kind, gets `error`
        set; the others are still predicted."""
        return list(self.iter_predict(sources, top_k, batch_size))

    def logits(self, images: Sequence) -> np.ndarray:
        """Raw (N, C) logits for images that must all load (raises `ImageLoadError` otherwise)."""
        return self.backend(np.stack([self.preprocess(load_image(s)) for s in images]))
