"""The Bias and Drift operators and panel data through FiftyOne's executor, on the real MongoDB.

Datasets are real PNG files with planted model outputs (no training): ``shapes`` from tests/test_bias.py (dark images
misclassified) and ``standard`` from tests/test_drift_report.py (drift planted in two of four batches). The panels
themselves are driven in the browser by tests/test_app_bias_drift.py. ``modelled_digits`` has a real (tiny) model
run: the operator and ``curation bias`` must fill and score the same samples (issue 17).
"""

from __future__ import annotations

import pytest

from test_bias import shapes  # noqa: F401  (fixture)
from test_drift_report import standard  # noqa: F401  (fixture)
from test_plugin import error_views, resolve_inputs

PLUGIN = "@curation/fiftyone-curation"


def test_bias_operator_and_panel_data(shapes) -> None:  # noqa: F811
    import fiftyone.operators as foo

    from curation_app.bias_panel import bias_panel_data
    from curation_checks.bias.report import slice_view

    assert bias_panel_data(shapes) is None, "no run yet: the panel shows its empty state"
    result = foo.execute_operator(f"{PLUGIN}/compute_bias", ctx={"dataset": shapes.name, "params": {}},
                                  request_delegation=False)
    assert result.error is None, result.error
    assert result.result["num_scored"] == 220 and result.result["num_significant_slices"] >= 1
    shapes.reload()
    data = bias_panel_data(shapes)
    summary = data["summary"]
    assert summary["num_scored"] == 220 and summary["num_significant"] >= 1
    assert summary["accuracy"] == pytest.approx(result.result["accuracy"])

    # Charts: class distribution and per-class bars over the classes, intervals around each slice's accuracy.
    assert data["distribution"][0]["x"] == list(shapes.default_classes) and sum(data["distribution"][0]["y"]) == 230
    assert [t["name"] for t in data["f1"]] == ["precision", "recall", "F1"]
    slices, groups = data["intervals"]
    worst = data["slice_specs"][0]
    assert slices["customdata"][-1][0] == worst["label"], "the worst slice is drawn at the top"
    assert slices["x"][-1] - slices["error_x"]["arrayminus"][-1] == pytest.approx(worst["ci_low"])
    assert slices["x"][-1] + slices["error_x"]["array"][-1] == pytest.approx(worst["ci_high"])
    assert sum(map(sum, data["confusion"][0]["z"])) == 220
    # Every row has its own tick, bottom to top (groups, then slices): none is skipped for lack of room.
    axis = data["interval_axis"]
    rows = len(slices["y"]) + len(groups["y"])
    assert sorted(groups["y"] + slices["y"]) == axis["tickvals"] == list(range(rows))
    assert axis["labels"][-1] == worst["label"] and len(axis["ticktext"]) == rows
    assert axis["height"] >= 40 * rows
    assert all(len(line) <= 36 for tick in axis["ticktext"] for line in tick.split("<br>"))

    # The table rows carry what the row action needs to set the App's view to the slice.
    assert data["slices"][0]["slice"] == worst["label"] and data["slices"][0]["significant"] == "yes"
    # "vs rest" is the slice's accuracy minus the rest's: negative for a worse slice (issue 15).
    points = f"{100 * (worst['accuracy'] - worst['rest_accuracy']):+.1f} pts"
    assert points.startswith("-") and data["slices"][0]["vs_rest"] == points
    assert worst["field"] == "image_brightness"
    members = slice_view(shapes, worst)
    assert len(members.exists("model_prediction")) == worst["size"]
    assert len(data["groups"]) == len(data["group_specs"]) >= 1


def test_bias_operator_refuses_unknown_slice_fields(shapes) -> None:  # noqa: F811
    prop = resolve_inputs(f"{PLUGIN}/compute_bias", shapes.name, params={"slice_fields": "image_brightness,nope"})
    errors = error_views(prop)
    assert "bad_slice_field" in errors and "nope" in errors["bad_slice_field"].view.description
    ok = resolve_inputs(f"{PLUGIN}/compute_bias", shapes.name, params={"slice_fields": "tags"})
    assert not error_views(ok)


def test_drift_operator_and_panel_data(standard) -> None:  # noqa: F811
    import fiftyone.operators as foo

    from curation_app.drift_panel import drift_panel_data
    from curation_checks.drift.report import load_drift_report, most_drifted_view

    assert drift_panel_data(standard) is None
    params = {"reference": "tag:reference", "target": "batch:batch_id", "n_permutations": 100, "fill": False}
    result = foo.execute_operator(f"{PLUGIN}/compute_drift", ctx={"dataset": standard.name, "params": params},
                                  request_delegation=False)
    assert result.error is None, result.error
    assert result.result["batches"] == 4
    assert set(result.result["drifted"]) == {"10", "2"}, "the two planted batches, and only those"
    standard.reload()
    data = drift_panel_data(standard)
    assert data["batch_names"] == ["1", "2", "3", "10"], "batches in value order"
    assert [row["verdict"] for row in data["batches"]] == ["ok", "DRIFT", "ok", "DRIFT"]
    mmd, ks = data["pvalues"]
    assert mmd["x"] == data["batch_names"] and len(ks["y"]) == 4
    assert ks["y"][1] < data["half_alpha"], "the label-shift batch moves the probabilities"
    assert mmd["y"][3] < data["half_alpha"], "the covariate-shift batch moves the embeddings"
    assert len(data["scores"]) == 4 and sum(sum(t["y"]) for t in data["scores"]) == 600
    assert data["prior"] and len(data["prior"][0]["z"]) == 4
    worst = most_drifted_view(standard, load_drift_report(standard), 8, "10")
    assert set(worst.values("drift_batch")) == {"10"}


def test_drift_operator_refuses_bad_views(standard) -> None:  # noqa: F811
    prop = resolve_inputs(f"{PLUGIN}/compute_drift", standard.name,
                          params={"reference": "tag:nothing", "target": "all-but-reference"})
    errors = error_views(prop)
    assert "bad_views" in errors and "nothing" in errors["bad_views"].view.description
    prop = resolve_inputs(f"{PLUGIN}/compute_drift", standard.name,
                          params={"reference": "tag:reference", "target": "batch:no_such_field"})
    assert "no_such_field" in error_views(prop)["bad_views"].view.description
    ok = resolve_inputs(f"{PLUGIN}/compute_drift", standard.name,
                        params={"reference": "tag:reference", "target": "batch:batch_id"})
    assert not error_views(ok)


@pytest.fixture
def modelled_digits(dataset_name):
    """Digits with a real model run on 120 train samples; 60 more labelled samples (tag ``bias`` on all 180) have
    no model outputs, as samples labelled after the last ``curation model`` have."""
    import torch

    from active_learning.data.importers import import_dataset
    from active_learning.model.fixed import Recipe
    from active_learning.model.outputs import compute_model_outputs

    dataset = import_dataset(dataset_name, None, progress=False)
    ids = dataset.match_tags("train").values("id")
    trained, later = ids[:120], ids[120:180]
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        compute_model_outputs(dataset.select(trained), folds=2, recipe=Recipe(epochs=1, batch_size=32), device="cpu")
        dataset.select(trained + later).tag_samples("bias")
        yield dataset, later
    finally:
        torch.set_num_threads(previous)


def test_the_operator_and_the_cli_fill_and_score_the_same_samples(modelled_digits, capsys) -> None:
    """Issue 17: `curation bias` filled missing model outputs first and the App's Compute bias did not, so the two
    scored different samples. Both now call ``run_bias``."""
    import fiftyone.operators as foo

    from curation_checks.bias.report import compute_bias, load_bias_report
    from curation_cli.cli import main

    dataset, later = modelled_digits
    view = dataset.match_tags("bias")
    assert compute_bias(view, image_stats=False).num_scored == 120, "without the fill step the 60 are not scored"

    def scored() -> tuple[set, dict]:
        report = load_bias_report(dataset)
        return set(view.exists("bias_group").values("id")), report.metrics.to_dict()

    def forget_filled_outputs() -> None:
        dataset.select(later).set_values("model_probs", [None] * len(later))
        dataset.select(later).set_values("model_embedding", [None] * len(later))

    result = foo.execute_operator(f"{PLUGIN}/compute_bias", ctx={"view": view, "params": {
        "label_field": "ground_truth", "image_stats": False}}, request_delegation=False)
    assert result.error is None, result.error
    assert result.result["num_scored"] == 180 and result.result["num_filled"] == 60
    by_operator, operator_metrics = scored()

    forget_filled_outputs()
    assert main(["bias", dataset.name, "--tag", "bias", "--no-image-stats", "--device", "cpu"]) == 0
    assert "Computed the final model's outputs for 60 samples" in capsys.readouterr().out
    by_cli, cli_metrics = scored()
    assert by_cli == by_operator == set(view.values("id"))
    assert cli_metrics == operator_metrics
    assert load_bias_report(dataset).num_filled == 60


def test_the_forms_default_to_the_library_defaults(shapes) -> None:  # noqa: F811
    """One source of defaults: the operators' forms and the CLI's options both take them from the settings."""
    from curation_checks.bias.settings import BIAS_DEFAULTS
    from curation_checks.drift.settings import DRIFT_DEFAULTS
    from curation_cli.cli import build_parser

    bias_form = resolve_inputs(f"{PLUGIN}/compute_bias", shapes.name).type.properties
    drift_form = resolve_inputs(f"{PLUGIN}/compute_drift", shapes.name).type.properties
    bias_cli = build_parser().parse_args(["bias", shapes.name])
    drift_cli = build_parser().parse_args(["drift", shapes.name, "--reference", "tag:r", "--target", "tag:t"])
    for name, cli_name in (("min_size", "min_size"), ("crosses", None), ("image_stats", None)):
        assert bias_form[name].default == getattr(BIAS_DEFAULTS, name)
        assert cli_name is None or getattr(bias_cli, cli_name) == getattr(BIAS_DEFAULTS, name)
    assert (bias_cli.alpha, bias_cli.groups, bias_cli.seed) == (BIAS_DEFAULTS.alpha, BIAS_DEFAULTS.n_groups,
                                                                 BIAS_DEFAULTS.random_state)
    for name, cli_name in (("n_permutations", "permutations"), ("alpha", "alpha"), ("ood_metric", "ood_metric")):
        assert drift_form[name].default == getattr(DRIFT_DEFAULTS, name) == getattr(drift_cli, cli_name)
    assert bias_form["fill"].default is drift_form["fill"].default is True
    assert not bias_cli.no_fill and not drift_cli.no_fill


def test_interval_chart_tick_labels_fit() -> None:
    from curation_app.bias_panel import TICK_LINE_CHARS, tick_label

    crossed = "image_brightness < 0.27 & ground_truth.label = 'cross'"
    assert tick_label(crossed) == "image_brightness < 0.27 &<br>ground_truth.label = 'cross'"
    long = "ground_truth.label = 'a class name far too long for the axis'"
    cut = tick_label(long)
    assert len(cut) == TICK_LINE_CHARS and cut.endswith("…") and long.startswith(cut[:-1])
    assert tick_label("group 0") == "group 0"


def test_overview_names_the_drift_figures(standard) -> None:  # noqa: F811
    from curation_app.overview_panel import named_figures, overview_data
    from curation_checks.drift.report import compute_drift

    compute_drift(standard, "tag:reference", "batch:batch_id", n_permutations=100)
    figures = {r["key"]: r["figures"] for r in overview_data(standard)["runs"]}["drift"]
    assert "batches drifted=2 of 4" in figures
    assert "reference rows (OOD neighbours)=300" in figures and "reference samples=300" in figures
    assert "num_reference" not in figures and "ood" not in figures.replace("OOD", "")
    # a run stored before the rename reads the same
    assert named_figures("drift", {"num_reference_ood": 1500}) == {"reference rows (OOD neighbours)": 1500}
    # other kinds keep their stored names
    assert named_figures("check", {"summary": {"num_labeled": 7}}) == {"num_labeled": 7}
