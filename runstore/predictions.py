"""A run's per-example predictions of one split: the artifact `predictions.<split>.npz` (ARTIFACT; a flat name, as
every artifact is a file of the run folder) that the trainer, or observers.predictions.save_predictions, stores, and
reading it back for paired comparisons (runstore.paired).

The file is a NumPy .npz read with allow_pickle=False: data, never code. It holds

    ids         int64, one per example: its index in the split, which pairs it with another run's
    targets     the label (int64) of a classification, the target (float32) of a regression
    predicted   the predicted class (int64), or the prediction (float32, the target's shape)
    scores      classification only: float16 examples x classes, the softmax of the outputs (CIFAR's 10,000 test
                images take about 200 KB)
    names       classification only: the class names, when the task has them
    digest      the split's fingerprint (the run's info.data.splits.<split>, ingredients.fingerprint): predictions of
                different data are not paired
    split       the split's name
"""
from __future__ import annotations

import io
from dataclasses import dataclass

from typing import TYPE_CHECKING, Any

import numpy as np

from runstore.errors import UserError

if TYPE_CHECKING:
    from collections.abc import Iterable

    from runstore.run_store import StoredRun

ARTIFACT = "predictions.{split}.npz"
SPLIT = "test"  # the split that comparisons read by default: evaluated once, with the best model


@dataclass(frozen=True)
class Predictions:
    split: str
    digest: str
    ids: np.ndarray
    targets: np.ndarray
    predicted: np.ndarray
    scores: np.ndarray | None = None  # classification: examples x classes; None for regression
    names: tuple[str, ...] | None = None  # classification: the class names, if known

    @property
    def is_classification(self) -> bool:
        return self.scores is not None

    def correct(self) -> np.ndarray:
        """Whether each example's predicted class is its label (classification)."""
        return self.predicted == self.targets

    def absolute_errors(self) -> np.ndarray:
        """Each example's mean absolute error (regression)."""
        return np.abs(self.predicted.astype(float) - self.targets).reshape(len(self.ids), -1).mean(1)

    def label_scores(self) -> np.ndarray:
        """The score each example's true label got (classification)."""
        assert self.scores is not None, "a regression's predictions have no scores"
        return self.scores[np.arange(len(self.ids)), self.targets].astype(float)

    def to_bytes(self) -> bytes:
        """The .npz file's content."""
        buffer = io.BytesIO()
        arrays: dict[str, Any] = dict(ids=self.ids, targets=self.targets, predicted=self.predicted,
                                      digest=np.array(self.digest), split=np.array(self.split))
        if self.scores is not None:
            arrays["scores"] = self.scores
        if self.names is not None:
            arrays["names"] = np.array(self.names, dtype=str)
        np.savez_compressed(buffer, **arrays)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, content: bytes, label: str = "the file") -> Predictions:
        """The Predictions in an .npz file's `content`; UserError when it is not one (`label` names it)."""
        try:
            with np.load(io.BytesIO(content), allow_pickle=False) as stored:
                optional = {name: stored[name] if name in stored.files else None for name in ("scores", "names")}
                names = None if optional["names"] is None else tuple(str(name) for name in optional["names"])
                return cls(str(stored["split"]), str(stored["digest"]), stored["ids"], stored["targets"],
                           stored["predicted"], optional["scores"], names)
        except (OSError, ValueError, KeyError) as error:
            raise UserError(f"{label} is not a predictions file ({error}); store predictions with the trainer "
                            f"or observers.predictions.save_predictions") from None


def classification(split: str, digest: str, ids: Any, labels: Any, outputs: Any,
                   names: Iterable[str] | None = None) -> Predictions:
    """The Predictions of a classifier's `outputs` (examples x classes: logits); `names`: the class names."""
    outputs = np.asarray(outputs, dtype=np.float64)
    shifted = np.exp(outputs - outputs.max(1, keepdims=True))
    scores = shifted / shifted.sum(1, keepdims=True)
    return Predictions(split, digest, np.asarray(ids, dtype=np.int64), np.asarray(labels, dtype=np.int64),
                       outputs.argmax(1).astype(np.int64), scores.astype(np.float16),
                       None if names is None else tuple(str(name) for name in names))


def regression(split: str, digest: str, ids: Any, targets: Any, outputs: Any) -> Predictions:
    """The Predictions of a regression's `outputs`, of the targets' shape."""
    return Predictions(split, digest, np.asarray(ids, dtype=np.int64), np.asarray(targets, dtype=np.float32),
                       np.asarray(outputs, dtype=np.float32))


def read_predictions(run: StoredRun, split: str = SPLIT) -> Predictions:
    """The Predictions of `split` that the StoredRun `run` stored; UserError when it stored none."""
    name = ARTIFACT.format(split=split)
    content = run.artifact(name)
    if content is None:
        raise UserError(f"{run.label} stored no {name}; runs store their predictions at the end of training unless "
                        f"trainer.save_predictions=False (an experiment without the trainer calls "
                        f"observers.predictions.save_predictions)")
    return Predictions.from_bytes(content, f"{run.label}'s {name}")
