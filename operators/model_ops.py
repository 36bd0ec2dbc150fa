"""Operators: compute the fixed model's out-of-sample outputs, run a registered check. Delegable."""

from __future__ import annotations

import fiftyone.operators as foo
import fiftyone.operators.types as types

from active_learning.predictions import compute_model_outputs
from active_learning.progress import with_eta
from curation_app.common import (fit_tag_input, fit_view_of, label_field_input, model_settings_inputs,
                                 own_model_inputs, own_model_outputs, recipe_from_params, reported, target_view,
                                 validate_label_field)
from curation_checks.registry import available_checks
from curation_checks.io import run_check


class ComputeModelOutputs(foo.Operator):
    """K-fold out-of-sample probabilities, predictions and embeddings of the fixed model for the view."""

    @property
    def config(self):
        return foo.OperatorConfig(
            name="compute_model_outputs",
            label="Curation: compute model outputs (K-fold)",
            dynamic=True,
            allow_immediate_execution=True,
            allow_delegated_execution=True,
            default_choice_to_delegated=True,
        )

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
        params = ctx.params

        def work() -> dict:
            view = target_view(ctx)
            summary = own_model_outputs(view, params) or compute_model_outputs(
                view, label_field=params.get("label_field", "ground_truth"),
                folds=int(params.get("folds") or 5), seeds=(int(params.get("seed") or 0),),
                recipe=recipe_from_params(view, params),
                progress=with_eta(lambda fraction, message: ctx.set_progress(progress=fraction, label=message)),
                fit_view=fit_view_of(ctx),
                tta_px=None if params.get("tta_px") is None else int(params["tta_px"]),
            )
            return {"num_scored": summary.num_scored, "out_of_sample_accuracy": summary.out_of_sample_accuracy,
                    "run_key": summary.run_key, "probabilities": summary.source}

        return reported(ctx, work)


class RunCheck(foo.Operator):
    """Run one registered curation check over the view; results become fields and a run."""

    @property
    def config(self):
        return foo.OperatorConfig(
            name="run_check",
            label="Curation: run a check",
            dynamic=True,
            allow_immediate_execution=True,
            allow_delegated_execution=True,
        )

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
            result = run_check(target_view(ctx), ctx.params.get("check", "class_balance"),
                               label_field=ctx.params.get("label_field", "ground_truth"))
            return {"check": result.check, "summary": result.summary}

        return reported(ctx, work)
