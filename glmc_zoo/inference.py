"""Prediction on images with a PyTorch or an onnxruntime backend.

Both backends share one preprocessing, written in numpy and Pillow and derived from the model's
pretrained config (or, for an `.onnx` file, from the metadata stored in it), so they see identical
input tensors. This module does not import torch: the onnxruntime path runs where only
onnxruntime, numpy and Pillow are installed.

    from glmc_zoo.inference import Predictor
    p = Predictor()                       # the bundled default model, PyTorch on the CPU
    p.predict(["cat.jpg"], top_k=3)
"""

from __future__ import annotations

import io
import json
import math
import os
import warnings
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from glmc_zoo._meta import IMAGE_SUFFIXES
from glmc_zoo.errors import ImageLoadError, InferenceError  # noqa: F401  (re-exported)

#: The model used when none is named: trained by this project and shipped in the package.
DEFAULT_MODEL = "glmc_resnet32_w16.cifar10_lt_if100_e200_jpeg"
#: Images with more pixels than this are refused as decompression bombs (Pillow's own default
#: warns at 89M and fails at 179M; we fail at the warning level).
MAX_PIXELS = 89_478_485
#: Longest side and most elongated shape accepted. Eval preprocessing scales the short side to the
#: model's size, so a 3,000,000 x 1 strip (few pixels, within MAX_PIXELS) would become gigabytes.
MAX_SIDE = 65_500  # JPEG's own limit
MAX_ASPECT = 100
#: The key `load_image` sets in a drafted image's `info`: {"full": its full size (after EXIF rotation),
#: "scale": the DCT scale, "size": the drafted size}. Ignored once the image's size is no longer "size"
#: (cropped or resized since), so a stale record never moves the crop.
DRAFTED = "glmc_zoo.drafted"
#: `Predictor(draft=True)` drafts a JPEG down to a short side of at least this times the model's resize
#: target: the smallest factor that kept top-1 equal to a full decode on >= 99.5% of real photos
#: (`benchmarks/draft_decode.py`).
DRAFT_FACTOR = 8


def check_image_size(name: str, width: int, height: int) -> None:
    """Refuse, before any pixel is decoded or resized, an image no preprocessing can take."""
    if width < 1 or height < 1:
        raise ImageLoadError(f"{name}: {width}x{height} pixels: an empty image; refused")
    if width * height > MAX_PIXELS:
        raise ImageLoadError(f"{name}: declares {width}x{height} pixels, over the {MAX_PIXELS:,}-pixel limit "
                             f"(a decompression bomb?); refused")
    if max(width, height) > MAX_SIDE:
        raise ImageLoadError(f"{name}: {width}x{height} pixels, a side over {MAX_SIDE:,}; refused")
    if max(width, height) > MAX_ASPECT * min(width, height):
        raise ImageLoadError(f"{name}: {width}x{height} pixels, more than {MAX_ASPECT}:1; refused (resizing it for "
                             f"the model would take gigabytes): crop it to the part to classify")


# ---------------------------------------------------------------------------------------------
# Preprocessing (numpy + Pillow), identical to timm's eval transform
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Preprocess:
    """timm's eval transform: resize the short side to floor(S / crop_pct), centre-crop S x S,
    scale to [0, 1], normalise. Equal to `timm.data.create_transform(**resolve_data_config(...))`
    on the same RGB image."""

    input_size: tuple[int, int, int] = (3, 32, 32)
    mean: tuple[float, ...] = (0.485, 0.456, 0.406)
    std: tuple[float, ...] = (0.229, 0.224, 0.225)
    crop_pct: float = 1.0
    interpolation: str = "bilinear"

    @classmethod
    def from_config(cls, cfg: dict) -> Preprocess:
        return cls(tuple(cfg["input_size"]), tuple(cfg["mean"]), tuple(cfg["std"]),
                   float(cfg.get("crop_pct") or 0.875), str(cfg.get("interpolation") or "bilinear"))

    @property
    def scale_size(self) -> int:
        return math.floor(self.input_size[1] / self.crop_pct)

    def __call__(self, img: Image.Image) -> np.ndarray:
        """RGB PIL image -> (3, S, S) float32."""
        img = self.resize_crop(img)
        x = np.asarray(img, dtype=np.uint8).astype(np.float32) / np.float32(255.0)  # (S, S, 3)
        x = (x - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        return np.ascontiguousarray(x.transpose(2, 0, 1))

    def resize_crop(self, img: Image.Image) -> Image.Image:
        """The geometric part: short side to floor(S / crop_pct), centre crop S x S.

        An image `load_image` drafted (decoded at 1/s scale) gets the same geometry, computed on its
        full size: the crop's box in full-size pixels, divided by s, is resampled straight to S x S."""
        size = self.input_size[1]
        drafted = img.info.get(DRAFTED)
        drafted = drafted if isinstance(drafted, dict) and tuple(drafted.get("size", ())) == img.size else None
        w, h = drafted["full"] if drafted else img.size
        short, long_ = (w, h) if w <= h else (h, w)
        new_short, new_long = self.scale_size, int(self.scale_size * long_ / short)
        new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
        top, left = int(round((new_h - size) / 2.0)), int(round((new_w - size) / 2.0))
        if drafted:
            sx, sy = w / new_w / drafted["scale"], h / new_h / drafted["scale"]
            box = (left * sx, top * sy, (left + size) * sx, (top + size) * sy)
            return img.resize((size, size), _PIL_INTERP[self.interpolation], box=box)
        if (new_w, new_h) != (w, h):
            img = img.resize((new_w, new_h), _PIL_INTERP[self.interpolation])
        return img.crop((left, top, left + size, top + size))

    def to_dict(self) -> dict:
        return dict(input_size=list(self.input_size), mean=list(self.mean), std=list(self.std),
                    crop_pct=self.crop_pct, interpolation=self.interpolation)


_PIL_INTERP = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC, "nearest": Image.NEAREST,
               "lanczos": Image.LANCZOS, "box": Image.BOX, "hamming": Image.HAMMING}


def load_image(source: str | Path | bytes | BinaryIO | Image.Image | np.ndarray,
               draft_size: int | None = None) -> Image.Image:
    """Open any reasonable image as 8-bit RGB, EXIF rotation applied: a path, the encoded bytes (as a
    web request delivers them), a binary file object, a PIL image or an array.

    Handles grayscale, RGBA / LA / palette transparency (composited on white), 16-bit, CMYK,
    progressive JPEG, WEBP / BMP / GIF (first frame). With `draft_size`, a JPEG is decoded at the
    smallest DCT scale that keeps both sides >= draft_size (much faster for big photos).
    Raises `ImageLoadError` naming the file and the problem.
    """
    if isinstance(source, np.ndarray):
        if source.ndim >= 2:
            check_image_size(f"<array {source.shape}>", source.shape[1], source.shape[0])
        return _array_to_rgb(source)
    if isinstance(source, Image.Image):
        check_image_size(f"<{type(source).__name__}>", source.width, source.height)
        return _to_rgb(ImageOps.exif_transpose(source))
    if isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise ImageLoadError(f"<{type(source).__name__}>: empty (0 bytes)")
        return _decode(io.BytesIO(bytes(source)), f"<{type(source).__name__}>", draft_size)
    if hasattr(source, "read"):
        return _decode(source, f"<{type(source).__name__}>", draft_size)
    if not isinstance(source, (str, os.PathLike)):
        raise ImageLoadError(f"<{type(source).__name__}>: not an image source; give a path, encoded bytes, a binary "
                             f"file object, a PIL image or a uint8 array")
    path = Path(source)
    if not path.exists():
        raise ImageLoadError(f"{path}: no such file")
    if path.is_dir():
        raise ImageLoadError(f"{path}: is a directory (directories are expanded only as command-line sources)")
    if path.stat().st_size == 0:
        raise ImageLoadError(f"{path}: empty file (0 bytes)")
    return _decode(path, str(path), draft_size)


def _decode(fp: Path | BinaryIO, name: str, draft_size: int | None) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(fp) as im:
                check_image_size(name, im.width, im.height)
                full, scale = im.size, 1
                if draft_size and im.format == "JPEG":
                    drafted = im.draft("RGB", (draft_size, draft_size))
                    scale = round(full[0] / drafted[1][2]) if drafted else 1
                    if im.getexif().get(ExifTags.Base.Orientation) in (5, 6, 7, 8):  # exif_transpose swaps the sides
                        full = full[::-1]
                im.load()
                rgb = _to_rgb(ImageOps.exif_transpose(im))
                if scale > 1:  # what Preprocess needs to give a drafted image the full decode's geometry
                    rgb.info[DRAFTED] = {"full": full, "scale": scale, "size": rgb.size}
                return rgb
    except ImageLoadError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageLoadError(f"{name}: too many pixels, refused as a decompression bomb ({e})") from e
    except UnidentifiedImageError as e:
        raise ImageLoadError(f"{name}: not an image Pillow can read (wrong extension, or not an image file)") from e
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageLoadError(f"{name}: damaged or truncated image ({e})") from e


def _to_rgb(im: Image.Image) -> Image.Image:
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(im).astype(np.float64)
        scale = 65535.0 if arr.max() > 255 else 255.0
        im = Image.fromarray(np.clip(arr / scale * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    if im.mode in ("RGBA", "LA", "PA"):
        rgba = im.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(bg, rgba).convert("RGB")
    return im if im.mode == "RGB" else im.convert("RGB")


def _array_to_rgb(a: np.ndarray) -> Image.Image:
    if a.dtype != np.uint8:
        raise ImageLoadError(f"array input: expected uint8 (H, W, 3) or (H, W), got {a.dtype} {a.shape}")
    if a.ndim == 2 or (a.ndim == 3 and a.shape[2] in (3, 4)):
        return _to_rgb(Image.fromarray(a))
    raise ImageLoadError(f"array input: expected shape (H, W), (H, W, 3) or (H, W, 4), got {a.shape}")


def image_files(folder: str | Path) -> list[Path]:
    """The image files under `folder`, recursively (following links, each folder once), sorted by path. Hidden files and
    folders (a name starting with ".": `.DS_Store`, macOS's `._photo.jpg`, `.ipynb_checkpoints/`) are
    skipped, as are other suffixes. Training, `eval` and `predict` all list a folder this way."""
    return [Path(f) for f in image_file_paths(folder)]


def image_file_paths(folder: str | Path) -> list[str]:
    """`image_files` as strings, in the same order (sorted by path components, as `Path` sorts), without
    making a `Path` per file: a folder of 60,000 images lists in a fraction of a second."""
    found, seen = [], set()
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        st = os.stat(dirpath)
        if (st.st_dev, st.st_ino) in seen:  # a link back to a folder already listed: a loop, or a second copy
            dirnames[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        found += [os.path.join(dirpath, f) for f in filenames
                  if not f.startswith(".") and os.path.splitext(f)[1].lower() in IMAGE_SUFFIXES]
    found = [str(Path(f)) for f in found] if os.sep != "/" else found
    return sorted((f for f in found if os.path.isfile(f)), key=lambda f: f.split(os.sep))


def expand_sources(sources: Iterable[str]) -> list[str]:
    """Files as given, directories recursed for image files (`image_files`), globs expanded. A source
    that matches nothing is kept, so that it is reported as missing rather than dropped."""
    import glob

    out: list[str] = []
    for s in sources:
        p = Path(s)
        if p.is_dir():
            out += [str(f) for f in image_files(p)]
        elif not p.exists() and glob.has_magic(s):
            hits = sorted(glob.glob(s, recursive=True))
            out += hits if hits else [s]
        else:
            out.append(s)
    return out


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
# Backends
# ---------------------------------------------------------------------------------------------


class OnnxBackend:
    """onnxruntime session over a glmc-zoo `.onnx` file; preprocessing and labels from its metadata."""

    name = "onnx"

    def __init__(self, path: str | Path, device: str = "auto", tensorrt: bool = False,
                 available: list[str] | None = None):
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise InferenceError("the onnx backend needs onnxruntime: pip install 'glmc-zoo[onnx]' "
                                 "(or onnxruntime-gpu for CUDA)") from e
        path = Path(path)
        if not path.is_file():
            raise InferenceError(f"{path}: no such ONNX file")
        available = ort.get_available_providers() if available is None else available
        ort.set_default_logger_severity(3)  # provider start-up failures are reported by us, in one line
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        self.session, self.device, self.device_note = _open_session(ort, path, opts, device, available, tensorrt)
        used = self.session.get_providers()
        meta = self.session.get_modelmeta().custom_metadata_map
        if "glmc_zoo" not in meta:
            raise InferenceError(f"{path}: not a glmc-zoo export (no glmc_zoo metadata); export it with "
                                 f"`glmc-zoo export`")
        info = json.loads(meta["glmc_zoo"])
        self.info = info  # what the export recorded: model, preprocessing, labels, precision, training counts
        self.preprocess = Preprocess.from_config(info["preprocess"])
        self.labels = list(info["label_names"])
        self.model_name = info.get("model", str(path))
        self.input_name = self.session.get_inputs()[0].name
        self.input_type = self.session.get_inputs()[0].type
        shape = self.session.get_inputs()[0].shape
        self.fixed_batch = shape[0] if isinstance(shape[0], int) else None
        self.providers = used

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """(B, 3, S, S) float32 -> (B, C) float32 logits."""
        x = batch.astype(np.float16) if "float16" in self.input_type else batch
        if self.fixed_batch and len(x) != self.fixed_batch:
            return _fixed_batches(self, x, self.fixed_batch)
        return np.asarray(self.session.run(None, {self.input_name: x})[0], dtype=np.float32)


def _fixed_batches(backend, x: np.ndarray, size: int) -> np.ndarray:
    outs = []
    for i in range(0, len(x), size):
        chunk = x[i:i + size]
        n = len(chunk)
        if n < size:
            chunk = np.concatenate([chunk, np.zeros((size - n, *chunk.shape[1:]), chunk.dtype)])
        outs.append(np.asarray(backend.session.run(None, {backend.input_name: chunk})[0], np.float32)[:n])
    return np.concatenate(outs)


def _cpu_threads() -> int:
    # Leave cores to the image-decoding threads: on 2 cores, 1 model thread + 3 decoders ran
    # end-to-end predict 1.2x faster than onnxruntime's default of one thread per core.
    return max(1, (os.cpu_count() or 2) // 2)


def _open_session(ort, path: Path, opts, device: str, available: list[str], tensorrt: bool):
    """An InferenceSession on the best device that actually starts: -> (session, device, note).

    `auto` tries the GPU providers onnxruntime lists (a CPU-only machine with onnxruntime-gpu
    lists CUDA too) and takes the CPU when they cannot start; `cuda` fails with the reason."""
    if device not in ("auto", "cpu", "cuda"):
        raise InferenceError(f"--device {device!r}: use auto, cpu or cuda")
    has_cuda = "CUDAExecutionProvider" in available
    if device == "cuda" and not has_cuda:
        raise InferenceError(f"--device cuda: this onnxruntime has no CUDA provider (available: {available}). "
                             f"Install onnxruntime-gpu (pip install 'glmc-zoo[onnx-gpu]') on a machine with a GPU, "
                             f"or use --device cpu.")
    why_not_gpu = "onnxruntime lists no GPU provider" if not has_cuda else ""
    if device in ("auto", "cuda") and has_cuda:
        gpu = (["TensorrtExecutionProvider"] if tensorrt and "TensorrtExecutionProvider" in available else []) + \
            ["CUDAExecutionProvider"]
        # A GPU provider that cannot start (onnxruntime-gpu without CUDA/cuDNN, or no GPU) makes onnxruntime's
        # native logger print its own error and warning lines at ERROR level: silence it for this attempt
        # (FATAL only); the reason is reported below, in one line.
        ort.set_default_logger_severity(4)
        try:
            with warnings.catch_warnings():  # onnxruntime warns when a listed provider is not usable: we say it
                warnings.simplefilter("ignore")
                session = ort.InferenceSession(str(path), sess_options=opts, providers=[*gpu, "CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types
            if "NO_SUCHFILE" in str(e) or "INVALID_PROTOBUF" in str(e):
                raise InferenceError(f"{path}: onnxruntime cannot load it ({e})") from e
            session, why_not_gpu = None, f"the GPU providers failed to start ({str(e).splitlines()[0][:160]})"
        finally:
            ort.set_default_logger_severity(3)
        if session is not None:
            if "CUDAExecutionProvider" in session.get_providers():
                return session, "cuda", f"onnxruntime {'/'.join(p[:-17] for p in session.get_providers())}"
            why_not_gpu = "the CUDA provider did not start (no GPU visible, or its CUDA/cuDNN libraries are missing)"
        if device == "cuda":
            raise InferenceError(f"--device cuda: {why_not_gpu}. Check the CUDA and cuDNN libraries that "
                                 f"onnxruntime-gpu {ort.__version__} needs, and that a GPU is visible; or use "
                                 f"--device cpu.")
    opts.intra_op_num_threads = _cpu_threads()
    try:
        session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types
        raise InferenceError(f"{path}: onnxruntime cannot load it ({e})") from e
    note = "cpu" if device == "cpu" else f"cpu ({why_not_gpu})"
    return session, "cpu", note


class TorchBackend:
    """A timm / glmc-zoo model in PyTorch eager mode (imports torch lazily)."""

    name = "torch"

    def __init__(self, model: str, device: str = "auto"):
        try:
            import torch
        except ImportError as e:
            raise InferenceError("the torch backend needs PyTorch; with only onnxruntime installed, "
                                 "use an .onnx model (--backend onnx)") from e
        from glmc_zoo.hub import ModelLoadError, create_model

        if device not in ("auto", "cpu", "cuda"):
            raise InferenceError(f"--device {device!r}: use auto, cpu or cuda")
        if device == "cuda" and not torch.cuda.is_available():
            why = "this PyTorch build has no CUDA" if torch.version.cuda is None else \
                "no GPU is visible (or the driver is too old for CUDA " + str(torch.version.cuda) + ")"
            raise InferenceError(f"--device cuda: {why}. Use --device cpu.")
        self.device = "cuda" if device == "cuda" or (device == "auto" and torch.cuda.is_available()) else "cpu"
        self.device_note = self.device if device != "auto" or self.device == "cuda" else "cpu (torch sees no CUDA device)"
        try:
            self.model = create_model(model, pretrained=True).to(self.device)
        except ModelLoadError as e:
            raise InferenceError(str(e)) from e
        cfg = self.model.pretrained_cfg
        self.preprocess = Preprocess.from_config(cfg)
        self.labels = list(cfg.get("label_names") or [str(i) for i in range(self.model.num_classes)])
        self.model_name = model
        self._torch = torch

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        with self._torch.inference_mode():
            return self.model(self._torch.from_numpy(batch).to(self.device)).float().cpu().numpy()


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
