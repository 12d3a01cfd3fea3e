"""Reading images: any reasonable input to 8-bit RGB (EXIF rotation, alpha, palette, 16-bit, CMYK), guards
against images no preprocessing can take, JPEG draft decoding, and the one folder listing that training,
`eval` and `predict` share. numpy and Pillow only."""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from glmc_zoo._meta import IMAGE_SUFFIXES
from glmc_zoo.errors import ImageLoadError

#: Images with more pixels than this are refused as decompression bombs (Pillow's own default
#: warns at 89M and fails at 179M; we fail at the warning level).
MAX_PIXELS = 89_478_485
#: Longest side and most elongated shape accepted. Eval preprocessing scales the short side to the
#: model's size, so a 3,000,000 x 1 strip (few pixels, within MAX_PIXELS) would become gigabytes.
MAX_SIDE = 65_500  # JPEG's own limit
MAX_ASPECT = 100
#: The key `load_image` sets in a drafted image's `info`: {"full": its full size (after EXIF rotation),
#: "scale": the DCT scale, "size": the drafted size}. Ignored once the image's size is no longer "size"
#: (cropped or resized since), so a stale record never moves the crop.
DRAFTED = "glmc_zoo.drafted"


def check_image_size(name: str, width: int, height: int) -> None:
    """Refuse, before any pixel is decoded or resized, an image no preprocessing can take."""
    if width < 1 or height < 1:
        raise ImageLoadError(f"{name}: {width}x{height} pixels: an empty image; refused")
    if width * height > MAX_PIXELS:
        raise ImageLoadError(f"{name}: declares {width}x{height} pixels, over the {MAX_PIXELS:,}-pixel limit "
                             f"(a decompression bomb?); refused")
    if max(width, height) > MAX_SIDE:
        raise ImageLoadError(f"{name}: {width}x{height} pixels, a side over {MAX_SIDE:,}; refused")
    if max(width, height) > MAX_ASPECT * min(width, height):
        raise ImageLoadError(f"{name}: {width}x{height} pixels, more than {MAX_ASPECT}:1; refused (resizing it for "
                             f"the model would take gigabytes): crop it to the part to classify")


def load_image(source: str | Path | bytes | BinaryIO | Image.Image | np.ndarray,
               draft_size: int | None = None) -> Image.Image:
    """Open any reasonable image as 8-bit RGB, EXIF rotation applied: a path, the encoded bytes (as a
    web request delivers them), a binary file object, a PIL image or an array.

    Handles grayscale, RGBA / LA / palette transparency (composited on white), 16-bit, CMYK,
    progressive JPEG, WEBP / BMP / GIF (first frame). With `draft_size`, a JPEG is decoded at the
    smallest DCT scale that keeps both sides >= draft_size (much faster for big photos).
    Raises `ImageLoadError` naming the file and the problem.
    """
    if isinstance(source, np.ndarray):
        if source.ndim >= 2:
            check_image_size(f"<array {source.shape}>", source.shape[1], source.shape[0])
        return _array_to_rgb(source)
    if isinstance(source, Image.Image):
        check_image_size(f"<{type(source).__name__}>", source.width, source.height)
        return _to_rgb(ImageOps.exif_transpose(source))
    if isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise ImageLoadError(f"<{type(source).__name__}>: empty (0 bytes)")
        return _decode(io.BytesIO(bytes(source)), f"<{type(source).__name__}>", draft_size)
    if hasattr(source, "read"):
        return _decode(source, f"<{type(source).__name__}>", draft_size)
    if not isinstance(source, (str, os.PathLike)):
        raise ImageLoadError(f"<{type(source).__name__}>: not an image source; give a path, encoded bytes, a binary "
                             f"file object, a PIL image or a uint8 array")
    path = Path(source)
    if not path.exists():
        raise ImageLoadError(f"{path}: no such file")
    if path.is_dir():
        raise ImageLoadError(f"{path}: is a directory (directories are expanded only as command-line sources)")
    if path.stat().st_size == 0:
        raise ImageLoadError(f"{path}: empty file (0 bytes)")
    return _decode(path, str(path), draft_size)


def _decode(fp: Path | BinaryIO, name: str, draft_size: int | None) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(fp) as im:
                check_image_size(name, im.width, im.height)
                full, scale = im.size, 1
                if draft_size and im.format == "JPEG":
                    drafted = im.draft("RGB", (draft_size, draft_size))
                    scale = round(full[0] / drafted[1][2]) if drafted else 1
                    if im.getexif().get(ExifTags.Base.Orientation) in (5, 6, 7, 8):  # exif_transpose swaps the sides
                        full = full[::-1]
                im.load()
                rgb = _to_rgb(ImageOps.exif_transpose(im))
                if scale > 1:  # what Preprocess needs to give a drafted image the full decode's geometry
                    rgb.info[DRAFTED] = {"full": full, "scale": scale, "size": rgb.size}
                return rgb
    except ImageLoadError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageLoadError(f"{name}: too many pixels, refused as a decompression bomb ({e})") from e
    except UnidentifiedImageError as e:
        raise ImageLoadError(f"{name}: not an image Pillow can read (wrong extension, or not an image file)") from e
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageLoadError(f"{name}: damaged or truncated image ({e})") from e


def _to_rgb(im: Image.Image) -> Image.Image:
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(im).astype(np.float64)
        scale = 65535.0 if arr.max() > 255 else 255.0
        im = Image.fromarray(np.clip(arr / scale * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    if im.mode in ("RGBA", "LA", "PA"):
        rgba = im.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(bg, rgba).convert("RGB")
    return im if im.mode == "RGB" else im.convert("RGB")


def _array_to_rgb(a: np.ndarray) -> Image.Image:
    if a.dtype != np.uint8:
        raise ImageLoadError(f"array input: expected uint8 (H, W, 3) or (H, W), got {a.dtype} {a.shape}")
    if a.ndim == 2 or (a.ndim == 3 and a.shape[2] in (3, 4)):
        return _to_rgb(Image.fromarray(a))
    raise ImageLoadError(f"array input: expected shape (H, W), (H, W, 3) or (H, W, 4), got {a.shape}")


def image_files(folder: str | Path) -> list[Path]:
    """The image files under `folder`, recursively (following links, each folder once), sorted by path. Hidden files and
    folders (a name starting with ".": `.DS_Store`, macOS's `._photo.jpg`, `.ipynb_checkpoints/`) are
    skipped, as are other suffixes. Training, `eval` and `predict` all list a folder this way."""
    return [Path(f) for f in image_file_paths(folder)]


def image_file_paths(folder: str | Path) -> list[str]:
    """`image_files` as strings, in the same order (sorted by path components, as `Path` sorts), without
    making a `Path` per file: a folder of 60,000 images lists in a fraction of a second."""
    found, seen = [], set()
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        st = os.stat(dirpath)
        if (st.st_dev, st.st_ino) in seen:  # a link back to a folder already listed: a loop, or a second copy
            dirnames[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        found += [os.path.join(dirpath, f) for f in filenames
                  if not f.startswith(".") and os.path.splitext(f)[1].lower() in IMAGE_SUFFIXES]
    found = [str(Path(f)) for f in found] if os.sep != "/" else found
    return sorted((f for f in found if os.path.isfile(f)), key=lambda f: f.split(os.sep))


def expand_sources(sources: Iterable[str]) -> list[str]:
    """Files as given, directories recursed for image files (`image_files`), globs expanded. A source
    that matches nothing is kept, so that it is reported as missing rather than dropped."""
    import glob

    out: list[str] = []
    for s in sources:
        p = Path(s)
        if p.is_dir():
            out += [str(f) for f in image_files(p)]
        elif not p.exists() and glob.has_magic(s):
            hits = sorted(glob.glob(s, recursive=True))
            out += hits if hits else [s]
        else:
            out.append(s)
    return out
