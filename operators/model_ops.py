"""Operators: compute the fixed model's out-of-sample outputs, run a registered check. Delegable."""

from __future__ import annotations

import fiftyone.operators as foo
import fiftyone.operators.types as types

from active_learning.data.importers import LABEL_FIELD
from active_learning.model.own_model import compute_outputs
from active_learning.model.recipes import DEFAULT_FOLDS, DEFAULT_SEEDS
from active_learning.progress import with_eta
from curation_app.common import (ModelParams, delegable_config, fit_tag_input, fit_view_of, label_field_input,
                                 model_settings_inputs, own_model_inputs, reported, target_view, validate_label_field)
from curation_checks.io import run_check
from curation_checks.registry import available_checks


class ComputeModelOutputs(foo.Operator):
    """K-fold out-of-sample probabilities, predictions and embeddings of the fixed model for the view."""

    @property
    def config(self):
        return delegable_config("compute_model_outputs", "Curation: compute model outputs (K-fold)",
                                delegate_by_default=True)

    def resolve_input(self, ctx):
        inputs = types.Object()
        label_field = label_field_input(ctx, inputs)
        if label_field is None:
            return types.Property(inputs)
        fit_tag_input(ctx, inputs)
        model_settings_inputs(ctx, inputs, several_seeds=False)
        own_model_inputs(ctx, inputs)
        validate_label_field(ctx, inputs, label_field)
        return types.Property(inputs)

    def execute(self, ctx):
        def work() -> dict:
            view = target_view(ctx)
            asked = ModelParams.of(ctx.params)
            summary = compute_outputs(
                view, asked.own_model, label_field=asked.label_field, folds=asked.folds or DEFAULT_FOLDS,
                seeds=asked.seeds or DEFAULT_SEEDS, recipe=None if asked.own_model else asked.recipe(view, always=True),
                fit_view=fit_view_of(ctx), tta_px=asked.tta_px,
                progress=with_eta(lambda fraction, message: ctx.set_progress(progress=fraction, label=message)))
            return {"num_scored": summary.num_scored, "out_of_sample_accuracy": summary.out_of_sample_accuracy,
                    "run_key": summary.run_key, "probabilities": summary.source}

        return reported(ctx, work)


class RunCheck(foo.Operator):
    """Run one registered curation check over the view; results become fields and a run."""

    @property
    def config(self):
        return delegable_config("run_check", "Curation: run a check")

    def resolve_input(self, ctx):
        inputs = types.Object()
        inputs.enum("check", available_checks(), default=available_checks()[0], label="Check")
        label_field = label_field_input(ctx, inputs)
        if label_field is None:
            return types.Property(inputs)
        validate_label_field(ctx, inputs, label_field)
        return types.Property(inputs)

    def execute(self, ctx):
        def work() -> dict:
            result = run_check(target_view(ctx), ctx.params.get("check") or available_checks()[0],
                               label_field=ctx.params.get("label_field") or LABEL_FIELD)
            return {"check": result.check, "summary": result.summary}

        return reported(ctx, work)
