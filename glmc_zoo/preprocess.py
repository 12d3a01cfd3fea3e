"""The eval preprocessing, in numpy and Pillow: timm's eval transform, derived from a model's pretrained
config (or an `.onnx` file's metadata), so that every backend sees identical input tensors."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from glmc_zoo.errors import ModelLoadError
from glmc_zoo.images import DRAFTED


@dataclass(frozen=True)
class Preprocess:
    """timm's eval transform: resize the short side to floor(S / crop_pct), centre-crop S x S,
    scale to [0, 1], normalise. Equal to `timm.data.create_transform(**resolve_data_config(...))`
    on the same RGB image."""

    input_size: tuple[int, int, int] = (3, 32, 32)
    mean: tuple[float, ...] = (0.485, 0.456, 0.406)
    std: tuple[float, ...] = (0.229, 0.224, 0.225)
    crop_pct: float = 1.0
    interpolation: str = "bilinear"

    @classmethod
    def from_config(cls, cfg: dict, where: str = "the model's config") -> Preprocess:
        """The transform a pretrained config (or an `.onnx` file's `preprocess` metadata) describes, every field
        checked for type and range before anything is allocated: a file decides neither how much memory a
        transform takes (sides are capped at `MAX_SIDE`) nor whether scores are finite (std > 0). A
        `ModelLoadError` names `where` and the field."""
        def bad(key: str, what: str) -> ModelLoadError:
            value = repr(cfg.get(key))
            return ModelLoadError(f"{where}: preprocessing field {key} is {value[:80]}, {what}; the file is damaged "
                                  f"or was not written by glmc-zoo / timm: restore or re-export it")

        if not isinstance(cfg, dict):
            raise ModelLoadError(f"{where}: the preprocessing is a {type(cfg).__name__}, not an object; restore or "
                                 f"re-export the file")
        size = cfg.get("input_size")
        if not (isinstance(size, (list, tuple)) and len(size) == 3 and all(_is_int(v) for v in size)
                and size[0] in (1, 3) and 1 <= size[1] <= MAX_SIDE and 1 <= size[2] <= MAX_SIDE):
            raise bad("input_size", f"not [channels (1 or 3), height, width] with sides 1..{MAX_SIDE}")
        for key, positive in (("mean", False), ("std", True)):
            v = cfg.get(key)
            if not (isinstance(v, (list, tuple)) and len(v) == 3 and all(_is_number(x) for x in v)
                    and (not positive or all(x > 0 for x in v))):
                raise bad(key, "not three finite numbers" + (", each > 0" if positive else ""))
        crop = cfg.get("crop_pct") or 0.875
        if not _is_number(crop) or not size[1] / MAX_SIDE <= crop <= 1.5:
            raise bad("crop_pct", f"not a number from {size[1] / MAX_SIDE:g} to 1.5 (the resize side is capped at "
                                  f"{MAX_SIDE} px)")
        interpolation = cfg.get("interpolation") or "bilinear"
        if not isinstance(interpolation, str) or interpolation not in _PIL_INTERP:
            raise bad("interpolation", f"not one of {', '.join(_PIL_INTERP)}")
        return cls(tuple(int(v) for v in size), tuple(float(v) for v in cfg["mean"]),
                   tuple(float(v) for v in cfg["std"]), float(crop), str(interpolation))

    @property
    def scale_size(self) -> int:
        return math.floor(self.input_size[1] / self.crop_pct)

    def __call__(self, img: Image.Image) -> np.ndarray:
        """RGB PIL image -> (3, S, S) float32."""
        img = self.resize_crop(img)
        x = np.asarray(img, dtype=np.uint8).astype(np.float32) / np.float32(255.0)  # (S, S, 3)
        x = (x - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        return np.ascontiguousarray(x.transpose(2, 0, 1))

    def resize_crop(self, img: Image.Image) -> Image.Image:
        """The geometric part: short side to floor(S / crop_pct), centre crop S x S.

        An image `load_image` drafted (decoded at 1/s scale) gets the same geometry, computed on its
        full size: the crop's box in full-size pixels, divided by s, is resampled straight to S x S."""
        size = self.input_size[1]
        drafted = img.info.get(DRAFTED)
        drafted = drafted if isinstance(drafted, dict) and tuple(drafted.get("size", ())) == img.size else None
        w, h = drafted["full"] if drafted else img.size
        short, long_ = (w, h) if w <= h else (h, w)
        new_short, new_long = self.scale_size, int(self.scale_size * long_ / short)
        new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
        top, left = int(round((new_h - size) / 2.0)), int(round((new_w - size) / 2.0))
        if drafted:
            sx, sy = w / new_w / drafted["scale"], h / new_h / drafted["scale"]
            box = (left * sx, top * sy, (left + size) * sx, (top + size) * sy)
            return img.resize((size, size), _PIL_INTERP[self.interpolation], box=box)
        if (new_w, new_h) != (w, h):
            img = img.resize((new_w, new_h), _PIL_INTERP[self.interpolation])
        return img.crop((left, top, left + size, top + size))

    def to_dict(self) -> dict:
        return dict(input_size=list(self.input_size), mean=list(self.mean), std=list(self.std),
                    crop_pct=self.crop_pct, interpolation=self.interpolation)


#: The largest side a config may ask to resize to or crop (a file never decides how much memory one image takes).
MAX_SIDE = 4096


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


_PIL_INTERP = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC, "nearest": Image.NEAREST,
               "lanczos": Image.LANCZOS, "box": Image.BOX, "hamming": Image.HAMMING}
