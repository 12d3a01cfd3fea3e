"""The eval preprocessing, in numpy and Pillow: timm's eval transform, derived from a model's pretrained
config (or an `.onnx` file's metadata), so that every backend sees identical input tensors."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

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
    def from_config(cls, cfg: dict) -> Preprocess:
        return cls(tuple(cfg["input_size"]), tuple(cfg["mean"]), tuple(cfg["std"]),
                   float(cfg.get("crop_pct") or 0.875), str(cfg.get("interpolation") or "bilinear"))

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


_PIL_INTERP = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC, "nearest": Image.NEAREST,
               "lanczos": Image.LANCZOS, "box": Image.BOX, "hamming": Image.HAMMING}
