"""Recording runs: the Sacred observer that writes each run to the file store and MongoDB, and what it records."""
