"""The thin layer between checks and FiftyOne: read a check's inputs from a view, write its result back."""

from __future__ import annotations

import numpy as np

from active_learning.errors import DataError
from active_learning.model.outputs import EMBEDDING_FIELD, PROBS_FIELD
from active_learning.store.fields import view_labels, write_fields
from active_learning.store.runs import record_run
from curation_checks.base import CheckInputs, CheckResult
from curation_checks.registry import get_check


def read_inputs(view, label_field: str, requires: tuple[str, ...]) -> CheckInputs:
    """Everything a check needs from ``view``; a missing requirement is a ``DataError`` saying how to get it."""
    if len(view) == 0:
        raise DataError("The view is empty: select some samples (or clear the filter) and try again.")
    ids, label_array, classes = view_labels(view, label_field)
    pred_probs = embeddings = None
    schema = view.get_field_schema()
    if "pred_probs" in requires:
        if PROBS_FIELD not in schema:
            raise DataError(f"This check needs {PROBS_FIELD!r}: run `curation model` (or the Compute model "
                            "outputs operator) first.")
        rows = view.values(PROBS_FIELD)
        # Out-of-sample probabilities exist only for labeled samples; unlabeled rows become NaN.
        missing_labeled = sum(r is None and y >= 0 for r, y in zip(rows, label_array))
        if missing_labeled:
            raise DataError(f"{missing_labeled} labeled samples of the view have no {PROBS_FIELD!r}; "
                            "recompute the model outputs over this view.")
        if len({len(r) for r in rows if r is not None}) > 1:
            raise DataError(f"The {PROBS_FIELD!r} rows have different lengths; recompute the model outputs.")
        width = next((len(r) for r in rows if r is not None), len(classes))
        pred_probs = np.asarray([r if r is not None else [np.nan] * width for r in rows], dtype=np.float64)
    if "embeddings" in requires:
        if EMBEDDING_FIELD not in schema:
            raise DataError(f"This check needs {EMBEDDING_FIELD!r}: run `curation model` first.")
        rows = view.values(EMBEDDING_FIELD)
        if any(r is None for r in rows):
            raise DataError(f"Some samples of the view have no {EMBEDDING_FIELD!r}; recompute the model outputs.")
        embeddings = np.asarray(rows, dtype=np.float32)
    return CheckInputs(tuple(ids), tuple(classes), label_array, pred_probs, embeddings)


def write_result(collection, inputs: CheckInputs, result: CheckResult, prefix: str, config: dict) -> None:
    """Per-sample arrays become fields ``<prefix>_<name>``; the summary and config become run ``check_<name>``."""
    write_fields(collection._dataset, inputs.sample_ids, {f"{prefix}_{k}": v for k, v in result.per_sample.items()})
    record_run(collection, f"check_{result.check}", {"kind": "check", "check": result.check, **config},
               {"summary": result.summary})


def run_check(view, name: str, label_field: str = "ground_truth", **params) -> CheckResult:
    """Run registered check ``name`` over ``view`` and store its result in the dataset."""
    check = get_check(name, **params)
    inputs = read_inputs(view, label_field, check.requires)
    result = check.run(inputs)
    write_result(view, inputs, result, check.field_prefix,
                 {"label_field": label_field, "params": {k: v for k, v in params.items()},
                  "num_samples": len(inputs.sample_ids)})
    return result
