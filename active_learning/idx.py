"""Read MNIST-style IDX files (optionally gzipped), validating the header and the payload size."""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from active_learning.errors import InputError

IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801


def _read_bytes(path: Path) -> bytes:
    if not path.is_file():
        raise InputError(f"IDX file {path} does not exist.")
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise InputError(f"IDX file {path} is a damaged gzip file ({exc}); download it again.") from exc
    return raw


def read_idx(path: str | Path, expected_magic: int | None = None) -> np.ndarray:
    """Decode one IDX file into a uint8 array of its declared shape.

    Raises:
        InputError: a wrong magic number, a non-uint8 payload, or a payload that does not match the header.
    """
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4:
        raise InputError(f"IDX file {path} is too short to hold a header ({len(raw)} bytes).")
    magic = struct.unpack(">I", raw[:4])[0]
    if expected_magic is not None and magic != expected_magic:
        kind = "images" if expected_magic == IMAGES_MAGIC else "labels"
        raise InputError(
            f"IDX file {path} has magic number 0x{magic:08x}, expected 0x{expected_magic:08x} for {kind}: "
            "is it the right file (images vs labels) and decompressed correctly?"
        )
    dtype_code, ndim = raw[2], raw[3]
    if raw[:2] != b"\x00\x00" or dtype_code != 0x08:
        raise InputError(f"IDX file {path} has magic 0x{magic:08x}: only unsigned-byte IDX files are supported.")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise InputError(f"IDX file {path} is truncated inside its header.")
    shape = struct.unpack(">" + "I" * ndim, raw[4:header])
    expected = int(np.prod(shape, dtype=np.int64))
    payload = len(raw) - header
    if payload != expected:
        raise InputError(
            f"IDX file {path} declares shape {shape} ({expected} bytes) but holds {payload} bytes of data: "
            "the file is truncated or corrupt; download it again."
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def read_idx_pair(images_path: str | Path, labels_path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, H, W) and labels (N,) from a matching pair of IDX files."""
    images = read_idx(images_path, IMAGES_MAGIC)
    labels = read_idx(labels_path, LABELS_MAGIC)
    if images.ndim != 3:
        raise InputError(f"IDX images file {images_path} must be 3-dimensional (N, H, W); got shape {images.shape}.")
    if labels.ndim != 1 or len(labels) != len(images):
        raise InputError(
            f"{labels_path} holds {labels.shape} labels for {len(images)} images in {images_path}: they do not match."
        )
    return images, labels
