"""modAL on the installed scikit-learn: what breaks without the patch, that the patch fixes it, sklearn untouched."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import numpy as np
import pytest
import sklearn.utils
import sklearn.utils.validation
from sklearn.linear_model import LogisticRegression

from active_learning.errors import DataError, InputError
from active_learning.loop.modal_compat import (
    MODAL_CALL_SITES,
    ProbaModel,
    ensure_modal_compatible,
    is_modal_patched,
    modal_batch,
    modal_models,
    modal_uncertainty,
    sklearn_lacks_force_all_finite,
    translate_force_all_finite,
)

SKLEARN_CHECK_X_Y = sklearn.utils.validation.check_X_y
needs_new_sklearn = pytest.mark.skipif(
    not sklearn_lacks_force_all_finite(), reason="this scikit-learn still accepts force_all_finite"
)


def toy_data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two separable blobs in 2-D: 20 points, labels 0/1."""
    rng = np.random.default_rng(seed)
    y = np.repeat([0, 1], 10)
    return rng.normal(size=(20, 2)) + 4.0 * y[:, None], y


def new_learner(batch: bool = False):
    models = modal_models()
    X, y = toy_data()
    strategy = modal_batch().uncertainty_batch_sampling if batch else modal_uncertainty().uncertainty_sampling
    return models.ActiveLearner(LogisticRegression(), query_strategy=strategy, X_training=X[::4], y_training=y[::4])


@needs_new_sklearn
def test_this_sklearn_renamed_force_all_finite() -> None:
    with pytest.raises(TypeError, match="force_all_finite"):
        SKLEARN_CHECK_X_Y(np.zeros((2, 2)), np.zeros(2), force_all_finite=True)


@needs_new_sklearn
@pytest.mark.parametrize("call", ["teach", "fit"])
def test_unpatched_modal_learner_breaks(monkeypatch: pytest.MonkeyPatch, call: str) -> None:
    """The bug the patch fixes: modAL's learner validates with force_all_finite, which this sklearn rejects."""
    learner = new_learner(batch=True)
    for module_name, attribute in MODAL_CALL_SITES:  # undo the patch for this test only
        monkeypatch.setattr(importlib.import_module(module_name), attribute, SKLEARN_CHECK_X_Y)
    X, y = toy_data(1)
    with pytest.raises(TypeError, match="force_all_finite"):
        getattr(learner, call)(X, y)


def test_patched_learner_teaches_and_queries_a_ranked_batch() -> None:
    """Fails without the patch: teach -> check_X_y(force_all_finite=...), then ranked_batch on X_training."""
    learner = new_learner(batch=True)
    X, y = toy_data(1)
    learner.teach(X[:6], y[:6])
    assert len(learner.X_training) == 5 + 6
    pool, _ = toy_data(2)
    picked, uncertainty = learner.query(pool, n_instances=8)
    assert len(set(np.asarray(picked).tolist())) == 8
    assert ((picked >= 0) & (picked < len(pool))).all()
    learner.fit(X, y)
    assert len(learner.X_training) == len(X)


def test_patched_learner_still_rejects_non_finite_data() -> None:
    learner = new_learner()
    X, y = toy_data(1)
    X[3, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        learner.teach(X, y)
    learner.force_all_finite = False  # modAL's own switch still works, translated to ensure_all_finite
    learner._add_training_data(X, y)


def test_patch_is_idempotent_and_local_to_modal() -> None:
    assert ensure_modal_compatible() == sklearn_lacks_force_all_finite()
    before = {site: getattr(importlib.import_module(site[0]), site[1]) for site in MODAL_CALL_SITES}
    ensure_modal_compatible()
    ensure_modal_compatible()
    after = {site: getattr(importlib.import_module(site[0]), site[1]) for site in MODAL_CALL_SITES}
    assert before == after
    if sklearn_lacks_force_all_finite():
        assert is_modal_patched()
        for wrapper in after.values():
            assert wrapper.__wrapped__ is SKLEARN_CHECK_X_Y  # one layer, never a wrapper of a wrapper
    # scikit-learn's own names are the original functions, with the original behaviour
    assert sklearn.utils.check_X_y is SKLEARN_CHECK_X_Y
    assert not hasattr(SKLEARN_CHECK_X_Y, "__wrapped__")


def test_sklearn_check_X_y_unchanged_for_normal_callers() -> None:
    ensure_modal_compatible()
    X, y = toy_data()
    X_checked, y_checked = sklearn.utils.check_X_y(X, y)
    np.testing.assert_array_equal(X_checked, X)
    np.testing.assert_array_equal(y_checked, y)
    X[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        sklearn.utils.check_X_y(X, y)
    sklearn.utils.check_X_y(X, y, ensure_all_finite=False)
    if sklearn_lacks_force_all_finite():
        with pytest.raises(TypeError, match="force_all_finite"):
            sklearn.utils.check_X_y(X, y, force_all_finite=False)


@needs_new_sklearn
def test_translation_wrapper() -> None:
    check = translate_force_all_finite(SKLEARN_CHECK_X_Y)
    assert translate_force_all_finite(check) is check
    X, y = toy_data()
    X[0, 0] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        check(X, y, force_all_finite=True)
    check(X, y, force_all_finite=False)
    with pytest.raises(TypeError, match="not both"):
        check(X, y, force_all_finite=False, ensure_all_finite=False)


def test_call_site_list_covers_every_force_all_finite_call_in_modal() -> None:
    """Audit of the installed modAL: every module passing force_all_finite to a validator is patched."""
    import modAL

    root = Path(modAL.__file__).parent
    calling = set()
    for path in root.rglob("*.py"):
        source = path.read_text()
        for validator in re.findall(r"\b(check_X_y|check_array)\((?:[^()]|\([^()]*\))*force_all_finite", source):
            module = ".".join(("modAL", *path.relative_to(root).with_suffix("").parts))
            calling.add((module.removesuffix(".__init__"), validator))
    assert calling == set(MODAL_CALL_SITES)


# ------------------------------------------------------------------------------------------------- ProbaModel


def test_proba_model_feeds_modal_strategies() -> None:
    probs = np.random.default_rng(0).dirichlet(np.ones(4), size=30)
    model = ProbaModel(probabilities=probs)
    uncertainty = modal_uncertainty()
    np.testing.assert_allclose(uncertainty.classifier_uncertainty(model, np.arange(30)), 1 - probs.max(axis=1))
    picked, _ = uncertainty.entropy_sampling(model, np.arange(30), n_instances=5)
    assert len(set(picked.tolist())) == 5
    with pytest.raises(DataError, match="29 items but 30"):
        model.predict_proba(np.arange(29))
    with pytest.raises(InputError, match="cannot be fitted"):
        model.fit(np.arange(30), np.zeros(30))


def test_proba_model_wraps_a_fitted_model() -> None:
    X, y = toy_data()
    classifier = LogisticRegression().fit(X, y)
    wrapped = ProbaModel(model=classifier)
    np.testing.assert_array_equal(wrapped.predict_proba(X), classifier.predict_proba(X))
    assert wrapped.fit(X, y) is wrapped
    picked, _ = modal_uncertainty().margin_sampling(wrapped, X, n_instances=3)
    assert len(set(picked.tolist())) == 3


@pytest.mark.parametrize(
    "kwargs", [{}, {"probabilities": np.ones((2, 1)), "model": LogisticRegression()}, {"model": object()}]
)
def test_proba_model_arguments(kwargs: dict) -> None:
    with pytest.raises(InputError):
        ProbaModel(**kwargs)
