"""The fixed model: recipes, networks, training, K-fold and disjoint splits, checkpoints, out-of-sample outputs over
views, the model run and the settings offered from it, trust, your own model."""
