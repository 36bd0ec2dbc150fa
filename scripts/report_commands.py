"""``curation bias`` and ``curation drift``: where the model underperforms, and whether new data drifted."""

from __future__ import annotations

import argparse
from pathlib import Path

from active_learning.errors import CurationError
from curation_checks.bias.settings import BIAS_DEFAULTS, DEFAULT_TOP, BiasSettings
from curation_checks.drift.settings import DRIFT_DEFAULTS, OOD_METRICS, DriftSettings
from curation_cli.common import csv_list, load_dataset


def reference_distribution(text: str | None) -> dict[str, float] | None:
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
    for item in csv_list(text) or []:
        name, eq, value = item.rpartition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            name = ""
        if not eq or not name.strip():
            raise CurationError(f"Reference distribution item {item!r}: write CLASS=FRACTION (e.g. cat=0.3,dog=0.7) "
                                "or give a .json file.")
    return out


def bias_settings(args: argparse.Namespace) -> BiasSettings:
    """The command line's options as the library's settings."""
    return BiasSettings(label_field=args.label_field, slice_fields=csv_list(args.slice_fields),
                        image_stats=not args.no_image_stats,
                        reference_distribution=reference_distribution(args.reference_distribution),
                        n_groups=args.groups, random_state=args.seed, min_size=args.min_size, alpha=args.alpha,
                        crosses=not args.no_crosses)


def cmd_bias(args: argparse.Namespace) -> int:
    from curation_checks.bias.report import format_bias_report, run_bias

    dataset = load_dataset(args.dataset)
    view = dataset.match_tags(args.tag) if args.tag else dataset
    report = run_bias(view, bias_settings(args), fill=not args.no_fill, device=args.device)
    if report.num_filled:
        print(f"Computed the final model's outputs for {report.num_filled} samples that had none (out-of-sample: it "
              "never trained on them).")
    print(format_bias_report(report, top=args.top))
    print(f"Stored: run 'bias', fields bias_group and image_*; open the App's 'Bias' panel "
          f"(.venv/bin/curation app {dataset.name}).")
    return 0


def drift_settings(args: argparse.Namespace) -> DriftSettings:
    """The command line's options as the library's settings."""
    return DriftSettings(n_permutations=args.permutations, alpha=args.alpha, random_state=args.seed,
                         label_field=args.label_field or None, ood_metric=args.ood_metric)


def cmd_drift(args: argparse.Namespace) -> int:
    from curation_checks.drift.report import format_drift_report, run_drift

    dataset = load_dataset(args.dataset)
    report = run_drift(dataset, args.reference, args.target, drift_settings(args), fill=not args.no_fill,
                       device=args.device)
    if report.num_filled:
        print(f"Computed the final model's outputs for {report.num_filled} samples that had none.")
    print(format_drift_report(report))
    print(f"Stored: run 'drift', fields drift_ood_score, drift_is_ood, drift_batch; open the App's 'Drift' panel "
          f"(.venv/bin/curation app {dataset.name}).")
    return 0


def add_shared_options(p: argparse.ArgumentParser, alpha: float, alpha_help: str, seed: int) -> None:
    """The options bias and drift share: the level, the seed, and the fill step with its device."""
    p.add_argument("--alpha", type=float, default=alpha, help=f"{alpha_help} (default {alpha})")
    p.add_argument("--seed", type=int, default=seed)
    p.add_argument("--no-fill", action="store_true",
                   help="do not compute the final model's outputs for samples that have none (e.g. test samples)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")


def add_commands(sub) -> None:
    """The ``bias`` and ``drift`` subcommands."""
    p = sub.add_parser("bias", help="per-class metrics, class balance, worst slices (with CIs) and underperforming "
                                    "embedding groups from out-of-sample predictions")
    p.add_argument("dataset")
    p.add_argument("--label-field", default=BIAS_DEFAULTS.label_field, help="Classification field with the labels")
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
    p.add_argument("--groups", type=int, default=BIAS_DEFAULTS.n_groups,
                   help="embedding clusters to test (default: by size; 0: no group search)")
    p.add_argument("--min-size", type=int, default=BIAS_DEFAULTS.min_size,
                   help=f"smallest slice or group tested (default {BIAS_DEFAULTS.min_size})")
    add_shared_options(p, BIAS_DEFAULTS.alpha, "family-wise error rate (Holm) of the slice tests",
                       BIAS_DEFAULTS.random_state)
    p.add_argument("--top", type=int, default=DEFAULT_TOP, help="how many slices, groups and classes to print")
    p.set_defaults(func=cmd_bias)

    p = sub.add_parser("drift", help="is a target distributed like the reference? MMD, KS-BBSD, label shift, "
                                     "per-sample OOD scores, per batch")
    p.add_argument("dataset")
    p.add_argument("--reference", required=True, help="tag:TAG or field:FIELD=VALUE (ideally held-out data)")
    p.add_argument("--target", required=True,
                   help="tag:TAG, field:FIELD=VALUE, batch:FIELD (one target per value) or all-but-reference")
    p.add_argument("--permutations", type=int, default=DRIFT_DEFAULTS.n_permutations,
                   help=f"permutations of the MMD test (default {DRIFT_DEFAULTS.n_permutations})")
    add_shared_options(p, DRIFT_DEFAULTS.alpha, "level of each batch's decision", DRIFT_DEFAULTS.random_state)
    p.add_argument("--label-field", default=DRIFT_DEFAULTS.label_field,
                   help="reference labels for the label-shift estimate ('' = skip the estimate)")
    p.add_argument("--ood-metric", choices=OOD_METRICS, default=DRIFT_DEFAULTS.ood_metric,
                   help="k-NN distance of the per-sample OOD score: cosine (directions, default) or euclidean (also "
                        "feature length)")
    p.set_defaults(func=cmd_drift)
