"""ONNX export of a zoo model's inference head, verified against PyTorch before it is kept.

The `.onnx` file is self-describing: its metadata holds the preprocessing, the class names, the
model name and the glmc-zoo version, which is all `glmc_zoo.inference` needs to run it.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from glmc_zoo._meta import __version__

FP32_MAX_ABS = 1e-4  # max |logit difference| allowed between onnxruntime and PyTorch in fp32
FP16_TOP1_AGREEMENT = 0.99  # fraction of real images whose top-1 must agree in fp16


class ExportError(RuntimeError):
    """An export that failed or did not pass verification (no file is left behind)."""


@dataclass
class VerifyReport:
    """What the verification measured."""

    precision: str
    checks: list[dict] = field(default_factory=list)  # one per input set: name, batch, max_abs, top1_agree
    passed: bool = False

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        rows = [f"{c['inputs']:<14} batch {c['batch']:>3}  n {c['n']:>4}  max|dlogit| {c['max_abs']:.2e}  "
                f"top-1 agree {100 * c['top1_agree']:.2f}%" for c in self.checks]
        return "\n".join(rows + [f"verification ({self.precision}): {'PASSED' if self.passed else 'FAILED'}"])


def onnx_metadata(model, model_ref: str) -> dict[str, str]:
    """The metadata written into the file, from the model's pretrained config."""
    from glmc_zoo.inference import Preprocess

    cfg = model.pretrained_cfg
    pre = Preprocess.from_config(cfg)
    labels = list(cfg.get("label_names") or [str(i) for i in range(model.num_classes)])
    info = dict(model=model_ref, architecture=cfg.get("architecture"), tag=cfg.get("tag"),
                glmc_zoo_version=__version__, preprocess=pre.to_dict(), label_names=labels,
                head="fc_cb (GLMC's rebalanced classifier)")
    return {"glmc_zoo": json.dumps(info), "label_names": json.dumps(labels), "mean": json.dumps(list(pre.mean)),
            "std": json.dumps(list(pre.std)), "input_size": json.dumps(list(pre.input_size)),
            "crop_pct": str(pre.crop_pct), "interpolation": pre.interpolation, "model_name": model_ref,
            "glmc_zoo_version": __version__}


def export_onnx(model_ref: str, output: str | Path, opset: int = 17, fp16: bool = False,
                batch_size: int | None = None, verify_images: list[str] | None = None,
                seed: int = 0) -> VerifyReport:
    """Export `model_ref` (registry name, `hf-hub:`, `local-dir:` or a folder) to `output`.

    `batch_size=None` gives a dynamic batch axis. The export is checked with `onnx.checker`, then
    run with onnxruntime against PyTorch on random inputs and on `verify_images` (real images,
    preprocessed as in deployment) at batch 1 and a larger batch. fp32 must agree to
    `FP32_MAX_ABS` with identical top-1; fp16 must agree on top-1 for >= 99% of the real images.
    Only a verified file is moved to `output`; on failure nothing is left there.
    """
    import onnx
    import torch

    from glmc_zoo.hub import create_model

    output = Path(output)
    if output.suffix != ".onnx":
        raise ExportError(f"--output {output}: give a file name ending in .onnx")
    model = create_model(model_ref, pretrained=True).cpu().eval()
    size = model.pretrained_cfg["input_size"]
    n_export = batch_size or 2
    dummy = torch.randn(n_export, *size)
    output.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=output.parent, prefix=f".{output.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        dyn = None if batch_size else {"input": {0: "batch"}, "logits": {0: "batch"}}
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (dummy,), str(tmp), input_names=["input"], output_names=["logits"],
                              dynamic_axes=dyn, opset_version=opset, dynamo=False, do_constant_folding=True)
        proto = onnx.load(str(tmp))
        if fp16:
            from onnxruntime.transformers.float16 import convert_float_to_float16

            proto = convert_float_to_float16(proto, keep_io_types=False)  # fp16 in, fp16 out
        proto.doc_string = f"glmc-zoo {__version__} export of {model_ref} (inference head fc_cb)"
        for k, v in onnx_metadata(model, model_ref).items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = k, v
        onnx.checker.check_model(proto)
        onnx.save(proto, str(tmp))
        report = verify_onnx(model, tmp, fp16, batch_size, verify_images, seed)
        if not report.passed:
            raise ExportError(f"{output}: the export did not pass verification; no file written.\n{report.summary()}")
        tmp.chmod(0o644)
        os.replace(tmp, output)
        return report
    finally:
        tmp.unlink(missing_ok=True)


def verify_onnx(model, path: str | Path, fp16: bool, batch_size: int | None,
                images: list[str] | None, seed: int = 0) -> VerifyReport:
    """Compare onnxruntime with PyTorch on random and real inputs (see `export_onnx`)."""
    import onnxruntime as ort
    import torch

    from glmc_zoo.inference import Preprocess, load_image

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    in_type = np.float16 if "float16" in sess.get_inputs()[0].type else np.float32
    run = lambda x: np.asarray(sess.run(None, {"input": x.astype(in_type)})[0], np.float32)  # noqa: E731
    rng = np.random.default_rng(seed)
    size = tuple(model.pretrained_cfg["input_size"])
    report = VerifyReport("fp16" if fp16 else "fp32")
    sets = [("random", rng.standard_normal((16, *size)).astype(np.float32))]
    if images:
        pre = Preprocess.from_config(model.pretrained_cfg)
        sets.append(("real images", np.stack([pre(load_image(p)) for p in images])))
    batches = [batch_size] if batch_size else [1, 8]
    for name, x in sets:
        for b in batches:
            n = len(x) - len(x) % b
            if n == 0:
                continue
            ort_out = np.concatenate([run(x[i:i + b]) for i in range(0, n, b)])
            with torch.inference_mode():
                ref = model(torch.from_numpy(x[:n])).numpy()
            agree = float((ort_out.argmax(1) == ref.argmax(1)).mean())
            report.checks.append(dict(inputs=name, batch=b, n=n, max_abs=float(np.abs(ort_out - ref).max()),
                                      top1_agree=agree))
    if fp16:
        real = [c for c in report.checks if c["inputs"] == "real images"] or report.checks
        report.passed = all(c["top1_agree"] >= FP16_TOP1_AGREEMENT for c in real)
    else:
        report.passed = all(c["max_abs"] <= FP32_MAX_ABS and c["top1_agree"] == 1.0 for c in report.checks)
    return report
