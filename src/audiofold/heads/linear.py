"""Linear head: ridge regression for regression kinds, logistic regression for class kinds."""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.linear_model import LogisticRegression, Ridge, RidgeCV
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from ..tasks import TaskSpec
from .base import Head, require_positive

# Inverse regularisation defaults per kind; multilabel uses the FSD seed notebook's value.
DEFAULT_C = {"classification": 1.0, "multilabel": 2.0}
# alpha "auto": leave-one-out (efficient GCV) choice inside the training fold, per target
AUTO_ALPHAS = np.logspace(-2, 5, 15)


class LinearHead(Head):
    type_name = "linear"

    def __init__(
        self,
        task: TaskSpec,
        seed: int = 0,
        *,
        alpha: float | str = "auto",
        C: float | None = None,
        max_iter: int = 2000,
    ) -> None:
        C = DEFAULT_C.get(task.kind) if C is None else C
        if alpha != "auto":
            require_positive(self.type_name, "alpha", alpha)
        require_positive(self.type_name, "max_iter", max_iter, integer=True)
        if C is not None:  # unused by regression kinds
            require_positive(self.type_name, "C", C)
        super().__init__(task, seed, alpha=alpha, C=C, max_iter=max_iter)
        self.model: Pipeline | None = None
        self.constant_class: int | None = None

    def _logistic(self) -> LogisticRegression:
        return LogisticRegression(C=self.params["C"], max_iter=self.params["max_iter"], random_state=self.seed)

    def fit(self, X: np.ndarray, y: np.ndarray) -> "LinearHead":
        X = np.asarray(X, dtype=np.float64)
        kind = self.task.kind
        if self.task.is_regression:
            alpha = self.params["alpha"]
            estimator = (RidgeCV(alphas=AUTO_ALPHAS, alpha_per_target=True) if alpha == "auto"
                         else Ridge(alpha=alpha, random_state=self.seed))
            target = np.asarray(y, dtype=np.float64).reshape(len(X), -1)
        elif kind == "classification":
            target = np.asarray(y, dtype=np.int64)
            if len(np.unique(target)) < 2:
                # Logistic regression needs two classes; a one-class fold predicts that class.
                self.constant_class, self.model = int(target[0]), None
                return self
            estimator = self._logistic()
        else:
            # One-vs-rest; sklearn replaces classes that are all 0 or all 1 in this fold by a
            # constant predictor (their frequency), which is what we want.
            estimator = OneVsRestClassifier(self._logistic())
            target = (np.asarray(y) > 0.5).astype(np.int64)
        self.model = make_pipeline(StandardScaler(), estimator)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Label .* is present in all training examples")
            self.model.fit(X, target)
        return self

    def predict(self, X: np.ndarray) -> dict[str, np.ndarray]:
        X = np.asarray(X, dtype=np.float64)
        kind = self.task.kind
        if self.task.is_regression:
            P = self.model.predict(X).reshape(len(X), -1)
        elif kind == "classification":
            # Columns follow task.classes even when a class was absent from the training fold.
            P = np.zeros((len(X), len(self.task.classes)))
            if self.model is None:
                P[:, self.constant_class] = 1.0
            else:
                P[:, self.model.classes_] = self.model.predict_proba(X)
        else:
            # With a single class sklearn sees a binary target and returns [P(0), P(1)].
            P = self.model.predict_proba(X)[:, -len(self.task.classes) :]
        return {"main": np.asarray(P, dtype=np.float64)}
