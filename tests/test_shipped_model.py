"""The model this project trained and ships in the package: `glmc_zoo.inference.DEFAULT_MODEL`."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import glmc_zoo
from glmc_zoo.inference import DEFAULT_MODEL, Predictor, bundled_onnx

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
# The card's top-1 is measured on the full 10,000-image test set; the first 100 test JPEGs of every class
# (1,000 images) must come within this many points of it (binomial std. error at 1,000 images <= 1.6 points).
SUBSET_MARGIN = 5.0


def test_default_model_is_the_shipped_one():
    ws = glmc_zoo.get_weights(DEFAULT_MODEL)
    assert ws.availability == "bundled" and ws.loadable and ws.trained_by == "glmc-zoo"
    assert ws.metrics_kind == "measured" and set(ws.metrics) >= {"top1", "many", "medium"}  # IF 100: no class <= 20
    assert ws.labels[3] == "cat" and ws.preprocessing["input_size"] == (3, 32, 32) and sum(ws.class_counts) == 12406
    import timm

    model = timm.create_model(DEFAULT_MODEL, pretrained=True)
    assert "file" not in model.pretrained_cfg  # no path of this installation in the model's config
    p = Predictor()
    assert p.backend.model_name == DEFAULT_MODEL and p.labels[3] == "cat"


def test_loads_offline_with_no_cache(tmp_path):
    code = ("import glmc_zoo, timm, torch\n"
            f"m = timm.create_model({DEFAULT_MODEL!r}, pretrained=True).eval()\n"
            "torch.manual_seed(0); print(float(m(torch.randn(2, 3, 32, 32)).abs().sum()))\n")
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"), HF_HUB_CACHE=str(tmp_path / "hf" / "hub"))
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert float(r.stdout.strip()) > 0 and not (tmp_path / "hf" / "hub").exists()


def test_accuracy_on_a_fixed_real_subset(cifar_root):
    from glmc_zoo.evaluation import evaluate_model

    m = evaluate_model(DEFAULT_MODEL, cifar_root, per_class_limit=100)
    card_top1 = glmc_zoo.get_weights(DEFAULT_MODEL).metrics["top1"]
    print(json.dumps({k: m[k] for k in ("top1", "many", "medium", "few")}), "card top-1", card_top1)
    assert m["n"] == 1000
    assert abs(m["top1"] - card_top1) <= SUBSET_MARGIN


@pytest.mark.slow
def test_onnx_export_of_the_shipped_model_verifies(tmp_path, cifar_test_images):
    from glmc_zoo.export.onnx import export_onnx

    for fp16 in (False, True):
        report = export_onnx(DEFAULT_MODEL, tmp_path / f"m{int(fp16)}.onnx", fp16=fp16,
                             verify_images=cifar_test_images[0])
        print(report.summary())
        assert report.passed


def test_cli_default_predicts_the_example_cat():
    exe = Path(sys.executable).with_name("glmc-zoo")
    r = subprocess.run([str(exe), "predict", str(EXAMPLES / "cat.jpg"), "--format", "json"], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    # The 200-epoch model (79.7% top-1, cat 69.3%: see its card) puts "cat" first on this photo, at 0.645.
    assert out[0]["predictions"][0]["label"] == "cat" and out[0]["predictions"][0]["score"] > 0.5
    assert np.isclose(sum(p["score"] for p in out[0]["predictions"]), 1.0, atol=0.2)


SHIPPED = [w.name for w in glmc_zoo.weight_sets() if w.availability == "bundled"]  # every folder in glmc_zoo/weights/


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_set_is_measured_and_its_onnx_is_its_export(name, cifar_test_images):
    """Each folder in glmc_zoo/weights/ (not only the default): a card measured by this project, the weights
    its .onnx was exported from (by hash), and the same top-1 class on both backends for 200 real test JPEGs."""
    import hashlib

    import onnxruntime as ort

    ws = glmc_zoo.get_weights(name)
    assert ws.availability == "bundled" and ws.trained_by == "glmc-zoo" and ws.metrics_kind == "measured"
    assert 0 < ws.metrics["top1"] <= 100 and len(ws.per_class) == len(ws.labels) == len(ws.class_counts)
    onnx = bundled_onnx(name)
    meta = ort.InferenceSession(str(onnx)).get_modelmeta().custom_metadata_map["glmc_zoo"]
    sha = hashlib.sha256(onnx.with_name("model.safetensors").read_bytes()).hexdigest()
    assert json.loads(meta)["weights_sha256"] == sha, f"re-export {name}/model.onnx from its weights"
    paths = cifar_test_images[0]
    top = [[r.predictions[0]["index"] for r in Predictor(m, backend=b).predict(paths, top_k=1)]
           for m, b in ((str(onnx), "onnx"), (name, "torch"))]
    assert top[0] == top[1]
    top1 = 100 * float(np.mean(np.asarray(top[0]) == np.asarray(cifar_test_images[1])))
    print(f"{name}: top-1 {top1:.1f}% on 200 test JPEGs (card: {ws.metrics['top1']})")
    assert abs(top1 - ws.metrics["top1"]) <= 12  # 200 images: binomial std. error <= 3.5 points


def test_the_python_api_names_the_closest_tags_and_gives_the_transform_as_a_callable():
    """Issue 46: as helpful as the CLI. timm's own error is "Invalid pretrained tag"; ours names the tags."""
    import numpy as np
    import timm
    import torch
    from PIL import Image
    from timm.data import create_transform, resolve_data_config

    from glmc_zoo.errors import UnknownModelError

    arch = DEFAULT_MODEL.partition(".")[0]
    with pytest.raises(UnknownModelError, match=f"{arch} has no weight set tagged 'cifar10_lt_if10'.*Did you mean"):
        timm.create_model(f"{arch}.cifar10_lt_if10", pretrained=True)
    with pytest.raises(UnknownModelError, match="unknown model 'resnet32'. Did you mean glmc_resnet32"):
        glmc_zoo.get_weights("resnet32")
    with pytest.raises(UnknownModelError) as e:
        glmc_zoo.get_weights(f"{arch}.cifar10_lt_if100")
    assert "withdrawn" not in str(e.value) and "cifar10_lt_if100_jpeg" not in str(e.value)  # never offers a withdrawn set
    ws = glmc_zoo.get_weights(DEFAULT_MODEL)
    tf = ws.transforms()
    img = Image.open(Path(__file__).resolve().parents[1] / "examples" / "cat.jpg").convert("RGB")
    model = timm.create_model(DEFAULT_MODEL, pretrained=True).eval()
    want = create_transform(**resolve_data_config({}, model=model))(img).numpy()
    assert tf(img).shape == want.shape and np.abs(tf(img) - want).max() < 0.02  # timm's eval transform (resampling)
    with torch.no_grad():
        assert model(torch.from_numpy(tf(img))[None]).argmax().item() == model(torch.from_numpy(want)[None]).argmax().item()


def test_a_weight_set_on_a_timm_backbone_builds_its_backbone_and_never_becomes_glmc_timms_default():
    import timm

    from glmc_zoo.registry import weight_sets

    on_backbones = [w.name for w in weight_sets() if w.arch == "glmc_timm" and w.availability == "bundled"]
    if not on_backbones:
        pytest.skip("no glmc_timm weight set is shipped")
    for name in on_backbones:
        ws = glmc_zoo.get_weights(name)
        model = timm.create_model(name, pretrained=True)
        assert name in timm.list_pretrained("glmc*")
        assert model.backbone.pretrained_cfg["architecture"] == ws.model_args["backbone"]
        assert model.upsample_to == ws.model_args.get("upsample_to", 0)
    fresh = timm.create_model("glmc_timm", backbone="resnet10t", num_classes=3)  # the bare architecture, as before
    assert fresh.pretrained_cfg.get("tag") in (None, "") and fresh.upsample_to == 0
    assert glmc_zoo.get_weights("glmc_timm").availability == "none"
