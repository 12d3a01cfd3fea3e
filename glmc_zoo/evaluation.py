"""Evaluation on a folder of class folders: top-1 / top-5, per-class accuracy, many / medium / few
(GLMC_REFERENCE section 7). numpy only: `glmc-zoo eval -m model.onnx` needs what `predict -m model.onnx`
needs (onnxruntime, numpy, Pillow), not torch. Training's in-run evaluation uses the same `summarize`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from glmc_zoo._meta import IMAGE_SUFFIXES
from glmc_zoo.errors import DataError
from glmc_zoo.images import image_file_paths
from glmc_zoo.inference import Predictor
from glmc_zoo.jsonfile import read_json

__all__ = ["evaluate_model", "list_class_folder", "shot_groups", "summarize"]


#: The long-tail groups by training images per class (GLMC, LDAM, ...): name, rule as printed, lower bound
#: (exclusive) and upper bound (inclusive).
SHOT_GROUPS = (("many", "> 100", 100, None), ("medium", "21-100", 20, 100), ("few", "<= 20", None, 20))


def shot_groups(train_counts: list[int] | np.ndarray) -> dict[str, np.ndarray]:
    """Class indices of the many (n > 100), medium (20 < n <= 100) and few (n <= 20) groups."""
    n = np.asarray(train_counts)
    return {name: np.flatnonzero((n > (lo if lo is not None else -1)) & (n <= (hi if hi is not None else np.inf)))
            for name, _, lo, hi in SHOT_GROUPS}


def summarize(pred_topk: np.ndarray, targets: np.ndarray, train_counts: list[int] | None,
              num_classes: int) -> dict:
    """Metrics from the top-k predictions (N, k) and the labels (N,).

    Many/medium/few average the per-class accuracies of each group (the long-tail convention).
    """
    top1 = pred_topk[:, 0] == targets
    conf = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(conf, (targets, pred_topk[:, 0]), 1)
    per_class_n = conf.sum(1)
    per_class = np.where(per_class_n > 0, conf.diagonal() / np.maximum(per_class_n, 1), np.nan)
    out = dict(top1=100.0 * float(top1.mean()), n=int(len(targets)),
               per_class=[None if np.isnan(a) else round(100.0 * float(a), 4) for a in per_class],
               confusion=conf.tolist())
    if pred_topk.shape[1] >= 5:
        out["top5"] = 100.0 * float((pred_topk[:, :5] == targets[:, None]).any(1).mean())
    if train_counts is not None:
        for group, idx in shot_groups(train_counts).items():
            vals = per_class[idx]
            vals = vals[~np.isnan(vals)]
            out[group] = 100.0 * float(vals.mean()) if len(vals) else None
    return out


def list_class_folder(root: Path) -> tuple[list[str], list[str], np.ndarray]:
    if not root.is_dir():
        raise DataError(f"{root}: not a directory. Expected DIR/train/<class>/*.jpg and DIR/test/<class>/*.jpg")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(f"{root}: no class folders. Put each class's images in {root}/<class>/")
    """The class names (sorted folder names), the image files of each (recursively, hidden ones skipped) and
    their class indices."""
    paths, targets, empty = [], [], []
    for c, name in enumerate(classes):
        files = image_file_paths(root / name)  # recursive; hidden files and folders skipped
        if not files:
            empty.append(name)
        paths += files
        targets += [c] * len(files)
    if empty:
        raise DataError(f"{root}: class folders with no image files ({', '.join(IMAGE_SUFFIXES)}): "
                        f"{', '.join(empty[:10])}{' ...' if len(empty) > 10 else ''}. Add images or remove the folders.")
    return classes, paths, np.asarray(targets, dtype=np.int64)



def evaluate_model(model_ref: str, data_root: str | Path, batch_size: int = 256, per_class_limit: int = 0,
                   device: str = "auto", split: str | Path | None = None, draft: bool = False) -> dict:
    """top-1, top-5, many / medium / few and per-class accuracy on `data_root/test/<class>/*`
    (or `val/`), preprocessed exactly as deployment does (`glmc_zoo.inference.Preprocess`).

    Class folders are matched to the model's label names; the many/medium/few groups use the
    training counts stored with the weights (our trained models) or else `data_root/train`.
    `per_class_limit` > 0 takes the first N files of each class (a fixed, reproducible subset).
    `split`: a run's split.json (or its run directory) whose held-out `test_files` (`--set holdout`)
    are the test set, read under `data_root`. `model_ref` may also be an exported `.onnx` file (run on
    onnxruntime; its groups come from the training counts the export recorded). `draft`: JPEG draft
    decoding as `Predictor` does it by default (off: the full decode that training's evaluation uses).
    """
    root = Path(data_root)
    test_dir = root / "test" if (root / "test").is_dir() else root / "val"
    if not test_dir.is_dir():
        test_dir = root  # a folder of class folders given directly
    if split is None:
        split = recorded_split(model_ref)  # a run trained with holdout: its held-out files, never its training images
    if split is not None:
        test_dir = root
        classes, paths, targets = _held_out_files(root, Path(split))
    else:
        classes, paths, targets = list_class_folder(test_dir)
    onnx = str(model_ref).endswith(".onnx")
    predictor = Predictor(model_ref, backend="onnx" if onnx else "torch", device=device, draft=draft)
    labels = list(predictor.labels)
    missing = [c for c in classes if c not in labels]
    if missing:
        raise DataError(f"{test_dir}: class folders {missing[:5]} are not among the model's labels "
                        f"{labels[:10]}...; name the folders after the model's classes")
    remap = np.asarray([labels.index(c) for c in classes])
    targets = remap[targets]
    if per_class_limit:
        keep = np.concatenate([np.flatnonzero(targets == c)[:per_class_limit] for c in np.unique(targets)])
        paths, targets = [paths[i] for i in keep], targets[keep]
    preds = []
    for r in predictor.iter_predict(paths, top_k=5, batch_size=batch_size):
        if r.error:
            raise DataError(f"evaluation stopped: {r.error}")
        preds.append([p["index"] for p in r.predictions])
    # Group classes by the counts the weights were trained with (stored with our weights), else by
    # the data root's own train/ folder.
    if onnx:  # recorded by the export (weights trained by glmc-zoo)
        counts = predictor.backend.info.get("class_counts")
    else:  # the torch backend: torch is there
        from glmc_zoo.hub import training_counts

        counts = training_counts(model_ref, predictor.backend.model)
    if counts is None and (root / "train").is_dir():
        train_classes, _, train_targets = list_class_folder(root / "train")
        if set(train_classes) != set(classes):
            only_train, only_test = sorted(set(train_classes) - set(classes)), sorted(set(classes) - set(train_classes))
            raise DataError(f"{root}: train/ and {test_dir.name}/ hold different classes (only in train: "
                            f"{only_train[:10] or 'none'}; only in {test_dir.name}: {only_test[:10] or 'none'}), so "
                            f"many/medium/few cannot be grouped; give both the same class folders")
        train_remap = np.asarray([labels.index(c) for c in train_classes])  # by name, not by position
        counts = np.bincount(train_remap[train_targets], minlength=len(labels)).tolist()
    out = summarize(np.asarray(preds), targets, counts, len(labels))
    out.update(model=model_ref, data=str(test_dir), classes=labels,
               **({"split": str(split), "images": len(paths)} if split is not None else {"images": len(paths)}))
    return out


def recorded_split(model_ref: str | Path) -> Path | None:
    """The held-out test split of the run a weights folder comes from: `RUN/split.json` when `model_ref` is a run's
    `model/` folder (or the run directory) and that run held out part of each class (`--set holdout`); None when
    the run had its own test folder. A folder whose record says it was trained with holdout but that has no run
    beside it is an error (scoring the whole folder would count training images as test images)."""
    ref = str(model_ref).removeprefix("local-dir:")
    folder = Path(ref)
    if not folder.is_dir():
        return None
    for run in (folder, folder.parent):
        split = run / "split.json"
        if split.is_file() and (folder == run or folder.name == "model"):
            try:
                held = read_json(split).get("test_files")
            except (OSError, ValueError, AttributeError):
                return None  # named when read as --split
            return split if held else None
    try:
        cfg = read_json(folder / "config.json")
        holdout = ((cfg.get("glmc") or {}).get("train_config") or {}).get("holdout") or 0
    except (OSError, ValueError, AttributeError):
        return None
    if isinstance(holdout, (int, float)) and holdout > 0:
        raise DataError(f"{folder}: trained with holdout={holdout:g} (part of each class held out as its test "
                        f"split), but no run directory beside it lists those files; give the run's split with "
                        f"--split RUN/split.json, or evaluate on a separate test folder")
    return None


def _held_out_files(root: Path, split: Path) -> tuple[list[str], list[str], np.ndarray]:
    """The test files a run held out (split.json's `test_files`, relative to `root`), labelled by their folder."""
    if split.is_dir():
        split = split / "split.json"
    if not split.is_file():
        raise DataError(f"--split {split}: no such file. Give a run's split.json (or its run directory).")
    try:
        held = read_json(split)
    except (OSError, ValueError) as e:
        raise DataError(f"--split {split}: cannot be read as a run's split.json ({e}); restore it from the run") from None
    files = held.get("test_files") if isinstance(held, dict) else None
    if files is not None and not (isinstance(files, list) and all(isinstance(f, str) for f in files)):
        raise DataError(f"--split {split}: test_files is not a list of file paths; restore it from the run")
    if not files:
        raise DataError(f"--split {split}: lists no held-out test files (the run had a test/ folder, or no "
                        f"--set holdout); evaluate on the test folder with --data-root alone.")
    missing = [f for f in files if not (root / f).is_file()]
    if missing:
        raise DataError(f"--split {split}: {len(missing)} of its {len(files)} test files are not under {root} "
                        f"({', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}). Give the --data-root the "
                        f"run trained on.")
    classes = sorted({Path(f).parent.name for f in files})
    return classes, [str(root / f) for f in files], np.asarray([classes.index(Path(f).parent.name) for f in files])
