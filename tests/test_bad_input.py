"""Bad input to the real ``curation`` CLI: every case ends in ``error: ...`` with what to do, exit code 2, no
traceback and nothing written; and wide-range images are scaled to 8 bits, never clipped (issue 16)."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import fiftyone as fo

from conftest import run_cli


# -- helpers -----------------------------------------------------------------------------------------------
def _encode(array: np.ndarray) -> bytes:
    """The IDX encoding of a uint8 array (header + C-order payload)."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(">" + "I" * array.ndim, *array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def _idx_folder(folder: Path, labels: list[int], size: tuple[int, int] = (8, 8)) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (len(labels), *size), dtype=np.uint8)
    (folder / "t10k-images-idx3-ubyte").write_bytes(_encode(images))
    (folder / "t10k-labels-idx1-ubyte").write_bytes(_encode(np.asarray(labels, dtype=np.uint8)))
    return folder


def _class_folders(root: Path, counts: dict[str, int]) -> Path:
    for name, count in counts.items():
        (root / name).mkdir(parents=True)
        for i in range(count):
            Image.new("RGB", (8, 8), color=(30 * i, 60, 90)).save(root / name / f"{i}.png")
    return root


def _listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.is_dir() else []


def _state(session_root: Path) -> tuple:
    """Datasets, every file under the test session's root (FiftyOne's dataset dir and beside it), the journals."""
    import fiftyone.core.odm as foo

    files = [f for f in _listing(session_root) if not f.startswith(("mongo", "plugins", "curation"))]
    journal = list(foo.get_db_conn()["curation_import_journal"].find({}))
    return sorted(fo.list_datasets()), files, journal


def _assert_clear_error(result, *phrases: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stdout[-1000:], result.stderr[-2000:])
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout, result.stderr[-3000:]
    assert "error:" in result.stderr
    message = " ".join(result.stderr.split())
    for phrase in phrases:
        assert phrase in message, (phrase, result.stderr[-2000:])


# -- bad sources and names: refused before anything is written ----------------------------------------------
def _zero_images(tmp: Path) -> list[str]:
    return ["--data", str(_idx_folder(tmp / "idx", []))]


def _label_200(tmp: Path) -> list[str]:
    return ["--data", str(_idx_folder(tmp / "idx", [i % 10 for i in range(29)] + [200]))]


def _label_200_classes_txt(tmp: Path) -> list[str]:
    folder = _idx_folder(tmp / "idx", [i % 10 for i in range(29)] + [200])
    (folder / "classes.txt").write_text("\n".join(f"class-{i}" for i in range(10)) + "\n")
    return ["--data", str(folder)]


def _label_200_given_classes(tmp: Path) -> list[str]:
    return [*_label_200(tmp), "--classes", ",".join(f"c{i}" for i in range(10))]


def _duplicate_classes_txt(tmp: Path) -> list[str]:
    folder = _idx_folder(tmp / "idx", [0, 1, 0, 1])
    (folder / "classes.txt").write_text("cat\ndog\ncat\n")
    return ["--data", str(folder)]


def _zero_width_images(tmp: Path) -> list[str]:
    return ["--data", str(_idx_folder(tmp / "idx", [0, 1], size=(8, 0)))]


def _empty_class_folder(tmp: Path) -> list[str]:
    return ["--data", str(_class_folders(tmp / "animals", {"cat": 3, "dog": 3, "emu": 0}))]


def _empty_class_in_split_layout(tmp: Path) -> list[str]:
    _class_folders(tmp / "splits" / "train", {"cat": 2, "dog": 2, "emu": 0})
    _class_folders(tmp / "splits" / "test", {"cat": 1, "dog": 1})
    return ["--data", str(tmp / "splits")]


def _digits(tmp: Path) -> list[str]:
    return []


BAD_IMPORTS = {
    # case: (source builder, --name (None: the test's name), phrases the message must hold: problem + what to do)
    "idx-zero-images": (_zero_images, None, ["holds 0 images", "download it again"]),
    "idx-zero-width-images": (_zero_width_images, None, ["8x0-pixel images", "download it again"]),
    "idx-label-200-no-names": (_label_200, None, ["labels go up to 200", "never occur", "classes.txt",
                                                  "--classes"]),
    "idx-label-200-classes-txt": (_label_200_classes_txt, None, ["holds label 200 (sample 29)",
                                                                 "only 10 class names are known",
                                                                 "labels must lie in 0..9", "Fix the labels file"]),
    "idx-label-200-given-classes": (_label_200_given_classes, None, ["only 10 class names are known, from "
                                                                     "--classes"]),
    "idx-duplicate-class-names": (_duplicate_classes_txt, None, ["must be unique", "repeated: cat"]),
    "empty-class-folder": (_empty_class_folder, None, ["'emu'", "hold no images", "add images, or remove the "
                                                                                  "folder"]),
    "empty-class-in-every-split": (_empty_class_in_split_layout, None, ["'emu'", "hold no images"]),
    "name-empty": (_digits, "", ["dataset name is empty", "use letters, digits"]),
    "name-blank": (_digits, "   ", ["dataset name is empty"]),
    "name-parent-escape": (_digits, "../escape", ["'../escape' is not allowed", "outside the dataset directory",
                                                  "use letters, digits"]),
    "name-dot-dot": (_digits, "..", ["is not allowed"]),
    "name-path-separator": (_digits, "a/b", ["'a/b' is not allowed", "path separator"]),
    "name-backslash": (_digits, "a\\b", ["is not allowed", "path separator"]),
    "name-hidden": (_digits, ".hidden", ["'.hidden' is not allowed", "starts with '.'"]),
    "name-reserved-staging": (_digits, "x.staging-1234", ["reserved for imports in progress"]),
    "name-no-slug": (_digits, "###", ["FiftyOne refuses it"]),
    "name-too-long": (_digits, "n" * 300, ["longer than 200 bytes"]),
    "data-empty": (lambda tmp: ["--data", ""], None, ["--data is empty", "give a folder"]),
}


@pytest.mark.parametrize("case", sorted(BAD_IMPORTS))
def test_bad_import_is_a_clear_error_and_writes_nothing(case, dataset_name, cli_env, tmp_path, session_root):
    build, name, phrases = BAD_IMPORTS[case]
    args = build(tmp_path)
    before = _state(session_root)
    result = run_cli(["import", "--name", dataset_name if name is None else name, *args], cli_env)
    _assert_clear_error(result, *phrases)
    assert _state(session_root) == before, "a refused import wrote a dataset, a file or a journal"
    assert not (session_root / "escape").exists()


# -- bad options: argparse refuses them before any work ---------------------------------------------------------
BAD_OPTIONS = {
    "model-seeds-comma": (["model", "ds", "--seeds", ","], "--seeds", "non-negative integers (e.g. 0,1,2)"),
    "model-seeds-negative": (["model", "ds", "--seeds", "0,-1"], "--seeds", "non-negative integers"),
    "model-seeds-words": (["model", "ds", "--seeds", "a,b"], "--seeds", "non-negative integers"),
    "model-epochs-negative": (["model", "ds", "--epochs", "-1"], "--epochs", "at least 1, got '-1'"),
    "model-epochs-zero": (["model", "ds", "--epochs", "0"], "--epochs", "at least 1"),
    "model-folds-one": (["model", "ds", "--folds", "1"], "--folds", "at least 2"),
    "model-tta-negative": (["model", "ds", "--tta-px", "-2"], "--tta-px", "at least 0"),
    "model-image-size-tiny": (["model", "ds", "--image-size", "2"], "--image-size", "at least 8"),
    "label-errors-seeds-comma": (["label-errors", "ds", "--seeds", ","], "--seeds", "non-negative integers"),
    "label-errors-seed-negative": (["label-errors", "ds", "--seed", "-1"], "--seed", "a seed of at least 0"),
    "label-errors-epochs-negative": (["label-errors", "ds", "--epochs", "-1"], "--epochs", "at least 1"),
    "label-errors-folds-zero": (["label-errors", "ds", "--folds", "0"], "--folds", "at least 2"),
    "label-errors-top-negative": (["label-errors", "ds", "--top", "-5"], "--top", "at least 0"),
    "import-max-per-split-zero": (["import", "--name", "x", "--max-per-split", "0"], "--max-per-split",
                                  "at least 1"),
    "import-test-fraction": (["import", "--name", "x", "--test-fraction", "1.5"], "--test-fraction",
                             "fraction from 0 up to (not including) 1"),
    "import-pool-fraction-nan": (["import", "--name", "x", "--pool-fraction", "nan"], "--pool-fraction",
                                 "fraction"),
    "import-seed-negative": (["import", "--name", "x", "--seed", "-1"], "--seed", "a seed of at least 0"),
    "import-classes-comma": (["import", "--name", "x", "--classes", ","], "--classes", "distinct comma-separated"),
    "import-classes-repeated": (["import", "--name", "x", "--classes", "a,b,a"], "--classes", "distinct"),
}


@pytest.mark.parametrize("case", sorted(BAD_OPTIONS))
def test_bad_option_is_a_clear_error(case, cli_env, session_root):
    argv, option, phrase = BAD_OPTIONS[case]
    before = _state(session_root)
    result = run_cli(argv, cli_env)
    _assert_clear_error(result, f"error: argument {option}", phrase)
    assert _state(session_root) == before


# -- wide-range images: scaled over their full range, never clipped -----------------------------------------------
def _wide_image(mode: str, values: np.ndarray) -> Image.Image:
    if mode == "F":
        return Image.fromarray(values.astype(np.float32))
    if mode == "I":
        return Image.fromarray(values.astype(np.int32))
    return Image.fromarray(values.astype(">u2" if mode == "I;16B" else np.uint16))


@pytest.mark.parametrize("mode, full_scale", [("I;16", 65535), ("I;16B", 65535), ("I", 65535), ("F", 1.0)])
def test_wide_modes_scale_to_8_bits(mode, full_scale):
    from active_learning.data.images import to_8bit, to_rgb

    levels = np.linspace(0, full_scale, 16).reshape(4, 4)
    image = _wide_image(mode, levels)
    assert image.mode == mode
    expected = np.rint(levels * 255.0 / full_scale).astype(np.uint8)
    np.testing.assert_array_equal(np.asarray(to_8bit(image)), expected)
    rgb = np.asarray(to_rgb(image))
    assert rgb.shape == (4, 4, 3) and rgb.dtype == np.uint8
    for channel in range(3):
        np.testing.assert_array_equal(rgb[..., channel], expected)
    assert len(np.unique(rgb)) == 16  # 16 grey levels stay 16 grey levels
    if mode != "F":  # the fault: PIL's own conversion clips every level above 255 to white
        assert set(np.unique(np.asarray(image.convert("RGB")))) <= {0, 1, 2, 3, 255}


def test_wide_modes_clip_out_of_range_values():
    from active_learning.data.images import to_8bit

    floats = _wide_image("F", np.array([[-0.5, 0.0, 0.5, 2.0]]))
    np.testing.assert_array_equal(np.asarray(to_8bit(floats)), [[0, 0, 128, 255]])
    ints = _wide_image("I", np.array([[-7, 0, 65535, 1 << 20]]))
    np.testing.assert_array_equal(np.asarray(to_8bit(ints)), [[0, 0, 255, 255]])
    eight_bit = Image.new("L", (2, 2), 77)
    assert to_8bit(eight_bit) is eight_bit  # 8-bit images are not touched


def test_16_bit_png_folder_imports_and_decodes_without_clipping(dataset_name, cli_env, tmp_path):
    from active_learning.data.images import arrays_to_model_input, load_images

    root = tmp_path / "scans"
    expected = {}
    for c, name in enumerate(("dark", "bright")):
        (root / name).mkdir(parents=True)
        for i in range(4):
            level = 2000 + 9000 * i + 30000 * c  # 16-bit grey levels: all would clip to 255 under convert("RGB")
            ramp = (level + np.arange(64).reshape(8, 8) * 20).astype(np.uint16)
            path = root / name / f"{i}.png"
            Image.fromarray(ramp).save(path)
            assert Image.open(path).mode == "I;16"
            expected[str(path.resolve())] = np.rint(ramp * 255.0 / 65535.0).astype(np.uint8)
    result = run_cli(["import", "--name", dataset_name, "--data", str(root), "--test-fraction", "0"], cli_env)
    assert result.returncode == 0, result.stderr[-2000:]
    paths = fo.load_dataset(dataset_name).values("filepath")
    assert sorted(paths) == sorted(expected)
    decoded = load_images(paths, size=8)
    for path, image in zip(paths, decoded):
        for channel in range(3):
            np.testing.assert_array_equal(image[channel], expected[path])
    levels = np.unique(np.stack(list(expected.values())))
    assert len(levels) > 30 and np.array_equal(np.unique(decoded), levels)  # clipped, they would all be 255
    raw = np.stack([np.asarray(Image.open(p)) for p in paths])
    np.testing.assert_array_equal(arrays_to_model_input(raw, size=8), decoded)  # in memory: the same conversion
    assert os.path.isfile(paths[0])
