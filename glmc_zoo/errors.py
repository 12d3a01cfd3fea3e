"""The package's exceptions: one base, `GLMCZooError`, for everything a user's input can cause.

Each error says what was given, what was wrong and the fix. The CLI reports any `GLMCZooError`
as one line and exits 2 (1 for `ExportError`: a verification that failed), never with a traceback.
This module imports nothing heavy, so the CLI can catch these before torch is loaded.
"""

from __future__ import annotations

from collections.abc import Iterable


def did_you_mean(value: object, choices: Iterable[str], n: int = 3) -> str:
    """" Did you mean a, b?" for the choices closest to what was typed, or "" when none is close: the one
    wording every unknown-name message uses."""
    import difflib

    close = difflib.get_close_matches(str(value), sorted(set(choices)), n=n)
    return f" Did you mean {', '.join(close)}?" if close else ""


def first_line(e: BaseException) -> str:
    """An exception's first line of text (at most 300 characters), or its type's name when it has none."""
    return str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__


def error_text(e: BaseException) -> str:
    """`Type: first line`, or the type alone when the message is empty."""
    line = first_line(e)
    return line if line == type(e).__name__ else f"{type(e).__name__}: {line}"


class GLMCZooError(Exception):
    """Base of every glmc-zoo error caused by input, configuration or environment."""


class ModelLoadError(GLMCZooError, RuntimeError):
    """A model reference or weights folder that cannot be loaded, with the reason and the fix."""


class CheckpointError(ModelLoadError):
    """A released checkpoint that cannot be read or converted."""


class WeightsNotAvailableError(ModelLoadError):
    """Pretrained weights asked for that are not published (or not shipped) anywhere we can load."""


class UnknownModelError(ModelLoadError, LookupError):
    """A model or weight-set name the registry does not know (the message names the closest ones)."""


class PushError(GLMCZooError, RuntimeError):
    """An upload to the Hugging Face Hub that cannot be done."""


class InferenceError(GLMCZooError, RuntimeError):
    """A model, backend or device that cannot be used for inference."""


class ImageLoadError(GLMCZooError, ValueError):
    """One input that cannot be read as an image."""


class ExportError(GLMCZooError, RuntimeError):
    """An export that failed or did not pass verification (no file is left behind)."""


class VerificationFailed(ExportError):
    """The export ran but did not match PyTorch closely enough (no file is written): exit 1, not 2."""


class ConfigError(GLMCZooError, ValueError):
    """A training config name or override that does not exist or does not parse."""


class DataError(GLMCZooError, ValueError):
    """A dataset path or layout that cannot be used, with what to do about it."""


class TrainError(GLMCZooError, RuntimeError):
    """A run that cannot start or continue (bad resume file, mismatched config, ...)."""


class BundleError(GLMCZooError, ValueError):
    """A finished run that cannot be shipped as the weight set named (not finished, another architecture, ...)."""


class OutputExistsError(GLMCZooError, FileExistsError):
    """An output path holds something this command did not write: nothing was replaced."""


class OutputRefusedError(GLMCZooError, PermissionError):
    """An output path that no command but one may write (the package's own weight sets: `glmc-zoo bundle`)."""


class DeviceError(GLMCZooError, ValueError):
    """A --device that is not in the one vocabulary (`glmc_zoo.devices`), or one that is not here."""
