#!/usr/bin/env bash
# Every GPU figure of the photo-model issue in one run, for a session that is lent a GPU (see docs/model.md):
# the model-quality table (CIFAR-10 all 50,000 photos, Fashion-MNIST and MNIST 60,000 each, both recipes, 5-fold)
# and planted label noise on all 50,000 CIFAR-10 photos (5-fold). Results go to benchmarks/results/*_cuda.json
# and, when $OUT is set (the device tool's folder that comes back), are copied there too.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python}"
"$PY" benchmarks/model_quality.py --device cuda --datasets cifar10 --recipes photo
"$PY" benchmarks/label_errors_cifar10.py --device cuda
"$PY" benchmarks/model_quality.py --device cuda --out benchmarks/results/model_quality_cuda_all.json
if [ -n "${OUT:-}" ]; then cp benchmarks/results/*_cuda*.json "$OUT"/; fi
