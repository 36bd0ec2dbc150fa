"""Serve the FiftyOne App on one dataset until killed; the browser tests run this in a subprocess.

    python tests/app_server.py DATASET PORT

The process inherits the test session's environment (``FIFTYONE_DATABASE_URI``, ``FIFTYONE_PLUGINS_DIR``, ...),
so the App reads the session's isolated MongoDB and loads the plugin from the link to the checkout. Run it from a
working directory other than the repository root: the checkout's ``plugins/`` folder must never be importable
as ``plugins``, which is FiftyOne's own package of builtin panels.
"""

from __future__ import annotations

import argparse
import signal
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", help="name of an existing dataset")
    parser.add_argument("port", type=int, help="port to serve the App on")
    parser.add_argument("--address", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    args = parser.parse_args(argv)

    import fiftyone as fo

    # SIGTERM (stop_process) should run FiftyOne's cleanup, like Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))

    dataset = fo.load_dataset(args.dataset)
    print(f"database: {fo.config.database_uri}; plugins: {fo.config.plugins_dir}", flush=True)
    session = fo.launch_app(dataset, remote=True, address=args.address, port=args.port, auto=False)
    print(f"App serving {dataset.name!r} at http://{args.address}:{args.port}", flush=True)
    session.wait(-1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
