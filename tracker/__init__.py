"""sacred-tracker's command line: `tracker db|board|sync|rerun|resume ...` around recorded runs."""
from tracker.models import load_model  # `from tracker import load_model`

__all__ = ["load_model"]
