"""Fast tests of the pure functions, without servers or subprocess runs: `python -m pytest tests/unit`."""
