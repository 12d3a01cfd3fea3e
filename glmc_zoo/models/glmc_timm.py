"""GLMC on any timm backbone: `timm.create_model("glmc_timm", backbone="convnext_atto", num_classes=20)`.

GLMC needs pooled features and four heads, nothing from the backbone's own design, so any timm model that
gives pooled features (`forward_features` then `forward_head(pre_logits=True)`: CNNs and ViTs alike) can
carry it. The heads keep the released names, their input scaled to the backbone's feature width F:

    fc               Linear(F, C)   the plain classifier (L_bal)
    fc_cb            Linear(F, C)   the rebalanced classifier (L_rebal); `forward()` returns its logits
    projection_head  Linear(F, P)   z, the consistency representation
    contrast_head    Linear(P, P)   p, the SimSiam-style prediction head

The backbone's parameters keep timm's names under `backbone.`, so a timm checkpoint of the backbone loads
into `model.backbone` strictly (`load_backbone`). `timm.create_model` records `backbone` and
`backbone_args`, a saved folder's config.json carries them as `model_args`, and
`timm.create_model("local-dir:DIR", pretrained=True)` rebuilds the model from the folder alone.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.models import generate_default_cfgs

from glmc_zoo.models.glmc_resnet import GLMCHeads, GLMCOutput, TimmCfgAlias, drop_training_heads, register_glmc_model
from glmc_zoo.registry import WEIGHTS

__all__ = ["GLMCTimm"]


class GLMCTimm(GLMCHeads, TimmCfgAlias, nn.Module):
    """A timm backbone (its classifier removed) with GLMC's four heads on its pooled features.

    Args:
        backbone: a timm architecture name (`resnet50`, `convnext_tiny`, `vit_small_patch16_224`, ...);
            no pretrained tag: weights come from `load_backbone` (the trainer's `init`).
        backbone_args: keyword arguments for the backbone (`img_size`, `drop_path_rate`, ...).
        num_classes: classes of `fc` and `fc_cb`.
        proj_dim: P, the width of the consistency heads (the released ImageNet models use 256).
        training_heads: False keeps only `fc_cb` (inference, or fine-tuning through `forward()` under DDP).
        upsample_to: S > 0 resizes every input (bilinear) to S x S before the backbone, inside the model: a
            backbone pretrained on ImageNet-sized photos, trained on 32-px images (CIFAR) upsampled to S, is a
            32-px model from outside, so that training, evaluation, `predict` and an ONNX export all give it
            the same pixels. 0 (the default) feeds the input as it is.
    """

    def __init__(self, backbone: str = "resnet18", backbone_args: dict | None = None, num_classes: int = 1000,
                 proj_dim: int = 256, in_chans: int = 3, drop_rate: float = 0.0, global_pool: str | None = None,
                 training_heads: bool = True, upsample_to: int = 0):
        super().__init__()
        import timm

        if isinstance(upsample_to, bool) or not isinstance(upsample_to, int) or not 0 <= upsample_to <= 1024:
            raise ValueError(f"upsample_to={upsample_to!r}: give the backbone's input side in pixels, 1-1024 (0: off)")
        self.upsample_to = upsample_to

        if not isinstance(backbone, str) or not timm.is_model(backbone.split(".", 1)[0]):
            raise ValueError(f"backbone={backbone!r}: not a timm architecture; `timm.list_models()` names them all "
                             f"(e.g. resnet50, convnext_tiny, vit_small_patch16_224)")
        if backbone.startswith("glmc_"):
            raise ValueError(f"backbone={backbone!r} is a GLMC model already; use it directly as the model")
        args = dict(backbone_args or {})
        if global_pool is not None:
            args["global_pool"] = global_pool
        self.backbone = timm.create_model(backbone.split(".", 1)[0], pretrained=False, num_classes=0,
                                          in_chans=in_chans, **args)
        self.num_features = int(getattr(self.backbone, "head_hidden_size", None) or self.backbone.num_features)
        self._init_heads(num_classes, proj_dim, drop_rate, training_heads)
        for m in self._head_linears():  # as the released heads: Kaiming-normal weights
            nn.init.kaiming_normal_(m.weight)
        self.feature_info = [dict(f, module=f"backbone.{f['module']}") for f in getattr(self.backbone, "feature_info", [])
                             if isinstance(f, dict) and "module" in f]

    # -- timm contract --------------------------------------------------------------------------
    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict:
        """The backbone's parameter groups, under `backbone.`; the heads form the last group."""
        inner = self.backbone.group_matcher(coarse) if hasattr(self.backbone, "group_matcher") else {}
        return {k: _prefixed(v) for k, v in inner.items()}

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        if hasattr(self.backbone, "set_grad_checkpointing"):
            self.backbone.set_grad_checkpointing(enable)

    @torch.jit.ignore
    def get_classifier(self, name_only: bool = False) -> nn.Module | str:
        """The inference classifier, `fc_cb` (its name with `name_only`)."""
        return "fc_cb" if name_only else self.fc_cb

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """Fresh `fc` and `fc_cb` for `num_classes` (and the backbone's pooling, if given)."""
        if global_pool is not None:
            self.backbone.reset_classifier(0, global_pool)
        self._reset_class_heads(num_classes)

    def forward_intermediates(self, x: torch.Tensor, indices=None, norm: bool = False, stop_early: bool = False,
                              output_fmt: str = "NCHW", intermediates_only: bool = False):
        """The backbone's `forward_intermediates` (timm's contract), where the backbone has one."""
        if not hasattr(self.backbone, "forward_intermediates"):
            raise NotImplementedError(f"{type(self.backbone).__name__} has no forward_intermediates in this timm")
        return self.backbone.forward_intermediates(self._resized(x), indices=indices, norm=norm, stop_early=stop_early,
                                                   output_fmt=output_fmt, intermediates_only=intermediates_only)

    def prune_intermediate_layers(self, indices=1, prune_norm: bool = False, prune_head: bool = True):
        """The backbone pruned after the last of `indices`; with `prune_head`, GLMC's heads too."""
        take = self.backbone.prune_intermediate_layers(indices, prune_norm=prune_norm, prune_head=prune_head)
        if prune_head:
            self._prune_heads()
        return take

    def _resized(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, 3, S, S) with `upsample_to` S (bilinear, as torchvision's Resize of a tensor), else x."""
        if self.upsample_to:
            return F.interpolate(x, size=(self.upsample_to, self.upsample_to), mode="bilinear", align_corners=False)
        return x

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The backbone's unpooled features (a map for CNNs, tokens for ViTs)."""
        return self.backbone.forward_features(self._resized(x))

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        """`forward_features` output -> (B, F) pooled features (the backbone's own pooling and pre-logits)."""
        return self.backbone.forward_head(x, pre_logits=True)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.head_drop(self.pooled(x))
        return x if pre_logits else self.fc_cb(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, C) logits of the rebalanced head `fc_cb` (GLMC's inference head)."""
        return self.forward_head(self.forward_features(x))

    def forward_train(self, x: torch.Tensor) -> GLMCOutput:
        """(B, 3, H, W) -> logits of `fc` and `fc_cb`, projection z and prediction p (as the released models)."""
        return self._glmc_outputs(self.pooled(self.forward_features(x)))


def _prefixed(rule):
    """A group_matcher rule (a regex, or a list of (regex, priority)) for parameters under `backbone.`."""
    if isinstance(rule, str):
        return "^backbone\\." + rule[1:] if rule.startswith("^") else rule
    if isinstance(rule, (list, tuple)):
        return type(rule)((_prefixed(r[0]), *r[1:]) if isinstance(r, tuple) else _prefixed(r) for r in rule)
    return rule


def _create_glmc_timm(variant: str, pretrained: bool, **kwargs) -> GLMCTimm:
    from timm.models import build_model_with_cfg

    from glmc_zoo.models.glmc_resnet import _check_weights_available, record_model_args

    kwargs = record_model_args(variant, kwargs)
    if pretrained:
        _check_weights_available(variant, kwargs)
    own_cfg = kwargs.get("pretrained_cfg") is None and kwargs.get("pretrained_cfg_overlay") is None
    for key in ("drop_path_rate", "drop_block_rate"):  # regularisers of the backbone, not of GLMC's heads
        if key in kwargs:
            kwargs["backbone_args"] = dict(kwargs.get("backbone_args") or {}, **{key: kwargs.pop(key)})
    kwargs.setdefault("pretrained_filter_fn", drop_training_heads)
    # features_only: timm's FeatureGetterNet over the backbone's forward_intermediates
    model = build_model_with_cfg(GLMCTimm, variant, pretrained, feature_cfg=dict(feature_cls="getter"), **kwargs)
    if own_cfg and isinstance(getattr(model, "pretrained_cfg", None), dict):
        inner = model.model if hasattr(model, "model") and isinstance(model.model, GLMCTimm) else model
        # a fresh model: the backbone's own preprocessing (input size, mean/std, crop, interpolation)
        keep = ("input_size", "mean", "std", "crop_pct", "crop_mode", "interpolation", "fixed_input_size",
                "min_input_size", "pool_size")
        bcfg = inner.backbone.pretrained_cfg if isinstance(inner, GLMCTimm) else {}
        model.pretrained_cfg = dict(model.pretrained_cfg, **{k: bcfg[k] for k in keep if k in bcfg},
                                    first_conv=f"backbone.{bcfg.get('first_conv', 'conv1')}")
    if isinstance(getattr(model, "_traits", None), dict) and isinstance(getattr(model, "backbone", None), nn.Module):
        # timm fixed the model's first_conv trait from the cfg it was built with (the architecture record's, or a
        # folder's): it is the backbone's stem, whatever the backbone; timm saves the trait into config.json
        model._traits["first_conv"] = f"backbone.{model.backbone.pretrained_cfg.get('first_conv', 'conv1')}"
        model.pretrained_cfg = dict(model.pretrained_cfg, first_conv=model._traits["first_conv"])
    return model


#: timm's pretrained configs of `glmc_timm`: its architecture record first (the default: no weights of its own),
#: then every weight set on a backbone (`glmc_timm.TAG`, whose record names its backbone)
default_cfgs = generate_default_cfgs({k: w.cfg for k, w in WEIGHTS.items() if k.partition(".")[0] == "glmc_timm"})
# timm makes a tag with weights the default over an architecture record without: `glmc_timm` alone must stay the
# bare architecture (a weight set's backbone is its own, never the default of `glmc_timm(backbone=...)`)
default_cfgs["glmc_timm"].tags.remove("")
default_cfgs["glmc_timm"].tags.appendleft("")


@register_glmc_model
def glmc_timm(pretrained: bool = False, **kwargs) -> GLMCTimm:
    """GLMC's four heads on any timm backbone: `backbone="convnext_tiny"`, `backbone_args={...}`."""
    return _create_glmc_timm("glmc_timm", pretrained, **kwargs)
