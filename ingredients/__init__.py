"""Sacred ingredients: what is trained. The general trainer, and each task's data and model."""
import observers  # noqa: F401  (silences Sacred's pkg_resources warning before Sacred is imported)
