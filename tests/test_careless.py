"""glmc-zoo in careless and hostile hands: nothing the user did not ask to replace is deleted or overwritten,
values that cannot make sense are refused when parsed, a diverging run saves nothing, one writer a run."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import PINNED
from typer.testing import CliRunner

from glmc_zoo.cli import app
from glmc_zoo.errors import ConfigError, TrainError
from glmc_zoo.training.configs import apply_overrides, get_config
from glmc_zoo.training.loop import train

ROOT = Path(__file__).resolve().parents[1]


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def _cfg(**kw):
    return apply_overrides(get_config("cifar10_lt_if100_w16_cpu"), dict(dict(epochs=1, batch_size=32, **PINNED), **kw))


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _users_folder(tmp_path: Path) -> Path:
    mine = tmp_path / "mine"
    (mine / "photos").mkdir(parents=True)
    (mine / "notes.txt").write_text("my notes")
    (mine / "photos" / "a.jpg").write_bytes(b"\xff\xd8 not really")
    return mine


@pytest.mark.parametrize("key, value", [
    ("schedule", "cosin"), ("amp", "fp17"), ("split", "nope"), ("normalization", "nope"), ("compile", "yes please"),
    ("lr", "nan"), ("lr", "0"), ("lr", "-0.1"), ("lr", "inf"), ("epochs", "0"), ("epochs", "-3"), ("batch_size", "0"),
    ("weight_decay", "-1"), ("momentum", "1.5"), ("image_size", "0"), ("holdout", "1"), ("holdout", "-0.2"),
    ("imbalance_factor", "0.5"), ("eval_every", "0"), ("workers", "-1"), ("model", "resnet18"), ("epochs", "1e9"),
    ("model_args", "{drop_rate: 1}"), ("model_args", "[1]"), ("model_args", '{"num_classes": 3}'),
    ("model_args", '{"training_heads": false}'),
])
def test_values_that_cannot_make_sense_are_refused_when_parsed(key, value):
    with pytest.raises(ConfigError) as e:
        apply_overrides(get_config("cifar10_lt_if100_w16"), [f"{key}={value}"])
    assert key in str(e.value) and (value in str(e.value) or "expected" in str(e.value))


def test_the_cli_refuses_them_before_reading_any_data(tmp_path):
    missing = tmp_path / "no_such_data"  # never read: the value is refused first
    for extra in (["--set", "schedule=cosin"], ["--set", "lr=nan"], ["--set", "epochs=0"], ["--device", "foo"],
                  ["--data-root", ""], ["--set", "model=resnet18"]):
        r = run("train", "-c", "imagefolder_32", "--data-root", missing, "-o", tmp_path / "r", *extra) \
            if "--data-root" not in extra else run("train", "-c", "imagefolder_32", "-o", tmp_path / "r", *extra)
        assert r.exit_code == 2 and r.output.startswith("error: ") and "Traceback" not in r.output, (extra, r.output)
        assert not (tmp_path / "r").exists()
    r = run("train", "-c", "imagefolder_32", "--data-root", missing, "--set", "schedule=cosin")
    assert "schedule='cosin': allowed values are cosine, warmup_cosine" in r.output and "Did you mean cosine?" in r.output


@pytest.mark.parametrize("device", ["mps", "gpu", "cuda:x", "cpu:1", "cuda:-1", ""])
def test_one_device_vocabulary_for_every_command(tmp_path, device):
    """predict, eval and train take the same --device values and refuse the same ones, in the same words, while
    the command line is parsed (nothing read, nothing written)."""
    from glmc_zoo.devices import parse_device
    from glmc_zoo.errors import DeviceError

    with pytest.raises(DeviceError, match="use auto, cpu, cuda or cuda:N"):
        parse_device(device)
    missing = tmp_path / "no_such"
    for args in (["predict", missing], ["eval", "-m", missing / "m.onnx", "--data-root", missing],
                 ["train", "-c", "imagefolder_32", "--data-root", missing, "-o", tmp_path / "r"]):
        r = run(*args, "--device", device)
        assert r.exit_code == 2 and r.output.strip() == f"error: --device {device!r}: use auto, cpu, cuda or cuda:N", \
            (args, r.output)
    assert not (tmp_path / "r").exists()
    assert [parse_device(d) for d in ("auto", "cpu", "cuda", "cuda:1", "CUDA:0")] == \
        [("auto", None), ("cpu", None), ("cuda", None), ("cuda", 1), ("cuda", 0)]


def test_a_diverging_run_stops_at_once_and_saves_no_model(tmp_path, tiny_lt):
    out = tmp_path / "run"
    with pytest.raises(TrainError, match=r"diverged at epoch 2, step \d+ .*last good checkpoint .*end of epoch 1"):
        train(_cfg(epochs=3, lr=100.0, eval_every=10), out, device="cpu", progress=False, data=tiny_lt,
              should_stop=_poison_after_epoch_one(out))
    assert not (out / "model").exists() and "diverged" in (out / "run.log").read_text()
    assert torch.load(out / "checkpoint.pt", weights_only=True)["epoch"] == 1  # the last good one stays
    rows = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1]


def _poison_after_epoch_one(out: Path):
    """Feed a NaN image into epoch 2 by writing it into the in-memory data the run holds: the run sees real
    non-finite input, as a corrupt file or an exploding learning rate gives it."""
    state = {}

    def hook(epoch, step):
        if epoch == 1 and not state:
            import gc
            import warnings

            from glmc_zoo.training.batches import Batcher

            with warnings.catch_warnings():  # isinstance() on every live object touches deprecated torch names
                warnings.simplefilter("ignore")
                batchers = [obj for obj in gc.get_objects() if isinstance(obj, Batcher)]
            for b in batchers:
                b.mean.fill_(float("nan"))  # normalisation then makes every later input NaN
            state["done"] = True
        return False

    return hook


def test_convert_never_deletes_a_folder_of_someones_files(tmp_path, w16_folder):
    mine = _users_folder(tmp_path)
    before = _snapshot(mine)
    ckpt = tmp_path / "ckpt.pth.tar"
    from safetensors.torch import load_file

    torch.save({"state_dict": load_file(w16_folder / "model.safetensors")}, ckpt)
    r = run("convert", ckpt, "--arch", "glmc_resnet32_w16", "--num-classes", "10", "-o", mine)
    assert r.exit_code == 2 and "not a glmc-zoo weights folder" in r.output and "Traceback" not in r.output
    assert _snapshot(mine) == before
    r = run("convert", ckpt, "--arch", "glmc_resnet32_w16", "--num-classes", "10", "-o", mine / "notes.txt")
    assert r.exit_code == 2 and "is a file" in r.output and _snapshot(mine) == before
    out = tmp_path / "weights"  # an earlier weights folder is replaced only when asked (--replace)
    assert run("convert", ckpt, "--arch", "glmc_resnet32_w16", "--num-classes", "10", "-o", out).exit_code == 0
    held = _snapshot(out)
    r = run("convert", ckpt, "--arch", "glmc_resnet32_w16", "--num-classes", "10", "-o", out)
    assert r.exit_code == 2 and "already holds a weights folder" in r.output and "--replace" in r.output
    assert _snapshot(out) == held
    r = run("convert", out, "--as-timm", "-o", out)  # its own source: refused, not replaced by a half-read copy
    assert r.exit_code == 2 and _snapshot(out) == held
    assert run("convert", ckpt, "--arch", "glmc_resnet32_w16", "--num-classes", "10", "-o", out,
               "--replace").exit_code == 0


@pytest.mark.slow
def test_train_writes_only_into_a_new_folder_or_the_run_it_resumes(tmp_path, tiny_lt, w16_folder):
    mine = _users_folder(tmp_path)
    before = _snapshot(mine)
    with pytest.raises(TrainError, match="files this run did not write .*notes.txt"):
        train(_cfg(), mine, device="cpu", progress=False, data=tiny_lt)
    assert _snapshot(mine) == before
    weights = _snapshot(w16_folder)
    with pytest.raises(TrainError, match="files this run did not write"):
        train(_cfg(), w16_folder, device="cpu", progress=False, data=tiny_lt)
    assert _snapshot(w16_folder) == weights
    done = tmp_path / "done"
    train(_cfg(), done, device="cpu", progress=False, data=tiny_lt)
    model = _snapshot(done / "model")
    with pytest.raises(TrainError, match="holds a finished run: .*another --output"):
        train(_cfg(), done, device="cpu", progress=False, data=tiny_lt)
    assert _snapshot(done / "model") == model
    part = tmp_path / "part"
    train(_cfg(epochs=2), part, device="cpu", progress=False, data=tiny_lt, stop_after=1)
    with pytest.raises(TrainError, match=f"holds a run in progress: .*--resume {part}"):
        train(_cfg(epochs=2), part, device="cpu", progress=False, data=tiny_lt)


@pytest.mark.slow
def test_two_writers_never_share_a_run_folder(tmp_path, cifar_root):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "glmc_zoo.cli", "train", "-c", "cifar10_lt_if100_w16_cpu", "--data-root",
           str(cifar_root), "-o", str(out), "--no-progress", "--set", "epochs=50", "--set", "max_images_per_class=20",
           "--set", "imbalance_factor=10", "--set", "test_per_class_limit=5", "--set", "amp=none",
           "--set", "compile=off"]
    first = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while not (out / "train_log.jsonl").is_file():  # the first run holds the folder
            assert first.poll() is None and time.monotonic() < deadline, first.communicate()
            time.sleep(0.2)
        second = subprocess.run(cmd + ["--resume", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=240)
        assert second.returncode == 2 and "another glmc-zoo train (pid " in second.stderr, second.stderr
        assert "Traceback" not in second.stderr
    finally:
        first.terminate()
        first.communicate(timeout=120)
    # the lock died with its holder (SIGTERM saved a checkpoint): the run can be claimed again, to resume it
    from glmc_zoo.training.rundir import RunDir

    assert (out / "checkpoint.pt").is_file()
    assert f"the stop was asked by SIGTERM (received by process {first.pid})" in (out / "run.log").read_text()
    with RunDir(out).claim(resume=out) as run:
        assert run.is_run() and not run.is_finished()


def test_a_failed_write_leaves_the_previous_file_whole_and_no_temporary(tmp_path):
    from glmc_zoo.atomic import write_bytes_atomic, write_text_atomic

    out = tmp_path / "out.json"
    write_text_atomic(out, '{"a": 1}')
    with pytest.raises(UnicodeEncodeError):  # text that cannot be encoded
        write_text_atomic(out, '{"b": "' + "x" * 100_000 + "\ud800" + '"}')
    with pytest.raises(TypeError):  # fails once the temporary file is open
        write_bytes_atomic(out, '{"c": 3}')
    assert out.read_text() == '{"a": 1}' and sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]
    with pytest.raises(OSError) as e:  # a part of the path is a file: the error names the target
        write_text_atomic(out / "x.json", "{}")
    assert str(out) in str(e.value.filename)


def test_cli_outputs_are_replaced_whole(tmp_path, cifar_test_images, w16_folder):
    out = tmp_path / "preds.json"
    out.write_text("previous")
    paths = cifar_test_images[0][:3]
    r = run("predict", "-m", w16_folder, *paths, "--format", "json", "-o", out)
    assert r.exit_code == 0, r.output
    assert len(json.loads(out.read_text())) == 3 and [p.name for p in tmp_path.iterdir()] == ["preds.json"]
    r = run("predict", "-m", w16_folder, *paths, "-o", tmp_path / "preds.json" / "inside.json")
    assert r.exit_code == 2 and "Traceback" not in r.output and "preds.json" in r.output


def test_images_that_pass_the_pixel_count_but_would_explode_are_that_images_error(tmp_path, cifar_test_images):
    from PIL import Image

    from glmc_zoo.inference import Predictor

    strip = tmp_path / "strip.png"
    Image.new("L", (3_000_000, 1)).save(strip)  # a few KB, 3M pixels: resizing it would take gigabytes
    tall = tmp_path / "tall.png"
    Image.new("RGB", (2, 500)).save(tall)
    good = cifar_test_images[0][0]
    results = Predictor(backend="torch").predict([good, str(strip), str(tall), good, Image.new("RGB", (0, 0))],
                                                 top_k=1)
    assert [r.error is None for r in results] == [True, False, False, True, False]
    assert "3000000x1 pixels" in results[1].error and "refused" in results[1].error
    assert "2x500 pixels, more than 100:1" in results[2].error
    assert "0x0 pixels: an empty image" in results[4].error
    assert results[0].predictions == results[3].predictions  # the rest of the batch is classified as before


def test_the_python_api_takes_one_image_or_any_iterable(cifar_test_images):
    from glmc_zoo.inference import Predictor

    p = Predictor(backend="torch")
    paths = cifar_test_images[0][:3]
    one = p.predict(paths[0], top_k=1)  # a single path is one image, not a string of characters
    assert len(one) == 1 and one[0].source == paths[0] and one[0].error is None
    assert len(p.predict(Path(paths[0]).read_bytes(), top_k=1)) == 1 and len(p.predict(Path(paths[0]), top_k=1)) == 1
    streamed = p.predict((x for x in paths), top_k=1)  # a generator is read as it goes
    assert [r.source for r in streamed] == paths
    assert [r.predictions for r in streamed] == [r.predictions for r in p.predict(paths, top_k=1)]
    with pytest.raises(TypeError, match="neither an image nor an iterable of images"):
        p.predict(42)


@pytest.mark.slow
def test_a_run_log_cut_by_a_crash_is_read_and_damage_is_named(tmp_path, tiny_lt):
    out = tmp_path / "run"
    train(_cfg(epochs=2, eval_every=1), out, device="cpu", progress=False, data=tiny_lt)
    log = out / "metrics.jsonl"
    whole = log.read_text()
    log.write_text(whole + '{"epoch": 3, "top1": 4')  # an append cut short by a crash
    r = run("report", out)
    assert r.exit_code == 0 and "| 2 (final) |" in r.output and "Traceback" not in r.output
    lines = whole.splitlines()
    log.write_text(lines[0][:20] + "\n" + lines[1] + "\n")  # damage in the middle: named, with the fix
    r = run("report", out)
    assert r.exit_code == 2 and f"{log}, line 1: not a log row" in r.output and "Traceback" not in r.output


@pytest.mark.slow
def test_stdout_carries_only_the_chosen_format(tmp_path, cifar_root, w16_folder):
    """A real process (native and library prints included): `export --int8 --format json` prints JSON alone."""
    calib = tmp_path / "calib"
    calib.mkdir()
    for d in sorted((cifar_root / "train").iterdir()):
        for f in sorted(d.glob("*.jpg"))[:3]:
            (calib / f"{d.name}_{f.name}").write_bytes(f.read_bytes())
    r = subprocess.run([sys.executable, "-m", "glmc_zoo.cli", "export", "-m", str(w16_folder), "-o",
                        str(tmp_path / "q.onnx"), "--int8", "--calibration", str(calib), "--format", "json"],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode in (0, 1), r.stderr[-2000:]  # 1: verification refused the int8 file (random weights)
    if r.returncode == 0:
        assert json.loads(r.stdout)["output"] == str(tmp_path / "q.onnx")
    else:
        assert r.stdout == "" and r.stderr.startswith("error: ")


def test_damaged_checkpoints_are_named_not_tracebacks(tmp_path, tiny_lt):
    out = tmp_path / "run"
    train(_cfg(epochs=2), out, device="cpu", progress=False, data=tiny_lt, stop_after=1)
    good = torch.load(out / "checkpoint.pt", weights_only=True)
    cases = {"missing": {k: v for k, v in good.items() if k != "optimizer"},
             "kinds": dict(good, epoch="one"),
             "weights": dict(good, model={k: v for k, v in good["model"].items() if not k.startswith("fc_cb")}),
             "config": dict(good, config=dict(good["config"], no_such_key=1))}
    expect = {"missing": "missing optimizer", "kinds": "damaged checkpoint", "weights": "do not fit",
              "config": "unknown config key 'no_such_key'"}
    for name, state in cases.items():
        torch.save(state, out / "checkpoint.pt")
        with pytest.raises((TrainError, ConfigError), match=expect[name]):
            train(_cfg(epochs=2), out, device="cpu", progress=False, data=tiny_lt, resume=out)
    (out / "checkpoint.pt").write_bytes(b"garbage")
    r = run("train", "-c", "cifar10_lt_if100_w16_cpu", "-o", out, "--resume", out, "--set", "epochs=2",
            "--set", "batch_size=32", "--set", "amp=none", "--set", "compile=off")
    assert r.exit_code == 2 and "not a readable glmc-zoo checkpoint" in r.output and "Traceback" not in r.output


def test_predict_refuses_an_empty_path():
    r = run("predict", "")
    assert r.exit_code == 2 and "empty image path" in r.output


def test_labels_that_do_not_match_the_outputs_are_refused_at_load_and_export(tmp_path, w16_folder, cifar_test_images):
    import shutil

    bad = tmp_path / "w"
    shutil.copytree(w16_folder, bad)
    cfg = json.loads((bad / "config.json").read_text())
    cfg["label_names"] = ["cat", "dog", "ship"]
    (bad / "config.json").write_text(json.dumps(cfg))
    img = cifar_test_images[0][0]
    r = run("predict", "-m", bad, img, "--backend", "torch")
    assert r.exit_code == 2 and "3 label_names for 10 classes" in r.output and "Traceback" not in r.output
    r = run("export", "-m", bad, "-o", tmp_path / "x.onnx")
    assert r.exit_code == 2 and "3 label_names for 10 classes" in r.output and not (tmp_path / "x.onnx").exists()


def _size_limited(limit: int):
    """preexec for a child process whose writes fail past `limit` bytes per file, as on a full disk (EFBIG
    instead of ENOSPC: the same path through the code, with no disk to fill)."""
    import resource
    import signal

    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with an error instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


@pytest.mark.slow
def test_a_full_disk_is_one_line_and_leaves_every_earlier_file_whole(tmp_path, cifar_root):
    import subprocess
    import sys

    cli = [sys.executable, "-m", "glmc_zoo.cli"]
    out = tmp_path / "preds.json"
    out.write_text('{"previous": true}')
    examples = str(Path(__file__).resolve().parents[1] / "examples")
    r = subprocess.run([*cli, "predict", examples, "--format", "json", "-o", str(out)], preexec_fn=_size_limited(300),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "Traceback" not in r.stderr and "the disk is full" in r.stderr, r.stderr[-2000:]
    assert out.read_text() == '{"previous": true}' and sorted(p.name for p in tmp_path.iterdir()) == ["preds.json"]

    run_dir = tmp_path / "run"
    train = [*cli, "train", "-c", "cifar10_lt_if100_w16_cpu", "--data-root", str(cifar_root), "-o", str(run_dir),
             "--no-progress", "--set", "max_images_per_class=20", "--set", "imbalance_factor=2", "--set",
             "test_per_class_limit=2", "--set", "amp=none", "--set", "compile=off"]
    r = subprocess.run([*train, "--set", "epochs=1"], preexec_fn=_size_limited(100_000), capture_output=True, text=True,
                       timeout=300)  # a checkpoint is ~2 MB
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-3000:]
    assert "checkpoint could not be written" in r.stderr and "start it again into a new folder" in r.stderr
    assert not [p for p in run_dir.iterdir() if "tmp" in p.name]  # no half-written checkpoint left
