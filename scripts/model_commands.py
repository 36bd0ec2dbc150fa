"""``curation model``, ``check`` and ``label-errors``: the fixed model's outputs (or your own model's) and checks."""

from __future__ import annotations

import argparse

from active_learning.data.importers import LABEL_FIELD
from active_learning.errors import CurationError
from active_learning.model.recipes import DEFAULT_FOLDS, DEFAULT_SEEDS, DEFAULT_TTA_PX
from curation_cli import reports
from curation_cli.common import announce, at_least, int_list, load_dataset, progress_bar, seed_list


def _asked_recipe(view, args: argparse.Namespace, seed: int, always: bool):
    """The recipe the command line asks for (``--recipe``, ``--epochs``, ``--image-size`` over the dataset's or the
    default one), or None when it asks for nothing and ``always`` is False (reuse what is stored)."""
    from active_learning.model.settings import asked_recipe, recipe_change_note

    recipe = asked_recipe(view, getattr(args, "recipe", None), epochs=args.epochs,
                          image_size=getattr(args, "image_size", None), seed=seed, always=always,
                          device=getattr(args, "device", None))
    note = recipe_change_note(view._dataset, recipe)
    if note:
        print(note)
    return recipe


def _own_model(view, args: argparse.Namespace):
    """The user's own model (``--embeddings-field`` with a K-fold head, ``--backbone`` features with one, or
    ``--predictions-field``), or None for the fixed model; a backbone's features are computed first."""
    from active_learning.errors import InputError
    from active_learning.model.own_model import OwnModel

    embeddings_field = getattr(args, "embeddings_field", None)
    predictions_field = getattr(args, "predictions_field", None)
    backbone = getattr(args, "backbone", None)
    if sum(bool(x) for x in (embeddings_field, predictions_field, backbone)) > 1:
        raise InputError("Give one of --embeddings-field, --predictions-field and --backbone, not several.")
    if backbone:
        from active_learning.model.backbones import compute_backbone_embeddings

        if not args.weights:
            raise InputError("--backbone needs --weights FILE: the state dict of your pretrained model (nothing is "
                             "downloaded).")
        embedded = compute_backbone_embeddings(view._dataset, backbone, args.weights, image_size=args.backbone_size,
                                               device=args.device)
        print(f"Backbone {backbone}: {embedded.num_images} images -> {embedded.dimension}-d features in "
              f"{embedded.field!r} ({'reused' if embedded.reused else f'{embedded.seconds:.0f} s'}).")
        embeddings_field = embedded.field
    if not embeddings_field and not predictions_field:
        return None
    return OwnModel(embeddings_field=embeddings_field, predictions_field=predictions_field, head=args.head,
                    out_of_sample=args.out_of_sample)


def run_model(dataset, args: argparse.Namespace):
    """``curation model`` (and the demo's model step): the fixed model's outputs, or the user's own model's."""
    from active_learning.model.own_model import compute_outputs

    view = dataset.match_tags(args.train_tag) if args.train_tag else dataset
    test_view = dataset.match_tags(args.test_tag) if args.test_tag else None
    if test_view is not None and not len(test_view):
        test_view = None
    own = _own_model(view, args)
    recipe = None if own is not None else _asked_recipe(view, args, args.seeds[0], always=True)
    fit_view = None if own is not None else fit_view_of(dataset, args.fit_tag)
    update, close = progress_bar("Model (K-fold)" if fit_view is None else f"Model (trained on {args.fit_tag!r})")
    try:
        return compute_outputs(view, own, label_field=args.label_field, folds=args.folds, seeds=args.seeds,
                               test_view=test_view, recipe=recipe, device=args.device, fit_view=fit_view,
                               tta_px=args.tta_px, progress=update)
    finally:
        close()


def fit_view_of(dataset, tag: str):
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
    summary = run_model(load_dataset(args.dataset), args)
    reports.print_model(summary)
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from curation_checks.io import run_check

    result = run_check(load_dataset(args.dataset), args.check, label_field=args.label_field)
    reports.print_check(result)
    return 0


def cmd_label_errors(args: argparse.Namespace) -> int:
    from curation_checks.label_issues import find_label_issues, label_issues_scope

    dataset = load_dataset(args.dataset)
    if args.tag and args.all:
        raise CurationError("Give --tag or --all, not both.")
    fit_view = fit_view_of(dataset, args.fit_tag)
    scope = label_issues_scope(dataset.match_tags(args.tag) if args.tag else dataset, all_samples=args.all,
                               fit_view=fit_view)
    print(f"Label issues: scoring {scope.description}" + ("; use --tag/--all to choose." if scope.default else "."))
    view = scope.view
    own = _own_model(view, args)
    update, close = progress_bar("Label issues")
    try:
        recipe = None if own is not None else _asked_recipe(view, args, (args.seeds or DEFAULT_SEEDS)[0],
                                                            always=False)  # None: the stored run's, or the default
        report = find_label_issues(view, label_field=args.label_field, folds=args.folds, seeds=args.seeds,
                                   recipe=recipe, device=args.device, recompute=args.recompute, top=args.top,
                                   progress=update, fit_view=fit_view, tta_px=args.tta_px,
                                   rank_method=args.rank_method, announce=announce, own_model=own,
                                   passes=args.passes)
    finally:
        close()
    if report.own_model is not None:  # the user's embeddings head or predictions, used as they are
        reports.print_model(report.own_model)
    if report.recomputed_because:
        print(f"Recomputed the out-of-sample probabilities: {'; '.join(report.recomputed_because)}.")
    reports.print_label_issues(dataset.name, report, args.top)
    return 0


def tta_help() -> str:
    """The help of ``--tta-px``, with the fast recipe's default."""
    return (f"test-time augmentation: average each image's probabilities over its shifts of up to N pixels "
            f"((2N+1)^2 copies, and their mirror images for the photo recipe; default {DEFAULT_TTA_PX} for the "
            "fast recipe, 0 (the mirror image only) for photo)")


def own_model_options(p: argparse.ArgumentParser) -> None:
    """Bring your own model: embeddings field + head, predictions field, or a backbone with weights."""
    from active_learning.model.own_model import DEFAULT_HEAD, HEADS

    p.add_argument("--embeddings-field", default=None,
                   help="bring your own model: an existing embeddings field (e.g. from FiftyOne's "
                        "compute_embeddings); a K-fold head on it gives the probabilities in seconds")
    p.add_argument("--head", default=DEFAULT_HEAD, choices=HEADS,
                   help="the head on --embeddings-field (default logistic regression)")
    p.add_argument("--predictions-field", default=None,
                   help="bring your own predictions: a Classification field with logits (or a confidence)")
    p.add_argument("--out-of-sample", action="store_true",
                   help="--predictions-field came from a model that never trained on these samples")
    p.add_argument("--backbone", default=None,
                   help="bring your own backbone: efficientnet_lite0 or torchvision:<model>, with --weights; its "
                        "frozen features (kept in backbone_<arch>_embedding) feed the K-fold head")
    p.add_argument("--weights", default=None, help="the backbone's pretrained state-dict file")
    p.add_argument("--backbone-size", type=at_least(32), default=224,
                   help="input size of the backbone (default 224)")


def recipe_options(p: argparse.ArgumentParser) -> None:
    """The recipe and the input size."""
    from active_learning.model.settings import AUTO, RECIPE_CHOICES

    p.add_argument("--recipe", default=AUTO, choices=RECIPE_CHOICES,
                   help="the fixed model's recipe: photo (small photos, the default for colour images), "
                        "photo-lite (photo at half width, the colour default on a CPU without bfloat16 units), "
                        "fast (ResNet-18, the default for grayscale); auto keeps the dataset's recipe once chosen")
    p.add_argument("--image-size", type=at_least(8), default=None,
                   help="input size in pixels the images load at (default 32; e.g. 64 for larger photos)")


def model_options(p: argparse.ArgumentParser) -> None:
    """The options of ``model`` (and ``demo``): labels, K-fold, seeds, recipe, your own model, the splits."""
    p.add_argument("--label-field", default=LABEL_FIELD, help="Classification field with the labels")
    p.add_argument("--folds", type=at_least(2), default=DEFAULT_FOLDS,
                   help=f"K of the stratified K-fold (default {DEFAULT_FOLDS})")
    p.add_argument("--seeds", type=int_list, default=list(DEFAULT_SEEDS),
                   help="comma-separated seeds; several = an ensemble")
    p.add_argument("--epochs", type=at_least(1), default=None,
                   help="override the fixed recipe's epochs (recorded)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    p.add_argument("--tta-px", type=at_least(0), default=None, help=tta_help())
    recipe_options(p)
    own_model_options(p)
    p.add_argument("--train-tag", default="train", help="tag of the samples to score ('' = all)")
    p.add_argument("--test-tag", default="test", help="tag of the held-out test samples ('' = none)")
    p.add_argument("--fit-tag", default="", help="train on the samples with this tag instead of K-fold (a split "
                                                 "disjoint from the scored samples)")


def add_commands(sub) -> None:
    """The ``model``, ``check`` and ``label-errors`` subcommands."""
    from curation_checks.label_errors import DEFAULT_RANK_METHOD, RANK_METHODS

    p = sub.add_parser("model", help="out-of-sample probabilities (K-fold), predictions, embeddings, checkpoint")
    p.add_argument("dataset")
    model_options(p)
    p.set_defaults(func=cmd_model)

    from curation_checks.registry import available_checks

    p = sub.add_parser("check", help="run a registered curation check")
    p.add_argument("dataset")
    p.add_argument("check", choices=available_checks())
    p.add_argument("--label-field", default=LABEL_FIELD)
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("label-errors", help="rank likely label errors (cleanlab on out-of-sample probabilities), "
                                            "near-duplicates and outliers")
    p.add_argument("dataset")
    p.add_argument("--label-field", default=LABEL_FIELD, help="Classification field with the labels")
    p.add_argument("--folds", type=at_least(2), default=None,
                   help=f"K of the stratified K-fold (default: the stored run's, else {DEFAULT_FOLDS})")
    p.add_argument("--seed", dest="seeds", type=seed_list, default=None,
                   help=f"training and fold seed (default: the stored run's, else {DEFAULT_SEEDS[0]})")
    p.add_argument("--seeds", dest="seeds", type=int_list, help="several comma-separated seeds: an ensemble")
    p.add_argument("--epochs", type=at_least(1), default=None, help="override the fixed recipe's epochs (recorded)")
    p.add_argument("--tta-px", type=at_least(0), default=None, help=tta_help() + "; stored probabilities made with "
                   "other --folds/--seeds/--epochs/--tta-px/--recipe are recomputed, unset ones reuse what is stored")
    recipe_options(p)
    own_model_options(p)
    p.add_argument("--rank-method", default=DEFAULT_RANK_METHOD, choices=RANK_METHODS,
                   help=f"cleanlab label quality score that ranks the suspects (default {DEFAULT_RANK_METHOD})")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    p.add_argument("--tag", default="", help="only samples with this tag (default: the samples that have "
                                             "out-of-sample probabilities from the model run, else all)")
    p.add_argument("--all", action="store_true", help="score all samples (those without out-of-sample "
                                                      "probabilities start a K-fold training over all of them)")
    p.add_argument("--fit-tag", default="", help="train on the samples with this tag (disjoint from --tag) instead "
                                                 "of K-fold, e.g. --tag test --fit-tag train")
    p.add_argument("--top", type=at_least(0), default=15, help="how many suspects to print")
    p.add_argument("--recompute", action="store_true", help="recompute the probabilities even if present")
    p.add_argument("--passes", type=int, choices=(1, 2), default=None,
                   help="2: train the folds again without the samples the first pass flags, and score everything "
                        "with those models (better probabilities under noisy labels, twice the training; default: "
                        "what the stored run did, else 1)")
    p.set_defaults(func=cmd_label_errors)
