"""Monitoring: reference profiles, drift, live performance, skew, freshness, alerts and their gauges.

Beside the pipelines: it reads the registry, the feature store and the prediction log, and
writes ``ml_reference_profiles``, ``ml_model_monitoring`` and ``ml_alerts``; it never imports
serving or the CLI (serving reads its results through ``monitoring.prometheus``).
"""
