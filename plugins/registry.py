"""The registry of curation checks (one interface, see base.py).

Adding a check is one module under ``plugins/`` with a class that follows ``base.Check`` and one line in
``CHECKS`` below (``docs/design.md`` shows a complete example). Operators, the CLI (``curation check``) and
``curation_checks.io.run_check`` find checks only here.
"""

from __future__ import annotations

import dataclasses
import importlib

from active_learning.errors import InputError
from curation_checks.base import Check, CheckInputs, CheckResult

#: One line per check: ``"<module under curation_checks>:<class>"``.
CHECKS: tuple[str, ...] = (
    "class_balance:ClassBalance",
    "label_errors:LabelErrors",
    "near_duplicates:NearDuplicates",
    "outliers:Outliers",
)

#: What a check may declare in ``requires``: the optional arrays of ``CheckInputs``.
INPUTS = frozenset(f.name for f in dataclasses.fields(CheckInputs)) - {"sample_ids", "classes"}


def load_check(entry: str) -> type:
    """The class an entry of ``CHECKS`` names, checked against the interface (a wrong registration fails here)."""
    module_name, _, class_name = entry.partition(":")
    check = getattr(importlib.import_module(f"curation_checks.{module_name}"), class_name)
    missing = [a for a in ("name", "description", "requires", "field_prefix", "run") if not hasattr(check, a)]
    if missing:
        raise TypeError(f"Check {entry} lacks {missing} of the Check interface (curation_checks.base).")
    unknown = set(check.requires) - INPUTS
    if unknown:
        raise TypeError(f"Check {entry} requires {sorted(unknown)}, which CheckInputs does not have "
                        f"(choose from {sorted(INPUTS)}).")
    return check


REGISTRY: dict[str, type] = {check.name: check for check in map(load_check, CHECKS)}


def available_checks() -> list[str]:
    """Names of all registered checks."""
    return sorted(REGISTRY)


def get_check(name: str, **params) -> Check:
    """Instantiate the registered check ``name`` with ``params``.

    Raises:
        InputError: no check has that name; the message lists the registered ones.
    """
    if name not in REGISTRY:
        raise InputError(f"Unknown check {name!r}; available: {', '.join(available_checks())}.")
    return REGISTRY[name](**params)


__all__ = ["CHECKS", "Check", "CheckInputs", "CheckResult", "INPUTS", "REGISTRY", "available_checks", "get_check",
           "load_check"]
