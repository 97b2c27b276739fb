"""Online inference: the in-process predictor, the HTTP service and its prediction log."""
