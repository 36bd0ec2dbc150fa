"""The thin layer between checks and FiftyOne: read a check's inputs from a view, write its result back."""

from __future__ import annotations

import numpy as np

from active_learning.errors import DataError
from active_learning.predictions import EMBEDDING_FIELD, PROBS_FIELD
from active_learning.runs import record_run
from active_learning.views import check_label_field, get_classes
from curation_checks.registry import get_check
from curation_checks.base import CheckInputs, CheckResult


def read_inputs(view, label_field: str, requires: tuple[str, ...]) -> CheckInputs:
    """Everything a check needs from ``view``; a missing requirement is a ``DataError`` saying how to get it."""
    if len(view) == 0:
        raise DataError("The view is empty: select some samples (or clear the filter) and try again.")
    check_label_field(view, label_field)
    classes = get_classes(view, label_field)
    index = {c: i for i, c in enumerate(classes)}
    ids, labels = view.values(["id", f"{label_field}.label"])
    unknown = sorted({str(v) for v in labels if v is not None and v not in index})
    if unknown:
        raise DataError(f"Labels {unknown[:5]} in {label_field!r} are not in the class list {classes[:10]}.")
    label_array = np.asarray([index[v] if v is not None else -1 for v in labels], dtype=np.int64)
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
    from active_learning.views import write_fields

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
