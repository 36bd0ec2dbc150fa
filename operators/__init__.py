"""FiftyOne plugin entry point (``py_entry`` in fiftyone.yml): registers every operator and panel."""

from __future__ import annotations

from curation_app.active_learning_panel import ActiveLearningPanel, IngestAnnotations, RunRound
from curation_app.bias_panel import BiasPanel, ComputeBias
from curation_app.drift_panel import ComputeDrift, DriftPanel
from curation_app.label_issues import (AcceptSuggestedLabels, FindLabelIssues, LabelIssuesPanel, SendToReview,
                                       UndoLabelChange)
from curation_app.model_ops import ComputeModelOutputs, RunCheck
from curation_app.overview_panel import CurationOverviewPanel

OPERATORS = (
    ComputeModelOutputs,
    RunCheck,
    FindLabelIssues,
    AcceptSuggestedLabels,
    UndoLabelChange,
    SendToReview,
    RunRound,
    IngestAnnotations,
    ComputeBias,
    ComputeDrift,
    CurationOverviewPanel,
    LabelIssuesPanel,
    ActiveLearningPanel,
    BiasPanel,
    DriftPanel,
)


def register(plugin) -> None:
    """Called by FiftyOne when it loads the plugin."""
    for cls in OPERATORS:
        plugin.register(cls)
