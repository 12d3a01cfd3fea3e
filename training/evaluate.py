"""`glmc-zoo eval` lives in the runtime now (`glmc_zoo.evaluation`, no torch needed for `.onnx` models);
this name stays for code that imports it from here."""

from glmc_zoo.evaluation import evaluate_model  # noqa: F401

__all__ = ["evaluate_model"]
