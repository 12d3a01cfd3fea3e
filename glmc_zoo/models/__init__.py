"""GLMC model families; importing registers them with timm. The weight-set records live in
`glmc_zoo.registry` (no torch needed to read them)."""

from glmc_zoo.models.glmc_resnet import GLMCOutput, GLMCResNet
from glmc_zoo.models.glmc_timm import GLMCTimm
from glmc_zoo.registry import WEIGHTS, WeightSet, get_weights, weight_sets


def glmc_model_names(pretrained: bool = False) -> list[str]:
    """Registered GLMC architectures, or with `pretrained=True` every `arch.tag` whose weights load
    here (timm's own notion of pretrained)."""
    import timm

    return list(timm.list_models("glmc_*", pretrained=pretrained))  # timm's order (natural: if50 before if100)


__all__ = ["GLMCOutput", "GLMCResNet", "GLMCTimm", "WEIGHTS", "WeightSet", "get_weights", "glmc_model_names", "weight_sets"]
