"""The `glmc-zoo` command line: every command's happy path, formats, exit codes, and no
tracebacks for user mistakes."""

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from glmc_zoo.cli import app

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_help_on_every_command():
    for cmd in ("list", "info", "convert", "push", "predict", "export", "train", "eval", "report"):
        r = run(cmd, "--help")
        assert r.exit_code == 0 and "Usage" in r.output, cmd


def test_list_and_info():
    r = run("list", "--pretrained", "--format", "json")
    rows = json.loads(r.output)
    names = {x["name"]: x for x in rows}
    assert names["glmc_resnet32.cifar100_lt_if100"]["top1"] == 57.97
    assert names["glmc_resnet32.cifar100_lt_if100"]["weights"] == "released"
    assert names["glmc_resnet32.cifar100_lt_if100"]["kind"] == "reported"
    old = names["glmc_resnet32_w16.cifar10_lt_if100_jpeg"]  # 0.1.0's default, replaced: still listed, with its number
    assert old["weights"] == "withdrawn" and old["top1"] == 50.93 and old["kind"] == "measured"
    t = run("list")
    assert "glmc_resnext50_32x4d" in t.output and "weights" in t.output
    i = run("info", "glmc_resnext50_32x4d.inat2018", "--format", "json")
    data = json.loads(i.output)
    assert data["pretrained_cfg"]["num_classes"] == 8142 and data["weights"]["metrics"]["top1"] == 72.21
    assert data["weights"]["metrics_kind"] == "reported" and "glmc-zoo convert" in data["weights"]["note"]
    bad = run("info", "glmc_nope")
    assert bad.exit_code == 2 and "unknown model" in bad.output
    # the table: the record a field a row (per-class numbers on one line, a long training config summarised)
    rows = dict(line.strip().split(": ", 1) for line in run("info", "glmc_resnet32_w16").output.splitlines())
    assert rows["metrics_kind"] == "measured" and rows["per_class"].startswith("airplane 78.0, automobile 89.5")
    assert rows["train_config"].endswith("keys (--format json shows them)") and rows["trained_by"] == "glmc-zoo"
    assert rows["name"] == "glmc_resnet32_w16.cifar10_lt_if100_e200_jpeg" and "weights" not in rows


def test_predict_formats_and_exit_codes(w16_folder, tmp_path):
    cat = EXAMPLES / "cat.jpg"
    r = run("predict", cat, EXAMPLES / "rocket.jpg", "--model", w16_folder, "--format", "json", "-k", "3")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert [d["source"] for d in data] == [str(cat), str(EXAMPLES / "rocket.jpg")]
    assert len(data[0]["predictions"]) == 3 and data[0]["error"] is None
    assert set(data[0]["predictions"][0]) == {"label", "index", "score"}
    r = run("predict", cat, tmp_path / "missing.jpg", "--model", w16_folder, "--format", "jsonl")
    assert r.exit_code == 1
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert lines[0]["error"] is None and "no such file" in lines[1]["error"]
    out = tmp_path / "p.csv"
    r = run("predict", cat, "--model", w16_folder, "--format", "csv", "-k", "2", "--output", out)
    assert r.exit_code == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [x["rank"] for x in rows] == ["1", "2"] and rows[0]["source"] == str(cat)


def test_predict_reads_one_image_from_stdin(w16_folder):
    cat = EXAMPLES / "cat.jpg"
    r = runner.invoke(app, ["predict", "-", str(EXAMPLES / "horse.png"), "-m", str(w16_folder), "--format", "json"],
                      input=cat.read_bytes())
    assert r.exit_code == 0, r.output
    piped, horse = json.loads(r.stdout)
    direct = json.loads(run("predict", cat, "-m", w16_folder, "--format", "json").stdout)[0]
    assert piped["source"] == "-" and [p["index"] for p in piped["predictions"]] == [
        p["index"] for p in direct["predictions"]] and horse["error"] is None
    r = runner.invoke(app, ["predict", "-", "-m", str(w16_folder)], input=b"not an image")
    assert r.exit_code == 1 and "error: stdin: not an image" in r.output
    assert run("predict", "-", "-", "-m", w16_folder).exit_code == 2


def test_predict_onnx_backend(w16_onnx, w16_folder):
    a = json.loads(run("predict", EXAMPLES, "--model", w16_onnx, "--format", "json").stdout)
    b = json.loads(run("predict", EXAMPLES, "--model", w16_folder, "--format", "json").stdout)
    assert len(a) == len(list(EXAMPLES.glob("*.jpg"))) + len(list(EXAMPLES.glob("*.png")))
    assert [x["predictions"][0]["index"] for x in a] == [x["predictions"][0]["index"] for x in b]


def test_usage_errors_exit_2_without_traceback(w16_folder, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("not a checkpoint, and not a folder")
    for args in (["convert", notes, "--arch", "glmc_resnet32", "--num-classes", "10", "--output", tmp_path / "w"],
                 ["predict", EXAMPLES / "cat.jpg", "--model", w16_folder, "--output", notes / "p.csv"],
                 ["export", "-m", w16_folder, "-o", notes / "m.onnx"],
                 ["train", "--config", "cifar10_lt_if100_w16", "--stop-after", "201", "-o", tmp_path / "r"],
                 ["train", "--config", "cifar10_lt_if100_w16", "--stop-after", "0", "-o", tmp_path / "r"],
                 ["predict", EXAMPLES / "cat.jpg", "--model", "glmc_nope"],
                 ["predict", EXAMPLES / "cat.jpg", "--backend", "tf"],
                 ["predict", EXAMPLES / "cat.jpg", "--top-k", "0"],
                 ["train", "--config", "nope"],
                 ["report", EXAMPLES],
                 ["train", "--config", "cifar10_lt_if100", "--set", "epoch=3"],
                 ["convert", EXAMPLES / "cat.jpg", "--arch", "glmc_resnet32", "--num-classes", "10",
                  "--output", "/tmp/x"]):
        r = run(*args)
        assert r.exit_code == 2, (args, r.output)
        assert "Traceback" not in r.output
    assert "--stop-after 201: give an epoch after the 0 already complete and at most the schedule's 200" in \
        run("train", "--config", "cifar10_lt_if100_w16", "--stop-after", "201", "-o", tmp_path / "r").output
    assert "not a training run directory" in run("report", EXAMPLES).output
    for text in ("hi", "not a checkpoint"):  # the unpickler fails differently on each (KeyError, UnpicklingError)
        notes.write_text(text)
        r = run("convert", notes, "--arch", "glmc_resnet32", "--num-classes", "10", "--output", tmp_path / "w")
        assert r.exit_code == 2 and r.output.startswith(f"error: {notes}: ") and len(r.output.splitlines()) == 1
    r = run("export", "-m", w16_folder, "-o", notes / "m.onnx")  # an output folder that is a file: one line, naming it
    assert r.output.startswith(f"error: {notes}: ") and len(r.output.strip().splitlines()) == 1
    assert not list(tmp_path.glob("*.tmp"))


def test_real_process_prints_no_traceback(tmp_path):
    exe = Path(sys.executable).with_name("glmc-zoo")
    r = subprocess.run([str(exe), "predict", str(tmp_path / "nope.jpg"), "--model", "glmc_resnet32.nope"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "error:" in r.stderr and "Traceback" not in r.stderr + r.stdout


def test_train_list():
    r = run("train", "--list")
    assert r.exit_code == 0 and "cifar100_lt_if100" in r.output and "glmc-zoo train --config inat2018" in r.output


def test_export_command(w16_folder, tmp_path):
    out = tmp_path / "m.onnx"
    r = run("export", w16_folder, "--output", out, "--format", "json")
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout)
    assert rep["passed"] and out.is_file()
    r = run("export", w16_folder, "--output", tmp_path / "x.onnx", "--batch-size", "big")
    assert r.exit_code == 2


def test_push_dry_run(w16_folder):
    r = run("push", w16_folder, "--repo-id", "glmc-zoo/test", "--dry-run")
    assert r.exit_code == 0 and "would upload model.safetensors" in r.output


@pytest.mark.parametrize("fmt", ["table", "json"])
def test_eval_command(w16_folder, cifar_root, fmt):
    r = run("eval", w16_folder, "--data-root", cifar_root, "--per-class-limit", "5", "--format", fmt)
    assert r.exit_code == 0, r.output
    if fmt == "json":
        m = json.loads(r.stdout)
        assert m["n"] == 50 and len(m["per_class"]) == 10 and {"many", "medium", "few"} <= set(m)


def test_eval_refuses_train_and_test_with_different_classes(w16_folder, cifar_root, tmp_path):
    import shutil

    for split, names in (("train", ("cat", "dog")), ("test", ("cat", "ship"))):
        for name in names:
            (tmp_path / split / name).mkdir(parents=True)
            for f in sorted((cifar_root / "test" / name).glob("*.jpg"))[:2]:
                shutil.copy(f, tmp_path / split / name / f.name)
    r = run("eval", "-m", w16_folder, "--data-root", tmp_path)
    assert r.exit_code == 2 and "hold different classes" in r.output and "'dog'" in r.output and "'ship'" in r.output


def test_help_and_tables_read_as_a_user_expects():
    """Issue 46's small things: whole sentences in the top-level --help, help on every option, a named argument,
    a header on `train --list`, a dash (not None) for an unknown number in `list`."""
    r = run("--help")
    commands = r.output.split("Commands:", 1)[1]
    assert r.exit_code == 0 and "..." not in commands  # click cut descriptions to fit the width, mid-sentence
    assert "Classify images." in r.output and "per-class accuracy of a model on" in r.output
    for cmd, opts in (("predict", ("--top-k", "--no-progress")), ("export", ("--atol",)), ("train", ("--no-progress",))):
        text = run(cmd, "--help").output
        for opt in opts:  # each option's line (or the next) carries words beyond its type and default
            line = next(ln for ln in text.splitlines() if opt in ln)
            assert len(line.split(">", 1)[-1].strip()) > 12, (cmd, opt, line)
    assert "SOURCE..." in run("predict", "--help").output  # Typer 0.29 still appends its type (<list[str]>)
    listed = run("train", "--list").output.splitlines()
    assert listed[0].split() == ["config", "model", "data", "recipe", "command"]
    table = run("list").output
    assert " None " not in table and "glmc_resnet50" in table


def test_info_reads_an_exported_onnx_and_the_export_names_its_model_portably(w16_onnx, w16_folder):
    r = run("info", w16_onnx, "--format", "json")
    assert r.exit_code == 0, r.output
    meta = json.loads(r.output)
    assert meta["precision"] == "fp32" and len(meta["label_names"]) == 10 and meta["bytes"] == w16_onnx.stat().st_size
    # the model is named by its weight set, or by the folder's last two parts: not by a relative path of the export
    tagged = f"{meta['architecture']}.{meta['tag']}" if meta.get("tag") else None
    assert meta["model"] in (tagged, "/".join(Path(w16_folder).resolve().parts[-2:])), meta["model"]
    table = run("info", w16_onnx).output
    assert "label_names: 10 names: " in table and "preprocess:" in table
