"""``curation import``, ``demo``, ``app`` and ``datasets``: data in, everything at once, the App."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from active_learning.errors import CurationError
from curation_cli import reports
from curation_cli.common import at_least, class_names, csv_list, fraction, load_dataset
from curation_cli.model_commands import model_options, run_model

DEMO_DATASET = "curation-demo"
PLUGIN_LINK_NAME = "fiftyone-curation"


def cmd_import(args: argparse.Namespace) -> int:
    from active_learning.data.importers import import_dataset

    started = time.perf_counter()
    dataset = import_dataset(
        args.name, args.data, test_fraction=args.test_fraction, pool_fraction=args.pool_fraction,
        max_per_split=args.max_per_split, classes=csv_list(args.classes), seed=args.seed, overwrite=args.overwrite,
        media_dir=args.media_dir, progress=True,
    )
    reports.print_dataset(dataset)
    print(f"Imported in {time.perf_counter() - started:.1f} s.")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Import real data (sklearn digits by default) and run every capability the product has so far."""
    from active_learning.data.importers import import_dataset
    from curation_checks.io import run_check

    started = time.perf_counter()
    print("== 1/5 Import")
    dataset = import_dataset(args.name, args.data, max_per_split=args.max_per_split, overwrite=args.overwrite,
                             progress=True)
    reports.print_dataset(dataset)
    print("\n== 2/5 Class balance")
    reports.print_check(run_check(dataset.match_tags("train"), "class_balance", label_field=args.label_field))
    print("\n== 3/5 Fixed model: out-of-sample probabilities (K-fold) and a final model")
    reports.print_model(run_model(dataset, args))
    print("\n== 4/5 Label errors, near-duplicates, outliers")
    from curation_checks.label_issues import find_label_issues

    train = dataset.match_tags(args.train_tag) if args.train_tag else dataset
    reports.print_label_issues(dataset.name, find_label_issues(train, label_field=args.label_field, top=10), 10)
    print("\n== 5/5 Bias: per-class metrics, worst slices, underperforming groups (out-of-sample predictions)")
    from curation_checks.bias.report import format_bias_report, run_bias

    print(format_bias_report(run_bias(train, label_field=args.label_field), top=3))
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
    dataset = load_dataset(args.dataset)
    print(f"Plugin linked at {link}.")
    session = fo.launch_app(dataset, remote=True, address=args.address, port=args.port)
    print(f"App running at http://{args.address}:{args.port} - open the panel with + -> 'Curation overview'. "
          "Ctrl-C to stop.")
    session.wait(-1)
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    import fiftyone as fo

    for name in fo.list_datasets():
        dataset = fo.load_dataset(name)
        print(f"{name}: {len(dataset)} samples, runs: {', '.join(sorted(dataset.list_runs())) or '-'}")
    return 0


def add_commands(sub) -> None:
    """The ``import``, ``demo``, ``app`` and ``datasets`` subcommands."""
    p = sub.add_parser("import", help="import an image folder tree, IDX files, a FiftyOne export, or the digits")
    p.add_argument("--data", default=None, help="folder of class subfolders, of IDX files, or a FiftyOne export "
                                                 "(default: scikit-learn's bundled digits)")
    p.add_argument("--name", required=True, help="dataset name")
    p.add_argument("--test-fraction", type=fraction, default=0.2, help="share tagged test when the source has none")
    p.add_argument("--pool-fraction", type=fraction, default=0.0, help="share of train tagged pool (active learning)")
    p.add_argument("--max-per-split", type=at_least(1), default=None, help="seeded subset per IDX file pair")
    p.add_argument("--classes", type=class_names, default=None, help="comma-separated class names for IDX files")
    p.add_argument("--media-dir", default=None, help="where array images are written as PNG")
    p.add_argument("--seed", type=at_least(0, "a seed"), default=0)
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset of that name")
    p.set_defaults(func=cmd_import)

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

    p = sub.add_parser("datasets", help="list datasets and their curation runs")
    p.set_defaults(func=cmd_datasets)
