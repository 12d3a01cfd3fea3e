"""A sweep over every file the project reads (issue 47): config.json and its `glmc` block, split.json, the run
logs (train_log.jsonl, metrics.jsonl), an `.onnx`'s metadata. Each field of a real file is deleted, given
another type, a huge or non-finite value, or a deeply nested one; the command that reads the file must then
work or say in one line what is wrong (exit 2), never end in a traceback, and never print a NaN score."""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from glmc_zoo.cli import app

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "glmc_zoo" / "weights" / "glmc_resnet32_w16.cifar10_lt_if10_e200_jpeg"
RUN = ROOT / "runs" / "cifar10_lt_if10_w16"
DEEP = json.loads("[" * 50 + "]" * 50)  # deep, but parseable: what a reader must still refuse or ignore calmly


def _variants(value):
    """The damaged values tried in place of `value`."""
    return [("deleted", None), ("text", "x"), ("list", [1, "a"]), ("object", {"a": 1}), ("huge", 10 ** 30),
            ("nan", math.nan), ("negative", -1), ("deep", DEEP), ("null", "NULL")]


def _damaged(obj: dict):
    """(where, damaged copy) for each top-level key of `obj`, and for each key of its nested objects one level down."""
    for key in list(obj):
        for how, new in _variants(obj[key]):
            copy = json.loads(json.dumps(obj))
            if how == "deleted":
                del copy[key]
            else:
                copy[key] = None if new == "NULL" else new
            yield f"{key}:{how}", copy
        if isinstance(obj[key], dict):
            for sub in list(obj[key])[:6]:
                for how, new in _variants(obj[key][sub]):
                    copy = json.loads(json.dumps(obj))
                    if how == "deleted":
                        del copy[key][sub]
                    else:
                        copy[key][sub] = None if new == "NULL" else new
                    yield f"{key}.{sub}:{how}", copy


def _check(result, where):
    assert result.exception is None or isinstance(result.exception, SystemExit), (where, repr(result.exception))
    assert result.exit_code in (0, 2), (where, result.exit_code, result.output[-500:])
    if result.exit_code == 2:
        lines = [x for x in result.output.splitlines() if x.startswith("error: ")]
        assert len(lines) == 1, (where, result.output[-500:])
    if result.exit_code == 0:  # a result: no NaN in it (an error may name the NaN it found)
        assert not re.search(r"(?<![a-z])nan(?![a-z])", result.output, re.IGNORECASE), (where, result.output[-300:])


def _write(path: Path, value) -> None:
    path.write_text(json.dumps(value, allow_nan=True))


def test_a_damaged_weights_config_is_one_line_or_works(tmp_path):
    folder = tmp_path / "w"
    shutil.copytree(SHIPPED, folder, ignore=shutil.ignore_patterns("model.onnx"))
    original = json.loads((folder / "config.json").read_text())
    runner = CliRunner()
    n = 0
    for where, cfg in _damaged(original):
        _write(folder / "config.json", cfg)
        _check(runner.invoke(app, ["info", str(folder), "--format", "json"]), f"info {where}")
        n += 1
    assert n > 100


def test_a_damaged_split_or_run_log_is_one_line_or_works(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(RUN, run, ignore=shutil.ignore_patterns("*.png", "checkpoint.pt", "model"))
    runner = CliRunner()
    split = json.loads((RUN / "split.json").read_text())
    split.pop("train_indices", None)  # 20,000 indices: kept out of the sweep's copies for speed (the reader is the same)
    for where, value in _damaged(dict(split, test_files=None, holdout=0.0)):
        _write(run / "split.json", value)
        _check(runner.invoke(app, ["report", str(run)]), f"split.json {where}")
    shutil.copy(RUN / "split.json", run / "split.json")
    for name in ("train_log.jsonl", "metrics.jsonl"):
        rows = [json.loads(x) for x in (RUN / name).read_text().splitlines()]
        for where, row in _damaged(rows[-1]):
            (run / name).write_text("".join(json.dumps(r, allow_nan=True) + "\n" for r in [*rows[:-1], row, rows[-1]]))
            _check(runner.invoke(app, ["report", str(run)]), f"{name} {where}")
        shutil.copy(RUN / name, run / name)


@pytest.mark.slow
def test_a_damaged_onnx_metadata_is_one_line_or_works(w16_onnx, tmp_path):
    import onnx

    proto = onnx.load(str(w16_onnx))
    entry = next(e for e in proto.metadata_props if e.key == "glmc_zoo")
    info = json.loads(entry.value)
    runner = CliRunner()
    cat = ROOT / "examples" / "cat.jpg"
    for i, (where, value) in enumerate(_damaged(info)):
        if not where.startswith(("preprocess", "label_names", "class_counts")):
            continue  # the fields predict reads
        entry.value = json.dumps(value, allow_nan=True)
        path = tmp_path / f"m{i}.onnx"
        onnx.save(proto, str(path))
        _check(runner.invoke(app, ["predict", str(cat), "-m", str(path), "--format", "json"]), f"onnx {where}")
        path.unlink()
