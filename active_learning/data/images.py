"""Decode image files into the fixed model's input: uint8 arrays of shape (N, 3, S, S).

Every decode goes through ``to_rgb``. PIL's own ``convert("RGB")`` clips images with more than 8 bits per
channel (a 16-bit grey level of 4000 becomes 255), so those are scaled over their full range first:

========================  ==========================================================================
PIL mode                  8-bit value
========================  ==========================================================================
``I;16``, ``I;16B/L/N``   ``round(value * 255 / 65535)``: 16-bit grayscale PNG and TIFF
``I`` (32-bit integer)    the same 16-bit full-range scaling (PIL's mode for 16-bit data from some
                          decoders), clipped to 0..255
``F`` (32-bit float)      ``round(value * 255)``: a float image's full range is 0..1, clipped to 0..255
everything else           PIL's ``convert("RGB")`` (8-bit data, palettes, alpha dropped)
========================  ==========================================================================

The scaling is fixed, never per image (min-max), so one grey level means one thing across the dataset.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

import numpy as np

from active_learning.errors import DataError

#: PIL modes with more than 8 bits per pixel, and the factor that maps their full range onto 0..255.
WIDE_MODE_SCALE = {"I;16": 255.0 / 65535.0, "I;16B": 255.0 / 65535.0, "I;16L": 255.0 / 65535.0,
                   "I;16N": 255.0 / 65535.0, "I": 255.0 / 65535.0, "F": 255.0}


def to_8bit(image):
    """``image`` (a PIL image) with 8 bits per channel: wide grayscale modes scaled as in the table above (mode
    ``L``), any other image unchanged."""
    from PIL import Image

    scale = WIDE_MODE_SCALE.get(image.mode)
    if scale is None:
        return image
    values = np.asarray(image, dtype=np.float64) * scale
    return Image.fromarray(np.clip(np.rint(np.nan_to_num(values)), 0, 255).astype(np.uint8), mode="L")


def to_rgb(image):
    """``image`` (a PIL image) as 8-bit RGB, grayscale replicated; wide modes scaled, never clipped."""
    return to_8bit(image).convert("RGB")


def load_image(path: str, size: int) -> np.ndarray:
    """One image file as uint8 (3, size, size): RGB (grayscale replicated), bilinear resize."""
    from PIL import Image

    with Image.open(path) as image:
        rgb = to_rgb(image)
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
    """In-memory images (N, H, W) or (N, H, W, 3) as model input, converted and resized exactly as ``load_image``
    does (uint8 as they are, uint16 scaled by 255/65535)."""
    from PIL import Image

    out = np.empty((len(arrays), 3, size, size), dtype=np.uint8)
    for i, array in enumerate(arrays):
        rgb = to_rgb(Image.fromarray(array))
        if rgb.size != (size, size):
            rgb = rgb.resize((size, size), Image.BILINEAR)
        out[i] = np.asarray(rgb, dtype=np.uint8).transpose(2, 0, 1)
    return out
