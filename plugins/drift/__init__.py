"""Drift: two-sample tests and label shift between a reference and target views.

Pure statistics over arrays: ``stats`` (MMD, KS-BBSD, BBSE, OOD scores) and ``label_shift`` (is a prior change
real?). The FiftyOne layer: ``views`` (which views to compare) -> ``read`` -> ``report`` (``run_drift``: fill ->
read -> compute -> write), with ``result`` (the stored report), ``settings`` (the one set of defaults) and ``text``.
"""
