"""ONNX export: self-describing, verified against PyTorch, and nothing left behind on failure."""

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import glmc_zoo.export.onnx as ex
from glmc_zoo.samples import sample_images


def test_fp32_export_is_verified_and_self_describing(w16_folder, tmp_path, cifar_test_images):
    out = tmp_path / "m.onnx"
    report = ex.export_onnx(str(w16_folder), out, verify_images=cifar_test_images[0][:64])
    print(report.summary())
    assert report.passed and {c["batch"] for c in report.checks} == {1, 8}
    assert {c["inputs"] for c in report.checks} == {"random", "real images"}
    assert all(c["max_abs"] <= 1e-4 and c["top1_agree"] == 1.0 for c in report.checks)
    assert not list(tmp_path.glob(".*")) and sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]
    proto = onnx.load(str(out))
    meta = {p.key: p.value for p in proto.metadata_props}
    info = json.loads(meta["glmc_zoo"])
    assert info["label_names"][0] == "airplane" and info["preprocess"]["input_size"] == [3, 32, 32]
    assert json.loads(meta["mean"]) == info["preprocess"]["mean"] and meta["interpolation"] == "bilinear"
    assert "glmc_zoo_version" in meta and meta["crop_pct"] == "1.0"
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert sess.get_inputs()[0].shape[0] == "batch"  # dynamic batch axis
    assert sess.run(None, {"input": np.zeros((5, 3, 32, 32), np.float32)})[0].shape == (5, 10)


def test_fp16_export_keeps_top1(w16_folder, tmp_path, cifar_test_images):
    out = tmp_path / "h.onnx"
    report = ex.export_onnx(str(w16_folder), out, fp16=True, verify_images=cifar_test_images[0][:100])
    print(report.summary())
    real = [c for c in report.checks if c["inputs"] == "real images"]
    assert report.passed and real and all(c["top1_agree"] >= 0.99 for c in real)
    assert "float16" in ort.InferenceSession(str(out)).get_inputs()[0].type
    assert out.stat().st_size < (tmp_path / "h.onnx").stat().st_size * 2


def test_fixed_batch_export(w16_folder, tmp_path):
    out = tmp_path / "b4.onnx"
    ex.export_onnx(str(w16_folder), out, batch_size=4, verify_images=[str(p) for p in sample_images()])
    assert ort.InferenceSession(str(out)).get_inputs()[0].shape[0] == 4


def test_failed_verification_leaves_no_file(w16_folder, tmp_path):
    out = tmp_path / "bad.onnx"
    with pytest.raises(ex.VerificationFailed, match="(?s)did not pass verification.*FAILED"):
        ex.export_onnx(str(w16_folder), out, atol=-1.0, rtol=0.0)  # an impossible bound: the check must fail
    assert list(tmp_path.iterdir()) == []


def test_output_must_be_onnx(w16_folder, tmp_path):
    with pytest.raises(ex.ExportError, match="ending in .onnx"):
        ex.export_onnx(str(w16_folder), tmp_path / "m.bin")
