"""A real classifier's outputs on real images, in seconds: Fashion-MNIST (``../shared/data``) and a logistic regression.

A logistic regression on 40 PCA components of 3,000 training images scores about 0.81 on the 10,000 test images
and confuses Shirt with T-shirt/top, Pullover and Coat, as real models do; its test-set probabilities are
out-of-sample. The drift tests split the test set at random (unshifted batches) or plant a class share in a batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

FASHION = Path(__file__).resolve().parents[2] / "shared" / "data" / "fashion-mnist"
CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
SHIRT = CLASSES.index("Shirt")


@dataclass(frozen=True)
class Outputs:
    """The model's outputs on the 10,000 test images, with the images and their labels."""

    probs: np.ndarray  # (10000, 10) predicted probabilities
    embeddings: np.ndarray  # (10000, 40) PCA features
    labels: np.ndarray  # (10000,) class indices
    images: np.ndarray  # (10000, 28, 28) uint8


@lru_cache(maxsize=1)
def fashion_outputs(num_train: int = 3000, components: int = 40) -> Outputs:
    """Fit PCA + logistic regression on the first ``num_train`` training images; outputs on the test images."""
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression

    from active_learning.data.idx import IMAGES_MAGIC, LABELS_MAGIC, read_idx

    if not FASHION.is_dir():
        raise FileNotFoundError(f"{FASHION} is missing: the tests need ../shared/data beside the checkout")
    train = read_idx(FASHION / "train-images-idx3-ubyte.gz", IMAGES_MAGIC)[:num_train].reshape(num_train, -1) / 255
    train_labels = read_idx(FASHION / "train-labels-idx1-ubyte.gz", LABELS_MAGIC)[:num_train]
    images = read_idx(FASHION / "t10k-images-idx3-ubyte.gz", IMAGES_MAGIC)
    labels = read_idx(FASHION / "t10k-labels-idx1-ubyte.gz", LABELS_MAGIC).astype(np.int64)
    pca = PCA(components, random_state=0).fit(train)
    model = LogisticRegression(max_iter=300).fit(pca.transform(train), train_labels)
    embeddings = pca.transform(images.reshape(len(images), -1) / 255)
    return Outputs(model.predict_proba(embeddings), embeddings, labels, images)


def planted(rows: np.ndarray, labels: np.ndarray, size: int, cls: int, share: float,
            rng: np.random.Generator) -> np.ndarray:
    """``size`` of ``rows`` of which a fraction ``share`` has label ``cls`` (the rest drawn from the other classes)."""
    inside, outside = rows[labels[rows] == cls], rows[labels[rows] != cls]
    count = int(round(share * size))
    return np.concatenate([rng.choice(inside, count, replace=False), rng.choice(outside, size - count, replace=False)])
