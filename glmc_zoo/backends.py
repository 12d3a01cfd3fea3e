"""The two inference backends: onnxruntime over a glmc-zoo `.onnx` file (no torch), and a timm / glmc-zoo
model in PyTorch (torch imported lazily). Each takes a (B, 3, S, S) float32 batch and returns (B, C) logits,
and carries the model's `preprocess` and `labels`."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from glmc_zoo.devices import parse_device
from glmc_zoo.errors import InferenceError, ModelLoadError
from glmc_zoo.jsonfile import parse_json
from glmc_zoo.preprocess import Preprocess


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
        info = _read_metadata(meta["glmc_zoo"], path)
        self.info = info  # what the export recorded: model, preprocessing, labels, precision, training counts
        self.preprocess = Preprocess.from_config(info["preprocess"], where=f"{path} (metadata glmc_zoo.preprocess)")
        outputs = self.session.get_outputs()[0].shape
        self.labels = _labels(info.get("label_names"), outputs[-1] if isinstance(outputs[-1], int) else None, path)
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
    given, (device, index) = device, parse_device(device)
    has_cuda = "CUDAExecutionProvider" in available
    if device == "cuda" and not has_cuda:
        raise InferenceError(f"--device {given}: this onnxruntime has no CUDA provider (available: {available}). "
                             f"Install onnxruntime-gpu (pip install 'glmc-zoo[onnx-gpu]') on a machine with a GPU, "
                             f"or use --device cpu.")
    why_not_gpu = "onnxruntime lists no GPU provider" if not has_cuda else ""
    if device in ("auto", "cuda") and has_cuda:
        gpu = (["TensorrtExecutionProvider"] if tensorrt and "TensorrtExecutionProvider" in available else []) + \
            [("CUDAExecutionProvider", {"device_id": index or 0})]
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
                providers = "/".join(p.removesuffix("ExecutionProvider") for p in session.get_providers())
                return session, "cuda" if index is None else f"cuda:{index}", f"onnxruntime {providers}"
            why_not_gpu = "the CUDA provider did not start (no GPU visible, or its CUDA/cuDNN libraries are missing)"
        if device == "cuda":
            raise InferenceError(f"--device {given}: {why_not_gpu}. Check the CUDA and cuDNN libraries that "
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
        from glmc_zoo.hub import create_model

        kind, index = parse_device(device)
        if kind == "cuda" and not torch.cuda.is_available():
            why = "this PyTorch build has no CUDA" if torch.version.cuda is None else \
                "no GPU is visible (or the driver is too old for CUDA " + str(torch.version.cuda) + ")"
            raise InferenceError(f"--device {device}: {why}. Use --device cpu.")
        if index is not None and index >= torch.cuda.device_count():
            raise InferenceError(f"--device {device}: this machine has {torch.cuda.device_count()} GPU(s), "
                                 f"numbered from 0. Use --device cuda:0 (or cuda).")
        if kind == "cuda":  # as given (cuda, cuda:N), in torch's spelling
            self.device = "cuda" if index is None else f"cuda:{index}"
        else:
            self.device = "cuda" if kind == "auto" and torch.cuda.is_available() else "cpu"
        self.device_note = self.device if kind != "auto" or self.device == "cuda" else "cpu (torch sees no CUDA device)"
        try:
            self.model = create_model(model, pretrained=True).to(self.device)
        except ModelLoadError as e:
            raise InferenceError(str(e)) from e
        cfg = self.model.pretrained_cfg
        self.preprocess = Preprocess.from_config(cfg, where=f"{model} (config.json pretrained_cfg)")
        self.labels = list(cfg.get("label_names") or [str(i) for i in range(self.model.num_classes)])
        self.model_name = model
        self._torch = torch

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        with self._torch.inference_mode():
            return self.model(self._torch.from_numpy(batch).to(self.device)).float().cpu().numpy()


def _read_metadata(text: str, path: Path) -> dict:
    """The `glmc_zoo` metadata of an export, parsed by the one bounded JSON reader (size, nesting, NaN), as an
    object with a `preprocess` object."""
    try:
        info = parse_json(text, f"{path}: metadata glmc_zoo")
    except ValueError as e:
        raise InferenceError(f"{e}; re-export the file with `glmc-zoo export`") from None
    if not isinstance(info, dict) or not isinstance(info.get("preprocess"), dict):
        raise InferenceError(f"{path}: metadata glmc_zoo has no preprocess object; re-export the file with "
                             f"`glmc-zoo export`")
    return info


def _labels(names, outputs: int | None, path: Path) -> list[str]:
    """The class names an export recorded: a list of strings, one per output."""
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names) or not names:
        raise InferenceError(f"{path}: metadata glmc_zoo.label_names is {repr(names)[:60]}, not a list of class "
                             f"names; re-export the file")
    if outputs is not None and len(names) != outputs:
        raise InferenceError(f"{path}: metadata glmc_zoo.label_names has {len(names)} names for {outputs} outputs; "
                             f"re-export the file")
    return list(names)
