"""GLMC model families; importing registers them with timm."""

from glmc_zoo.models.glmc_resnet import WEIGHTS, GLMCOutput, GLMCResNet, WeightSet


def glmc_model_names(pretrained: bool = False) -> list[str]:
    """Registered GLMC architectures, or with `pretrained=True` every `arch.tag` whose weights load
    here (timm's own notion of pretrained)."""
    import timm

    return sorted(timm.list_models("glmc_*", pretrained=pretrained))


def weight_sets() -> list[WeightSet]:
    """Every described weight set (`arch.tag`), loadable or not, sorted by name."""
    return [WEIGHTS[n] for n in sorted(WEIGHTS) if "." in n]


def get_weights(name: str) -> WeightSet | None:
    """The record of `name` (an `arch.tag`, or an architecture: its default weight set)."""
    if name in WEIGHTS:
        return WEIGHTS[name]
    import timm

    cfg = timm.models.get_pretrained_cfg(name, allow_unregistered=False) if timm.is_model(name) else None
    return WEIGHTS.get(f"{name}.{cfg.tag}") if cfg is not None and cfg.tag else None


__all__ = ["GLMCOutput", "GLMCResNet", "WEIGHTS", "WeightSet", "get_weights", "glmc_model_names", "weight_sets"]
