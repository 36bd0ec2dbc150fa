"""Getting images in: import sources (folder trees, IDX, FiftyOne formats), the importer, its crash-safe swap,
decoding and the cache."""
