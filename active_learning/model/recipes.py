"""The fixed training recipes: one architecture and one training recipe per name, recorded with every run.

The data changes between rounds; the recipe does not. ``RECIPES`` holds the named ones (``fast``: ResNet-18;
``photo``: the small-photo network), ``default_recipe`` picks one for a dataset by its images' colour, and a
model run records the recipe it used so that later runs of the dataset keep it
(``active_learning.model.outputs.resolve_recipe``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields, replace

import numpy as np

from active_learning.errors import DataError, InputError
from active_learning.model.networks import PHOTO_NET, RESNET18


@dataclass(frozen=True)
class Recipe:
    """The fixed training recipe. Every field is recorded with every run that trains the model.

    Two named recipes (``RECIPES``): ``fast``, torchvision ResNet-18 with its standard stem at 32 px (fast on a CPU,
    strong on digits, any torchvision ResNet-18 state dict loads as starting weights), and ``photo``, a network
    built for small photos (``active_learning.model.networks``: no early downsampling, whitened first layer) trained
    with flips, label smoothing and a short one-cycle schedule. ``default_recipe`` picks one per dataset (photo for
    colour images, fast for grayscale); docs/model.md has the figures behind the choice.

    Both: SGD with Nesterov momentum and a one-cycle schedule, random translations of up to ``translate_px``
    pixels, horizontal flips only where ``flip`` (they change the meaning of digits). After training, BatchNorm
    running statistics are recomputed exactly over the training images: short trainings (few steps) otherwise
    leave them near their initial values and the model looks broken in eval mode.

    ``epochs`` passes over the data, but never fewer than ``min_steps`` optimizer steps: with a fixed number of
    epochs a small labeled set (an early active-learning round) gets few steps and an undertrained model, whose
    accuracy and uncertainty both suffer (docs/active_learning.md).
    """

    architecture: str = RESNET18
    image_size: int = 32
    epochs: int = 12
    min_steps: int = 0
    batch_size: int = 128
    optimizer: str = "sgd-nesterov"
    max_lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "onecycle"
    translate_px: int = 2
    recalibrate_batchnorm: bool = True
    seed: int = 0
    name: str = "fast"
    widths: tuple[int, ...] = ()
    flip: bool = False
    label_smoothing: float = 0.0
    whiten_init: bool = False
    ema_decay: float = 0.0  # > 0: predict with an exponential moving average of the weights (0 = the last weights)

    def __post_init__(self) -> None:
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))  # JSON gives lists back

    def to_dict(self) -> dict:
        """The recipe as a JSON-serialisable dict."""
        out = asdict(self)
        out["widths"] = list(self.widths)
        return out

    def with_seed(self, seed: int) -> "Recipe":
        """The same recipe with another seed."""
        return replace(self, seed=seed)

    @classmethod
    def from_dict(cls, recorded: dict) -> "Recipe":
        """A recipe as a run recorded it; fields this version does not know are dropped, missing ones default
        (runs recorded before the named recipes are all ``fast``)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in recorded.items() if k in known})


#: The named recipes. ``photo``'s settings were chosen on CIFAR-10 photos on a 2-core CPU (docs/model.md).
RECIPES: dict[str, Recipe] = {
    "fast": Recipe(),
    "photo": Recipe(name="photo", architecture=PHOTO_NET, widths=(128, 256, 512), epochs=16, batch_size=128,
                    max_lr=0.1, weight_decay=5e-4, translate_px=2, flip=True, label_smoothing=0.2,
                    whiten_init=True),
}
#: ``photo`` at half the width (64-128-256): 3.5-4x less compute for about 0.01-0.02 of accuracy on CIFAR-10, for
#: CPUs without bfloat16 units, where ``photo`` takes over two hours for 5 folds over 10,000 photos (docs/model.md).
RECIPES["photo-lite"] = replace(RECIPES["photo"], name="photo-lite", widths=(64, 128, 256))


def default_tta_px(recipe: Recipe) -> int:
    """The test-time shifts a model run uses when nobody asked: ``DEFAULT_TTA_PX`` for ``fast``; 0 for recipes
    that train with flips, whose runs average each image with its mirror image (on CIFAR-10 photos shifts on top
    of the mirror changed the accuracy by -0.001 at 9x the inference; docs/model.md)."""
    return 0 if recipe.flip else DEFAULT_TTA_PX


def named_recipe(name: str, **overrides) -> Recipe:
    """The recipe called ``name`` (``fast`` or ``photo``), with some fields overridden (e.g. ``seed``, ``epochs``)."""
    if name not in RECIPES:
        raise InputError(f"Unknown recipe {name!r}; choose one of: {', '.join(RECIPES)}.")
    return replace(RECIPES[name], **overrides)


def is_grayscale(images: np.ndarray, sample: int = 256) -> bool:
    """Whether the (N, 3, S, S) images are grayscale (all three channels equal), judged on a sample of them."""
    picked = images[np.linspace(0, len(images) - 1, min(sample, len(images))).astype(int)] if len(images) else images
    return bool((picked[:, 0] == picked[:, 1]).all() and (picked[:, 1] == picked[:, 2]).all())


def default_recipe(images: np.ndarray, bf16: bool = True) -> Recipe:
    """The recipe a dataset gets when nobody chose one: ``fast`` for grayscale images (digits and Fashion-MNIST,
    where ResNet-18 is as accurate and faster); for colour ones ``photo`` where the model trains under bfloat16
    (``bf16``: a GPU, or a CPU with AMX / AVX-512 BF16 units) and ``photo-lite`` on a CPU without such units, where
    ``photo`` trains 3-4x slower than ``photo-lite`` for 0.01-0.02 more accuracy (docs/model.md)."""
    if is_grayscale(images):
        return RECIPES["fast"]
    return RECIPES["photo"] if bf16 else RECIPES["photo-lite"]


def recipe_note(name: str) -> str | None:
    """One line saying why ``auto`` may have chosen the recipe ``name`` and what the alternative costs, or None."""
    if name == "photo-lite":
        return ("Recipe photo-lite: the photo network at half width, the default on a CPU without bfloat16 units "
                "(photo would take 3-4x as long there for about 0.01-0.02 more accuracy; choose it with "
                "--recipe photo, or train on a GPU).")
    return None


#: The active-learning loop's floor on optimizer steps per round (``LoopConfig.min_steps``; docs/active_learning.md).
LOOP_MIN_STEPS = 1000
#: Test-time augmentation of the product's model runs with the ``fast`` recipe (``compute_model_outputs``, the CLI,
#: the operators): the probabilities are averaged over the 25 shifts of up to 2 px, the training translations'
#: range. On MNIST and on Fashion-MNIST with planted noise it ranked label errors better than plain probabilities
#: (docs/benchmarks.md). ``FixedModel.predict_proba`` and ``cross_val_proba`` themselves default to 0 (plain).
DEFAULT_TTA_PX = 2
MAX_TTA_PX = 4  # 81 shifted copies
#: The stratified K-fold of a model run when nobody asked (the CLI, the operators and the library share it).
DEFAULT_FOLDS = 5
#: The fold split's and the training's seeds of a model run when nobody asked; several seeds make an ensemble.
DEFAULT_SEEDS: tuple[int, ...] = (0,)


def epochs_for(recipe: Recipe, num_images: int) -> int:
    """Epochs the recipe trains on ``num_images`` images: ``recipe.epochs``, raised so that training takes at least
    ``recipe.min_steps`` optimizer steps (full batches; the ragged last batch is dropped)."""
    if num_images < 1:
        raise DataError("Training needs at least one image.")
    steps_per_epoch = max(1, num_images // min(recipe.batch_size, num_images))
    return max(recipe.epochs, -(-recipe.min_steps // steps_per_epoch))


def recipe_fingerprint(recipe: Recipe) -> str:
    """A short stable hash of the recipe, to tell runs apart at a glance."""
    return hashlib.sha256(json.dumps(recipe.to_dict(), sort_keys=True).encode()).hexdigest()[:12]
