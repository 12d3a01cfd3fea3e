"""Every command driven with malformed values, table by table: empty, negative, zero, NaN, huge, the
wrong type, and paths that are files, folders, missing, unwritable or someone else's. Each must end in
one line and an exit code (2: the user's input; 1: some inputs failed, the rest done), never a
traceback, and must change nothing outside the output path it was given."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from glmc_zoo.cli import app

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    """A user's folder: photos, an empty folder, text and binary files named like models and images,
    a data root with classes the bundled model does not know, and someone's notes."""
    w = tmp_path_factory.mktemp("world")
    (w / "photos").mkdir()
    shutil.copy(EXAMPLES / "cat.jpg", w / "photos" / "cat.jpg")
    Image.new("RGB", (40, 30), (10, 200, 30)).save(w / "photos" / "green.png")
    (w / "empty").mkdir()
    (w / "notes.txt").write_text("my notes\n")
    (w / "fake.onnx").write_text("not a model\n")
    (w / "fake.pth.tar").write_bytes(b"\x80\x04not a pickle")
    (w / "fake.jpg").write_text("not an image\n")
    for split in ("train", "test"):
        for cls in ("apples", "pears"):
            (w / "fruit" / split / cls).mkdir(parents=True)
            Image.new("RGB", (32, 32), (200, 30, 30)).save(w / "fruit" / split / cls / "0.png")
    (w / "mine").mkdir()
    (w / "mine" / "diary.txt").write_text("private\n")
    return w


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


W = "{w}"  # replaced by the world folder
CASES = [  # (args, exit code)
    # list / info
    (["list", "--format", "xml"], 2),
    (["list", "--pretrained", "--format", ""], 2),
    (["info", ""], 2),
    (["info", "no_such_model"], 2),
    (["info", "glmc_resnet32.no_such_tag"], 2),
    (["info", f"{W}/notes.txt"], 2),
    (["info", f"{W}/empty"], 2),
    (["info", "glmc_resnet32", "--format", "yaml"], 2),
    # predict
    (["predict", ""], 2),
    (["predict", f"{W}/empty"], 2),
    (["predict", f"{W}/missing.jpg"], 1),
    (["predict", f"{W}/fake.jpg", f"{W}/photos/cat.jpg"], 1),
    (["predict", f"{W}/photos", "-k", "0"], 2),
    (["predict", f"{W}/photos", "-k", "-3"], 2),
    (["predict", f"{W}/photos", "-k", "many"], 2),
    (["predict", f"{W}/photos", "-k", "99999999999999999999"], 0),  # capped at the number of classes
    (["predict", f"{W}/photos", "-b", "0"], 2),
    (["predict", f"{W}/photos", "-b", "nan"], 2),
    (["predict", f"{W}/photos", "--format", "xml"], 2),
    (["predict", f"{W}/photos", "-m", f"{W}/missing.onnx"], 2),
    (["predict", f"{W}/photos", "-m", f"{W}/fake.onnx"], 2),
    (["predict", f"{W}/photos", "-m", ""], 2),
    (["predict", f"{W}/photos", "-m", "no_such_model"], 2),
    (["predict", f"{W}/photos", "--device", "tpu"], 2),
    (["predict", f"{W}/photos", "--backend", "tensorflow"], 2),
    (["predict", f"{W}/photos", "--backend", "onnx", "-m", "glmc_resnet32"], 2),
    (["predict", f"{W}/photos", "-o", f"{W}/mine"], 2),
    (["predict", f"{W}/photos", "-o", f"{W}/notes.txt/out.json"], 2),  # under a file: unwritable, even for root
    (["predict", "-", "-"], 2),
    (["predict", f"{W}/photos", "-o", ""], 2),
    (["predict", f"{W}/photos", "-k", "1e3"], 2),
    # export
    (["export", "glmc_resnet32_w16", "-o", f"{W}/out/m.txt"], 2),
    (["export", "glmc_resnet32_w16", "-o", f"{W}/out/m.onnx", "--opset", "5"], 2),
    (["export", "glmc_resnet32_w16", "-o", f"{W}/out/m.onnx", "--opset", "999"], 2),
    (["export", "glmc_resnet32_w16", "-o", f"{W}/out/m.onnx", "--opset", "x"], 2),
    (["export", "glmc_resnet32_w16", "-o", f"{W}/out/m.onnx", "--batch-size", "0"], 2),
    (["export", "glmc_resnet32_w16", "-o", f"{W}/out/m.onnx", "--batch-size", "-4"], 2),
    (["export", "glmc_resnet32_w16", "-o", f"{W}/out/m.onnx", "--int8"], 2),
    (["export", "glmc_resnet32_w16", "-o", f"{W}/out/m.onnx", "--int8", "--calibration", f"{W}/empty"], 2),
    (["export", "glmc_resnet32_w16", "-o", f"{W}/out/m.onnx", "--int8", "--fp16", "--calibration", f"{W}/photos"], 2),
    (["export", "", "-o", f"{W}/out/m.onnx"], 2),
    (["export", "no_such_model", "-o", f"{W}/out/m.onnx"], 2),
    (["export", f"{W}/notes.txt", "-o", f"{W}/out/m.onnx"], 2),
    (["export", "glmc_resnet32_w16"], 2),
    (["export", "glmc_resnet32_w16", "-o", f"{W}/out/m.onnx", "--rtol", "nan"], 2),
    (["export", "glmc_resnet32_w16", "-o", f"{W}/out/m.onnx", "--atol", "-1"], 2),
    (["export", "glmc_resnet32_w16", "-o", f"{W}/mine"], 2),
    # convert
    (["convert", f"{W}/missing.pth.tar", "--arch", "glmc_resnet32", "--num-classes", "10", "-o", f"{W}/out/c"], 2),
    (["convert", f"{W}/fake.pth.tar", "--arch", "glmc_resnet32", "--num-classes", "10", "-o", f"{W}/out/c"], 2),
    (["convert", f"{W}/empty", "--arch", "glmc_resnet32", "--num-classes", "10", "-o", f"{W}/out/c"], 2),
    (["convert", f"{W}/notes.txt", "--arch", "glmc_resnet32", "--num-classes", "0", "-o", f"{W}/out/c"], 2),
    (["convert", f"{W}/notes.txt", "--arch", "glmc_resnet32", "--num-classes", "-10", "-o", f"{W}/out/c"], 2),
    (["convert", f"{W}/notes.txt", "--arch", "resnet18", "--num-classes", "10", "-o", f"{W}/out/c"], 2),
    (["convert", f"{W}/fake.pth.tar", "--arch", "glmc_resnet32", "--num-classes", "10", "-o", f"{W}/mine"], 2),
    # eval
    (["eval", "--data-root", f"{W}/missing"], 2),
    (["eval", "--data-root", f"{W}/notes.txt"], 2),
    (["eval", "--data-root", f"{W}/empty"], 2),
    (["eval", "--data-root", ""], 2),
    (["eval", "--data-root", f"{W}/fruit"], 2),  # classes the model does not know
    (["eval", "-m", f"{W}/fake.onnx", "--data-root", f"{W}/fruit"], 2),
    (["eval", "-m", "no_such_model", "--data-root", f"{W}/fruit"], 2),
    (["eval", "--data-root", f"{W}/fruit", "--per-class-limit", "-1"], 2),
    (["eval", "--data-root", f"{W}/fruit", "--split", f"{W}/missing.json"], 2),
    (["eval", "--data-root", f"{W}/fruit", "--split", f"{W}/notes.txt"], 2),
    (["eval", "--data-root", f"{W}/fruit", "--device", "quantum"], 2),
    (["eval", "--data-root", f"{W}/fruit", "-o", f"{W}/mine"], 2),
    (["info", "local-dir:"], 2),
    (["info", f"local-dir:{W}/mine"], 2),
    # report
    (["report", f"{W}/missing"], 2),
    (["report", f"{W}/notes.txt"], 2),
    (["report", f"{W}/empty"], 2),
    (["report", f"{W}/mine"], 2),
    (["report", ""], 2),
    # train (the checks that come before any data is read)
    (["train", "-c", "no_such_config", "-o", f"{W}/out/r"], 2),
    (["train", "-c", "imagefolder_32", "--data-root", f"{W}/notes.txt", "-o", f"{W}/out/r"], 2),
    (["train", "-c", "imagefolder_32", "--data-root", f"{W}/empty", "-o", f"{W}/out/r"], 2),
    (["train", "-c", "imagefolder_32", "--data-root", f"{W}/fruit", "-o", f"{W}/mine"], 2),
    (["train", "-c", "imagefolder_32", "--data-root", f"{W}/fruit", "-o", f"{W}/out/r", "--stop-after", "0"], 2),
    (["train", "-c", "imagefolder_32", "--data-root", f"{W}/fruit", "-o", f"{W}/out/r", "--set", "lr"], 2),
    (["train", "-c", "imagefolder_32", "--data-root", f"{W}/fruit", "-o", f"{W}/out/r", "--set", "=3"], 2),
    (["train", "-c", "imagefolder_32", "--data-root", f"{W}/fruit", "-o", f"{W}/out/r", "--set", "nokey=3"], 2),
    (["train", "-c", "imagefolder_32", "--data-root", f"{W}/fruit", "-o", f"{W}/out/r", "--set", "epochs=ten"], 2),
    (["train", "-c", "imagefolder_32", "--data-root", f"{W}/fruit", "-o", f"{W}/out/r", "--set", "lr=1e999"], 2),
    (["train", "-c", "imagefolder_32", "--data-root", f"{W}/fruit", "-o", f"{W}/out/r", "--device", "cuda:x"], 2),
    (["train", "--resume", f"{W}/missing"], 2),
    (["train", "--resume", f"{W}/notes.txt"], 2),
    (["train", "--resume", f"{W}/mine"], 2),
    # bundle (a finished run into a weight set)
    (["bundle", f"{W}/missing", "glmc_resnet32_w16.t", "--data", "x", "--root", f"{W}/out"], 2),
    (["bundle", f"{W}/mine", "glmc_resnet32_w16.t", "--data", "x", "--root", f"{W}/out"], 2),
    (["bundle", f"{W}/mine", "glmc_resnet32_w16", "--data", "x", "--root", f"{W}/out"], 2),
    (["bundle", f"{W}/mine", "", "--data", "x", "--root", f"{W}/out"], 2),
    (["bundle", f"{W}/mine", "glmc_resnet32_w16.t"], 2),
    # push (validated before any upload; nothing is sent)
    (["push", f"{W}/missing", "--repo-id", "org/name", "--dry-run"], 2),
    (["push", f"{W}/mine", "--repo-id", "org/name", "--dry-run"], 2),
    (["push", f"{W}/notes.txt", "--repo-id", "org/name", "--dry-run"], 2),
    (["push", f"{W}/mine", "--repo-id", "not a repo id", "--dry-run"], 2),
]


@pytest.mark.parametrize("args, code", CASES, ids=[" ".join(a)[:70].replace(W, "") for a, _ in CASES])
def test_malformed_input_is_one_line_and_changes_nothing(world, args, code):
    args = [a.replace(W, str(world)) for a in args]
    before = _snapshot(world)
    r = CliRunner().invoke(app, args)
    assert r.exception is None or isinstance(r.exception, SystemExit), \
        f"{args}: {type(r.exception).__name__}: {r.exception}"
    assert "Traceback" not in r.output
    assert r.exit_code == code, f"{args}: exit {r.exit_code}, expected {code}\n{r.output[-1500:]}"
    if code:
        errors = [ln for ln in r.output.splitlines() if ln.startswith(("error:", "Error", "Usage:", "│", "╭"))]
        assert errors, f"{args}: exit {code} without saying why\n{r.output[-1500:]}"
    after = _snapshot(world)
    changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
    assert all(k.startswith("out/") for k in changed), f"{args} changed {sorted(changed)}"
    shutil.rmtree(world / "out", ignore_errors=True)
