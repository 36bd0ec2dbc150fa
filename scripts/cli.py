"""The ``curation`` command line: import data, compute the fixed model's outputs, run checks, the demo, the App."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

from active_learning.errors import CurationError
from curation_cli import reports

DEMO_DATASET = "curation-demo"
PLUGIN_LINK_NAME = "fiftyone-curation"


def _progress_bar(desc: str) -> tuple[Callable[[float, str], None], Callable[[], None]]:
    from tqdm import tqdm

    bar = tqdm(total=100, desc=desc, bar_format="{percentage:3.0f}%|{bar:30}| {elapsed}<{remaining} {desc}")

    def update(fraction: float, message: str) -> None:
        bar.n = round(100 * fraction, 1)
        bar.set_description_str(f"{desc}: {message}"[:70], refresh=False)
        bar.refresh()

    return update, bar.close


def _csv(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def _ints(value: str) -> list[int]:
    """``--seeds 0,1,2``: one or more comma-separated non-negative integers."""
    try:
        seeds = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        seeds = None
    if not seeds or any(seed < 0 for seed in seeds):
        raise argparse.ArgumentTypeError(f"expected one or more comma-separated non-negative integers (e.g. 0,1,2), "
                                         f"got {value!r}")
    return seeds


def _seed_list(value: str) -> list[int]:
    """``--seed 3``: one non-negative integer, as a one-seed list."""
    return [_at_least(0, "a seed")(value)]


def _at_least(minimum: int, what: str = "an integer") -> Callable[[str], int]:
    """An argparse type: an integer of at least ``minimum``."""
    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            number = None
        if number is None or number < minimum:
            raise argparse.ArgumentTypeError(f"expected {what} of at least {minimum}, got {value!r}")
        return number

    parse.__name__ = f"integer >= {minimum}"
    return parse


def _fraction(value: str) -> float:
    """A share in [0, 1)."""
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if not 0.0 <= number < 1.0:
        raise argparse.ArgumentTypeError(f"expected a fraction from 0 up to (not including) 1, e.g. 0.2; "
                                         f"got {value!r}")
    return number


def _class_names(value: str) -> str:
    """``--classes a,b,c``: distinct non-empty names (returned as given, split by ``_csv``)."""
    names = _csv(value) or []
    if not names or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"expected distinct comma-separated class names (e.g. cat,dog), got {value!r}")
    return value


def _load(name: str):
    import fiftyone as fo

    if not fo.dataset_exists(name):
        datasets = ", ".join(fo.list_datasets()) or "none"
        raise CurationError(f"Dataset {name!r} does not exist (datasets: {datasets}); create it with `curation import`.")
    return fo.load_dataset(name)


# -- commands ----------------------------------------------------------------------------------------------
def cmd_import(args: argparse.Namespace) -> int:
    from active_learning.importers import import_dataset

    started = time.perf_counter()
    dataset = import_dataset(
        args.name, args.data, test_fraction=args.test_fraction, pool_fraction=args.pool_fraction,
        max_per_split=args.max_per_split, classes=_csv(args.classes), seed=args.seed, overwrite=args.overwrite,
        media_dir=args.media_dir, progress=True,
    )
    reports.print_dataset(dataset)
    print(f"Imported in {time.perf_counter() - started:.1f} s.")
    return 0


def _asked_recipe(view, args: argparse.Namespace, seed: int, always: bool):
    """The recipe the command line asks for (``--recipe``, ``--epochs``, ``--image-size`` over the dataset's or the
    default one), or None when it asks for nothing and ``always`` is False (reuse what is stored)."""
    from active_learning.predictions import resolve_recipe, stored_recipe

    name = getattr(args, "recipe", None) or "auto"
    if not always and name == "auto" and not args.epochs and not getattr(args, "image_size", None):
        return None
    recipe = resolve_recipe(view, name, epochs=args.epochs or None, image_size=getattr(args, "image_size", None),
                            seed=seed)
    stored = stored_recipe(view._dataset)
    if stored is not None and stored.name != recipe.name:
        print(f"Recipe {recipe.name!r} replaces this dataset's {stored.name!r}: the new run's probabilities and "
              "checkpoint replace the old ones (recorded in the run).")
    return recipe


def _own_model(view, args: argparse.Namespace, test_view=None):
    """The user's own model (``--embeddings-field`` with a K-fold head, or ``--predictions-field``), or None."""
    from active_learning.own_model import Head, compute_head_outputs, import_predictions

    embeddings_field = getattr(args, "embeddings_field", None)
    predictions_field = getattr(args, "predictions_field", None)
    backbone = getattr(args, "backbone", None)
    if sum(bool(x) for x in (embeddings_field, predictions_field, backbone)) > 1:
        from active_learning.errors import InputError

        raise InputError("Give one of --embeddings-field, --predictions-field and --backbone, not several.")
    if backbone:
        from active_learning.backbones import compute_backbone_embeddings

        if not args.weights:
            from active_learning.errors import InputError

            raise InputError("--backbone needs --weights FILE: the state dict of your pretrained model (nothing is "
                             "downloaded).")
        embedded = compute_backbone_embeddings(view._dataset, backbone, args.weights, image_size=args.backbone_size,
                                               device=args.device)
        print(f"Backbone {backbone}: {embedded.num_images} images -> {embedded.dimension}-d features in "
              f"{embedded.field!r} ({'reused' if embedded.reused else f'{embedded.seconds:.0f} s'}).")
        embeddings_field = embedded.field
    if embeddings_field:
        seeds = args.seeds or [0]
        return compute_head_outputs(view, embeddings_field, label_field=args.label_field, folds=args.folds or 5,
                                    seeds=seeds, head=Head(args.head, seed=seeds[0]), test_view=test_view)
    if predictions_field:
        return import_predictions(view, predictions_field, label_field=args.label_field,
                                  out_of_sample=args.out_of_sample)
    return None


def _run_model(dataset, args: argparse.Namespace):
    from active_learning.predictions import compute_model_outputs

    view = dataset.match_tags(args.train_tag) if args.train_tag else dataset
    test_view = dataset.match_tags(args.test_tag) if args.test_tag else None
    if test_view is not None and not len(test_view):
        test_view = None
    own = _own_model(view, args, test_view)
    if own is not None:
        return own
    recipe = _asked_recipe(view, args, args.seeds[0], always=True)
    fit_view = _fit_view(dataset, args.fit_tag)
    update, close = _progress_bar("Model (K-fold)" if fit_view is None else f"Model (trained on {args.fit_tag!r})")
    try:
        summary = compute_model_outputs(view, label_field=args.label_field, folds=args.folds, seeds=args.seeds,
                                        recipe=recipe, device=args.device, test_view=test_view, progress=update,
                                        fit_view=fit_view, tta_px=args.tta_px)
    finally:
        close()
    return summary


def _fit_view(dataset, tag: str):
    """The samples tagged ``tag`` to train on (a disjoint split), or None for K-fold."""
    if not tag:
        return None
    view = dataset.match_tags(tag)
    if not len(view):
        from active_learning.errors import DataError

        raise DataError(f"No sample is tagged {tag!r} to train on: tag the training split, or drop --fit-tag "
                        "to use K-fold.")
    return view


def cmd_model(args: argparse.Namespace) -> int:
    summary = _run_model(_load(args.dataset), args)
    reports.print_model(summary)
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from curation_checks.io import run_check

    result = run_check(_load(args.dataset), args.check, label_field=args.label_field)
    reports.print_check(result)
    return 0


def _announce(message: str) -> None:
    """Print what will be trained and why above the progress bar, before the training starts."""
    from tqdm import tqdm

    tqdm.write(f"{message[:1].upper()}{message[1:]}.")


def cmd_label_errors(args: argparse.Namespace) -> int:
    from curation_checks.pipelines import find_label_issues, label_issues_scope

    dataset = _load(args.dataset)
    if args.tag and args.all:
        raise CurationError("Give --tag or --all, not both.")
    fit_view = _fit_view(dataset, args.fit_tag)
    scope = label_issues_scope(dataset.match_tags(args.tag) if args.tag else dataset, all_samples=args.all,
                               fit_view=fit_view)
    print(f"Label issues: scoring {scope.description}" + ("; use --tag/--all to choose." if scope.default else "."))
    view = scope.view
    own = _own_model(view, args)
    if own is not None:
        reports.print_model(own)
    seed = args.seeds[0] if args.seeds else 0
    update, close = _progress_bar("Label issues")
    try:
        if own is not None:  # the user's embeddings head or predictions, as they are
            report = find_label_issues(view, label_field=args.label_field, top=args.top, progress=update,
                                       rank_method=args.rank_method, announce=_announce)
        else:
            recipe = _asked_recipe(view, args, seed, always=False)  # None: the stored run's, or the default
            report = find_label_issues(view, label_field=args.label_field, folds=args.folds, seeds=args.seeds,
                                       recipe=recipe, device=args.device, recompute=args.recompute, top=args.top,
                                       progress=update, fit_view=fit_view, tta_px=args.tta_px,
                                       rank_method=args.rank_method, announce=_announce)
    finally:
        close()
    if report.recomputed_because:
        print(f"Recomputed the out-of-sample probabilities: {'; '.join(report.recomputed_because)}.")
    reports.print_label_issues(dataset.name, report, args.top)
    return 0


def _reference_distribution(text: str | None) -> dict[str, float] | None:
    """``cat=0.3,dog=0.7`` or a JSON file mapping class -> fraction or count."""
    if not text:
        return None
    if text.endswith(".json"):
        import json

        try:
            data = json.loads(Path(text).read_text())
        except (OSError, ValueError) as exc:
            raise CurationError(f"Cannot read the reference distribution {text!r}: {exc}") from None
        if not isinstance(data, dict):
            raise CurationError(f"{text!r} must hold a JSON object mapping class -> fraction or count.")
        return data
    out: dict[str, float] = {}
    for item in _csv(text) or []:
        name, eq, value = item.rpartition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            name = ""
        if not eq or not name.strip():
            raise CurationError(f"Reference distribution item {item!r}: write CLASS=FRACTION (e.g. cat=0.3,dog=0.7) "
                                "or give a .json file.")
    return out


def cmd_bias(args: argparse.Namespace) -> int:
    from curation_checks.bias_report import compute_bias, format_bias_report

    from active_learning.predictions import DEFAULT_RUN_KEY
    from curation_checks.drift_report import fill_model_outputs

    dataset = _load(args.dataset)
    view = dataset.match_tags(args.tag) if args.tag else dataset
    if not args.no_fill and DEFAULT_RUN_KEY in dataset.list_runs():
        filled = fill_model_outputs(view, device=args.device)
        if filled:
            print(f"Computed the final model's outputs for {filled} samples that had none (out-of-sample: it never "
                  "trained on them).")
    report = compute_bias(view, label_field=args.label_field, slice_fields=_csv(args.slice_fields),
                          image_stats=not args.no_image_stats,
                          reference_distribution=_reference_distribution(args.reference_distribution),
                          n_groups=args.groups, random_state=args.seed, min_size=args.min_size, alpha=args.alpha,
                          crosses=not args.no_crosses)
    print(format_bias_report(report, top=args.top))
    print(f"Stored: run 'bias', fields bias_group and image_*; open the App's 'Bias' panel "
          f"(.venv/bin/curation app {dataset.name}).")
    return 0


def cmd_drift(args: argparse.Namespace) -> int:
    from curation_checks.drift_report import compute_drift, fill_model_outputs, format_drift_report

    dataset = _load(args.dataset)
    if not args.no_fill:
        filled = fill_model_outputs(dataset, device=args.device)
        if filled:
            print(f"Computed the final model's outputs for {filled} samples that had none.")
    report = compute_drift(dataset, args.reference, args.target, n_permutations=args.permutations, alpha=args.alpha,
                           random_state=args.seed, label_field=args.label_field or None, ood_metric=args.ood_metric)
    print(format_drift_report(report))
    print(f"Stored: run 'drift', fields drift_ood_score, drift_is_ood, drift_batch; open the App's 'Drift' panel "
          f"(.venv/bin/curation app {dataset.name}).")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Import real data (sklearn digits by default) and run every capability the product has so far."""
    from active_learning.importers import import_dataset
    from curation_checks.io import run_check

    started = time.perf_counter()
    print("== 1/5 Import")
    dataset = import_dataset(args.name, args.data, max_per_split=args.max_per_split, overwrite=args.overwrite,
                             progress=True)
    reports.print_dataset(dataset)
    print("\n== 2/5 Class balance")
    reports.print_check(run_check(dataset.match_tags("train"), "class_balance", label_field=args.label_field))
    print("\n== 3/5 Fixed model: out-of-sample probabilities (K-fold) and a final model")
    reports.print_model(_run_model(dataset, args))
    print("\n== 4/5 Label errors, near-duplicates, outliers")
    from curation_checks.pipelines import find_label_issues

    train = dataset.match_tags(args.train_tag) if args.train_tag else dataset
    reports.print_label_issues(dataset.name, find_label_issues(train, label_field=args.label_field, top=10), 10)
    print("\n== 5/5 Bias: per-class metrics, worst slices, underperforming groups (out-of-sample predictions)")
    from curation_checks.bias_report import compute_bias, format_bias_report

    print(format_bias_report(compute_bias(train, label_field=args.label_field), top=3))
    print(f"\nDemo finished in {time.perf_counter() - started:.0f} s. Everything is stored in FiftyOne's MongoDB "
          f"(dataset {dataset.name!r}: fields model_*, class_balance_*, label_issue_*, near_duplicate_*, outlier_*, "
          f"image_*, bias_group; "
          f"runs {', '.join(sorted(dataset.list_runs()))}).")
    print(f"Open it in the App:  .venv/bin/curation app {dataset.name}   (then + -> 'Curation overview' or "
          "'Label issues' or 'Bias')")
    return 0


def plugin_root() -> Path:
    """The checkout holding fiftyone.yml (the plugin), found from this package's location."""
    root = Path(__file__).resolve().parent.parent
    if not (root / "fiftyone.yml").is_file():
        raise CurationError(f"fiftyone.yml not found beside {root}; install the project from its checkout "
                            "(pip install -e .) to use it as a FiftyOne plugin.")
    return root


def ensure_plugin_linked() -> Path:
    """Link the checkout into FiftyOne's plugins directory (idempotent); returns the link."""
    import fiftyone as fo

    plugins_dir = Path(fo.config.plugins_dir or Path.home() / "fiftyone" / "__plugins__")
    plugins_dir.mkdir(parents=True, exist_ok=True)
    link = plugins_dir / PLUGIN_LINK_NAME
    target = plugin_root()
    if link.is_symlink() and link.resolve() == target:
        return link
    if link.exists() or link.is_symlink():
        raise CurationError(f"{link} exists and is not a link to {target}; remove it and run again.")
    link.symlink_to(target)
    return link


def cmd_app(args: argparse.Namespace) -> int:
    import fiftyone as fo

    link = ensure_plugin_linked()
    dataset = _load(args.dataset)
    print(f"Plugin linked at {link}.")
    session = fo.launch_app(dataset, remote=True, address=args.address, port=args.port)
    print(f"App running at http://{args.address}:{args.port} - open the panel with + -> 'Curation overview'. "
          "Ctrl-C to stop.")
    session.wait(-1)
    return 0


def _connect(args: argparse.Namespace):
    from active_learning.label_studio import connect, resolve_settings

    return connect(resolve_settings(url=args.ls_url))


def _loop_config(args: argparse.Namespace, dataset=None):
    from active_learning.loop import LoopConfig
    from active_learning.predictions import resolve_recipe

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
    from active_learning.loop import init_loop

    dataset = _load(args.dataset)
    config = _loop_config(args, dataset)
    project_id = init_loop(dataset, config, _connect(args), new_project=args.new_project)
    print(f"Active learning ready on {dataset.name!r}: Label Studio project {project_id}, strategy "
          f"{args.strategy}, recipe {config.recipe_name}, {args.initial_size} random samples first, then "
          f"{args.batch_size} per round.")
    print(f"Next: curation al round {dataset.name} [--simulate-annotator FIELD] [--wait]")
    return 0


def cmd_al_round(args: argparse.Namespace) -> int:
    from active_learning.loop import SimulatedAnnotator, load_config, run_round
    from active_learning.ls_bridge import project_url

    dataset = _load(args.dataset)
    _, project_id = load_config(dataset)  # a clear error before any connection when `al init` was not run
    client = _connect(args)
    annotator = SimulatedAnnotator(skip_fraction=args.simulate_skip, wrong_fraction=args.simulate_wrong,
                                   seed=args.seed)
    for _ in range(args.rounds):
        update, close = _progress_bar("Round")
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
    from active_learning.loop import ingest_current_round, list_rounds, load_config, round_progress

    dataset = _load(args.dataset)
    config, project_id = load_config(dataset)
    live = ""
    if not args.offline:
        try:
            from active_learning.ls_bridge import project_url

            client = _connect(args)
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
    from active_learning.loop import ingest_current_round

    dataset = _load(args.dataset)
    report = ingest_current_round(dataset, _connect(args))
    print(f"Ingested: {report.new} new ({report.changed} changed, {report.confirmed} confirmed), "
          f"{report.unchanged} already ingested, {report.invalid} invalid, {report.cancelled} cancelled, "
          f"{report.skipped_tasks} tasks skipped.")
    for reason, count in report.invalid_reasons.items():
        print(f"  invalid: {reason} ({count})")
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    import fiftyone as fo

    for name in fo.list_datasets():
        dataset = fo.load_dataset(name)
        print(f"{name}: {len(dataset)} samples, runs: {', '.join(sorted(dataset.list_runs())) or '-'}")
    return 0


# -- parser -------------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    from active_learning.model import DEFAULT_TTA_PX, RECIPES
    from curation_checks.label_errors import RANK_METHODS

    tta_help = (f"test-time augmentation: average each image's probabilities over its shifts of up to N pixels "
                f"((2N+1)^2 copies, and their mirror images for the photo recipe; default {DEFAULT_TTA_PX} for the "
                "fast recipe, 0 (the mirror image only) for photo)")

    def own_model_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--embeddings-field", default=None,
                       help="bring your own model: an existing embeddings field (e.g. from FiftyOne's "
                            "compute_embeddings); a K-fold head on it gives the probabilities in seconds")
        p.add_argument("--head", default="logistic", choices=["logistic", "mlp"],
                       help="the head on --embeddings-field (default logistic regression)")
        p.add_argument("--predictions-field", default=None,
                       help="bring your own predictions: a Classification field with logits (or a confidence)")
        p.add_argument("--out-of-sample", action="store_true",
                       help="--predictions-field came from a model that never trained on these samples")
        p.add_argument("--backbone", default=None,
                       help="bring your own backbone: efficientnet_lite0 or torchvision:<model>, with --weights; its "
                            "frozen features (kept in backbone_<arch>_embedding) feed the K-fold head")
        p.add_argument("--weights", default=None, help="the backbone's pretrained state-dict file")
        p.add_argument("--backbone-size", type=_at_least(32), default=224,
                       help="input size of the backbone (default 224)")

    def recipe_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--recipe", default="auto", choices=["auto", *RECIPES],
                       help="the fixed model's recipe: photo (small photos, the default for colour images), fast "
                            "(ResNet-18, the default for grayscale); auto keeps the dataset's recipe once chosen")
        p.add_argument("--image-size", type=_at_least(8), default=None,
                       help="input size in pixels the images load at (default 32; e.g. 64 for larger photos)")

    parser = argparse.ArgumentParser(prog="curation", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def model_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--label-field", default="ground_truth", help="Classification field with the labels")
        p.add_argument("--folds", type=_at_least(2), default=5, help="K of the stratified K-fold (default 5)")
        p.add_argument("--seeds", type=_ints, default=[0], help="comma-separated seeds; several = an ensemble")
        p.add_argument("--epochs", type=_at_least(1), default=None,
                       help="override the fixed recipe's epochs (recorded)")
        p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
        p.add_argument("--tta-px", type=_at_least(0), default=None, help=tta_help)
        recipe_options(p)
        own_model_options(p)
        p.add_argument("--train-tag", default="train", help="tag of the samples to score ('' = all)")
        p.add_argument("--test-tag", default="test", help="tag of the held-out test samples ('' = none)")
        p.add_argument("--fit-tag", default="", help="train on the samples with this tag instead of K-fold (a split "
                                                     "disjoint from the scored samples)")

    p = sub.add_parser("import", help="import an image folder tree, IDX files, a FiftyOne export, or the digits")
    p.add_argument("--data", default=None, help="folder of class subfolders, of IDX files, or a FiftyOne export "
                                                 "(default: scikit-learn's bundled digits)")
    p.add_argument("--name", required=True, help="dataset name")
    p.add_argument("--test-fraction", type=_fraction, default=0.2, help="share tagged test when the source has none")
    p.add_argument("--pool-fraction", type=_fraction, default=0.0, help="share of train tagged pool (active learning)")
    p.add_argument("--max-per-split", type=_at_least(1), default=None, help="seeded subset per IDX file pair")
    p.add_argument("--classes", type=_class_names, default=None, help="comma-separated class names for IDX files")
    p.add_argument("--media-dir", default=None, help="where array images are written as PNG")
    p.add_argument("--seed", type=_at_least(0, "a seed"), default=0)
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset of that name")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("model", help="out-of-sample probabilities (K-fold), predictions, embeddings, checkpoint")
    p.add_argument("dataset")
    model_options(p)
    p.set_defaults(func=cmd_model)

    from curation_checks.registry import available_checks

    p = sub.add_parser("check", help="run a registered curation check")
    p.add_argument("dataset")
    p.add_argument("check", choices=available_checks())
    p.add_argument("--label-field", default="ground_truth")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("label-errors", help="rank likely label errors (cleanlab on out-of-sample probabilities), "
                                            "near-duplicates and outliers")
    p.add_argument("dataset")
    p.add_argument("--label-field", default="ground_truth", help="Classification field with the labels")
    p.add_argument("--folds", type=_at_least(2), default=None, help="K of the stratified K-fold (default 5)")
    p.add_argument("--seed", dest="seeds", type=_seed_list, default=None, help="training and fold seed (0)")
    p.add_argument("--seeds", dest="seeds", type=_ints, help="several comma-separated seeds: an ensemble")
    p.add_argument("--epochs", type=_at_least(1), default=None, help="override the fixed recipe's epochs (recorded)")
    p.add_argument("--tta-px", type=_at_least(0), default=None, help=tta_help + "; stored probabilities made with "
                   "other --folds/--seeds/--epochs/--tta-px/--recipe are recomputed, unset ones reuse what is stored")
    recipe_options(p)
    own_model_options(p)
    p.add_argument("--rank-method", default="self_confidence", choices=RANK_METHODS,
                   help="cleanlab label quality score that ranks the suspects (default self_confidence)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    p.add_argument("--tag", default="", help="only samples with this tag (default: the samples that have "
                                             "out-of-sample probabilities from the model run, else all)")
    p.add_argument("--all", action="store_true", help="score all samples (those without out-of-sample "
                                                      "probabilities start a K-fold training over all of them)")
    p.add_argument("--fit-tag", default="", help="train on the samples with this tag (disjoint from --tag) instead "
                                                 "of K-fold, e.g. --tag test --fit-tag train")
    p.add_argument("--top", type=_at_least(0), default=15, help="how many suspects to print")
    p.add_argument("--recompute", action="store_true", help="recompute the probabilities even if present")
    p.set_defaults(func=cmd_label_errors)

    p = sub.add_parser("bias", help="per-class metrics, class balance, worst slices (with CIs) and underperforming "
                                    "embedding groups from out-of-sample predictions")
    p.add_argument("dataset")
    p.add_argument("--label-field", default="ground_truth", help="Classification field with the labels")
    p.add_argument("--tag", default="", help="only samples with this tag (default: all)")
    p.add_argument("--slice-fields", default=None,
                   help="comma-separated sample fields to slice by (default: image statistics, tags and the label, "
                        "e.g. ground_truth.label)")
    p.add_argument("--no-crosses", action="store_true",
                   help="one-field slices only (default: also the intersections of two slices of different fields, "
                        "e.g. ground_truth.label = 'Shirt' & image_brightness < 0.12)")
    p.add_argument("--no-image-stats", action="store_true", help="do not compute brightness/contrast/size")
    p.add_argument("--reference-distribution", default=None,
                   help="expected class distribution: cat=0.3,dog=0.7 or a .json file (class -> fraction/count)")
    p.add_argument("--groups", type=int, default=None, help="embedding clusters to test (default: by size)")
    p.add_argument("--min-size", type=int, default=20, help="smallest slice or group tested (default 20)")
    p.add_argument("--alpha", type=float, default=0.05, help="family-wise error rate (Holm) of the slice tests")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--top", type=int, default=5, help="how many slices, groups and classes to print")
    p.add_argument("--no-fill", action="store_true",
                   help="do not compute the final model's outputs for samples that have none (e.g. test samples)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    p.set_defaults(func=cmd_bias)

    p = sub.add_parser("drift", help="is a target distributed like the reference? MMD, KS-BBSD, label shift, "
                                     "per-sample OOD scores, per batch")
    p.add_argument("dataset")
    p.add_argument("--reference", required=True, help="tag:TAG or field:FIELD=VALUE (ideally held-out data)")
    p.add_argument("--target", required=True,
                   help="tag:TAG, field:FIELD=VALUE, batch:FIELD (one target per value) or all-but-reference")
    p.add_argument("--permutations", type=int, default=200, help="permutations of the MMD test (default 200)")
    p.add_argument("--alpha", type=float, default=0.05, help="level of each batch's decision (default 0.05)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--label-field", default="ground_truth",
                   help="reference labels for the label-shift estimate ('' = skip the estimate)")
    p.add_argument("--ood-metric", choices=("cosine", "euclidean"), default="cosine",
                   help="k-NN distance of the per-sample OOD score: cosine (directions, default) or euclidean (also "
                        "feature length)")
    p.add_argument("--no-fill", action="store_true",
                   help="do not compute the final model's outputs for samples that have none")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    p.set_defaults(func=cmd_drift)

    p = sub.add_parser("demo", help="import real data and run every capability, printing a summary")
    p.add_argument("--data", default=None, help="as for import (default: scikit-learn's bundled digits)")
    p.add_argument("--name", default=DEMO_DATASET)
    p.add_argument("--max-per-split", type=int, default=None, help="subset per IDX file pair (e.g. 2000)")
    p.add_argument("--overwrite", action="store_true")
    model_options(p)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("app", help="open the FiftyOne App with the plugin on a dataset")
    p.add_argument("dataset")
    p.add_argument("--address", default="127.0.0.1")
    p.add_argument("--port", type=int, default=5151)
    p.set_defaults(func=cmd_app)

    from active_learning.strategies import STRATEGIES

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
                        "photo for colour images and fast for grayscale)")
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

    p = sub.add_parser("datasets", help="list datasets and their curation runs")
    p.set_defaults(func=cmd_datasets)
    return parser


WRITING_COMMANDS = ("import", "model", "check", "label-errors", "bias", "drift")


def _writer_lease(args: argparse.Namespace):
    """The dataset's lease for a command that changes it: one writer per dataset (``active_learning.lease``).

    ``al round`` and ``al ingest`` take it themselves, step by step, so a round waiting for annotators holds none.
    """
    import contextlib

    from active_learning.lease import writer_lease

    name = args.name if args.command == "import" else getattr(args, "dataset", None)
    writes = args.command in WRITING_COMMANDS or (args.command == "al" and args.al_command == "init")
    if not writes or not name:
        return contextlib.nullcontext()
    command = f"curation {args.command}" + (f" {args.al_command}" if args.command == "al" else "")
    return writer_lease(name, command)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``curation`` console script."""
    os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
    # FiftyOne warns that the bundled mongod 6.0 is its oldest supported version; it is the one that runs here.
    os.environ.setdefault("FIFTYONE_DATABASE_VALIDATION", "false")
    args = build_parser().parse_args(argv)
    try:
        with _writer_lease(args):
            return int(args.func(args) or 0)
    except CurationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
