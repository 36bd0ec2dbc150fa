"""Images for the model, in memory or streamed from a decoded-once uint8 cache on disk.

A view whose images fit the memory budget at the recipe's size is decoded into one array (``load_images``). A
larger one is decoded once, in chunks, into a uint8 file of shape (N, 3, S, S) under FiftyOne's dataset directory
(``_curation_cache/<dataset>/<key>.u8``; the key hashes the paths, sizes, modification times and the input size,
so changed files make a new cache) and opened as a read-only ``np.memmap``: 1M images never need 1M x 3 x S x S
bytes of RAM. ``ImageRows`` reads either kind batch by batch (a subset of rows, for K-fold, without copying the
rest); for a memmap the training batches come through a ``torch.utils.data.DataLoader`` with worker processes that
read ahead while the model trains. In memory or streamed, the same rows in the same order give the same batches,
so the probabilities are identical (tested).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from active_learning.errors import DataError
from active_learning.data.images import load_images

#: Images up to this many bytes (at the recipe's size) are decoded into memory; larger views stream from the
#: on-disk cache. ``CURATION_IMAGE_MEMORY_BYTES`` overrides it (0 = always stream).
DEFAULT_MEMORY_BYTES = 4 << 30
CHUNK = 4096  # images decoded per step while building the cache


def memory_budget() -> int:
    """The byte budget for images held in memory (``CURATION_IMAGE_MEMORY_BYTES`` or ``DEFAULT_MEMORY_BYTES``)."""
    text = os.environ.get("CURATION_IMAGE_MEMORY_BYTES")
    if text is None:
        return DEFAULT_MEMORY_BYTES
    try:
        return max(0, int(text))
    except ValueError as exc:
        raise DataError(f"CURATION_IMAGE_MEMORY_BYTES must be a number of bytes; got {text!r}.") from exc


def cache_key(filepaths: Sequence[str], size: int) -> str:
    """A key that changes when any file (path, size, modification time) or the input size changes."""
    digest = hashlib.sha256(f"v2 {size}\n".encode())  # v2: wide modes scaled (images.to_rgb)
    for path in filepaths:
        try:
            stat = os.stat(path)
            digest.update(f"{path}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode())
        except OSError:
            digest.update(f"{path}\tmissing\n".encode())
    return digest.hexdigest()[:24]


def cached_images(filepaths: Sequence[str], size: int, cache_dir: str | Path) -> np.memmap:
    """The images decoded once into ``cache_dir`` and opened read-only; reused while the files are unchanged.

    The file is written under a temporary name and renamed when complete, so a killed run leaves no half cache
    (its temporary file is removed by the next call).
    """
    folder = Path(cache_dir)
    folder.mkdir(parents=True, exist_ok=True)
    key = cache_key(filepaths, size)
    final = folder / f"{key}.u8"
    shape = (len(filepaths), 3, size, size)
    if not final.is_file() or final.stat().st_size != int(np.prod(shape)):
        partial = folder / f"{key}.u8.partial"
        partial.unlink(missing_ok=True)
        writer = np.memmap(partial, dtype=np.uint8, mode="w+", shape=shape)
        for start in range(0, len(filepaths), CHUNK):
            writer[start:start + CHUNK] = load_images(filepaths[start:start + CHUNK], size)
        writer.flush()
        del writer
        (folder / f"{key}.json").write_text(json.dumps({"shape": list(shape), "count": len(filepaths)}))
        partial.replace(final)
    return np.memmap(final, dtype=np.uint8, mode="r", shape=shape)


def load_view_images(filepaths: Sequence[str], size: int, cache_dir: str | Path | None = None) -> np.ndarray:
    """The images in memory when they fit ``memory_budget()``, else streamed from the on-disk cache."""
    needed = len(filepaths) * 3 * size * size
    if cache_dir is None or needed <= memory_budget():
        return load_images(filepaths, size)
    return cached_images(filepaths, size, cache_dir)


class ImageRows:
    """``images[rows]`` (all rows when ``rows`` is None), read in batches without copying the whole subset."""

    def __init__(self, images: np.ndarray, rows: np.ndarray | None = None, workers: int = 2):
        self.images = images
        self.rows = np.arange(len(images)) if rows is None else np.asarray(rows, dtype=np.int64)
        self.streaming = isinstance(images, np.memmap)
        self.workers = workers

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def nbytes(self) -> int:
        """Bytes of the selected rows."""
        return len(self.rows) * int(np.prod(self.images.shape[1:]))

    def take(self, positions: np.ndarray) -> np.ndarray:
        """The images at ``positions`` (into the selected rows), in that order, as a new array."""
        rows = self.rows[np.asarray(positions, dtype=np.int64)]
        if not self.streaming:
            return self.images[rows]
        order = np.argsort(rows, kind="stable")  # read the file forwards, then put the rows back in order
        out = np.empty((len(rows), *self.images.shape[1:]), dtype=np.uint8)
        out[order] = self.images[rows[order]]
        return out

    def all(self) -> np.ndarray:
        """Every selected row in memory (for a GPU-resident copy when it fits)."""
        return self.take(np.arange(len(self.rows)))

    def sample(self, limit: int, seed: int = 0) -> np.ndarray:
        """At most ``limit`` rows, a seeded choice in row order."""
        if len(self.rows) <= limit:
            return self.all()
        return self.take(np.sort(np.random.default_rng(seed).choice(len(self.rows), limit, replace=False)))

    def sequential(self, batch_size: int) -> Iterator[np.ndarray]:
        """The selected rows in order, ``batch_size`` at a time."""
        for start in range(0, len(self.rows), batch_size):
            yield self.take(np.arange(start, min(start + batch_size, len(self.rows))))

    def batches(self, batches: Sequence[np.ndarray]) -> Iterator[np.ndarray]:
        """The given batches of positions, in order; read ahead by worker processes when streaming from disk."""
        if not self.streaming or self.workers <= 0:
            for positions in batches:
                yield self.take(positions)
            return
        import torch

        loader = torch.utils.data.DataLoader(_Batches(self, batches), batch_size=None, shuffle=False,
                                             num_workers=self.workers, prefetch_factor=4,
                                             persistent_workers=False)
        for batch in loader:
            yield batch.numpy() if hasattr(batch, "numpy") else batch


class _Batches:
    """A map-style dataset whose item ``i`` is the ``i``-th batch (positions given up front)."""

    def __init__(self, source: ImageRows, batches: Sequence[np.ndarray]):
        self.source, self.batches = source, [np.asarray(b, dtype=np.int64) for b in batches]

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, index: int):
        import torch

        return torch.from_numpy(self.source.take(self.batches[index]))
