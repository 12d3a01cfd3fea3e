"""The deployment install (issue 46): `pip install glmc-zoo[onnx]` brings onnxruntime, numpy, Pillow and Typer, no
torch and no timm, and runs `predict`, `list`, `info` and `eval -m model.onnx` with the bundled default model.

A real venv, built from this checkout by pip (from the package index, as a user's install is), cached by the
hash of pyproject.toml and the package's files so that later runs reuse it."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _fingerprint() -> str:
    h = hashlib.sha256((ROOT / "pyproject.toml").read_bytes())
    for p in sorted((ROOT / "glmc_zoo").rglob("*")):
        if p.is_file() and "__pycache__" not in p.parts:
            h.update(str(p.relative_to(ROOT)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()[:12]


@pytest.fixture(scope="module")
def deploy_bin(tmp_path_factory) -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "glmc-zoo" / f"deploy-venv-{_fingerprint()}"
    py = cache / "bin" / "python"
    if not (py.is_file() and subprocess.run([py, "-c", "import glmc_zoo, onnxruntime"], capture_output=True).returncode == 0):
        venv.create(cache, with_pip=True, clear=True)
        build = tmp_path_factory.mktemp("build")
        r = subprocess.run([py, "-m", "pip", "install", "-q", f"{ROOT}[onnx]"], capture_output=True, text=True,
                           timeout=900, cwd=build)
        if r.returncode != 0:
            pytest.fail(f"pip install glmc-zoo[onnx] failed:\n{r.stderr[-3000:]}")
    return cache / "bin"


@pytest.mark.slow
def test_the_deployment_install_predicts_lists_and_evaluates_without_torch(deploy_bin, tmp_path, cifar_root):
    py, cli = deploy_bin / "python", deploy_bin / "glmc-zoo"
    r = subprocess.run([py, "-c", "import importlib.util as u; print([m for m in ('torch', 'timm', 'torchvision', "
                                  "'huggingface_hub') if u.find_spec(m)])"], capture_output=True, text=True)
    assert r.stdout.strip() == "[]", r.stdout  # nothing of the PyTorch stack is installed
    env = dict(os.environ, PYTHONPATH="")

    def ok(*args):
        out = subprocess.run([cli, *map(str, args)], capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)
        assert out.returncode == 0 and "Traceback" not in out.stderr, (args, out.stderr[-2000:])
        return out.stdout, out.stderr

    table, said = ok("predict", ROOT / "examples", "-k", "3")
    assert "on onnx/cpu" in said + table and "cat.jpg" in table and "horse" in table
    assert "glmc_resnet32_w16" in ok("list", "--pretrained")[0]
    default = json.loads(ok("info", "glmc_resnet32_w16", "--format", "json")[0])["name"]
    assert default.startswith("glmc_resnet32_w16.")
    code = "import glmc_zoo.inference as i; print(i.bundled_onnx())"
    onnx = subprocess.run([py, "-c", code], capture_output=True, text=True, env=env).stdout.strip()
    metrics = json.loads(ok("eval", "-m", onnx, "--data-root", cifar_root, "--per-class-limit", "10", "--format", "json")[0])
    assert metrics["n"] == 100 and 0 <= metrics["top1"] <= 100
    # a job that needs PyTorch says which extra brings it, in one line
    out = subprocess.run([cli, "predict", ROOT / "examples" / "cat.jpg", "--backend", "torch"], capture_output=True,
                         text=True, cwd=tmp_path, env=env)
    assert out.returncode == 2 and "Traceback" not in out.stderr and "torch" in out.stderr, out.stderr
    out = subprocess.run([cli, "export", "-m", "glmc_resnet32_w16", "-o", tmp_path / "m.onnx"], capture_output=True,
                         text=True, cwd=tmp_path, env=env)
    assert out.returncode == 2 and "pip install 'glmc-zoo[" in out.stderr and "Traceback" not in out.stderr, out.stderr
