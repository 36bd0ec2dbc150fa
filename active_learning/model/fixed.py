"""The fixed model: the recipe's network trained from scratch (or from given weights), its inference and checkpoints.

The data changes between rounds; the model does not. ``FixedModel`` follows scikit-learn conventions
(``__init__`` stores parameters, ``fit`` returns ``self``, learned state ends in ``_``) so that modAL and
cleanlab can use it directly. Inputs are uint8 arrays of shape ``(N, 3, S, S)`` (see ``active_learning.data.images``).
K-fold and disjoint out-of-sample probabilities: ``active_learning.model.splits``; checkpoint files:
``active_learning.model.checkpoints``.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from active_learning.data.image_source import ImageRows
from active_learning.errors import DataError, ModelError
from active_learning.model.augment import random_flip, random_translate, tta_views, view_of
from active_learning.model.checkpoints import TEMP_SUFFIX, checkpoint_name, durable_rename, file_sha256
from active_learning.model.networks import RESNET18, build_network, embedding_module, init_whitening
from active_learning.model.recipes import (DEFAULT_TTA_PX, LOOP_MIN_STEPS, MAX_TTA_PX, RECIPES, Recipe,
                                           default_recipe, default_tta_px, epochs_for, is_grayscale, named_recipe,
                                           recipe_fingerprint)

# The recipes live in active_learning.model.recipes and the checkpoint helpers in active_learning.model.checkpoints;
# they are importable from here too, beside the model that uses them.
__all__ = ["DEFAULT_TTA_PX", "LOOP_MIN_STEPS", "MAX_TTA_PX", "RECIPES", "Recipe", "default_recipe", "default_tta_px",
           "epochs_for", "is_grayscale", "named_recipe", "recipe_fingerprint", "FixedModel", "ProgressCallback",
           "PROGRESS_SECONDS", "check_images", "file_sha256", "select_device", "uses_bf16"]
ProgressCallback = Callable[[float, str], None]
PROGRESS_SECONDS = 10.0  # a long training reports progress at least this often, between epochs too
WHITENING_IMAGES = 5000  # the photo network's first layer whitens patches of at most this many training images


def _resident_on_gpu(source: ImageRows, device: str):
    """The training images as one uint8 tensor on the GPU when they take at most a quarter of its free memory,
    else None (batches then come from host memory or the disk cache)."""
    import torch

    free, _ = torch.cuda.mem_get_info(torch.device(device))
    if source.nbytes <= free // 4:
        return torch.from_numpy(source.all()).to(device)
    return None


def select_device(requested: str | None = None) -> str:
    """``cuda`` when a GPU is present (or requested), else ``cpu``."""
    import torch

    if requested:
        if requested.startswith("cuda") and not torch.cuda.is_available():
            raise ModelError(f"Device {requested!r} was requested but no CUDA GPU is available; use `device='cpu'`.")
        return requested
    return "cuda" if torch.cuda.is_available() else "cpu"


def uses_bf16(device: str) -> bool:
    """Whether the model trains and predicts on ``device`` under bfloat16 autocast: always on CUDA; on a CPU when
    it has AMX or AVX-512 BF16 units (on the 2-core Xeon with AMX the photo network trains 2.5-3x faster than in
    float32 at the same accuracy; docs/model.md), unless ``CURATION_CPU_BF16=0``. Recorded with every model run."""
    if device.startswith("cuda"):
        return True
    if os.environ.get("CURATION_CPU_BF16", "auto").strip().lower() in {"0", "false", "no", "off"}:
        return False
    import torch

    probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    try:
        return any(bool(getattr(torch.cpu, probe)()) for probe in probes if hasattr(torch.cpu, probe))
    except Exception:  # a private probe that changed: float32 is always correct
        return False


def _autocast(device: str):
    """bfloat16 autocast on ``device`` where ``uses_bf16``, else a no-op context."""
    import torch

    kind = "cuda" if device.startswith("cuda") else "cpu"
    return torch.autocast(kind, dtype=torch.bfloat16, enabled=uses_bf16(device))


@contextlib.contextmanager
def _deterministic(enabled: bool) -> Iterator[None]:
    import torch

    previous = torch.are_deterministic_algorithms_enabled()
    if enabled:
        torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous)


def _recalibrate_batchnorm(net, data, device: str, mean, std, batch_size: int) -> None:
    """Recompute every BatchNorm layer's running mean/var as an exact average over ``data`` (a uint8 tensor on the
    device, or ``ImageRows``), without augmentation."""
    import torch

    layers = [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in layers]
    for layer in layers:
        layer.reset_running_stats()
        layer.momentum = None  # cumulative moving average = exact mean over the batches seen
    net.train()
    batches = (data[start : start + batch_size] for start in range(0, len(data), batch_size)) \
        if isinstance(data, torch.Tensor) else (torch.from_numpy(b) for b in data.sequential(batch_size))
    with torch.no_grad(), _autocast(device):
        for batch in batches:
            if len(batch) < 2:
                break
            x = (batch.to(device, non_blocking=True).float().div_(255.0) - mean) / std
            net(x.contiguous(memory_format=torch.channels_last))
    for layer, momentum in zip(layers, momenta):
        layer.momentum = momentum


def _softmax(logits: np.ndarray) -> np.ndarray:
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (probs / probs.sum(axis=1, keepdims=True)).astype(np.float32)


def check_images(images: np.ndarray) -> None:
    """Raise ``DataError`` unless ``images`` is a non-empty uint8 array of shape ``(N, 3, S, S)``."""
    if images.ndim != 4 or images.shape[1] != 3 or images.dtype != np.uint8:
        raise DataError(
            f"Expected uint8 images of shape (N, 3, S, S); got {images.dtype} {images.shape}. "
            "Load them with active_learning.data.images.load_images."
        )
    if len(images) == 0:
        raise DataError("There are no images to use: the view is empty.")


@dataclass
class FixedModel:
    """The fixed classifier: ``fit``, ``predict_proba``, ``predict``, ``embed``, ``save``/``load``.

    Args:
        num_classes: number of classes (the dataset's class list, in order).
        recipe: the fixed training recipe.
        device: ``cpu``, ``cuda`` or None for the best available.
        init_weights: optional path of a ResNet-18 state dict to start from (otherwise from scratch);
            a final layer of another size is re-initialised.
    """

    num_classes: int
    recipe: Recipe = field(default_factory=Recipe)
    device: str | None = None
    init_weights: str | None = None

    def __post_init__(self) -> None:
        if self.num_classes < 2:
            raise DataError(f"A classifier needs at least 2 classes; got {self.num_classes}.")

    # -- training -----------------------------------------------------------------------------------
    def fit(self, images: np.ndarray, labels: np.ndarray, progress: ProgressCallback | None = None,
            rows: np.ndarray | None = None) -> "FixedModel":
        """Train from scratch (or from ``init_weights``) on uint8 images and integer labels.

        ``rows``: train on ``images[rows]`` only (``labels`` then align with ``rows``), read batch by batch, so a
        K-fold over a memory-mapped cache never copies the training folds (``active_learning.data.image_source``).
        """
        import torch

        check_images(images)
        source = ImageRows(images, rows)
        labels = np.asarray(labels, dtype=np.int64)
        if len(labels) != len(source):
            raise DataError(f"{len(source)} images but {len(labels)} labels.")
        if labels.min() < 0 or labels.max() >= self.num_classes:
            raise DataError(f"Labels must lie in [0, {self.num_classes}); got {labels.min()}..{labels.max()}.")
        if len(source) < 2:
            raise DataError("Training needs at least 2 labeled images.")

        recipe = self.recipe
        self.device_ = select_device(self.device)
        cuda = self.device_.startswith("cuda")
        torch.manual_seed(recipe.seed)
        generator = torch.Generator().manual_seed(recipe.seed)

        net = build_network(recipe.architecture, self.num_classes, recipe.widths)
        if self.init_weights:
            if recipe.architecture != RESNET18:
                raise ModelError(f"Starting weights load into the ResNet-18 recipe only; recipe {recipe.name!r} "
                                 f"uses {recipe.architecture}. Pick recipe 'fast' or train from scratch.")
            _load_init_weights(net, self.init_weights)
        n = len(source)
        pixels = torch.from_numpy(source.take(np.arange(0, n, max(1, n // 20000)))).float().div_(255.0)
        self.mean_ = pixels.mean(dim=(0, 2, 3)).tolist()  # normalisation from <= 20k images
        self.std_ = [max(s, 1e-3) for s in pixels.std(dim=(0, 2, 3)).tolist()]
        del pixels
        targets = torch.from_numpy(labels)
        net = net.to(self.device_, memory_format=torch.channels_last)
        mean, std = self._norm_tensors()
        if recipe.whiten_init:
            sample = torch.from_numpy(source.sample(WHITENING_IMAGES, seed=recipe.seed)).to(self.device_)
            init_whitening(net, (sample.float().div_(255.0) - mean) / std)
            del sample
        resident = _resident_on_gpu(source, self.device_) if cuda else None
        if cuda:
            targets = targets.to(self.device_)

        batch_size = min(recipe.batch_size, n)
        steps_per_epoch = max(1, n // batch_size)  # drop the ragged last batch: BatchNorm needs > 1 sample
        epochs = epochs_for(recipe, n)
        optimizer = torch.optim.SGD(
            [p for p in net.parameters() if p.requires_grad], lr=recipe.max_lr, momentum=recipe.momentum,
            nesterov=True, weight_decay=recipe.weight_decay,
        )
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=recipe.max_lr, epochs=epochs, steps_per_epoch=steps_per_epoch
        )
        ema = None
        if recipe.ema_decay > 0:
            from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

            ema = AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(recipe.ema_decay))
        started = last_report = time.perf_counter()
        net.train()
        with _deterministic(not cuda):
            for epoch in range(epochs):
                order = torch.randperm(n, generator=generator)
                positions = [order[step * batch_size : (step + 1) * batch_size] for step in range(steps_per_epoch)]
                host = None if resident is not None else source.batches([p.numpy() for p in positions])
                for step, index in enumerate(positions):
                    if resident is not None:
                        batch = resident[index.to(resident.device)]
                    else:
                        batch = torch.from_numpy(next(host)).to(self.device_, non_blocking=True)
                    batch = random_translate(batch, recipe.translate_px, generator)
                    if recipe.flip:
                        batch = random_flip(batch, generator)
                    x = ((batch.float().div_(255.0) - mean) / std).contiguous(memory_format=torch.channels_last)
                    y = targets[index.to(targets.device)]
                    with _autocast(self.device_):
                        loss = torch.nn.functional.cross_entropy(net(x).float(), y, label_smoothing=recipe.label_smoothing)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    scheduler.step()
                    if ema is not None:
                        ema.update_parameters(net)
                    if progress is not None and time.perf_counter() - last_report >= PROGRESS_SECONDS:
                        last_report = time.perf_counter()
                        done = (epoch * steps_per_epoch + step + 1) / (epochs * steps_per_epoch)
                        progress(done, f"epoch {epoch + 1}/{epochs} batch {step + 1}/{steps_per_epoch}")
                if progress is not None:
                    last_report = time.perf_counter()
                    progress((epoch + 1) / epochs, f"epoch {epoch + 1}/{epochs} loss {loss.item():.3f}")
        if ema is not None:
            net = ema.module  # the averaged weights; BatchNorm statistics are recomputed for them below
        if recipe.recalibrate_batchnorm:
            _recalibrate_batchnorm(net, resident if resident is not None else source, self.device_, mean, std,
                                   batch_size)
        net.eval()
        self.net_ = net
        self.train_seconds_ = time.perf_counter() - started
        self.precision_ = "bf16" if uses_bf16(self.device_) else "fp32"
        self.n_train_ = n
        self.epochs_ = epochs
        return self

    # -- inference ----------------------------------------------------------------------------------
    def predict_proba(self, images: np.ndarray, batch_size: int = 512, tta_px: int = 0,
                      rows: np.ndarray | None = None) -> np.ndarray:
        """Softmax probabilities, shape ``(N, num_classes)``, float32, rows summing to 1.

        ``tta_px > 0`` averages them over every shift of up to ``tta_px`` pixels in each direction
        ((2 tta_px + 1)^2 copies, zero-filled like the training translations), and over their mirror images when
        the recipe trains with flips: steadier probabilities for ranking label errors (docs/label_errors.md), at
        that many times the inference. ``rows``: only ``images[rows]``, read batch by batch.
        """
        if tta_px < 0:
            raise DataError(f"tta_px must be >= 0; got {tta_px}.")
        source = ImageRows(images, rows)
        total = np.zeros((len(source), self.num_classes), dtype=np.float64)
        for view in tta_views(tta_px, self.recipe.flip):
            logits, _ = self._forward(source, batch_size, want_logits=True, want_features=False, view=view)
            total += _softmax(logits)
        return (total / total.sum(axis=1, keepdims=True)).astype(np.float32)

    def predict_proba_and_embed(self, images: np.ndarray, batch_size: int = 512) -> tuple[np.ndarray, np.ndarray]:
        """``predict_proba`` and ``embed`` from one forward pass (half the inference of calling both)."""
        logits, features = self._forward(ImageRows(images), batch_size, want_logits=True, want_features=True)
        return _softmax(logits), features

    def predict(self, images: np.ndarray, batch_size: int = 512) -> np.ndarray:
        """Predicted class indices."""
        return self.predict_proba(images, batch_size).argmax(axis=1)

    def embed(self, images: np.ndarray, batch_size: int = 512) -> np.ndarray:
        """Penultimate-layer features (after global pooling), float32: ``(N, 512)`` for ResNet-18, ``(N, widths[-1])``
        for the photo network."""
        _, features = self._forward(ImageRows(images), batch_size, want_logits=False, want_features=True)
        return features

    def _norm_tensors(self):
        import torch

        mean = torch.tensor(self.mean_, device=self.device_).view(1, 3, 1, 1)
        std = torch.tensor(self.std_, device=self.device_).view(1, 3, 1, 1)
        return mean, std

    def _forward(self, source: ImageRows, batch_size: int, want_logits: bool, want_features: bool,
                 view: tuple[int, int, bool] = (0, 0, False)):
        """Logits and/or pooled features of ``source``'s images, each seen as test-time ``view`` (dy, dx, mirror)."""
        import torch

        self._check_fitted()
        check_images(source.images)
        cuda = self.device_.startswith("cuda")
        net = self.net_
        mean, std = self._norm_tensors()
        features_out: list[np.ndarray] = []
        captured: dict[str, torch.Tensor] = {}
        hook = None
        if want_features:
            hook = embedding_module(net).register_forward_hook(lambda m, i, o: captured.__setitem__("f", o.flatten(1)))
        logits_out: list[np.ndarray] = []
        try:
            with torch.inference_mode(), _autocast(self.device_):
                for images in source.sequential(batch_size):
                    batch = torch.from_numpy(view_of(images, *view))
                    if cuda:
                        batch = batch.pin_memory()
                    x = batch.to(self.device_, non_blocking=True).float().div_(255.0)
                    x = ((x - mean) / std).contiguous(memory_format=torch.channels_last)
                    logits = net(x)
                    if want_logits:
                        logits_out.append(logits.float().cpu().numpy())
                    if want_features:
                        features_out.append(captured["f"].float().cpu().numpy())
        finally:
            if hook is not None:
                hook.remove()
        if not len(source):
            raise DataError("There are no images to use: the view is empty.")
        logits_arr = np.concatenate(logits_out).astype(np.float64) if want_logits else None
        features_arr = np.concatenate(features_out).astype(np.float32) if want_features else None
        return logits_arr, features_arr

    def _check_fitted(self) -> None:
        if not hasattr(self, "net_"):
            raise ModelError("The model is not trained yet: call fit() or FixedModel.load() first.")

    # -- persistence --------------------------------------------------------------------------------
    def save(self, path: str | Path) -> str:
        """Save weights, normalisation and recipe to ``path``; returns the file's SHA-256.

        Crash-atomic: the file is written beside ``path`` under a temporary name, flushed to disk, then renamed over
        ``path``, so ``path`` holds the old file or the whole new one. A path that a run records should never be
        replaced, though (the run would then hold another file's hash): runs save with :meth:`save_checkpoint`.
        """
        path = Path(path)
        temp, sha = self._write_temp(path.parent, path.stem)
        durable_rename(temp, path)
        return sha

    def save_checkpoint(self, folder: str | Path, stem: str) -> tuple[Path, str]:
        """Save under a name holding the file's hash, ``<stem>-<sha256[:16]>.pt`` in ``folder``; returns it and the
        SHA-256.

        Content-addressed: a new checkpoint never replaces one a run recorded, so a crash between saving and
        recording leaves the recorded checkpoint loadable with its hash (and the new file unreferenced, for
        ``active_learning.model.outputs.collect_checkpoints``). The file is written under a temporary name
        (``.<stem>.<pid>.<random>.tmp``), flushed to disk, hashed and renamed.
        """
        folder = Path(folder)
        temp, sha = self._write_temp(folder, stem)
        path = folder / checkpoint_name(stem, sha)
        durable_rename(temp, path)
        return path, sha

    def _write_temp(self, folder: Path, stem: str) -> tuple[Path, str]:
        """Write the checkpoint to a new temporary file in ``folder``, flushed to disk; returns it and its hash."""
        import torch

        self._check_fitted()
        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu() for k, v in self.net_.state_dict().items()}
        payload = {
            "state_dict": state,
            "num_classes": self.num_classes,
            "recipe": self.recipe.to_dict(),
            "mean": self.mean_,
            "std": self.std_,
        }
        temp = folder / f".{stem}.{os.getpid()}.{uuid.uuid4().hex[:8]}{TEMP_SUFFIX}"
        try:
            with open(temp, "wb") as handle:
                torch.save(payload, handle)
                handle.flush()
                os.fsync(handle.fileno())
            return temp, file_sha256(temp)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: str | Path, expected_sha256: str | None = None, device: str | None = None) -> "FixedModel":
        """Load a checkpoint written by ``save``; refuse it if its hash differs from the recorded one."""
        import torch

        path = Path(path)
        if not path.is_file():
            raise ModelError(f"Checkpoint {path} does not exist; retrain the model or fix the path in the run.")
        if expected_sha256 is not None and file_sha256(path) != expected_sha256:
            raise ModelError(f"Checkpoint {path} changed since it was recorded (SHA-256 mismatch); retrain the model.")
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises many types for a corrupt file
            raise ModelError(f"Checkpoint {path} could not be read ({type(exc).__name__}); retrain the model.") from exc
        if not isinstance(payload, dict) or not {"state_dict", "num_classes", "recipe", "mean", "std"} <= set(payload):
            raise ModelError(f"Checkpoint {path} was not written by FixedModel.save; pass a model checkpoint "
                             "(starting weights go to FixedModel(init_weights=...)).")
        model = cls(num_classes=int(payload["num_classes"]), recipe=Recipe.from_dict(payload["recipe"]), device=device)
        model.device_ = select_device(device)
        net = build_network(model.recipe.architecture, model.num_classes, model.recipe.widths)
        net.load_state_dict(payload["state_dict"])
        net = net.to(model.device_, memory_format=torch.channels_last)
        net.eval()
        model.net_ = net
        model.mean_ = list(payload["mean"])
        model.std_ = list(payload["std"])
        return model


def _load_init_weights(net, path: str) -> None:
    import torch

    file = Path(path)
    if not file.is_file():
        raise ModelError(f"Initial weights {file} do not exist; pass a torchvision ResNet-18 state dict file.")
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelError(f"Initial weights {file} could not be read ({type(exc).__name__}).") from exc
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    own = net.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not any(k.startswith("layer1") for k in usable):
        raise ModelError(f"Initial weights {file} do not look like a ResNet-18 state dict.")
    net.load_state_dict(usable, strict=False)


