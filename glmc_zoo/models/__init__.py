"""GLMC model families; importing registers them with timm."""

from glmc_zoo.models.glmc_resnet import GLMC_META, GLMCOutput, GLMCResNet


def glmc_model_names(pretrained: bool = False) -> list[str]:
    """Registered GLMC architectures, or with `pretrained=True` every `arch.tag`."""
    import timm

    return sorted(timm.list_models("glmc_*", pretrained=pretrained))


def pretrained_meta(name: str) -> dict:
    """GLMC metadata (weights status, reported metrics and their source) of an `arch.tag`."""
    return dict(GLMC_META.get(name, {}))


__all__ = ["GLMCOutput", "GLMCResNet", "GLMC_META", "glmc_model_names", "pretrained_meta"]
