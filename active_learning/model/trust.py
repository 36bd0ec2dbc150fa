"""Whether the fixed model's probabilities are good enough for the checks that read them.

Every model-dependent result (label errors, suggested labels, bias per class, drift's classifier tests) is only as
good as the model's out-of-sample probabilities. ``model_trust`` turns the model run's out-of-sample accuracy into a
verdict that the checks record and the CLI, the reports and the panels show in one line. The bar comes from
planted-noise measurements (docs/label_errors.md): below it, fewer than half of the flagged samples were really
mislabeled at 10% noise, so the flags are not "likely label errors".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

#: Out-of-sample accuracy below which the label-error flags are not trusted. On Fashion-MNIST at 0.85 with 10%
#: planted noise, 0.49 of the flags were planted; on CIFAR-10 photos (photo recipe, 3-fold over 10,000 on a CPU,
#: accuracy 0.57-0.66 against the noisy labels) 0.29-0.45 with predicted_neq_given and 0.41-0.59 with
#: prune_by_noise_rate (benchmarks/results/label_errors_cifar10_cpu.json, docs/model.md).
MIN_TRUSTED_ACCURACY = 0.85
#: "Accept suggested label" takes a suggestion only when the model gives it at least this probability: on CIFAR-10
#: photos with planted noise, flagged samples' suggestions at >= 0.8 were right 86% (uniform 10%) and 91% (uniform
#: 20%) of the time against 34-44% for all of them; between look-alike classes 74%, and higher floors did not help
#: (0.9: 67% of 12) while they left almost nothing to accept.
MIN_SUGGESTION_CONFIDENCE = 0.8

WHAT_TO_DO = ("train the photo recipe on a GPU, bring your own pretrained backbone, embeddings or predictions, "
              "or label more data")


@dataclass(frozen=True)
class TrustVerdict:
    """The verdict on a model's probabilities, as recorded in a check's run."""

    trusted: bool
    accuracy: float | None  # out-of-sample accuracy; None when unknown (probabilities from elsewhere)
    threshold: float
    message: str  # one line for reports and panels

    def to_dict(self) -> dict:
        """The verdict as JSON."""
        return asdict(self)

    @classmethod
    def from_dict(cls, recorded: dict | None) -> "TrustVerdict | None":
        """A recorded verdict, or None when the run predates verdicts."""
        if not recorded:
            return None
        return cls(bool(recorded["trusted"]), recorded.get("accuracy"), float(recorded["threshold"]),
                   str(recorded["message"]))


def model_trust(accuracy: float | None, threshold: float = MIN_TRUSTED_ACCURACY, source: str = "") -> TrustVerdict:
    """The verdict for probabilities whose out-of-sample accuracy is ``accuracy`` (None: not measured)."""
    where = f" ({source})" if source else ""
    if accuracy is None:
        return TrustVerdict(False, None, threshold,
                            f"Model accuracy unknown{where}: the flags cannot be judged; compute out-of-sample "
                            "probabilities with the fixed model or supply labeled predictions.")
    if accuracy >= threshold:
        return TrustVerdict(True, float(accuracy), threshold,
                            f"Model out-of-sample accuracy {accuracy:.3f}{where} >= {threshold:.2f}: the flags "
                            "can be trusted as likely label errors.")
    return TrustVerdict(False, float(accuracy), threshold,
                        f"Model too weak to trust: out-of-sample accuracy {accuracy:.3f}{where} < {threshold:.2f}, "
                        "so most flags are the model's own mistakes, not label errors. To fix: "
                        f"{WHAT_TO_DO}.")
