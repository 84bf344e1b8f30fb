"""Standardised ridge regression with leave-one-out alpha choice, in memory bounded by a block of rows.

The linear head's regression path. scikit-learn's ``make_pipeline(StandardScaler(), RidgeCV(...))``
gives the same model (a test keeps the two equal) but holds ~6 float64 copies of the training
matrix (the scaler's output, RidgeCV's float64 cast and centred copy, an n x p product per alpha):
~600 MB for 80k x 192 float32 embeddings, the bulk of a train job's memory. Here every pass over X
reads ``block_rows`` rows at a time, so beyond X itself only p x p and n x n_alphas arrays are held.

The algebra is RidgeCV's "cov" mode (p < n): with Z the standardised, centred rows and
Z'Z = V diag(lam) V', the ridge prediction for alpha is ybar + Q diag(1/(lam + alpha)) Q'y with
Q = Z V, and row i's hat value is 1/n + sum_j Q_ij^2 / (lam_j + alpha). Leave-one-out residuals
are (y_i - yhat_i) / (1 - h_i) (the efficient LOO identity), and each target takes the alpha with
the smallest mean squared LOO residual, as ``RidgeCV(alpha_per_target=True)`` does.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.preprocessing import StandardScaler

BLOCK_ROWS = 4096


def _blocks(n: int, size: int):
    return (slice(start, min(start + size, n)) for start in range(0, n, size))


class BlockwiseRidgeCV(RegressorMixin, BaseEstimator):
    """Standardise, then ridge with one alpha per target chosen by leave-one-out error (or given).

    ``alphas``: the candidate grid, or with ``fixed=True`` one alpha per target (no choice made).
    Fitted: ``scaler_`` (a StandardScaler, fitted block by block), ``alpha_`` (n_targets,), ``coef_``
    (n_targets, p) on standardised features, ``intercept_`` (n_targets,), ``loo_mse_`` (n_alphas,
    n_targets; None when fixed).
    """

    def __init__(self, alphas=(1.0,), fixed: bool = False, block_rows: int = BLOCK_ROWS) -> None:
        self.alphas = alphas
        self.fixed = fixed
        self.block_rows = block_rows

    def _standardised(self, X: np.ndarray, rows: slice) -> np.ndarray:
        return (np.asarray(X[rows], dtype=np.float64) - self.scaler_.mean_) / self.scaler_.scale_

    def fit(self, X: np.ndarray, y: np.ndarray) -> BlockwiseRidgeCV:
        n, p = X.shape
        Y = np.asarray(y, dtype=np.float64).reshape(n, -1)
        alphas = np.asarray(self.alphas, dtype=np.float64).ravel()
        if self.fixed and len(alphas) not in (1, Y.shape[1]):
            raise ValueError(f"{len(alphas)} fixed alphas for {Y.shape[1]} targets")
        self.scaler_ = StandardScaler()
        for rows in _blocks(n, self.block_rows):
            self.scaler_.partial_fit(X[rows])
        y_mean = Y.mean(axis=0)
        gram, zty = np.zeros((p, p)), np.zeros((p, Y.shape[1]))
        for rows in _blocks(n, self.block_rows):
            Z = self._standardised(X, rows)
            gram += Z.T @ Z
            zty += Z.T @ (Y[rows] - y_mean)
        lam, V = np.linalg.eigh(gram)
        lam = np.clip(lam, 0.0, None)  # rounding can leave tiny negative eigenvalues
        qty = V.T @ zty  # (p, targets)
        if self.fixed:
            chosen = np.broadcast_to(alphas, (Y.shape[1],)).copy()
            self.loo_mse_ = None
        else:
            shrink = 1.0 / (lam[:, None] + alphas[None, :])  # (p, n_alphas)
            sse = np.zeros((len(alphas), Y.shape[1]))
            for rows in _blocks(n, self.block_rows):
                Q = self._standardised(X, rows) @ V  # (b, p)
                hat = 1.0 / n + (Q * Q) @ shrink  # (b, n_alphas)
                for t in range(Y.shape[1]):
                    fitted = y_mean[t] + Q @ (shrink * qty[:, t : t + 1])  # (b, n_alphas)
                    sse[:, t] += (((Y[rows, t : t + 1] - fitted) / (1.0 - hat)) ** 2).sum(axis=0)
            self.loo_mse_ = sse / n
            # first of the smallest: ties go to the smaller alpha, as np.argmin in RidgeCV
            chosen = alphas[np.argmin(self.loo_mse_, axis=0)]
        self.alpha_ = chosen
        self.coef_ = np.stack([V @ (qty[:, t] / (lam + chosen[t])) for t in range(Y.shape[1])])
        self.intercept_ = y_mean
        self.n_features_in_ = p
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        out = np.empty((len(X), len(self.intercept_)))
        for rows in _blocks(len(X), self.block_rows):
            out[rows] = self._standardised(X, rows) @ self.coef_.T + self.intercept_
        return out
