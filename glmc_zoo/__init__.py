"""glmc-zoo: GLMC long-tailed image classifiers as timm models.

Importing this package registers the `glmc_*` architectures and their pretrained tags with timm::

    import glmc_zoo, timm
    model = timm.create_model("glmc_resnet32_w16.cifar10_lt_if100_e200_jpeg", pretrained=True)

Registration happens when timm is used, not before: if timm is already imported, at once;
otherwise the moment timm is first imported (a post-import hook), so `import glmc_zoo` alone
loads neither torch nor timm. That keeps the CLI's start-up and an onnxruntime-only deployment
(`glmc_zoo.inference` with `.onnx` files) free of the torch import.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys

from glmc_zoo._meta import HF_ORG, __version__
from glmc_zoo.errors import GLMCZooError

_MODELS = {"GLMCOutput", "GLMCResNet", "glmc_model_names"}  # torch and timm: imported when first asked for
_RECORDS = {"WeightSet", "get_weights", "weight_sets"}  # the weight-set records: no torch


def _register() -> None:
    import glmc_zoo.models  # noqa: F401  (registers the glmc_* models with timm)


class _RegisterWhenTimmLoads(importlib.abc.MetaPathFinder):
    """Finds nothing itself; wraps timm's own loader so that, once timm's package has executed,
    the glmc_* models are registered (and removes itself)."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "timm":
            return None
        sys.meta_path.remove(self)  # let the normal finders resolve timm
        spec = importlib.util.find_spec("timm")
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_and_register(module):
            exec_module(module)
            _register()

        spec.loader.exec_module = exec_and_register
        return spec


def has_torch() -> bool:
    """Whether the torch stack (torch and timm) can be imported here (it is optional for
    onnxruntime-only deployments)."""
    return all(sys.modules[m] is not None if m in sys.modules else importlib.util.find_spec(m) is not None
               for m in ("torch", "timm"))


if sys.modules.get("timm") is not None:
    _register()
elif has_torch() and not any(isinstance(f, _RegisterWhenTimmLoads) for f in sys.meta_path):
    sys.meta_path.insert(0, _RegisterWhenTimmLoads())


def __getattr__(name: str):
    if name in _RECORDS:
        import glmc_zoo.registry as registry

        return getattr(registry, name)
    if name in _MODELS:
        import glmc_zoo.models as models

        return getattr(models, name)
    raise AttributeError(f"module 'glmc_zoo' has no attribute {name!r}")


__all__ = ["HF_ORG", "GLMCZooError", "__version__", "GLMCOutput", "GLMCResNet", "WeightSet",
           "get_weights", "glmc_model_names", "weight_sets", "has_torch"]
