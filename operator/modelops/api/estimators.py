"""The allow-list of scikit-learn estimators a ModelVersion may name.

Names only: the trainer maps each to its class. Nothing outside this list is ever
imported, so a spec cannot make the trainer load arbitrary code.
"""

from __future__ import annotations

from typing import Literal

CLASSIFIERS: tuple[str, ...] = (
    "LogisticRegression",
    "RidgeClassifier",
    "SGDClassifier",
    "DecisionTreeClassifier",
    "RandomForestClassifier",
    "ExtraTreesClassifier",
    "GradientBoostingClassifier",
    "HistGradientBoostingClassifier",
    "KNeighborsClassifier",
    "GaussianNB",
)
REGRESSORS: tuple[str, ...] = (
    "LinearRegression",
    "Ridge",
    "Lasso",
    "ElasticNet",
    "SGDRegressor",
    "DecisionTreeRegressor",
    "RandomForestRegressor",
    "ExtraTreesRegressor",
    "GradientBoostingRegressor",
    "HistGradientBoostingRegressor",
    "KNeighborsRegressor",
)
ALLOWED: tuple[str, ...] = CLASSIFIERS + REGRESSORS

EstimatorName = Literal[ALLOWED]  # type: ignore[valid-type]

PREPROCESSING = ("none", "standard", "minmax", "robust")
Preprocessing = Literal["none", "standard", "minmax", "robust"]

CLASSIFIER_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc")
REGRESSOR_METRICS = ("rmse", "mae", "r2")
LOWER_IS_BETTER = frozenset({"rmse", "mae"})
METRICS = CLASSIFIER_METRICS + REGRESSOR_METRICS
MetricName = Literal[METRICS]  # type: ignore[valid-type]


def task_of(estimator: str) -> Literal["classification", "regression"]:
    """Which kind of problem an allowed estimator solves."""
    return "classification" if estimator in CLASSIFIERS else "regression"


CLASSIFIER_SCORING = (
    "accuracy",
    "balanced_accuracy",
    "f1",
    "f1_macro",
    "f1_weighted",
    "precision",
    "recall",
    "roc_auc",
    "roc_auc_ovr",
    "neg_log_loss",
)
REGRESSOR_SCORING = (
    "r2",
    "neg_mean_absolute_error",
    "neg_mean_squared_error",
    "neg_root_mean_squared_error",
)
Scoring = Literal[CLASSIFIER_SCORING + REGRESSOR_SCORING]  # type: ignore[valid-type]
"""scikit-learn scorer names a search may compare (greater is better for all of them)."""


def default_scoring(estimator: str) -> str:
    """What `estimator.score` measures, as GridSearchCV scores when no scoring is given."""
    return "accuracy" if task_of(estimator) == "classification" else "r2"
