"""What a sequence of stages did to every task: the accuracy matrix and its summaries.

R[i][j] is the held-out accuracy on task j after stage i (stages and tasks numbered alike,
0 … T−1 here, 1 … T in the papers); b[j] is task j's accuracy at the random initialisation.

    ACC   average accuracy           (1/T) Σ_j R[T−1][j]                    (Lopez-Paz & Ranzato 2017)
    BWT   backward transfer          1/(T−1) Σ_{j<T−1} (R[T−1][j] − R[j][j])   (same; negative:
                                     forgetting)
    FWT   forward transfer           1/(T−1) Σ_{j≥1} (R[j−1][j] − b[j])        (same; what
                                     earlier stages did for a task not yet trained)
    forgetting of task j (j < T−1)   max_{j≤l<T−1} R[l][j] − R[T−1][j]      (Chaudhry et al.
                                     2018: the drop from its best value since it was trained,
                                     not only from R[j][j]); ``average_forgetting``: the mean
                                     over j < T−1.
"""

import numpy as np


def _matrix(R):
    R = np.asarray(R, dtype=np.float64)
    if R.ndim != 2 or R.shape[0] != R.shape[1]:
        raise ValueError(f"the accuracy matrix must be T x T (stage x task), got {R.shape}")
    return R


def average_accuracy(R):
    R = _matrix(R)
    return float(R[-1].mean())


def backward_transfer(R):
    R = _matrix(R)
    T = len(R)
    if T < 2:
        return None
    return float(np.mean([R[T - 1, j] - R[j, j] for j in range(T - 1)]))


def forward_transfer(R, initial):
    R, initial = _matrix(R), np.asarray(initial, dtype=np.float64)
    T = len(R)
    if T < 2:
        return None
    return float(np.mean([R[j - 1, j] - initial[j] for j in range(1, T)]))


def forgetting(R):
    """Per task j < T−1: max over stages j ≤ l < T−1 of R[l][j], minus R[T−1][j]."""
    R = _matrix(R)
    T = len(R)
    return [float(R[j:T - 1, j].max() - R[T - 1, j]) for j in range(T - 1)]


def average_forgetting(R):
    values = forgetting(R)
    return float(np.mean(values)) if values else None


def summarise(R, initial):
    """Every summary of the matrix, with the definitions' names (for summary.json)."""
    return {"average_accuracy": average_accuracy(R), "backward_transfer": backward_transfer(R),
            "forward_transfer": forward_transfer(R, initial), "forgetting": forgetting(R),
            "average_forgetting": average_forgetting(R),
            "definitions": {
                "average_accuracy": "ACC = (1/T) sum_j R[T][j]",
                "backward_transfer": "BWT = 1/(T-1) sum_{j<T} (R[T][j] - R[j][j])",
                "forward_transfer": "FWT = 1/(T-1) sum_{j>=2} (R[j-1][j] - b_j), b_j: accuracy "
                                    "at random initialisation",
                "forgetting": "f_j = max_{j<=l<T} R[l][j] - R[T][j] (Chaudhry et al. 2018), "
                              "for j < T"}}
