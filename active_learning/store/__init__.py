"""State in MongoDB: runs, per-sample fields, label history, the writer lease, and crash-test pause points."""
