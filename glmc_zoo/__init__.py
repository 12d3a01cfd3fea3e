"""glmc-zoo: GLMC long-tailed image classifiers as timm models.

Importing this package registers the `glmc_*` architectures and their pretrained tags with timm::

    import glmc_zoo, timm
    model = timm.create_model("glmc_resnet32_w16.cifar10_lt_if100_jpeg", pretrained=True)

A deployment that installs only onnxruntime (no torch) can still import the package and use
`glmc_zoo.inference` with `.onnx` files; the timm registration is then skipped.
"""

from glmc_zoo._meta import HF_ORG, __version__

try:  # the torch stack is optional for ONNX-only deployments
    import timm as _timm  # noqa: F401
    import torch as _torch  # noqa: F401
except ImportError:  # pragma: no cover - exercised in a subprocess test without torch
    HAS_TORCH = False
else:
    HAS_TORCH = True
    from glmc_zoo.models import GLMCOutput, GLMCResNet, glmc_model_names, pretrained_meta  # noqa: F401

__all__ = ["HF_ORG", "HAS_TORCH", "__version__", "GLMCOutput", "GLMCResNet", "glmc_model_names", "pretrained_meta"]
