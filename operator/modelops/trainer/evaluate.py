"""Held-out metrics, named as in `modelops.api.estimators.METRICS` so validation gates can use them."""

from __future__ import annotations

from typing import Any

import numpy as np


def classification_metrics(model: Any, X: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """accuracy, precision, recall, f1 (binary on classes_[1], macro for multiclass), roc_auc."""
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support, roc_auc_score

    classes = model.classes_
    pred = model.predict(X)
    binary = len(classes) == 2
    average = "binary" if binary else "macro"
    kwargs: dict[str, Any] = {"pos_label": classes[1]} if binary else {"labels": classes}
    precision, recall, f1, _ = precision_recall_fscore_support(
        y, pred, average=average, zero_division=0, **kwargs
    )
    metrics = {
        "accuracy": float(accuracy_score(y, pred)),
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
    }
    if hasattr(model, "predict_proba"):
        proba = model.predict_proba(X)
        try:
            if binary:
                auc = roc_auc_score(y, proba[:, 1], labels=classes)
            else:
                auc = roc_auc_score(y, proba, multi_class="ovr", labels=classes)
            if np.isfinite(auc):
                metrics["roc_auc"] = float(auc)
        except ValueError:
            pass  # a class absent from the test split (only without stratify): no AUC, not an error
    return metrics


def regression_metrics(model: Any, X: np.ndarray, y: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    pred = model.predict(X)
    return {
        "rmse": float(np.sqrt(mean_squared_error(y, pred))),
        "mae": float(mean_absolute_error(y, pred)),
        "r2": float(r2_score(y, pred)),
    }
