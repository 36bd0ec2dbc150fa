"""The ``curation`` console script end to end, in a subprocess against the test session's MongoDB."""

from __future__ import annotations

import gzip
import re

import pytest

from conftest import run_cli


def test_demo_runs_every_capability_and_reports(dataset_name, cli_env):
    result = run_cli(["demo", "--name", dataset_name, "--epochs", "1", "--folds", "2"], cli_env)
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    assert "1797 samples" in out
    assert "Class balance: 1438 labeled" in out
    assert "out-of-sample accuracy" in out and "test accuracy" in out
    assert "recipe fast" in out  # grayscale scans get the fast recipe
    # One epoch on 2 folds: the verdict follows the measured accuracy, and the flags are named accordingly.
    accuracy = float(re.search(r"out-of-sample accuracy: ([0-9.]+)", out).group(1))
    if accuracy >= 0.85:
        assert "Likely label errors:" in out and "can be trusted" in out and "too weak" not in out
    else:
        assert "Model too weak to trust" in out and "Likely label errors:" not in out
        assert "NOT likely label errors at this accuracy" in out
    assert "Near-duplicates:" in out
    assert "Demo finished" in out and f"curation app {dataset_name}" in out
    assert "== 5/5 Bias" in out and "Out-of-sample accuracy" in out

    import fiftyone as fo

    dataset = fo.load_dataset(dataset_name)
    assert {"curation_import", "check_class_balance", "curation_model", "check_label_errors",
            "check_near_duplicates", "check_outliers", "bias"} <= set(dataset.list_runs())
    assert len(dataset.exists("image_brightness")) == 1438 and len(dataset.exists("bias_group")) > 0
    train = dataset.match_tags("train")
    assert len(train.exists("model_probs")) == len(train) == 1438
    assert len(train.values("model_probs")[0]) == 10
    assert len(dataset.match_tags("test").exists("model_prediction")) == 359

    # Bias again, sliced by a field of our own, then drift: the test split in weeks, week 3 only digits 0-4.
    test = dataset.match_tags("test")
    ids, labels = test.values(["id", "ground_truth.label"])
    weeks = [1 if i % 2 == 0 else (3 if int(y) < 5 else 2) for i, y in enumerate(labels)]
    dataset.set_values("week", dict(zip(ids, weeks)), key_field="id")
    bias = run_cli(["bias", dataset_name, "--tag", "test", "--slice-fields", "week,tags", "--min-size", "30"],
                   cli_env)
    assert bias.returncode == 0, bias.stderr[-2000:]
    assert "week" in bias.stdout and "Stored: run 'bias'" in bias.stdout
    assert "final model's outputs for 359 samples" in bias.stdout, "test samples get out-of-sample outputs first"
    assert len(dataset.match_tags("test").exists("model_embedding")) == 359
    bad = run_cli(["bias", dataset_name, "--slice-fields", "no_such_field"], cli_env)
    assert bad.returncode == 2 and "no_such_field" in bad.stderr
    drift = run_cli(["drift", dataset_name, "--reference", "field:week=1", "--target", "batch:week",
                     "--permutations", "100"], cli_env)
    assert drift.returncode == 0, drift.stderr[-2000:]
    lines = drift.stdout.splitlines()
    week2 = next(line for line in lines if line.startswith("2 "))
    week3 = next(line for line in lines if line.startswith("3 "))
    assert "DRIFT" in week3, drift.stdout  # half the classes are missing: a label shift
    assert "ok" in week2 or "DRIFT" in week2
    assert "batches drifted" in drift.stdout and "Stored: run 'drift'" in drift.stdout
    missing = run_cli(["drift", dataset_name, "--reference", "tag:nope", "--target", "batch:week"], cli_env)
    assert missing.returncode == 2 and "nope" in missing.stderr


def test_missing_data_path_is_a_clear_error_and_writes_nothing(dataset_name, cli_env, tmp_path):
    import fiftyone as fo

    before = set(fo.list_datasets())
    result = run_cli(["import", "--name", dataset_name, "--data", str(tmp_path / "nope")], cli_env)
    assert result.returncode == 2
    assert "no such file or directory" in result.stderr
    assert "Traceback" not in result.stderr
    assert set(fo.list_datasets()) == before


def test_bad_idx_magic_is_a_clear_error(dataset_name, cli_env, tmp_path, shared_data):
    source = shared_data / "mnist"
    images = gzip.decompress((source / "t10k-images-idx3-ubyte.gz").read_bytes())
    labels = gzip.decompress((source / "t10k-labels-idx1-ubyte.gz").read_bytes())
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x01" + images[4:])  # labels' magic
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(labels)
    result = run_cli(["import", "--name", dataset_name, "--data", str(tmp_path)], cli_env)
    assert result.returncode == 2
    assert "magic number 0x00000801" in result.stderr and "expected 0x00000803" in result.stderr


def test_second_import_of_same_data_is_a_noop_and_other_data_is_refused(dataset_name, cli_env, tmp_path):
    first = run_cli(["import", "--name", dataset_name], cli_env)
    assert first.returncode == 0, first.stderr[-2000:]
    import fiftyone as fo

    ids = sorted(fo.load_dataset(dataset_name).values("id"))
    second = run_cli(["import", "--name", dataset_name], cli_env)
    assert second.returncode == 0
    assert sorted(fo.load_dataset(dataset_name).values("id")) == ids

    folder = tmp_path / "imgs"
    for cls in ("a", "b"):
        (folder / cls).mkdir(parents=True)
        from PIL import Image

        for i in range(3):
            Image.new("L", (8, 8), color=40 * i).save(folder / cls / f"{i}.png")
    other = run_cli(["import", "--name", dataset_name, "--data", str(folder)], cli_env)
    assert other.returncode == 2
    assert "already exists" in other.stderr and "--overwrite" in other.stderr
    assert sorted(fo.load_dataset(dataset_name).values("id")) == ids


@pytest.mark.parametrize("command", [["model", "no-such-dataset"], ["check", "no-such-dataset", "class_balance"]])
def test_unknown_dataset_names_existing_ones(command, cli_env):
    result = run_cli(command, cli_env)
    assert result.returncode == 2
    assert "does not exist" in result.stderr and "curation import" in result.stderr


def test_label_errors_report_computes_probabilities_when_missing(dataset_name, cli_env):
    assert run_cli(["import", "--name", dataset_name], cli_env).returncode == 0
    result = run_cli(["label-errors", dataset_name, "--tag", "test", "--folds", "2", "--epochs", "1", "--top", "5"],
                     cli_env)
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    assert ("359 labeled samples scored (out-of-sample probabilities (2-fold, seeds [0], averaged over 25 shifts of "
            "up to 2 px)") in out  # test-time augmentation by default
    assert "Worst 5 by label quality" in out
    import fiftyone as fo

    test = fo.load_dataset(dataset_name).match_tags("test")
    ranks = sorted(test.values("label_issue_rank"))
    assert ranks == list(range(1, 360))
    again = run_cli(["label-errors", dataset_name, "--tag", "test", "--top", "5"], cli_env)
    assert again.returncode == 0 and "existing out-of-sample probabilities" in again.stdout
    # Asking for a setting the stored probabilities were not made with recomputes them, and says why; the settings
    # not given (2 folds, 1 epoch) stay those of the stored run.
    tta = run_cli(["label-errors", dataset_name, "--tag", "test", "--tta-px", "1", "--top", "5",
                   "--rank-method", "normalized_margin"], cli_env)
    assert tta.returncode == 0, tta.stderr[-2000:]
    assert "Recomputed the out-of-sample probabilities: tta_px 2 -> 1." in tta.stdout
    assert "(2-fold, seeds [0], averaged over 9 shifts of up to 1 px)" in tta.stdout
    assert "ranked by normalized_margin" in tta.stdout
    # A disjoint split instead of K-fold: models trained on the train tag score the test tag. The stored K-fold
    # probabilities are not reused for it (no --recompute needed); the stored run's TTA is kept.
    disjoint = run_cli(["label-errors", dataset_name, "--tag", "test", "--fit-tag", "train",
                        "--epochs", "1", "--top", "5"], cli_env)
    assert disjoint.returncode == 0, disjoint.stderr[-2000:]
    assert "Recomputed the out-of-sample probabilities: a disjoint split instead of K-fold." in disjoint.stdout
    assert ("(model trained on a disjoint view of 1438 labeled samples, seeds [0], averaged over 9 shifts of up to "
            "1 px)") in disjoint.stdout
    overlap = run_cli(["label-errors", dataset_name, "--fit-tag", "train", "--recompute", "--epochs", "1"], cli_env)
    assert overlap.returncode == 2 and "both scored and trained on" in overlap.stderr


def test_a_second_pass_retrains_without_the_first_pass_flags_and_resumes(dataset_name, cli_env):
    """`--passes 2`: the same folds trained again without the samples the first pass flags, recorded; a stored
    first pass is reused (only the second trains, as after a crash between the two); asking for one pass again
    recomputes it, and a disjoint split refuses a second pass."""
    import fiftyone as fo

    from active_learning.model.model_run import load_model_run
    from active_learning.store.runs import load_run

    assert run_cli(["import", "--name", dataset_name], cli_env).returncode == 0
    first = run_cli(["label-errors", dataset_name, "--tag", "test", "--folds", "2", "--epochs", "1", "--top", "3"],
                    cli_env)
    assert first.returncode == 0, first.stderr[-2000:]
    dataset = fo.load_dataset(dataset_name)
    flagged = int(sum(dataset.match_tags("test").values("label_issue_flag")))
    assert flagged > 0, "one epoch on 2 folds flags some of the 359 digits"
    assert load_model_run(dataset).passes == 1

    second = run_cli(["label-errors", dataset_name, "--tag", "test", "--passes", "2", "--top", "3"], cli_env)
    assert second.returncode == 0, second.stderr[-2000:]
    assert "Asked for a second pass: training 2 folds and a final model over these 359 labeled samples again" \
        in second.stdout + second.stderr
    assert f"Second pass: retrained without the {flagged:,} samples the first pass flagged" in second.stdout
    assert f"trained without {flagged:,} suspects" in second.stdout
    dataset.reload()
    run = load_model_run(dataset)
    assert (run.passes, run.num_left_out, run.folds) == (2, flagged, 2)
    assert f"trained without {flagged:,} of them (flagged by the first pass)" in run.probabilities
    assert load_run(dataset, "curation_model")[1]["num_scored"] == 359, "the left-out samples are scored too"
    assert len(dataset.match_tags("test").exists("model_probs")) == 359

    again = run_cli(["label-errors", dataset_name, "--tag", "test", "--passes", "2", "--top", "3"], cli_env)
    assert again.returncode == 0 and "existing out-of-sample probabilities" in again.stdout
    assert "Second pass:" not in again.stdout, "a stored second pass is reused, not run again"
    one = run_cli(["label-errors", dataset_name, "--tag", "test", "--passes", "1", "--top", "3"], cli_env)
    assert one.returncode == 0, one.stderr[-2000:]
    assert "Recomputed the out-of-sample probabilities: one pass instead of two." in one.stdout
    dataset.reload()
    assert load_model_run(dataset).passes == 1 and load_model_run(dataset).num_left_out == 0
    disjoint = run_cli(["label-errors", dataset_name, "--tag", "test", "--fit-tag", "train", "--passes", "2"],
                       cli_env)
    assert disjoint.returncode == 2 and "A second pass needs K-fold" in disjoint.stderr


def _tiny_image_folder(root):
    """120 grayscale 16x16 PNGs in 3 classes (brightness by class, plus noise): imported 60 train, 30 pool, 30 test."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for k, name in enumerate(("dark", "mid", "light")):
        (root / name).mkdir(parents=True)
        for i in range(40):
            pixels = np.clip(40 + 80 * k + rng.normal(0, 25, (16, 16)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels, mode="L").save(root / name / f"{i:02d}.png")
    return root


def test_label_errors_without_tag_scores_what_the_model_run_scored_and_says_so(dataset_name, cli_env, tmp_path):
    """Issue 15: right after `curation model`, `label-errors` without --tag scores the train samples that have
    out-of-sample probabilities instead of starting a K-fold over all samples; before any training it says what
    and why."""
    import fiftyone as fo

    folder = _tiny_image_folder(tmp_path / "imgs")
    imported = run_cli(["import", "--name", dataset_name, "--data", str(folder), "--test-fraction", "0.25",
                        "--pool-fraction", "0.25"], cli_env)
    assert imported.returncode == 0, imported.stderr[-2000:]
    dataset = fo.load_dataset(dataset_name)
    assert dataset.count_sample_tags() == {"train": 60, "pool": 30, "test": 30}

    # No model run yet: the training is announced (why, what, over how many) before it starts.
    first = run_cli(["label-errors", dataset_name, "--tag", "test", "--folds", "2", "--epochs", "1", "--top", "3"],
                    cli_env)
    assert first.returncode == 0, first.stderr[-2000:]
    assert "Label issues: scoring the 30 samples tagged test." in first.stdout
    assert ("No out-of-sample probabilities for these 30 labeled samples: training 2 folds and a final model over "
            "these 30 labeled samples (recipe fast, 1 epoch; no earlier run of this network to tell how long it "
            "takes).") in first.stdout
    assert first.stdout.index("Label issues: scoring") < first.stdout.index("No out-of-sample probabilities")

    model = run_cli(["model", dataset_name, "--folds", "2", "--epochs", "1"], cli_env)
    assert model.returncode == 0, model.stderr[-2000:]
    dataset.reload()
    train = dataset.match_tags("train")
    for field in ("label_issue_rank", "label_issue_score"):  # forget the first scoring: only the next ones count
        dataset.delete_sample_field(field)
    assert len(train.exists("model_probs")) == 60 and len(dataset.match_tags("pool").exists("model_probs")) == 0

    default = run_cli(["label-errors", dataset_name, "--top", "3"], cli_env)
    assert default.returncode == 0, default.stderr[-2000:]
    created = re.escape(fo.load_dataset(dataset_name).get_run_info("curation_model").config.created_at[:10])
    assert re.search(r"Label issues: scoring the 60 samples tagged train that have out-of-sample probabilities from "
                     rf"the model run of {created} \d\d:\d\d UTC; use --tag/--all to choose\.", default.stdout), \
        default.stdout
    assert "existing out-of-sample probabilities" in default.stdout
    assert "training" not in default.stdout.lower() and "Recomputed" not in default.stdout
    dataset.reload()
    assert set(dataset.exists("label_issue_rank").values("id")) == set(train.values("id")), "train only"

    tagged = run_cli(["label-errors", dataset_name, "--tag", "train", "--top", "3"], cli_env)
    assert tagged.returncode == 0 and "Label issues: scoring the 60 samples tagged train." in tagged.stdout
    assert "training" not in tagged.stdout.lower()

    # --all asks for every sample: the pool ones have no probabilities, so it trains, and says so first, with a time
    # judged by the model run above.
    everything = run_cli(["label-errors", dataset_name, "--all", "--top", "3"], cli_env)
    assert everything.returncode == 0, everything.stderr[-2000:]
    assert "Label issues: scoring all 120 samples." in everything.stdout
    assert re.search(r"No out-of-sample probabilities for 30 of these 120 labeled samples: training 2 folds and a "
                     r"final model over these 120 labeled samples \(recipe fast, 1 epoch; about \d+ s, judging by "
                     rf"the model run of {created} \d\d:\d\d UTC\)\.", everything.stdout), everything.stdout
    dataset.reload()
    assert len(dataset.exists("label_issue_rank")) == 120
    both = run_cli(["label-errors", dataset_name, "--all", "--tag", "train"], cli_env)
    assert both.returncode == 2 and "Give --tag or --all, not both." in both.stderr


def test_import_again_after_losing_media_rewrites_the_images(dataset_name, cli_env, tmp_path, shared_data):
    """The no-op check looks at the files: a second import of the same source restores deleted PNGs (issue 16)."""
    import shutil
    from pathlib import Path

    import fiftyone as fo

    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copy(shared_data / "mnist" / name, tmp_path / name)
    args = ["import", "--name", dataset_name, "--data", str(tmp_path), "--max-per-split", "12"]
    assert run_cli(args, cli_env).returncode == 0
    dataset = fo.load_dataset(dataset_name)
    ids, paths = dataset.values(["id", "filepath"])
    shutil.rmtree(Path(paths[0]).parent)
    again = run_cli(args, cli_env)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "12 of its 12 image files were missing: rewrote them from the source" in again.stderr
    dataset.reload()
    assert dataset.values("id") == ids and all(Path(p).is_file() for p in paths)


@pytest.mark.parametrize("argv, message", [
    (["model", "any", "--seeds", ","], "argument --seeds: expected one or more comma-separated non-negative"),
    (["model", "any", "--epochs", "-1"], "argument --epochs: expected an integer of at least 1, got '-1'"),
    (["label-errors", "any", "--seeds", ","], "argument --seeds"),
    (["import", "--name", ""], "error: The dataset name is empty"),
])
def test_bad_options_are_errors_not_tracebacks(argv, message, cli_env):
    result = run_cli(argv, cli_env)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


def test_library_settings_become_this_clis_flags() -> None:
    """Library messages name settings (an App user has no flags); the CLI turns the ones it has into its flags."""
    from curation_cli.cli import build_parser
    from curation_cli.common import cli_message, option_strings

    flags = option_strings(build_parser())
    message = ("Classification fields: ['ground_truth']. Set `label_field` to one of them; rerun with "
               "`new_project=True`, pass `folds=3` and `device='cpu'`, or `fill=False`; `n_groups=0`; "
               "`model_probs` is a field, `label_field=None` skips it.")
    assert cli_message(message, flags) == (
        "Classification fields: ['ground_truth']. Set --label-field to one of them; rerun with --new-project, "
        "pass --folds 3 and --device cpu, or --no-fill; --groups 0; `model_probs` is a field, --label-field '' "
        "skips it.")
