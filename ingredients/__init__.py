"""Sacred ingredients of the CIFAR-10 experiment: `data`, `model` and `trainer`."""
import tracker  # noqa: F401  (silences Sacred's pkg_resources warning before Sacred is imported)
