"""The one reader of the model run (active_learning.model.model_run) and the settings the front ends offer from it
(active_learning.model.settings), on the real MongoDB with runs recorded as each producer records them."""

from __future__ import annotations

import numpy as np
import pytest

from active_learning.errors import InputError
from active_learning.model.model_run import DEFAULT_RUN_KEY, load_model_run
from active_learning.model.recipes import DEFAULT_FOLDS, DEFAULT_SEEDS, DEFAULT_TTA_PX, RECIPES, Recipe
from active_learning.model.settings import asked_recipe, offered_settings, parse_seeds, recipe_change_note
from active_learning.store.runs import record_run


@pytest.fixture
def gray(dataset_name, tmp_path):
    """12 grayscale PNGs in two classes (``auto`` chooses the fast recipe for them), no model run yet."""
    import fiftyone as fo
    from PIL import Image

    rng = np.random.default_rng(0)
    paths = []
    for i in range(12):
        path = tmp_path / f"{i:02d}.png"
        Image.fromarray(rng.integers(0, 255, (16, 16), dtype=np.uint8)).save(path)
        paths.append(str(path))
    dataset = fo.Dataset(dataset_name)
    dataset.default_classes = ["a", "b"]
    dataset.add_samples([fo.Sample(filepath=p, ground_truth=fo.Classification(label="ab"[i % 2]))
                         for i, p in enumerate(paths)])
    return dataset


def test_no_run_reads_as_none_and_offers_the_defaults(gray):
    assert load_model_run(gray) is None
    offered = offered_settings(gray)
    assert (offered.recipe_name, offered.recipe.name, offered.folds, offered.seeds) == (
        "auto", "fast", DEFAULT_FOLDS, DEFAULT_SEEDS), "grayscale images: auto means fast"
    assert offered.epochs == RECIPES["fast"].epochs and offered.tta_px == DEFAULT_TTA_PX
    photo = offered_settings(gray, "photo")
    assert photo.recipe.name == "photo" and photo.tta_px == 0 and photo.epochs == RECIPES["photo"].epochs


def test_a_fixed_model_run_reads_back_typed_and_is_offered_as_it_was(gray):
    record_run(gray, DEFAULT_RUN_KEY,
               {"kind": "model_outputs", "source": "fixed_model", "label_field": "ground_truth",
                "recipe": RECIPES["photo"].to_dict(), "folds": 3, "seeds": [4, 5], "tta_px": 1, "split": "kfold",
                "classes": ["a", "b"], "probabilities": "out-of-sample, stratified 3-fold over the view"},
               {"num_scored": 12, "out_of_sample_accuracy": 0.9, "checkpoint": "/x/m.pt", "checkpoint_sha256": "ab",
                "device": "cpu", "seconds": 3.5})
    run = load_model_run(gray)
    assert run.recipe == RECIPES["photo"] and (run.folds, run.seeds, run.tta_px) == (3, (4, 5), 1)
    assert run.classes == ("a", "b") and run.label_field == "ground_truth" and run.out_of_sample
    assert not run.disjoint and run.model_name == "photo" and run.num_scored == 12 and run.seconds == 3.5
    assert run.trust.trusted and run.trust.accuracy == pytest.approx(0.9)
    assert run.description == "out-of-sample, stratified 3-fold over the view; seeds 4, 5"
    assert run.run_date[:2] == "20" and run.run_date.endswith(" UTC")
    offered = offered_settings(gray)
    assert (offered.recipe_name, offered.folds, offered.seeds, offered.tta_px) == ("photo", 3, (4, 5), 1)
    assert offered_settings(gray, "fast").tta_px == DEFAULT_TTA_PX, "another recipe offers its own defaults"
    assert recipe_change_note(gray, RECIPES["fast"]).startswith("Recipe 'fast' replaces this dataset's 'photo'")
    assert recipe_change_note(gray, RECIPES["photo"]) is None


def test_old_runs_read_back_with_the_one_fallback(gray):
    # Before named recipes: a recipe without a name (ResNet-18), no test-time augmentation, no source.
    record_run(gray, DEFAULT_RUN_KEY, {"kind": "model_outputs", "recipe": {"epochs": 3, "seed": 0}, "folds": 5,
                                       "seeds": [0]}, {"num_scored": 12})
    run = load_model_run(gray)
    assert run.recipe == Recipe(epochs=3) and run.recipe.name == "fast" and run.tta_px == 0 and run.out_of_sample
    assert run.trust is None, "no accuracy recorded: no verdict"
    assert offered_settings(gray).epochs == 3 and offered_settings(gray).tta_px == 0
    # Older still: no recipe recorded at all.
    record_run(gray, DEFAULT_RUN_KEY, {"kind": "model_outputs"}, {})
    run = load_model_run(gray)
    assert run.recipe == RECIPES["fast"] and run.folds is None and run.seeds == () and run.run_date != "?"


def test_the_users_own_model_has_no_recipe(gray):
    record_run(gray, DEFAULT_RUN_KEY,
               {"kind": "model_outputs", "source": "predictions_field", "predictions_field": "weak", "recipe": None,
                "folds": None, "seeds": [], "split": "predictions", "tta_px": 0, "out_of_sample": False},
               {"num_scored": 12, "out_of_sample_accuracy": 0.5})
    run = load_model_run(gray)
    assert run.recipe is None and not run.out_of_sample and run.model_name == "the predictions in weak"
    assert not run.trust.trusted
    offered = offered_settings(gray)
    assert offered.recipe_name == "auto" and offered.recipe.name == "fast", "the fixed model's defaults"
    assert asked_recipe(gray) is None and asked_recipe(gray, always=True).name == "fast", "auto: by colour"


def test_auto_picks_photo_lite_for_colour_on_a_cpu_without_bfloat16_and_the_dataset_keeps_it(dataset_name, tmp_path,
                                                                                               monkeypatch):
    import fiftyone as fo
    from PIL import Image

    from active_learning.model.outputs import resolve_recipe

    rng = np.random.default_rng(1)
    paths = []
    for i in range(6):
        paths.append(str(tmp_path / f"c{i}.png"))
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(paths[-1])
    colour = fo.Dataset(dataset_name)
    colour.add_samples([fo.Sample(filepath=p, ground_truth=fo.Classification(label="a")) for p in paths])
    monkeypatch.setenv("CURATION_CPU_BF16", "0")
    assert resolve_recipe(colour, device="cpu").name == "photo-lite"
    assert asked_recipe(colour, always=True, device="cpu").name == "photo-lite"
    assert resolve_recipe(colour, "photo", device="cpu").name == "photo", "asked by name: no substitution"
    record_run(colour, DEFAULT_RUN_KEY,
               {"kind": "model_outputs", "recipe": RECIPES["photo"].to_dict(), "folds": 3, "seeds": [0],
                "tta_px": 0, "split": "kfold"}, {"num_scored": 6, "out_of_sample_accuracy": 0.9})
    assert resolve_recipe(colour, device="cpu").name == "photo", "a dataset keeps its recipe on any machine"


def test_asked_recipe_and_parse_seeds_validate_what_front_ends_send(gray):
    assert asked_recipe(gray, "auto") is None, "nothing asked: reuse what is stored"
    asked = asked_recipe(gray, "photo", epochs=2, seed=7)
    assert (asked.name, asked.epochs, asked.seed) == ("photo", 2, 7)
    assert asked_recipe(gray, epochs=4).name == "fast"
    with pytest.raises(InputError, match="`epochs` must be a positive integer"):
        asked_recipe(gray, "fast", epochs=0)
    with pytest.raises(InputError, match="Unknown recipe 'nope'"):
        asked_recipe(gray, "nope")
    assert parse_seeds("0, 1,2") == (0, 1, 2) and parse_seeds(3) == (3,)
    assert parse_seeds(None) is None and parse_seeds(" , ") is None
    for bad in ("x", "1,-2", "1.5"):
        with pytest.raises(InputError, match="`seeds` must be comma-separated non-negative integers"):
            parse_seeds(bad)
