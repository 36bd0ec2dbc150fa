"""The "Curation overview" panel: class distribution per split, the model's figures, the runs so far."""

from __future__ import annotations

import fiftyone.operators as foo
import fiftyone.operators.types as types

from active_learning.data.importers import LABEL_FIELD
from active_learning.data.sources import SPLITS
from active_learning.errors import CurationError
from active_learning.store.fields import check_label_field, get_classes
from active_learning.store.runs import load_run
from curation_app.common import RebuildingPanel

# Figures whose key alone misleads, named per run kind (other keys are shown as they are stored).
FIGURE_NAMES: dict[str, dict[str, str]] = {
    "drift": {
        "num_reference": "reference samples",
        "num_reference_labeled": "labelled reference samples",
        "num_reference_neighbours": "reference rows (OOD neighbours)",
        "num_reference_ood": "reference rows (OOD neighbours)",  # its name in runs stored before the rename
        "num_reference_trained_on": "reference samples the model trained on",
        "ood_threshold": "OOD score threshold",
    },
    "bias": {"accuracy": "out-of-sample accuracy", "num_scored": "scored samples"},
    "al_round": {"index": "round", "accuracy": "test accuracy", "num_labeled": "labels trained on",
                 "annotated": "tasks annotated"},
}


def overview_data(dataset, label_field: str = LABEL_FIELD) -> dict:
    """Everything the panel shows, rebuilt from fields and runs (nothing kept in panel state)."""
    try:
        check_label_field(dataset, label_field)
    except CurationError:
        classes = []  # no labels to count (yet): the panel still lists the runs
    else:
        classes = get_classes(dataset, label_field)
    traces = []
    for split in SPLITS if classes else ():
        view = dataset.match_tags(split)
        if not len(view):
            continue
        counts = view.count_values(f"{label_field}.label")
        traces.append({"type": "bar", "name": split, "x": classes, "y": [int(counts.get(c, 0)) for c in classes]})
    runs = []
    for key in sorted(dataset.list_runs()):
        try:
            config, results = load_run(dataset, key)
        except CurationError:
            continue
        kind = str(config.get("kind", config.get("source_kind", "")))
        runs.append({
            "key": key,
            "kind": kind,
            "created_at": str(config.get("created_at", "")),
            "figures": format_figures(named_figures(kind, results)),
        })
    return {"classes": classes, "traces": traces, "runs": runs, "num_samples": len(dataset)}


def run_figures(results: dict) -> dict[str, int | float]:
    """The numbers of a run's results: top-level ones, and those one level down (a check's ``summary``)."""
    figures: dict[str, int | float] = {}
    for key, value in results.items():
        nested = value.items() if isinstance(value, dict) else [(key, value)]
        for name, number in nested:
            if isinstance(number, (int, float)) and not isinstance(number, bool) and name not in figures:
                figures[name] = number
    return figures


def named_figures(kind: str, results: dict) -> dict[str, int | float | str]:
    """``run_figures`` under names that say what they count, plus a drift run's verdict over its batches."""
    names = FIGURE_NAMES.get(kind, {})
    figures: dict[str, int | float | str] = {}
    batches = results.get("batches")
    if kind == "drift" and isinstance(batches, list):
        drifted = sum(bool(b.get("drifted")) for b in batches if isinstance(b, dict))
        figures["batches drifted"] = f"{drifted} of {len(batches)}"
    for key, value in run_figures(results).items():
        figures.setdefault(names.get(key, key), value)
    return figures


def format_figures(figures: dict[str, int | float | str]) -> str:
    """``name=value, ...``; floats to 4 significant digits."""
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in figures.items())


class CurationOverviewPanel(RebuildingPanel):
    """Class balance per split and the curation runs recorded on the dataset."""

    @property
    def config(self):
        return foo.PanelConfig(name="curation_overview", label="Curation overview", surfaces="grid",
                               icon="insights")

    def _refresh(self, ctx):
        if ctx.dataset is None:
            return
        data = overview_data(ctx.dataset)
        ctx.panel.set_data("class_counts", data["traces"])
        ctx.panel.set_data("runs", data["runs"])
        ctx.panel.set_state("num_samples", data["num_samples"])

    def render(self, ctx):
        panel = types.Object()
        n = int(ctx.panel.get_state("num_samples", 0) or 0)
        panel.md(f"**{n:,} samples.** Class counts per split and the curation runs recorded so far.", name="header")
        panel.plot(
            "class_counts",
            layout={"title": {"text": "Samples per class and split"}, "barmode": "group", "height": 380,
                    "margin": {"t": 56, "l": 56, "r": 16, "b": 48}, "showlegend": True,
                    "legend": {"title": {"text": "split"}},
                    "xaxis": {"title": {"text": "class"}, "type": "category"},
                    "yaxis": {"title": {"text": "samples"}}},
            config={"displayModeBar": False},
        )
        table = types.TableView()
        table.add_column("key", label="Run")
        table.add_column("kind", label="Kind")
        table.add_column("created_at", label="Created (UTC)")
        table.add_column("figures", label="Figures")
        panel.list("runs", types.Object(), view=table)
        panel.btn("refresh", label="Refresh", on_click=self.on_refresh)
        return types.Property(panel, view=types.GridView(orientation="vertical", height=100, width=100))
