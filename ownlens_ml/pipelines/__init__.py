"""Pipelines: training (and, later, batch and real-time scoring) over every model spec."""
