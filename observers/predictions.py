"""`save_predictions(_run, split, targets, outputs)`: a run's per-example predictions of one split, stored as the
artifact predictions.<split>.npz (runstore.predictions), which `tracker compare --paired` reads.

The trainer calls it for every evaluated split at the end of training (unless trainer.save_predictions=False); an
experiment without the trainer calls it itself, once per split, after its final evaluation:

    from observers.predictions import save_predictions
    save_predictions(_run, "test", labels, logits, names=classes)   # integer labels: a classification
    save_predictions(_run, "test", targets, outputs)                # float targets: a regression
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from runstore.predictions import ARTIFACT, classification, regression

if TYPE_CHECKING:
    from collections.abc import Iterable

    from numpy.typing import ArrayLike
    from sacred.run import Run

    from runstore.predictions import Predictions


def save_predictions(run: Run, split: str, targets: ArrayLike, outputs: ArrayLike, names: Iterable[str] | None = None,
                     ids: ArrayLike | None = None, digest: str | None = None) -> Predictions:
    """Store the predictions of `split` as the artifact predictions.<split>.npz of `run` (Sacred's `_run`).

    `targets`: one per example, integer class labels (a classification: `outputs` are then examples x classes
    scores, e.g. logits) or float targets (a regression: `outputs` of the same shape); `names`: the class names;
    `ids`: each example's id (default: its position in the split); `digest`: the split's fingerprint (default: the
    run's info.data.splits.<split>, which the trainer records: ingredients.fingerprint). Returns the Predictions."""
    targets, outputs = np.asarray(targets), np.asarray(outputs)
    ids = np.arange(len(targets)) if ids is None else ids
    digest = digest if digest is not None else run.info.get("data", {}).get("splits", {}).get(split, "")
    if np.issubdtype(targets.dtype, np.integer):
        predictions = classification(split, digest, ids, targets, outputs, names)
    else:
        predictions = regression(split, digest, ids, targets, outputs)
    name = ARTIFACT.format(split=split)
    with tempfile.TemporaryDirectory(prefix="tracker-predictions-") as folder:
        path = Path(folder) / name
        path.write_bytes(predictions.to_bytes())
        run.add_artifact(str(path), name=name, content_type="application/octet-stream")
    return predictions
