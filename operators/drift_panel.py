"""Drift in the App: an operator that compares a reference with target batches (delegable) and the "Drift" panel.

The panel rebuilds everything from the ``drift`` run and the ``drift_*`` fields (``curation_checks.drift.report``):
p-values of both tests per batch in batch order (a trend over batches shows), the share of out-of-distribution
samples per batch, the estimated class-prior change, the distribution of per-sample OOD scores, and a table of
batches whose rows set the App's view to that batch's most drifted samples.
"""

from __future__ import annotations

import numpy as np

import fiftyone.operators as foo
import fiftyone.operators.types as types

from active_learning.errors import CurationError
from curation_app.common import ReportPanel, delegable_config, reported, show_error
from curation_checks.drift.settings import DRIFT_DEFAULTS, OOD_METRICS, DriftSettings
from curation_checks.drift.views import DEFAULT_REFERENCE, DEFAULT_TARGET
from curation_checks.model_outputs import DEFAULT_FILL

MOST_DRIFTED = 100
HISTOGRAM_BINS = 40
PRIOR_ROW_PX = 44  # height of one batch's row of the prior-change heatmap


def _score_histograms(dataset, batches: list[str], threshold: float) -> list[dict]:
    """Per-batch histograms of ``drift_ood_score`` on shared bins (computed here: the App gets bars, not rows)."""
    from curation_checks.drift.report import BATCH_FIELD, SCORE_FIELD

    if SCORE_FIELD not in dataset.get_field_schema():
        return []
    names, scores = dataset.exists(SCORE_FIELD).values([BATCH_FIELD, SCORE_FIELD])
    if not scores:
        return []
    values = np.asarray(scores, dtype=np.float64)
    high = max(float(values.max()), threshold) * 1.001
    edges = np.linspace(min(float(values.min()), threshold), high, HISTOGRAM_BINS + 1)
    centres = ((edges[:-1] + edges[1:]) / 2).round(5).tolist()
    names_arr = np.asarray(names, dtype=object)
    traces = []
    for batch in batches:
        counts, _ = np.histogram(values[names_arr == batch], bins=edges)
        traces.append({"type": "bar", "name": batch, "x": centres, "y": counts.tolist(), "opacity": 0.6})
    return traces


def _prior_cell(batch, k: int, reference: float) -> tuple[float | None, str, str]:
    """Colour, text and hover of one heatmap cell: the colour shows only a significant change."""
    if batch.estimated_prior is None:
        return None, "", "no estimate"
    estimate = batch.estimated_prior[k]
    change = estimate - reference
    tested = batch.prior_change_significant is not None
    significant = tested and batch.prior_change_significant[k]
    hover = f"{reference:.2f} → {estimate:.2f} ({change:+.3f})"
    if tested:
        hover += (f"; chance ±{batch.prior_change_margin[k]:.2f}: "
                  + ("significant" if significant else "not significant"))
    return (change if significant or not tested else 0.0), f"{change:+.2f}" + ("*" if significant else ""), hover


def prior_heatmap(report) -> list[dict]:
    """The estimated change of each class's prior per batch; cells are coloured only where it is significant."""
    if report.reference_prior is None or all(b.estimated_prior is None for b in report.batches):
        return []
    cells = [[_prior_cell(b, k, r) for k, r in enumerate(report.reference_prior)] for b in report.batches]
    colours = [[c[0] for c in row] for row in cells]
    largest = max([abs(v) for row in colours for v in row if v is not None] + [0.05])
    return [{"type": "heatmap", "z": colours, "x": report.classes, "y": [b.name for b in report.batches],
             "text": [[c[1] for c in row] for row in cells], "customdata": [[c[2] for c in row] for row in cells],
             "texttemplate": "%{text}", "textfont": {"size": 13}, "colorscale": "RdBu", "zmid": 0,
             "zmin": -largest, "zmax": largest, "xgap": 2, "ygap": 2,
             "colorbar": {"title": {"text": "change"}, "tickformat": "+.2f"},
             "hovertemplate": "batch %{y}, %{x}: %{customdata}<extra></extra>"}]


def prior_height(num_batches: int) -> int:
    """Room for one readable row of cells per batch."""
    return 150 + PRIOR_ROW_PX * max(num_batches, 1)


def drift_panel_data(dataset) -> dict | None:
    """What the panel shows, from the ``drift`` run and fields; None before any run."""
    from curation_checks.drift.report import RUN_KEY, load_drift_report
    from curation_checks.drift.label_shift import describe_headline

    if RUN_KEY not in dataset.list_runs():
        return None
    report = load_drift_report(dataset)
    names = [b.name for b in report.batches]
    half = report.alpha / 2
    floor = 1.0 / (report.n_permutations + 1)  # the smallest p-value the permutation test can give
    p_traces = [
        {"type": "scatter", "mode": "lines+markers", "name": "MMD p (embeddings)", "x": names,
         "y": [max(b.mmd_p_value, floor) for b in report.batches]},
        {"type": "scatter", "mode": "lines+markers", "name": "KS-BBSD min p (probabilities)", "x": names,
         "y": [max(b.ks_min_p_value, 1e-300) for b in report.batches]},
    ]
    ood_traces = [{"type": "bar", "name": "OOD share", "x": names, "y": [b.fraction_ood for b in report.batches],
                   "marker": {"color": ["#d62728" if b.drifted else "#1f77b4" for b in report.batches]}}]
    batches = [{
        "batch": b.name, "samples": b.num_samples, "mmd_p": f"{b.mmd_p_value:.3g}",
        "ks_min_p": f"{b.ks_min_p_value:.2g}", "verdict": "DRIFT" if b.drifted else "ok",
        "ood": f"{100 * b.fraction_ood:.1f}%",
        "prior": describe_headline(b.largest_prior_change, b.label_shift_note, arrow="→"),
    } for b in report.batches]
    return {
        "summary": {"reference": report.reference_spec, "num_reference": report.num_reference,
                    "target": report.target_spec, "num_batches": len(names), "drifted": report.drifted_batches,
                    "alpha": report.alpha, "n_permutations": report.n_permutations,
                    "ood_quantile": report.ood_quantile, "ood_metric": report.ood_metric,
                    "trained_on": report.num_reference_trained_on, "model_trust": _model_trust(dataset)},
        "pvalues": p_traces, "half_alpha": half, "expected_ood": 1 - report.ood_quantile,
        "ood": ood_traces, "prior": prior_heatmap(report), "prior_height": prior_height(len(names)),
        "scores": _score_histograms(dataset, names, report.ood_threshold), "threshold": report.ood_threshold,
        "batches": batches, "batch_names": names,
    }


def _model_trust(dataset) -> dict | None:
    """The verdict on the dataset's model run (its out-of-sample accuracy), or None without one."""
    from active_learning.model.model_run import load_model_run

    run = load_model_run(dataset)
    return run.trust.to_dict() if run is not None and run.trust is not None else None


def drift_settings(params: dict) -> DriftSettings:
    """The operator form's values as the library's settings; what the form leaves out keeps the library default."""
    return DriftSettings(n_permutations=int(params.get("n_permutations", DRIFT_DEFAULTS.n_permutations)),
                         alpha=float(params.get("alpha", DRIFT_DEFAULTS.alpha)),
                         ood_metric=params.get("ood_metric", DRIFT_DEFAULTS.ood_metric))


class ComputeDrift(foo.Operator):
    """Compare target batches with a reference: MMD, KS-BBSD, label shift and per-sample OOD scores."""

    @property
    def config(self):
        return delegable_config("compute_drift", "Curation: detect drift")

    def resolve_input(self, ctx):
        from curation_checks.drift.report import SPEC_GRAMMAR, resolve_views

        inputs = types.Object()
        if ctx.dataset is None:
            return types.Property(inputs)
        inputs.str("reference", default=DEFAULT_REFERENCE, required=True, label="Reference",
                   description="tag:TAG or field:FIELD=VALUE (ideally data the model did not train on)")
        inputs.str("target", default=DEFAULT_TARGET, required=True, label="Target",
                   description=SPEC_GRAMMAR)
        inputs.int("n_permutations", default=DRIFT_DEFAULTS.n_permutations, label="MMD permutations")
        inputs.float("alpha", default=DRIFT_DEFAULTS.alpha, label="Level per batch")
        inputs.enum("ood_metric", list(OOD_METRICS), default=DRIFT_DEFAULTS.ood_metric, label="OOD score distance",
                    description="cosine: feature directions; euclidean: also feature length")
        inputs.bool("fill", default=DEFAULT_FILL, label="Compute missing model outputs with the final model first")
        try:
            resolve_views(ctx.dataset, ctx.params.get("reference", DEFAULT_REFERENCE),
                          ctx.params.get("target", DEFAULT_TARGET))
        except CurationError as exc:
            show_error(inputs, "bad_views", "Cannot compare these views", str(exc))
        return types.Property(inputs)

    def execute(self, ctx):
        from curation_checks.drift.report import run_drift

        params = ctx.params

        def work() -> dict:
            report = run_drift(ctx.dataset, params.get("reference", DEFAULT_REFERENCE),
                               params.get("target", DEFAULT_TARGET), drift_settings(params),
                               fill=bool(params.get("fill", DEFAULT_FILL)),
                               progress=lambda fraction, label: ctx.set_progress(progress=fraction, label=label))
            return {"batches": len(report.batches), "drifted": report.drifted_batches,
                    "num_filled": report.num_filled}

        return reported(ctx, work)


class DriftPanel(ReportPanel):
    """p-values per batch, OOD share, prior change, OOD score distribution; rows show the most drifted samples."""

    STATE = {k: k for k in ("summary", "half_alpha", "expected_ood", "threshold", "batch_names", "prior_height")}
    DATA = {k: k for k in ("pvalues", "ood", "prior", "scores", "batches")}

    @property
    def config(self):
        return foo.PanelConfig(name="drift", label="Drift", surfaces="grid", icon="timeline")

    def panel_data(self, dataset) -> dict | None:
        return drift_panel_data(dataset)

    def show_most_drifted(self, ctx):
        """Set the App's view to the most drifted samples: of the clicked batch, or of every batch."""
        from curation_checks.drift.report import load_drift_report, most_drifted_view

        names = ctx.panel.get_state("batch_names") or []
        row = ctx.params.get("row")
        batch = names[int(row)] if row is not None and 0 <= int(row) < len(names) else None
        try:
            view = most_drifted_view(ctx.dataset, load_drift_report(ctx.dataset), MOST_DRIFTED, batch)
        except CurationError as exc:
            ctx.ops.notify(str(exc), variant="error")
            return
        ctx.ops.set_view(view)
        ctx.ops.notify(f"Showing the {len(view)} most out-of-distribution samples"
                       + (f" of batch {batch!r}" if batch else "") + ".", variant="info")

    def render(self, ctx):
        panel = types.Object()
        full = types.GridView(orientation="vertical", height=100, width=100, pad=1)
        if not ctx.panel.get_state("has_run"):
            panel.md("**No drift report yet.** Run **Curation: detect drift** (or `curation drift DATASET "
                     "--reference tag:test --target batch:FIELD`) after `curation model`, then press Refresh.",
                     name="empty")
            panel.btn("refresh", label="Refresh", on_click=self.on_refresh)
            return types.Property(panel, view=full)
        s = ctx.panel.get_state("summary", {})
        trust = s.get("model_trust")
        if trust and not trust.get("trusted"):
            panel.md(f"⚠️ **{trust['message']}** KS-BBSD and the label-shift estimate read the model's "
                     "probabilities: with a weak model they lose power and the prior estimate is rough.",
                     name="trust_md")
        drifted = s.get("drifted") or []
        caution = ("" if not s.get("trained_on") else
                   f" Caution: {s['trained_on']} reference samples trained the model; prefer a held-out reference.")
        panel.md(
            f"Reference **{s.get('reference')}** ({s.get('num_reference', 0)} samples) against **{s.get('target')}** "
            f"({s.get('num_batches', 0)} batches): **{len(drifted)} drifted**"
            + (f" ({', '.join(drifted[:8])})" if drifted else "")
            + f". MMD on embeddings ({s.get('n_permutations')} permutations) and KS-BBSD on probabilities, each at "
            f"alpha/2 = {ctx.panel.get_state('half_alpha', 0.025):g}.{caution}", name="summary_md")
        buttons = panel.h_stack("buttons", align_x="left", gap=2)
        buttons.btn("most_drifted", label="Show most drifted samples", on_click=self.show_most_drifted)
        buttons.btn("refresh", label="Refresh", on_click=self.on_refresh)
        margin = {"t": 56, "l": 64, "r": 16, "b": 56}
        half = ctx.panel.get_state("half_alpha", 0.025)
        panel.plot("pvalues", layout={
            "title": {"text": "p-values per batch (dashed: alpha/2)"}, "height": 360, "margin": margin,
            "xaxis": {"title": {"text": "batch"}, "type": "category"},
            "yaxis": {"title": {"text": "p-value"}, "type": "log"},
            "showlegend": True, "legend": {"orientation": "h", "y": -0.3},
            "shapes": [{"type": "line", "xref": "paper", "x0": 0, "x1": 1, "y0": half, "y1": half,
                        "line": {"dash": "dash", "color": "#d62728"}}]}, config={"displayModeBar": False})
        expected = ctx.panel.get_state("expected_ood", 0.05)
        panel.plot("ood", layout={
            "title": {"text": "Out-of-distribution share per batch"},
            "height": 300, "margin": margin, "xaxis": {"type": "category"},
            "yaxis": {"tickformat": ".0%", "rangemode": "tozero",
                      "title": {"text": "OOD (dashed: expected without drift)"}},
            "shapes": [{"type": "line", "xref": "paper", "x0": 0, "x1": 1, "y0": expected, "y1": expected,
                        "line": {"dash": "dash", "color": "#555"}}]}, config={"displayModeBar": False})
        threshold = ctx.panel.get_state("threshold", 0)
        metric = s.get("ood_metric", "cosine")
        panel.plot("scores", layout={
            "title": {"text": "OOD scores per batch (dashed: threshold)"},
            "height": 320, "margin": margin, "barmode": "overlay", "bargap": 0,
            "xaxis": {"title": {"text": f"OOD score (mean {metric} distance to the k nearest reference samples)"}},
            "yaxis": {"title": {"text": "samples"}},
            "shapes": [{"type": "line", "yref": "paper", "y0": 0, "y1": 1, "x0": threshold, "x1": threshold,
                        "line": {"dash": "dash", "color": "#d62728"}}]}, config={"displayModeBar": False})
        panel.plot("prior", layout={
            "title": {"text": "Class-prior change per batch (BBSE; colour and * only beyond chance)"},
            "height": ctx.panel.get_state("prior_height", 320), "margin": {**margin, "b": 80},
            "xaxis": {"type": "category", "automargin": True, "tickangle": -30, "title": {"text": "class"}},
            "yaxis": {"type": "category", "automargin": True, "autorange": "reversed", "title": {"text": "batch"}}},
            config={"displayModeBar": False})
        table = types.TableView()
        for column, title in (("batch", "Batch"), ("samples", "Samples"), ("mmd_p", "MMD p"),
                              ("ks_min_p", "KS min p"), ("verdict", "Verdict"), ("ood", "OOD"),
                              ("prior", "Biggest prior change")):
            table.add_column(column, label=title)
        table.add_row_action("show", self.show_most_drifted, label="Show", icon="visibility",
                             tooltip="Show this batch's most drifted samples")
        panel.list("batches", types.Object(), view=table, label="Batches, in order")
        return types.Property(panel, view=full)
