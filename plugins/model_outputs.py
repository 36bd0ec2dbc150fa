"""Model outputs for samples ``curation model`` did not cover: the one fill step that bias and drift share.

``curation model`` stores out-of-sample K-fold probabilities for the labelled samples it trains on and embeddings for
the samples of its view; test samples, new batches and unlabelled samples have no probabilities. Bias and drift need
outputs on every sample they compare, so ``run_bias`` and ``run_drift`` (``fill=True``, their default) call
``fill_model_outputs`` first. The final model never saw those samples, so its outputs on them are out-of-sample too,
but they come from one model rather than from K folds.
"""

from __future__ import annotations

import numpy as np

from active_learning.errors import DataError
from active_learning.model.outputs import DEFAULT_RUN_KEY, EMBEDDING_FIELD, PROBS_FIELD
from active_learning.store.fields import write_fields
from active_learning.model.model_run import load_model_run
from active_learning.store.runs import record_run

FILL_RUN_KEY = "drift_model_outputs"  # the run's name predates bias filling too; stored runs keep it
DEFAULT_FILL = True  # run_bias, run_drift, the CLI and the operators fill missing outputs unless told not to


def has_model_run(dataset, run_key: str = DEFAULT_RUN_KEY) -> bool:
    """Whether ``dataset`` has the model run whose final model can fill outputs."""
    return run_key in dataset.list_runs()


def fill_model_outputs(collection, run_key: str = DEFAULT_RUN_KEY, device: str | None = None) -> int:
    """Give samples of ``collection`` without ``model_probs`` / ``model_embedding`` the final model's outputs.

    The final model of run ``run_key`` (checkpoint verified by its hash) computes them; existing values are never
    overwritten. Returns the number of samples filled; records run ``drift_model_outputs`` (``FILL_RUN_KEY``).

    Raises:
        DataError: the dataset has no model run, or its stored probabilities do not fit the model's classes.
        ModelError: the checkpoint is missing or changed.
    """
    from active_learning.data.images import load_images
    from active_learning.model.outputs import load_model

    dataset = collection._dataset
    if not has_model_run(dataset, run_key):
        raise DataError(f"Dataset {dataset.name!r} has no model run {run_key!r}: run `curation model {dataset.name}` "
                        "first (it trains the fixed model whose outputs fill the other samples).")
    schema = dataset.get_field_schema()
    fields = ["id", "filepath"] + [f for f in (PROBS_FIELD, EMBEDDING_FIELD) if f in schema]
    columns = dict(zip(fields, collection.values(fields)))
    count = len(columns["id"])
    has_probs = [r is not None for r in columns.get(PROBS_FIELD, [None] * count)]
    has_embedding = [r is not None for r in columns.get(EMBEDDING_FIELD, [None] * count)]
    todo = [i for i in range(count) if not (has_probs[i] and has_embedding[i])]
    if todo:
        model = load_model(dataset, run_key, device)
        existing = next((len(r) for r in columns.get(PROBS_FIELD, []) if r is not None), model.num_classes)
        if existing != model.num_classes:
            raise DataError(f"The stored {PROBS_FIELD!r} rows have {existing} columns but the model of run "
                            f"{run_key!r} has {model.num_classes} classes; recompute `curation model` first.")
        images = load_images([columns["filepath"][i] for i in todo], model.recipe.image_size)
        probs = np.round(model.predict_proba(images).astype(np.float64), 6)
        embeddings = model.embed(images).astype(np.float64)
        need_probs = [j for j, i in enumerate(todo) if not has_probs[i]]
        need_embedding = [j for j, i in enumerate(todo) if not has_embedding[i]]
        if need_probs:
            write_fields(dataset, [columns["id"][todo[j]] for j in need_probs], {PROBS_FIELD: probs[need_probs]})
        if need_embedding:
            write_fields(dataset, [columns["id"][todo[j]] for j in need_embedding],
                         {EMBEDDING_FIELD: embeddings[need_embedding]})
    model_run = load_model_run(dataset, run_key)
    record_run(collection, FILL_RUN_KEY,
               {"kind": "fill_model_outputs", "model_run_key": run_key,
                "checkpoint": model_run.checkpoint if model_run else None,
                "checkpoint_sha256": model_run.checkpoint_sha256 if model_run else None,
                "fields": [PROBS_FIELD, EMBEDDING_FIELD]},
               {"num_filled": len(todo), "num_samples": count})
    return len(todo)
