"""The registry of curation checks (one interface, see base.py). Adding a check: one module, one entry here."""

from __future__ import annotations

from active_learning.errors import DataError
from curation_checks.base import Check, CheckInputs, CheckResult
from curation_checks.class_balance import ClassBalance
from curation_checks.label_errors import LabelErrors
from curation_checks.near_duplicates import NearDuplicates
from curation_checks.outliers import Outliers

REGISTRY: dict[str, type] = {
    ClassBalance.name: ClassBalance,
    LabelErrors.name: LabelErrors,
    NearDuplicates.name: NearDuplicates,
    Outliers.name: Outliers,
}


def available_checks() -> list[str]:
    """Names of all registered checks."""
    return sorted(REGISTRY)


def get_check(name: str, **params) -> Check:
    """Instantiate the registered check ``name`` with ``params``."""
    if name not in REGISTRY:
        raise DataError(f"Unknown check {name!r}; available: {', '.join(available_checks())}.")
    return REGISTRY[name](**params)


__all__ = ["Check", "CheckInputs", "CheckResult", "REGISTRY", "available_checks", "get_check"]
