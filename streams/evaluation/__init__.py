"""``pulse evaluate``: labelled streams through the real pipeline, scored from what users read.

:mod:`~streams.evaluation.harness` runs a stream through Kafka, the worker and Redis; one module
per capability generates its labelled stream (from ``studies/evaluate_*``), runs it and
prints the issue's target figures: :mod:`.atmosphere`, :mod:`.models`, :mod:`.matching`,
:mod:`.insights`.
"""
