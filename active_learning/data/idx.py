"""Read MNIST-style IDX files (optionally gzipped), validating the header, the payload size and the class names."""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path
from typing import Sequence

import numpy as np

from active_learning.errors import InputError

IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801
FASHION_MNIST_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]


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
    if len(images) == 0:
        raise InputError(f"IDX images file {images_path} holds 0 images: download it again, or remove the pair "
                         "from the folder.")
    if images.shape[1] == 0 or images.shape[2] == 0:
        raise InputError(f"IDX images file {images_path} declares {images.shape[1]}x{images.shape[2]}-pixel images: "
                         "an image needs at least one pixel; the file is damaged, download it again.")
    return images, labels


def idx_class_names(directory: Path, classes: Sequence[str] | None, labels: dict[Path, np.ndarray]) -> list[str]:
    """The class names of IDX files, checked against every label in them (not only the imported subset).

    Known names (``classes``, ``classes.txt`` beside the files, Fashion-MNIST's for a folder named like it) must
    cover every label; without names the classes are 0..max label, and a label value below the maximum that never
    occurs (e.g. one stray 200 among 0..9) is refused rather than made into empty classes.
    """
    names, named_by = None, ""
    classes_file = directory / "classes.txt"
    if classes:
        names, named_by = list(classes), "`classes`"
    elif classes_file.is_file():
        names = [line.strip() for line in classes_file.read_text().splitlines() if line.strip()]
        named_by = str(classes_file)
    elif "fashion" in directory.resolve().name.lower():
        names, named_by = list(FASHION_MNIST_CLASSES), "Fashion-MNIST's class names (the folder is named like it)"
    top = max(int(values.max()) for values in labels.values())
    if names is not None:
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates or not names:
            raise InputError(f"The class names from {named_by} must be unique and not empty; repeated: "
                             f"{', '.join(duplicates) or '-'}. Nothing was written.")
        if top >= len(names):
            path, values = next((p, v) for p, v in labels.items() if int(v.max()) == top)
            raise InputError(
                f"{path} holds label {top} (sample {int(np.argmax(values))}) but only {len(names)} class names are "
                f"known, from {named_by}: labels must lie in 0..{len(names) - 1}. Fix the labels file, or name every "
                "class. Nothing was written."
            )
        return names
    present = np.zeros(top + 1, dtype=bool)
    for values in labels.values():
        present[values] = True
    if not present.all():
        absent = np.flatnonzero(~present)
        raise InputError(
            f"IDX labels go up to {top}, but {len(absent)} label value(s) below that never occur (e.g. "
            f"{', '.join(str(v) for v in absent[:5])}): {top + 1} classes would be made, most of them empty. Fix the "
            f"labels file, or name the classes in {classes_file} (one per line) or with `classes`. Nothing was written."
        )
    return [str(i) for i in range(top + 1)]
