"""Image statistics to slice by: brightness (mean BT.601 luma), contrast (its standard deviation), width, height.

``image_statistics`` works on uint8 arrays, vectorised per image shape; ``read_image_statistics`` decodes files
(in parallel, in chunks) and calls it.
"""

from __future__ import annotations

import struct
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from active_learning.errors import DataError

IMAGE_FIELDS = {  # statistic -> the sample field a bias report stores it in (computed once, then read back)
    "brightness": "image_brightness",
    "contrast": "image_contrast",
    "width": "image_width",
    "height": "image_height",
}
LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R BT.601 weights: intensity of an RGB pixel
IMAGE_CHUNK = 1024  # files decoded per image_statistics call
GRAYSCALE_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}


@dataclass(frozen=True)
class ImageStatistics:
    """Per image: mean intensity (brightness) and its standard deviation (RMS contrast), both in [0, 1]; size."""

    brightness: np.ndarray
    contrast: np.ndarray
    width: np.ndarray
    height: np.ndarray

    def to_dict(self) -> dict:
        """Plain JSON lists."""
        return {"brightness": self.brightness.tolist(), "contrast": self.contrast.tolist(),
                "width": self.width.tolist(), "height": self.height.tolist()}


def _intensity_stats(stack: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Brightness and contrast of a stack (N, H, W) or (N, H, W, C) of uint8 images, vectorised."""
    if stack.ndim == 3:
        intensity = stack.astype(np.float32)
    elif stack.shape[-1] in (1, 2):  # grayscale (+ alpha)
        intensity = stack[..., 0].astype(np.float32)
    elif stack.shape[-1] in (3, 4):  # RGB (+ alpha, ignored)
        intensity = stack[..., :3].astype(np.float32) @ LUMA.astype(np.float32)
    else:
        raise DataError(f"Images must have 1 to 4 channels; got {stack.shape[-1]} (shape {stack.shape[1:]}).")
    flat = intensity.reshape(len(stack), -1) / 255.0
    return flat.mean(axis=1, dtype=np.float64), flat.std(axis=1, dtype=np.float64)


def image_statistics(images: np.ndarray | Sequence[np.ndarray]) -> ImageStatistics:
    """Brightness (mean intensity, 0..1), contrast (std of intensity, 0..1), width and height per image.

    ``images`` is a uint8 array (N, H, W) or (N, H, W, C), or a list of uint8 (H, W) / (H, W, C) arrays of any
    sizes (images of the same shape are processed together). RGB intensity is the BT.601 luma
    0.299 R + 0.587 G + 0.114 B; an alpha channel is ignored.

    Raises:
        DataError: not uint8, or not an image shape.
    """
    if isinstance(images, np.ndarray):
        if images.dtype != np.uint8:
            raise DataError(f"Images must be uint8 (0..255); got {images.dtype}. Convert with .astype(np.uint8) "
                            "after scaling.")
        if images.ndim not in (3, 4) or images.shape[0] == 0:
            raise DataError(f"Images must be an array (N, H, W) or (N, H, W, C) with N >= 1; got {images.shape}.")
        brightness, contrast = _intensity_stats(images)
        n = len(images)
        return ImageStatistics(brightness, contrast, np.full(n, images.shape[2], dtype=np.int64),
                               np.full(n, images.shape[1], dtype=np.int64))
    images = list(images)
    if not images:
        raise DataError("No images given: pass at least one image.")
    n = len(images)
    brightness, contrast = np.empty(n), np.empty(n)
    width, height = np.empty(n, dtype=np.int64), np.empty(n, dtype=np.int64)
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for position, image in enumerate(images):
        image = np.asarray(image)
        if image.dtype != np.uint8 or image.ndim not in (2, 3):
            raise DataError(f"Image {position} must be a uint8 array (H, W) or (H, W, C); got {image.dtype} "
                            f"{image.shape}.")
        by_shape.setdefault(image.shape, []).append(position)
    for shape, rows in by_shape.items():
        stack = np.stack([np.asarray(images[i]) for i in rows])
        brightness[rows], contrast[rows] = _intensity_stats(stack)
        height[rows], width[rows] = shape[0], shape[1]
    return ImageStatistics(brightness, contrast, width, height)


def _read_image(path: str) -> np.ndarray:
    """One file as a uint8 array: grayscale (16-bit scaled to 8 bits) or RGB."""
    from PIL import Image

    from active_learning.data.images import to_8bit

    with Image.open(path) as image:
        if image.mode in ("L", "RGB"):
            return np.asarray(image)
        image = to_8bit(image)  # 16-bit grayscale scaled to 8 bits, never clipped
        return np.asarray(image.convert("L" if image.mode in GRAYSCALE_MODES else "RGB"))


def read_image_statistics(filepaths: Sequence[str], workers: int = 4) -> ImageStatistics:
    """``image_statistics`` of image files, decoded in parallel and in chunks; unreadable files are a DataError."""
    parts: list[ImageStatistics] = []

    from PIL import Image

    unreadable = (OSError, ValueError, SyntaxError, EOFError, struct.error, Image.DecompressionBombError)

    def work(path: str) -> np.ndarray | str:
        try:
            return _read_image(path)
        except unreadable as exc:  # what PIL raises for a missing, truncated or malformed file
            return f"{path} ({type(exc).__name__}: {exc})"

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for start in range(0, len(filepaths), IMAGE_CHUNK):
            decoded = list(pool.map(work, filepaths[start:start + IMAGE_CHUNK]))
            failures = [d for d in decoded if isinstance(d, str)]
            if failures:
                raise DataError(f"{len(failures)} image(s) could not be read for the image statistics, e.g. "
                                f"{'; '.join(failures[:3])}. Fix the files or pass `image_stats=False`.")
            parts.append(image_statistics(decoded))  # type: ignore[arg-type]
    if not parts:
        return ImageStatistics(np.zeros(0), np.zeros(0), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
    return ImageStatistics(*(np.concatenate([getattr(p, name) for p in parts])
                             for name in ("brightness", "contrast", "width", "height")))

