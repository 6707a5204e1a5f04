"""Where runs are recorded (MongoDB, or the local file store as a fallback) and read back; the lowest layer."""
import warnings

# Sacred 0.8.7 imports pkg_resources, which warns on every start; the pin to setuptools<81 keeps it working.
warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
