"""GLMC training on the real CIFAR-10 JPEGs: accuracy well above chance, exact resume, configs, data paths.
"""

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import PINNED

from glmc_zoo.errors import ConfigError, TrainError
from glmc_zoo.training.configs import apply_overrides, get_config, list_configs
from glmc_zoo.training.data import load_image_folder
from glmc_zoo.training.loop import train

ROOT = Path(__file__).resolve().parents[1]


#: The CIFAR ResNet at depth 8 (one block per stage): the ResNet-32's stem, widths, blocks, heads and loss at a
#: fifth of its compute, for the tests whose assertions (exactness, files) do not depend on depth.
RESNET8 = '{"blocks_per_stage": 1}'


def _cfg(**kw):
    base = dict(epochs=8, batch_size=32, lr=0.02, eval_every=4, imbalance_factor=10, max_images_per_class=300, **PINNED)
    return apply_overrides(get_config("cifar10_lt_if100_w16_cpu"), dict(base, **kw))


@pytest.mark.slow
def test_resume_equals_an_uninterrupted_run(tmp_path, tiny_lt):
    # 204 images, 13 steps an epoch, the depth-8 CIFAR ResNet (same blocks, heads and loss): exactness needs no more
    cfg = _cfg(epochs=2, eval_every=2, batch_size=16, model_args=RESNET8)
    full = train(cfg, tmp_path / "a", device="cpu", progress=False, data=tiny_lt)
    stopped = train(cfg, tmp_path / "b", device="cpu", progress=False, data=tiny_lt,
                    should_stop=lambda e, s: (e, s) == (0, 4))
    assert stopped == dict(interrupted=True, epoch=0, step=5)
    resumed = train(cfg, tmp_path / "b2", device="cpu", progress=False, data=tiny_lt, resume=tmp_path / "b")
    log = lambda d: [json.loads(x) for x in (d / "train_log.jsonl").read_text().splitlines()]  # noqa: E731
    for a, b in zip(log(tmp_path / "a"), log(tmp_path / "b2"), strict=True):
        for k in ("loss", "bal", "rebal", "sim"):
            assert abs(a[k] - b[k]) <= 1e-6, (k, a[k], b[k])
    sa = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=True)["model"]
    sb = torch.load(tmp_path / "b2" / "checkpoint.pt", weights_only=True)["model"]
    assert all(torch.allclose(sa[k].float(), sb[k].float(), atol=1e-6) for k in sa)
    assert full["top1"] == resumed["top1"]

    # a planned stop (`--stop-after 1`): evaluated and resumable, on the same schedule as the full run
    first = train(cfg, tmp_path / "c", device="cpu", progress=False, data=tiny_lt, stop_after=1,
                  command="glmc-zoo train START")
    assert first["stopped_after"] == 1 and 0 <= first["top1"] <= 100 and "fc_top1" in first
    assert [json.loads(x)["epoch"] for x in (tmp_path / "c" / "metrics.jsonl").read_text().splitlines()] == [1]
    assert not (tmp_path / "c" / "model").exists() and "stopped after epoch 1 of 2" in (tmp_path / "c" / "run.log").read_text()
    from glmc_zoo.training.report import run_report

    text = run_report(tmp_path / "c")  # a run in progress: its latest evaluation, not labelled final
    assert "in progress: 1 of 2 epochs complete" in text and "(final)" not in text
    assert "| 1 | " in text and "fc_cb at epoch 1 (latest)" in text
    with pytest.raises(TrainError, match="stop-after 1: give an epoch after the 1 already complete"):
        train(cfg, tmp_path / "c", device="cpu", progress=False, data=tiny_lt, resume=tmp_path / "c", stop_after=1)
    second = train(cfg, tmp_path / "c", device="cpu", progress=False, data=tiny_lt, resume=tmp_path / "c",
                   command="glmc-zoo train START --resume c")
    # the model's card names the command that repeats the run (its start); the resume is in run.log
    assert json.loads((tmp_path / "c" / "model" / "config.json").read_text())["glmc"]["command"] == "glmc-zoo train START"
    assert "resumed at epoch 2, step 0: glmc-zoo train START --resume c" in (tmp_path / "c" / "run.log").read_text()
    sc = torch.load(tmp_path / "c" / "checkpoint.pt", weights_only=True)["model"]
    assert all(torch.allclose(sa[k].float(), sc[k].float(), atol=1e-6) for k in sa)
    assert second["top1"] == full["top1"]

    # a clone of a finished run has its checkpoint but not model/ (ignored by git): a resume makes it again,
    # from the final checkpoint, without training or logging a second final evaluation
    import shutil

    shutil.rmtree(tmp_path / "c" / "model")
    again = train(cfg, tmp_path / "c", device="cpu", progress=False, data=tiny_lt, resume=tmp_path / "c",
                  command="glmc-zoo train START --resume c")
    assert again["top1"] == full["top1"] and (tmp_path / "c" / "model" / "model.safetensors").is_file()
    assert "resumed at epoch 2 of 2, its end" in (tmp_path / "c" / "run.log").read_text()
    assert [json.loads(x)["epoch"] for x in (tmp_path / "c" / "metrics.jsonl").read_text().splitlines()] == [1, 2]
    assert len((tmp_path / "c" / "train_log.jsonl").read_text().splitlines()) == 2


def test_training_time_names_an_epoch_that_shared_the_machine(tmp_path):
    """The total is the sum of the logged epochs (a repeated epoch counted once); when an epoch took far longer
    than the median (paused, or the cores shared), the text says so rather than passing the sum off as the pace."""
    from glmc_zoo.training.report import time_text

    def log(seconds):
        rows = [dict(epoch=i + 1, images=1000, seconds=s) for i, s in enumerate(seconds)]
        (tmp_path / "train_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        return time_text(tmp_path)

    assert log([100, 110, 120, 100]) == "0.12 h for 4 epochs (median epoch 110 s)"
    assert log([100, 110, 1132, 100]) == ("0.40 h for 4 epochs, counting time the machine was shared "
                                          "(median epoch 110 s, slowest 1132 s)")
    assert log([19, 20]).startswith("39 s for 2 epochs")  # a short run is not "0.01 h"
    assert log([100, 150]).startswith("4.2 min for 2 epochs")


def test_compare_reads_final_or_latest_and_never_the_best(tmp_path):
    """`glmc-zoo report A B`: the finished IF 100 run (its epoch 190 scored 79.96, the final 79.70) and a copy cut
    back to mid-run as a run in progress leaves it (no metrics.json, logs to epoch 57) side by side; and a run that
    changed machines between sessions gives each machine's pace."""
    import shutil

    from PIL import Image
    from typer.testing import CliRunner

    from glmc_zoo.cli import app
    from glmc_zoo.training.report import compare_report, time_text

    done = ROOT / "runs" / "cifar10_lt_if100_w16"
    part = tmp_path / "part"
    shutil.copytree(done, part, ignore=shutil.ignore_patterns("*.png", "model", "checkpoint.pt", "metrics.json"))
    for name, last in (("train_log.jsonl", 57), ("metrics.jsonl", 57)):
        rows = [json.loads(x) for x in (part / name).read_text().splitlines()]
        (part / name).write_text("".join(json.dumps(r) + "\n" for r in rows if r["epoch"] <= last))
    table = compare_report([done, part]).splitlines()
    assert "| 200 (final) | 79.70 | 98.66 | 79.00 | 82.50 | - | 71.04 |" in table[2] and "79.96" not in table[2]
    assert "| 50 (latest; 57/200 epochs done) | 42.41 |" in table[3] and "| 12406 | 100 |" in table[3]
    assert table[2].endswith("| not recorded |")  # logged before glmc-zoo 0.3 named the machine

    rows = [json.loads(x) for x in (part / "train_log.jsonl").read_text().splitlines()]
    for r in rows[30:]:
        r.update(machine="Intel Xeon X, 2 CPU cores (flags: avx2 avx512f amx_bf16)", seconds=r["seconds"] / 2)
    (part / "train_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    text = time_text(part)
    assert "; by machine: median epoch" in text and "over 30 epochs on a machine not recorded" in text
    assert "over 27 epochs on Intel Xeon X, 2 CPU cores (flags: avx2 avx512f amx_bf16)" in text
    assert "| not recorded; Intel Xeon X, 2 CPU cores (flags: avx2 avx512f amx_bf16) |" in compare_report([part])

    r = CliRunner().invoke(app, ["report", str(done), str(part), "--curves", str(tmp_path / "c.png")])
    assert r.exit_code == 0 and "| 200 (final) |" in r.stdout, r.output
    assert Image.open(tmp_path / "c.png").size[0] > 400
    r = CliRunner().invoke(app, ["report", str(done), str(tmp_path)])
    assert r.exit_code == 2 and "not a training run directory" in r.output and "Traceback" not in r.output

    started = tmp_path / "started"  # what `train` has written before its first epoch ends
    started.mkdir()
    for name in ("config.json", "split.json", "command.txt"):
        shutil.copy(done / name, started / name)
    r = CliRunner().invoke(app, ["report", str(done), str(started), "--curves", str(tmp_path / "c2.png")])
    assert r.exit_code == 0 and "| (no evaluation yet; 0/200 epochs) |" in r.stdout, r.output
    assert "in progress: 0 of 200 epochs complete" in CliRunner().invoke(app, ["report", str(started)]).stdout


def test_resume_with_another_config_is_refused(tmp_path, tiny_lt):
    cfg = _cfg(epochs=1)
    train(cfg, tmp_path / "a", device="cpu", progress=False, data=tiny_lt, should_stop=lambda e, s: s == 0)
    with pytest.raises(TrainError, match="different config.*lr"):
        train(replace(cfg, lr=0.1), tmp_path / "b", device="cpu", progress=False, data=tiny_lt, resume=tmp_path / "a")
    with pytest.raises(TrainError, match="no checkpoint"):
        train(cfg, tmp_path / "c", device="cpu", progress=False, data=tiny_lt, resume=tmp_path / "nothing")


def test_named_configs_and_overrides():
    assert {"cifar10_lt_if100", "cifar10_lt_if50", "cifar10_lt_if10", "cifar100_lt_if100", "cifar100_lt_if50",
            "cifar100_lt_if10", "imagenet_lt", "inat2018"} <= set(list_configs())
    c = get_config("cifar100_lt_if50")
    assert (c.resample_weighting, c.label_weighting, c.contrast_weight, c.epochs, c.batch_size) == (0.2, 1.2, 6.0, 200, 64)
    i = get_config("inat2018")
    assert (i.lr, i.weight_decay, i.batch_size, i.epochs, i.model) == (0.1, 1e-4, 128, 120, "glmc_resnext50_32x4d")
    for name, model, size in (("imagefolder_32", "glmc_resnet32_w16", 32), ("imagefolder_224", "glmc_resnext50_32x4d", 224)):
        f = get_config(name)  # your own folder, used as it is
        assert (f.dataset, f.imbalance_factor, f.model, f.image_size) == ("imagefolder", 1.0, model, size)
    o = apply_overrides(c, ["epochs=3", "channels_last=false", "lr=0.5", "schedule=warmup_cosine"])
    assert (o.epochs, o.channels_last, o.lr, o.schedule) == (3, False, 0.5, "warmup_cosine")
    with pytest.raises(ConfigError, match="unknown config key 'epoch'.*Did you mean epochs"):
        apply_overrides(c, ["epoch=3"])
    with pytest.raises(ConfigError, match="expected int"):
        apply_overrides(c, ["epochs=three"])
    with pytest.raises(ConfigError, match="key=value"):
        apply_overrides(c, ["epochs"])
    with pytest.raises(ConfigError, match="Did you mean cifar10_lt_if100"):
        get_config("cifar10_lt_if1000")


@pytest.fixture(scope="module")
def large_image_folder(cifar_root, tmp_path_factory):
    """3 classes x 12 real CIFAR-10 photos upscaled to 96 px: large enough for the file-based
    (ImageNet-style) pipeline, in both an image folder and ImageNet-LT split lists."""
    from PIL import Image

    root = tmp_path_factory.mktemp("large")
    lines = {"train": [], "test": []}
    for c, name in enumerate(["airplane", "cat", "ship"]):
        for split, n in (("train", 12), ("test", 4)):
            (root / split / name).mkdir(parents=True)
            for i, f in enumerate(sorted((cifar_root / split / name).glob("*.jpg"))[:n]):
                Image.open(f).resize((96, 96), Image.BICUBIC).save(root / split / name / f"{i}.jpg")
                lines[split].append(f"{split}/{name}/{i}.jpg {c}")
    (root / "ImageNet_LT_train.txt").write_text("\n".join(lines["train"]) + "\n")
    (root / "ImageNet_LT_test.txt").write_text("\n".join(lines["test"]) + "\n")
    return root


@pytest.mark.parametrize("dataset, workers", [("imagefolder", 1), ("imagenet_lt", 1), ("imagefolder", 0)])
def test_file_based_pipeline_runs(tmp_path, large_image_folder, dataset, workers):
    cfg = apply_overrides(get_config("imagenet_lt"), dict(
        dataset=dataset, data_root=str(large_image_folder), model="glmc_resnet32_w16", image_size=64, epochs=1,
        batch_size=8, workers=workers, imbalance_factor=1.0, max_images_per_class=0, **PINNED))
    metrics = train(cfg, tmp_path / "run", device="cpu", progress=False)
    assert metrics["n"] == 12 and 0.0 <= metrics["top1"] <= 100.0
    log = json.loads((tmp_path / "run" / "train_log.jsonl").read_text())
    assert log["images"] == 36


def _file_cfg(root, **kw):
    return apply_overrides(get_config("imagenet_lt"), dict(dict(
        dataset="imagefolder", data_root=str(root), model="glmc_resnet32_w16", image_size=64, epochs=2, eval_every=5,
        batch_size=8, workers=1, imbalance_factor=1.0, max_images_per_class=0, model_args=RESNET8, **PINNED), **kw))


def test_file_data_augments_the_same_whatever_the_workers_ranks_or_resume_point(large_image_folder):
    """File data's augmentation is a function of (seed, epoch, step, place in the global batch) only."""
    from glmc_zoo.training.batches import Batcher, epoch_plan

    data = load_image_folder(large_image_folder, 64)
    assert not data.in_memory
    plan = epoch_plan(len(data.train), 8, torch.ones(len(data.train)), 3, 0)

    def views(workers=0, first=0, rank=0, world=1):
        b = Batcher(data, 64, workers, torch.device("cpu"), rank, world)
        return [(vu, vr) for vu, vr, _, _ in b.epoch(plan, first, torch.Generator().manual_seed(1), aug_seed=11)]

    ref = views()
    assert not torch.equal(ref[0][0][0][0], ref[0][0][1][0])  # the two views of an image differ
    for other in (views(workers=2), views(first=2)):
        got = ref[-len(other):]
        assert all(torch.equal(a, b) for (x, y) in zip(got, other) for a, b in zip(x[0] + x[1], y[0] + y[1]))
    halves = [views(rank=r, world=2) for r in (0, 1)]
    for s, (h0, h1) in enumerate(zip(*halves)):
        assert torch.equal(torch.cat([h0[0][0], h1[0][0]]), ref[s][0][0])
        assert torch.equal(torch.cat([h0[1][1], h1[1][1]]), ref[s][1][1])


@pytest.mark.slow
def test_a_file_that_breaks_mid_run_stops_with_a_checkpoint_and_resumes_exactly(tmp_path, large_image_folder):
    import shutil

    from glmc_zoo.errors import DataError

    root = tmp_path / "data"
    shutil.copytree(large_image_folder, root)
    full = train(_file_cfg(root), tmp_path / "a", device="cpu", progress=False)
    victim = root / "train" / "cat" / "5.jpg"
    good = victim.read_bytes()
    victim.write_bytes(good[: len(good) * 2 // 3])  # the header reads, the pixels do not: found mid-epoch
    out = tmp_path / "b"
    with pytest.raises(DataError) as e:
        train(_file_cfg(root), out, device="cpu", progress=False)
    msg = str(e.value)
    assert str(victim) in msg and "truncated" in msg and "Traceback" not in msg and "--resume" in msg
    assert msg.startswith("epoch 1, step ") and "Checkpoint saved after step" in msg
    assert "stopped at epoch 1, step" in (out / "run.log").read_text()
    victim.write_bytes(good)
    resumed = train(_file_cfg(root), out, device="cpu", progress=False, resume=out)
    sa = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=True)["model"]
    sb = torch.load(out / "checkpoint.pt", weights_only=True)["model"]
    assert all(torch.allclose(sa[k].float(), sb[k].float(), atol=1e-6) for k in sa)
    assert resumed["top1"] == full["top1"]


@pytest.mark.slow
def test_one_folder_of_classes_trains_with_a_held_out_test_split(tmp_path, cifar_root, large_image_folder):
    """Your own data as one folder of class folders: `holdout` makes a stratified, seeded test split,
    recorded file by file in split.json."""
    import shutil

    from glmc_zoo.errors import DataError

    own = tmp_path / "own"
    for name, n in (("airplane", 30), ("cat", 12), ("ship", 5)):  # already long-tailed, as a user's data is
        (own / name).mkdir(parents=True)
        for f in sorted((cifar_root / "train" / name).glob("*.jpg"))[:n]:
            shutil.copy(f, own / name / f.name)
    with pytest.raises(DataError, match=r"no test split .*--set holdout=0.2"):
        load_image_folder(own, 32)
    data = load_image_folder(own, 32, holdout=0.2, seed=1)
    assert data.class_counts == [24, 10, 4] and np.bincount(data.test.targets).tolist() == [6, 2, 1]
    listed = sorted(str(p.relative_to(own)) for p in own.rglob("*.jpg"))
    assert len(data.test_files) == 9 and set(data.test_files) <= set(listed)
    train_files = {listed[i] for i in data.train_indices}  # positions in the folder's sorted listing
    assert len(train_files) == 38 and not train_files & set(data.test_files)
    assert load_image_folder(own, 32, holdout=0.2, seed=1).test_files == data.test_files  # seeded
    assert load_image_folder(own, 32, holdout=0.2, seed=2).test_files != data.test_files

    cfg = apply_overrides(get_config("imagefolder_32"), dict(  # the config for a folder used as it is
        data_root=str(own), holdout=0.2, epochs=1, batch_size=8, seed=1, **PINNED))
    metrics = train(cfg, tmp_path / "run", device="cpu", progress=False)
    split = json.loads((tmp_path / "run" / "split.json").read_text())
    assert metrics["n"] == 9 and split["holdout"] == 0.2 and split["test_files"] == data.test_files
    assert split["class_counts"] == [24, 10, 4] and split["classes"] == ["airplane", "cat", "ship"]
    from glmc_zoo.training.report import run_report

    assert "test split: 20% of each class held out (9 images, listed in split.json)" in run_report(tmp_path / "run")
    card = (tmp_path / "run" / "model" / "README.md").read_text()
    assert "9 test images held out from the same folder (20% of each class" in card
    from glmc_zoo.errors import ModelLoadError
    from glmc_zoo.hub import create_model

    with pytest.raises(ModelLoadError, match=r"a training run directory, not a weights folder; give its final model"):
        create_model(str(tmp_path / "run"))  # the run directory given where its model is meant
    partial = tmp_path / "partial"
    partial.mkdir()
    for f in ("config.json", "train_log.jsonl", "checkpoint.pt"):
        shutil.copy(tmp_path / "run" / f, partial / f)
    with pytest.raises(ModelLoadError, match=r"a training run directory with no final model yet .*--resume"):
        create_model(str(partial))
    # `eval --split` evaluates the trained model on exactly the held-out files, as the run did
    from typer.testing import CliRunner

    from glmc_zoo.cli import app

    r = CliRunner().invoke(app, ["eval", str(tmp_path / "run" / "model"), "--data-root", str(own), "--split",
                                 str(tmp_path / "run"), "--format", "json"])
    assert r.exit_code == 0, r.output
    ev = json.loads(r.stdout)
    assert ev["n"] == 9 and ev["top1"] == metrics["top1"]
    # without --split the run's model is still scored on its held-out files only (issue 46: it scored all 47,
    # its training images among them), and says so; a copy of the folder away from its run is refused
    r = CliRunner().invoke(app, ["eval", str(tmp_path / "run" / "model"), "--data-root", str(own)])
    assert r.exit_code == 0 and "n: 9" in r.output and "the run's held-out test files" in r.output, r.output
    shutil.copytree(tmp_path / "run" / "model", tmp_path / "moved")
    r = CliRunner().invoke(app, ["eval", str(tmp_path / "moved"), "--data-root", str(own)])
    assert r.exit_code == 2 and "trained with holdout=0.2" in r.output and "--split" in r.output, r.output
    # the exported .onnx evaluates the same way, grouped by the training counts the export recorded
    from glmc_zoo.export.onnx import export_onnx

    export_onnx(str(tmp_path / "run" / "model"), tmp_path / "m.onnx", verify_images=[])
    r = CliRunner().invoke(app, ["eval", str(tmp_path / "m.onnx"), "--data-root", str(own), "--split",
                                 str(tmp_path / "run"), "--format", "json"])
    assert r.exit_code == 0, r.output
    ev_onnx = json.loads(r.stdout)
    assert ev_onnx["n"] == 9 and abs(ev_onnx["top1"] - ev["top1"]) <= 100 / 9 + 1e-9  # at most one image apart
    assert ev_onnx.get("many") is None and ev_onnx["medium"] is not None and ev_onnx["few"] is not None  # 24 | 10, 4
    r = CliRunner().invoke(app, ["eval", str(tmp_path / "run" / "model"), "--data-root", str(cifar_root),
                                 "--split", str(tmp_path / "run")])
    assert r.exit_code == 2 and "test files are not under" in r.output

    (own / "dog").mkdir()
    shutil.copy(next((cifar_root / "train" / "dog").glob("*.jpg")), own / "dog")
    with pytest.raises(DataError, match=r"holdout=0.2 leaves no training image in 1 class: dog \(1\)"):
        load_image_folder(own, 32, holdout=0.2)
    shutil.rmtree(own / "dog")
    with pytest.raises(DataError, match=r"holdout=0.2: .* has its own test split \(test/\)"):
        load_image_folder(large_image_folder, 64, holdout=0.2)  # train/ and test/: nothing to hold out
    (own / "test").mkdir()
    with pytest.raises(DataError, match="has test/ but no train/"):
        load_image_folder(own, 32, holdout=0.2)


def test_unreadable_files_and_empty_classes_are_named_before_training(tmp_path, large_image_folder):
    import shutil

    from glmc_zoo.errors import DataError
    from glmc_zoo.training.data import load_data

    root = tmp_path / "data"
    shutil.copytree(large_image_folder, root)
    (root / "train" / "cat" / "notes.jpg").write_text("not an image")
    (root / "test" / "ship" / "empty.png").write_bytes(b"")
    with pytest.raises(DataError) as e:
        load_image_folder(root, 64)
    assert "1 image file cannot be read" in str(e.value) and "notes.jpg" in str(e.value)
    (root / "train" / "cat" / "notes.jpg").unlink()
    with pytest.raises(DataError, match="empty.png: empty file"):
        load_image_folder(root, 64)
    (root / "test" / "ship" / "empty.png").unlink()
    lists = root / "ImageNet_LT_train.txt"  # split lists: every listed file must exist, all missing ones named
    lists.write_text(lists.read_text() + "train/cat/gone1.jpg 1\ntrain/cat/gone2.jpg 1\n")
    with pytest.raises(DataError, match=r"(?s)2 image files cannot be read:.*gone1.jpg: no such file.*gone2.jpg"):
        load_data(_file_cfg(root, dataset="imagenet_lt"))
    # 12 images in the largest class at imbalance factor 100: the smallest would keep 0
    with pytest.raises(DataError, match=r"1 class keep no training images \(ship; counts \[12, 1, 0\]\).*imbalance_factor"):
        load_data(_file_cfg(root, imbalance_factor=100))


def test_precision_auto_by_capability():
    from glmc_zoo.training.loop import cpu_has_native_bf16, resolve_precision

    cpu = torch.device("cpu")
    assert resolve_precision("none", cpu)[0] == "fp32"
    assert resolve_precision("bf16", cpu)[0] == "bf16"
    # auto follows the processor: bf16 only with native bf16 (emulated bf16 is ~10x slower on an AVX2 CPU)
    assert resolve_precision("auto", cpu)[0] == ("bf16" if cpu_has_native_bf16() else "fp32")
    # a resumed run keeps the precision it ran in, whatever this machine would choose ...
    kept = ("bf16", "amp=auto, kept from the checkpoint this run resumed")
    assert resolve_precision("auto", cpu, resumed="bf16", native_bf16=True) == kept
    for native in (True, False):
        assert resolve_precision("auto", cpu, resumed="fp32", native_bf16=native)[0] == "fp32"  # never back to bf16
    # ... but a bf16 run on a CPU that would emulate bf16 (~10x slower) continues in fp32, and says so
    precision, why = resolve_precision("auto", cpu, resumed="bf16", native_bf16=False)
    assert precision == "fp32" and "continues in fp32 from this point" in why
    assert resolve_precision("bf16", cpu, resumed="bf16", native_bf16=False)[0] == "bf16"  # asked for: kept
    with pytest.raises(TrainError, match="amp='fp16'"):
        resolve_precision("fp16", cpu)


def test_w16_full_run_config_is_the_released_command():
    cfg, released = get_config("cifar10_lt_if100_w16"), get_config("cifar10_lt_if100")
    same = ("epochs", "batch_size", "lr", "momentum", "weight_decay", "resample_weighting", "label_weighting",
            "contrast_weight", "mix_beta", "schedule", "split", "seed", "imbalance_factor")
    assert {k: getattr(cfg, k) for k in same} == {k: getattr(released, k) for k in same}
    assert (cfg.model, cfg.dataset, cfg.normalization) == ("glmc_resnet32_w16", "imagefolder", "cifar10")
    assert "glmc_resnet32_w16" in cfg.reference and "JPEG" in cfg.reference


@pytest.mark.slow
def test_normalization_option(cifar_root):
    from glmc_zoo._meta import NORMALIZATION
    from glmc_zoo.training.data import load_data

    small = dict(max_images_per_class=100, test_per_class_limit=2)  # IF 100: the smallest class keeps 1
    released = load_data(apply_overrides(get_config("cifar10_lt_if100_w16"), small))
    assert (released.mean, released.std) == NORMALIZATION["cifar10"]
    measured = load_data(apply_overrides(get_config("cifar10_lt_if100_w16"), dict(small, normalization="auto")))
    assert measured.mean != released.mean and abs(measured.mean[0] - 0.49) < 0.05  # measured on the kept images
    with pytest.raises(ConfigError, match="normalization='cifar'.*allowed values are auto, cifar10"):  # before any data
        apply_overrides(get_config("cifar10_lt_if100_w16"), dict(small, normalization="cifar"))


class _Killed(BaseException):
    """Stands for the process dying at that point: nothing after it runs, no handler saves."""


def _kill_cfg():
    return _cfg(epochs=2, eval_every=5, batch_size=32, model_args=RESNET8)


@pytest.fixture(scope="module")
def uninterrupted(tiny_lt, tmp_path_factory):
    """The run the kill-and-resume tests must reproduce, trained once without a stop."""
    out = tmp_path_factory.mktemp("uninterrupted") / "a"
    return out, train(_kill_cfg(), out, device="cpu", progress=False, data=tiny_lt)


@pytest.mark.slow
@pytest.mark.parametrize("phase", ["mid_epoch", "before_final_eval", "during_final_save"])
def test_kill_at_any_phase_then_resume_gives_the_same_final_weights(tmp_path, tiny_lt, uninterrupted, monkeypatch,
                                                                    phase):
    import glmc_zoo.training.loop as loop

    data, cfg = tiny_lt, _kill_cfg()  # 204 images: quick, still every class
    ref, full = uninterrupted

    out = tmp_path / "b"
    if phase == "mid_epoch":
        stopped = train(cfg, out, device="cpu", progress=False, data=data, should_stop=lambda e, s: (e, s) == (1, 2))
        assert stopped["interrupted"]
    else:
        target = "_evaluate" if phase == "before_final_eval" else "save_pretrained"
        original = getattr(loop, target) if target == "_evaluate" else None

        def die(*a, **k):
            raise _Killed(phase)

        if target == "_evaluate":
            monkeypatch.setattr(loop, "_evaluate", die)
        else:
            import glmc_zoo.hub as hub

            monkeypatch.setattr(hub, "save_pretrained", die)
        with pytest.raises(_Killed):
            train(cfg, out, device="cpu", progress=False, data=data)
        monkeypatch.undo()
        assert original is None or loop._evaluate is original
        assert not (out / "model").exists()
    resumed = train(cfg, out, device="cpu", progress=False, data=data, resume=out)
    assert resumed["top1"] == full["top1"] and resumed["epoch"] == 2
    from safetensors.torch import load_file

    a, b = load_file(ref / "model" / "model.safetensors"), load_file(out / "model" / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [2] and (out / "training_curves.png").is_file()


def test_every_training_key_is_documented_from_one_source():
    """Issue 46: meaning, default and allowed values of every key, in `train --show` and docs/training_keys.md,
    made from one table (HELP) beside CHOICES / RANGES; the docs page cannot drift from the code."""
    from dataclasses import fields

    from typer.testing import CliRunner

    from glmc_zoo.cli import app
    from glmc_zoo.training.configs import HELP, TrainConfig, keys_markdown

    assert set(HELP) == {f.name for f in fields(TrainConfig)} and all(len(v) > 10 for v in HELP.values())
    assert (ROOT / "docs" / "training_keys.md").read_text() == keys_markdown(), \
        "docs/training_keys.md is stale: python -c \"from glmc_zoo.training.configs import keys_markdown; " \
        "open('docs/training_keys.md', 'w').write(keys_markdown())\""
    r = CliRunner().invoke(app, ["train", "-c", "cifar10_lt_if100_w16", "--show", "--set", "epochs=7"])
    assert r.exit_code == 0, r.output
    assert "* epochs = 7    [>= 1, <= 100000; default 200]" in r.output
    assert "  split = \"glmc\"    [glmc | glmc_with_replacement | standard; default \"glmc\"]" in r.output
    assert all(f"{k} = " in r.output for k in HELP)
    r = CliRunner().invoke(app, ["train", "-c", "cifar10_lt_if100_w16", "--show", "--set", "split=nope"])
    assert r.exit_code == 2 and "split='nope'" in r.output
