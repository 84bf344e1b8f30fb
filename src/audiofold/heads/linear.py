"""Linear head: ridge regression for regression kinds, logistic regression for class kinds."""

from __future__ import annotations

import warnings

import numpy as np
import sklearn
from sklearn.linear_model import LogisticRegression, Ridge, RidgeCV
from sklearn.metrics import log_loss
from sklearn.model_selection import GridSearchCV, GroupKFold, KFold, StratifiedGroupKFold, StratifiedKFold
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from ..tasks import TaskSpec
from .base import Head, require_positive
from .ridge import BlockwiseRidgeCV

# C "auto" (default): a log grid scored by log loss in an inner CV of the training fold. The
# fixed values below (multilabel: the FSD seed notebook's) stand in when the fold is too small for it.
DEFAULT_C = {"classification": 1.0, "multilabel": 2.0}
AUTO_CS = np.logspace(-4, 2, 7)
INNER_SPLITS = 3
# alpha "auto": leave-one-out (efficient GCV) choice inside the training fold, per target
# (BlockwiseRidgeCV; with sample weights, scikit-learn's RidgeCV)
AUTO_ALPHAS = np.logspace(-2, 5, 15)


def as_float(X) -> np.ndarray:
    """X as a float array, float32 kept: embeddings are float32, and a float64 copy of the training
    matrix (plus the scaler's output in float64) was the largest part of a train job's memory."""
    X = np.asarray(X)
    return X if X.dtype in (np.float32, np.float64) else X.astype(np.float64)


class LinearHead(Head):
    type_name = "linear"

    def __init__(
        self,
        task: TaskSpec,
        seed: int = 0,
        *,
        alpha: float | str = "auto",
        C: float | str = "auto",
        max_iter: int = 2000,
    ) -> None:
        if isinstance(alpha, (list, tuple)):  # one per target: what student_options freezes
            for value in alpha:
                require_positive(self.type_name, "alpha", value)
        elif alpha != "auto":
            require_positive(self.type_name, "alpha", alpha)
        require_positive(self.type_name, "max_iter", max_iter, integer=True)
        if C != "auto":  # unused by regression kinds
            require_positive(self.type_name, "C", C)
        super().__init__(task, seed, alpha=alpha, C=C, max_iter=max_iter)
        self.model: Pipeline | BlockwiseRidgeCV | None = None
        self.constant_class: int | None = None
        self.chosen_C: float | None = None  # the C the last fit used (searched when C is "auto")
        self.cv_log_loss: dict[str, float] | None = None  # inner-CV log loss per C of the search

    def _logistic(self, C: float, weighted: bool = False) -> LogisticRegression:
        model = LogisticRegression(C=C, max_iter=self.params["max_iter"], random_state=self.seed)
        return model.set_fit_request(sample_weight=True) if weighted else model

    @staticmethod
    def _scaler(weighted: bool) -> StandardScaler:
        # Weights (pseudo-labelled rows) weigh the loss only; the scaling is the rows' plain mean / std.
        return StandardScaler().set_fit_request(sample_weight=False) if weighted else StandardScaler()

    def _inner_splits(self, target: np.ndarray, groups: np.ndarray | None) -> list | None:
        """Inner CV splits of the training rows for choosing C; None when there are too few rows.

        Groups (speakers, source recordings) never straddle an inner split, as in the outer folds:
        otherwise the search rewards memorising a group and picks too large a C.
        """
        classification = self.task.kind == "classification"
        index = np.zeros(len(target))
        if groups is not None:
            k = min(INNER_SPLITS, len(np.unique(groups)))
            splitter = (
                (
                    StratifiedGroupKFold(k, shuffle=True, random_state=self.seed)
                    if classification
                    else GroupKFold(k, shuffle=True, random_state=self.seed)
                )
                if k >= 2
                else None
            )
        else:
            k = min(INNER_SPLITS, len(target) // 2)
            stratify = classification and k >= 2 and np.unique(target, return_counts=True)[1].min() >= k
            splitter = (
                (
                    StratifiedKFold(k, shuffle=True, random_state=self.seed)
                    if stratify
                    else KFold(k, shuffle=True, random_state=self.seed)
                )
                if k >= 2
                else None
            )
        if splitter is None:
            return None
        splits = list(splitter.split(index, target if classification else None, groups))
        if classification:  # logistic regression needs two classes in every inner training part
            splits = [(tr, va) for tr, va in splits if len(np.unique(target[tr])) >= 2]
        return splits or None

    def _neg_log_loss(self, model: Pipeline, X: np.ndarray, y: np.ndarray) -> float:
        """GridSearchCV scorer: minus the log loss over the task's classes (binary cross-entropy
        averaged over tags for multilabel), whatever classes this inner split happened to see."""
        n_classes = len(self.task.classes)
        if self.task.kind == "classification":
            P = np.zeros((len(X), n_classes))
            P[:, model.classes_] = model.predict_proba(X)
            return -log_loss(y, P / P.sum(axis=1, keepdims=True), labels=np.arange(n_classes))
        P = model.predict_proba(X)[:, -n_classes:]
        return -log_loss(np.ravel(y), np.ravel(P), labels=[0, 1])

    def _fit_logistic(
        self, make_estimator, X: np.ndarray, target: np.ndarray, groups: np.ndarray | None, weight: dict
    ) -> None:
        """Fit scaler + logistic model; with C "auto", one C shared by all classes (and all
        one-vs-rest tags) chosen by inner-CV log loss (unweighted), then refit on all of ``X``.
        ``weight``: ``{"sample_weight": w}`` routed to the logistic model(s), or empty."""
        C = self.params["C"]
        splits = self._inner_splits(target, groups) if C == "auto" else None
        if C == "auto" and splits is None:
            C = DEFAULT_C[self.task.kind]
        weighted = bool(weight)
        if C != "auto":
            self.model = make_pipeline(self._scaler(weighted), make_estimator(C, weighted))
            self.model.fit(X, target, **weight)
            self.chosen_C, self.cv_log_loss = float(C), None
            return
        pipeline = make_pipeline(self._scaler(weighted), make_estimator(1.0, weighted))
        last = pipeline.steps[-1][0]
        name = f"{last}__estimator__C" if isinstance(pipeline[-1], OneVsRestClassifier) else f"{last}__C"
        search = GridSearchCV(
            pipeline, {name: list(AUTO_CS)}, scoring=self._neg_log_loss, cv=splits, refit=True, error_score="raise"
        )
        search.fit(X, target, **weight)
        self.model = search.best_estimator_
        self.chosen_C = float(search.best_params_[name])
        self.cv_log_loss = {
            f"{c:g}": round(-float(s), 6) for c, s in zip(AUTO_CS, search.cv_results_["mean_test_score"])
        }

    def fit(
        self, X: np.ndarray, y: np.ndarray, groups: np.ndarray | None = None, sample_weight: np.ndarray | None = None
    ) -> LinearHead:
        """``sample_weight`` (e.g. pseudo-labelled rows) weighs the ridge / logistic loss; it goes
        through scikit-learn's metadata routing, which one-vs-rest needs to pass it on."""
        with sklearn.config_context(enable_metadata_routing=sample_weight is not None):
            return self._fit(as_float(X), y, groups, sample_weight)

    @property
    def chosen_alpha(self):
        """The fitted ridge alpha(s), one per target (regression kinds)."""
        return (self.model[-1] if isinstance(self.model, Pipeline) else self.model).alpha_

    def student_options(self) -> dict:
        if self.task.is_regression and self.params["alpha"] == "auto" and self.model is not None:
            return {"alpha": [float(a) for a in np.atleast_1d(self.chosen_alpha)]}
        if not self.task.is_regression and self.params["C"] == "auto" and self.chosen_C is not None:
            return {"C": self.chosen_C}
        return {}

    def _fit(
        self, X: np.ndarray, y: np.ndarray, groups: np.ndarray | None, sample_weight: np.ndarray | None
    ) -> LinearHead:
        kind = self.task.kind
        weighted = sample_weight is not None
        weight = {"sample_weight": np.asarray(sample_weight, dtype=np.float64)} if weighted else {}
        if self.task.is_regression:
            alpha = self.params["alpha"]
            target = np.asarray(y, dtype=np.float64).reshape(len(X), -1)
            if not weighted:  # the same model as the pipeline below, in memory bounded by a block of rows
                auto = alpha == "auto"
                self.model = BlockwiseRidgeCV(AUTO_ALPHAS if auto else np.atleast_1d(alpha), fixed=not auto)
                self.model.fit(X, target)
                return self
            estimator = (
                RidgeCV(alphas=AUTO_ALPHAS, alpha_per_target=True)
                if alpha == "auto"
                else Ridge(alpha=np.asarray(alpha, dtype=np.float64), random_state=self.seed)
            )
            estimator.set_fit_request(sample_weight=True)
            self.model = make_pipeline(self._scaler(weighted), estimator).fit(X, target, **weight)
            return self
        if kind == "classification":
            target = np.asarray(y, dtype=np.int64)
            if len(np.unique(target)) < 2:
                # Logistic regression needs two classes; a one-class fold predicts that class.
                self.constant_class, self.model = int(target[0]), None
                return self
            make_estimator = self._logistic
        else:
            # One-vs-rest; sklearn replaces classes that are all 0 or all 1 in this fold by a
            # constant predictor (their frequency), which is what we want.
            make_estimator = lambda C, weighted: OneVsRestClassifier(self._logistic(C, weighted))  # noqa: E731
            target = (np.asarray(y) > 0.5).astype(np.int64)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Label .* is present in all training examples")
            warnings.filterwarnings("ignore", message="The least populated class in y has only")
            self._fit_logistic(make_estimator, X, target, None if groups is None else np.asarray(groups), weight)
        return self

    def predict(self, X: np.ndarray) -> dict[str, np.ndarray]:
        X = as_float(X)
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
                P /= P.sum(axis=1, keepdims=True)  # a float32 fit's rows sum to 1 only within float32 rounding
        else:
            # With a single class sklearn sees a binary target and returns [P(0), P(1)].
            P = self.model.predict_proba(X)[:, -len(self.task.classes) :]
        return {"main": np.asarray(P, dtype=np.float64)}

    def describe(self) -> dict:
        info = super().describe()
        if self.chosen_C is not None:
            info["chosen_C"] = self.chosen_C
            info["cv_log_loss"] = self.cv_log_loss
        return info
