"""glmc-zoo: GLMC long-tailed image classifiers as timm models.

Importing this package registers the `glmc_*` architectures and their pretrained tags with timm::

    import glmc_zoo, timm
    model = timm.create_model("glmc_resnet32_w16.cifar10_lt_if100_jpeg", pretrained=True)
"""

from glmc_zoo._meta import HF_ORG, __version__
from glmc_zoo.models import GLMCOutput, GLMCResNet, glmc_model_names, pretrained_meta

__all__ = ["HF_ORG", "__version__", "GLMCOutput", "GLMCResNet", "glmc_model_names", "pretrained_meta"]
