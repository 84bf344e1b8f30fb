"""Per-class blend weights for multilabel tasks: one weight vector per class column.

A candidate can be the best model of one class and a poor one of another (a backbone that hears
birds but not engines); one weight vector for every class averages that away. Here each class's
column gets its own forward ensemble selection (``blend.greedy_weights``' rule, run on that
column), scored by LWLRAP with every other column held at the global blend: exactly the class's
effect on the task metric, row ranks included (a per-column AUC would ignore how the column's
scores sit against the row's other classes, which is what LWLRAP scores).

Overfitting guard: rare classes have few positives, and a column search on a handful of them
fits noise. Classes with fewer than ``min_positives`` positives keep the global weights; the
others are shrunk towards them, ``n / (n + shrinkage)`` of their own weights and the rest global
(``shrinkage`` acts as that many pseudo-positives voting for the global weights). Whether the
result beats global weights at all is decided by ``blend.fit_blend`` on cross-fitted rows, and the
nested score (``audiofold.ensemble.blend_nested``) re-makes that decision per outer fold.
"""

from __future__ import annotations

import numpy as np

from .options import BlendOptions

# A pick must improve the running column by more than float noise to count as better.
MIN_IMPROVEMENT = 1e-12


class ColumnScorer:
    """LWLRAP (times the number of positive cells) of a fixed score matrix ``G`` with one column
    replaced, for many replacement columns at once.

    Precision of a positive cell = positives scored >= it / labels scored >= it in its row (ties
    count against, as ``metrics.lwlrap_per_class``). With column c replaced by v, a positive cell
    (i, j != c) changes only by whether v_i >= G_ij; a positive cell (i, c) compares v_i with the
    row's other cells. The counts without column c are kept, so one evaluation costs
    O(positive cells + positives of c x classes) per replacement column instead of a full LWLRAP.
    """

    def __init__(self, y: np.ndarray, G: np.ndarray):
        self.positive = np.asarray(y) > 0.5
        self.G = np.asarray(G, dtype=np.float64)
        self.rows, self.cols = np.nonzero(self.positive)
        self.values = self.G[self.rows, self.cols]
        # (positive cells, C): which cells of the row are scored at or above the positive one
        self.above = self.G[self.rows] >= self.values[:, None]
        self.num = (self.above & self.positive[self.rows]).sum(axis=1)
        self.den = self.above.sum(axis=1)
        self.n_positive_cells = len(self.rows)

    def totals(self, c: int, V: np.ndarray) -> np.ndarray:
        """Sum of the precisions of every positive cell with column c replaced by each row of V (K, N)."""
        return self.column(c)(V)

    def column(self, c: int):
        """``totals`` for class c as a function of V alone: what does not depend on V is computed once."""
        other = self.cols != c
        rows, values = self.rows[other], self.values[other]
        pos_c = self.positive[rows, c]
        above_c = self.above[other, c]
        num = self.num[other] - (pos_c & above_c)
        den = self.den[other] - above_c
        own_rows = np.flatnonzero(self.positive[:, c])
        rest = np.delete(self.G[own_rows], c, axis=1)  # (n_c, C-1): the row's other classes
        rest_pos = np.delete(self.positive[own_rows], c, axis=1)

        def totals(V: np.ndarray) -> np.ndarray:
            V = np.atleast_2d(V)
            hit = V[:, rows] >= values
            total = ((num + (hit & pos_c)) / (den + hit)).sum(axis=1)
            if len(own_rows):
                ge = rest >= V[:, own_rows, None]  # (K, n_c, C-1)
                total = total + ((1 + (ge & rest_pos).sum(axis=2)) / (1 + ge.sum(axis=2))).sum(axis=1)
            return total

        return totals


def column_greedy(scorer: ColumnScorer, c: int, columns: np.ndarray, rounds: int) -> np.ndarray:
    """Forward selection with replacement on class c: ``columns`` (K, N) are the candidates' class-c
    scores; each round adds the candidate whose running average scores best; returns the pick
    counts of the best round (the earliest of ties) over its size, shape (K,)."""
    counts, total = np.zeros(len(columns)), np.zeros(columns.shape[1])
    best_value, best_weights = -np.inf, None
    totals = scorer.column(c)
    for r in range(1, rounds + 1):
        values = totals((total[None, :] + columns) / r)
        pick = int(np.flatnonzero(values >= values.max() - MIN_IMPROVEMENT)[0])
        counts[pick] += 1
        total = total + columns[pick]
        if values[pick] > best_value + MIN_IMPROVEMENT:
            best_value, best_weights = values[pick], counts / r
    return best_weights


def class_weights(
    stack: np.ndarray,
    y: np.ndarray,
    global_weights: np.ndarray,
    *,
    rounds: int = BlendOptions.greedy_rounds,
    min_positives: int = BlendOptions.per_class_min_positives,
    shrinkage: float = BlendOptions.per_class_shrinkage,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-class weights (C, K) for transformed candidates ``stack`` (K, N, C) of targets y (N, C).

    ``global_weights`` (K,): the global blend's weights; they hold the other columns fixed while a
    class is searched and are what rare classes keep and every class is shrunk towards.
    Returns (weights (C, K), own share per class (C,): 0 for classes that kept the global weights).
    """
    global_weights = np.asarray(global_weights, dtype=np.float64)
    global_weights = global_weights / global_weights.sum()
    n_classes = stack.shape[2]
    positives = (np.asarray(y) > 0.5).sum(axis=0)
    scorer = ColumnScorer(y, np.tensordot(global_weights, stack, axes=1))
    weights = np.tile(global_weights, (n_classes, 1))
    share = np.zeros(n_classes)
    for c in np.flatnonzero(positives >= max(min_positives, 1)):
        own = column_greedy(scorer, int(c), stack[:, :, c], rounds)
        share[c] = positives[c] / (positives[c] + shrinkage)
        weights[c] = share[c] * own + (1 - share[c]) * global_weights
    return weights, share


def combine(weights: np.ndarray, stack: np.ndarray) -> np.ndarray:
    """Per-class weighted sum: weights (C, K), stack (K, N, C) -> (N, C)."""
    return np.einsum("ck,knc->nc", weights, stack)
