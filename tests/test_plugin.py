"""The FiftyOne plugin as FiftyOne sees it: discovery, the operator registry, execution, input validation, the panel.

Everything runs against the session's isolated MongoDB (``conftest.py``), whose environment also points
``FIFTYONE_PLUGINS_DIR`` at a folder holding a link to the checkout; the CLI subprocesses inherit it.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

PLUGIN = "@curation/fiftyone-curation"
RUN_CHECK = f"{PLUGIN}/run_check"
COMPUTE_MODEL_OUTPUTS = f"{PLUGIN}/compute_model_outputs"
OVERVIEW_PANEL = f"{PLUGIN}/curation_overview"


def run_fiftyone_cli(args: list[str], timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """Run this venv's ``fiftyone ARGS`` outside the checkout, with the session's environment.

    The working directory is a fresh temporary folder, so the checkout's ``plugins/`` folder can never end up on
    ``sys.path`` next to FiftyOne's own ``plugins`` package.
    """
    exe = Path(sys.executable).with_name("fiftyone")
    command = [str(exe)] if exe.is_file() else [sys.executable, "-c", "from fiftyone.core.cli import main; main()"]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with tempfile.TemporaryDirectory(prefix="fo-cli-") as cwd:
        proc = subprocess.run([*command, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, (
        f"`fiftyone {' '.join(args)}` exited with {proc.returncode}\n--- stdout\n{proc.stdout[-4000:]}"
        f"\n--- stderr\n{proc.stderr[-4000:]}"
    )
    return proc


@pytest.fixture
def digits(dataset_name: str):
    """The digits dataset (1,797 samples tagged train/test) under a unique name."""
    from active_learning.data.importers import import_dataset

    return import_dataset(dataset_name, None, progress=False)


def resolve_inputs(operator_uri: str, dataset_name: str, view=None, params: dict | None = None):
    """The inputs ``Property`` that the operator's ``resolve_input`` returns, resolved the way the App asks for it."""
    from fiftyone.operators.executor import ExecutionResult, _parse_ctx, resolve_type
    from fiftyone.operators.registry import OperatorRegistry

    request = _parse_ctx(dataset=dataset_name, view=view, params=params or {})
    prop = asyncio.run(resolve_type(OperatorRegistry(), operator_uri, request))
    if isinstance(prop, ExecutionResult):
        pytest.fail(f"resolve_input of {operator_uri} raised:\n{prop.error}")
    assert prop is not None, f"{operator_uri} resolved no inputs"
    return prop


def error_views(prop) -> dict[str, object]:
    """The ``types.Error`` views among the top-level inputs, by property name."""
    import fiftyone.operators.types as types

    return {name: p for name, p in prop.type.properties.items() if isinstance(p.view, types.Error)}


# -- (a) discovery --------------------------------------------------------------------------------------------
def manifest() -> dict:
    """The plugin's ``fiftyone.yml``."""
    import yaml

    return yaml.safe_load((Path(__file__).resolve().parents[1] / "fiftyone.yml").read_text())


def test_manifest_names_our_operators_and_panel() -> None:
    meta = manifest()
    assert meta["name"] == PLUGIN
    assert {"compute_model_outputs", "run_check"} <= set(meta["operators"])
    assert "curation_overview" in meta["panels"]


def test_cli_plugins_list_shows_the_plugin() -> None:
    proc = run_fiftyone_cli(["plugins", "list", "--no-builtins"])
    assert PLUGIN in proc.stdout, f"{PLUGIN} is not in `fiftyone plugins list`:\n{proc.stdout}\n{proc.stderr[-2000:]}"


def test_plugin_is_found_enabled_and_loads_without_errors() -> None:
    import fiftyone.plugins as fop
    from fiftyone.operators.registry import OperatorRegistry

    plugins = {p.name: p for p in fop.list_plugins(enabled="all")}
    assert PLUGIN in plugins, f"found plugins: {sorted(plugins)}"
    definition = plugins[PLUGIN]
    assert Path(definition.directory).resolve() == Path(__file__).resolve().parents[1]
    assert definition.py_entry == "operators/__init__.py"
    meta = manifest()
    assert set(definition.operators) == set(meta["operators"]) | set(meta["panels"])
    assert fop.list_enabled_plugins().count(PLUGIN) == 1

    contexts = [c for c in OperatorRegistry().plugin_contexts if c.name == PLUGIN]
    assert len(contexts) == 1
    assert not contexts[0].errors, "the plugin failed to register:\n" + "\n".join(contexts[0].errors)


# -- (b) the operator registry --------------------------------------------------------------------------------
def test_cli_operators_list_shows_operators_and_panel() -> None:
    meta = manifest()
    proc = run_fiftyone_cli(["operators", "list", "--no-builtins", "--names-only"])
    listed = names_by_plugin(proc.stdout).get(PLUGIN, set())
    assert {"run_check", "compute_model_outputs", "curation_overview"} <= listed, proc.stdout
    assert listed == set(meta["operators"]) | set(meta["panels"]), "registered operators differ from fiftyone.yml"

    panels = run_fiftyone_cli(["operators", "list", "--panels-only", "--glob-patt", f"{PLUGIN}/*", "--names-only"])
    assert names_by_plugin(panels.stdout) == {PLUGIN: set(meta["panels"])}, panels.stdout


def names_by_plugin(listing: str) -> dict[str, set[str]]:
    """Parse ``fiftyone operators list --names-only``: a plugin name, then its operators indented below it."""
    plugins: dict[str, set[str]] = {}
    current = None
    for line in listing.splitlines():
        if not line.strip():
            continue
        if line[0].isspace() and current is not None:
            plugins[current].add(line.strip())
        else:
            current = line.strip()
            plugins[current] = set()
    return plugins


def test_list_operators_api() -> None:
    import fiftyone.operators as foo

    meta = manifest()
    ours = {op.uri: op for op in foo.list_operators(builtin=False) if op.plugin_name == PLUGIN}
    assert {RUN_CHECK, COMPUTE_MODEL_OUTPUTS, OVERVIEW_PANEL} <= set(ours)
    assert set(ours) == {f"{PLUGIN}/{name}" for name in [*meta["operators"], *meta["panels"]]}
    panels = {op.uri for op in foo.list_operators(builtin=False, type="panel") if op.plugin_name == PLUGIN}
    assert OVERVIEW_PANEL in panels and RUN_CHECK not in panels
    assert ours[OVERVIEW_PANEL].config.label == "Curation overview"
    for uri in (RUN_CHECK, COMPUTE_MODEL_OUTPUTS):
        config = ours[uri].config
        assert config.label.startswith("Curation: ")
        assert config.allow_immediate_execution and config.allow_delegated_execution
        assert foo.operator_exists(uri)


# -- (c) execution through FiftyOne's executor ----------------------------------------------------------------
def test_execute_run_check_writes_fields_and_run(digits) -> None:
    import fiftyone.operators as foo
    from active_learning.store.runs import load_run

    result = foo.execute_operator(RUN_CHECK, ctx={
        "dataset": digits.name, "params": {"check": "class_balance", "label_field": "ground_truth"}})
    assert result.error is None, result.error
    assert not result.delegated
    assert result.result["check"] == "class_balance"
    summary = result.result["summary"]
    assert summary["num_labeled"] == 1797
    assert sum(summary["counts"].values()) == 1797
    assert len(summary["counts"]) == 10
    # Not delegated, so the operator asked the App to reload the dataset.
    triggered = [r["operator_uri"] for r in result.executor.to_json()["requests"]]
    assert triggered == ["reload_dataset"], triggered

    digits.reload()
    assert "check_class_balance" in digits.list_runs()
    assert "class_balance_class_frequency" in digits.get_field_schema()
    frequency = digits.values("class_balance_class_frequency")
    assert len(frequency) == 1797 and all(v is not None and 0 < v <= 1 for v in frequency)
    assert max(frequency) == 1.0
    config, stored = load_run(digits, "check_class_balance")
    assert config["kind"] == "check" and config["check"] == "class_balance"
    assert config["num_samples"] == 1797
    assert stored["summary"] == summary


def test_execute_run_check_on_a_view(digits) -> None:
    import fiftyone.operators as foo
    from active_learning.store.runs import load_run

    test_view = digits.match_tags("test")
    num_test = len(test_view)
    assert 0 < num_test < 1797
    result = foo.execute_operator(RUN_CHECK, ctx={"view": test_view, "params": {"check": "class_balance"}})
    assert result.result["summary"]["num_labeled"] == num_test

    digits.reload()
    config, _ = load_run(digits, "check_class_balance")
    assert config["num_samples"] == num_test
    assert len(digits.exists("class_balance_class_frequency")) == num_test
    assert len(digits.match_tags("train").exists("class_balance_class_frequency")) == 0


def test_execute_model_outputs_on_the_test_view_trained_on_the_train_tag(digits) -> None:
    """The operator's disjoint-split choice: the test view scored by a model trained on the samples tagged train."""
    import fiftyone.operators as foo
    from active_learning.model.outputs import PROBS_FIELD
    from active_learning.store.runs import load_run

    test_view = digits.match_tags("test")
    choices = resolve_inputs(COMPUTE_MODEL_OUTPUTS, digits.name).type.properties["fit_tag"].type.values
    assert choices[1:] == ["test", "train"] and "K-fold" in choices[0]
    result = foo.execute_operator(COMPUTE_MODEL_OUTPUTS, ctx={
        "view": test_view, "params": {"label_field": "ground_truth", "fit_tag": "train", "epochs": 1}})
    assert result.error is None and "error" not in result.result, result.result
    assert "disjoint view of 1438 labeled samples" in result.result["probabilities"]
    digits.reload()
    assert len(digits.exists(PROBS_FIELD)) == len(test_view) == len(test_view.exists(PROBS_FIELD))
    config, _ = load_run(digits, "curation_model")
    assert config["split"] == "disjoint" and config["num_fit"] == 1438
    # Trained on samples it also scores: refused, and the App gets a notification.
    overlap = foo.execute_operator(COMPUTE_MODEL_OUTPUTS, ctx={
        "dataset": digits.name, "params": {"label_field": "ground_truth", "fit_tag": "train", "epochs": 1}})
    assert "both scored and trained on" in overlap.result["error"]


def test_execute_with_invalid_params_fails_validation(digits) -> None:
    import fiftyone.operators as foo
    from fiftyone.operators.executor import ExecutionError

    with pytest.raises(ExecutionError, match="Validation error"):
        foo.execute_operator(RUN_CHECK, ctx={"dataset": digits.name, "params": {"check": "no_such_check"}})
    digits.reload()
    assert "check_class_balance" not in digits.list_runs()


# -- (d) the panel's data -------------------------------------------------------------------------------------
def test_overview_data_counts(digits) -> None:
    from curation_app.overview_panel import overview_data
    from curation_checks.io import run_check

    data = overview_data(digits)
    assert data["num_samples"] == 1797
    assert data["classes"] == [str(d) for d in range(10)]
    tags = digits.count_sample_tags()
    traces = {t["name"]: t for t in data["traces"]}
    assert set(traces) == {"train", "test"}, "the digits have no pool split, so no pool trace"
    for split, trace in traces.items():
        assert trace["type"] == "bar"
        assert trace["x"] == data["classes"]
        expected = digits.match_tags(split).count_values("ground_truth.label")
        assert trace["y"] == [expected.get(c, 0) for c in data["classes"]]
        assert sum(trace["y"]) == tags[split]
    assert sum(sum(t["y"]) for t in traces.values()) == 1797

    assert [r["key"] for r in data["runs"]] == ["curation_import"]
    run_check(digits, "class_balance")
    runs = {r["key"]: r for r in overview_data(digits)["runs"]}
    assert set(runs) == {"curation_import", "check_class_balance"}
    check = runs["check_class_balance"]
    assert check["kind"] == "check"
    assert check["created_at"].startswith("20")
    assert "num_labeled=1797" in check["figures"]
    assert "num_samples=1797" in runs["curation_import"]["figures"]


def test_overview_data_without_label_field(dataset_name: str) -> None:
    import fiftyone as fo
    from curation_app.overview_panel import overview_data

    dataset = fo.Dataset(dataset_name)
    dataset.add_samples([fo.Sample(filepath=f"/nonexistent/{i}.png", tags=["train"]) for i in range(3)])
    data = overview_data(dataset)
    assert data == {"classes": [], "traces": [], "runs": [], "num_samples": 3}


# -- (e) resolve_input validation -----------------------------------------------------------------------------
def test_resolve_input_offers_fields_and_checks(digits) -> None:
    for uri in (RUN_CHECK, COMPUTE_MODEL_OUTPUTS):
        prop = resolve_inputs(uri, digits.name)
        assert not error_views(prop), f"{uri} shows an error on a valid dataset"
        label_field = prop.type.properties["label_field"]
        assert label_field.type.values == ["ground_truth"] and label_field.default == "ground_truth"
    check = resolve_inputs(RUN_CHECK, digits.name).type.properties["check"]
    assert "class_balance" in check.type.values


@pytest.mark.parametrize("uri", [RUN_CHECK, COMPUTE_MODEL_OUTPUTS])
def test_resolve_input_without_classification_field(uri: str, dataset_name: str) -> None:
    import fiftyone as fo
    import fiftyone.operators as foo
    from fiftyone.operators.executor import ExecutionError

    dataset = fo.Dataset(dataset_name)
    dataset.add_samples([fo.Sample(filepath=f"/nonexistent/{i}.png") for i in range(3)])
    prop = resolve_inputs(uri, dataset_name)
    errors = error_views(prop)
    assert list(errors) == ["none"], list(prop.type.properties)
    assert errors["none"].view.label == "No Classification field"
    assert errors["none"].invalid, "the error must disable Execute (an invalid property)"
    assert "label_field" not in prop.type.properties
    with pytest.raises(ExecutionError, match="Validation error"):
        foo.execute_operator(uri, ctx={"dataset": dataset_name, "params": {}})
    assert dataset.list_runs() == []


@pytest.mark.parametrize("uri", [RUN_CHECK, COMPUTE_MODEL_OUTPUTS])
def test_resolve_input_on_empty_view(uri: str, digits) -> None:
    import fiftyone.operators as foo
    from fiftyone.operators.executor import ExecutionError

    empty = digits.match_tags("no-such-tag")
    assert len(empty) == 0
    prop = resolve_inputs(uri, digits.name, view=empty)
    errors = error_views(prop)
    assert list(errors) == ["empty"], list(prop.type.properties)
    assert errors["empty"].view.label == "The view is empty"
    assert errors["empty"].invalid and "empty" in errors["empty"].error_message.lower()
    with pytest.raises(ExecutionError, match="Validation error"):
        foo.execute_operator(uri, ctx={"view": empty, "params": {}})
    digits.reload()
    assert sorted(digits.list_runs()) == ["curation_import"]


def test_resolve_input_with_a_field_that_is_not_a_classification(digits) -> None:
    import fiftyone as fo

    digits.add_sample_field("not_a_label", fo.StringField)
    prop = resolve_inputs(RUN_CHECK, digits.name, params={"label_field": "not_a_label"})
    errors = error_views(prop)
    assert list(errors) == ["bad_field"], list(prop.type.properties)
    assert errors["bad_field"].invalid
    assert "not_a_label" in errors["bad_field"].view.description
