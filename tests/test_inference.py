"""Preprocessing, both backends, and real-world input: every odd file gets a clear per-file error."""

import io
import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import timm
from PIL import Image

from glmc_zoo.errors import DeviceError, ImageLoadError, InferenceError
from glmc_zoo.inference import Predictor, Preprocess, expand_sources, load_image

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.parametrize("arch", ["glmc_resnet32_w16", "glmc_resnext50_32x4d"])
def test_preprocess_equals_timm_eval_transform(arch):
    model = timm.create_model(arch)
    tf = timm.data.create_transform(**timm.data.resolve_data_config({}, model=model))
    pre = Preprocess.from_config(model.pretrained_cfg)
    for f in ("cat.jpg", "rocket.jpg", "horse.png"):
        img = load_image(EXAMPLES / f)
        assert np.abs(tf(img).numpy() - pre(img)).max() <= 1e-6


def test_backends_agree(w16_folder, w16_onnx, cifar_test_images):
    paths = cifar_test_images[0][::10]
    t, o = Predictor(str(w16_folder)), Predictor(str(w16_onnx))
    assert t.backend.name == "torch" and o.backend.name == "onnx"
    assert t.preprocess == o.preprocess and t.labels == o.labels
    lt, lo = t.logits(paths), o.logits(paths)
    assert np.abs(lt - lo).max() <= 1e-4 and (lt.argmax(1) == lo.argmax(1)).all()
    rt, ro = t.predict(paths, top_k=3), o.predict(paths, top_k=3)
    assert [r.predictions[0]["index"] for r in rt] == [r.predictions[0]["index"] for r in ro]


def test_onnx_path_runs_without_torch(w16_onnx, w16_folder, cifar_test_images):
    """As in a deployment with only onnxruntime installed: torch (and timm) cannot be imported."""
    code = (
        "import sys, json\n"
        "sys.modules['torch'] = None; sys.modules['timm'] = None\n"
        "from glmc_zoo.inference import Predictor\n"
        "p = Predictor(sys.argv[1])\n"
        "r = p.predict(sys.argv[2:], top_k=2)\n"
        "assert sys.modules['torch'] is None\n"
        "print(json.dumps([x.predictions[0]['index'] for x in r]))\n"
    )
    paths = cifar_test_images[0][:30]
    r = subprocess.run([sys.executable, "-c", code, str(w16_onnx), *paths], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    got = [int(i) for i in r.stdout.strip().strip("[]").split(",")]
    want = [x.predictions[0]["index"] for x in Predictor(str(w16_folder)).predict(paths)]
    assert got == want


@pytest.mark.slow
def test_eval_of_an_onnx_file_runs_without_torch(cifar_root):
    """`glmc-zoo eval -m model.onnx` needs what `predict -m model.onnx` needs: torch and timm cannot be imported,
    and the numbers are those of the same weights on PyTorch."""
    from glmc_zoo.evaluation import evaluate_model

    tag = "glmc_resnet32_w16.cifar10_lt_if100_e200_jpeg"
    onnx = Path(__file__).resolve().parents[1] / "glmc_zoo" / "weights" / tag / "model.onnx"
    code = ("import sys, json\n"
            "sys.modules['torch'] = None; sys.modules['timm'] = None\n"
            "sys.argv = ['glmc-zoo', 'eval', '-m', sys.argv[1], '--data-root', sys.argv[2], '--per-class-limit', '30',"
            " '--format', 'json']\n"
            "from glmc_zoo.cli import main\n"
            "main()\n")
    r = subprocess.run([sys.executable, "-c", code, str(onnx), str(cifar_root)], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr[-2000:]
    got = json.loads(r.stdout)
    want = evaluate_model(tag, cifar_root, per_class_limit=30, device="cpu")
    assert got["n"] == want["n"] == 300 and got["top1"] == want["top1"] and got["many"] == want["many"]
    assert got["per_class"] == want["per_class"]


def test_bad_backend_and_device():
    with pytest.raises(InferenceError, match="--backend"):
        Predictor("glmc_resnet32_w16", backend="tf")
    with pytest.raises(InferenceError, match="needs an .onnx file"):
        Predictor("glmc_resnet32_w16", backend="onnx")
    with pytest.raises(DeviceError, match="--device 'tpu': use auto, cpu, cuda or cuda:N"):
        Predictor(backend="torch", device="tpu")


def test_cuda_requested_without_gpu_says_why(w16_onnx, w16_folder):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(InferenceError, match="--device cuda: .*(no GPU|no CUDA)"):
        Predictor(str(w16_folder), device="cuda")
    # the CPU build of onnxruntime has no CUDA provider; onnxruntime-gpu has one that cannot start here: either
    # way one line says why (issue 46: the test expected the CPU build's words only)
    why = "(this onnxruntime has no CUDA provider|the CUDA provider did not start|the GPU providers failed to start)"
    with pytest.raises(InferenceError, match=f"--device cuda: {why}"):
        Predictor(str(w16_onnx), device="cuda")
    with pytest.raises(InferenceError, match="--device cuda:1: "):  # a GPU index: named as given
        Predictor(str(w16_folder), device="cuda:1")
    with pytest.raises(InferenceError, match=f"--device cuda:1: {why}"):
        Predictor(str(w16_onnx), device="cuda:1")


@pytest.mark.skipif(not os.environ.get("GLMC_ZOO_ORT_GPU"), reason=(
    "needs onnxruntime-gpu on a machine where CUDA cannot start: `pip install --target DIR onnxruntime-gpu`, "
    "then GLMC_ZOO_ORT_GPU=DIR (CI's venv has the CPU onnxruntime only)"))
def test_onnxruntime_gpu_that_cannot_start_prints_one_line_not_its_native_errors():
    """With onnxruntime-gpu where its CUDA libraries cannot load, onnxruntime's native logger prints red
    `[E:onnxruntime:...] Failed to load library` lines; predict says why in one line and runs on the CPU."""
    env = dict(os.environ, PYTHONPATH=os.environ["GLMC_ZOO_ORT_GPU"], CUDA_VISIBLE_DEVICES="")
    r = subprocess.run([sys.executable, "-m", "glmc_zoo.cli", "predict", str(EXAMPLES / "cat.jpg"), "--format", "jsonl"],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "CUDAExecutionProvider" in subprocess.run(
        [sys.executable, "-c", "import onnxruntime as o; print(o.get_available_providers())"],
        capture_output=True, text=True, env=env).stdout  # the GPU build was the one imported
    assert r.stderr.splitlines() == [
        "model glmc_resnet32_w16.cifar10_lt_if100_e200_jpeg on onnx/cpu (the CUDA provider did not start (no GPU "
        "visible, or its CUDA/cuDNN libraries are missing))"]


# --- real-world input -------------------------------------------------------------------------


def _png_with_declared_size(path: Path, w: int, h: int) -> None:
    """A tiny valid PNG whose IHDR declares w x h (a decompression bomb's header)."""
    buf = io.BytesIO()
    Image.new("RGB", (1, 1)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    ihdr = struct.pack(">II", w, h) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr) & 0xFFFFFFFF)
    path.write_bytes(bytes(data))


@pytest.fixture(scope="module")
def odd_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("odd")
    photo = Image.open(EXAMPLES / "cat.jpg").convert("RGB")
    good, bad = {}, {}
    good["gray.png"] = photo.convert("L")
    good["rgba.png"] = photo.convert("RGBA")
    pal = photo.convert("P", palette=Image.ADAPTIVE)
    pal.info["transparency"] = 0
    good["palette.png"] = pal
    good["cmyk.jpg"] = photo.convert("CMYK")
    for name, im in good.items():
        im.save(d / name)
    photo.save(d / "progressive.jpg", progressive=True, quality=85)
    photo.save(d / "image.webp")
    photo.save(d / "image.bmp")
    photo.convert("P").save(d / "image.gif")
    Image.fromarray(np.asarray(photo.convert("L"), np.uint16) * 257).save(d / "sixteen.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    photo.resize((40, 20)).save(d / "rotated.jpg", exif=exif)
    good = sorted(list(good) + ["progressive.jpg", "image.webp", "image.bmp", "image.gif", "sixteen.png",
                                "rotated.jpg"])
    (d / "empty.jpg").write_bytes(b"")
    (d / "text.jpg").write_text("this is not an image\n")
    full = (EXAMPLES / "cat.jpg").read_bytes()
    (d / "truncated.jpg").write_bytes(full[: len(full) // 3])
    png = io.BytesIO()
    photo.save(png, "PNG")
    (d / "truncated.png").write_bytes(png.getvalue()[: len(png.getvalue()) // 2])
    _png_with_declared_size(d / "bomb.png", 100_000, 100_000)
    bad = {"empty.jpg": "empty file", "text.jpg": "not an image", "truncated.jpg": "truncated",
           "truncated.png": "truncated", "bomb.png": "decompression bomb", "missing.jpg": "no such file"}
    return d, good, bad


def test_every_odd_but_valid_image_loads_as_rgb(odd_files):
    d, good, _ = odd_files
    for name in good:
        im = load_image(d / name)
        assert im.mode == "RGB", name
    assert load_image(d / "rotated.jpg").size == (20, 40)  # EXIF rotation applied
    sixteen = np.asarray(load_image(d / "sixteen.png"))
    assert 20 < sixteen.mean() < 235  # scaled from 16 bits, not clipped to white
    rgba = np.asarray(load_image(d / "rgba.png"))
    assert np.abs(rgba.astype(int) - np.asarray(load_image(EXAMPLES / "cat.jpg")).astype(int)).max() == 0


@pytest.mark.parametrize("name", ["empty.jpg", "text.jpg", "truncated.jpg", "truncated.png", "bomb.png",
                                  "missing.jpg"])
def test_each_bad_file_has_a_clear_message(odd_files, name):
    d, _, bad = odd_files
    with pytest.raises(ImageLoadError) as e:
        load_image(d / name)
    assert str(d / name) in str(e.value) and bad[name] in str(e.value)


def test_one_bad_file_never_loses_the_batch(odd_files, w16_folder):
    d, good, bad = odd_files
    sources = [str(d / n) for n in sorted(set(good) | set(bad))]
    results = Predictor(str(w16_folder)).predict(sources, top_k=2, batch_size=4)
    assert [r.source for r in results] == sources  # input order
    for r in results:
        name = Path(r.source).name
        if name in bad:
            assert r.error and bad[name] in r.error and r.predictions == []
        else:
            assert r.error is None and len(r.predictions) == 2


def test_expand_sources_recurses_image_files_only(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(tmp_path / "a" / "x.png")
    Image.new("RGB", (8, 8)).save(tmp_path / "a" / "b" / "y.JPG")
    (tmp_path / "a" / "notes.txt").write_text("x")
    got = expand_sources([str(tmp_path / "a"), str(tmp_path / "a" / "*.png"), str(tmp_path / "none*.jpg")])
    assert got == [str(tmp_path / "a" / "b" / "y.JPG"), str(tmp_path / "a" / "x.png"), str(tmp_path / "a" / "x.png"),
                   str(tmp_path / "none*.jpg")]


def test_arrays_and_pil_inputs(w16_folder):
    p = Predictor(str(w16_folder))
    arr = np.asarray(Image.open(EXAMPLES / "cat.jpg").convert("RGB"))
    r = p.predict([arr, Image.open(EXAMPLES / "cat.jpg"), arr.astype(np.float32)])
    assert r[0].predictions == r[1].predictions and r[2].error and "uint8" in r[2].error
    # encoded bytes (a web request's body), a binary file object, and nonsense: one bad item loses nothing
    import io

    data = (EXAMPLES / "cat.jpg").read_bytes()
    with open(EXAMPLES / "cat.jpg", "rb") as f:
        r = p.predict([data, io.BytesIO(data), f, bytearray(data), b"", b"not an image", 42, None])
    assert all(x.predictions == r[0].predictions for x in r[:4]) and r[0].predictions
    from_path = p.predict([str(EXAMPLES / "cat.jpg")])[0].predictions  # batch of 1: scores equal to float rounding
    assert [x["index"] for x in r[0].predictions] == [x["index"] for x in from_path]
    assert np.allclose([x["score"] for x in r[0].predictions], [x["score"] for x in from_path], atol=1e-5)
    assert [x.error for x in r[:4]] == [None] * 4
    assert "empty" in r[4].error and "not an image Pillow can read" in r[5].error
    assert "not an image source" in r[6].error and "not an image source" in r[7].error
    assert os.path.basename(__file__)  # keep the module importable by path


# --- the folder pipeline: parallel decoding, bounded, in order; draft decoding -------------------


def _same_results(a, b, atol=1e-5):
    assert [r.source for r in a] == [r.source for r in b]
    assert [r.error for r in a] == [r.error for r in b]
    for x, y in zip(a, b):
        assert [p["index"] for p in x.predictions] == [p["index"] for p in y.predictions], x.source
        assert np.allclose([p["score"] for p in x.predictions], [p["score"] for p in y.predictions], atol=atol)


def test_parallel_pipeline_equals_one_image_at_a_time(odd_files, tmp_path):
    """Good, broken and huge files mixed: many decoding threads and small batches give, in input order, what
    one thread predicting one file at a time gives, errors included."""
    d, good, bad = odd_files
    big = Image.open(EXAMPLES / "cat.jpg").convert("RGB").resize((2400, 1600), Image.BICUBIC)
    big.save(tmp_path / "big.jpg", quality=90)
    _png_with_declared_size(tmp_path / "huge.png", 20_000, 20_000)  # over MAX_PIXELS: that file's error
    sources = [str(tmp_path / "big.jpg"), str(tmp_path / "huge.png")] + [str(d / n) for n in sorted(set(good) | set(bad))]
    sources = sources * 3
    p = Predictor(backend="onnx", workers=4)
    one_by_one = [Predictor(backend="onnx", workers=1).predict([s], top_k=3)[0] for s in sources]
    for batch_size in (1, 3, 64):
        _same_results(p.predict(sources, top_k=3, batch_size=batch_size), one_by_one)
    assert sum(r.error is not None for r in one_by_one) == 3 * (len(bad) + 1)


def test_images_in_flight_are_bounded(cifar_test_images):
    """A long stream is read as it goes: never more than three batches of images decoded ahead of the output."""
    paths = cifar_test_images[0][:50] * 4
    pulled = 0

    def stream():
        nonlocal pulled
        for s in paths:
            pulled += 1
            yield s

    ahead = []
    for i, _ in enumerate(Predictor(backend="onnx", workers=3).iter_predict(stream(), top_k=1, batch_size=8)):
        ahead.append(pulled - (i + 1))
    assert len(ahead) == len(paths) and max(ahead) <= 3 * 8


def test_draft_decoding_is_the_default_and_keeps_the_predictions(cifar_test_images, tmp_path):
    from glmc_zoo.inference import DRAFT_FACTOR, DRAFTED

    paths = cifar_test_images[0]
    full = Predictor(backend="onnx", draft=False)
    draft = Predictor(backend="onnx")
    assert draft.draft is True
    # The shipped 32 px test JPEGs are too small to draft: identical results.
    _same_results(draft.predict(paths, top_k=10), full.predict(paths, top_k=10), atol=0)
    # Photo-sized copies (768-1280 px) are drafted to 1/2 or 1/4, and top-1 stays (measured: >= 99.5%).
    rng = np.random.default_rng(0)
    big = []
    for i, f in enumerate(paths):
        side = int(rng.integers(768, 1281))
        big.append(tmp_path / f"{i}.jpg")
        Image.open(f).convert("RGB").resize((side, side * 3 // 4), Image.BICUBIC).save(big[-1], quality=90)
    assert load_image(big[0], draft_size=DRAFT_FACTOR * draft.preprocess.scale_size).info[DRAFTED]["scale"] >= 2
    a, b = draft.predict(big, top_k=1), full.predict(big, top_k=1)
    agree = np.mean([x.predictions[0]["index"] == y.predictions[0]["index"] for x, y in zip(a, b)])
    assert agree >= 0.98, agree
    # --no-draft is the eval preprocessing bit for bit: its scores are those of `logits`.
    probs = np.asarray([[d["score"] for d in sorted(r.predictions, key=lambda d: d["index"])]
                        for r in full.predict(big[:6], top_k=10)])
    logits = full.logits(big[:6])
    want = np.exp(logits - logits.max(1, keepdims=True))
    assert np.allclose(probs, want / want.sum(1, keepdims=True), atol=1e-6)


@pytest.mark.parametrize("orientation", [1, 6, 8])
def test_a_drafted_jpeg_has_the_full_decodes_geometry(tmp_path, orientation):
    """The drafted image is resampled over the full decode's crop box (EXIF rotation included): the
    preprocessed pixels differ only by the DCT's smoothing, not by a shifted or stretched crop."""
    pre = Preprocess(input_size=(3, 32, 32), crop_pct=0.875)
    exif = Image.Exif()
    exif[0x0112] = orientation
    src = Image.open(EXAMPLES / "coffee.jpg").convert("RGB")
    src.resize((1900, 1000), Image.BICUBIC).save(tmp_path / "p.jpg", quality=95, exif=exif)
    drafted = load_image(tmp_path / "p.jpg", draft_size=8 * pre.scale_size)
    full = load_image(tmp_path / "p.jpg")
    assert drafted.size != full.size and drafted.info["glmc_zoo.drafted"]["full"] == full.size
    diff = np.abs(pre(drafted) - pre(full))
    assert diff.mean() < 0.01 and diff.max() < 0.15
    # Cropped since (Pillow copies `info`): the record no longer applies, the crop is this image's own.
    part = drafted.crop((0, 0, drafted.width // 2, drafted.height // 2))
    assert "glmc_zoo.drafted" in part.info and np.array_equal(pre(part), pre(Image.fromarray(np.asarray(part))))
