"""What a drift report computes, with the one set of defaults: ``run_drift``, the CLI and the App all read them here
(a light module: the CLI builds its parser from it without importing the statistics)."""

from __future__ import annotations

from dataclasses import dataclass

from active_learning.model.outputs import EMBEDDING_FIELD, PROBS_FIELD
from curation_checks.neighbours import KNN_METRICS as OOD_METRICS
from curation_checks.validation import check_choice, check_fraction, check_int

OOD_K = 10  # reference neighbours averaged in the OOD score
OOD_QUANTILE = 0.95  # the threshold is this quantile of the reference's own leave-one-out scores
MAX_OOD_REFERENCE = 10_000  # reference rows used as OOD neighbours (seeded subsample): LOO cost grows as m^2


@dataclass(frozen=True)
class DriftSettings:
    """The settings of one drift report; construction validates them (``InputError`` naming the setting).

    Attributes:
        n_permutations: permutations of the MMD test.
        alpha: level of the combined decision per batch (MMD and KS-BBSD at ``alpha / 2`` each).
        random_state: seed of the MMD subsampling and permutations and of the OOD reference subsample.
        label_field: Classification field with the reference labels for the BBSE label-shift estimate; None skips
            the estimate.
        ood_k: reference neighbours averaged in the OOD score.
        ood_quantile: quantile of the reference's own leave-one-out scores used as the OOD threshold.
        ood_metric: ``cosine`` (directions only, the default) or ``euclidean`` (also a change of feature length).
        embedding_field: field of the embeddings.
        probs_field: field of the predicted probabilities.
    """

    n_permutations: int = 200
    alpha: float = 0.05
    random_state: int = 0
    label_field: str | None = "ground_truth"
    ood_k: int = OOD_K
    ood_quantile: float = OOD_QUANTILE
    ood_metric: str = "cosine"
    embedding_field: str = EMBEDDING_FIELD
    probs_field: str = PROBS_FIELD

    def __post_init__(self) -> None:
        normalised = {
            "n_permutations": check_int("n_permutations", self.n_permutations),
            "alpha": check_fraction("alpha", self.alpha),
            "random_state": check_int("random_state", self.random_state, 0),
            "ood_k": check_int("ood_k", self.ood_k),
            "ood_quantile": check_fraction("ood_quantile", self.ood_quantile),
            "ood_metric": check_choice("ood_metric", self.ood_metric, OOD_METRICS),
        }
        for name, value in normalised.items():
            object.__setattr__(self, name, value)  # frozen: the normalised values replace the given ones once


DRIFT_DEFAULTS = DriftSettings()
