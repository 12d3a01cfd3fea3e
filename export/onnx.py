"""ONNX export of a zoo model's inference head, verified against PyTorch before it is kept.

The `.onnx` file is self-describing: its metadata holds the preprocessing, the class names, the
model name and the glmc-zoo version, which is all `glmc_zoo.inference` needs to run it. It is made
with PyTorch's current exporter (`torch.onnx.export(..., dynamo=True)`) as one self-contained file.

Precisions: fp32; fp16 (weights and activations, fp16 in and out); int8 (onnxruntime's static
QDQ quantization, uint8 activations and 7-bit per-channel weights, calibrated on images the user
gives; its speed against fp32 on this CPU is measured and stated). Every export is compared with the PyTorch
model on every input given, at batch 1 and a larger batch, and refused (no file written) unless:
- fp32: |onnx - torch| <= atol + rtol * max|torch| on every logit, and identical top-1;
- fp16: top-1 agrees with PyTorch on >= 99% of the real images;
- int8: top-1 agrees with PyTorch on >= 98% of at least 100 real images (convolutions in int8, the
  classifier head kept in float), calibrated on at least 16.
A check that compared nothing fails.
"""

from __future__ import annotations

import contextlib
import json
import sys
import tempfile
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from glmc_zoo._meta import __version__
from glmc_zoo.atomic import output_target, place_file, temp_file_for
from glmc_zoo.backends import OnnxBackend
from glmc_zoo.cpu import cpu_isa, cpu_name, has_vnni
from glmc_zoo.errors import ExportError, ImageLoadError, InferenceError, VerificationFailed
from glmc_zoo.images import load_image
from glmc_zoo.preprocess import Preprocess
from glmc_zoo.registry import find_weights, weight_set_name

FP32_ATOL = 1e-4  # |logit difference| allowed on small logits, fp32
FP32_RTOL = 1e-5  # ... plus this fraction of the largest |logit| of the batch (large logits, e.g. 1,000)
TOP1_AGREEMENT = {"fp16": 0.99, "int8": 0.98}  # fraction of real images whose top-1 must agree
#: int8 is judged on at least this many real images (4 sample photos agreed at 100% with a model calibrated on one
#: 1x1 image that agreed on 89% of real images), and calibrated on at least MIN_CALIBRATION of them.
MIN_INT8_CHECK = 100
MIN_CALIBRATION = 16
MIN_OPSET = 18  # the dynamo exporter's lowest opset


@dataclass
class VerifyReport:
    """What the verification measured."""

    precision: str
    checks: list[dict] = field(default_factory=list)  # one per input set and batch: n, max_abs, bound, top1_agree
    passed: bool = False
    verified: bool = True
    reason: str = ""
    speed: dict | None = None  # int8: `int8_speed` on this CPU

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def compared(self) -> int:
        return sum(c["n"] for c in self.checks)

    def summary(self) -> str:
        if not self.verified:
            return f"verification ({self.precision}): SKIPPED (--no-verify)"
        rows = [f"{c['inputs']:<12} batch {c['batch']:>3}  n {c['n']:>5}  max|dlogit| {c['max_abs']:.2e} "
                f"(bound {c['bound']:.2e})  top-1 agree {100 * c['top1_agree']:.2f}%" for c in self.checks]
        verdict = "PASSED" if self.passed else f"FAILED{': ' + self.reason if self.reason else ''}"
        lines = rows + [f"verification ({self.precision}, {self.compared} inputs compared): {verdict}"]
        return "\n".join(lines + ([int8_verdict(self.speed)] if self.speed else []))


def int8_verdict(speed: dict) -> str:
    """One line: what the int8 file is worth on this CPU, as measured by `int8_speed`."""
    where = f"{speed['cpu']}; {speed['isa']}{'' if speed['vnni'] else ', no VNNI'}; batch {speed['batch']}"
    if speed["speedup"] >= 1.1:
        return f"int8 speed: {speed['speedup']:.2f}x fp32 on this CPU ({where})"
    return (f"int8 does not pay on this CPU: {speed['speedup']:.2f}x the speed of fp32 ({where}); deploy the fp32 "
            f"export here (int8 is a quarter of the size, and may pay on another CPU: measure there)")


def weights_sha256(model_ref: str, model) -> str | None:
    """sha256 of the local safetensors file the model was loaded from (a weights folder or a
    bundled weight set), so that an export can be traced to, and checked against, its weights."""
    import hashlib

    folder = Path(model_ref.removeprefix("local-dir:"))
    if folder.is_dir():
        path = folder / "model.safetensors"
    else:  # a bundled weight set: its registry record knows the file
        ws = _weight_set(model_ref, model)
        path = Path((ws.cfg.get("file") if ws else None) or "")
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def _weight_set(model_ref: str, model):
    """The registry record (`WeightSet`) of the weights `model` was built with, if it has one."""
    return find_weights(weight_set_name(model.pretrained_cfg, model_ref))


def onnx_metadata(model, model_ref: str, precision: str = "fp32") -> dict[str, str]:
    """The metadata written into the file, from the model's pretrained config."""
    from glmc_zoo.hub import training_counts

    cfg = model.pretrained_cfg
    pre = Preprocess.from_config(cfg)
    labels = list(cfg.get("label_names") or [str(i) for i in range(model.num_classes)])
    info = dict(model=_model_name(model_ref, cfg), architecture=cfg.get("architecture"), tag=cfg.get("tag"),
                glmc_zoo_version=__version__, preprocess=pre.to_dict(), label_names=labels, precision=precision,
                head="fc_cb (GLMC's rebalanced classifier)", weights_sha256=weights_sha256(model_ref, model),
                class_counts=training_counts(model_ref, model))
    return {"glmc_zoo": json.dumps(info), "label_names": json.dumps(labels), "mean": json.dumps(list(pre.mean)),
            "std": json.dumps(list(pre.std)), "input_size": json.dumps(list(pre.input_size)),
            "crop_pct": str(pre.crop_pct), "interpolation": pre.interpolation, "model_name": info["model"],
            "glmc_zoo_version": __version__}


def _model_name(model_ref: str, cfg: dict) -> str:
    """How the file names its model: the weight set (`arch.tag`) where the weights have a tag, else the folder as
    `parent/name` of its absolute path (never the relative path it happened to be exported from, nor a whole
    path of this machine)."""
    ref = str(model_ref).removeprefix("local-dir:")
    if cfg.get("tag") and cfg.get("architecture"):
        return f"{cfg['architecture']}.{cfg['tag']}"
    if Path(ref).exists():
        return "/".join(Path(ref).resolve().parts[-2:])
    return ref


def max_opset() -> int:
    """The newest opset the installed onnx knows."""
    import onnx

    return int(onnx.defs.onnx_opset_version())


def check_export_args(output: str | Path, opset: int, batch_size: int | None, precision: str,
                      calibration: list[str] | None) -> None:
    """Refuse arguments that cannot work, before anything is loaded (`ExportError`)."""
    if Path(output).suffix != ".onnx":
        raise ExportError(f"--output {output}: give a file name ending in .onnx")
    top = max_opset()
    if not MIN_OPSET <= opset <= top:
        raise ExportError(f"--opset {opset}: use {MIN_OPSET}..{top} (PyTorch's exporter starts at {MIN_OPSET}; "
                          f"the installed onnx knows up to {top})")
    if batch_size is not None and batch_size < 1:
        raise ExportError(f"--batch-size {batch_size}: give a positive integer, or 'dynamic'")
    if precision not in ("fp32", "fp16", "int8"):
        raise ExportError(f"precision {precision!r}: use fp32, fp16 or int8")
    if precision == "int8" and not calibration:
        raise ExportError("--int8 needs calibration images: --calibration DIR (a few hundred images like the "
                          "ones the model will see)")
    if precision == "int8" and len(calibration) < MIN_CALIBRATION:
        raise ExportError(f"--calibration: {len(calibration)} image{'s' * (len(calibration) != 1)}; int8's ranges need "
                          f"at least {MIN_CALIBRATION} (a few hundred like the ones the model will see)")


def export_onnx(model_ref: str, output: str | Path, opset: int = MIN_OPSET, fp16: bool = False,
                batch_size: int | None = None, verify_images: list[str] | None = None, seed: int = 0,
                int8: bool = False, calibration: list[str] | None = None, rtol: float = FP32_RTOL,
                atol: float = FP32_ATOL, verify: bool = True) -> VerifyReport:
    """Export `model_ref` (registry name, `hf-hub:`, `local-dir:` or a folder) to `output`.

    `batch_size=None` gives a dynamic batch axis. The graph is checked with `onnx.checker`, then
    (unless `verify=False`) run with onnxruntime against PyTorch on random inputs and on
    `verify_images` (real images, preprocessed as in deployment); see the module docstring for
    the bounds. `int8` quantizes statically, calibrated on `calibration` (image paths). Only a
    verified file is moved to `output`; on failure nothing is left there.
    """
    import onnx

    from glmc_zoo.hub import create_model

    precision = "int8" if int8 else "fp16" if fp16 else "fp32"
    if int8 and fp16:
        raise ExportError("--int8 and --fp16 exclude each other: choose one")
    check_export_args(output, opset, batch_size, precision, calibration)
    output = Path(output)
    output_target(output)  # a folder, the package's own weights: refused before the model is loaded
    model = create_model(model_ref, pretrained=True).cpu().eval()
    tmp = temp_file_for(output)
    try:
        proto = fp32_proto = _export_fp32(model, opset, batch_size)
        if fp16:
            from onnxruntime.transformers.float16 import convert_float_to_float16

            proto = convert_float_to_float16(proto, keep_io_types=False)  # fp16 in, fp16 out
        if int8:
            proto = _quantize_int8(proto, model, calibration or [], seed)
        proto.doc_string = f"glmc-zoo {__version__} export of {model_ref} (inference head fc_cb, {precision})"
        del proto.metadata_props[:]
        for k, v in onnx_metadata(model, model_ref, precision).items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = k, v
        onnx.checker.check_model(proto)
        onnx.save(proto, str(tmp))
        if verify:
            report = verify_onnx(model, tmp, precision, batch_size, verify_images, seed, rtol=rtol, atol=atol)
            if not report.passed:
                raise VerificationFailed(f"{output}: the export did not pass verification; no file written.\n"
                                         f"{report.summary()}")
            if int8:
                report.speed = int8_speed(fp32_proto, tmp, tuple(model.pretrained_cfg["input_size"]))
        else:
            report = VerifyReport(precision, verified=False)
        place_file(tmp, output)  # a regular file renamed into place; /dev/null, a FIFO: written through
        return report
    finally:
        tmp.unlink(missing_ok=True)


def _export_fp32(model, opset: int, batch_size: int | None):
    """The model's inference forward as an ONNX ModelProto (dynamo exporter, weights inlined)."""
    import onnx
    import torch

    size = tuple(model.pretrained_cfg["input_size"])
    dummy = torch.randn(batch_size or 2, *size)
    dynamic = None if batch_size else {"x": {0: torch.export.Dim("batch", min=1)}}
    with warnings.catch_warnings(), tempfile.TemporaryDirectory() as d:
        warnings.simplefilter("ignore")
        try:
            program = torch.onnx.export(model, (dummy,), input_names=["input"], output_names=["logits"],
                                        dynamic_shapes=dynamic, opset_version=opset, dynamo=True,
                                        external_data=False, verbose=False)
        except Exception as e:  # torch.export / onnxscript raise many types; report the first line
            raise ExportError(f"PyTorch's ONNX exporter failed at opset {opset}: {str(e).splitlines()[0]}") from e
        path = Path(d) / "m.onnx"
        program.save(str(path), external_data=False)
        proto = onnx.load(str(path))
    if not batch_size:  # name the dynamic axis "batch" on both ends, as deployments expect
        for value in (proto.graph.input[0], proto.graph.output[0]):
            value.type.tensor_type.shape.dim[0].dim_param = "batch"
    return proto


def _quantize_int8(proto, model, calibration: list[str], seed: int):
    """Static int8 (QDQ, per-channel weights) with onnxruntime's quantization tools, activation
    ranges calibrated on `calibration` images preprocessed exactly as in deployment."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    pre = Preprocess.from_config(model.pretrained_cfg)
    images, bad = [], []
    for p in calibration:
        try:
            images.append(pre(load_image(p)))
        except ImageLoadError as e:
            bad.append(str(e))
    if not images:
        raise ExportError(f"--calibration: none of the {len(calibration)} files could be read as images"
                          + (f" (first: {bad[0]})" if bad else ""))

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter([{"input": x[None]} for x in images])

        def get_next(self):
            return next(self.it, None)

    # onnxruntime's tools print their progress (calibration, histograms) on stdout, which carries only
    # the chosen output format (`--format json`): send it to stderr
    with tempfile.TemporaryDirectory() as d, contextlib.redirect_stdout(sys.stderr):
        src, prep, dst = Path(d) / "fp32.onnx", Path(d) / "prep.onnx", Path(d) / "int8.onnx"
        onnx.save(proto, str(src))
        quant_pre_process(str(src), str(prep), skip_symbolic_shape=True)
        # uint8 activations, int8 per-channel weights: onnxruntime fuses every Conv (and residual Add) of
        # this QDQ graph into QLinearConv / QLinearAdd. With int8 activations (0.2.0's choice) it fused
        # only half the convolutions and ran the rest in float between Q/DQ pairs and Transposes: 0.65x
        # the speed of fp32. `reduce_range` (7-bit weights) keeps the uint8 x int8 products from
        # saturating in AVX2's 16-bit multiply-add (no VNNI): without it top-1 agreement fell to 92%.
        # Measured on the bundled model, 500 CIFAR-10 test JPEGs, 2-core AMD EPYC (AVX2 only): 1.56x
        # fp32 at batch 64, 98.8% top-1 agreement (min-max; percentile 98.2%). The classifier stays float.
        head = [n.name for n in onnx.load(str(prep)).graph.node if n.op_type in ("Gemm", "MatMul")]
        quantize_static(str(prep), str(dst), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        reduce_range=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax, nodes_to_exclude=head)
        return onnx.load(str(dst))


def int8_speed(fp32_proto, int8_path: str | Path, input_size: tuple[int, ...], batch: int = 64,
               seconds: float = 1.0) -> dict:
    """int8 against fp32 on this CPU, side by side in one process: median seconds per batch of each
    (onnxruntime's CPU provider, its default threads) and their ratio, with the CPU named."""
    import statistics
    import time

    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sessions = {k: ort.InferenceSession(src, sess_options=opts, providers=["CPUExecutionProvider"])
                for k, src in (("fp32", fp32_proto.SerializeToString()), ("int8", str(int8_path)))}
    shape = sessions["int8"].get_inputs()[0].shape
    batch = shape[0] if isinstance(shape[0], int) else batch
    x = np.random.default_rng(0).standard_normal((batch, *input_size)).astype(np.float32)
    times: dict[str, list[float]] = {k: [] for k in sessions}
    deadline = time.perf_counter() + seconds
    while len(times["int8"]) < 3 or (time.perf_counter() < deadline and len(times["int8"]) < 50):
        for k, sess in sessions.items():  # interleaved: drift in the machine's load hits both alike
            t0 = time.perf_counter()
            sess.run(None, {"input": x})
            times[k].append(time.perf_counter() - t0)
    med = {k: statistics.median(v[1:] if len(v) > 3 else v) for k, v in times.items()}
    return dict(batch=batch, fp32_s=med["fp32"], int8_s=med["int8"], speedup=med["fp32"] / med["int8"],
                cpu=cpu_name(), isa=cpu_isa(), vnni=has_vnni())


def verify_onnx(model, path: str | Path, precision: str | bool, batch_size: int | None,
                images: list[str] | None, seed: int = 0, rtol: float = FP32_RTOL,
                atol: float = FP32_ATOL) -> VerifyReport:
    """Compare onnxruntime with PyTorch on random and real inputs (see the module docstring).

    Every input is compared: the last, smaller chunk runs as it is on a dynamic batch axis and
    zero-padded on a fixed one. `precision` is fp32, fp16 or int8 (True / False: fp16 / fp32).
    """
    import onnxruntime as ort
    import torch

    if isinstance(precision, bool):
        precision = "fp16" if precision else "fp32"
    try:  # the backend `predict` runs it on: its fp16 input and fixed-batch padding are what is verified
        run = OnnxBackend(path, device="cpu")
    except InferenceError as e:  # e.g. an opset newer than this onnxruntime knows
        raise ExportError(f"onnxruntime {ort.__version__} cannot run the exported graph ({str(e).splitlines()[0][:300]}); "
                          f"try a lower --opset") from e

    rng = np.random.default_rng(seed)
    size = tuple(model.pretrained_cfg["input_size"])
    report = VerifyReport(precision)
    sets = [("random", rng.standard_normal((16, *size)).astype(np.float32))]
    if images:
        pre = Preprocess.from_config(model.pretrained_cfg)
        sets.append(("real images", np.stack([pre(load_image(p)) for p in images])))
    batches = [batch_size] if batch_size else [1, 8]
    for name, x in sets:
        with torch.inference_mode():
            ref = model(torch.from_numpy(x)).float().numpy()
        for b in batches:
            out = np.concatenate([run(x[i:i + b]) for i in range(0, len(x), b)])
            err = np.abs(out - ref)
            bound = atol + rtol * float(np.abs(ref).max())
            report.checks.append(dict(inputs=name, batch=b, n=len(x), max_abs=float(err.max()), bound=bound,
                                      top1_agree=float((out.argmax(1) == ref.argmax(1)).mean())))
    real = [c for c in report.checks if c["inputs"] == "real images"]
    if precision == "fp32":
        report.passed = bool(report.checks) and all(c["max_abs"] <= c["bound"] and c["top1_agree"] == 1.0
                                                    for c in report.checks)
    elif not real:
        report.reason = f"{precision} is judged on real images and none were given (--verify-images)"
    elif precision == "int8" and real[0]["n"] < MIN_INT8_CHECK:
        report.reason = (f"int8 is judged on at least {MIN_INT8_CHECK} real images and {real[0]['n']} were given: "
                         f"--verify-images DIR (images like the deployment's, not the calibration set)")
    else:
        need = TOP1_AGREEMENT[precision]
        report.passed = all(c["top1_agree"] >= need for c in real)
        if not report.passed:
            report.reason = f"top-1 agreement below {100 * need:.0f}% on real images"
    return report
