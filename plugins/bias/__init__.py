"""Bias: class balance, per-class and per-slice performance, confusion and underperforming embedding groups.

Pure statistics over arrays (no FiftyOne): ``class_metrics``, ``distribution``, ``binning``, ``significance``,
``slices`` (results and scoring), ``slice_search``, ``groups``, ``images``. The FiftyOne layer, one stage per module:
``read`` -> ``report`` (``run_bias``: fill -> read -> compute -> write) with ``result`` (the stored report),
``settings`` (the one set of defaults), ``text`` (the CLI's report) and ``views`` (a slice as a FiftyOne view).
"""
