"""The weights format, Hub-cache and folder loading (real huggingface_hub code, no network), and
conversion of checkpoints in the authors' released layout."""

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
import torch.nn as nn
import torch.nn.functional as F

from glmc_zoo import __version__
from glmc_zoo.convert import convert_checkpoint
from glmc_zoo.errors import CheckpointError, ModelLoadError, PushError
from glmc_zoo.hub import create_model, save_pretrained
from glmc_zoo.inference import Preprocess, load_image
from glmc_zoo.push import push_folder
from glmc_zoo.registry import WeightSet, read_config


def _trained_like(arch="glmc_resnet32_w16", num_classes=10, seed=0):
    torch.manual_seed(seed)
    model = timm.create_model(arch, num_classes=num_classes)
    with torch.no_grad():  # non-trivial BN statistics, as after training
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    return model.eval()


def _real_batch(paths, size=32, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25)):
    pre = Preprocess((3, size, size), mean, std, 1.0 if size == 32 else 0.875)
    return torch.from_numpy(np.stack([pre(load_image(p)) for p in paths]))


def test_save_load_round_trip_identical_logits(tmp_path, cifar_test_images):
    model = _trained_like()
    out = save_pretrained(model, tmp_path / "w", WeightSet.local(model.pretrained_cfg, metrics=dict(top1=12.5),
                                                                  metrics_kind="measured"))
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    cfg = read_config(out)
    assert cfg["architecture"] == "glmc_resnet32_w16" and cfg["glmc"]["metrics"]["top1"] == 12.5
    assert WeightSet.from_folder(out).metrics == dict(top1=12.5) and cfg["glmc"]["metrics_kind"] == "measured"
    assert len(cfg["label_names"]) == 10
    card = (out / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: timm") and "license: mit" in card and "bibtex" in card
    x = _real_batch(cifar_test_images[0][:16])
    for ref in (f"local-dir:{out}", str(out)):
        loaded = create_model(ref)
        assert torch.equal(loaded(x), model(x))
    assert torch.equal(timm.create_model(f"local-dir:{out}", pretrained=True).eval()(x), model(x))


def test_weight_metadata_round_trips_through_the_glmc_block(tmp_path):
    """`WeightSet` writes the `glmc` block and reads back every field it wrote; the card is made from it."""
    model = _trained_like()
    ws = WeightSet.local(model.pretrained_cfg, metrics=dict(top1=61.25, many=70.0, medium=50.5), metrics_kind="measured",
                         metrics_source="final epoch (3)", per_class={c: 61.0 for c in model.pretrained_cfg["label_names"]},
                         plain_head=dict(top1=55.5), class_counts=(500, 300, 180, 108, 65, 39, 23, 14, 8, 5),
                         recipe="main.py --dataset cifar10", trained_by="glmc-zoo",
                         provenance=dict(command="glmc-zoo train -c x", dataset="cifar10", best_epoch=None))
    back = WeightSet.from_folder(save_pretrained(model, tmp_path / "w", ws))
    for key in ("metrics", "metrics_kind", "metrics_source", "per_class", "plain_head", "class_counts", "recipe",
                "trained_by"):
        assert getattr(back, key) == getattr(ws, key), key
    assert back.provenance.pop("glmc_zoo_version") == __version__ and back.provenance == ws.provenance
    assert back.name == "glmc_resnet32_w16" and back.availability == "local" and back.labels[3] == "cat"
    card = (tmp_path / "w" / "README.md").read_text()
    assert "## Measured accuracy" in card and "| cat | 108 | 61.00 |" in card and "plain head `fc`" in card


#: A weights folder's `glmc` block as glmc-zoo 0.1 / 0.2 wrote it: a training run's (metrics under "measured",
#: the per-class numbers as measured_per_class, a MaxNorm stage's first stage), and a converted release's.
_BLOCK_0_2 = dict(measured=dict(top1=79.68, many=78.84, medium=83.05), metrics_note="Measured at the final epoch (2)",
                  measured_per_class=dict(airplane=78.0), measured_plain_head=dict(top1=71.04), class_counts=[5, 3],
                  recipe="main.py", trained_by="glmc-zoo", command="glmc-zoo train -c a", glmc_zoo_version="0.2.0",
                  first_stage=dict(init="glmc_resnet32_w16.x", measured=dict(top1=79.7), command="glmc-zoo train -c b"))
_BLOCK_0_1_CONVERTED = dict(converted_from="ckpt.pth.tar", reported=dict(top1=57.97),
                            reported_source="GLMC authors' README", glmc_zoo_version="0.1.0")


def _with_block(tmp_path, name, block):
    folder = save_pretrained(_trained_like(), tmp_path / name)
    cfg = read_config(folder)
    (folder / "config.json").write_text(json.dumps(dict(cfg, glmc=block)))
    return folder


def test_folders_written_by_earlier_releases_are_read(tmp_path):
    from glmc_zoo.card import model_card

    old = WeightSet.from_folder(_with_block(tmp_path, "run", _BLOCK_0_2))
    assert old.metrics == _BLOCK_0_2["measured"] and old.metrics_kind == "measured"
    assert old.metrics_source == "Measured at the final epoch (2)" and old.per_class == dict(airplane=78.0)
    assert old.plain_head == dict(top1=71.04) and old.class_counts == (5, 3) and old.trained_by == "glmc-zoo"
    assert old.provenance["first_stage"] == dict(init="glmc_resnet32_w16.x", metrics=dict(top1=79.7),
                                                 metrics_kind="measured", command="glmc-zoo train -c b")
    assert not {"measured", "metrics_note", "measured_per_class", "measured_plain_head"} & set(old.provenance)
    card = model_card(old)
    assert "## Measured accuracy" in card and "| airplane | 5 | 78.00 |" in card and "measured top-1 79.70" in card
    conv = WeightSet.from_folder(_with_block(tmp_path, "conv", _BLOCK_0_1_CONVERTED))
    assert conv.metrics == dict(top1=57.97) and conv.metrics_kind == "reported"
    assert conv.metrics_source == "GLMC authors' README" and conv.provenance["converted_from"] == "ckpt.pth.tar"
    assert "## Reported accuracy" in model_card(conv)
    # re-saved by this release: the block is in this release's format, the numbers unchanged
    again = WeightSet.from_folder(save_pretrained(create_model(str(tmp_path / "run")), tmp_path / "again", old))
    block = read_config(tmp_path / "again")["glmc"]
    assert again.metrics == old.metrics and block["metrics"] == old.metrics and "measured" not in block
    assert create_model(str(tmp_path / "run")).num_classes == 10  # the weights load whatever the block's format


@pytest.mark.parametrize("block, says", [
    ([1, 2], '"glmc" is a list, not an object'),
    (dict(metrics="high", metrics_kind="measured"), "glmc.metrics is 'high', not an object of finite numbers"),
    (dict(metrics=dict(top1=True), metrics_kind="measured"), "not an object of finite numbers"),
    (dict(metrics=dict(top1=float("inf")), metrics_kind="measured"), "Infinity is not a JSON number"),  # read as JSON
    (dict(metrics=dict(top1=50.0)), "glmc.metrics without glmc.metrics_kind"),
    (dict(metrics=dict(top1=50.0), metrics_kind="guessed"), "glmc.metrics_kind is 'guessed', not one of"),
    (dict(class_counts=[5, -1]), "glmc.class_counts is [5, -1], not a list of image counts"),
    (dict(per_class=[1.0]), "glmc.per_class is [1.0], not an object"),
    (dict(per_class=dict(cat="x")), "glmc.per_class is {'cat': 'x'}, not an object of finite numbers (or null)"),
    (dict(plain_head=dict(top1=None)), "glmc.plain_head is {'top1': None}, not an object of finite numbers"),
])
def test_a_damaged_glmc_block_is_named(tmp_path, block, says):
    folder = _with_block(tmp_path, "w", block)
    with pytest.raises(ModelLoadError, match="config.json") as e:
        WeightSet.from_folder(folder)
    assert says in str(e.value) and "Restore the file" in str(e.value)
    from typer.testing import CliRunner

    from glmc_zoo.cli import app

    r = CliRunner().invoke(app, ["info", str(folder)])
    assert r.exit_code == 2 and says in r.output and "Traceback" not in r.output


@pytest.mark.parametrize("change, says", [
    (dict(pretrained_cfg=[1, 2]), '"pretrained_cfg" is a list, not an object'),
    (dict(architecture=5), 'no "architecture" (the timm model name'),
    (dict(architecture=None), 'no "architecture" (the timm model name'),
    (dict(pretrained_cfg=dict(tag=["x"])), "pretrained_cfg.tag is ['x'], not a name"),
    (dict(label_names="cat"), '"label_names" must be a list of class names'),
])
def test_a_damaged_config_is_named_the_same_when_read_and_when_loaded(tmp_path, change, says):
    folder = save_pretrained(_trained_like(), tmp_path / "w")
    (folder / "config.json").write_text(json.dumps(dict(read_config(folder), **change)))
    for read in (WeightSet.from_folder, create_model):
        with pytest.raises(ModelLoadError, match="config.json") as e:
            read(folder)
        assert says in str(e.value), (read, str(e.value))


def test_missing_files_are_named(tmp_path):
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "config.json").write_text("{}")
    with pytest.raises(ModelLoadError, match="missing model.safetensors"):
        create_model(f"local-dir:{tmp_path / 'w'}")
    with pytest.raises(ModelLoadError, match="unknown model 'glmc_resnet33'.*Did you mean"):
        create_model("glmc_resnet33")
    # a known architecture with a tag it does not have (timm says only "Invalid pretrained tag"): its sets are named
    with pytest.raises(ModelLoadError, match=r"unknown model 'glmc_resnet32_w16.cifar10_lt_if10': glmc_resnet32_w16 has "
                       r"no weight set tagged 'cifar10_lt_if10'\. Did you mean [^?]*glmc_resnet32_w16.cifar10_lt_if10_e200_jpeg"):
        create_model("glmc_resnet32_w16.cifar10_lt_if10")
    with pytest.raises(ModelLoadError, match="glmc_resnet50 has no weight set tagged 'x'.*It has no weight sets"):
        create_model("glmc_resnet50.x")


def _populate_hf_cache(cache: Path, repo_id: str, folder: Path, files=("config.json", "model.safetensors")):
    """The on-disk layout huggingface_hub itself writes: refs/main -> snapshots/<commit>/files."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    commit = "0123456789abcdef0123456789abcdef01234567"
    snap = repo / "snapshots" / commit
    snap.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    for f in files:
        (snap / f).write_bytes((folder / f).read_bytes())


_LOAD_SNIPPET = """
import sys, torch, glmc_zoo, numpy as np
from glmc_zoo.errors import ModelLoadError
from glmc_zoo.hub import create_model
try:
    m = create_model(sys.argv[1])
except ModelLoadError as e:
    print("ERROR", e); sys.exit(3)
torch.manual_seed(0)
print(repr(m(torch.randn(2, 3, 32, 32)).sum().item()))
"""


def _run_offline(ref, cache):
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(cache), HF_HOME=str(cache.parent / "hfhome"))
    return subprocess.run([sys.executable, "-c", _LOAD_SNIPPET, ref], env=env, capture_output=True, text=True,
                          timeout=300)


def test_offline_hub_cache_loading(tmp_path):
    model = _trained_like()
    folder = save_pretrained(model, tmp_path / "w")
    cache = tmp_path / "hub"
    _populate_hf_cache(cache, "glmc-zoo/test-model", folder)
    r = _run_offline("hf-hub:glmc-zoo/test-model", cache)
    assert r.returncode == 0, r.stderr
    torch.manual_seed(0)
    expected = model(torch.randn(2, 3, 32, 32)).sum().item()
    assert abs(float(r.stdout.strip().splitlines()[-1]) - expected) < 1e-5


def test_offline_missing_weights_says_which_file_and_how(tmp_path):
    folder = save_pretrained(_trained_like(), tmp_path / "w")
    cache = tmp_path / "hub"
    _populate_hf_cache(cache, "glmc-zoo/partial", folder, files=("config.json",))
    r = _run_offline("hf-hub:glmc-zoo/partial", cache)
    assert r.returncode == 3, r.stderr
    assert "not in the local Hugging Face cache" in r.stdout and "hf download glmc-zoo/partial" in r.stdout
    assert "HF_HUB_OFFLINE is set" in r.stdout  # _run_offline sets it: the hint says to unset it
    assert "model.safetensors" in r.stdout or "pytorch_model.bin" in r.stdout


def test_damaged_weights_folders_are_named_in_one_line(tmp_path):
    import shutil

    good = save_pretrained(_trained_like(), tmp_path / "good")
    cfg = read_config(good)

    def damaged(name, config=None, weights=None):
        folder = tmp_path / name
        shutil.copytree(good, folder)
        if config is not None:
            (folder / "config.json").write_text(config)
        if weights is not None:
            (folder / "model.safetensors").write_bytes(weights)
        return folder

    head = (good / "model.safetensors").read_bytes()[:1000]
    cases = {
        "truncated": (dict(weights=head), "model.safetensors: not a readable safetensors file"),
        "not_json": (dict(config="{nope"), "config.json: not valid JSON"),
        "a_list": (dict(config="[1, 2]"), "config.json: holds a list"),
        "no_arch": (dict(config="{}"), 'config.json: no "architecture"'),
        "wrong_arch": (dict(config=json.dumps(dict(cfg, architecture="glmc_resnet32"))),
                       "the weights do not fit the architecture its config names: 158 tensors differ in shape"),
    }
    for name, (damage, message) in cases.items():
        with pytest.raises(ModelLoadError, match=message) as e:
            create_model(str(damaged(name, **damage)))
        assert "\n" not in str(e.value), name  # one line, however many tensors torch lists
    # a damaged file in the Hub cache is named too
    cache = tmp_path / "hub"
    _populate_hf_cache(cache, "glmc-zoo/damaged", damaged("for_cache", weights=head))
    r = _run_offline("hf-hub:glmc-zoo/damaged", cache)
    assert r.returncode == 3 and "hf-hub:glmc-zoo/damaged: " in r.stdout, r.stderr


# --- the authors' layout, built independently from the reference facts --------------------------


class _RefBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.option_a = stride != 1 or cin != cout
        self.pad = cout // 4

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        sc = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad), "constant", 0) if self.option_a else x
        return F.relu(out + sc)


class _RefResNet32(nn.Module):
    """The released CIFAR ResNet-32 (widths 64/128/256, option A, functional ReLUs)."""

    def __init__(self, num_classes):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        cin, layers = 64, []
        for w, s in ((64, 1), (128, 2), (256, 2)):
            blocks = []
            for b in range(5):
                blocks.append(_RefBlock(cin, w, s if b == 0 else 1))
                cin = w
            layers.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = layers
        self.fc = nn.Linear(256, num_classes)
        self.fc_cb = nn.Linear(256, num_classes)
        self.projection_head = nn.Sequential(nn.Linear(256, 128))
        self.contrast_head = nn.Sequential(nn.Linear(128, 128))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.avg_pool2d(out, out.size()[3]).view(out.size(0), -1)
        return self.fc_cb(out)


class _RefResNeXt(nn.Module):
    """torchvision's resnext50_32x4d plus GLMC's heads, as released for ImageNet-LT / iNat."""

    def __init__(self, num_classes):
        super().__init__()
        import torchvision

        tv = torchvision.models.resnext50_32x4d(num_classes=num_classes)
        for name, mod in tv.named_children():
            setattr(self, name, mod)
        self.fc_cb = nn.Linear(2048, num_classes)
        self.projection_head = nn.Sequential(nn.Linear(2048, 256))
        self.contrast_head = nn.Sequential(nn.Linear(256, 256))

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc_cb(torch.flatten(self.avgpool(x), 1))


def _randomize_bn(model):
    torch.manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    return model.eval()


@pytest.mark.parametrize("ref_cls,arch,num_classes,size,data_parallel", [
    (_RefResNet32, "glmc_resnet32", 100, 32, True),
    (_RefResNeXt, "glmc_resnext50_32x4d", 10, 96, False),
])
def test_released_checkpoint_conversion_parity(tmp_path, cifar_test_images, ref_cls, arch, num_classes, size,
                                               data_parallel):
    torch.manual_seed(0)
    ref = _randomize_bn(ref_cls(num_classes))
    sd = ref.state_dict()
    if data_parallel:  # trained without --gpu: DataParallel keys
        sd = {f"module.{k}": v for k, v in sd.items()}
    ckpt = tmp_path / "ckpt.pth.tar"
    torch.save({"epoch": 199, "state_dict": sd, "best_acc1": torch.tensor(57.97)}, ckpt)
    out = convert_checkpoint(ckpt, arch, num_classes, tmp_path / "converted")
    converted = create_model(f"local-dir:{out}")
    x = _real_batch(cifar_test_images[0][:8], size=size)
    with torch.no_grad():
        diff = (converted(x) - ref(x)).abs().max().item()
    print(f"{arch}: max |logit difference| = {diff:.3e}")
    assert diff <= 1e-5
    assert WeightSet.from_folder(out).provenance["converted_from"] == "ckpt.pth.tar"


def test_bare_state_dict_converts(tmp_path):
    ref = _RefResNet32(10).eval()
    torch.save(ref.state_dict(), tmp_path / "bare.pth")
    out = convert_checkpoint(tmp_path / "bare.pth", "glmc_resnet32", 10, tmp_path / "o", tag="cifar10_lt_if100")
    assert read_config(out)["label_names"][0] == "airplane"


def test_mismatched_checkpoint_lists_every_problem(tmp_path):
    sd = _RefResNet32(10).state_dict()
    sd.pop("fc_cb.bias")
    sd["extra.weight"] = torch.zeros(1)
    torch.save({"state_dict": sd}, tmp_path / "c.pth.tar")
    with pytest.raises(CheckpointError) as e:
        convert_checkpoint(tmp_path / "c.pth.tar", "glmc_resnet32", 100, tmp_path / "o")
    msg = str(e.value)
    assert "missing (1): fc_cb.bias" in msg and "unexpected (1): extra.weight" in msg
    assert "fc.weight: checkpoint (10, 256) vs model (100, 256)" in msg and "--num-classes" in msg
    assert not (tmp_path / "o").exists()


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_code_running_pickle_is_refused_and_not_run(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pth.tar"
    torch.save({"state_dict": {"conv1.weight": torch.zeros(1)}, "payload": _Evil(marker)}, evil)
    with pytest.raises(CheckpointError, match="refused.*Nothing in it was run"):
        convert_checkpoint(evil, "glmc_resnet32", 10, tmp_path / "o")
    assert not marker.exists()
    plain = tmp_path / "plain.pkl"
    plain.write_bytes(pickle.dumps(_Evil(marker)))
    with pytest.raises(CheckpointError):
        convert_checkpoint(plain, "glmc_resnet32", 10, tmp_path / "o")
    assert not marker.exists()


def test_truncated_and_missing_checkpoints(tmp_path):
    good = tmp_path / "g.pth.tar"
    torch.save({"state_dict": _RefResNet32(10).state_dict()}, good)
    bad = tmp_path / "t.pth.tar"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="cannot be read|not a PyTorch"):
        convert_checkpoint(bad, "glmc_resnet32", 10, tmp_path / "o")
    with pytest.raises(CheckpointError, match="no such file"):
        convert_checkpoint(tmp_path / "nope.pth.tar", "glmc_resnet32", 10, tmp_path / "o")


def test_push_validates_and_dry_runs(tmp_path):
    folder = save_pretrained(_trained_like(), tmp_path / "w")
    files, excluded = push_folder(folder, "glmc-zoo/test", dry_run=True)
    assert [f for f, _ in files] == ["README.md", "config.json", "model.safetensors"] and excluded == []
    # issue 47: the dry run is exactly what would be sent; links, hidden files, subfolders and foreign files never are
    secret = tmp_path / "secret.key"
    secret.write_text("do not publish")
    (folder / "notes.txt").symlink_to(secret)
    (folder / "model.onnx").symlink_to(secret)  # a weights folder's file name, but a link out of the folder
    (folder / ".env").write_text("TOKEN=x")
    (folder / "sub").mkdir()
    (folder / "sub" / "config.json").write_text("{}")
    (folder / "train.log").write_text("log")
    files, excluded = push_folder(folder, "glmc-zoo/test", dry_run=True)
    assert [f for f, _ in files] == ["README.md", "config.json", "model.safetensors"]
    reasons = dict(excluded)
    assert set(reasons) == {"notes.txt", "model.onnx", ".env", "sub/", "train.log"}
    assert "a link" in reasons["model.onnx"] and "secret.key" in reasons["model.onnx"] and reasons[".env"] == "hidden"
    from typer.testing import CliRunner

    from glmc_zoo.cli import app

    out = CliRunner().invoke(app, ["push", str(folder), "--repo-id", "glmc-zoo/test", "--dry-run"]).output
    assert "left out model.onnx: a link" in out and "would upload config.json" in out and "secret" not in out.split("left")[0]
    for name in ("notes.txt", "model.onnx", ".env", "train.log"):
        (folder / name).unlink()
    import shutil

    shutil.rmtree(folder / "sub")
    with pytest.raises(PushError, match="expected ORG/NAME"):
        push_folder(folder, "no-slash", dry_run=True)
    (folder / "model.safetensors").unlink()
    with pytest.raises(ModelLoadError, match="missing model.safetensors"):
        push_folder(folder, "glmc-zoo/test", dry_run=True)


def test_save_is_atomic(tmp_path, monkeypatch):
    model = _trained_like()
    target = tmp_path / "w"
    import glmc_zoo.hub as hub

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(hub, "model_card", boom)
    with pytest.raises(KeyboardInterrupt):
        save_pretrained(model, target)
    assert not target.exists() and not list(tmp_path.iterdir())
    json.dumps({})


def test_save_pretrained_over_an_existing_folder_never_loses_the_weights(tmp_path, monkeypatch):
    """A crash while the new folder is moved in leaves the old folder whole (it is renamed aside,
    not deleted, until the new one is in place)."""
    import os

    import glmc_zoo.hub as hub

    target = save_pretrained(_trained_like(), tmp_path / "w")
    before = (target / "model.safetensors").read_bytes()
    real_replace = os.replace
    calls = []

    def crash_on_second_move(src, dst):
        calls.append((src, dst))
        if len(calls) == 2:  # 1: old folder aside, 2: new folder in -> the process "dies" here
            raise OSError("disk full")
        return real_replace(src, dst)

    monkeypatch.setattr(hub.os, "replace", crash_on_second_move)
    with pytest.raises(OSError, match="disk full"):
        save_pretrained(_trained_like(), target)
    monkeypatch.undo()
    assert (target / "model.safetensors").read_bytes() == before  # restored, loadable
    create_model(f"local-dir:{target}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w"]  # no half-written folder left beside it
