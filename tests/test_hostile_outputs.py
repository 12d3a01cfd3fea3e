"""The second hostile round (issue 47), classes 1 and 2: a write never destroys what it should not, and the
package's own weight sets cannot be broken from outside."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import pytest
from typer.testing import CliRunner

import glmc_zoo
from glmc_zoo.atomic import PACKAGE_WEIGHTS, write_text_atomic
from glmc_zoo.cli import app

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SHIPPED = sorted(p for p in PACKAGE_WEIGHTS.iterdir() if p.is_dir() and not p.name.startswith("."))


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def _read_fifo(fifo: Path, into: list) -> threading.Thread:
    def reader():
        with open(fifo, "rb") as f:
            into.append(f.read())
    t = threading.Thread(target=reader, daemon=True)
    t.start()
    return t


def test_an_output_that_is_a_fifo_or_a_symlink_is_written_through_not_replaced(tmp_path):
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    got: list = []
    t = _read_fifo(fifo, got)
    r = run("predict", EXAMPLES / "cat.jpg", "--format", "csv", "-o", fifo)
    t.join(timeout=60)
    assert r.exit_code == 0, r.output
    assert stat.S_ISFIFO(fifo.stat().st_mode), "the FIFO was replaced by a regular file"
    assert b"cat.jpg" in got[0]

    real = tmp_path / "real.json"
    real.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(real)
    assert run("predict", EXAMPLES / "cat.jpg", "--format", "json", "-o", link).exit_code == 0
    assert link.is_symlink() and os.readlink(link) == str(real), "the symlink was replaced by a file"
    assert json.loads(real.read_text())[0]["source"].endswith("cat.jpg")
    assert not list(tmp_path.glob(".*.tmp"))


def test_the_write_helper_writes_devices_through_and_names_a_full_one(tmp_path):
    if not os.path.exists("/dev/full") or not stat.S_ISCHR(os.stat("/dev/full").st_mode):
        pytest.skip("no /dev/full here")
    before = os.stat("/dev/null")
    write_text_atomic("/dev/null", "nothing")
    after = os.stat("/dev/null")
    assert stat.S_ISCHR(after.st_mode) and (after.st_ino, after.st_rdev) == (before.st_ino, before.st_rdev)
    with pytest.raises(OSError) as e:  # ENOSPC, named by the path given
        write_text_atomic("/dev/full", "x" * 100)
    assert e.value.filename == "/dev/full" and stat.S_ISCHR(os.stat("/dev/full").st_mode)
    r = subprocess.run([sys.executable, "-m", "glmc_zoo", "predict", str(EXAMPLES / "cat.jpg"), "-o", "/dev/full"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "/dev/full" in r.stderr and "Traceback" not in r.stderr
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)


def test_the_package_weights_are_written_only_by_bundle(tmp_path):
    target = SHIPPED[0]
    held = {p.name: p.stat().st_mtime_ns for p in target.iterdir()}
    for args in (["export", "-m", target.name, "-o", target / "model.onnx"],
                 ["predict", EXAMPLES / "cat.jpg", "-o", target / "p.csv"],
                 ["convert", target, "--as-timm", "-o", PACKAGE_WEIGHTS / "glmc_resnet50.x", "--replace"],
                 ["train", "-c", "cifar10_lt_if100_w16", "-o", PACKAGE_WEIGHTS / "glmc_resnet32_w16.mine"]):
        r = run(*args)
        assert r.exit_code == 2, (args, r.output)
        assert "only `glmc-zoo bundle` writes" in r.output and "Traceback" not in r.output, r.output
    assert {p.name: p.stat().st_mtime_ns for p in target.iterdir()} == held
    assert sorted(p.name for p in PACKAGE_WEIGHTS.iterdir()) == sorted(p.name for p in SHIPPED)
    from glmc_zoo.errors import BundleError
    from glmc_zoo.training.bundle import bundle_run

    for name in ("glmc_resnet32_w16.a/b", "glmc_resnet32_w16.../x", "glmc_resnet32_w16.UPPER", "nope.t", "glmc_timm."):
        with pytest.raises(BundleError, match="is not a weight-set name"):
            bundle_run(tmp_path, name, data="x", root=tmp_path / "root")
    assert not (tmp_path / "root").exists()


def test_a_broken_or_foreign_folder_among_the_weights_is_skipped_with_a_warning(tmp_path):
    from glmc_zoo.registry import _shipped

    good = SHIPPED[0]
    shutil.copytree(good, tmp_path / good.name)
    shutil.copytree(good, tmp_path / f".{good.name}.tmp-abc123")  # a bundle killed mid-save
    (tmp_path / "glmc_resnet32_w16.broken").mkdir()
    (tmp_path / "glmc_resnet32_w16.broken" / "config.json").write_text("{not json")
    (tmp_path / "glmc_resnet32_w16.nofile").mkdir()
    shutil.copy(good / "config.json", tmp_path / "glmc_resnet32_w16.nofile" / "config.json")
    (tmp_path / "X.Y").mkdir()  # a folder someone's export -o made
    (tmp_path / "X.Y" / "model.onnx").write_bytes(b"onnx")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        found = _shipped(tmp_path)
    assert list(found) == [good.name]
    said = [str(w.message) for w in caught]
    assert len(said) == 3 and all(s.startswith("glmc-zoo: skipped ") for s in said), said
    assert any("glmc_resnet32_w16.broken" in s for s in said) and any("no model.safetensors" in s for s in said)
    assert any("'X.Y' is not a weight-set name" in s for s in said)


def test_import_survives_a_foreign_folder_in_the_installed_weights(tmp_path):
    """Process level: a copy of the package with junk in its weights/ still imports and lists its weight sets."""
    pkg = tmp_path / "site" / "glmc_zoo"
    shutil.copytree(Path(glmc_zoo.__file__).parent, pkg, ignore=shutil.ignore_patterns("__pycache__"))
    (pkg / "weights" / "X.Y").mkdir()
    (pkg / "weights" / "X.Y" / "model.onnx").write_bytes(b"junk")
    (pkg / "weights" / ".glmc_resnet32_w16.t.tmp-1").mkdir()
    code = "import glmc_zoo, timm; from glmc_zoo.registry import weight_sets; print(len(weight_sets()))"
    env = dict(os.environ, PYTHONPATH=str(pkg.parent))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "skipped" in r.stderr and "X.Y" in r.stderr and int(r.stdout) > 0


# --- class 3 and 4: nothing silently wrong, nothing a file decides alone -------------------------------------


def test_a_constant_channel_gets_std_one_not_a_division_by_zero():
    import numpy as np

    from glmc_zoo.training.data import _mean_std

    images = np.random.default_rng(0).integers(0, 256, (20, 8, 8, 3), dtype=np.uint8)
    images[..., 2] = 0  # an all-black blue channel
    mean, std = _mean_std(images)
    assert std[2] == 1.0 and mean[2] == 0.0 and 0.2 < std[0] < 0.4 and all(np.isfinite(std))


@pytest.mark.parametrize("key, value, says", [
    ("input_size", [3, 60000, 60000], "input_size"), ("input_size", "big", "input_size"),
    ("crop_pct", 1e-6, "crop_pct"), ("std", [0.5, 0.0, 0.5], "each > 0"), ("std", [], "std"),
    ("mean", "abc", "mean"), ("interpolation", "cubic-ish", "interpolation"), ("mean", [float("nan")] * 3, "mean")])
def test_preprocessing_from_a_file_is_checked_before_anything_is_allocated(key, value, says):
    from glmc_zoo.errors import ModelLoadError
    from glmc_zoo.preprocess import Preprocess

    cfg = dict(input_size=[3, 32, 32], mean=[0.5] * 3, std=[0.25] * 3, crop_pct=1.0, interpolation="bilinear")
    Preprocess.from_config(cfg)  # the good one
    with pytest.raises(ModelLoadError, match=f"m.onnx: preprocessing field {key} is ") as e:
        Preprocess.from_config(dict(cfg, **{key: value}), where="m.onnx")
    assert says in str(e.value)


def _with_metadata(src: Path, dst: Path, change) -> Path:
    import onnx

    proto = onnx.load(str(src))
    entry = next(e for e in proto.metadata_props if e.key == "glmc_zoo")
    info = json.loads(entry.value)
    change(info)
    entry.value = json.dumps(info) if not isinstance(info, str) else info
    onnx.save(proto, str(dst))
    return dst


@pytest.mark.parametrize("name, change, says", [
    ("std0", lambda i: i["preprocess"].update(std=[0.2, 0.0, 0.2]), "preprocessing field std"),
    ("labels_str", lambda i: i.update(label_names="airplane"), "label_names is 'airplane', not a list"),
    ("labels_few", lambda i: i.update(label_names=["a", "b"]), "2 names for 10 outputs"),
    ("no_pre", lambda i: i.pop("preprocess"), "has no preprocess object"),
    ("size", lambda i: i["preprocess"].update(input_size=[3, -4, 32]), "preprocessing field input_size")])
def test_a_damaged_onnx_metadata_is_one_line_not_nan_scores(w16_onnx, tmp_path, name, change, says):
    bad = _with_metadata(w16_onnx, tmp_path / f"{name}.onnx", change)
    r = run("predict", EXAMPLES / "cat.jpg", "-m", bad)
    assert r.exit_code == 2 and says in r.output and "Traceback" not in r.output, r.output
    assert len(r.output.strip().splitlines()) == 1 and "nan" not in r.output.lower()


# --- class 6: no state a user cannot get out of ---------------------------------------------------------------


def test_a_start_that_fails_leaves_no_folder_and_the_same_command_then_works(tmp_path, tiny_lt):
    from conftest import PINNED

    from glmc_zoo.errors import TrainError
    from glmc_zoo.training.configs import apply_overrides, get_config
    from glmc_zoo.training.loop import train

    base = dict(epochs=1, batch_size=32, **PINNED)
    out = tmp_path / "run"
    bad = apply_overrides(get_config("cifar10_lt_if100_w16_cpu"), dict(base, model_args='{"blocks_per_stagee": 1}'))
    with pytest.raises(TrainError, match="does not take these arguments"):
        train(bad, out, device="cpu", progress=False, data=tiny_lt)
    assert not out.exists(), sorted(p.name for p in out.iterdir())
    mine = tmp_path / "empty"  # a folder the user made: kept, emptied of what the failed start wrote
    mine.mkdir()
    with pytest.raises(TrainError):
        train(bad, mine, device="cpu", progress=False, data=tiny_lt)
    assert mine.is_dir() and not any(mine.iterdir())
    good = apply_overrides(bad, dict(model_args='{"blocks_per_stage": 1}'))
    assert 0 <= train(good, out, device="cpu", progress=False, data=tiny_lt)["top1"] <= 100  # the same -o, fixed


def test_resume_without_output_continues_the_run_it_names(tmp_path, monkeypatch):
    """`--resume RUN` alone continues RUN (it made a new folder named after the config)."""
    import glmc_zoo.training.loop as loop

    seen = {}

    def record(cfg, out, **kw):  # the trainer itself is tested elsewhere; here: where the CLI sends the run
        seen.update(out=Path(out), resume=kw.get("resume"))
        return dict(top1=1.0, epoch=1)

    monkeypatch.setattr(loop, "train", record)
    run_dir = tmp_path / "myrun"
    run_dir.mkdir()
    (run_dir / "checkpoint.pt").write_bytes(b"x")
    for given in (run_dir, run_dir / "checkpoint.pt"):
        r = run("train", "-c", "cifar10_lt_if100_w16", "--resume", given)
        assert r.exit_code == 0, r.output
        assert seen["out"] == run_dir, seen


# --- class 4: a stream never decides how much we read ----------------------------------------------------------


def test_stdin_is_read_up_to_one_image_and_no_further():
    """`cat /dev/zero | glmc-zoo predict -` read without end; now it stops after the cap, with one line."""
    code = "import sys; sys.argv = ['glmc-zoo', 'predict', '-']; from glmc_zoo.cli import app; app()"
    zero = open("/dev/zero", "rb")
    try:
        r = subprocess.run([sys.executable, "-c", code], stdin=zero, capture_output=True, text=True, timeout=120)
    finally:
        zero.close()
    assert r.returncode == 2 and "MiB; one image is expected" in r.stderr and "Traceback" not in r.stderr, r.stderr


@pytest.mark.parametrize("args, says", [
    ('{"blocks_per_stage": 100000}', "blocks_per_stage=100000: give an integer from 1 to 200"),
    ('{"blocks_per_stage": -1}', "blocks_per_stage=-1"), ('{"drop_rate": 2}', "drop_rate=2"),
    ('{"global_pool": "bogus"}', "global_pool='bogus'"), ('{"widths": "x"}', "widths='x'")])
def test_model_args_out_of_range_are_one_line_before_anything_is_built(args, says, tmp_path):
    r = run("train", "-c", "cifar10_lt_if100_w16_cpu", "--set", f"model_args={args}", "-o", tmp_path / "r",
            "--set", "max_images_per_class=20", "--set", "imbalance_factor=1", "--set", "test_per_class_limit=2")
    assert r.exit_code == 2 and says in r.output and "Traceback" not in r.output, r.output
    assert not (tmp_path / "r").exists()


def test_bundle_alone_may_write_into_the_package_weights():
    """`bundle` writes its set's verified model.onnx there (the guard first refused bundle itself)."""
    from glmc_zoo.atomic import bundling, check_not_package_weights
    from glmc_zoo.errors import OutputRefusedError

    target = PACKAGE_WEIGHTS / "glmc_resnet32_w16.new_set"
    with pytest.raises(OutputRefusedError):
        check_not_package_weights(target / "model.onnx")
    with bundling(target):
        check_not_package_weights(target / "model.onnx")  # the set being bundled: allowed
        with pytest.raises(OutputRefusedError):
            check_not_package_weights(SHIPPED[0] / "model.onnx")  # another shipped set: still refused
    with pytest.raises(OutputRefusedError):
        check_not_package_weights(target / "model.onnx")


def test_model_args_nested_or_mistyped_and_a_negative_limit_are_one_line():
    from glmc_zoo.errors import ConfigError
    from glmc_zoo.training.configs import apply_overrides, get_config

    cfg = get_config("cifar10_lt_if100_w16")
    with pytest.raises(ConfigError, match="nested too deep"):
        apply_overrides(cfg, {"model_args": "[" * 60000 + "]" * 60000})
    with pytest.raises(ConfigError, match="backbone_args is 'x'"):
        apply_overrides(cfg, {"model_args": '{"backbone_args": "x"}'})
    r = run("eval", "glmc_resnet32_w16", "--data-root", EXAMPLES, "--per-class-limit", "-1")
    assert r.exit_code == 2 and "--per-class-limit" in r.output and "Traceback" not in r.output
