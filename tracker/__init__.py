"""sacred-tracker's command line: `tracker db|board|sync|rerun|resume ...` around recorded runs."""
import observers  # noqa: F401  (silences Sacred's pkg_resources warning before Sacred is imported)

from tracker.models import load_model  # noqa: E402  (`from tracker import load_model`)

__all__ = ["load_model"]
