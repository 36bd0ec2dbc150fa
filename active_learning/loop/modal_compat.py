"""modAL, made to work with the installed scikit-learn, in one place.

modAL-python 0.4.2.1 (its last release) validates training data in ``modAL.models.learners`` with
``sklearn.utils.check_X_y(..., force_all_finite=self.force_all_finite)`` (``ActiveLearner.fit``, ``.teach`` and
``._add_training_data``). scikit-learn 1.6 renamed that argument to ``ensure_all_finite`` and 1.8 removed the old
name, so on scikit-learn >= 1.8 every ``ActiveLearner.fit``/``.teach`` raises ``TypeError: check_X_y() got an
unexpected keyword argument 'force_all_finite'``. That breaks the learner loop and, with it, the ranked batch path
(``uncertainty_batch_sampling`` -> ``ranked_batch`` reads the learner's ``X_training``, which ``teach`` fills).

``ensure_modal_compatible`` fixes it by rebinding the name ``check_X_y`` *inside modAL's module* to a wrapper that
renames the argument. scikit-learn itself is not touched: ``sklearn.utils.check_X_y`` stays the same object with
the same behaviour for every other caller. The patch is applied only when the installed scikit-learn lacks
``force_all_finite``, and applying it twice is a no-op.

Library code imports modAL only through the accessors here (``modal_uncertainty``, ``modal_batch``,
``modal_models``), which apply the patch first. Not fixed (nothing here uses them): ``modAL.expected_error`` uses
``np.float`` (removed in NumPy 1.24), ``modAL.cluster`` imports ``sklearn.cluster.hierarchical`` (removed in
scikit-learn 0.24) and ``modAL.dropout`` imports ``pkg_resources`` (not installed).

``ProbaModel`` lets modAL's strategies, which take ``(classifier, X_pool)``, run on precomputed probabilities or on
a fitted model such as ``active_learning.model.fixed.FixedModel``.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import threading
from types import ModuleType
from typing import Any, Callable, Protocol

import numpy as np

from active_learning.errors import DataError, InputError

# Every place in modAL that passes ``force_all_finite`` to a scikit-learn validator: (module, imported name).
# tests/test_modal_compat.py scans the installed modAL sources to keep this list complete.
MODAL_CALL_SITES: tuple[tuple[str, str], ...] = (("modAL.models.learners", "check_X_y"),)

_PATCH_MARKER = "__modal_compat_translates_force_all_finite__"
_LOCK = threading.Lock()


def sklearn_lacks_force_all_finite() -> bool:
    """True when the installed scikit-learn's ``check_X_y`` no longer accepts ``force_all_finite`` (>= 1.8)."""
    from sklearn.utils.validation import check_X_y

    return "force_all_finite" not in inspect.signature(check_X_y).parameters


def translate_force_all_finite(validator: Callable[..., Any]) -> Callable[..., Any]:
    """A wrapper of a scikit-learn validator that accepts the old ``force_all_finite`` as ``ensure_all_finite``.

    Args:
        validator: ``check_X_y`` or ``check_array`` of a scikit-learn that knows only ``ensure_all_finite``.

    Returns:
        A function with the validator's behaviour; ``force_all_finite=v`` is passed on as ``ensure_all_finite=v``.
        Passing both names raises ``TypeError``, as scikit-learn does for a duplicated argument.
    """
    if getattr(validator, _PATCH_MARKER, False):
        return validator

    @functools.wraps(validator)
    def validate(*args: Any, **kwargs: Any) -> Any:
        if "force_all_finite" in kwargs:
            if "ensure_all_finite" in kwargs:
                raise TypeError("Pass either force_all_finite or ensure_all_finite, not both.")
            kwargs["ensure_all_finite"] = kwargs.pop("force_all_finite")
        return validator(*args, **kwargs)

    setattr(validate, _PATCH_MARKER, True)
    return validate


def ensure_modal_compatible() -> bool:
    """Make modAL work with the installed scikit-learn; idempotent and thread-safe.

    Rebinds the validator names listed in ``MODAL_CALL_SITES`` inside modAL's modules (never in scikit-learn)
    to ``translate_force_all_finite`` wrappers, when the installed scikit-learn lacks ``force_all_finite``.

    Returns:
        True when modAL's call sites translate the argument (patched now or earlier), False when this
        scikit-learn still accepts ``force_all_finite`` and nothing was changed.
    """
    if not sklearn_lacks_force_all_finite():
        return False
    with _LOCK:
        for module_name, attribute in MODAL_CALL_SITES:
            module = importlib.import_module(module_name)
            current = getattr(module, attribute)
            if not getattr(current, _PATCH_MARKER, False):
                setattr(module, attribute, translate_force_all_finite(current))
    return True


def is_modal_patched() -> bool:
    """True when every call site in ``MODAL_CALL_SITES`` translates ``force_all_finite``."""
    return all(
        getattr(getattr(importlib.import_module(module_name), attribute), _PATCH_MARKER, False)
        for module_name, attribute in MODAL_CALL_SITES
    )


def modal_uncertainty() -> ModuleType:
    """``modAL.uncertainty`` (classifier_uncertainty/margin/entropy and the *_sampling strategies), patched."""
    ensure_modal_compatible()
    return importlib.import_module("modAL.uncertainty")


def modal_batch() -> ModuleType:
    """``modAL.batch`` (``ranked_batch``, ``uncertainty_batch_sampling``), patched."""
    ensure_modal_compatible()
    return importlib.import_module("modAL.batch")


def modal_models() -> ModuleType:
    """``modAL.models`` (``ActiveLearner``, ``Committee``), patched."""
    ensure_modal_compatible()
    return importlib.import_module("modAL.models")


class SupportsPredictProba(Protocol):
    """Anything with scikit-learn's ``predict_proba``."""

    def predict_proba(self, X: Any) -> np.ndarray: ...


class ProbaModel:
    """A minimal classifier for modAL: ``predict_proba`` from precomputed probabilities or from a fitted model.

    With ``probabilities``, ``X`` is the pool those probabilities were computed for: only its length is used,
    so any placeholder of the right length works (``np.arange(n)`` is cheapest). With ``model``,
    ``predict_proba`` and ``fit`` are passed on to it (e.g. a ``FixedModel`` over uint8 images).

    Args:
        probabilities: ``(n_pool, n_classes)`` predicted probabilities, row i for pool item i.
        model: A fitted object with ``predict_proba``; exactly one of the two must be given.
    """

    def __init__(
        self,
        probabilities: np.ndarray | None = None,
        model: SupportsPredictProba | None = None,
    ) -> None:
        if (probabilities is None) == (model is None):
            raise InputError("ProbaModel needs exactly one of `probabilities` or `model`.")
        if model is not None and not callable(getattr(model, "predict_proba", None)):
            raise InputError(f"ProbaModel(model=...) needs an object with predict_proba; got {type(model).__name__}.")
        self.probabilities = probabilities
        self.model = model

    def fit(self, X: Any, y: Any, **fit_kwargs: Any) -> "ProbaModel":
        """Fit the wrapped model; precomputed probabilities cannot be refitted."""
        if self.model is None:
            raise InputError("ProbaModel holds precomputed probabilities and cannot be fitted; wrap a model instead.")
        self.model.fit(X, y, **fit_kwargs)
        return self

    def predict_proba(self, X: Any, **predict_proba_kwargs: Any) -> np.ndarray:
        """Class probabilities for the pool ``X``: the precomputed rows, or the wrapped model's prediction."""
        if self.model is not None:
            return np.asarray(self.model.predict_proba(X, **predict_proba_kwargs))
        probabilities = np.asarray(self.probabilities)
        if len(X) != len(probabilities):
            raise DataError(
                f"The pool has {len(X)} items but {len(probabilities)} precomputed probability rows; "
                "pass the pool the probabilities were computed for."
            )
        return probabilities
