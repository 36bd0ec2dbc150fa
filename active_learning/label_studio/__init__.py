"""Label Studio, behind one interface.

- ``api``: :class:`~active_learning.label_studio.api.LabelStudioAPI` (what the product asks of Label Studio), its
  plain data and the messages of every Label Studio error (secrets masked).
- ``adapter``: the real server through ``label-studio-sdk`` (the only code that touches the SDK or HTTP);
  ``fake``: the same interface in memory, for fast tests; ``connection``: settings, tokens and ``connect()``.
- ``config`` (labeling config, annotation validation), ``projects`` (one project per dataset), ``media`` (local
  files or uploads), ``tasks`` (pushing a round once), ``completed`` (finished annotations, majority vote),
  ``ingest`` (labels into the dataset with history and provenance), ``preannotate`` (the model's guesses and the
  notes), ``simulate`` (a simulated annotator).
"""
