"""IDX reading (active_learning.data.idx) on the real MNIST / Fashion-MNIST files and on damaged copies of them."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from active_learning.errors import CurationError, InputError
from active_learning.data.idx import (FASHION_MNIST_CLASSES, IMAGES_MAGIC, LABELS_MAGIC, idx_class_names, read_idx,
                                 read_idx_pair)


def _raw(path: Path) -> bytes:
    return gzip.decompress(path.read_bytes())


def _write(path: Path, data: bytes, compress: bool = False) -> Path:
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def _encode(array: np.ndarray) -> bytes:
    """The IDX encoding of a uint8 array (header + C-order payload)."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(">" + "I" * array.ndim, *array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


# -- the real files ------------------------------------------------------------------------------------------
def test_fashion_mnist_train_and_test(shared_data: Path) -> None:
    folder = shared_data / "fashion-mnist"
    images, labels = read_idx_pair(folder / "train-images-idx3-ubyte.gz", folder / "train-labels-idx1-ubyte.gz")
    assert images.shape == (60000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (60000,) and labels.dtype == np.uint8
    assert labels.min() == 0 and labels.max() == 9
    assert np.bincount(labels).tolist() == [6000] * 10  # Fashion-MNIST is balanced: 6,000 per class
    assert 0 < images.mean() < 255 and images.max() == 255

    test_images, test_labels = read_idx_pair(folder / "t10k-images-idx3-ubyte.gz", folder / "t10k-labels-idx1-ubyte.gz")
    assert test_images.shape == (10000, 28, 28)
    assert np.bincount(test_labels).tolist() == [1000] * 10


def test_mnist_test_labels_match_the_label_errors_study(shared_data: Path) -> None:
    folder = shared_data / "mnist"
    images, labels = read_idx_pair(folder / "t10k-images-idx3-ubyte.gz", folder / "t10k-labels-idx1-ubyte.gz")
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert set(np.unique(labels).tolist()) == set(range(10))
    original = np.load(shared_data / "mnist-label-errors" / "mnist_test_set_original_labels.npy")
    np.testing.assert_array_equal(labels, original.astype(np.uint8))


def test_uncompressed_file_reads_the_same(shared_data: Path, tmp_path: Path) -> None:
    source = shared_data / "mnist" / "t10k-labels-idx1-ubyte.gz"
    plain = _write(tmp_path / "t10k-labels-idx1-ubyte", _raw(source))
    np.testing.assert_array_equal(read_idx(plain, LABELS_MAGIC), read_idx(source, LABELS_MAGIC))


@settings(max_examples=40, deadline=None)
@given(arrays(np.uint8, st.tuples(st.integers(0, 5), st.integers(1, 4), st.integers(1, 4))), st.booleans())
def test_round_trip_of_any_uint8_array(tmp_path_factory: pytest.TempPathFactory, array: np.ndarray,
                                      compress: bool) -> None:
    path = _write(tmp_path_factory.mktemp("idx") / "x-images-idx3-ubyte", _encode(array), compress)
    decoded = read_idx(path, IMAGES_MAGIC)
    assert decoded.shape == array.shape
    np.testing.assert_array_equal(decoded, array)


# -- damaged files -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def real_bytes(shared_data: Path) -> dict[str, bytes]:
    folder = shared_data / "mnist"
    return {
        "images": _raw(folder / "t10k-images-idx3-ubyte.gz"),
        "labels": _raw(folder / "t10k-labels-idx1-ubyte.gz"),
        "labels_gz": (folder / "t10k-labels-idx1-ubyte.gz").read_bytes(),
        "train_labels": _raw(folder / "train-labels-idx1-ubyte.gz"),
    }


def test_wrong_magic_number(real_bytes: dict[str, bytes], tmp_path: Path) -> None:
    # A labels file given where images are expected.
    labels_path = _write(tmp_path / "labels", real_bytes["labels"])
    with pytest.raises(InputError, match=r"magic number 0x00000801, expected 0x00000803 for images"):
        read_idx(labels_path, IMAGES_MAGIC)
    # The images header with its dtype byte changed (0x08 -> 0x09, signed bytes).
    damaged = bytearray(real_bytes["images"])
    damaged[2] = 0x09
    path = _write(tmp_path / "images", bytes(damaged))
    with pytest.raises(InputError, match="magic number 0x00000903"):
        read_idx(path, IMAGES_MAGIC)
    with pytest.raises(InputError, match="only unsigned-byte"):
        read_idx(path)  # no expected magic: still refused because the payload is not uint8


def test_swapped_pair_is_refused(shared_data: Path) -> None:
    folder = shared_data / "mnist"
    with pytest.raises(InputError, match="expected 0x00000803 for images"):
        read_idx_pair(folder / "t10k-labels-idx1-ubyte.gz", folder / "t10k-images-idx3-ubyte.gz")


@pytest.mark.parametrize("compress", [False, True])
def test_truncated_payload(real_bytes: dict[str, bytes], tmp_path: Path, compress: bool) -> None:
    raw = real_bytes["images"]
    path = _write(tmp_path / "t10k-images-idx3-ubyte", raw[:-100], compress)
    with pytest.raises(InputError, match=r"declares shape \(10000, 28, 28\) \(7840000 bytes\) but holds 7839900"):
        read_idx(path, IMAGES_MAGIC)


def test_extra_trailing_bytes(real_bytes: dict[str, bytes], tmp_path: Path) -> None:
    path = _write(tmp_path / "labels", real_bytes["labels"] + b"\x00" * 3)
    with pytest.raises(InputError, match="holds 10003 bytes"):
        read_idx(path, LABELS_MAGIC)


@pytest.mark.parametrize("length", [0, 3, 4, 10, 15])
def test_truncated_header(real_bytes: dict[str, bytes], tmp_path: Path, length: int) -> None:
    path = _write(tmp_path / "images", real_bytes["images"][:length])
    with pytest.raises(InputError, match="too short to hold a header|truncated inside its header") as info:
        read_idx(path, IMAGES_MAGIC)
    assert str(path) in str(info.value)


def test_damaged_gzip(real_bytes: dict[str, bytes], tmp_path: Path) -> None:
    gz = real_bytes["labels_gz"]
    truncated = _write(tmp_path / "truncated.gz", gz[: len(gz) // 2])
    with pytest.raises(InputError, match="damaged gzip"):
        read_idx(truncated, LABELS_MAGIC)
    corrupt = bytearray(gz)
    for i in range(100, 120):
        corrupt[i] ^= 0xFF
    path = _write(tmp_path / "corrupt.gz", bytes(corrupt))
    with pytest.raises(InputError, match="damaged gzip"):
        read_idx(path, LABELS_MAGIC)


def test_count_mismatch(real_bytes: dict[str, bytes], tmp_path: Path) -> None:
    images = _write(tmp_path / "t10k-images-idx3-ubyte", real_bytes["images"])
    labels = _write(tmp_path / "train-labels-idx1-ubyte", real_bytes["train_labels"])
    with pytest.raises(InputError, match=r"holds \(60000,\) labels for 10000 images.*do not match"):
        read_idx_pair(images, labels)


def test_two_dimensional_images_are_refused(real_bytes: dict[str, bytes], tmp_path: Path) -> None:
    # The magic number's last byte is the number of dimensions: (N, 784) images read as 0x00000802.
    flat = np.frombuffer(real_bytes["images"], dtype=np.uint8, offset=16).reshape(10000, 784)
    images = _write(tmp_path / "flat-images", _encode(flat))
    with pytest.raises(InputError, match="magic number 0x00000802, expected 0x00000803"):
        read_idx_pair(images, _write(tmp_path / "labels", real_bytes["labels"]))
    np.testing.assert_array_equal(read_idx(images), flat)  # a valid 2-D IDX file when no magic is expected


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        read_idx(tmp_path / "nope-idx3-ubyte.gz")
    assert issubclass(InputError, CurationError) and issubclass(InputError, ValueError)


# -- empty files and class names (issue 16) ----------------------------------------------------------------------
@pytest.mark.parametrize("shape, match", [((0, 28, 28), "holds 0 images"), ((3, 0, 28), "0x28-pixel images"),
                                          ((3, 28, 0), "28x0-pixel images")])
def test_empty_images_are_refused(tmp_path: Path, shape: tuple, match: str) -> None:
    images = _write(tmp_path / "t10k-images-idx3-ubyte", _encode(np.zeros(shape, dtype=np.uint8)))
    labels = _write(tmp_path / "t10k-labels-idx1-ubyte", _encode(np.zeros(shape[0], dtype=np.uint8)))
    with pytest.raises(InputError, match=match):
        read_idx_pair(images, labels)


def _labels(*values: int) -> dict[Path, np.ndarray]:
    return {Path("train-labels-idx1-ubyte"): np.asarray(values, dtype=np.uint8)}


def test_class_names_cover_every_label(tmp_path: Path) -> None:
    assert idx_class_names(tmp_path, None, _labels(0, 1, 2, 1)) == ["0", "1", "2"]
    assert idx_class_names(tmp_path, ["a", "b", "c", "d"], _labels(0, 1)) == ["a", "b", "c", "d"]
    with pytest.raises(InputError, match=r"labels go up to 200, but 190 label value\(s\) below that never occur"):
        idx_class_names(tmp_path, None, _labels(*range(10), 200))
    with pytest.raises(InputError, match=r"holds label 200 \(sample 10\) but only 10 class names are known, from "
                                         r"`classes`: labels must lie in 0..9"):
        idx_class_names(tmp_path, [str(i) for i in range(10)], _labels(*range(10), 200))
    with pytest.raises(InputError, match="must be unique and not empty; repeated: a"):
        idx_class_names(tmp_path, ["a", "b", "a"], _labels(0, 1))
    (tmp_path / "classes.txt").write_text("cat\ndog\n\n")
    assert idx_class_names(tmp_path, None, _labels(0, 1, 1)) == ["cat", "dog"]
    with pytest.raises(InputError, match="only 2 class names are known, from .*classes.txt"):
        idx_class_names(tmp_path, None, _labels(0, 1, 2))  # a short classes.txt is refused, not replaced by digits
    fashion = tmp_path / "fashion-mnist-copy"
    fashion.mkdir()
    assert idx_class_names(fashion, None, _labels(0, 9)) == FASHION_MNIST_CLASSES
    with pytest.raises(InputError, match="Fashion-MNIST's class names"):
        idx_class_names(fashion, None, _labels(0, 10))
