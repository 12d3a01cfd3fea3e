"""GLMC on any timm backbone, started from pretrained weights (`glmc_timm`, `--set init=REF`).

No Hub is reachable here: every "pretrained" checkpoint is made in the test in timm's own format (a
`local-dir:` folder written by timm's `save_for_hf`, and a populated Hugging Face cache entry read with
`HF_HUB_OFFLINE=1`), with weights that are not an initialisation, so that a load is told from a fresh model.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import PINNED

from glmc_zoo.errors import ConfigError, TrainError
from glmc_zoo.training.configs import apply_overrides, get_config
from glmc_zoo.training.pretrained import build_model

#: one CNN of each family and a ViT, as small as timm has them (built for 32-px CIFAR images)
BACKBONES = {"resnet10t": {}, "convnext_atto": {}, "vit_tiny_patch16_224": {"img_size": 32}}


def _pretrained_folder(arch: str, root: Path, args: dict | None = None) -> Path:
    """A timm checkpoint of `arch` in timm's own format (config.json + model.safetensors), with weights that
    differ from any fresh initialisation."""
    import timm
    from timm.models import save_for_hf

    torch.manual_seed(123)
    model = timm.create_model(arch, pretrained=False, num_classes=7, **(args or {}))
    with torch.no_grad():
        for v in model.state_dict().values():
            if v.is_floating_point():
                v.add_(torch.randn_like(v) * 0.01)
    out = root / arch
    save_for_hf(model, out, safe_serialization=True)
    return out


def _cfg(**kw):
    base = dict(dataset="imagefolder", model="glmc_timm", epochs=1, batch_size=32, lr=0.01, eval_every=1,
                imbalance_factor=10, max_images_per_class=300, image_size=32, **PINNED)
    return apply_overrides(get_config("cifar10_lt_if100_w16_cpu"), dict(base, **kw))


def _body(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k[len("backbone."):]: v for k, v in model.state_dict().items() if k.startswith("backbone.")}


def test_a_timm_checkpoint_loads_into_the_backbone_bit_for_bit_and_the_heads_are_new(tmp_path):
    from safetensors.torch import load_file

    folder = _pretrained_folder("resnet10t", tmp_path)
    saved = load_file(folder / "model.safetensors")
    made = build_model(_cfg(init=f"local-dir:{folder}"), 10, [str(i) for i in range(10)])
    body = _body(made.model)
    assert set(body) == {k for k in saved if not k.startswith("fc.")}  # every backbone tensor, no classifier
    assert all(torch.equal(body[k], saved[k]) for k in body)
    assert made.model.fc_cb.weight.shape == (10, 512) and made.model.projection_head[0].weight.shape == (256, 512)
    assert "resnet10t backbone" in made.note and "GLMC heads fresh" in made.note
    assert made.mean == (0.485, 0.456, 0.406)  # the backbone's own normalisation, for normalization=auto
    assert made.model_args == dict(backbone="resnet10t", backbone_args={})
    again = build_model(_cfg(init=f"local-dir:{folder}"), 10, [str(i) for i in range(10)])
    assert all(torch.equal(a, b) for a, b in zip(made.model.state_dict().values(), again.model.state_dict().values()))


def test_the_hub_cache_serves_init_offline_and_a_missing_entry_says_how_to_get_it(tmp_path, monkeypatch):
    """A Hugging Face cache entry laid out as `hf download` leaves it (blobs, snapshots, refs), read offline."""
    import hashlib
    import shutil

    folder = _pretrained_folder("resnet10t", tmp_path / "src")
    cache = tmp_path / "hub"
    repo = cache / "models--someone--resnet10t-ft"
    commit = "0123456789abcdef0123456789abcdef01234567"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    for name in ("config.json", "model.safetensors"):
        data = (folder / name).read_bytes()
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.parent.mkdir(exist_ok=True)
        shutil.copyfile(folder / name, blob)
        snap = repo / "snapshots" / commit / name
        snap.parent.mkdir(parents=True, exist_ok=True)
        snap.symlink_to(blob)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    import huggingface_hub.constants as hc

    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(cache))
    from safetensors.torch import load_file

    made = build_model(_cfg(init="someone/resnet10t-ft"), 10, [str(i) for i in range(10)])
    saved = load_file(folder / "model.safetensors")
    assert all(torch.equal(v, saved[k]) for k, v in _body(made.model).items())
    with pytest.raises(TrainError, match=r"not in the local Hugging Face cache.*hf download nobody/nothing"):
        build_model(_cfg(init="hf-hub:nobody/nothing"), 10, [str(i) for i in range(10)])


def test_mismatches_and_unknown_references_are_one_line_errors(tmp_path):
    from safetensors.torch import load_file, save_file

    folder = _pretrained_folder("resnet10t", tmp_path)
    weights = load_file(folder / "model.safetensors")
    weights["layer1.0.conv1.weight"] = weights["layer1.0.conv1.weight"][:, :8].contiguous()  # half its inputs
    save_file(weights, folder / "model.safetensors")
    with pytest.raises(TrainError, match=r"init=local-dir:.*layer1\.0\.conv1\.weight") as e:
        build_model(_cfg(init=f"local-dir:{folder}"), 10, list("abcdefghij"))
    assert "\n" not in str(e.value)
    # a folder holding part of the backbone (issue 47): refused, not trained from mostly random weights
    weights = load_file(_pretrained_folder("resnet10t", tmp_path / "again") / "model.safetensors")
    part = tmp_path / "part"
    shutil.copytree(tmp_path / "again" / "resnet10t", part)
    save_file({k: v for k, v in weights.items() if not k.startswith(("layer3.", "layer4."))}, part / "model.safetensors")
    with pytest.raises(TrainError, match=r"init=local-dir:.*(Missing key|layer3)") as e:
        build_model(_cfg(init=f"local-dir:{part}"), 10, list("abcdefghij"))
    assert "\n" not in str(e.value)
    with pytest.raises(TrainError, match="not a model timm or glmc-zoo knows") as e:
        build_model(_cfg(init="resnet_fifty.a1_in1k"), 10, list("abcdefghij"))
    assert "\n" not in str(e.value)
    with pytest.raises(TrainError, match="not a timm model folder"):
        build_model(_cfg(init=f"local-dir:{tmp_path / 'nowhere'}"), 10, list("abcdefghij"))
    with pytest.raises(ConfigError, match="model=glmc_timm needs a backbone"):
        _cfg(init="")
    with pytest.raises(TrainError, match="backbone='resnet_fifty'.*not a timm architecture.*Did you mean"):
        build_model(_cfg(backbone="resnet_fifty"), 10, list("abcdefghij"))


def test_a_glmc_resnet50_takes_timm_resnet50_weights_by_name(tmp_path):
    """timm's ResNet-50 and GLMC's have the same parameter names: `init` fills glmc_resnet50's backbone."""
    import timm
    from timm.models import save_for_hf

    torch.manual_seed(0)
    pre = timm.create_model("resnet50", num_classes=3)
    save_for_hf(pre, tmp_path / "r50", safe_serialization=True)
    made = build_model(_cfg(model="glmc_resnet50", init=f"local-dir:{tmp_path / 'r50'}"), 10, list("abcdefghij"))
    assert type(made.model).__name__ == "GLMCImageNetResNet" and made.model_args == {}
    ref = pre.state_dict()
    got = made.model.state_dict()
    assert all(torch.equal(got[k], ref[k]) for k in ref if not k.startswith("fc."))


def test_init_from_a_glmc_model_keeps_its_heads_only_for_the_same_classes():
    from glmc_zoo.hub import create_model
    from glmc_zoo.labels import CIFAR10_LABELS

    name = "glmc_resnet32_w16.cifar10_lt_if100_e200_jpeg"
    shipped = create_model(name).state_dict()
    same = build_model(_cfg(model="glmc_resnet32_w16", init=name), 10, list(CIFAR10_LABELS)).model.state_dict()
    assert all(torch.equal(same[k], shipped[k]) for k in shipped)
    other = build_model(_cfg(model="glmc_resnet32_w16", init=name), 4, ["cat", "dog", "ship", "truck"]).model
    got = other.state_dict()
    assert other.fc_cb.weight.shape == (4, 64)
    assert all(torch.equal(got[k], shipped[k]) for k in shipped if not k.startswith(("fc.", "fc_cb.")))


@pytest.mark.parametrize("arch", list(BACKBONES))
def test_timm_model_contract_features_and_intermediates(arch):
    import timm

    import glmc_zoo  # noqa: F401

    args = BACKBONES[arch]
    model = timm.create_model("glmc_timm", backbone=arch, backbone_args=args, num_classes=5).eval()
    x = torch.randn(2, 3, 32, 32)
    out = model.forward_train(x)
    assert out.logits.shape == out.logits_cb.shape == (2, 5) and out.z.shape == out.p.shape == (2, 256)
    assert torch.equal(model(x), out.logits_cb)
    assert model.get_classifier(name_only=True) == "fc_cb" and model.pretrained_cfg["architecture"] == "glmc_timm"
    assert model._model_args["backbone"] == arch
    feats = timm.create_model("glmc_timm", backbone=arch, backbone_args=args, features_only=True, out_indices=(-2, -1))
    maps = feats(x)
    assert len(maps) == 2 and all(m.shape[0] == 2 for m in maps)
    last = model.forward_intermediates(x, indices=1, intermediates_only=True)
    assert len(last) == 1


def test_head_options_reach_the_backbone():
    import timm

    import glmc_zoo  # noqa: F401

    x = torch.randn(2, 3, 32, 32)
    unpooled = timm.create_model("glmc_timm", backbone="resnet10t", num_classes=0, global_pool="")
    out = unpooled(x)
    assert out.ndim == 4 and out.shape[1] == unpooled.num_features == unpooled.head_hidden_size == 512
    groups = timm.create_model("glmc_timm", backbone="resnet10t").group_matcher(coarse=True)
    assert groups["stem"].startswith("^backbone\\.")  # the backbone's groups, under backbone.
    deep = timm.create_model("glmc_timm", backbone="convnext_atto", drop_path_rate=0.1, drop_rate=0.5)
    assert deep.head_drop.p == 0.5  # dropout before GLMC's heads; stochastic depth inside the backbone
    assert any(type(m).__name__ == "DropPath" for m in deep.backbone.modules())
    with pytest.raises(ValueError, match="backbone='not_a_net'.*not a timm architecture"):
        timm.create_model("glmc_timm", backbone="not_a_net")


@pytest.mark.slow
@pytest.mark.parametrize("arch", list(BACKBONES))
def test_a_backbone_trains_from_pretrained_saves_reloads_and_exports(arch, tmp_path, tiny_lt, cifar_test_images):
    """A few real GLMC steps from a pretrained checkpoint on real CIFAR-10 images; the finished run's model
    reloads through timm's `local-dir:` with identical logits, and its ONNX export verifies."""
    import timm

    from glmc_zoo.export.onnx import export_onnx
    from glmc_zoo.training.loop import train

    folder = _pretrained_folder(arch, tmp_path, BACKBONES[arch])
    data = replace(tiny_lt, train=tiny_lt.train.subset(np.arange(64)), train_indices=tiny_lt.train_indices[:64])
    out = tmp_path / "run"
    metrics = train(_cfg(init=f"local-dir:{folder}", channels_last=False), out, device="cpu", progress=False,
                    data=data)
    assert 0 <= metrics["top1"] <= 100
    log = (out / "run.log").read_text()
    assert f"{arch} backbone" in log and "every tensor loaded" in log
    cfg = json.loads((out / "model" / "config.json").read_text())
    assert cfg["architecture"] == "glmc_timm" and cfg["model_args"]["backbone"] == arch
    assert cfg["pretrained_cfg"]["mean"] == list(timm.get_pretrained_cfg(arch).mean)  # the backbone's normalisation

    model = timm.create_model(f"local-dir:{out / 'model'}", pretrained=True).eval()
    trained = torch.load(out / "checkpoint.pt", weights_only=True)["model"]
    assert all(torch.equal(v, trained[k]) for k, v in model.state_dict().items())
    x = torch.randn(3, 3, 32, 32)
    fresh = timm.create_model("glmc_timm", backbone=arch, backbone_args=BACKBONES[arch], num_classes=10).eval()
    fresh.load_state_dict(trained)
    with torch.no_grad():
        assert torch.equal(model(x), fresh(x))
    from glmc_zoo.models.glmc_resnet import record_model_args
    from glmc_zoo.registry import WEIGHTS, WeightSet
    from glmc_zoo.training.bundle import bundle_run

    shipped = bundle_run(out, "glmc_timm.t", data="CIFAR-10", root=tmp_path / "bundled")  # its record carries the backbone
    ws = WeightSet.from_folder(shipped)
    assert ws.model_args == dict(backbone=arch, backbone_args=BACKBONES[arch])
    WEIGHTS["glmc_timm.t"] = ws  # as the registry reads a shipped folder: `glmc_timm.t` builds that backbone
    try:
        assert record_model_args("glmc_timm", dict(pretrained_cfg="t", num_classes=3)) == dict(
            ws.model_args, pretrained_cfg="t", num_classes=3)
        assert record_model_args("glmc_timm", dict(num_classes=3)) == dict(num_classes=3)  # no tag: the plain architecture
    finally:
        del WEIGHTS["glmc_timm.t"]
    report = export_onnx(str(out / "model"), tmp_path / "m.onnx", verify_images=cifar_test_images[0][:32])
    assert report.verified and report.passed and report.compared >= 32, report


@pytest.mark.slow
def test_the_fine_tuning_config_and_the_cli_name_bad_init(tmp_path, cifar_root):
    """A reference that cannot be loaded stops `train` in one line before the data is read or the run folder
    written; offline, the missing Hub model is named with the command that fetches it."""
    import os

    cfg = get_config("imagefolder_finetune")
    assert (cfg.model, cfg.init, cfg.image_size, cfg.normalization) == ("glmc_timm", "timm/resnet50.a1_in1k", 224, "auto")
    assert "Kornblith" in cfg.reference
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "empty_hf"))
    for init, says in (("resnet_fifty.x", "not a model timm or glmc-zoo knows"),
                       ("timm/resnet50.a1_in1k", "not in the local Hugging Face cache.*hf download timm/resnet50.a1_in1k")):
        out = tmp_path / init.replace("/", "_")
        r = subprocess.run([sys.executable, "-m", "glmc_zoo.cli", "train", "--config", "imagefolder_finetune",
                            "--data-root", str(cifar_root), "--output", str(out), "--set", f"init={init}",
                            "--no-progress"], capture_output=True, text=True, timeout=300, env=env)
        assert r.returncode == 2 and "Traceback" not in r.stderr and f"init={init}" in r.stderr, r.stderr[-2000:]
        import re

        assert re.search(says, r.stderr), r.stderr[-2000:]
        assert not (out / "config.json").exists() and not (out / "split.json").exists()  # nothing written


def test_a_file_run_evaluates_with_the_preprocessing_predict_uses(tmp_path, cifar_root):
    """Image files (> 64 px): the run evaluates with its model's own crop and interpolation (a timm ResNet's
    0.875 and bicubic here, from its pretrained config), the saved model carries them, and `eval` of the saved
    model gives the run's final numbers."""
    from PIL import Image

    from glmc_zoo.evaluation import evaluate_model
    from glmc_zoo.inference import Predictor
    from glmc_zoo.training.batches import Batcher, eval_preprocessing
    from glmc_zoo.training.data import load_image_folder
    from glmc_zoo.training.loop import train

    root = tmp_path / "photos"
    for name in ("airplane", "cat", "ship"):
        for split, n in (("train", 12), ("test", 6)):
            (root / split / name).mkdir(parents=True)
            for i, f in enumerate(sorted((cifar_root / split / name).glob("*.jpg"))[:n]):
                Image.open(f).resize((96, 80), Image.BICUBIC).save(root / split / name / f"{i}.jpg")
    folder = _pretrained_folder("resnet10t", tmp_path)
    cfg = apply_overrides(get_config("imagefolder_finetune"), dict(
        data_root=str(root), init=f"local-dir:{folder}", image_size=64, epochs=1, batch_size=12, workers=0,
        **PINNED))
    metrics = train(cfg, tmp_path / "run", device="cpu", progress=False)
    saved = json.loads((tmp_path / "run" / "model" / "config.json").read_text())["pretrained_cfg"]
    assert (saved["crop_pct"], saved["interpolation"]) == (0.875, "bicubic")
    predictor = Predictor(str(tmp_path / "run" / "model"), backend="torch")
    data = load_image_folder(root, 64, mean=tuple(saved["mean"]), std=tuple(saved["std"]))
    batcher = Batcher(data, 64, 0, torch.device("cpu"), eval_cfg=eval_preprocessing(saved, data))
    assert batcher.test_ds.transform.pre == predictor.preprocess  # one preprocessing, field by field
    again = evaluate_model(str(tmp_path / "run" / "model"), root, device="cpu")
    assert again["n"] == metrics["n"] == 18 and again["top1"] == metrics["top1"]
    assert again["per_class"] == metrics["per_class"]
