"""Evaluation metrics in plain NumPy, one function per definition, each checked against
scikit-learn's (``tests/test_scores.py``) where it is installed.

Classification (labels y ∈ {0..C-1}, predictions ŷ = argmax of the logits):

    confusion   M[i, j] = #{y = i and ŷ = j}                      (rows true, columns predicted)
    precision   P_c = M[c, c] / Σ_i M[i, c]      recall  R_c = M[c, c] / Σ_j M[c, j]
    F1          F1_c = 2 P_c R_c / (P_c + R_c)   (0 where a denominator is 0)
    macro F1    the mean of F1_c over the classes that occur (in y or in ŷ)
    weighted F1 Σ_c n_c F1_c / Σ_c n_c, n_c the class's support (its count in y)
    AUROC       one-vs-rest: for each class c, the probability that a random example of c
                scores higher on c than a random other one, P(s⁺ > s⁻) + ½ P(s⁺ = s⁻),
                computed from ranks (Mann–Whitney U); the mean over classes that have both

Multi-label (y ∈ {0, 1}^L, ŷ = logit > 0): micro F1 = 2 TP / (2 TP + FP + FN) over every
(example, label) pair; macro F1 the mean of each label's F1; subset accuracy the share of
examples with every label right; Hamming accuracy the share of pairs right.

Regression: MAE = mean |y − ŷ|, RMSE = √(mean (y − ŷ)²), R² = 1 − Σ(y − ŷ)² / Σ(y − ȳ)²
(per output, then averaged; 1 for a perfect fit of a constant target, 0 for an imperfect one);
Spearman's ρ = the Pearson correlation of the ranks of y and ŷ (ties given their mean rank;
None for a constant side): whether the order is right, whatever the scale.

Alignment (embeddings z beside predicted profiles ŷ, against true property profiles y, (N, D)):
distance ρ = Spearman's ρ between the cosine distances of all pairs of embeddings and the
Euclidean distances of their profiles (an embedding space ordered like the property space
scores 1); neighbour recall@k = the share of examples whose nearest profile neighbour is among
their k nearest embeddings (chance ≈ k / (N − 1)); and the regression scores of ŷ.

Retrieval (embeddings e with labels y; every example queries all the others, by cosine
similarity): recall@k = the share of queries with an example of their own label among their k
nearest; mAP = the mean over queries of the average precision of that ranking,
AP = (1/|pos|) Σ_{ranks r of positives} precision@r. Queries whose label no other example has
are left out.
"""

import numpy as np


# -- classification ------------------------------------------------------------------------------
def confusion_matrix(y_true, y_pred, num_classes):
    """(C, C) counts, rows the true class, columns the predicted one."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return matrix


def _ratio(numerator, denominator):
    """numerator / denominator, 0 where the denominator is 0 (scikit-learn's zero_division)."""
    numerator, denominator = np.asarray(numerator, float), np.asarray(denominator, float)
    return np.divide(numerator, denominator, out=np.zeros_like(numerator),
                     where=denominator > 0)


def precision_recall_f1(confusion):
    """Per class: {precision, recall, f1, support} as arrays of length C."""
    true_positive = np.diag(confusion)
    predicted, support = confusion.sum(0), confusion.sum(1)
    precision, recall = _ratio(true_positive, predicted), _ratio(true_positive, support)
    return {"precision": precision, "recall": recall,
            "f1": _ratio(2 * precision * recall, precision + recall), "support": support}


def f1_averages(confusion):
    """(macro F1, weighted F1) of a confusion matrix (module docstring)."""
    per_class = precision_recall_f1(confusion)
    occurring = (per_class["support"] > 0) | (confusion.sum(0) > 0)
    macro = float(per_class["f1"][occurring].mean()) if occurring.any() else 0.0
    support = per_class["support"]
    weighted = float((per_class["f1"] * support).sum() / support.sum()) if support.sum() else 0.0
    return macro, weighted


def binary_auroc(positive, scores):
    """P(s⁺ > s⁻) + ½ P(s⁺ = s⁻) for a boolean mask of positives; None without both sides.
    From ranks (ties share their mean rank): (Σ ranks of positives − n⁺(n⁺+1)/2) / (n⁺ n⁻)."""
    positive = np.asarray(positive, bool)
    n_positive = int(positive.sum())
    n_negative = len(positive) - n_positive
    if n_positive == 0 or n_negative == 0:
        return None
    ranks = average_ranks(np.asarray(scores, np.float64))
    return float((ranks[positive].sum() - n_positive * (n_positive + 1) / 2)
                 / (n_positive * n_negative))


def average_ranks(values):
    """Ranks 1..n of ``values``, ties given the mean of the ranks they span."""
    order = np.argsort(values, kind="stable")
    sorted_values = values[order]
    # the start of each run of equal values, and the mean rank of its members
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    ends = np.r_[starts[1:], len(values)]
    mean_rank = (starts + ends + 1) / 2.0
    ranks = np.empty(len(values))
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def auroc_one_vs_rest(y_true, scores):
    """The mean over classes of each class's AUROC against the rest (scores: (N, C)); the
    classes without positives or without negatives are left out; None if all are."""
    values = [binary_auroc(np.asarray(y_true) == c, scores[:, c]) for c in range(scores.shape[1])]
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def classification_scores(logits, y, detail=False):
    """accuracy, macro/weighted F1 and one-vs-rest AUROC of logits (N, C) against labels;
    with ``detail`` also per-class precision/recall/F1/support and the confusion matrix."""
    num_classes = logits.shape[1]
    predicted = logits.argmax(1)
    confusion = confusion_matrix(y, predicted, num_classes)
    macro, weighted = f1_averages(confusion)
    shifted = logits - logits.max(1, keepdims=True)  # AUROC of the softmax probabilities
    probabilities = np.exp(shifted) / np.exp(shifted).sum(1, keepdims=True)
    scores = {"accuracy": float((predicted == y).mean()), "macro_f1": macro,
              "weighted_f1": weighted, "auroc": auroc_one_vs_rest(y, probabilities)}
    if detail:
        per_class = precision_recall_f1(confusion)
        scores["per_class"] = {key: values.tolist() for key, values in per_class.items()}
        scores["confusion"] = confusion.tolist()
    return scores


# -- multi-label ---------------------------------------------------------------------------------
def multilabel_scores(logits, y, detail=False):
    """micro and macro F1, subset and Hamming accuracy and macro AUROC (over labels with both
    values) of logits (N, L) against y ∈ {0, 1}^(N, L); a label is predicted where logit > 0."""
    truth, predicted = np.asarray(y) > 0.5, logits > 0
    true_positive = (truth & predicted).sum(0)
    false_positive = (~truth & predicted).sum(0)
    false_negative = (truth & ~predicted).sum(0)
    micro = _ratio(2 * true_positive.sum(),
                   2 * true_positive.sum() + false_positive.sum() + false_negative.sum())
    per_label_f1 = _ratio(2 * true_positive, 2 * true_positive + false_positive + false_negative)
    aurocs = [binary_auroc(truth[:, k], logits[:, k]) for k in range(truth.shape[1])]
    aurocs = [a for a in aurocs if a is not None]
    scores = {"micro_f1": float(micro), "macro_f1": float(per_label_f1.mean()),
              "subset_accuracy": float((truth == predicted).all(1).mean()),
              "hamming_accuracy": float((truth == predicted).mean()),
              "auroc": float(np.mean(aurocs)) if aurocs else None}
    if detail:
        scores["per_label"] = {
            "precision": _ratio(true_positive, true_positive + false_positive).tolist(),
            "recall": _ratio(true_positive, true_positive + false_negative).tolist(),
            "f1": per_label_f1.tolist(), "support": truth.sum(0).tolist()}
    return scores


# -- regression ----------------------------------------------------------------------------------
def regression_scores(outputs, y, detail=False):
    """MAE, RMSE and R² (averaged over outputs) of outputs (N, D) against targets (N,) or
    (N, D); with ``detail`` and D > 1 also each output's (``per_output``: lists of D)."""
    predicted = outputs.reshape(len(y), -1).astype(np.float64)
    target = np.asarray(y, np.float64).reshape(len(y), -1)
    error = target - predicted
    residual = (error ** 2).sum(0)
    total = ((target - target.mean(0)) ** 2).sum(0)
    r2 = np.where(total > 0, 1 - residual / np.where(total > 0, total, 1),
                  np.where(residual == 0, 1.0, 0.0))
    each_rho = [spearman(target[:, k], predicted[:, k]) for k in range(target.shape[1])]
    rhos = [r for r in each_rho if r is not None]
    scores = {"mae": float(np.abs(error).mean()), "rmse": float(np.sqrt((error ** 2).mean())),
              "r2": float(r2.mean()), "spearman": float(np.mean(rhos)) if rhos else None}
    if detail and target.shape[1] > 1:
        scores["per_output"] = {"mae": np.abs(error).mean(0).tolist(),
                                "rmse": np.sqrt((error ** 2).mean(0)).tolist(),
                                "r2": r2.tolist(), "spearman": each_rho}
    return scores


def spearman(a, b):
    """Spearman's ρ of two equally long vectors (module docstring); None if one is constant."""
    ranks_a = average_ranks(np.asarray(a, np.float64))
    ranks_b = average_ranks(np.asarray(b, np.float64))
    ranks_a, ranks_b = ranks_a - ranks_a.mean(), ranks_b - ranks_b.mean()
    scale = np.sqrt((ranks_a ** 2).sum() * (ranks_b ** 2).sum())
    return float((ranks_a * ranks_b).sum() / scale) if scale > 0 else None


# -- alignment -----------------------------------------------------------------------------------
MAX_PAIRS_EXAMPLES = 2000  # distance ρ over the pairs of at most this many examples (2 M pairs)


def alignment_scores(outputs, y, detail=False, ks=(1, 5, 10)):
    """Distance ρ, neighbour recall@k and the profile regression scores (module docstring) of
    outputs (N, E + D) — E embedding coordinates, then D predicted profile values — against
    profiles y (N, D)."""
    y = np.asarray(y, np.float64).reshape(len(y), -1)
    width = y.shape[1]
    embeddings = np.asarray(outputs, np.float64)[:, :-width]
    profile = regression_scores(np.asarray(outputs)[:, -width:], y, detail)
    scores = {"distance_spearman": None, **{f"neighbour_recall_at_{k}": None for k in ks},
              **{f"profile_{key}": value for key, value in profile.items()}}
    if len(y) < 3:
        return scores
    first = slice(0, MAX_PAIRS_EXAMPLES)
    unit = embeddings[first] / np.maximum(np.linalg.norm(embeddings[first], axis=1,
                                                         keepdims=True), 1e-12)
    upper = np.triu_indices(len(unit), k=1)
    embedding_distance = (1 - unit @ unit.T)[upper]
    profile_distance = np.linalg.norm(y[first][:, None] - y[first][None], axis=2)[upper]
    scores["distance_spearman"] = spearman(embedding_distance, profile_distance)
    nearest_profile = np.array([_nearest(y, row) for row in range(len(y))])
    hits = {k: [] for k in ks}
    for start, block in _similarity_rows(embeddings):
        order = np.argsort(-block, axis=1, kind="stable")
        wanted = nearest_profile[start:start + len(block), None]
        for k in ks:
            hits[k].extend((order[:, :k] == wanted).any(1).tolist())
    scores.update({f"neighbour_recall_at_{k}": float(np.mean(hits[k])) for k in ks})
    return scores


def _nearest(points, row):
    """The index of the point nearest ``points[row]`` (itself excluded)."""
    distance = np.linalg.norm(points - points[row], axis=1)
    distance[row] = np.inf
    return int(distance.argmin())


# -- node salience --------------------------------------------------------------------------------
def salience_scores(salience, sizes, positive, values):
    """How well per-node salience agrees with per-node truth, graph by graph (``sizes``: each
    graph's nodes; ``positive``: a boolean per node, e.g. polar atoms; ``values``: a number per
    node, e.g. log P contributions), then averaged over the graphs where it is defined:
    AUROC of the salience for the positives (a graph needs both kinds of node), precision@k
    (the share of positives among the k most salient nodes, k the graph's positives) and
    Spearman's ρ with ``values`` (a graph needs three nodes and no constant side)."""
    aurocs, precisions, rhos = [], [], []
    start = 0
    for size in sizes:
        rows = slice(start, start + size)
        start += size
        s, hit, value = salience[rows], np.asarray(positive[rows], bool), values[rows]
        auroc = binary_auroc(hit, s)
        if auroc is not None:
            aurocs.append(auroc)
            top = np.argsort(-s, kind="stable")[:int(hit.sum())]
            precisions.append(float(hit[top].mean()))
        rho = spearman(s, value) if size >= 3 else None
        if rho is not None:
            rhos.append(rho)
    mean = (lambda found: float(np.mean(found)) if found else None)
    return {"auroc": mean(aurocs), "precision_at_k": mean(precisions), "spearman": mean(rhos),
            "graphs_scored": len(aurocs)}


# -- retrieval -----------------------------------------------------------------------------------
def _similarity_rows(embeddings, chunk=1024):
    """Yield (start, cosine similarities of rows start.. against all rows), self excluded
    (-inf), a chunk at a time, so N² similarities are never held at once."""
    norms = np.linalg.norm(embeddings, axis=1, keepdims=True)
    unit = embeddings / np.where(norms > 0, norms, 1.0)
    for start in range(0, len(unit), chunk):
        block = unit[start:start + chunk] @ unit.T
        block[np.arange(len(block)), np.arange(start, start + len(block))] = -np.inf
        yield start, block


def retrieval_scores(embeddings, y, ks=(1, 5), detail=False):
    """recall@k for each k in ``ks`` and mAP of leave-one-out retrieval by cosine similarity
    (module docstring); None when no query has another example of its label."""
    embeddings = np.asarray(embeddings, np.float64)
    y = np.asarray(y)
    hits = {k: [] for k in ks}
    precisions = []
    for start, block in _similarity_rows(embeddings):
        order = np.argsort(-block, axis=1, kind="stable")[:, :-1]  # self (-inf) is last
        for row, ranked in enumerate(order):
            relevant = y[ranked] == y[start + row]
            if not relevant.any():
                continue
            for k in ks:
                hits[k].append(bool(relevant[:k].any()))
            ranks = np.flatnonzero(relevant) + 1
            precisions.append(float((np.arange(1, len(ranks) + 1) / ranks).mean()))
    scores = {f"recall_at_{k}": float(np.mean(hits[k])) if hits[k] else None for k in ks}
    scores["map"] = float(np.mean(precisions)) if precisions else None
    return scores
