"""Bias in the App: an operator that computes the report (delegable) and the "Bias" panel that shows it.

The panel rebuilds everything from the ``bias`` run (``curation_checks.bias.report``): the class distribution,
per-class precision/recall/F1, the worst slices with their confidence intervals, the confusion matrix, and the
tables of slices and embedding groups whose rows set the App's view to that slice or group.
"""

from __future__ import annotations

import fiftyone.operators as foo
import fiftyone.operators.types as types

from active_learning.model.trust import model_trust
from curation_app.common import (ReportPanel, delegable_config, label_field_input, reported, show_error,
                                 target_view, validate_label_field)
from curation_checks.bias.settings import BIAS_DEFAULTS, BiasSettings, slice_field_names
from curation_checks.bias.text import points_vs_rest
from curation_checks.model_outputs import DEFAULT_FILL

MAX_CHART_SLICES = 12
MAX_TABLE_ROWS = 25
TICK_LINE_CHARS = 34  # a tick label line longer than this is cut (the full label is in the hover)
ROW_PX = 46  # height of one slice's row in the interval chart: room for a two-line label


def _pct(value) -> str:
    return "" if value is None else f"{100 * value:.1f}%"


def _slice_row(stat: dict) -> dict:
    return {
        "slice": stat["label"],
        "size": stat["size"],
        "accuracy": _pct(stat["accuracy"]),
        "ci": f"{_pct(stat['ci_low'])} – {_pct(stat['ci_high'])}",
        "vs_rest": "" if stat["accuracy"] is None else points_vs_rest(stat["accuracy"], stat["rest_accuracy"]),
        "p_adjusted": "" if stat["p_adjusted"] is None else f"{stat['p_adjusted']:.2g}",
        "significant": "yes" if stat["significant"] else "",
        "composition": ", ".join(f"{c} {100 * s:.0f}%" for c, s in stat.get("composition", [])[:3]),
    }


def _cut(text: str, limit: int = TICK_LINE_CHARS) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def tick_label(label: str) -> str:
    """A slice label as a tick: a crossed slice on two lines (one per part), each line cut to fit."""
    return "<br>".join(_cut(part) + (" &" if i < len(parts) - 1 else "")
                       for parts in [label.split(" & ")] for i, part in enumerate(parts))


def _interval_trace(stats: list[dict], name: str, start: int) -> dict:
    """Accuracy of each slice with its Wilson interval as horizontal error bars, worst at the top.

    Rows sit at y = start, start + 1, ... (bottom to top); the axis's ticks name them (``interval_axis``).
    """
    shown = list(reversed(stats[:MAX_CHART_SLICES]))
    return {
        "type": "scatter", "mode": "markers", "name": name, "orientation": "h",
        "x": [s["accuracy"] for s in shown], "y": list(range(start, start + len(shown))),
        "customdata": [[s["label"], s["size"], points_vs_rest(s["accuracy"], s["rest_accuracy"])] for s in shown],
        "error_x": {"type": "data", "symmetric": False, "color": "#a0a0a0", "thickness": 2, "width": 5,
                    "array": [s["ci_high"] - s["accuracy"] for s in shown],
                    "arrayminus": [s["accuracy"] - s["ci_low"] for s in shown]},
        "marker": {"size": 9, "color": ["#d62728" if s["significant"] else "#1f77b4" for s in shown]},
        "hovertemplate": "%{customdata[0]}<br>accuracy %{x:.3f} (n=%{customdata[1]}), %{customdata[2]} vs rest"
                         "<extra></extra>",
    }


def interval_axis(traces: list[dict]) -> dict:
    """Every row's tick, bottom to top, and the chart height that gives each row room for its label."""
    labels = [row[0] for trace in traces for row in trace["customdata"]]
    return {"tickvals": list(range(len(labels))), "ticktext": [tick_label(label) for label in labels],
            "labels": labels, "height": 170 + ROW_PX * max(len(labels), 1)}


def bias_panel_data(dataset) -> dict | None:
    """What the panel shows, from the ``bias`` run; None before any run."""
    from curation_checks.bias.report import RUN_KEY, load_bias_report

    if RUN_KEY not in dataset.list_runs():
        return None
    report = load_bias_report(dataset).to_dict()
    metrics, distribution = report["metrics"], report["distribution"]
    classes = report["classes"]
    per_class = metrics["per_class"]
    slices = report["slices"]["slices"]
    groups = (report.get("groups") or {}).get("groups", [])
    reference = distribution.get("reference")
    dist_traces = [{"type": "bar", "name": "samples", "x": classes,
                    "y": [distribution["counts"][c] for c in classes], "marker": {"color": "#1f77b4"}}]
    if reference is not None:
        dist_traces.append({"type": "bar", "name": "expected (reference)", "x": classes,
                            "y": [reference["expected_counts"][c] for c in classes], "marker": {"color": "#aaaaaa"}})
    f1_traces = [{"type": "bar", "name": name, "x": classes, "y": [row[key] for row in per_class]}
                 for key, name in (("precision", "precision"), ("recall", "recall"), ("f1", "F1"))]
    # bottom to top: groups, then slices, each worst at its top, so the worst slice heads the chart
    interval_traces = [_interval_trace(slices, "slices", min(len(groups), MAX_CHART_SLICES))]
    if groups:
        interval_traces.append({**_interval_trace(groups, "embedding groups", 0),
                                "marker": {"size": 9, "symbol": "diamond",
                                           "color": ["#d62728" if g["significant"] else "#2ca02c"
                                                     for g in reversed(groups[:MAX_CHART_SLICES])]}})
    confusion = [{"type": "heatmap", "z": metrics["confusion_matrix"], "x": classes, "y": classes, "colorscale": "Blues",
                  "texttemplate": "%{z}", "hovertemplate": "given %{y}, predicted %{x}: %{z}<extra></extra>"}]
    worst = sorted((r for r in per_class if r["support"] > 0 and r["f1"] is not None), key=lambda r: r["f1"])[:3]
    return {
        "summary": {
            "num_scored": report["num_scored"], "num_samples": report["num_samples"],
            "num_unlabeled": report["num_unlabeled"], "num_unscored": report["num_unscored"],
            "accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"],
            "imbalance_ratio": distribution.get("imbalance_ratio"),
            "reference_p_value": None if reference is None else reference["p_value"],
            "num_slices": report["slices"]["num_tested"], "num_significant": report["slices"]["num_significant"],
            "num_groups": len(groups),
            "num_significant_groups": (report.get("groups") or {}).get("num_significant", 0),
            "worst_classes": [f"{r['class']} (F1 {r['f1']:.2f})" for r in worst],
            "label_field": report["label_field"],
        },
        "distribution": dist_traces,
        "f1": f1_traces,
        "intervals": interval_traces,
        "overall_accuracy": metrics["accuracy"],
        "interval_axis": interval_axis(sorted(interval_traces, key=lambda t: t["y"][0] if t["y"] else 0)),
        "confusion": confusion,
        "slices": [_slice_row(s) for s in slices[:MAX_TABLE_ROWS]],
        "slice_specs": slices[:MAX_TABLE_ROWS],
        "groups": [_slice_row(g) for g in groups[:MAX_TABLE_ROWS]],
        "group_specs": groups[:MAX_TABLE_ROWS],
    }


def wanted_slice_fields(params: dict) -> tuple[str, ...] | None:
    """The form's comma-separated slice fields; None (the defaults) when it names none."""
    names = [f.strip() for f in str(params.get("slice_fields") or "").split(",") if f.strip()]
    return slice_field_names(names) or None


def bias_settings(params: dict) -> BiasSettings:
    """The operator form's values as the library's settings; what the form leaves out keeps the library default."""
    return BiasSettings(label_field=params.get("label_field", BIAS_DEFAULTS.label_field),
                        slice_fields=wanted_slice_fields(params),
                        image_stats=bool(params.get("image_stats", BIAS_DEFAULTS.image_stats)),
                        min_size=int(params.get("min_size", BIAS_DEFAULTS.min_size)),
                        crosses=bool(params.get("crosses", BIAS_DEFAULTS.crosses)))


class ComputeBias(foo.Operator):
    """Per-class metrics, class balance, slice performance with intervals and embedding groups for the view."""

    @property
    def config(self):
        return delegable_config("compute_bias", "Curation: compute bias report")

    def resolve_input(self, ctx):
        inputs = types.Object()
        label_field = label_field_input(ctx, inputs)
        if label_field is None:
            return types.Property(inputs)
        inputs.str("slice_fields", default="", label="Slice fields",
                   description="comma-separated sample fields; empty = image statistics, tags and the label")
        inputs.bool("crosses", default=BIAS_DEFAULTS.crosses,
                    label="Also test crossed slices (two fields, e.g. a class AND dark)")
        inputs.bool("image_stats", default=BIAS_DEFAULTS.image_stats,
                    label="Compute image statistics (brightness, contrast, size)")
        inputs.int("min_size", default=BIAS_DEFAULTS.min_size, label="Smallest slice or group tested")
        inputs.bool("fill", default=DEFAULT_FILL, label="Compute missing model outputs with the final model first")
        if not validate_label_field(ctx, inputs, label_field):
            return types.Property(inputs)
        wanted = wanted_slice_fields(ctx.params) or []
        schema = ctx.dataset.get_field_schema(flat=True)
        unknown = [f for f in wanted if f not in schema]
        if unknown:
            show_error(inputs, "bad_slice_field", "Unknown slice field",
                       f"{', '.join(unknown)} not in the dataset; fields: {', '.join(sorted(schema)[:30])}.")
        return types.Property(inputs)

    def execute(self, ctx):
        from curation_checks.bias.report import run_bias

        params = ctx.params

        def work() -> dict:
            report = run_bias(target_view(ctx), bias_settings(params), fill=bool(params.get("fill", DEFAULT_FILL)),
                              progress=lambda fraction, label: ctx.set_progress(progress=fraction, label=label))
            return {"accuracy": report.accuracy, "num_scored": report.num_scored,
                    "num_significant_slices": len(report.slices.significant), "num_filled": report.num_filled}

        return reported(ctx, work)


class BiasPanel(ReportPanel):
    """Class distribution, per-class F1, worst slices with intervals, confusion; rows set the App's view."""

    STATE = {k: k for k in ("summary", "overall_accuracy", "interval_axis", "slice_specs", "group_specs")}
    DATA = {k: k for k in ("distribution", "f1", "intervals", "confusion", "slices", "groups")}

    @property
    def config(self):
        return foo.PanelConfig(name="bias", label="Bias", surfaces="grid", icon="balance")

    def panel_data(self, dataset) -> dict | None:
        return bias_panel_data(dataset)

    def _show(self, ctx, specs_key: str, what: str):
        from curation_checks.bias.report import slice_view

        specs = ctx.panel.get_state(specs_key) or []
        row = ctx.params.get("row", 0)
        if not specs or row is None or not 0 <= int(row) < len(specs):
            ctx.ops.notify(f"No {what} to show: compute the bias report first.", variant="warning")
            return
        spec = specs[int(row)]
        ctx.ops.set_view(slice_view(ctx.dataset, spec))
        ctx.ops.notify(f"Showing {what} {spec['label']!r} ({spec['size']} samples).", variant="info")

    def show_slice(self, ctx):
        """Set the App's view to a slice: the clicked table row, or the worst slice from the button."""
        self._show(ctx, "slice_specs", "slice")

    def show_group(self, ctx):
        """Set the App's view to an embedding group: the clicked row, or the worst group from the button."""
        self._show(ctx, "group_specs", "group")

    def render(self, ctx):
        panel = types.Object()
        full = types.GridView(orientation="vertical", height=100, width=100, pad=1)
        if not ctx.panel.get_state("has_run"):
            panel.md("**No bias report yet.** Run **Curation: compute bias report** (or `curation bias DATASET`) "
                     "after `curation model`, then press Refresh.", name="empty")
            panel.btn("refresh", label="Refresh", on_click=self.on_refresh)
            return types.Property(panel, view=full)
        s = ctx.panel.get_state("summary", {})
        if s.get("accuracy") is not None and not (verdict := model_trust(s["accuracy"])).trusted:
            panel.md(f"⚠️ **{verdict.message}** Per-class and per-slice gaps then reflect the model as much as "
                     "the data.", name="trust_md")
        reference = ("" if s.get("reference_p_value") is None
                     else f" Against the reference distribution: p = {s['reference_p_value']:.2g}.")
        panel.md(
            f"**Out-of-sample accuracy {_pct(s.get('accuracy'))}**, macro F1 {s.get('macro_f1') or 0:.3f} over "
            f"**{s.get('num_scored', 0)}** scored samples ({s.get('num_unlabeled', 0)} unlabeled, "
            f"{s.get('num_unscored', 0)} without predictions). Imbalance ratio "
            f"{s.get('imbalance_ratio') or 0:.2f}.{reference} Worst classes: {', '.join(s.get('worst_classes', []))}."
            f" **{s.get('num_significant', 0)} of {s.get('num_slices', 0)} slices** and "
            f"**{s.get('num_significant_groups', 0)} of {s.get('num_groups', 0)} embedding groups** are significantly"
            " worse than the rest (Fisher exact, Holm-corrected).", name="summary_md")
        buttons = panel.h_stack("buttons", align_x="left", gap=2)
        buttons.btn("worst_slice", label="Show worst slice", on_click=self.show_slice)
        buttons.btn("worst_group", label="Show worst group", on_click=self.show_group)
        buttons.btn("refresh", label="Refresh", on_click=self.on_refresh)
        margin = {"t": 56, "l": 64, "r": 16, "b": 56}
        panel.plot("distribution", layout={"title": {"text": "Class distribution"}, "height": 300, "margin": margin,
                                           "barmode": "group", "xaxis": {"type": "category"},
                                           "yaxis": {"title": {"text": "samples"}}},
                   config={"displayModeBar": False})
        panel.plot("f1", layout={"title": {"text": "Per-class precision, recall, F1"},
                                 "height": 300, "margin": margin, "barmode": "group", "xaxis": {"type": "category"},
                                 "yaxis": {"range": [0, 1]}},
                   config={"displayModeBar": False})
        overall = ctx.panel.get_state("overall_accuracy", 0) or 0
        axis = ctx.panel.get_state("interval_axis") or {"tickvals": [], "ticktext": [], "height": 420}
        panel.plot("intervals", layout={
            "title": {"text": "Worst slices and groups: accuracy, 95% CI"},
            "height": axis["height"], "margin": {"t": 72, "l": 16, "r": 16, "b": 64},
            "xaxis": {"title": {"text": "accuracy (dashed: overall; red: significantly worse)"}, "range": [0, 1.02]},
            "yaxis": {"tickmode": "array", "tickvals": axis["tickvals"], "ticktext": axis["ticktext"],
                      "automargin": True, "range": [-0.6, len(axis["tickvals"]) - 0.4], "zeroline": False,
                      "tickfont": {"size": 12}},
            "shapes": [{"type": "line", "x0": overall, "x1": overall, "yref": "paper", "y0": 0, "y1": 1,
                        "line": {"dash": "dash", "color": "#555"}}],
            "showlegend": True, "legend": {"orientation": "h", "y": 1.0, "yanchor": "bottom", "x": 0}},
            config={"displayModeBar": False})
        panel.plot("confusion", layout={"title": {"text": "Confusion matrix (given × predicted)"}, "height": 380,
                                        "margin": margin, "xaxis": {"title": {"text": "predicted"}, "type": "category"},
                                        "yaxis": {"title": {"text": "given"}, "type": "category",
                                                  "autorange": "reversed"}},
                   config={"displayModeBar": False})
        for key, label, on_click in (("slices", "Slices, worst first (Show sets the App's view)", self.show_slice),
                                     ("groups", "Embedding groups, worst first", self.show_group)):
            table = types.TableView()
            for column, title in (("slice", "Slice"), ("size", "Size"), ("accuracy", "Accuracy"),
                                  ("ci", "95% CI"), ("vs_rest", "Accuracy vs rest"), ("p_adjusted", "p (Holm)"),
                                  ("significant", "Worse")):
                table.add_column(column, label=title)
            if key == "groups":
                table.add_column("composition", label="Main labels")
            table.add_row_action("show", on_click, label="Show", icon="visibility", tooltip="Show in the grid")
            panel.list(key, types.Object(), view=table, label=label)
        return types.Property(panel, view=full)
