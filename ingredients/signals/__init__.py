"""Frequency estimation from noisy 1-D signals: the `data` and `model` ingredients and their trainer task."""
