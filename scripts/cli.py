"""The ``curation`` command line: import data, compute the fixed model's outputs, run checks, the demo, the App.

Each command group lives in its own module (``data_commands``, ``model_commands``, ``report_commands``,
``loop_commands``), which adds its subcommands to the parser; this module only builds the parser and runs one
command under the dataset's writer lease.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from active_learning.errors import CurationError
from curation_cli import data_commands, loop_commands, model_commands, report_commands
from curation_cli.common import cli_message, option_strings


def build_parser() -> argparse.ArgumentParser:
    """The parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="curation", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    data_commands.add_commands(sub)
    model_commands.add_commands(sub)
    report_commands.add_commands(sub)
    loop_commands.add_commands(sub)
    return parser


WRITING_COMMANDS = ("import", "model", "check", "label-errors", "bias", "drift")


def _writer_lease(args: argparse.Namespace):
    """The dataset's lease for a command that changes it: one writer per dataset (``active_learning.store.lease``).

    ``al round`` and ``al ingest`` take it themselves, step by step, so a round waiting for annotators holds none.
    """
    import contextlib

    from active_learning.store.lease import writer_lease

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
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with _writer_lease(args):
            return int(args.func(args) or 0)
    except CurationError as exc:
        print(f"error: {cli_message(str(exc), option_strings(parser))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
