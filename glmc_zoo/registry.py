"""The weight-set registry: one typed `WeightSet` record per GLMC weight set (`WEIGHTS`), readable
without torch or timm, so that `glmc-zoo list` and `info` print it at once. The model file turns the
records into timm's `default_cfgs`; `pretrained=True` checks and the CLI's listing read them here.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from glmc_zoo._meta import HF_ORG, NORMALIZATION, __version__
from glmc_zoo.errors import ModelLoadError, UnknownModelError, did_you_mean
from glmc_zoo.jsonfile import read_json
from glmc_zoo.labels import CIFAR10_LABELS, CIFAR100_LABELS, imagenet_labels, index_labels
from glmc_zoo.preprocess import Preprocess

__all__ = ["AVAILABILITY", "CONFIG_NAME", "DEFAULT_TAGS", "METRICS_KINDS", "WEIGHTS", "WeightSet", "architectures",
           "check_config", "default_weights", "get_weights", "read_config", "weight_set_name", "weight_sets"]


# ---------------------------------------------------------------------------------------------
# Weight sets: one typed `WeightSet` record each (`WEIGHTS`). timm's `default_cfgs`, the CLI's
# listing and the pretrained=True checks are all derived from these records.
# ---------------------------------------------------------------------------------------------

(_CIFAR10_MEAN, _CIFAR10_STD), (_CIFAR100_MEAN, _CIFAR100_STD), (_INAT_MEAN, _INAT_STD) = (
    NORMALIZATION["cifar10"], NORMALIZATION["cifar100"], NORMALIZATION["inat2018"])
_PAPER = "arXiv:2305.08661"
_RELEASE_NOTE = (
    "released by the authors on a file-sharing drive, not on the Hub: get the file and run "
    "`glmc-zoo convert CKPT --arch {arch} --num-classes {c} --tag {tag} --released -o DIR`"
)
_README = "GLMC authors' README (best epoch, selected on the test set)"


#: Where a weight set's file is (see `WeightSet`), and what kind of numbers its metrics are.
AVAILABILITY = ("bundled", "published", "released", "withdrawn", "none", "local")
METRICS_KINDS = ("measured", "reported")


#: A weights folder's timm config, with the `glmc` block `WeightSet` reads and writes.
CONFIG_NAME = "config.json"
#: The fix every message about a damaged config.json ends with.
_RESTORE = "Restore the file (copy or convert the weights folder again)."


def read_config(directory: str | Path) -> dict:
    """A weights folder's config.json; `ModelLoadError` naming the file when it is not a JSON object."""
    path = Path(directory) / CONFIG_NAME
    try:
        cfg = read_json(path)
    except ValueError as e:  # not JSON, too large, nested too deep: named by the file
        raise ModelLoadError(f"{e}. {_RESTORE}") from None
    if not isinstance(cfg, dict):
        raise ModelLoadError(f"{path}: holds a {type(cfg).__name__}, not the JSON object of a timm config. {_RESTORE}")
    return cfg


def check_config(config: dict, where: str) -> None:
    """The timm fields of a weights folder's config.json that loading and reading rely on; `ModelLoadError`
    naming `where`, the field and the fix."""
    arch = config.get("architecture")
    if not isinstance(arch, str) or not arch:
        raise ModelLoadError(f"{where}: no \"architecture\" (the timm model name, e.g. \"glmc_resnet32_w16\"). {_RESTORE}")
    pre = config.get("pretrained_cfg")
    if pre is not None and not isinstance(pre, dict):
        raise ModelLoadError(f"{where}: \"pretrained_cfg\" is a {type(pre).__name__}, not an object. {_RESTORE}")
    tag = (pre or {}).get("tag")
    if tag is not None and not isinstance(tag, str):
        raise ModelLoadError(f"{where}: pretrained_cfg.tag is {tag!r}, not a name. {_RESTORE}")
    labels, n = config.get("label_names"), config.get("num_classes")
    for key, value in (("num_classes", n), ("num_classes", (pre or {}).get("num_classes"))):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100_000):
            raise ModelLoadError(f"{where}: {key} is {value!r}, not a class count (0-100000). {_RESTORE}")
    if labels is not None and (not isinstance(labels, list) or not all(isinstance(x, str) for x in labels)):
        raise ModelLoadError(f"{where}: \"label_names\" must be a list of class names")
    if labels is not None and isinstance(n, int) and len(labels) != n:
        raise ModelLoadError(f"{where}: {len(labels)} label_names for {n} classes (num_classes); give one "
                             f"name per class, in the order of the model's outputs")


def weight_set_name(cfg: dict, fallback: str = "") -> str:
    """The `arch.tag` a model's pretrained cfg names (its architecture alone when untagged, else `fallback`)."""
    arch, tag = cfg.get("architecture"), cfg.get("tag")
    return f"{arch}.{tag}" if arch and tag else (arch or fallback)


@dataclass(frozen=True)
class WeightSet:
    """One set of GLMC weights, the single source of truth about it (in the spirit of
    torchvision's `Weights`): timm's pretrained config (preprocessing, labels, heads) and what we
    know of the weights. The timm registration, `glmc-zoo list` / `info` and the checks of
    `pretrained=True` are all derived from these records.

    availability: "bundled" (shipped in the package), "published" (on the Hugging Face Hub),
    "released" (the authors' file, to be converted with `glmc-zoo convert`), "withdrawn" (shipped by
    an earlier glmc-zoo release and replaced: `note` names the replacement), "none" (architecture
    only), "local" (a weights folder on disk, read from its config.json). metrics: top1 / top5 / many /
    medium / few that are known, all of one `metrics_kind`: "measured" (by glmc-zoo, final epoch) or
    "reported" (by the authors), with `metrics_source`. per_class / plain_head: the measured top-1 of each
    class and the plain head `fc`'s numbers (weights trained here). provenance: how the weights were made
    (dataset, train_config, command, data, training_time, converted_from, first_stage, ...), kept as given.

    A weights folder's config.json holds these under "glmc": `glmc_block()` writes that block and
    `from_config()` reads it (also as glmc-zoo 0.1 / 0.2 wrote it); nothing else reads or writes it.
    """

    name: str
    cfg: dict
    availability: str  # one of AVAILABILITY
    note: str
    metrics: dict[str, float] = field(default_factory=dict)
    metrics_kind: str | None = None
    metrics_source: str | None = None
    class_counts: tuple[int, ...] | None = None
    recipe: str | None = None
    trained_by: str | None = None
    per_class: dict[str, float | None] | None = None
    plain_head: dict[str, float] | None = None
    provenance: dict = field(default_factory=dict)
    #: the architecture's keyword arguments these weights need (timm's `model_args` of the saved folder: a
    #: glmc_timm's backbone, backbone_args, upsample_to; a CIFAR ResNet's blocks_per_stage); `ARCH.TAG` builds it
    model_args: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.availability not in AVAILABILITY:
            raise ValueError(f"{self.name}: availability {self.availability!r} is not one of {AVAILABILITY}")
        if self.metrics_kind not in (None, *METRICS_KINDS):
            raise ValueError(f"{self.name}: metrics_kind {self.metrics_kind!r} is not one of {METRICS_KINDS}")
        if bool(self.metrics) != (self.metrics_kind is not None):
            raise ValueError(f"{self.name}: metrics and metrics_kind go together")

    @property
    def arch(self) -> str:
        return self.name.partition(".")[0]

    @property
    def tag(self) -> str:
        return self.name.partition(".")[2]

    @property
    def loadable(self) -> bool:
        """Whether `timm.create_model(name, pretrained=True)` loads these weights here."""
        return self.availability in ("bundled", "published")

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self.cfg["label_names"])

    @property
    def preprocessing(self) -> dict:
        """The eval preprocessing as data (`glmc_zoo.preprocess.Preprocess.from_config` reads the same keys)."""
        return {k: self.cfg.get(k) for k in ("input_size", "mean", "std", "crop_pct", "interpolation")}

    def transforms(self):
        """The eval preprocessing as a callable, as torchvision's `weights.transforms()`: a PIL image -> the
        (3, S, S) float32 numpy array the model takes (`torch.from_numpy(...)[None]` for a batch of one). The
        same transform `predict`, `eval` and training's evaluation apply; it needs neither torch nor timm."""
        return Preprocess.from_config(self.cfg, where=self.name)

    def as_dict(self) -> dict:
        """A JSON-able view (for `info --format json`)."""
        return dict(name=self.name, availability=self.availability, note=self.note, metrics=dict(self.metrics),
                    metrics_kind=self.metrics_kind, metrics_source=self.metrics_source,
                    num_classes=self.cfg.get("num_classes"), transforms=self.preprocessing,
                    class_counts=list(self.class_counts) if self.class_counts else None, recipe=self.recipe,
                    trained_by=self.trained_by, **({"per_class": dict(self.per_class)} if self.per_class else {}),
                    **({"plain_head": dict(self.plain_head)} if self.plain_head else {}),
                    **({"provenance": dict(self.provenance)} if self.provenance else {}),
                    **({"model_args": dict(self.model_args)} if self.model_args else {}))

    # -- the `glmc` block of a weights folder's config.json: written and read here only ----------

    @classmethod
    def local(cls, cfg: dict, **fields) -> WeightSet:
        """The record of weights about to be saved from a model with pretrained cfg `cfg` (`hub.save_pretrained`
        writes it): metrics, counts and provenance as `fields`."""
        return cls(weight_set_name(cfg, "glmc"), dict(cfg), "local", "a weights folder", **fields)

    def glmc_block(self) -> dict:
        """The `glmc` block of config.json: the typed fields, then the provenance, and the writing version."""
        typed = dict(metrics=dict(self.metrics) or None, metrics_kind=self.metrics_kind,
                     metrics_source=self.metrics_source, per_class=self.per_class, plain_head=self.plain_head,
                     class_counts=list(self.class_counts) if self.class_counts else None, recipe=self.recipe,
                     trained_by=self.trained_by)
        block = {k: v for k, v in typed.items() if v is not None}
        block.update({k: v for k, v in self.provenance.items() if k not in _BLOCK_KEYS and k != "glmc_zoo_version"})
        block["glmc_zoo_version"] = __version__
        return block

    @classmethod
    def from_folder(cls, directory: str | Path) -> WeightSet:
        """The record of a weights folder, from its config.json (`ModelLoadError` when it is damaged)."""
        return cls.from_config(read_config(directory), str(Path(directory) / CONFIG_NAME))

    @classmethod
    def from_config(cls, config: dict, where: str = "config.json") -> WeightSet:
        """The record of a weights folder from its config.json (a timm config with the `glmc` block), in this
        release's format or as glmc-zoo 0.1 / 0.2 wrote it. `ModelLoadError` naming `where` and the key when
        the block is not what glmc-zoo writes."""
        check_config(config, where)
        cfg = dict(config.get("pretrained_cfg") or {})
        for key in ("num_classes", "label_names"):
            if key not in cfg and key in config:
                cfg[key] = config[key]
        block = config.get("glmc") or {}
        if not isinstance(block, dict):
            raise ModelLoadError(f"{where}: \"glmc\" is a {type(block).__name__}, not an object. {_RESTORE}")
        args = config.get("model_args") or {}
        if not isinstance(args, dict):
            raise ModelLoadError(f"{where}: \"model_args\" is a {type(args).__name__}, not an object. {_RESTORE}")
        return cls(weight_set_name(cfg, config["architecture"]), cfg, "local",
                   "a weights folder", **_read_block(block, where),
                   model_args={k: v for k, v in args.items() if k not in RUN_MODEL_ARGS})


#: Keys of a folder's `model_args` that describe the use, not the architecture of the weights: never taken from
#: a record (the class count is the record's own `num_classes`).
RUN_MODEL_ARGS = ("num_classes", "global_pool", "in_chans", "pretrained", "pretrained_cfg", "drop_rate",
                  "drop_path_rate", "training_heads")

#: The typed keys of the `glmc` block (`WeightSet.glmc_block`); any other key is provenance, kept as it is.
_BLOCK_KEYS = ("metrics", "metrics_kind", "metrics_source", "per_class", "plain_head", "class_counts", "recipe",
               "trained_by")
#: How glmc-zoo 0.1 / 0.2 wrote them: the metrics under their kind, with the kind's source key.
_LEGACY_METRICS = {"measured": "metrics_note", "reported": "reported_source"}
_LEGACY_KEYS = {"measured_per_class": "per_class", "measured_plain_head": "plain_head"}


def _read_block(block: dict, where: str) -> dict:
    """`WeightSet` fields from a `glmc` block (this release's keys, or 0.1 / 0.2's); the keys it does not type
    are the provenance, kept as they are (the version that wrote the block among them)."""
    b = dict(block)
    for old, new in _LEGACY_KEYS.items():
        if old in b:
            b.setdefault(new, b.pop(old))
    for kind, source_key in _LEGACY_METRICS.items():
        if kind in b:
            metrics, source = b.pop(kind), b.pop(source_key, None)
            if metrics and not b.get("metrics"):
                b.update(metrics=metrics, metrics_kind=kind, metrics_source=source)
    first = b.get("first_stage")
    if isinstance(first, dict) and "measured" in first:  # 0.2's MaxNorm stage: its first stage's measured metrics
        b["first_stage"] = dict({k: v for k, v in first.items() if k != "measured"}, metrics=first["measured"],
                                metrics_kind="measured")

    def check(key: str, ok, what: str) -> None:
        if b.get(key) is not None and not ok(b[key]):
            raise ModelLoadError(f"{where}: glmc.{key} is {b[key]!r}, {what}. {_RESTORE}")

    def number(v) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

    def numbers(d, missing_ok: bool = False) -> bool:
        return isinstance(d, dict) and all(number(v) or (missing_ok and v is None) for v in d.values())

    check("metrics", numbers, "not an object of finite numbers")
    if b.get("metrics"):
        check("metrics_kind", lambda k: k in METRICS_KINDS, f"not one of {METRICS_KINDS}")
        if b.get("metrics_kind") is None:
            raise ModelLoadError(f"{where}: glmc.metrics without glmc.metrics_kind (one of {METRICS_KINDS}). {_RESTORE}")
    check("class_counts", lambda c: isinstance(c, list) and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0
                                                               for n in c), "not a list of image counts")
    check("per_class", lambda d: numbers(d, missing_ok=True), "not an object of finite numbers (or null)")
    check("plain_head", numbers, "not an object of finite numbers")
    typed = {k: b.pop(k, None) for k in _BLOCK_KEYS}
    metrics = dict(typed["metrics"] or {})
    return dict(typed, metrics=metrics, metrics_kind=typed["metrics_kind"] if metrics else None,
                metrics_source=typed["metrics_source"] if metrics else None,
                class_counts=tuple(typed["class_counts"]) if typed["class_counts"] else None, provenance=b)


def _entry(arch_tag: str, *, num_classes: int, labels, metrics: dict | None = None,
           source: str | None = None, weights: str = "released", weights_note: str = _RELEASE_NOTE,
           kind: str = "reported", **cfg) -> WeightSet:
    # Only weights that load are timm pretrained weights (timm lists a tag as pretrained when its
    # cfg has a file, url or hf_hub_id): the authors' releases keep their cfg (preprocessing,
    # labels) for `convert --tag`, but no source, so `timm.list_pretrained()` does not offer them.
    hub = dict(hf_hub_id=f"{HF_ORG}/{arch_tag}") if weights == "published" else {}
    arch, _, tag = arch_tag.partition(".")
    weights_note = weights_note.format(arch=arch, c=num_classes, tag=tag or "TAG")
    timm_cfg = dict(  # the defaults, then what the caller gives (a shipped set's own first_conv, ...)
        dict(num_classes=num_classes, label_names=tuple(labels), first_conv="conv1",
             classifier=("fc_cb", "fc"), paper_ids=_PAPER, license="mit"), **hub, **cfg,
    )
    return WeightSet(arch_tag, timm_cfg, weights, weights_note, dict(metrics or {}),
                     kind if metrics else None, source if metrics else None)


def _cifar(arch_tag: str, c: int, top1: float | None = None, **kw) -> WeightSet:
    mean, std = (_CIFAR10_MEAN, _CIFAR10_STD) if c == 10 else (_CIFAR100_MEAN, _CIFAR100_STD)
    labels = CIFAR10_LABELS if c == 10 else CIFAR100_LABELS
    metrics = dict(top1=top1) if top1 is not None else kw.pop("metrics", None)
    kw.setdefault("source", _README if top1 is not None else None)
    return _entry(arch_tag, num_classes=c, labels=labels, metrics=metrics, input_size=(3, 32, 32),
                  pool_size=(8, 8), crop_pct=1.0, interpolation="bilinear", mean=mean, std=std, **kw)


def _imagenet_style(arch_tag: str, c: int, labels, metrics: dict | None = None, **kw) -> WeightSet:
    kw.setdefault("source", _README if metrics else None)
    kw.setdefault("mean", NORMALIZATION["imagenet"][0])  # written out, so the record holds the whole transform
    kw.setdefault("std", NORMALIZATION["imagenet"][1])
    return _entry(arch_tag, num_classes=c, labels=labels, metrics=metrics, input_size=(3, 224, 224),
                  pool_size=(7, 7), crop_pct=0.875, interpolation="bilinear", **kw)


_NO_WEIGHTS = dict(weights="none", weights_note="architecture only: no GLMC weights were released")
_BUNDLED_DIR = Path(__file__).resolve().parent / "weights"


def _bundled(arch_tag: str, root: Path = _BUNDLED_DIR) -> WeightSet:
    """A weight set trained by this project and shipped in the package. Its preprocessing, labels
    and measured metrics are read from the shipped config.json, the one place they are written."""
    folder = root / arch_tag
    if not (folder / "model.safetensors").is_file():
        raise ModelLoadError(f"{folder} has no model.safetensors")
    saved = WeightSet.from_folder(folder)
    pre = saved.cfg
    keys = ("input_size", "pool_size", "crop_pct", "interpolation", "mean", "std", "first_conv")
    entry = _entry(arch_tag, num_classes=pre["num_classes"], labels=pre["label_names"], metrics=saved.metrics,
                   source=saved.metrics_source, weights="bundled", weights_note="shipped inside the package",
                   kind=saved.metrics_kind, file=str(folder / "model.safetensors"),
                   **{k: tuple(pre[k]) if isinstance(pre[k], list) else pre[k] for k in keys if k in pre})
    return replace(entry, class_counts=saved.class_counts, recipe=saved.recipe, trained_by=saved.trained_by,
                   per_class=saved.per_class, plain_head=saved.plain_head, provenance=saved.provenance,
                   model_args=saved.model_args)


_TABLE = {
    # Released "updated" CIFAR runs (reference sections 3 and 8): width-64 ResNet-32.
    "glmc_resnet32.cifar10_lt_if100": _cifar("glmc_resnet32.cifar10_lt_if100", 10, 88.50),
    "glmc_resnet32.cifar10_lt_if50": _cifar("glmc_resnet32.cifar10_lt_if50", 10, 91.04),
    "glmc_resnet32.cifar10_lt_if10": _cifar("glmc_resnet32.cifar10_lt_if10", 10, 94.87),
    "glmc_resnet32.cifar100_lt_if100": _cifar("glmc_resnet32.cifar100_lt_if100", 100, 57.97),
    "glmc_resnet32.cifar100_lt_if50": _cifar("glmc_resnet32.cifar100_lt_if50", 100, 63.78),
    "glmc_resnet32.cifar100_lt_if10": _cifar("glmc_resnet32.cifar100_lt_if10", 100, 73.40),
    "glmc_resnext50_32x4d.imagenet_lt": _imagenet_style(
        "glmc_resnext50_32x4d.imagenet_lt", 1000, imagenet_labels(),
        dict(top1=56.3, many=70.1, medium=52.4, few=30.4)),
    "glmc_resnext50_32x4d.imagenet_lt_bs": _imagenet_style(
        "glmc_resnext50_32x4d.imagenet_lt_bs", 1000, imagenet_labels(),
        dict(top1=57.21, many=64.76, medium=55.67, few=42.19)),
    "glmc_resnext50_32x4d.inat2018": _imagenet_style(
        "glmc_resnext50_32x4d.inat2018", 8142, index_labels(8142),
        dict(top1=72.21, many=64.60, medium=73.16, few=73.01), mean=_INAT_MEAN, std=_INAT_STD),
    "glmc_resnet50": _imagenet_style("glmc_resnet50", 1000, imagenet_labels(), **_NO_WEIGHTS),
    # GLMC on any timm backbone (glmc_zoo/models/glmc_timm.py): trained here from the backbone's pretrained weights
    "glmc_timm": _imagenet_style("glmc_timm", 1000, imagenet_labels(), weights="none",
                                 weights_note="GLMC's heads on any timm backbone: train it from pretrained weights "
                                              "with `glmc-zoo train --set init=REF` (docs/own_data.md)"),
}

# Trained by this project on the real CIFAR-10 (JPEG copy) and shipped in the package. Listed first so
# that a shipped weight set is its architecture's default.
def _shipped(root: Path = _BUNDLED_DIR) -> dict[str, WeightSet]:
    """The weight sets shipped in `weights/`: every `ARCH.TAG` folder that reads as one. Anything else there (a
    hidden `.NAME.tmp-*` folder of a killed bundle, a foreign or damaged folder) is skipped with one warning:
    one bad folder never stops `import glmc_zoo` or `glmc-zoo list`."""
    import warnings

    found = {}
    for folder in sorted(root.iterdir() if root.is_dir() else []):
        if folder.name.startswith(".") or not folder.is_dir():
            continue
        why = weight_set_name_problem(folder.name)
        try:
            if why is None:
                found[folder.name] = _bundled(folder.name, root)
                continue
        except (ModelLoadError, OSError, ValueError, KeyError, TypeError) as e:
            why = str(e).splitlines()[0]
        warnings.warn(f"glmc-zoo: skipped {folder}: {why}", stacklevel=2)
    return found


#: The GLMC architectures (glmc_zoo/models registers each with timm).
ARCHITECTURES = ("glmc_resnet32", "glmc_resnet32_w16", "glmc_resnet50", "glmc_resnext50_32x4d", "glmc_timm")


def weight_set_name_problem(name: str) -> str | None:
    """Why `name` cannot name a weight set (`ARCH.TAG`: ARCH one of `ARCHITECTURES`, TAG of lowercase letters,
    digits and `_`, so that it is one folder name and never a path), or None."""
    arch, dot, tag = name.partition(".")
    if not dot or arch not in ARCHITECTURES or not re.fullmatch(r"[a-z0-9][a-z0-9_]*", tag):
        return (f"{name!r} is not a weight-set name: ARCH.TAG, ARCH one of {', '.join(ARCHITECTURES)} and TAG of "
                f"lowercase letters, digits and _ (e.g. glmc_resnet32_w16.cifar10_lt_if50_e200_jpeg)")
    return None


_TABLE = {**_shipped(), **_TABLE}
# Weight sets an earlier release shipped and a later one replaced: the name stays known, so that loading it says
# what replaced it instead of "unknown tag". Listed after the shipped ones, never an architecture's default.
_WITHDRAWN = {
    "glmc_resnet32_w16.cifar10_lt_if100_jpeg": replace(_cifar(
        "glmc_resnet32_w16.cifar10_lt_if100_jpeg", 10, weights="withdrawn", kind="measured",
        metrics=dict(top1=50.93, top5=96.75, many=42.94, medium=82.90),  # its 0.1.0 card
        source="glmc-zoo 0.1.0's card: final epoch (30) on the 10000-image test set",
        weights_note="the 30-epoch CPU run (50.93% top-1) shipped in glmc-zoo 0.1.0, withdrawn in 0.2.0 for the "
                     "finished 200-epoch run: use glmc_resnet32_w16.cifar10_lt_if100_e200_jpeg"),
        class_counts=(5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50), trained_by="glmc-zoo"),
}
if not any(name.startswith("glmc_resnet32_w16.") for name in _TABLE):  # no shipped weights: architecture only
    _TABLE = {"glmc_resnet32_w16": _cifar("glmc_resnet32_w16", 10, **_NO_WEIGHTS), **_TABLE}
_TABLE.update({n: ws for n, ws in _WITHDRAWN.items() if n not in _TABLE})  # a shipped folder wins over the record

#: Each architecture's default weight set, written out (torchvision's `DEFAULT`): what
#: `timm.create_model(ARCH, pretrained=True)` and `get_weights(ARCH)` give. Not the order of a dict: a weight
#: set shipped later (an IF 10 run sorts before IF 100) never becomes the default by its name.
DEFAULT_TAGS = {"glmc_resnet32_w16": "cifar10_lt_if100_e200_jpeg", "glmc_resnet32": "cifar10_lt_if100",
                "glmc_resnext50_32x4d": "imagenet_lt"}


def _defaults_first(table: dict[str, WeightSet], defaults: dict[str, str]) -> dict[str, WeightSet]:
    """`table` with each architecture's default record first among its own (timm's `generate_default_cfgs`
    takes an architecture's first tag as its default); a withdrawn record is never moved there."""
    first = [n for n in (f"{a}.{t}" for a, t in defaults.items())
             if n in table and table[n].availability != "withdrawn"]
    # an architecture without a named default whose record is the architecture alone (glmc_timm: weight sets on
    # different backbones, none of them the architecture's) keeps that record as its default
    first += [n for n in table if "." not in n and n not in defaults]
    return {n: table[n] for n in first + [n for n in table if n not in first]}


#: Every weight set (and architecture-only entry) by name: the single source of truth.
WEIGHTS: dict[str, WeightSet] = _defaults_first(_TABLE, DEFAULT_TAGS)


def architectures() -> list[str]:
    """Every GLMC architecture (each has at least one record, its weights or "architecture only")."""
    return sorted({w.arch for w in WEIGHTS.values()})


def default_weights(arch: str) -> WeightSet | None:
    """The architecture's default weight set: `DEFAULT_TAGS` names it (and `WEIGHTS` lists it first, as timm's
    `generate_default_cfgs` takes it); an architecture without one has its own record (architecture only) where
    there is one, else its first weight set, never a withdrawn one."""
    named = WEIGHTS.get(f"{arch}.{DEFAULT_TAGS[arch]}") if arch in DEFAULT_TAGS else None
    if named is not None and named.availability != "withdrawn":
        return named
    if arch in WEIGHTS:  # the architecture's own record (no weights, or weights on backbones that differ)
        return WEIGHTS[arch]
    return next((w for n, w in WEIGHTS.items() if w.arch == arch and "." in n and w.availability != "withdrawn"), None)


def weight_sets() -> list[WeightSet]:
    """Every described weight set (`arch.tag`), loadable or not, in natural order of name (numbers by value:
    `..._if10_...`, `..._if50_...`, `..._if100_...`, as timm's `list_pretrained` orders them)."""
    return [WEIGHTS[n] for n in sorted(WEIGHTS, key=_natural) if "." in n]


def _natural(name: str) -> list:
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", name.lower())]


def find_weights(name: str) -> WeightSet | None:
    """The record of `name` (an `arch.tag`, or an architecture: its default weight set), or None."""
    if name in WEIGHTS and "." in name:
        return WEIGHTS[name]
    return default_weights(name) if name in architectures() else None


def get_weights(name: str) -> WeightSet:
    """The record of `name` (an `arch.tag`, or an architecture: its default weight set), as torchvision's
    `get_weight`: an unknown name raises `UnknownModelError` naming the closest names (`find_weights` returns
    None instead)."""
    ws = find_weights(name)
    if ws is None:
        raise UnknownModelError(unknown_model_message(name))
    return ws


def unknown_model_message(name: str) -> str:
    """Why `name` names no weight set, with the closest names: an unknown architecture, or a known one's unknown
    tag (then its weight sets are listed: timm itself says only "Invalid pretrained tag")."""
    arch, _, tag = name.partition(".")
    if arch not in architectures():
        names = [w.name for w in weight_sets() if w.availability != "withdrawn"] + list(ARCHITECTURES)
        return (f"unknown model {name!r}.{did_you_mean(name, names)} `glmc-zoo list --pretrained` shows them all; "
                f"a weights folder is given as local-dir:DIR.")
    tags = [w.name for w in weight_sets() if w.arch == arch and w.availability != "withdrawn"]
    known = f"Its weight sets: {', '.join(tags)}" if tags else "It has no weight sets (pretrained=False builds it)"
    return (f"unknown model {name!r}: {arch} has no weight set tagged {tag!r}.{did_you_mean(name, tags)} "
            f"{known}; `glmc-zoo list --pretrained` shows them all.")
