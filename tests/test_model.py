"""The fixed model (active_learning.model.fixed) on real torch, CPU: learning, determinism, persistence, K-fold."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from active_learning.errors import DataError, ModelError
from active_learning.data.images import arrays_to_model_input
from active_learning.model.augment import random_flip, random_translate, shifted, tta_views, view_of
from active_learning.model.fixed import (RECIPES, FixedModel, Recipe, default_recipe, default_tta_px, epochs_for,
                                         named_recipe, recipe_fingerprint)
from active_learning.model.recipes import recipe_note
from active_learning.model.splits import cross_val_proba

TINY = Recipe(epochs=1, batch_size=32)


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # the fixture is in conftest.py


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    """sklearn's 1,797 real 8x8 digit scans as model input (N, 3, 32, 32) uint8, and their labels."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    arrays = np.clip(np.rint(bunch.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    return arrays_to_model_input(arrays), bunch.target.astype(np.int64)


@pytest.fixture(scope="module")
def trained(digits) -> FixedModel:
    """A small model trained on the first 300 digits for 3 epochs."""
    images, labels = digits
    return FixedModel(10, Recipe(epochs=3, batch_size=32), device="cpu").fit(images[:300], labels[:300])


def test_a_tiny_model_learns(digits, trained: FixedModel) -> None:
    images, labels = digits
    held_out = slice(1400, 1797)  # never seen in training
    accuracy = float((trained.predict(images[held_out]) == labels[held_out]).mean())
    assert accuracy > 0.5, f"held-out accuracy {accuracy:.2f} is not clearly above chance (0.10)"
    assert trained.n_train_ == 300 and trained.device_ == "cpu"
    assert len(trained.mean_) == 3 and all(s > 0 for s in trained.std_)


def test_output_shapes_and_probabilities(digits, trained: FixedModel) -> None:
    images, _ = digits
    batch = images[300:437]
    probs = trained.predict_proba(batch, batch_size=50)  # several batches, a ragged last one
    assert probs.shape == (137, 10) and probs.dtype == np.float32
    assert (probs >= 0).all() and np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(trained.predict_proba(batch, batch_size=512), probs, atol=1e-5)
    np.testing.assert_array_equal(trained.predict(batch), probs.argmax(axis=1))
    features = trained.embed(batch, batch_size=64)
    assert features.shape == (137, 512) and features.dtype == np.float32
    assert np.isfinite(features).all() and (features >= 0).all()  # after ReLU and average pooling
    assert features.std(axis=0).max() > 0  # the features differ between images


def test_shifted_moves_pixels_and_fills_zeros() -> None:
    images = np.arange(1, 2 * 3 * 5 * 5 + 1).reshape(2, 3, 5, 5).astype(np.uint8)
    down_left = shifted(images, 2, -1)
    np.testing.assert_array_equal(down_left[:, :, 2:, :4], images[:, :, :3, 1:])
    assert (down_left[:, :, :2, :] == 0).all() and (down_left[:, :, :, 4] == 0).all()
    np.testing.assert_array_equal(shifted(images, 0, 0), images)
    np.testing.assert_array_equal(shifted(shifted(images, 0, 3), 0, -3)[..., :2], images[..., :2])
    with pytest.raises(DataError, match="out of the frame"):
        shifted(images, 5, 0)


def test_test_time_augmentation_averages_the_shifted_copies(digits, trained: FixedModel) -> None:
    images, _ = digits
    batch = images[300:340]
    tta = trained.predict_proba(batch, tta_px=1)
    manual = np.mean([trained.predict_proba(shifted(batch, dy, dx)) for dy in (-1, 0, 1) for dx in (-1, 0, 1)],
                     axis=0)
    assert tta.shape == (40, 10) and np.allclose(tta.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(tta, manual / manual.sum(axis=1, keepdims=True), atol=1e-5)
    assert np.abs(tta - trained.predict_proba(batch)).max() > 1e-4  # the shifted copies do change the output
    np.testing.assert_allclose(trained.predict_proba(batch, tta_px=0), trained.predict_proba_and_embed(batch)[0],
                               atol=1e-6)  # no TTA: the plain softmax, as before
    with pytest.raises(DataError, match="tta_px"):
        trained.predict_proba(batch, tta_px=-1)


def test_save_load_round_trip(digits, trained: FixedModel, tmp_path: Path) -> None:
    import torch

    images, _ = digits
    batch = images[1500:1600]
    path = tmp_path / "nested" / "model.pt"
    sha = trained.save(path)
    assert sha == hashlib.sha256(path.read_bytes()).hexdigest()
    assert not path.with_suffix(".pt.tmp").exists()

    loaded = FixedModel.load(path, expected_sha256=sha, device="cpu")
    assert loaded.num_classes == 10 and loaded.recipe == trained.recipe
    np.testing.assert_array_equal(loaded.predict_proba(batch), trained.predict_proba(batch))
    np.testing.assert_array_equal(loaded.embed(batch), trained.embed(batch))
    np.testing.assert_array_equal(FixedModel.load(path).predict_proba(batch), trained.predict_proba(batch))

    with pytest.raises(ModelError, match="SHA-256 mismatch"):
        FixedModel.load(path, expected_sha256="0" * 64)
    with pytest.raises(ModelError, match="does not exist"):
        FixedModel.load(tmp_path / "missing.pt")
    state_dict_only = tmp_path / "weights.pt"
    torch.save(trained.net_.state_dict(), state_dict_only)  # a valid torch file, but not a checkpoint
    with pytest.raises(ModelError, match="was not written by FixedModel.save"):
        FixedModel.load(state_dict_only)
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ModelError, match="could not be read"):
        FixedModel.load(corrupt)


def test_checkpoints_are_content_addressed_and_never_replaced_in_place(trained: FixedModel, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    path, sha = trained.save_checkpoint(tmp_path / "models", "curation_model")
    assert path == tmp_path / "models" / f"curation_model-{sha[:16]}.pt"
    assert sha == hashlib.sha256(path.read_bytes()).hexdigest()
    assert FixedModel.load(path, expected_sha256=sha).num_classes == 10
    again, same = trained.save_checkpoint(tmp_path / "models", "curation_model")
    assert (again, same) == (path, sha), "the same weights are the same file"
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == [path.name], "no temp file is left"

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(OSError, match="No space"):
        trained.save_checkpoint(tmp_path / "models", "curation_model")
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == [path.name], "a failed save leaves nothing"


def test_temp_files_name_their_writer() -> None:
    from active_learning.model.checkpoints import temp_file_writer

    assert temp_file_writer("/x/.curation_model.4242.0badf00d.tmp") == 4242
    assert temp_file_writer("/x/.my.model.7.0badf00d.tmp") == 7
    assert temp_file_writer("/x/curation_model.pt.tmp") is None  # the fixed-name temp file of older versions


def test_determinism_on_cpu(digits) -> None:
    images, labels = digits
    recipe = Recipe(epochs=2, batch_size=32)
    train, batch = slice(0, 64), images[1600:1700]
    seen: list[tuple[float, str]] = []
    first = FixedModel(10, recipe, device="cpu").fit(images[train], labels[train],
                                                     progress=lambda f, m: seen.append((f, m)))
    second = FixedModel(10, recipe, device="cpu").fit(images[train], labels[train])
    np.testing.assert_array_equal(first.predict_proba(batch), second.predict_proba(batch))
    np.testing.assert_array_equal(first.embed(batch), second.embed(batch))
    other = FixedModel(10, recipe.with_seed(1), device="cpu").fit(images[train], labels[train])
    assert np.abs(other.predict_proba(batch) - first.predict_proba(batch)).max() > 1e-3
    # Progress is reported once per epoch.
    assert [f for f, _ in seen] == [0.5, 1.0]
    assert seen[0][1].startswith("epoch 1/2 loss ")


def test_unfitted_model_and_bad_input(digits) -> None:
    images, labels = digits
    with pytest.raises(ModelError, match="not trained yet"):
        FixedModel(10).predict_proba(images[:2])
    with pytest.raises(DataError, match="at least 2 classes"):
        FixedModel(1)
    model = FixedModel(10, TINY, device="cpu")
    with pytest.raises(DataError, match=r"uint8 images of shape \(N, 3, S, S\)"):
        model.fit(images[:8].astype(np.float32), labels[:8])
    with pytest.raises(DataError, match=r"uint8 images of shape"):
        model.fit(images[:8, :1], labels[:8])
    with pytest.raises(DataError, match="no images"):
        model.fit(images[:0], labels[:0])
    with pytest.raises(DataError, match="8 images but 7 labels"):
        model.fit(images[:8], labels[:7])
    with pytest.raises(DataError, match=r"Labels must lie in \[0, 10\)"):
        model.fit(images[:8], np.full(8, 10))
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(ModelError, match="no CUDA GPU"):
            FixedModel(10, TINY, device="cuda").fit(images[:8], labels[:8])


def test_init_weights(digits, trained: FixedModel, tmp_path: Path) -> None:
    import torch

    images, labels = digits
    weights = tmp_path / "resnet18.pt"
    torch.save(trained.net_.state_dict(), weights)
    started = FixedModel(10, TINY, device="cpu", init_weights=str(weights)).fit(images[:64], labels[:64])
    # Two SGD steps from scratch stay near chance (0.10); from trained weights they keep much of what was learned.
    accuracy = float((started.predict(images[1500:1600]) == labels[1500:1600]).mean())
    assert accuracy > 0.5, accuracy

    bogus = tmp_path / "bogus.pt"
    torch.save({"weight": torch.zeros(3)}, bogus)
    with pytest.raises(ModelError, match="do not look like a ResNet-18"):
        FixedModel(10, TINY, init_weights=str(bogus)).fit(images[:8], labels[:8])
    with pytest.raises(ModelError, match="do not exist"):
        FixedModel(10, TINY, init_weights=str(tmp_path / "none.pt")).fit(images[:8], labels[:8])


# -- K-fold out-of-sample probabilities ------------------------------------------------------------------------
def test_cross_val_proba_is_out_of_sample() -> None:
    """Random labels on random images: a model memorises its training rows but cannot predict unseen ones."""
    rng = np.random.default_rng(0)
    n = 48
    images = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    labels = rng.permutation(np.arange(n) % 2)
    recipe = Recipe(epochs=8, batch_size=16, translate_px=0)

    in_sample = FixedModel(2, recipe, device="cpu").fit(images, labels).predict_proba(images)
    out_of_sample = cross_val_proba(images, labels, 2, folds=2, recipe=recipe, device="cpu")
    assert out_of_sample.shape == (n, 2) and np.allclose(out_of_sample.sum(axis=1), 1.0, atol=1e-5)

    rows = np.arange(n)
    in_sample_accuracy = float((in_sample.argmax(1) == labels).mean())
    out_of_sample_accuracy = float((out_of_sample.argmax(1) == labels).mean())
    assert in_sample_accuracy >= 0.85, "the model should memorise random labels it was trained on"
    assert out_of_sample_accuracy <= 0.7, "K-fold rows must come from models that never saw them"
    assert in_sample[rows, labels].mean() - out_of_sample[rows, labels].mean() > 0.25


def test_cross_val_rows_come_from_the_other_folds(digits) -> None:
    """Each row is the average over seeds of the prediction of a model trained on the other folds only."""
    from sklearn.model_selection import StratifiedKFold

    images, labels = digits
    images, labels = images[:40], labels[:40]
    calls: list[float] = []
    probs = cross_val_proba(images, labels, 10, folds=2, recipe=TINY, seeds=(3, 4), device="cpu",
                            progress=lambda f, m: calls.append(f))
    assert calls == sorted(calls) and calls[-1] == pytest.approx(1.0) and len(calls) == 4  # 2 folds x 2 seeds
    expected = np.zeros_like(probs, dtype=np.float64)
    for seed in (3, 4):
        held_out_once = np.zeros(len(labels), dtype=int)
        for train_index, held_out in StratifiedKFold(2, shuffle=True, random_state=seed).split(labels, labels):
            assert not set(train_index) & set(held_out)
            held_out_once[held_out] += 1
            model = FixedModel(10, TINY.with_seed(seed), device="cpu").fit(images[train_index], labels[train_index])
            expected[held_out] += model.predict_proba(images[held_out]) / 2
        assert (held_out_once == 1).all()
    np.testing.assert_allclose(probs, expected, atol=1e-5)


def test_cross_val_train_mask_keeps_the_folds_and_leaves_rows_out_of_training(digits) -> None:
    """A second pass: the same folds, each trained only on its unmasked rows, and every row still predicted."""
    from sklearn.model_selection import StratifiedKFold

    images, labels = digits
    images, labels = images[:60], labels[:60]
    keep = np.ones(len(labels), dtype=bool)
    keep[::4] = False  # a quarter of the rows may not be trained on
    probs = cross_val_proba(images, labels, 10, folds=2, recipe=TINY, device="cpu", train_mask=keep)
    expected = np.zeros_like(probs, dtype=np.float64)
    for train_index, held_out in StratifiedKFold(2, shuffle=True, random_state=TINY.seed).split(labels, labels):
        train_index = train_index[keep[train_index]]
        model = FixedModel(10, TINY, device="cpu").fit(images[train_index], labels[train_index])
        expected[held_out] = model.predict_proba(images[held_out])
    np.testing.assert_allclose(probs, expected, atol=1e-5)
    assert not np.allclose(probs, cross_val_proba(images, labels, 10, folds=2, recipe=TINY, device="cpu"), atol=1e-3)
    with pytest.raises(DataError, match="train_mask has 59 rows for 60 labels"):
        cross_val_proba(images, labels, 10, folds=2, recipe=TINY, train_mask=keep[:59])


def test_cross_val_refuses_small_classes(digits) -> None:
    images, labels = digits
    labels = labels[:60].copy()
    labels[labels == 7] = 8
    labels[np.flatnonzero(labels == 8)[0]] = 7  # class 7 now has one sample
    with pytest.raises(DataError, match=r"Classes \[7\] have fewer labeled samples than folds \(2\)") as info:
        cross_val_proba(images[:60], labels, 10, folds=2, recipe=TINY)
    assert "--folds" not in str(info.value)  # one sample cannot be split into any number of folds
    labels[np.flatnonzero(labels == 8)[0]] = 7  # two samples: 2 folds would do
    with pytest.raises(DataError, match=r"Classes \[7\] have fewer labeled samples than folds \(3\).*`folds=2`"):
        cross_val_proba(images[:60], labels, 10, folds=3, recipe=TINY)
    with pytest.raises(DataError, match="at least 2 folds"):
        cross_val_proba(images[:60], labels, 10, folds=1, recipe=TINY)


def test_recipe_is_recorded_stably() -> None:
    recipe = Recipe()
    assert recipe.to_dict()["architecture"] == "torchvision.models.resnet18"
    assert Recipe(**recipe.to_dict()) == recipe
    assert recipe_fingerprint(recipe) == recipe_fingerprint(Recipe())
    assert recipe_fingerprint(recipe.with_seed(1)) != recipe_fingerprint(recipe)
    assert recipe.with_seed(1).seed == 1 and recipe.seed == 0


def test_epochs_for_the_step_floor() -> None:
    recipe = Recipe(epochs=12, batch_size=128, min_steps=1000)
    assert epochs_for(recipe, 5000) == 26  # 39 full batches per epoch: 26 epochs = 1,014 steps
    assert epochs_for(recipe, 10000) == 13  # 78 per epoch
    assert epochs_for(recipe, 200000) == 12  # the floor never lowers the recipe's epochs
    assert epochs_for(Recipe(epochs=12), 500) == 12  # no floor by default
    assert epochs_for(Recipe(epochs=1, batch_size=128, min_steps=10), 50) == 10  # one (partial) batch per epoch
    with pytest.raises(DataError):
        epochs_for(recipe, 0)
    old = {k: v for k, v in Recipe().to_dict().items() if k != "min_steps"}  # a run recorded before the field
    assert Recipe(**old).min_steps == 0


def test_fit_trains_at_least_min_steps(digits) -> None:
    """100 images in batches of 32 give 3 steps per epoch: a floor of 20 steps means 7 epochs, through the whole
    one-cycle schedule (which refuses to step past its end)."""
    images, labels = digits
    seen: list[str] = []
    model = FixedModel(10, Recipe(epochs=1, batch_size=32, min_steps=20), device="cpu")
    model.fit(images[:100], labels[:100], progress=lambda fraction, message: seen.append(message))
    assert model.epochs_ == 7 and len(seen) == 7 and seen[-1].startswith("epoch 7/7")
    plain = FixedModel(10, Recipe(epochs=1, batch_size=32), device="cpu").fit(images[:100], labels[:100])
    assert plain.epochs_ == 1


# -- the photo recipe, augmentation on the device, recipe choice ----------------------------------------------------
@pytest.fixture(scope="module")
def photos() -> tuple[np.ndarray, np.ndarray]:
    """240 real CIFAR-10 photos of 3 classes (airplane, frog, truck) from ../shared/data, and their labels."""
    import tarfile

    data = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-train"
    classes = (data / "classes.txt").read_text().split()
    wanted = {"airplane": 0, "frog": 1, "truck": 2}
    images, labels = [], []
    counts = dict.fromkeys(wanted, 0)
    from io import BytesIO

    from PIL import Image

    with tarfile.open(data / "images.tar.gz") as archive:
        for member in archive:
            parts = Path(member.name).parts
            if not member.isfile() or len(parts) < 3 or parts[-2] not in wanted or counts[parts[-2]] >= 80:
                continue
            counts[parts[-2]] += 1
            image = Image.open(BytesIO(archive.extractfile(member).read())).convert("RGB")
            images.append(np.asarray(image, dtype=np.uint8).transpose(2, 0, 1))
            labels.append(wanted[parts[-2]])
            if all(c >= 80 for c in counts.values()):
                break
    assert classes[0] == "airplane" and len(images) == 240
    return np.stack(images), np.asarray(labels, dtype=np.int64)


def test_photo_recipe_trains_predicts_embeds_and_round_trips(photos, tmp_path: Path) -> None:
    images, labels = photos
    order = np.random.default_rng(0).permutation(len(labels))
    train, held_out = order[:180], order[180:]
    recipe = named_recipe("photo", epochs=6, widths=(16, 32, 64), batch_size=32)
    model = FixedModel(3, recipe, device="cpu").fit(images[train], labels[train])
    probs = model.predict_proba(images[held_out])
    assert probs.shape == (60, 3) and np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    accuracy = float((probs.argmax(1) == labels[held_out]).mean())
    assert accuracy > 0.6, f"held-out accuracy {accuracy:.2f} on 3 classes of real photos (chance 0.33)"
    # The photo recipe trains with flips, so its plain prediction averages each image with its mirror image.
    plain = model.predict_proba_and_embed(images[held_out])[0]  # one forward pass, no test-time augmentation
    mirrored = model.predict_proba_and_embed(view_of(images[held_out], 0, 0, True))[0]
    mean = (plain + mirrored) / 2
    np.testing.assert_allclose(probs, mean / mean.sum(1, keepdims=True), atol=1e-5)
    features = model.embed(images[held_out])
    assert features.shape == (60, 64) and np.isfinite(features).all()
    assert not model.net_.whiten.weight.requires_grad  # the whitening layer stays as initialised
    sha = model.save(tmp_path / "photo.pt")
    loaded = FixedModel.load(tmp_path / "photo.pt", expected_sha256=sha)
    assert loaded.recipe == recipe and loaded.recipe.widths == (16, 32, 64)
    np.testing.assert_array_equal(loaded.predict_proba(images[held_out]), probs)


def test_photo_recipe_is_deterministic_on_cpu(photos) -> None:
    images, labels = photos
    recipe = named_recipe("photo", epochs=1, widths=(8, 16, 32), batch_size=32)
    first = FixedModel(3, recipe, device="cpu").fit(images[:96], labels[:96]).predict_proba(images[200:])
    again = FixedModel(3, recipe, device="cpu").fit(images[:96], labels[:96]).predict_proba(images[200:])
    np.testing.assert_array_equal(first, again)


def test_whitening_decorrelates_the_patches(photos) -> None:
    import torch

    from active_learning.model.networks import PHOTO_NET, build_network, init_whitening

    images, _ = photos
    net = build_network(PHOTO_NET, 3, (8, 16, 32))
    x = torch.from_numpy(images).float() / 255
    x = (x - x.mean(dim=(0, 2, 3), keepdim=True)) / x.std(dim=(0, 2, 3), keepdim=True)
    init_whitening(net, x)
    with torch.no_grad():
        out = net.whiten(x)[:, :12]  # the 12 positive filters
    flat = out.permute(1, 0, 2, 3).reshape(12, -1)
    covariance = torch.cov(flat)
    off_diagonal = covariance - torch.diag(torch.diag(covariance))
    variances = torch.diag(covariance)
    assert off_diagonal.abs().max() < 0.01  # decorrelated
    # Unit variance along the strong directions; the weakest are damped by the eigenvalue floor (no noise blow-up).
    assert torch.allclose(variances[:6], torch.ones(6), atol=0.02) and (variances <= 1.001).all()


def test_batched_augmentation_matches_its_definition() -> None:
    import torch

    rng = np.random.default_rng(0)
    batch = torch.from_numpy(rng.integers(0, 256, (300, 3, 8, 8), dtype=np.uint8))
    moved = random_translate(batch, 2, torch.Generator().manual_seed(5))
    offsets = torch.randint(0, 5, (300, 2), generator=torch.Generator().manual_seed(5))  # the same draw
    for i in range(300):
        dy, dx = (int(v) - 2 for v in offsets[i])
        np.testing.assert_array_equal(moved[i].numpy(), shifted(batch[i : i + 1].numpy(), -dy, -dx)[0])
    again = random_translate(batch, 2, torch.Generator().manual_seed(5))
    assert torch.equal(moved, again) and torch.equal(random_translate(batch, 0, None), batch)
    flipped = random_flip(batch, torch.Generator().manual_seed(1))
    mirrored = [torch.equal(flipped[i], batch[i].flip(2)) for i in range(300)]
    kept = [torch.equal(flipped[i], batch[i]) for i in range(300)]
    assert all(m or k for m, k in zip(mirrored, kept)) and 100 < sum(mirrored) < 200


def test_tta_views() -> None:
    assert tta_views(0, False) == [(0, 0, False)]
    assert len(tta_views(1, False)) == 9 and len(tta_views(1, True)) == 18 and tta_views(0, True)[1] == (0, 0, True)
    images = np.arange(2 * 3 * 4 * 4, dtype=np.uint8).reshape(2, 3, 4, 4)
    np.testing.assert_array_equal(view_of(images, 0, 0, True), images[..., ::-1])
    np.testing.assert_array_equal(view_of(images, 1, 0, False), shifted(images, 1, 0))


def test_recipe_choice_and_records(photos, digits) -> None:
    images, _ = photos
    assert default_recipe(images).name == "photo"
    assert default_recipe(images, bf16=False).name == "photo-lite", "colour on a CPU without bfloat16 units"
    assert default_recipe(digits[0]).name == "fast"  # grayscale scans replicated to 3 channels
    assert default_recipe(digits[0], bf16=False).name == "fast"
    lite = RECIPES["photo-lite"]
    assert lite.widths == (64, 128, 256) and lite.to_dict() == {**RECIPES["photo"].to_dict(), "name": "photo-lite",
                                                               "widths": [64, 128, 256]}
    assert "--recipe photo" in recipe_note("photo-lite") and recipe_note("photo") is None
    assert default_tta_px(RECIPES["photo"]) == 0 and default_tta_px(RECIPES["fast"]) == 2
    photo = RECIPES["photo"]
    recorded = photo.to_dict()
    assert recorded["widths"] == [128, 256, 512] and recorded["name"] == "photo"
    assert Recipe.from_dict(recorded) == photo and Recipe.from_dict({**recorded, "unknown": 1}) == photo
    old = {k: v for k, v in Recipe().to_dict().items() if k not in ("name", "widths", "flip", "label_smoothing",
                                                                    "whiten_init")}
    assert Recipe.from_dict(old) == RECIPES["fast"]  # a run recorded before named recipes: ResNet-18, fast
    from active_learning.errors import InputError

    with pytest.raises(InputError, match="Unknown recipe 'huge'.*fast, photo"):
        named_recipe("huge")
    with pytest.raises(ModelError, match="ResNet-18 recipe only"):
        FixedModel(3, named_recipe("photo", epochs=1), init_weights="/nonexistent.pt").fit(images[:8],
                                                                                            np.arange(8) % 3)


def test_streaming_from_the_disk_cache_gives_the_same_probabilities(photos, tmp_path: Path) -> None:
    """The same K-fold over the photos held in memory and streamed from a memory-mapped uint8 cache (read by a
    DataLoader with worker processes): identical probabilities, and the cache is built once and reused."""
    from PIL import Image

    from active_learning.data.image_source import ImageRows, cached_images, load_view_images

    images, labels = photos
    paths = []
    for i, image in enumerate(images[:120]):
        path = tmp_path / "media" / f"{i:03d}.png"
        path.parent.mkdir(exist_ok=True)
        Image.fromarray(image.transpose(1, 2, 0)).save(path)
        paths.append(str(path))
    in_memory = load_view_images(paths, 32)
    np.testing.assert_array_equal(in_memory, images[:120])
    cache = tmp_path / "cache"
    streamed = cached_images(paths, 32, cache)
    assert isinstance(streamed, np.memmap) and not streamed.flags.writeable
    np.testing.assert_array_equal(np.asarray(streamed), in_memory)
    built = sorted(cache.iterdir())
    assert [p.suffix for p in built] == [".json", ".u8"]
    mtime = next(p for p in built if p.suffix == ".u8").stat().st_mtime_ns
    assert cached_images(paths, 32, cache).shape == (120, 3, 32, 32)
    assert next(p for p in cache.iterdir() if p.suffix == ".u8").stat().st_mtime_ns == mtime, "reused, not rebuilt"
    assert ImageRows(streamed).streaming and not ImageRows(in_memory).streaming

    recipe = named_recipe("photo", epochs=2, widths=(8, 16, 32), batch_size=16)
    plain = cross_val_proba(in_memory, labels[:120], 3, folds=2, recipe=recipe, device="cpu")
    disk = cross_val_proba(streamed, labels[:120], 3, folds=2, recipe=recipe, device="cpu")
    np.testing.assert_array_equal(plain, disk)
    import os

    os.environ["CURATION_IMAGE_MEMORY_BYTES"] = "0"  # a view never fits: it streams from the cache
    try:
        assert isinstance(load_view_images(paths, 32, cache), np.memmap)
    finally:
        del os.environ["CURATION_IMAGE_MEMORY_BYTES"]
    assert not isinstance(load_view_images(paths, 32, cache), np.memmap)


def test_bf16_on_the_cpu_is_recorded_and_can_be_turned_off(monkeypatch, photos) -> None:
    """Where the CPU has bf16 units the model trains under bf16 autocast; ``CURATION_CPU_BF16=0`` forces float32,
    and the model says which precision it trained in."""
    import torch

    from active_learning.model.fixed import uses_bf16

    images, labels = photos
    recipe = named_recipe("photo", epochs=1, widths=(8, 16, 32), batch_size=16)
    monkeypatch.setenv("CURATION_CPU_BF16", "0")
    assert not uses_bf16("cpu") and uses_bf16("cuda")
    assert FixedModel(int(labels.max()) + 1, recipe, device="cpu").fit(images[:32], labels[:32]).precision_ == "fp32"
    monkeypatch.delenv("CURATION_CPU_BF16")
    has_units = torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported()
    assert uses_bf16("cpu") == has_units
    model = FixedModel(int(labels.max()) + 1, recipe, device="cpu").fit(images[:32], labels[:32])
    assert model.precision_ == ("bf16" if has_units else "fp32")
    probs = model.predict_proba(images[:32])
    assert probs.dtype == np.float32 and np.allclose(probs.sum(axis=1), 1, atol=1e-5)
