"""Cosine kNN head: softmax(similarity / temperature)-weighted mean of the neighbours' targets."""

from __future__ import annotations

import numpy as np
from scipy.special import softmax
from sklearn.neighbors import NearestNeighbors

from ..tasks import TaskSpec
from .base import Head, require_positive


class KNNHead(Head):
    type_name = "knn"

    def __init__(self, task: TaskSpec, seed: int = 0, *, k: int = 11, temperature: float = 0.15) -> None:
        k = require_positive(self.type_name, "k", k, integer=True)
        temperature = require_positive(self.type_name, "temperature", temperature)
        super().__init__(task, seed, k=int(k), temperature=float(temperature))
        self.index: NearestNeighbors | None = None
        self.targets: np.ndarray | None = None

    def fit(self, X: np.ndarray, y: np.ndarray) -> KNNHead:
        X = np.asarray(X, dtype=np.float64)
        if self.task.kind == "classification":
            # One-hot rows, so the weighted mean is a class distribution summing to 1.
            self.targets = np.eye(len(self.task.classes))[np.asarray(y, dtype=np.int64)]
        else:
            self.targets = np.asarray(y, dtype=np.float64).reshape(len(X), -1)
        n_neighbors = min(self.params["k"], len(X))
        self.index = NearestNeighbors(n_neighbors=n_neighbors, metric="cosine").fit(X)
        return self

    def predict(self, X: np.ndarray) -> dict[str, np.ndarray]:
        distance, neighbour = self.index.kneighbors(np.asarray(X, dtype=np.float64))
        weights = softmax((1.0 - distance) / self.params["temperature"], axis=1)
        P = np.einsum("nk,nkc->nc", weights, self.targets[neighbour])
        if self.task.kind == "multilabel":
            P = np.clip(P, 0.0, 1.0)  # weights sum to 1 only up to rounding: 1.0000000000000002
        return {"main": P}
