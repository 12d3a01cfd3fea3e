"""The one weights format (timm's Hub layout), loading by any model reference, and conversion of
the authors' released checkpoints.

A weights folder holds `model.safetensors`, a timm `config.json` (with a `glmc` block for what
timm's config has no field for: metrics, provenance, the training config) and a model card
`README.md`. It loads with `timm.create_model("local-dir:DIR", pretrained=True)`, and from the Hub
(or its offline cache) with `hf-hub:ORG/NAME`.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import tempfile
import warnings
from pathlib import Path

import torch

from glmc_zoo._meta import HF_ORG, __version__
from glmc_zoo.errors import CheckpointError, ModelLoadError, OutputExistsError, PushError, did_you_mean  # noqa: F401

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
CARD_NAME = "README.md"


# ---------------------------------------------------------------------------------------------
# Resolving model references
# ---------------------------------------------------------------------------------------------


def create_model(ref: str, pretrained: bool = True, **kwargs) -> torch.nn.Module:
    """Build a GLMC model from any reference, in eval mode:

    - a registry name or `arch.tag` (`glmc_resnet32_w16.cifar10_lt_if100_e200_jpeg`);
    - `hf-hub:ORG/NAME` (the Hub, or its local cache with `HF_HUB_OFFLINE=1`);
    - `local-dir:DIR` or a plain path to a weights folder.
    """
    import timm

    import glmc_zoo  # noqa: F401  (registers the architectures)

    if not ref.startswith(("hf-hub:", "local-dir:")) and (os.sep in ref or Path(ref).is_dir()):
        ref = f"local-dir:{ref}"
    if ref.startswith("local-dir:"):
        _check_weights_folder(Path(ref[len("local-dir:"):]))
    elif not ref.startswith("hf-hub:"):
        arch = ref.split(".", 1)[0]
        if not timm.is_model(arch) or not arch.startswith("glmc_"):
            names = timm.list_models("glmc_*", pretrained=True) + timm.list_models("glmc_*")
            raise ModelLoadError(f"unknown model {ref!r}.{did_you_mean(ref, names)} `glmc-zoo list --pretrained` shows "
                                 f"them all; "
                                 f"a weights folder is given as local-dir:DIR.")
    from safetensors import SafetensorError

    try:
        model = timm.create_model(ref, pretrained=pretrained, **kwargs)
    except ModelLoadError:
        raise
    except (OSError, RuntimeError, ValueError, SafetensorError) as e:  # a cached Hub file can be damaged too
        raise ModelLoadError(_explain_load_failure(ref, e)) from e
    return model.eval()


def _check_weights_folder(path: Path) -> None:
    if not path.is_dir():
        raise ModelLoadError(f"{path}: not a directory. A weights folder holds {WEIGHTS_NAME} and {CONFIG_NAME} "
                             f"(write one with `glmc-zoo convert` or `glmc_zoo.hub.save_pretrained`).")
    missing = [n for n in (CONFIG_NAME, WEIGHTS_NAME) if not (path / n).is_file()]
    if missing and (path / "model" / WEIGHTS_NAME).is_file() and (path / "train_log.jsonl").is_file():
        raise ModelLoadError(f"{path}: a training run directory, not a weights folder; give its final model, "
                             f"{path / 'model'}")
    if missing and (path / "train_log.jsonl").is_file():
        raise ModelLoadError(f"{path}: a training run directory with no final model yet (it is written to "
                             f"{path / 'model'} when the run finishes); finish it with `glmc-zoo train ... "
                             f"--resume {path}`.")
    if missing:
        raise ModelLoadError(f"{path}: missing {', '.join(missing)}. A weights folder holds {WEIGHTS_NAME} and "
                             f"{CONFIG_NAME} (write one with `glmc-zoo convert` or `glmc_zoo.hub.save_pretrained`).")
    config = read_config(path)
    arch = config.get("architecture")
    if not isinstance(arch, str) or not arch:
        raise ModelLoadError(f"{path / CONFIG_NAME}: no \"architecture\" (the timm model name, e.g. "
                             f"\"glmc_resnet32_w16\"). Restore the file (copy or convert the weights folder again).")
    labels, n = config.get("label_names"), config.get("num_classes")
    if labels is not None and (not isinstance(labels, list) or not all(isinstance(x, str) for x in labels)):
        raise ModelLoadError(f"{path / CONFIG_NAME}: \"label_names\" must be a list of class names")
    if labels is not None and isinstance(n, int) and len(labels) != n:
        raise ModelLoadError(f"{path / CONFIG_NAME}: {len(labels)} label_names for {n} classes (num_classes); give one "
                             f"name per class, in the order of the model's outputs")
    from safetensors import SafetensorError, safe_open

    try:  # reads the header only: a truncated or foreign file is named here, not deep inside timm
        with safe_open(str(path / WEIGHTS_NAME), framework="pt"):
            pass
    except (SafetensorError, OSError) as e:
        raise ModelLoadError(f"{path / WEIGHTS_NAME}: not a readable safetensors file ({_error_text(e)}). It may be "
                             f"truncated: copy or convert the weights folder again.") from e


def _explain_load_failure(ref: str, e: Exception) -> str:
    from huggingface_hub.errors import LocalEntryNotFoundError, OfflineModeIsEnabled

    msg = str(e)
    chain = [e, e.__cause__, e.__context__]
    if any(isinstance(c, (LocalEntryNotFoundError, OfflineModeIsEnabled)) for c in chain) or "offline" in msg.lower():
        repo = ref[len("hf-hub:"):] if ref.startswith("hf-hub:") else _hub_id_of(ref)
        missing = _missing_in_cache(repo) if repo else []
        which = f" Missing from the cache: {', '.join(missing)}." if missing else ""
        offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
        unset = " (HF_HUB_OFFLINE is set: unset it to let the download run)" if offline else ""
        return (f"{ref}: the files are not in the local Hugging Face cache and the Hub cannot be reached."
                f"{which} Fetch them once with network access: `hf download {repo}`{unset}, or point to a "
                f"local folder with local-dir:DIR. Cause: {msg}")
    mismatched = [ln.strip() for ln in msg.splitlines() if ln.strip().startswith("size mismatch for ")]
    if mismatched:  # torch lists every tensor, one line each: say it once, with the first example
        return (f"{ref}: the weights do not fit the architecture its config names: {len(mismatched)} tensors differ "
                f"in shape ({mismatched[0].removeprefix('size mismatch for ').rstrip('.')}). Is the config's \"architecture\" "
                f"(and num_classes) the one the weights were trained with?")
    return f"{ref}: {msg}"


def _hub_id_of(ref: str) -> str | None:
    import timm

    cfg = timm.models.get_pretrained_cfg(ref, allow_unregistered=True)
    return cfg.hf_hub_id if cfg else None


def _missing_in_cache(repo_id: str) -> list[str]:
    """Which of the format's files the local Hub cache lacks for `repo_id` (no network)."""
    from huggingface_hub import try_to_load_from_cache

    repo, _, revision = repo_id.partition("@")
    return [f for f in (CONFIG_NAME, WEIGHTS_NAME)
            if not isinstance(try_to_load_from_cache(repo, f, revision=revision or None), str)]


# ---------------------------------------------------------------------------------------------
# Saving in the one format
# ---------------------------------------------------------------------------------------------


def save_pretrained(model: torch.nn.Module, directory: str | Path, glmc: dict | None = None,
                    card: str | None = None) -> Path:
    """Write `model` as `model.safetensors` + `config.json` (+ model card) into `directory`.

    The folder is built next to its destination and renamed into place, so an interrupted save
    never leaves a half-written weights folder. `glmc` is stored in config.json under "glmc"
    (metrics, provenance, training config); `card` is the model card's markdown body.
    """
    from timm.models import save_for_hf

    directory = Path(directory)
    check_replaceable(directory)  # before any work: nothing but an earlier weights folder is replaced
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}.tmp-"))
    try:
        info = dict(glmc or {})
        info.setdefault("glmc_zoo_version", __version__)
        labels = list(model.pretrained_cfg.get("label_names") or [])
        n = getattr(model, "num_classes", None)
        # names of another head (a 1000-class default cfg on a model built with num_classes=5) are no names
        # for this one: a folder never says 1000 labels for 5 outputs
        fits = bool(labels) and (n is None or len(labels) == n)
        model_config = dict(glmc=info, **(dict(label_names=labels) if fits else {}))
        was_training = model.training
        cfg = model.pretrained_cfg
        # Where these weights were read from (a bundled file's path on this machine, a Hub id) is
        # not part of the saved weight set: the folder is its own source.
        drop = ("file", "hf_hub_id", "url", "source") + (() if fits else ("label_names",))
        model.pretrained_cfg = {k: v for k, v in cfg.items() if k not in drop}
        try:
            save_for_hf(model.eval(), tmp, model_config=model_config, safe_serialization=True)
        finally:
            model.pretrained_cfg = cfg
            model.train(was_training)
        (tmp / CARD_NAME).write_text(card if card is not None else model_card(model, info))
        _replace_dir(tmp, directory)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return directory


#: Hugging Face dataset ids of the datasets a card can name.
HF_DATASETS = {"cifar10": "uoft-cs/cifar10", "cifar100": "uoft-cs/cifar100", "imagenet_lt": "ILSVRC/imagenet-1k",
               "inat2018": "inaturalist-2018"}
_CITATION = """@inproceedings{du2023glmc,
  title={Global and Local Mixture Consistency Cumulative Learning for Long-tailed Visual Recognitions},
  author={Du, Fei and Yang, Peng and Jia, Qi and Nan, Fengtao and Chen, Xiaoting and Yang, Yun},
  booktitle={CVPR}, year={2023}}"""
#: The hyper-parameters a card lists from the run's resolved config.
_RECIPE_KEYS = ("model", "dataset", "imbalance_factor", "split", "seed", "epochs", "batch_size", "lr", "momentum",
                "weight_decay", "schedule", "resample_weighting", "label_weighting", "contrast_weight", "mix_beta",
                "normalization", "amp", "stage", "maxnorm_thresh", "maxnorm_every", "maxnorm_bn", "cb_beta")


def _no_local_paths(text: str) -> str:
    """Absolute file-system paths (this machine's, meaningless on the Hub) replaced by their last part."""
    import re

    return re.sub(r"(?<![\w:/.])(?:\.{1,2})?/(?:[^\s'\"`/]+/)+([^\s'\"`/]*)", r"<local>/\1", text)


def _card_dataset(glmc: dict) -> str | None:
    ds = glmc.get("hf_dataset") or glmc.get("dataset")
    if ds == "imagefolder":  # the trainer's default image folder is the CIFAR-10 JPEG copy
        cfg = glmc.get("train_config") or {}
        ds = "cifar10" if not cfg.get("data_root") and cfg.get("model", "").startswith("glmc_resnet32") else None
    return HF_DATASETS.get(ds, ds) if ds else None


def model_card(model: torch.nn.Module, glmc: dict, repo_id: str | None = None) -> str:
    """A Hub model card (huggingface_hub's `ModelCard`: YAML metadata with a `model-index`, then
    markdown) from the model and its `glmc` block. Metrics say whether they were measured here
    or reported by the authors; the recipe is the run's resolved config; no local paths."""
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    cfg = model.pretrained_cfg
    arch = cfg.get("architecture", "glmc")
    name = f"{arch}.{cfg['tag']}" if cfg.get("tag") else arch
    repo = repo_id or f"{HF_ORG}/{name}"
    kind = "measured" if glmc.get("measured") else "reported" if glmc.get("reported") else None
    metrics = glmc.get(kind) or {} if kind else {}
    dataset = _card_dataset(glmc)
    evals = []
    if metrics.get("top1") is not None and dataset:
        note = "measured by glmc-zoo at the final epoch" if kind == "measured" else \
            f"reported by the authors ({glmc.get('reported_source') or 'paper / README'})"
        evals = [EvalResult(task_type="image-classification", dataset_type=dataset, dataset_name=dataset,
                            metric_type="accuracy", metric_name=f"top-1 {key} ({note})" if key != "top1"
                            else f"top-1 accuracy ({note})", metric_value=float(metrics[k]))
                 for k, key in (("top1", "top1"), ("many", "many-shot"), ("medium", "medium-shot"),
                                ("few", "few-shot")) if metrics.get(k) is not None]
    data = ModelCardData(library_name="timm", license="mit", pipeline_tag="image-classification",
                         tags=["image-classification", "timm", "glmc", "long-tailed"],
                         datasets=[dataset] if dataset else None, model_name=name if evals else None,
                         eval_results=evals or None)
    lines = [f"# {name}", "",
             "A GLMC (Global and Local Mixture Consistency cumulative learning, CVPR 2023) classifier. "
             "Inference uses the rebalanced head `fc_cb`.", ""]
    if metrics:
        lines += [f"## {kind.capitalize()} accuracy", "", "| metric | value (%) |", "|---|---|"]
        lines += [f"| {k} | {v:.2f} |" for k, v in metrics.items() if isinstance(v, (int, float))]
        source = glmc.get("metrics_note") if kind == "measured" else glmc.get("reported_source")
        if source:
            lines += ["", str(source)]
        lines.append("")
    lines += _per_class_lines(glmc)
    train_cfg = glmc.get("train_config") or {}
    if train_cfg:
        lines += ["## Recipe", "", "The resolved training config of the run:", "", "| key | value |", "|---|---|"]
        lines += [f"| {k} | {train_cfg[k]} |" for k in _RECIPE_KEYS if k in train_cfg]
        lines.append("")
    if glmc.get("recipe"):
        lines += ["Reproduces: " + str(glmc["recipe"]), ""]
    for key, title in (("command", "Command"), ("training_time", "Training time"), ("data", "Data")):
        if glmc.get(key):
            body = f"```\n{glmc[key]}\n```" if key == "command" else str(glmc[key])
            lines += [f"## {title}", "", body, ""]
    if glmc.get("converted_from"):
        lines += ["## Provenance", "", f"Converted with `glmc-zoo convert` from `{glmc['converted_from']}`.", ""]
    first = glmc.get("first_stage")
    if first:  # a second stage (GLMC + MaxNorm): the model it started from
        m = first.get("measured") or {}
        score = f", measured top-1 {m['top1']:.2f}" if m.get("top1") is not None else ""
        mn = glmc.get("maxnorm") or {}
        lines += ["## First stage", "", f"A second stage (GLMC + MaxNorm, docs/maxnorm.md) started from `{first.get('init')}`"
                  f"{score}; only `fc_cb` was trained"
                  + (f", its rows held within L2 norm {mn['radius']:.4f} (threshold {mn.get('thresh')}, projected every "
                     f"{mn.get('every')})" if mn.get("radius") is not None else "") + "."]
        if first.get("command"):
            lines += ["", f"The first stage's command: `{first['command']}`"]
        lines.append("")
    lines += ["## Usage", "", "```python", "import glmc_zoo, timm",
              f"model = timm.create_model('hf-hub:{repo}', pretrained=True).eval()", "```", "",
              "## Citation", "", "```bibtex", _CITATION, "```", ""]
    card = ModelCard.from_template(data, template_str="---\n{{ card_data }}\n---\n\n{{ body }}\n",
                                   body="\n".join(lines))
    return _no_local_paths(str(card))


def _per_class_lines(glmc: dict) -> list[str]:
    """The card's per-class table (fc_cb, with each class's training images) and the plain head's numbers,
    from a run's `measured_per_class` / `measured_plain_head` (weights trained by glmc-zoo)."""
    lines = []
    per_class, counts = glmc.get("measured_per_class") or {}, glmc.get("class_counts") or []
    if per_class:
        lines += ["## Per-class accuracy", "", "Top-1 of each class (`fc_cb`, same evaluation):", "",
                  "| class | training images | top-1 (%) |", "|---|---|---|"]
        lines += [f"| {c} | {counts[i] if i < len(counts) else '-'} | {'-' if a is None else f'{a:.2f}'} |"
                  for i, (c, a) in enumerate(per_class.items())]
        lines.append("")
    plain = glmc.get("measured_plain_head") or {}
    if plain:
        parts = ", ".join(f"{k} {v:.2f}" for k, v in plain.items())
        lines += [f"The plain head `fc` (trained alongside, not used for inference), same evaluation: {parts}.", ""]
    return lines


def read_config(directory: str | Path) -> dict:
    """A weights folder's config.json; `ModelLoadError` naming the file when it is not a JSON object."""
    path = Path(directory) / CONFIG_NAME
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelLoadError(f"{path}: not valid JSON ({e}). Restore the file (copy or convert the weights "
                             f"folder again).") from e
    if not isinstance(cfg, dict):
        raise ModelLoadError(f"{path}: holds a {type(cfg).__name__}, not the JSON object of a timm config. "
                             f"Restore the file (copy or convert the weights folder again).")
    return cfg


def training_counts(model_ref: str, model) -> list[int] | None:
    """Training images per class of the weights `model` was loaded from `model_ref`: what a weights folder's
    config.json records (weights trained by glmc-zoo), else the registry's record of its `arch.tag`. Lets an
    evaluation group the classes into many / medium / few; None when unknown."""
    from glmc_zoo.registry import get_weights, weight_set_name

    folder = Path(str(model_ref).removeprefix("local-dir:"))
    if folder.is_dir():
        counts = read_config(folder).get("glmc", {}).get("class_counts")
    else:
        ws = get_weights(weight_set_name(model.pretrained_cfg, str(model_ref)))
        counts = ws.class_counts if ws else None
    return [int(n) for n in counts] if counts else None


# ---------------------------------------------------------------------------------------------
# The authors' released checkpoints
# ---------------------------------------------------------------------------------------------


def load_released_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a released `.pth.tar` (`{'epoch', 'state_dict', 'best_acc1'}`, or a bare state dict),
    with `torch.load(weights_only=True)` only; strip a DataParallel `module.` prefix.

    A file whose unpickling would run code (or anything but tensors and plain containers) is
    refused: nothing it contains is executed.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file. Give the path of the authors' ckpt.pth.tar.")
    try:
        with warnings.catch_warnings():  # torch's note on a pickle protocol other than its default: harmless
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        # torch's message is mostly boilerplate; keep its specific line ("Trying to load unsupported
        # GLOBAL posix.system ...", "Unsupported operand 0").
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip().lower().startswith(("trying to load", "unsupported"))]
        detail = lines[0] if lines else "not a torch.save file"
        raise CheckpointError(
            f"{path}: refused. It is not a plain weights checkpoint ({detail}). Nothing in it was run. "
            f"Only checkpoints of tensors and plain containers are loaded (torch.load weights_only=True); "
            f"re-save it as a state dict if you trust its source."
        ) from e
    except Exception as e:  # not a torch.save file (text, truncated, another format): whatever the unpickler hit
        raise CheckpointError(f"{path}: cannot be read as a PyTorch checkpoint ({_error_text(e)}). "
                              f"Is it complete (not truncated) and a torch.save file?") from e
    sd = obj.get("state_dict", obj) if isinstance(obj, dict) else None
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise CheckpointError(f"{path}: holds no state dict (expected {{'state_dict': ...}} or a bare "
                              f"mapping of parameter names to tensors).")
    return {k.removeprefix("module."): v for k, v in sd.items()}


def _first_line(e: Exception) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


def _error_text(e: Exception) -> str:
    """`Type: first line`, or the type alone when the message is empty."""
    line = _first_line(e)
    return line if line == type(e).__name__ else f"{type(e).__name__}: {line}"


def check_state_dict(model: torch.nn.Module, sd: dict[str, torch.Tensor], source: str) -> None:
    """Raise a `CheckpointError` listing every missing, unexpected and mis-shaped key."""
    own = model.state_dict()
    missing = sorted(set(own) - set(sd))
    unexpected = sorted(set(sd) - set(own))
    shapes = sorted(f"{k}: checkpoint {tuple(sd[k].shape)} vs model {tuple(own[k].shape)}"
                    for k in set(own) & set(sd) if sd[k].shape != own[k].shape)
    if missing or unexpected or shapes:
        parts = []
        for title, items in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", shapes)):
            if items:
                more = f" ... (+{len(items) - 20} more)" if len(items) > 20 else ""
                parts.append(f"{title} ({len(items)}): {', '.join(items[:20])}{more}")
        raise CheckpointError(f"{source} does not fit {model.pretrained_cfg.get('architecture')} with "
                              f"num_classes={model.num_classes}. " + "; ".join(parts) +
                              ". Check --model and --num-classes.")


def convert_checkpoint(checkpoint: str | Path, arch: str, num_classes: int, output: str | Path,
                       tag: str | None = None, released: bool = False) -> Path:
    """Convert an authors' `.pth.tar` into a weights folder (safetensors + config + card).

    `tag` picks the pretrained entry whose preprocessing and labels the folder carries (e.g.
    `cifar100_lt_if100`); without it the architecture's default entry is used, with its labels
    dropped when `num_classes` differs. `released=True` (the file is the authors' release for
    `tag`) attaches the numbers the authors report for it; otherwise the folder claims none.
    """
    import timm

    check_replaceable(Path(output))  # before reading anything: a folder of someone's files is never replaced

    import glmc_zoo  # noqa: F401

    name = f"{arch}.{tag}" if tag else arch
    if not timm.is_model(arch) or not arch.startswith("glmc_"):
        raise CheckpointError(f"unknown architecture {arch!r}: use one of {', '.join(timm.list_models('glmc_*'))}")
    sd = load_released_state_dict(checkpoint)
    model = timm.create_model(name, pretrained=False, num_classes=num_classes)
    check_state_dict(model, sd, str(checkpoint))
    model.load_state_dict(sd, strict=True)
    if model.pretrained_cfg.get("num_classes") != num_classes:
        from glmc_zoo.labels import index_labels

        model.pretrained_cfg = dict(model.pretrained_cfg, num_classes=num_classes, label_names=index_labels(num_classes))
    from glmc_zoo.models import get_weights

    glmc = dict(converted_from=Path(checkpoint).name)
    if released:  # the user says this is the authors' file for `tag`: its reported numbers apply
        ws = get_weights(name)
        if ws is not None and ws.metrics_kind == "reported":
            glmc.update(reported=dict(ws.metrics), reported_source=ws.metrics_source)
    return save_pretrained(model, output, glmc=glmc)


#: GLMC architectures whose inference path is exactly a plain timm model (the same trunk, and
#: `fc_cb` as timm's `fc`). The CIFAR ResNet-32s have no timm counterpart.
PLAIN_TIMM_ARCH = {"glmc_resnet50": "resnet50", "glmc_resnext50_32x4d": "resnext50_32x4d"}


def export_timm(model_ref: str, output: str | Path) -> Path:
    """Write `model_ref` as a plain timm model folder (`model.safetensors` + `config.json`) that
    `timm.create_model("local-dir:OUTPUT", pretrained=True)` loads without glmc-zoo installed.

    The inference head `fc_cb` becomes timm's `fc`; the training-only heads (`fc`, projection,
    predictor) are dropped. Loading GLMC weights into timm's resnet with `strict=False` instead
    would silently keep GLMC's *plain* head `fc` and change the predictions.
    """
    import timm
    from timm.models import save_for_hf

    model = create_model(model_ref, pretrained=True).eval()
    arch = model.pretrained_cfg.get("architecture")
    if arch not in PLAIN_TIMM_ARCH:
        raise ModelLoadError(f"{model_ref}: {arch} has no plain timm equivalent (only "
                             f"{', '.join(PLAIN_TIMM_ARCH)} do); use the glmc-zoo format or an ONNX export")
    plain = timm.create_model(PLAIN_TIMM_ARCH[arch], pretrained=False, num_classes=model.num_classes)
    drop = ("fc.", "projection_head.", "contrast_head.")
    sd = {k: v for k, v in model.state_dict().items() if not k.startswith(drop)}
    sd = {("fc." + k[len("fc_cb."):]) if k.startswith("fc_cb.") else k: v for k, v in sd.items()}
    plain.load_state_dict(sd, strict=True)
    keys = ("input_size", "interpolation", "crop_pct", "crop_mode", "mean", "std", "num_classes", "label_names",
            "license", "paper_ids")
    cfg = dict(model.pretrained_cfg)
    if len(cfg.get("label_names") or ()) != model.num_classes:
        cfg.pop("label_names", None)
    plain.pretrained_cfg = dict({k: cfg[k] for k in keys if k in cfg},
                                architecture=PLAIN_TIMM_ARCH[arch], tag=model.pretrained_cfg.get("tag"))
    output = Path(output)
    check_replaceable(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=output.parent, prefix=f".{output.name}.tmp-"))
    try:
        extra = {"label_names": list(plain.pretrained_cfg["label_names"])} if plain.pretrained_cfg.get("label_names") \
            else {}
        save_for_hf(plain, tmp, model_config=extra, safe_serialization=True)
        _replace_dir(tmp, output)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return output


#: What a weights folder written by glmc-zoo holds; only such a folder (or an empty one) is ever replaced.
WEIGHTS_FOLDER_FILES = frozenset({"config.json", "model.safetensors", CARD_NAME, "model.onnx"})


def check_replaceable(target: Path) -> None:
    """Refuse to write a weights folder over anything but an earlier weights folder or an empty folder:
    a folder of someone's files is never deleted, and neither is a file."""
    target = Path(target)
    if not target.exists() and not target.is_symlink():
        return
    if not target.is_dir():
        raise OutputExistsError(f"{target} is a file: nothing was written; give a folder path that does not exist yet")
    held = sorted(p.name for p in target.iterdir())
    foreign = [n for n in held if n not in WEIGHTS_FOLDER_FILES]
    if foreign:
        raise OutputExistsError(f"{target} holds files that are not a glmc-zoo weights folder's ({', '.join(foreign[:4])}"
                                f"{', ...' if len(foreign) > 4 else ''}): nothing was written or deleted; give a new "
                                f"or empty folder, or remove it yourself")


def _replace_dir(new: Path, target: Path) -> None:
    """Move the finished folder `new` into `target`. An existing `target` (an earlier weights folder:
    `check_replaceable`) is first renamed aside and deleted only after the new one is in place, so a
    crash leaves either folder whole."""
    check_replaceable(target)
    new.chmod(0o755)
    for f in new.iterdir():
        f.chmod(0o644)
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
    try:
        os.replace(new, target)
    except OSError:
        if old is not None:
            os.replace(old, target)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# Publishing
# ---------------------------------------------------------------------------------------------


def push_folder(folder: str | Path, repo_id: str, dry_run: bool = False, private: bool = False,
                commit_message: str | None = None) -> list[tuple[str, int]]:
    """Upload a weights folder to the Hub as `repo_id` (the user's usual `hf auth login`), after
    checking that it loads and its logits are finite. Returns (file name, bytes) of what is (or,
    with `dry_run`, would be) uploaded."""
    folder = Path(folder)
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise PushError(f"--repo-id {repo_id!r}: expected ORG/NAME, e.g. {HF_ORG}/glmc_resnet32.cifar100_lt_if100")
    model = create_model(f"local-dir:{folder}", pretrained=True)
    size = model.pretrained_cfg["input_size"]
    with torch.inference_mode():
        logits = model(torch.zeros(1, *size))
    if logits.shape[1] != model.num_classes or not torch.isfinite(logits).all():
        raise PushError(f"{folder}: the model loads but gives non-finite or mis-shaped logits {tuple(logits.shape)}")
    files = sorted((f.name, f.stat().st_size) for f in folder.iterdir() if f.is_file() and not f.name.startswith("."))
    card = model_card(model, read_config(folder).get("glmc", {}), repo_id=repo_id)  # names the repo pushed to
    files = [(n, len(card.encode()) if n == CARD_NAME else size) for n, size in files]
    if dry_run:
        return files
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    api = HfApi(library_name="glmc-zoo", library_version=__version__)
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        api.upload_folder(repo_id=repo_id, folder_path=str(folder), repo_type="model",
                          commit_message=commit_message or f"Upload {repo_id} with glmc-zoo {__version__}",
                          ignore_patterns=[".*", CARD_NAME])
        api.upload_file(path_or_fileobj=card.encode(), path_in_repo=CARD_NAME, repo_id=repo_id, repo_type="model",
                        commit_message=f"Model card for {repo_id}")
    except (HfHubHTTPError, OSError, ValueError) as e:
        raise PushError(f"upload of {folder} to {repo_id} failed: {_first_line(e)}. Log in with "
                        f"`hf auth login` and check the network and your write access to {repo_id.split('/')[0]}.") from e
    return files
