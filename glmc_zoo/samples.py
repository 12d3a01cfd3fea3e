"""Small real photos shipped with the package (public domain / CC0, from scikit-image's sample
data; sources in examples/README.md). Used as the default real images of export verification."""

from __future__ import annotations

from pathlib import Path

SAMPLES_DIR = Path(__file__).parent / "assets" / "samples"


def sample_images() -> list[Path]:
    return sorted(SAMPLES_DIR.glob("*.jpg"))
