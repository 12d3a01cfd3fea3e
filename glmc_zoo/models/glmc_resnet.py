"""GLMC ResNets: the CIFAR ResNet-32 (as released, width 64, and the usual width 16) and the
ImageNet-style ResNet-50 / ResNeXt-50 32x4d, each with GLMC's four heads.

Layouts and parameter names follow the authors' released checkpoints (../shared/GLMC_REFERENCE.md,
section 2), so a released state dict loads after stripping a `module.` prefix.

Heads (all models):
    fc               Linear(F, C)   the plain (uniform-sampling) classifier, trained with L_bal
    fc_cb            Linear(F, C)   the rebalanced classifier, trained with L_rebal; used at inference
    projection_head  Linear(F, P)   z, the consistency representation
    contrast_head    Linear(P, P)   p, the SimSiam-style prediction head

`forward(x)` returns the `fc_cb` logits, the head every reported GLMC number uses.
`forward_train(x)` returns all four outputs as a `GLMCOutput` named tuple.

`training_heads=False` builds the model for inference and fine-tuning through `forward()` alone: only
`fc_cb` is kept, so every parameter gets a gradient from `forward()` (what `DistributedDataParallel`
requires) and a full GLMC checkpoint still loads, its three training heads left out.
"""

from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import SelectAdaptivePool2d
from timm.models import build_model_with_cfg, checkpoint_seq, generate_default_cfgs, register_model
from timm.models._builder import resolve_pretrained_cfg
from timm.models._features import feature_take_indices
from timm.models.resnet import Bottleneck, ResNet

from glmc_zoo.errors import UnknownModelError, WeightsNotAvailableError
from glmc_zoo.registry import WEIGHTS, WeightSet, unknown_model_message

__all__ = ["GLMCOutput", "GLMCHeads", "GLMCResNet", "GLMCCifarResNet", "GLMCImageNetResNet", "WeightSet", "WEIGHTS"]


class GLMCOutput(NamedTuple):
    """The four outputs of a GLMC training forward pass."""

    logits: torch.Tensor  # (B, C) from `fc`
    logits_cb: torch.Tensor  # (B, C) from `fc_cb`
    z: torch.Tensor  # (B, P) projection
    p: torch.Tensor  # (B, P) prediction


# ---------------------------------------------------------------------------------------------
# Blocks
# ---------------------------------------------------------------------------------------------


class ShortcutA(nn.Module):
    """Parameter-free "option A" shortcut: subsample by 2 and zero-pad channels by planes // 4 on
    each side (as in the released CIFAR ResNet-32; it has no `shortcut` keys)."""

    def __init__(self, planes: int):
        super().__init__()
        self.pad = planes // 4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))


class CifarBasicBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.act1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.act2 = nn.ReLU(inplace=True)
        self.shortcut = ShortcutA(planes) if stride != 1 or in_planes != planes else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.act2(out + self.shortcut(x))


# ---------------------------------------------------------------------------------------------
# Model classes
# ---------------------------------------------------------------------------------------------


class TimmCfgAlias:
    """timm's older name for `pretrained_cfg`, `default_cfg`, as a view of it: timm sets both once, and a
    `pretrained_cfg` replaced later (a fine-tuned model's classes, a bundled tag) must not leave a stale alias."""

    __jit_unused_properties__ = ["default_cfg"]

    @property
    def default_cfg(self) -> dict:
        return self.pretrained_cfg

    @default_cfg.setter
    def default_cfg(self, cfg: dict) -> None:
        self.pretrained_cfg = cfg


#: GLMC's four heads, in the released order (the order of their initialisation).
HEADS = ("fc", "fc_cb", "projection_head", "contrast_head")
#: The heads that only `forward_train()` uses; `training_heads=False` leaves them out.
TRAINING_HEADS = ("fc", "projection_head", "contrast_head")


def without_training_heads(state_dict: dict) -> dict:
    """`state_dict` less the tensors of the training heads (what `forward()` needs)."""
    return {k: v for k, v in state_dict.items() if k.split(".", 1)[0] not in TRAINING_HEADS}


def drop_training_heads(state_dict: dict, model: nn.Module) -> dict:
    """timm's `pretrained_filter_fn`: a model built with `training_heads=False` takes a full GLMC
    checkpoint, its training heads left out; any other model takes it unchanged."""
    return state_dict if getattr(model, "training_heads", True) else without_training_heads(state_dict)


class GLMCHeads:
    """GLMC's four heads on (B, F) pooled features, shared by every GLMC model (needs `num_features`)."""

    def _init_heads(self, num_classes: int, proj_dim: int, drop_rate: float = 0.0,
                    training_heads: bool = True) -> None:
        # (created in the released order, so a seed gives the released initialisation)
        check_int("num_classes", num_classes, 0, 100_000)
        check_int("proj_dim", proj_dim, 1, 65_536)
        if isinstance(drop_rate, bool) or not isinstance(drop_rate, (int, float)) or not 0 <= drop_rate < 1:
            raise ValueError(f"drop_rate={drop_rate!r}: give a dropout probability, 0 <= drop_rate < 1")
        self.num_classes = num_classes
        self.proj_dim = proj_dim
        self.drop_rate = drop_rate
        if not isinstance(training_heads, bool):  # a command line's "false" is a str, and truthy
            raise ValueError(f"training_heads={training_heads!r}: give True or False (a bool, not a "
                             f"{type(training_heads).__name__})")
        self.training_heads = training_heads
        self.head_hidden_size = self.num_features
        self.head_drop = nn.Dropout(drop_rate)  # before the class heads, as timm's ResNet
        if self.training_heads:
            self.fc = nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()
        self.fc_cb = nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()
        if self.training_heads:
            self.projection_head = nn.Sequential(nn.Linear(self.num_features, proj_dim))
            self.contrast_head = nn.Sequential(nn.Linear(proj_dim, proj_dim))

    def _heads(self) -> tuple[str, ...]:
        """The names of the heads this model has, in the released order."""
        return tuple(n for n in HEADS if self.training_heads or n not in TRAINING_HEADS)

    def _head_linears(self) -> list[nn.Linear]:
        """The heads' Linear layers, in the released order (for their Kaiming-normal initialisation)."""
        return [m for name in self._heads() for m in getattr(self, name).modules() if isinstance(m, nn.Linear)]

    def _reset_class_heads(self, num_classes: int) -> None:
        self.num_classes = num_classes
        for name in (n for n in self._heads() if n in ("fc", "fc_cb")):
            head = nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()
            if isinstance(head, nn.Linear):
                nn.init.kaiming_normal_(head.weight)
            setattr(self, name, head)

    def _prune_heads(self, *global_pool: str) -> None:
        """No class heads, no consistency heads: what `prune_intermediate_layers(prune_head=True)` leaves."""
        self.reset_classifier(0, *global_pool)
        if self.training_heads:
            self.projection_head, self.contrast_head = nn.Identity(), nn.Identity()

    def _glmc_outputs(self, feat: torch.Tensor) -> GLMCOutput:
        """(B, F) pooled features -> the four training outputs."""
        if not self.training_heads:
            raise RuntimeError(f"{type(self).__name__} was built with training_heads=False (for inference and "
                               f"fine-tuning through forward()): it has no {', '.join(TRAINING_HEADS)} for "
                               f"forward_train(); build it with training_heads=True (the default) to train GLMC")
        z = self.projection_head(feat)  # (B, P)
        dropped = self.head_drop(feat)
        return GLMCOutput(self.fc(dropped), self.fc_cb(dropped), z, self.contrast_head(z))


class GLMCResNet(GLMCHeads, TimmCfgAlias, nn.Module):
    """The GLMC heads and timm's model contract, shared by every backbone.

    Subclasses build the stem (`conv1`, `bn1`, `act1`, and `maxpool` where there is one) and the
    stages named in `stage_names`, and set `num_features` and `feature_info` (stem, then stages).

    `forward()` uses `fc_cb` only: GLMC's other heads (`fc`, `projection_head`, `contrast_head`)
    are trained through `forward_train()` and get no gradient from `forward()` by design
    (`training_heads=False` leaves them out).

    (No class-level attribute annotations and no postponed annotations in this file: TorchScript reads
    both, and `torch.jit.script` of the model or of its FX graph must work as for timm's own models.)
    """

    def _init_pool_and_heads(self, num_classes: int, proj_dim: int, global_pool: str, drop_rate: float,
                             training_heads: bool) -> None:
        self.grad_checkpointing = False
        self.global_pool = SelectAdaptivePool2d(pool_type=global_pool, flatten=bool(global_pool))
        self._init_heads(num_classes, proj_dim, drop_rate, training_heads)

    # -- timm contract --------------------------------------------------------------------------
    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict[str, str]:
        """Parameter groups for layer-wise decay: the stem, then each stage (or each block)."""
        return dict(stem=r"^conv1|bn1|maxpool", blocks=r"^layer(\d+)" if coarse else r"^layer(\d+)\.(\d+)")

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each block's activations in backward instead of storing them."""
        self.grad_checkpointing = enable

    @torch.jit.ignore
    def get_classifier(self, name_only: bool = False) -> nn.Module | str:
        """The inference classifier, `fc_cb` (its name with `name_only`)."""
        return "fc_cb" if name_only else self.fc_cb

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """Replace the class heads (`fc` and `fc_cb`) with fresh ones for `num_classes`."""
        if global_pool is not None:
            self.global_pool = SelectAdaptivePool2d(pool_type=global_pool, flatten=bool(global_pool))
        self._reset_class_heads(num_classes)

    def _stem(self, x: torch.Tensor) -> torch.Tensor:
        return self.act1(self.bn1(self.conv1(x)))

    def _stage(self, name: str, x: torch.Tensor) -> torch.Tensor:
        layer = getattr(self, name)
        if self.grad_checkpointing and not torch.jit.is_scripting():
            return checkpoint_seq(layer, x)
        return layer(x)

    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: int | list[int] | None = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ) -> list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
        """timm's contract: the stem's and stages' outputs (index 0 = stem, 1.. = stages).

        `indices`: the last n if an int, all if None, those listed otherwise. `norm` has no effect
        (no final norm layer). Returns (final map, intermediates), or the intermediates alone.
        """
        if output_fmt != "NCHW":
            raise ValueError(f"output_fmt={output_fmt!r}: GLMC ResNets give NCHW feature maps only")
        take, max_index = feature_take_indices(len(self.stage_names) + 1, indices)
        intermediates = []
        x = self._stem(x)
        if 0 in take:
            intermediates.append(x)
        x = self.maxpool(x) if hasattr(self, "maxpool") else x
        names = self.stage_names[:max_index] if stop_early else self.stage_names
        for i, name in enumerate(names, start=1):
            x = self._stage(name, x)
            if i in take:
                intermediates.append(x)
        return intermediates if intermediates_only else (x, intermediates)

    def prune_intermediate_layers(self, indices: int | list[int] = 1, prune_norm: bool = False,
                                  prune_head: bool = True) -> list[int]:
        """Drop the stages after the last of `indices` (and the heads): what `forward_intermediates`
        needs and nothing more. Returns the normalised indices."""
        take, max_index = feature_take_indices(len(self.stage_names) + 1, indices)
        for name in self.stage_names[max_index:]:
            setattr(self, name, nn.Identity())
        if prune_head:
            self._prune_heads("")
        return take

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> the last stage's unpooled map (B, F, h, w)."""
        x = self._stem(x)
        x = self.maxpool(x) if hasattr(self, "maxpool") else x
        if torch.jit.is_scripting():  # TorchScript takes no getattr by a variable name: the stages spelled out
            x = self.layer3(self.layer2(self.layer1(x)))
            return self.layer4(x) if hasattr(self, "layer4") else x
        for name in self.stage_names:
            x = self._stage(name, x)
        return x

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """(B, F, h, w) -> (B, F) pooled features if `pre_logits`, else (B, C) `fc_cb` logits.
        With `global_pool=''` the map stays unpooled (B, F, h, w), as in timm."""
        x = self.head_drop(self.global_pool(x))
        return x if pre_logits else self.fc_cb(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, C) logits of the rebalanced head `fc_cb` (GLMC's inference head)."""
        return self.forward_head(self.forward_features(x))

    # -- GLMC training outputs -----------------------------------------------------------------
    def forward_train(self, x: torch.Tensor) -> GLMCOutput:
        """(B, 3, H, W) -> logits of `fc` and `fc_cb`, projection z and prediction p."""
        return self._glmc_outputs(self.global_pool(self.forward_features(x)))  # from (B, F) features


class GLMCCifarResNet(GLMCResNet):
    """CIFAR ResNet-(6n+2) with option-A shortcuts, as in the GLMC release.

    `widths=(64, 128, 256)` is the released "ResNet-32"; `(16, 32, 64)` is the usual one (16x less
    compute) that most long-tail papers use.
    """

    def __init__(
        self,
        num_classes: int = 100,
        widths: tuple[int, int, int] = (64, 128, 256),
        blocks_per_stage: int = 5,
        proj_dim: int = 128,
        in_chans: int = 3,
        global_pool: str = "avg",
        drop_rate: float = 0.0,
        training_heads: bool = True,
    ):
        super().__init__()
        check_int("blocks_per_stage", blocks_per_stage, 1, 200)  # 200: the ResNet-1202, the deepest CIFAR ResNet
        check_int("in_chans", in_chans, 1, 16)
        if not (isinstance(widths, (list, tuple)) and len(widths) == 3):
            raise ValueError(f"widths={widths!r}: give three stage widths, e.g. (16, 32, 64)")
        for w in widths:
            check_int("widths", w, 4, 4096)
        if global_pool not in ("avg", "max", "avgmax", "catavgmax", ""):
            raise ValueError(f"global_pool={global_pool!r}: use avg, max, avgmax, catavgmax or '' (unpooled)")
        self.conv1 = nn.Conv2d(in_chans, widths[0], 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.act1 = nn.ReLU(inplace=True)
        in_planes = widths[0]
        self.feature_info = [dict(num_chs=widths[0], reduction=1, module="act1")]
        for i, (planes, stride) in enumerate(zip(widths, (1, 2, 2)), start=1):
            blocks = []
            for b in range(blocks_per_stage):
                blocks.append(CifarBasicBlock(in_planes, planes, stride if b == 0 else 1))
                in_planes = planes
            setattr(self, f"layer{i}", nn.Sequential(*blocks))
            self.feature_info.append(dict(num_chs=planes, reduction=2 ** (i - 1), module=f"layer{i}"))
        self.num_features = widths[-1]
        self.stage_names = ("layer1", "layer2", "layer3")
        self._init_pool_and_heads(num_classes, proj_dim, global_pool, drop_rate, training_heads)
        # The release applies Kaiming-normal to every Conv2d and Linear weight; biases and BN keep
        # PyTorch's defaults.
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight)


class GLMCImageNetResNet(GLMCResNet):
    """ImageNet-style ResNet / ResNeXt with torchvision's layout and parameter names (the stages
    are timm's `Bottleneck`s, whose names match torchvision's)."""

    def __init__(
        self,
        num_classes: int = 1000,
        layers: tuple[int, ...] = (3, 4, 6, 3),
        cardinality: int = 1,
        base_width: int = 64,
        proj_dim: int = 256,
        in_chans: int = 3,
        global_pool: str = "avg",
        drop_rate: float = 0.0,
        training_heads: bool = True,
    ):
        super().__init__()
        # Borrow timm's stem and stages; the reference does not zero-init the last BN of a block.
        trunk = ResNet(
            Bottleneck, list(layers), num_classes=0, in_chans=in_chans, cardinality=cardinality,
            base_width=base_width, zero_init_last=False,
        )
        for name in ("conv1", "bn1", "act1", "maxpool", "layer1", "layer2", "layer3", "layer4"):
            setattr(self, name, getattr(trunk, name))
        self.feature_info = trunk.feature_info
        self.num_features = trunk.num_features
        self.stage_names = ("layer1", "layer2", "layer3", "layer4")
        self._init_pool_and_heads(num_classes, proj_dim, global_pool, drop_rate, training_heads)
        for m in self._head_linears():
            nn.init.kaiming_normal_(m.weight)


def check_int(name: str, value, low: int, high: int) -> None:
    """An integer architecture argument within [low, high], checked before anything is allocated (a file's
    `model_args` never decides how much memory a model takes: blocks_per_stage 100000 is refused, not built)."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name}={value!r}: give an integer from {low} to {high}")


def _check_weights_available(variant: str, kwargs: dict) -> None:
    cfg = resolve_pretrained_cfg(variant, pretrained_cfg=kwargs.get("pretrained_cfg"),
                                 pretrained_cfg_overlay=kwargs.get("pretrained_cfg_overlay"))
    name = f"{variant}.{cfg.tag}" if cfg.tag else variant
    if cfg.source in ("hf-hub", "local-dir") or cfg.file or cfg.state_dict:
        return  # an explicit source given by the user: let it load (or fail) on its own terms
    ws = WEIGHTS.get(name)
    if ws is not None and ws.availability == "withdrawn":
        raise WeightsNotAvailableError(f"{name}: {ws.note}")
    if ws is None or not ws.loadable:
        raise WeightsNotAvailableError(
            f"{name}: {ws.note if ws else 'no pretrained weights exist for this model'}. "
            f"Use pretrained=False for random init, or load a converted folder with "
            f"timm.create_model('local-dir:DIR', pretrained=True)."
        )


def record_model_args(variant: str, kwargs: dict) -> dict:
    """`kwargs` with the architecture arguments of the weight set a tag names (`variant.TAG`: its record's
    `model_args`, e.g. a glmc_timm set's backbone), the caller's own values kept. No tag, no change: the plain
    architecture name builds the plain architecture."""
    tag = kwargs.get("pretrained_cfg")
    if not (isinstance(tag, str) and tag):
        return kwargs
    ws = WEIGHTS.get(f"{variant}.{tag}")
    if ws is None:  # timm would say only "Invalid pretrained tag": name the architecture's tags, as the CLI does
        raise UnknownModelError(unknown_model_message(f"{variant}.{tag}"))
    if not ws.model_args:
        return kwargs
    return dict(ws.model_args, **kwargs)


def _create(model_cls: type[GLMCResNet], variant: str, pretrained: bool, **kwargs) -> nn.Module:
    kwargs = record_model_args(variant, kwargs)
    if pretrained:
        _check_weights_available(variant, kwargs)
    if kwargs.get("drop_path_rate"):
        raise ValueError(f"{variant}: drop_path_rate={kwargs['drop_path_rate']} is not supported (GLMC's ResNets have "
                         f"no stochastic depth); use drop_rate for dropout before the heads")
    kwargs.pop("drop_path_rate", None)
    n_features = 4 if model_cls is GLMCCifarResNet else 5
    # features_only goes through timm's builder: FeatureListNet by default (the stem and stage
    # modules run in order), feature_cls='getter' uses forward_intermediates.
    kwargs.setdefault("pretrained_filter_fn", drop_training_heads)
    model = build_model_with_cfg(model_cls, variant, pretrained,
                                 feature_cfg=dict(out_indices=tuple(range(n_features))), **kwargs)
    # The registry tells timm where a bundled weight set lies on this machine; the model's own
    # config describes the weights, not this installation (`glmc_zoo.get_weights(name).cfg` has it).
    if isinstance(getattr(model, "pretrained_cfg", None), dict) and "file" in model.pretrained_cfg:
        model.pretrained_cfg = {k: v for k, v in model.pretrained_cfg.items() if k != "file"}
    return model


#: timm's pretrained configs, one per record of the registry (glmc_zoo/registry.py).
default_cfgs = generate_default_cfgs({k: w.cfg for k, w in WEIGHTS.items()})


# ---------------------------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------------------------


def register_glmc_model(fn):
    """timm's `register_model`, but registering a name twice is an error (timm only warns and
    silently replaces the first model)."""
    import timm

    if timm.is_model(fn.__name__):
        raise ValueError(f"model name {fn.__name__!r} is already registered with timm; pick another name")
    return register_model(fn)


@register_glmc_model
def glmc_resnet32(pretrained: bool = False, **kwargs) -> GLMCCifarResNet:
    """GLMC CIFAR ResNet-32 exactly as released: widths 64/128/256 (7.4M params, 1.1 GMAC)."""
    args = dict(widths=(64, 128, 256), proj_dim=128)
    return _create(GLMCCifarResNet, "glmc_resnet32", pretrained, **dict(args, **kwargs))


@register_glmc_model
def glmc_resnet32_w16(pretrained: bool = False, **kwargs) -> GLMCCifarResNet:
    """GLMC CIFAR ResNet-32 at the usual widths 16/32/64 (0.47M params, 0.07 GMAC)."""
    args = dict(widths=(16, 32, 64), proj_dim=128)
    return _create(GLMCCifarResNet, "glmc_resnet32_w16", pretrained, **dict(args, **kwargs))


@register_glmc_model
def glmc_resnet50(pretrained: bool = False, **kwargs) -> GLMCImageNetResNet:
    """GLMC ResNet-50 (torchvision layout) with GLMC heads."""
    args = dict(layers=(3, 4, 6, 3), proj_dim=256)
    return _create(GLMCImageNetResNet, "glmc_resnet50", pretrained, **dict(args, **kwargs))


@register_glmc_model
def glmc_resnext50_32x4d(pretrained: bool = False, **kwargs) -> GLMCImageNetResNet:
    """GLMC ResNeXt-50 32x4d (torchvision layout), the ImageNet-LT / iNaturalist 2018 model."""
    args = dict(layers=(3, 4, 6, 3), cardinality=32, base_width=4, proj_dim=256)
    return _create(GLMCImageNetResNet, "glmc_resnext50_32x4d", pretrained, **dict(args, **kwargs))
