"""ingredients.metrics.per_class_metrics: each class's recall, precision and F1 from a confusion matrix, as
scikit-learn's precision_recall_fscore_support computes them from the predictions."""
import numpy as np
import pytest
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from ingredients.metrics import per_class_metrics


def test_per_class_metrics_are_scikit_learns():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 500)
    predicted = np.where(rng.random(500) < 0.6, labels, rng.integers(0, 4, 500))
    predicted[predicted == 3] = 2  # class 3 is never predicted: its precision is 0, as zero_division=0 says
    found = per_class_metrics(confusion_matrix(labels, predicted, labels=range(4)), ["a", "b", "c", "d"])
    precision, recall, f1, _ = precision_recall_fscore_support(labels, predicted, labels=range(4), zero_division=0)
    assert list(found) == ["a", "b", "c", "d"]
    for index, name in enumerate(found):
        assert found[name] == pytest.approx({"recall": recall[index], "precision": precision[index],
                                             "f1": f1[index]})
