"""Recording runs: the Sacred observer that writes each run to the file store and MongoDB, and what it records."""
import gc
import warnings

# Sacred 0.8.7 imports pkg_resources, which warns on every start; the pin to setuptools<81 keeps it working.
warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)

# Importing torch and Sacred creates ~300,000 long-lived objects, and the default thresholds walk them in full
# collections again and again (~1 s of a short run). Collect rarely until imports_done().
DEFAULT_GC_THRESHOLD = gc.get_threshold()
gc.set_threshold(100_000, 50, 100)


def imports_done():
    """Restore the collector's thresholds and freeze the imported objects out of its way, for the rest of the process
    and for its shutdown (which otherwise spends ~1 s collecting them)."""
    gc.set_threshold(*DEFAULT_GC_THRESHOLD)
    gc.freeze()
