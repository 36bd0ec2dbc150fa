"""Active learning in the App: operators to run a round and to ingest (delegable), and a panel with the curve."""

from __future__ import annotations

import fiftyone.operators as foo
import fiftyone.operators.types as types

from active_learning.errors import CurationError
from active_learning.loop.rounds import LOOP_RUN_KEY, ingest_current_round, list_rounds, load_config, round_progress, run_round
from active_learning.progress import with_eta
from curation_app.common import RebuildingPanel, delegable_config, reported, show_error

PLUGIN = "@curation/fiftyone-curation"


def _secrets(ctx) -> dict | None:
    return {k: ctx.secrets.get(k) for k in ("LABEL_STUDIO_URL", "LABEL_STUDIO_API_KEY")} if ctx.secrets else None


def _client(ctx):
    from active_learning.label_studio.connection import connect, resolve_settings

    return connect(resolve_settings(secrets=_secrets(ctx)))


def label_studio_url(secrets: dict | None = None) -> str:
    """Where people open Label Studio (the configured URL; no key needed, nothing is contacted)."""
    import os

    from active_learning.label_studio.connection import DEFAULT_URL, URL_VARIABLE, normalize_url

    url = os.environ.get(URL_VARIABLE) or (secrets or {}).get(URL_VARIABLE) or DEFAULT_URL
    try:
        return normalize_url(url)
    except CurationError:
        return DEFAULT_URL


def active_learning_data(dataset, ls_url: str | None = None) -> dict | None:
    """The loop's learning curve and its rounds' state, rebuilt from the ``al_*`` runs; None without a loop.

    A loop has one strategy for all its rounds, so the curve is one trace (test accuracy against the number of
    labels after each finished round), named after the strategy.

    Each round's pushed, annotated, skipped and pre-annotated tasks come from its record (updated at every look at
    Label Studio: a round, an ingest); its ingested labels are counted in the database now.
    """
    if LOOP_RUN_KEY not in dataset.list_runs():
        return None
    config, project_id = load_config(dataset)
    rounds = list_rounds(dataset)
    finished = [state for state in rounds if state.step == "done" and state.accuracy is not None]
    traces = [{"type": "scatter", "mode": "lines+markers", "name": config.strategy,
               "x": [state.num_labeled for state in finished],
               "y": [round(state.accuracy, 4) for state in finished]}] if finished else []
    table = []
    for state in rounds:
        figures = round_progress(dataset, state)
        table.append({"round": state.index, "strategy": state.strategy, "step": state.step,
                      "pushed": figures.pushed, "pre_annotated": figures.with_prediction,
                      "annotated": figures.annotated, "skipped": figures.skipped, "ingested": figures.ingested,
                      "labels": state.num_labeled if state.step == "done" else "",
                      "accuracy": "" if state.accuracy is None else f"{state.accuracy:.4f}"})
    current = rounds[-1] if rounds else None
    url = ls_url or label_studio_url()
    return {"traces": traces, "rounds": table, "project_id": project_id, "strategy": config.strategy,
            "batch_size": config.batch_size, "current_step": current.step if current else "not started",
            "current_round": current.index if current else None,
            "current": table[-1] if table else None,
            "project_url": f"{url}/projects/{project_id}/data" if project_id is not None else None}


def ingest_now(ctx):
    """Ingest the finished annotations of the current round (idempotent) and say so in the App."""
    report = ingest_current_round(ctx.dataset, _client(ctx))
    skipped = f", {report.skipped_tasks} tasks skipped" if report.skipped_tasks else ""
    ctx.ops.notify(f"Ingested {report.new} new annotations ({report.unchanged} already in{skipped}).",
                   variant="success")
    return report


class RunRound(foo.Operator):
    """Run or resume the current active-learning round as far as it can go."""

    @property
    def config(self):
        return delegable_config("al_round", "Curation: run an active-learning round", delegate_by_default=True)

    def resolve_input(self, ctx):
        inputs = types.Object()
        if ctx.dataset is None or LOOP_RUN_KEY not in ctx.dataset.list_runs():
            show_error(inputs, "no_loop", "No active-learning loop", "Run `curation al init DATASET` first.")
            return types.Property(inputs)
        inputs.str("simulate_annotator", required=False, label="Simulated annotator field (optional)",
                   description="answer tasks from this hidden truth field (demos only)")
        return types.Property(inputs)

    def execute(self, ctx):
        def work() -> dict:
            progress = with_eta(lambda fraction, message: ctx.set_progress(progress=fraction, label=message))
            state = run_round(ctx.dataset, _client(ctx), simulate_field=ctx.params.get("simulate_annotator") or None,
                              progress=progress)
            return {"round": state.index, "step": state.step, "accuracy": state.accuracy}

        return reported(ctx, work, lease=False)  # the round takes the lease step by step


class IngestAnnotations(foo.Operator):
    """Ingest the finished Label Studio annotations now (idempotent)."""

    @property
    def config(self):
        return delegable_config("al_ingest", "Curation: ingest Label Studio annotations")

    def execute(self, ctx):
        def work() -> dict:
            report = ingest_now(ctx)
            return {"new": report.new, "unchanged": report.unchanged, "invalid": report.invalid}

        return reported(ctx, work, lease=False)  # the ingest takes the lease (and waits for it)


class ActiveLearningPanel(RebuildingPanel):
    """The learning curve (accuracy vs labels) and the state of the rounds."""

    @property
    def config(self):
        return foo.PanelConfig(name="active_learning", label="Active learning", surfaces="grid", icon="school")

    def _refresh(self, ctx):
        try:
            data = (active_learning_data(ctx.dataset, label_studio_url(_secrets(ctx)))
                    if ctx.dataset is not None else None)
        except CurationError as exc:
            ctx.ops.notify(str(exc), variant="error")
            data = None
        ctx.panel.set_state("has_loop", data is not None)
        if data is None:
            return
        ctx.panel.set_data("curve", data["traces"])
        ctx.panel.set_data("rounds", data["rounds"])
        ctx.panel.set_state("header", data)

    def run_round(self, ctx):
        """Open the round operator's form: training can take long, so the App offers to delegate it."""
        ctx.prompt(f"{PLUGIN}/al_round")

    def ingest(self, ctx):
        """Ingest now, in the panel's own request (a few seconds: one fetch, one bulk write), then redraw."""
        try:
            ingest_now(ctx)
        except CurationError as exc:
            ctx.ops.notify(str(exc), variant="error")
            return
        ctx.ops.reload_dataset()
        self._refresh(ctx)

    def render(self, ctx):
        panel = types.Object()
        if not ctx.panel.get_state("has_loop"):
            panel.md("No active-learning loop on this dataset yet: run `curation al init DATASET`, then press "
                     "Refresh.", name="empty")
            panel.btn("refresh", label="Refresh", on_click=self.on_refresh)
            return types.Property(panel, view=types.GridView(orientation="vertical", height=100, width=100))
        header = ctx.panel.get_state("header", {})
        project = (f"[Label Studio project {header.get('project_id')}]({header['project_url']})"
                   if header.get("project_url") else f"Label Studio project {header.get('project_id')}")
        panel.md(f"**Strategy** {header.get('strategy')} · **batch** {header.get('batch_size')} · {project} · "
                 f"**current round** {header.get('current_round')}: {header.get('current_step')}", name="header_md")
        current = header.get("current")
        if current and current.get("pushed"):
            panel.md(f"**Round {current['round']} annotation:** {current['annotated']} annotated, "
                     f"{current['skipped']} skipped, {current['ingested']} ingested of {current['pushed']} pushed "
                     f"({current['pre_annotated']} pre-annotated)", name="progress_md")
        buttons = panel.h_stack("buttons", align_x="left", gap=2)
        buttons.btn("run", label="Run / resume round", on_click=self.run_round)
        buttons.btn("ingest", label="Ingest annotations now", on_click=self.ingest)
        buttons.btn("refresh", label="Refresh", on_click=self.on_refresh)
        panel.plot("curve", layout={"title": {"text": "Test accuracy vs labels"}, "height": 340,
                                    "margin": {"t": 50, "l": 60, "r": 20, "b": 50},
                                    "xaxis": {"title": {"text": "labels"}},
                                    "yaxis": {"title": {"text": "accuracy"}, "range": [0, 1]}},
                   config={"displayModeBar": False})
        table = types.TableView()
        for key in ("round", "strategy", "step", "pushed", "pre_annotated", "annotated", "skipped", "ingested",
                    "labels", "accuracy"):
            table.add_column(key, label=key.replace("_", "-").capitalize())
        panel.list("rounds", types.Object(), view=table)
        return types.Property(panel, view=types.GridView(orientation="vertical", height=100, width=100))
