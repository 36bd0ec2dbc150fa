"""The fixed model's architectures: torchvision ResNet-18 (the ``fast`` recipe) and a small-photo network.

``PhotoNet`` is built for inputs of 32-64 px: no early downsampling (a ResNet-18 stem divides a 32 px image by 4
before its first block), three blocks of conv -> max-pool -> BatchNorm -> GELU -> conv -> BatchNorm -> GELU whose
pooling halves the resolution, global max pooling and a linear head. The design follows what makes fast CIFAR-10
training work (Keller Jordan's airbench, arXiv 2404.00498, and the ResNet-9 "DAWNBench" line before it): a
first convolution initialised to whiten 2x2 patches of the training images, pooling right after the first
convolution of a block so the second one runs at the lower resolution, BatchNorm without a learned scale, and a
scaled-down head. Measured throughputs and accuracies are in docs/model.md.
"""

from __future__ import annotations

from typing import Sequence


from active_learning.errors import ModelError

RESNET18 = "torchvision.models.resnet18"
PHOTO_NET = "curation.photo_net"
ARCHITECTURES = (RESNET18, PHOTO_NET)


def _torch():
    import torch

    return torch


def build_network(architecture: str, num_classes: int, widths: Sequence[int] = ()):
    """An untrained network of ``architecture`` with ``num_classes`` outputs."""
    if architecture == RESNET18:
        import torchvision

        return torchvision.models.resnet18(weights=None, num_classes=num_classes)
    if architecture == PHOTO_NET:
        return _photo_net(num_classes, tuple(widths) or (128, 256, 512))
    raise ModelError(f"Unknown architecture {architecture!r}; known: {', '.join(ARCHITECTURES)}.")


def embedding_module(net):
    """The module whose output (flattened) is the sample's embedding: the global pooling before the head."""
    if hasattr(net, "avgpool"):
        return net.avgpool  # torchvision ResNets
    if hasattr(net, "pool"):
        return net.pool
    raise ModelError(f"{type(net).__name__} has no global pooling layer to take embeddings from.")


def _photo_net(num_classes: int, widths: tuple[int, ...]):
    torch = _torch()
    nn = torch.nn
    if len(widths) != 3 or min(widths) < 4:
        raise ModelError(f"The photo network takes three block widths >= 4; got {list(widths)}.")

    def norm(channels: int):
        layer = nn.BatchNorm2d(channels, momentum=0.4, eps=1e-12)
        layer.weight.requires_grad_(False)  # a fixed scale of 1: only the shift is learned
        return layer

    class ConvGroup(nn.Module):
        def __init__(self, c_in: int, c_out: int):
            super().__init__()
            self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
            self.pool = nn.MaxPool2d(2)
            self.norm1 = norm(c_out)
            self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
            self.norm2 = norm(c_out)
            self.act = nn.GELU()

        def forward(self, x):
            x = self.act(self.norm1(self.pool(self.conv1(x))))
            return self.act(self.norm2(self.conv2(x)))

    class PhotoNet(nn.Module):
        whiten_width = 24  # 12 whitening filters of 2x2x3 patches and their negatives

        def __init__(self):
            super().__init__()
            self.whiten = nn.Conv2d(3, self.whiten_width, 2, padding=0, bias=True)
            self.act = nn.GELU()
            self.blocks = nn.Sequential(ConvGroup(self.whiten_width, widths[0]), ConvGroup(widths[0], widths[1]),
                                        ConvGroup(widths[1], widths[2]))
            self.pool = nn.Sequential(nn.AdaptiveMaxPool2d(1), nn.Flatten())
            self.head = nn.Linear(widths[2], num_classes, bias=False)
            self.head_scale = 1 / 9  # airbench's temperature: smaller logits early in training

        def forward(self, x):
            features = self.pool(self.blocks(self.act(self.whiten(x))))
            return self.head(features) * self.head_scale

    return PhotoNet()


def init_whitening(net, images_normalised) -> None:
    """Set a PhotoNet's first convolution to whiten the 2x2 patches of ``images_normalised`` (N, 3, H, W) floats.

    The filters are the patch covariance's eigenvectors scaled by 1/sqrt(eigenvalue), and their negatives (so that
    GELU keeps both signs); the layer then stays frozen. A network that sees decorrelated inputs from its first
    step trains faster on short schedules. ResNet-18 is left as it is.
    """
    torch = _torch()
    if not hasattr(net, "whiten"):
        return
    layer = net.whiten
    with torch.no_grad():
        patches = torch.nn.functional.unfold(images_normalised.float(), kernel_size=2)  # (N, 12, L)
        patches = patches.transpose(1, 2).reshape(-1, patches.shape[1]).double()
        patches = patches - patches.mean(dim=0, keepdim=True)
        covariance = patches.T @ patches / max(len(patches) - 1, 1)
        eigenvalues, eigenvectors = torch.linalg.eigh(covariance)
        filters = (eigenvectors.T / torch.sqrt(eigenvalues.clamp_min(0) + 5e-4)[:, None]).float()
        filters = filters.flip(0).reshape(-1, 3, 2, 2)  # largest variance first
        layer.weight.copy_(torch.cat([filters, -filters]))
        layer.bias.zero_()
    layer.weight.requires_grad_(False)
    layer.bias.requires_grad_(False)
