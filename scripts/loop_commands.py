"""``curation al init|round|status|ingest``: the active-learning loop with Label Studio."""

from __future__ import annotations

import argparse

from curation_cli import reports
from curation_cli.common import load_dataset, progress_bar


def connect_label_studio(args: argparse.Namespace):
    from active_learning.label_studio.connection import connect, resolve_settings

    return connect(resolve_settings(url=args.ls_url))


def _loop_config(args: argparse.Namespace, dataset=None):
    from active_learning.loop.state import LoopConfig
    from active_learning.model.outputs import resolve_recipe

    recipe_name = args.recipe
    if recipe_name == "auto":
        recipe_name = resolve_recipe(dataset.match_tags("pool") if len(dataset.match_tags("pool")) else dataset).name
    return LoopConfig(recipe_name=recipe_name, label_field=args.label_field, eval_field=args.eval_field,
                      strategy=args.strategy,
                      batch_size=args.batch_size, initial_size=args.initial_size, seed=args.seed, epochs=args.epochs,
                      **({} if args.min_steps is None else {"min_steps": args.min_steps}),
                      include_review_queue=not args.no_review_queue, project_title=args.project_title or "",
                      media=args.media)


def cmd_al_init(args: argparse.Namespace) -> int:
    from active_learning.loop.rounds import init_loop

    dataset = load_dataset(args.dataset)
    config = _loop_config(args, dataset)
    project_id = init_loop(dataset, config, connect_label_studio(args), new_project=args.new_project)
    print(f"Active learning ready on {dataset.name!r}: Label Studio project {project_id}, strategy "
          f"{args.strategy}, recipe {config.recipe_name}, {args.initial_size} random samples first, then "
          f"{args.batch_size} per round.")
    from active_learning.model.recipes import recipe_note

    if recipe_note(config.recipe_name):
        print(recipe_note(config.recipe_name))
    print(f"Next: curation al round {dataset.name} [--simulate-annotator FIELD] [--wait]")
    return 0


def cmd_al_round(args: argparse.Namespace) -> int:
    from active_learning.label_studio.projects import project_url
    from active_learning.label_studio.simulate import SimulatedAnnotator
    from active_learning.loop.rounds import run_round
    from active_learning.loop.state import load_config

    dataset = load_dataset(args.dataset)
    _, project_id = load_config(dataset)  # a clear error before any connection when `al init` was not run
    client = connect_label_studio(args)
    annotator = SimulatedAnnotator(skip_fraction=args.simulate_skip, wrong_fraction=args.simulate_wrong,
                                   seed=args.seed)
    for _ in range(args.rounds):
        update, close = progress_bar("Round")
        try:
            state = run_round(dataset, client, simulate_field=args.simulate_annotator, wait=args.wait,
                              poll_seconds=args.poll_seconds, timeout_seconds=args.timeout, progress=update,
                              annotator=annotator)
        finally:
            close()
        reports.print_round(state, dataset.name, project_url(client, project_id))
        if state.step != "done":
            return 0
    return 0


def cmd_al_status(args: argparse.Namespace) -> int:
    from active_learning.errors import LabelStudioError
    from active_learning.loop.rounds import ingest_current_round, round_progress
    from active_learning.loop.state import list_rounds, load_config

    dataset = load_dataset(args.dataset)
    config, project_id = load_config(dataset)
    live = ""
    if not args.offline:
        try:
            from active_learning.label_studio.projects import project_url

            client = connect_label_studio(args)
            ingest_current_round(dataset, client)  # also counts the open round's annotated and skipped tasks now
            live = project_url(client, project_id)
        except LabelStudioError as error:
            live = ""
            print(f"(Label Studio not reached, figures as last recorded: {error})")
    rounds = list_rounds(dataset)
    print(f"Loop on {dataset.name!r}: strategy {config.strategy}, batch {config.batch_size}, label field "
          f"{config.label_field!r}, Label Studio project {project_id}" + (f" ({live})" if live else ""))
    if not rounds:
        print("  no rounds yet")
    for state in rounds:
        reports.print_round_status(state, round_progress(dataset, state))
    return 0


def cmd_al_ingest(args: argparse.Namespace) -> int:
    from active_learning.loop.rounds import ingest_current_round

    dataset = load_dataset(args.dataset)
    report = ingest_current_round(dataset, connect_label_studio(args))
    print(f"Ingested: {report.new} new ({report.changed} changed, {report.confirmed} confirmed), "
          f"{report.unchanged} already ingested, {report.invalid} invalid, {report.cancelled} cancelled, "
          f"{report.skipped_tasks} tasks skipped.")
    for reason, count in report.invalid_reasons.items():
        print(f"  invalid: {reason} ({count})")
    return 0


def add_commands(sub) -> None:
    """The ``al`` subcommand and its own subcommands."""
    from active_learning.model.fixed import RECIPES

    from active_learning.loop.strategies import STRATEGIES

    al = sub.add_parser("al", help="active learning with Label Studio: init, round, status, ingest")
    al_sub = al.add_subparsers(dest="al_command", required=True)

    def ls_option(p: argparse.ArgumentParser) -> None:
        p.add_argument("--ls-url", default=None, help="Label Studio URL (default: LABEL_STUDIO_URL); the token "
                                                      "comes from LABEL_STUDIO_API_KEY or FiftyOne secrets")

    p = al_sub.add_parser("init", help="set up the loop and the Label Studio project")
    p.add_argument("dataset")
    p.add_argument("--label-field", default="ground_truth", help="where human labels go")
    p.add_argument("--eval-field", default="ground_truth", help="labels of the test view")
    p.add_argument("--strategy", default="margin", choices=sorted(STRATEGIES))
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--initial-size", type=int, default=100, help="random samples in round 0")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=None, help="override the fixed recipe's epochs (recorded)")
    p.add_argument("--min-steps", type=int, default=None,
                   help="train every round for at least this many optimizer steps (recorded; default 1000; "
                        "0 trains exactly --epochs)")
    p.add_argument("--no-review-queue", action="store_true", help="do not push samples queued for review")
    p.add_argument("--project-title", default=None)
    p.add_argument("--media", default="auto", choices=["auto", "local-files", "upload"])
    p.add_argument("--recipe", default="auto", choices=["auto", *RECIPES],
                   help="the loop's fixed recipe, kept for every round (auto: the dataset's model-run recipe, else "
                        "photo for colour images (photo-lite on a CPU without bfloat16 units) and fast for "
                        "grayscale)")
    p.add_argument("--new-project", action="store_true", help="make a new project if the old one was deleted")
    ls_option(p)
    p.set_defaults(func=cmd_al_init)

    p = al_sub.add_parser("round", help="run or resume rounds: select, push, annotate, ingest, retrain, evaluate")
    p.add_argument("dataset")
    p.add_argument("--rounds", type=int, default=1, help="how many rounds to run")
    p.add_argument("--simulate-annotator", default=None, metavar="FIELD",
                   help="answer tasks through the Label Studio API from this hidden truth field (demos, benchmarks)")
    p.add_argument("--wait", action="store_true", help="poll Label Studio until the round's tasks are annotated")
    p.add_argument("--poll-seconds", type=float, default=10.0)
    p.add_argument("--timeout", type=float, default=None, help="stop waiting after this many seconds")
    p.add_argument("--simulate-skip", type=float, default=0.0, metavar="FRACTION",
                   help="the simulated annotator skips this share of the tasks")
    p.add_argument("--simulate-wrong", type=float, default=0.0, metavar="FRACTION",
                   help="the simulated annotator answers this share of the rest wrongly, on purpose")
    p.add_argument("--seed", type=int, default=0, help="which tasks the simulated annotator skips or gets wrong")
    ls_option(p)
    p.set_defaults(func=cmd_al_round)

    p = al_sub.add_parser("status", help="the rounds so far: pushed, annotated, skipped, ingested, accuracy")
    p.add_argument("dataset")
    p.add_argument("--offline", action="store_true", help="do not ask Label Studio; show the recorded figures")
    ls_option(p)
    p.set_defaults(func=cmd_al_status)

    p = al_sub.add_parser("ingest", help="ingest the finished annotations now (idempotent)")
    p.add_argument("dataset")
    ls_option(p)
    p.set_defaults(func=cmd_al_ingest)
