"""LightGBM head, seed 001: small-data gradient boosting, optional Optuna search nested in the fold.

The search (``n_trials`` > 0) scores parameter sets by an inner K-fold CV over the rows ``fit``
receives, i.e. the training part of the outer fold only; the fold's validation rows never reach it.
Regression kinds: one regressor per target; classification: one multiclass model;
multilabel: one binary classifier per class.
"""

from __future__ import annotations

from typing import Any

import lightgbm as lgb
import numpy as np
from sklearn.model_selection import GroupKFold, KFold, StratifiedGroupKFold, StratifiedKFold

from ..metrics import METRICS, primary
from ..tasks import TaskSpec
from .base import Head, require_positive

# Small-data settings: shallow trees, few leaves, strong subsampling.
SMALL_DATA = {
    "n_estimators": 300,
    "learning_rate": 0.05,
    "num_leaves": 15,
    "max_depth": -1,
    "min_child_samples": 10,
    "subsample": 0.8,
    "subsample_freq": 1,
    "colsample_bytree": 0.5,
    "reg_lambda": 1.0,
}


class LGBMHead(Head):
    type_name = "lgbm"

    def __init__(
        self,
        task: TaskSpec,
        seed: int = 1,
        *,
        n_trials: int = 0,
        inner_folds: int = 3,
        threads: int = 1,
        params: dict | None = None,
    ) -> None:
        if n_trials:
            require_positive(self.type_name, "n_trials", n_trials, integer=True)
        require_positive(self.type_name, "inner_folds", inner_folds, integer=True)
        require_positive(self.type_name, "threads", threads, integer=True)
        super().__init__(task, seed, n_trials=n_trials, inner_folds=inner_folds, threads=threads, params=params or {})
        self.models: list = []
        self.best_params: dict[str, Any] = {}
        self.constant: np.ndarray | None = None

    def _estimator(self, overrides: dict) -> Any:
        settings = {
            **SMALL_DATA,
            **self.params["params"],
            **overrides,
            "random_state": self.seed,
            "deterministic": True,
            "force_row_wise": True,
            "n_jobs": self.params["threads"],
            "verbose": -1,
        }
        return (lgb.LGBMRegressor if self.task.is_regression else lgb.LGBMClassifier)(**settings)

    def _columns(self, y: np.ndarray) -> list[np.ndarray]:
        """The target of each model: per target / per class column, or the class index once."""
        if self.task.kind == "classification":
            return [np.asarray(y, dtype=np.int64)]
        y = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
        return [
            (y[:, c] > 0.5).astype(np.int64) if self.task.kind == "multilabel" else y[:, c] for c in range(y.shape[1])
        ]

    def _fit_models(
        self, X: np.ndarray, y: np.ndarray, overrides: dict, sample_weight: np.ndarray | None = None
    ) -> list:
        models = []
        for target in self._columns(y):
            if not self.task.is_regression and len(np.unique(target)) < 2:
                models.append(("constant", target[0]))  # a tag or class absent/always present in this fold
            else:
                models.append(("model", self._estimator(overrides).fit(X, target, sample_weight=sample_weight)))
        return models

    def _predict_models(self, models: list, X: np.ndarray) -> np.ndarray:
        kind = self.task.kind
        if kind == "classification":
            tag, model = models[0]
            P = np.zeros((len(X), len(self.task.classes)))
            if tag == "constant":
                P[:, int(model)] = 1.0
            else:
                P[:, model.classes_] = model.predict_proba(X)
            return P
        columns = []
        for tag, model in models:
            if tag == "constant":
                columns.append(np.full(len(X), float(model)))
            elif kind == "multilabel":
                columns.append(model.predict_proba(X)[:, 1])
            else:
                columns.append(model.predict(X))
        return np.stack(columns, axis=1)

    def search_space(self, trial) -> dict:
        return {
            "num_leaves": trial.suggest_int("num_leaves", 4, 31),
            "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.2, log=True),
            "n_estimators": trial.suggest_int("n_estimators", 100, 600, step=50),
            "min_child_samples": trial.suggest_int("min_child_samples", 3, 30),
            "colsample_bytree": trial.suggest_float("colsample_bytree", 0.2, 1.0),
            "reg_lambda": trial.suggest_float("reg_lambda", 1e-3, 10.0, log=True),
        }

    def inner_cv_score(
        self,
        X: np.ndarray,
        y: np.ndarray,
        overrides: dict,
        groups: np.ndarray | None = None,
        sample_weight: np.ndarray | None = None,
    ) -> float:
        """Mean primary metric over an inner K-fold of (X, y), signed so that lower is better;
        ``groups`` (speakers, or a clip's crops) never straddle an inner split. The models are fitted
        with ``sample_weight``, the metric is unweighted."""
        name, greater = primary(self.task.kind)
        stratify = np.asarray(y) if self.task.kind == "classification" else None
        k = self.params["inner_folds"]
        if groups is not None and len(np.unique(groups)) >= 2:
            splitter = (StratifiedGroupKFold if stratify is not None else GroupKFold)(
                n_splits=min(k, len(np.unique(groups))), shuffle=True, random_state=self.seed
            )
        else:
            groups = None
            splitter = (StratifiedKFold if stratify is not None else KFold)(
                n_splits=k, shuffle=True, random_state=self.seed
            )
        scores = []
        for fit_idx, val_idx in splitter.split(X, stratify, groups):
            weight = None if sample_weight is None else sample_weight[fit_idx]
            models = self._fit_models(X[fit_idx], y[fit_idx], overrides, weight)
            scores.append(METRICS[name](y[val_idx], self._predict_models(models, X[val_idx]), self.task))
        return -float(np.mean(scores)) if greater else float(np.mean(scores))

    def fit(
        self, X: np.ndarray, y: np.ndarray, groups: np.ndarray | None = None, sample_weight: np.ndarray | None = None
    ) -> LGBMHead:
        """``sample_weight`` (e.g. pseudo-labelled rows) weighs each row in every booster."""
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y)
        sample_weight = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        self.best_params = {}
        if self.params["n_trials"]:
            # deferred: optional, only lgbm's tuning uses it
            import optuna

            optuna.logging.set_verbosity(optuna.logging.WARNING)
            study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=self.seed))
            study.optimize(
                lambda trial: self.inner_cv_score(X, y, self.search_space(trial), groups, sample_weight),
                n_trials=self.params["n_trials"],
                show_progress_bar=False,
            )
            self.best_params = dict(study.best_params)
        self.models = self._fit_models(X, y, self.best_params, sample_weight)
        return self

    def student_options(self) -> dict[str, Any]:
        if not self.params["n_trials"]:
            return {}
        return {"n_trials": 0, "params": {**self.params["params"], **self.best_params}}

    def predict(self, X: np.ndarray) -> dict[str, np.ndarray]:
        return {"main": self._predict_models(self.models, np.asarray(X, dtype=np.float64))}

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "best_params": self.best_params}
