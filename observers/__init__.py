"""Where runs are recorded (MongoDB, or the local file store as a fallback) and read back."""
import tracker  # noqa: F401  (silences Sacred's pkg_resources warning before Sacred is imported)
