"""examples/timm_train.py: timm's own train.py sees the GLMC architectures and its arguments unchanged.

timm's train.py is not in the timm wheel (CI cannot clone it), so a script that parses its arguments the
way train.py does (`--model`, `--model-kwargs` through timm's own `ParseKwargs`) and builds the model the way
it does stands in for it here; the launcher under test is the real one, run as a user runs it."""

import json
import subprocess
import sys
from pathlib import Path

LAUNCHER = Path(__file__).resolve().parents[1] / "examples" / "timm_train.py"

TRAIN_PY = '''
import argparse, json, sys
import timm, torch
from timm.utils import ParseKwargs
from helper_next_to_train_py import NAME  # train.py's folder is importable, as under `python train.py`

p = argparse.ArgumentParser()
p.add_argument("--model")
p.add_argument("--num-classes", type=int)
p.add_argument("--model-kwargs", nargs="*", default={}, action=ParseKwargs)
args = p.parse_args()
model = timm.create_model(args.model, num_classes=args.num_classes, **args.model_kwargs).train()
model(torch.randn(4, 3, 32, 32)).logsumexp(1).mean().backward()
print(json.dumps(dict(argv0=sys.argv[0], name=NAME, kwargs=args.model_kwargs,
                      no_grad=[n for n, q in model.named_parameters() if q.grad is None])))
'''


def _run(*args, cwd):
    return subprocess.run([sys.executable, str(LAUNCHER), *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


def test_the_launcher_registers_glmc_and_passes_the_arguments(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "train.py").write_text(TRAIN_PY)
    (tmp_path / "src" / "helper_next_to_train_py.py").write_text("NAME = 'helper'\n")
    r = _run(tmp_path / "src" / "train.py", "--model", "glmc_resnet32_w16", "--num-classes", 7,
             "--model-kwargs", "training_heads=False", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    # the value reaches create_model as the bool False (timm's ParseKwargs), and every parameter gets a gradient
    assert out["kwargs"] == {"training_heads": False} and out["no_grad"] == [] and out["name"] == "helper"
    assert out["argv0"].endswith("train.py")
    r = _run(tmp_path / "src" / "train.py", "--model", "glmc_resnet32_w16", "--num-classes", 7, cwd=tmp_path)
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert any(n.startswith("fc.") for n in out["no_grad"])  # the full model: forward() leaves the training heads


def test_the_launcher_names_a_missing_script(tmp_path):
    for args in ([], [tmp_path / "nope.py"], [tmp_path]):
        r = _run(*args, cwd=tmp_path)
        assert r.returncode == 1 and "usage: python examples/timm_train.py PATH/TO/train.py" in r.stderr
        assert "Traceback" not in r.stderr
        if args:
            assert f"{args[0]}: not a Python script that exists" in r.stderr
