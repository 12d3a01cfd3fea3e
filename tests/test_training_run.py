"""The one long training test: GLMC learns from real CIFAR-10 JPEGs, and everything a finished run writes
(logs, plots, card, report, bundle) reads back consistently with `eval` and `predict`. A file of its own,
so that pytest-xdist (`--dist loadfile`) runs it beside the other training tests.
"""

import json
import re
from pathlib import Path

import pytest
from test_training import RESNET8, _cfg

from glmc_zoo.cpu import machine_text
from glmc_zoo.training.loop import train
from glmc_zoo.training.report import time_text

# The learning run trains the CIFAR ResNet at depth 8 (RESNET8), so that GLMC's learning shows in a minute on one core.


@pytest.mark.slow
def test_real_data_run_learns(tmp_path, small_lt, cifar_root):
    out = tmp_path / "run"
    cfg = _cfg(epochs=4, batch_size=16, lr=0.03, eval_every=2, model_args=RESNET8)  # 305 steps of 16, 1,222 images
    metrics = train(cfg, out, device="cpu", progress=False, data=small_lt, command="pytest smoke")
    print(f"smoke run: top1 {metrics['top1']:.2f} many {metrics['many']:.2f} medium {metrics['medium']:.2f}")
    # Measured (one thread, 2-core AMD EPYC): top-1 21.6% on the 1,000-image subset (chance: 10%) after 4 epochs
    # of batch 16 (305 steps; ResNet-32 gave 20.8%). GLMC's always-on MixUp/CutMix learns slowly from so few steps.
    assert metrics["top1"] > 16.0
    assert metrics["selection"].startswith("final epoch")
    for f in ("config.json", "split.json", "metrics.jsonl", "metrics.json", "train_log.jsonl", "checkpoint.pt",
              "per_class_accuracy.png", "confusion_matrix.png", "command.txt", "training_curves.png", "run.log"):
        assert (out / f).is_file(), f
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in lines] == [2, 4]
    assert {"top1", "top5", "many", "medium", "few", "loss", "lr", "images_per_s", "per_class", "fc_top1"} <= set(lines[-1])
    assert len(lines[-1]["per_class"]) == 10 and 0 <= lines[-1]["fc_top1"] <= 100
    log = (out / "run.log").read_text()
    assert "precision fp32" in log or "precision bf16" in log
    assert f"device cpu ({machine_text()})" in log and lines[-1]["machine"] == machine_text()  # what ran each epoch
    assert time_text(out).endswith(f"on {machine_text()}")
    assert "epoch 4/4" in log and "run remaining" in log and "eval epoch 4" in log
    split = json.loads((out / "split.json").read_text())
    assert split["class_counts"] == small_lt.class_counts and len(split["train_indices"]) == len(small_lt.train)
    card = (out / "model" / "README.md").read_text()
    assert "Measured accuracy" in card and "pytest smoke" in card and "final epoch" in card
    # per class (fc_cb) with each class's training images, and the plain head, from the same final evaluation
    assert f"| cat | {small_lt.class_counts[3]} | {lines[-1]['per_class'][3]:.2f} |" in card
    assert "plain head `fc`" in card and f"top1 {lines[-1]['fc_top1']:.2f}" in card
    from glmc_zoo.hub import create_model

    model = create_model(str(out / "model"))
    assert model.pretrained_cfg["label_names"][3] == "cat"

    # One preprocessing: the run's reported top-1 is what `eval` and `predict` compute on the same files
    from glmc_zoo.evaluation import evaluate_model
    from glmc_zoo.inference import Predictor

    ev = evaluate_model(str(out / "model"), cifar_root, per_class_limit=100, device="cpu")
    assert ev["n"] == 1000 and ev["top1"] == metrics["top1"]
    files = [str(f) for d in sorted((cifar_root / "test").iterdir()) for f in sorted(d.glob("*.jpg"))[:100]]
    preds = Predictor(str(out / "model"), backend="torch").predict(files, top_k=1)
    correct = [p.predictions[0]["label"] == Path(p.source).parent.name for p in preds]
    assert 100.0 * sum(correct) / len(correct) == pytest.approx(metrics["top1"], abs=1e-9)

    from glmc_zoo.training.report import run_report

    report = run_report(out)  # what the run logged, as Markdown: both evaluations, the final one marked
    assert "**Status**: finished" in report and "`pytest smoke`" in report
    rows = [x for x in report.splitlines() if x.startswith(("| 2 |", "| 4 (final) |"))]
    assert len(rows) == 2 and f"| {metrics['top1']:.2f} | {metrics['top5']:.2f} |" in rows[1]
    assert f"| cat | {small_lt.class_counts[3]} | " in report and "fc_cb at the final epoch" in report

    from glmc_zoo.registry import WeightSet  # a record carries the architecture's arguments (the depth-8 network)
    from glmc_zoo.training.bundle import bundle_run

    shipped = bundle_run(out, "glmc_resnet32_w16.smoke", data="CIFAR-10 JPEG subset", root=tmp_path / "bundled")
    assert WeightSet.from_folder(shipped).model_args.get("blocks_per_stage") == 1


@pytest.mark.slow
def test_a_finished_run_bundles_into_a_weight_set(tmp_path, tiny_lt):
    from glmc_zoo.registry import WeightSet, read_config
    from glmc_zoo.training.bundle import bundle_run

    out = tmp_path / "run"
    metrics = train(_cfg(epochs=2, batch_size=32, eval_every=1), out, device="cpu", progress=False, data=tiny_lt,
                    command="pytest smoke")
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    folder = bundle_run(out, "glmc_resnet32_w16.smoke", data="CIFAR-10 JPEG subset", root=tmp_path / "bundled")
    cfg = read_config(folder)
    assert cfg["pretrained_cfg"]["tag"] == "smoke" and cfg["glmc"]["trained_by"] == "glmc-zoo"
    ws = WeightSet.from_folder(folder)
    assert ws.metrics["top1"] == round(metrics["top1"], 2) and ws.metrics_kind == "measured" and ws.trained_by == "glmc-zoo"
    card = (folder / "README.md").read_text()
    assert "# glmc_resnet32_w16.smoke" in card and "Training time" in card and "CIFAR-10 JPEG subset" in card
    assert "## Per-class accuracy" in card and ws.per_class["cat"] == lines[-1]["per_class"][3]
    assert re.search(r"[\d.]+ (h|min|s) for 2 epochs", cfg["glmc"]["training_time"]), cfg["glmc"]["training_time"]
    assert "median epoch " in cfg["glmc"]["training_time"]
    assert "standard (LDAM) split" in cfg["glmc"]["split_file"]  # the split the run used (its split.json)
    assert "file" not in cfg["pretrained_cfg"]  # no path of this machine in a saved weight set
    # the command ships it as the package does: the folder and its verified .onnx, which predicts as PyTorch does
    from typer.testing import CliRunner

    from glmc_zoo.cli import app
    from glmc_zoo.inference import Predictor
    from glmc_zoo.samples import sample_images

    r = CliRunner().invoke(app, ["bundle", str(out), "glmc_resnet32_w16.smoke", "--data", "CIFAR-10 JPEG subset",
                                 "--root", str(tmp_path / "cli")])
    shipped = tmp_path / "cli" / "glmc_resnet32_w16.smoke"
    assert r.exit_code == 0 and f"wrote {shipped / 'model.onnx'}" in r.output, r.output
    assert sorted(p.name for p in shipped.iterdir()) == ["README.md", "config.json", "model.onnx", "model.safetensors"]
    images = [str(p) for p in sample_images()]
    onnx_top = [p.predictions[0]["index"] for p in Predictor(str(shipped / "model.onnx")).predict(images)]
    assert onnx_top == [p.predictions[0]["index"] for p in Predictor(str(shipped), backend="torch").predict(images)]
    import glmc_zoo
    from glmc_zoo.training.bundle import bundle_root

    assert bundle_root() == Path(glmc_zoo.__file__).resolve().parent / "weights"

    # a shipped run keeps model/ but not checkpoint.pt (removed from git once shipped): it bundles again
    (out / "checkpoint.pt").unlink()
    again = bundle_run(out, "glmc_resnet32_w16.smoke", data="CIFAR-10 JPEG subset", root=tmp_path / "again")
    assert WeightSet.from_folder(again).metrics == ws.metrics
    # what is not a finished run is named as what it is, with the way on
    from glmc_zoo.errors import BundleError

    (tmp_path / "logs_only").mkdir()
    (tmp_path / "logs_only" / "run.log").write_bytes((out / "run.log").read_bytes())
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "checkpoint.pt").write_bytes((tmp_path / "run" / "model" / "model.safetensors").read_bytes())
    for folder, says in ((tmp_path / "missing", "no such folder"),
                         (tmp_path / "half", "not a finished run (no " + str(tmp_path / "half" / "model")
                          + " folder yet); finish it, or make that folder again from its last checkpoint, with "
                          f"`glmc-zoo train --resume {tmp_path / 'half'}`"),
                         (tmp_path / "bundled", "not a run directory of `glmc-zoo train`"),
                         (tmp_path / "logs_only", "a run's logs without its weights")):
        with pytest.raises(BundleError, match="^" + re.escape(f"{folder}: ")) as e:
            bundle_run(folder, "glmc_resnet32_w16.x", data="x", root=tmp_path / "never")
        assert says in str(e.value)
    assert not (tmp_path / "never").exists()
    # a weight set already there under that name is never replaced by accident; --replace makes it again
    before = {p.name: p.read_bytes() for p in again.iterdir()}
    with pytest.raises(BundleError, match=re.escape(f"{again} exists (a weight set named glmc_resnet32_w16.smoke is "
                                                    "there already): nothing was written")):
        bundle_run(out, "glmc_resnet32_w16.smoke", data="other words", root=tmp_path / "again")
    assert {p.name: p.read_bytes() for p in again.iterdir()} == before
    r = CliRunner().invoke(app, ["bundle", str(out), "glmc_resnet32_w16.smoke", "--data", "other words",
                                 "--root", str(tmp_path / "again"), "--no-onnx"])
    assert r.exit_code == 2 and "give --replace" in r.output and "Traceback" not in r.output, r.output
    r = CliRunner().invoke(app, ["bundle", str(out), "glmc_resnet32_w16.smoke", "--data", "other words",
                                 "--root", str(tmp_path / "again"), "--no-onnx", "--replace"])
    assert r.exit_code == 0 and "other words" in (again / "README.md").read_text(), r.output
