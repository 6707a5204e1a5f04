"""Sacred ingredients: what is trained. The general trainer, and each task's data and model."""
