"""The check registry: every registered check is what it says it is, and its ``requires`` is the truth.

A check's ``requires`` is what ``curation_checks.io.read_inputs`` reads from the view, so a wrong declaration
either reads too little (the check then fails on real data) or too much (it demands model outputs it never uses).
Each check is run on exactly the inputs it declares (the others None: must work) and with each declared one
removed (must refuse with a clear DataError).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from active_learning.errors import DataError, InputError
from curation_checks.base import CheckInputs, CheckResult
from curation_checks.class_balance import ClassBalance
from curation_checks.registry import CHECKS, INPUTS, REGISTRY, available_checks, get_check

N, K, D = 120, 3, 8


def declared_inputs(requires: tuple[str, ...]) -> CheckInputs:
    """Plausible inputs (3 separable classes) holding only the arrays named in ``requires``."""
    rng = np.random.default_rng(0)
    labels = np.arange(N) % K
    centres = rng.normal(size=(K, D)) * 4
    embeddings = centres[labels] + rng.normal(size=(N, D))
    logits = np.eye(K)[labels] * 3 + rng.normal(size=(N, K))
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    arrays = {"labels": labels, "pred_probs": probs, "embeddings": embeddings}
    return CheckInputs(tuple(f"s{i}" for i in range(N)), ("a", "b", "c"),
                       **{name: arrays[name] for name in requires})


def test_every_entry_is_a_check_with_known_inputs() -> None:
    assert len(REGISTRY) == len(CHECKS) == len(available_checks())
    assert INPUTS == {"labels", "pred_probs", "embeddings"}
    for name, check in REGISTRY.items():
        assert check.name == name and check.description and check.field_prefix
        assert check.requires and set(check.requires) <= INPUTS


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_declared_inputs_are_enough(name: str) -> None:
    check = get_check(name)
    result = check.run(declared_inputs(check.requires))
    assert isinstance(result, CheckResult) and result.check == name
    for column in result.per_sample.values():
        assert len(column) == N


@pytest.mark.parametrize("name,missing", [(n, r) for n in sorted(REGISTRY) for r in REGISTRY[n].requires])
def test_each_declared_input_is_needed(name: str, missing: str) -> None:
    check = get_check(name)
    inputs = dataclasses.replace(declared_inputs(check.requires), **{missing: None})
    with pytest.raises(DataError):
        check.run(inputs)


def test_get_check_passes_parameters_and_refuses_unknown_names() -> None:
    check = get_check("class_balance", rare_fraction=0.5)
    assert isinstance(check, ClassBalance) and check.rare_fraction == 0.5
    with pytest.raises(InputError, match="Unknown check 'nope'; available: .*class_balance"):
        get_check("nope")


def test_the_documented_example_check_registers_and_runs(monkeypatch) -> None:
    """docs/design.md shows adding a check as one module and one registry line: that module really works."""
    import re
    import sys
    import types
    from pathlib import Path

    from curation_checks.registry import load_check

    design = (Path(__file__).resolve().parents[1] / "docs" / "design.md").read_text()
    section = design[design.index("## Adding a check"):]
    source = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    line = re.search(r'`"(low_confidence:LowConfidence)",`', section).group(1)
    module = types.ModuleType("curation_checks.low_confidence")
    monkeypatch.setitem(sys.modules, "curation_checks.low_confidence", module)  # dataclasses look it up
    exec(compile(source, "docs/design.md", "exec"), module.__dict__)
    check_class = load_check(line)
    monkeypatch.setitem(REGISTRY, check_class.name, check_class)
    check = get_check("low_confidence", threshold=0.5)
    inputs = declared_inputs(check.requires)
    result = check.run(inputs)
    assert result.per_sample["flag"].sum() == result.summary["num_flagged"] > 0
    given = inputs.pred_probs[np.arange(N), inputs.labels]
    assert np.array_equal(result.per_sample["flag"], given < 0.5)
    for missing in check.requires:
        with pytest.raises(DataError):
            check.run(dataclasses.replace(inputs, **{missing: None}))
