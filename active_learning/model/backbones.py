"""Bring your own backbone: a pretrained network's frozen features, computed once and kept as an embeddings field.

``compute_backbone_embeddings(view, arch, weights)`` loads the user's weights into an architecture, runs every image
of the view through it at the backbone's input size (features after global pooling, no classifier), and writes
them to ``backbone_<arch>_embedding`` with the weights' SHA-256 in the run ``backbone_<arch>``: a second call with
the same weights reuses the field (the cache lives in MongoDB like every other output). The K-fold head of
``active_learning.model.own_model`` then turns the features into out-of-sample probabilities. Nothing is downloaded: the
weights are a file the user gives.

Architectures: ``efficientnet_lite0`` (written here, in the ``efficientnet_pytorch`` state-dict naming of the
published EfficientNet-Lite0 weights: no squeeze-excitation, ReLU6, TensorFlow "same" padding, inputs scaled to
[-1, 1]) and any torchvision classification model by name (``torchvision:resnet50``, ``torchvision:efficientnet_b0``,
...; ImageNet normalisation), whose classifier is dropped.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from active_learning.errors import DataError, InputError, ModelError
from active_learning.data.images import load_images
from active_learning.model.fixed import file_sha256, select_device
from active_learning.store.runs import load_run, record_run
from active_learning.store.fields import write_fields

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
LITE_MEAN, LITE_STD = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
# EfficientNet-B0/Lite0 stages: (expansion, kernel, stride, output channels, repeats)
LITE0_STAGES = ((1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3), (6, 5, 1, 112, 3),
                (6, 5, 2, 192, 4), (6, 3, 1, 320, 1))


@dataclass(frozen=True)
class BackboneSummary:
    """What ``compute_backbone_embeddings`` did."""

    field: str
    num_images: int
    dimension: int
    reused: bool
    seconds: float
    weights_sha256: str


def _same_conv(c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1):
    """A convolution with TensorFlow's "same" padding (asymmetric for stride 2), as the Lite0 weights expect."""
    import torch

    class SameConv(torch.nn.Conv2d):
        def forward(self, x):
            h, w = x.shape[-2:]
            pad_h = max((math.ceil(h / self.stride[0]) - 1) * self.stride[0] + self.kernel_size[0] - h, 0)
            pad_w = max((math.ceil(w / self.stride[1]) - 1) * self.stride[1] + self.kernel_size[1] - w, 0)
            if pad_h or pad_w:
                x = torch.nn.functional.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2))
            return super().forward(x)

    return SameConv(c_in, c_out, kernel, stride=stride, groups=groups, bias=False, padding=0)


def efficientnet_lite0():
    """EfficientNet-Lite0 without its classifier: (N, 3, H, W) in [-1, 1] -> (N, 1280) pooled features."""
    import torch

    nn = torch.nn

    def norm(channels: int):
        return nn.BatchNorm2d(channels, eps=1e-3, momentum=0.01)

    class Block(nn.Module):
        def __init__(self, c_in: int, c_out: int, expand: int, kernel: int, stride: int):
            super().__init__()
            mid = c_in * expand
            if expand != 1:
                self._expand_conv = _same_conv(c_in, mid, 1)
                self._bn0 = norm(mid)
            self._depthwise_conv = _same_conv(mid, mid, kernel, stride, groups=mid)
            self._bn1 = norm(mid)
            self._project_conv = _same_conv(mid, c_out, 1)
            self._bn2 = norm(c_out)
            self.residual = stride == 1 and c_in == c_out
            self.expand = expand != 1

        def forward(self, x):
            out = torch.nn.functional.relu6(self._bn0(self._expand_conv(x))) if self.expand else x
            out = torch.nn.functional.relu6(self._bn1(self._depthwise_conv(out)))
            out = self._bn2(self._project_conv(out))
            return out + x if self.residual else out

    class Lite0(nn.Module):
        def __init__(self):
            super().__init__()
            self._conv_stem = _same_conv(3, 32, 3, 2)
            self._bn0 = norm(32)
            blocks, c_in = [], 32
            for expand, kernel, stride, c_out, repeats in LITE0_STAGES:
                for i in range(repeats):
                    blocks.append(Block(c_in, c_out, expand, kernel, stride if i == 0 else 1))
                    c_in = c_out
            self._blocks = nn.ModuleList(blocks)
            self._conv_head = _same_conv(320, 1280, 1)
            self._bn1 = norm(1280)

        def forward(self, x):
            x = torch.nn.functional.relu6(self._bn0(self._conv_stem(x)))
            for block in self._blocks:
                x = block(x)
            x = torch.nn.functional.relu6(self._bn1(self._conv_head(x)))
            return x.mean(dim=(2, 3))

    return Lite0()


def build_backbone(arch: str, weights: str | Path):
    """(network in eval mode without its classifier, input mean, input std) with the user's weights loaded."""
    import torch

    path = Path(weights)
    if not path.is_file():
        raise ModelError(f"Backbone weights {path} do not exist; pass the state-dict file of your pretrained model.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad file
        raise ModelError(f"Backbone weights {path} could not be read ({type(exc).__name__}).") from exc
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if arch == "efficientnet_lite0":
        net, mean, std = efficientnet_lite0(), LITE_MEAN, LITE_STD
        state = {k: v for k, v in state.items() if not k.startswith("_fc.")}
    elif arch.startswith("torchvision:"):
        import torchvision

        name = arch.split(":", 1)[1]
        if name not in torchvision.models.list_models(module=torchvision.models):
            raise InputError(f"torchvision has no classification model {name!r}; e.g. torchvision:resnet50.")
        net, mean, std = torchvision.models.get_model(name, weights=None), IMAGENET_MEAN, IMAGENET_STD
        for head in ("fc", "classifier", "heads", "head"):
            if hasattr(net, head):
                setattr(net, head, torch.nn.Identity())
                state = {k: v for k, v in state.items() if not k.startswith(f"{head}.")}
                break
    else:
        raise InputError(f"Unknown backbone {arch!r}; use efficientnet_lite0 or torchvision:<model name>.")
    missing, unexpected = net.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ModelError(f"The weights in {path.name} do not fit {arch}: {len(missing)} missing and "
                         f"{len(unexpected)} unexpected tensors (e.g. {(list(missing) + list(unexpected))[:3]}).")
    return net.eval(), mean, std


def backbone_features(net, images: np.ndarray, mean, std, device: str, batch_size: int = 64) -> np.ndarray:
    """Pooled features of uint8 images (N, 3, S, S), batched, bf16 on a GPU."""
    import torch

    cuda = device.startswith("cuda")
    net = net.to(device, memory_format=torch.channels_last)
    mean_t = torch.tensor(mean, device=device).view(1, 3, 1, 1)
    std_t = torch.tensor(std, device=device).view(1, 3, 1, 1)
    out = []
    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
        for start in range(0, len(images), batch_size):
            x = torch.from_numpy(images[start:start + batch_size]).to(device).float().div_(255.0)
            x = ((x - mean_t) / std_t).contiguous(memory_format=torch.channels_last)
            out.append(net(x).float().flatten(1).cpu().numpy())
    return np.concatenate(out).astype(np.float32)


def backbone_field(arch: str) -> str:
    """The embeddings field of backbone ``arch``, e.g. ``backbone_efficientnet_lite0_embedding``."""
    return "backbone_" + "".join(c if c.isalnum() else "_" for c in arch.lower()) + "_embedding"


def compute_backbone_embeddings(view, arch: str, weights: str | Path, image_size: int = 224,
                                device: str | None = None, batch_size: int = 64) -> BackboneSummary:
    """The view's images through the frozen backbone into ``backbone_field(arch)``; reused when already there."""
    started = time.perf_counter()
    if image_size < 32:
        raise InputError(f"The backbone's input size must be at least 32 px; got {image_size}.")
    field = backbone_field(arch)
    sha = file_sha256(weights) if Path(weights).is_file() else ""
    run_key = field.removesuffix("_embedding")
    dataset = view._dataset
    if run_key in dataset.list_runs() and field in dataset.get_field_schema():
        config, _ = load_run(dataset, run_key)
        todo = view.exists(field, bool=False)
        if config.get("weights_sha256") == sha and config.get("image_size") == image_size and not len(todo):
            dim = len(view.first()[field])
            return BackboneSummary(field, len(view), dim, True, time.perf_counter() - started, sha)
    net, mean, std = build_backbone(arch, weights)
    ids, paths = view.values(["id", "filepath"])
    if not ids:
        raise DataError("The view is empty: there are no images to embed.")
    device = select_device(device)
    chunks = []
    for start in range(0, len(paths), 2048):  # decode and embed in chunks: memory stays bounded
        chunks.append(backbone_features(net, load_images(paths[start:start + 2048], image_size), mean, std, device,
                                        batch_size))
    features = np.concatenate(chunks)
    write_fields(dataset, ids, {field: features.astype(np.float64)})
    record_run(view, run_key, {"kind": "backbone_embeddings", "arch": arch, "weights": str(weights),
                               "weights_sha256": sha, "image_size": image_size, "field": field},
               {"num_images": len(ids), "dimension": int(features.shape[1]), "device": device,
                "seconds": time.perf_counter() - started})
    return BackboneSummary(field, len(ids), int(features.shape[1]), False, time.perf_counter() - started, sha)
