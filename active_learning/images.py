"""Decode image files into the fixed model's input: uint8 arrays of shape (N, 3, S, S)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

import numpy as np

from active_learning.errors import DataError


def load_image(path: str, size: int) -> np.ndarray:
    """One image file as uint8 (3, size, size): RGB (grayscale replicated), bilinear resize."""
    from PIL import Image

    with Image.open(path) as image:
        rgb = image.convert("RGB")
        if rgb.size != (size, size):
            rgb = rgb.resize((size, size), Image.BILINEAR)
        return np.asarray(rgb, dtype=np.uint8).transpose(2, 0, 1)


def load_images(filepaths: Sequence[str], size: int = 32, workers: int = 4) -> np.ndarray:
    """Decode many image files in parallel; a file that cannot be read raises ``DataError`` naming it."""
    out = np.empty((len(filepaths), 3, size, size), dtype=np.uint8)

    def work(index: int) -> str | None:
        try:
            out[index] = load_image(filepaths[index], size)
            return None
        except Exception as exc:  # PIL raises many types for a bad file
            return f"{filepaths[index]} ({type(exc).__name__}: {exc})"

    with ThreadPoolExecutor(max_workers=workers) as pool:
        failures = [f for f in pool.map(work, range(len(filepaths))) if f]
    if failures:
        shown = "; ".join(failures[:3])
        raise DataError(f"{len(failures)} image(s) could not be read, e.g. {shown}. Fix or remove them.")
    return out


def arrays_to_model_input(arrays: np.ndarray, size: int = 32) -> np.ndarray:
    """In-memory images (N, H, W) or (N, H, W, 3) uint8 as model input, resized exactly as ``load_image`` does."""
    from PIL import Image

    out = np.empty((len(arrays), 3, size, size), dtype=np.uint8)
    for i, array in enumerate(arrays):
        rgb = Image.fromarray(array).convert("RGB")
        if rgb.size != (size, size):
            rgb = rgb.resize((size, size), Image.BILINEAR)
        out[i] = np.asarray(rgb, dtype=np.uint8).transpose(2, 0, 1)
    return out
