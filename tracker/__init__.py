"""sacred-tracker's command line: `tracker db|board|sync|rerun|resume ...` around recorded runs."""
import observers  # noqa: F401  (silences Sacred's pkg_resources warning before Sacred is imported)
