"""Every metric of ``train.scores`` against scikit-learn's on random inputs (skipped without
scikit-learn, the bench extra), plus the cases scikit-learn does not cover, by hand."""

import numpy as np
import pytest

from tinymtl.train import scores

metrics = pytest.importorskip("sklearn.metrics", reason="scikit-learn (the bench extra) is "
                                                        "not installed")

SEEDS = range(8)


def random_classification(seed, n=300, classes=5):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    logits = rng.normal(size=(n, classes)) + 1.5 * np.eye(classes)[y] * rng.random((n, 1))
    if seed % 2:  # ties: coarse logits
        logits = np.round(logits, 1)
    return logits, y


@pytest.mark.parametrize("seed", SEEDS)
def test_classification_metrics_equal_scikit_learns(seed):
    logits, y = random_classification(seed)
    predicted = logits.argmax(1)
    got = scores.classification_scores(logits, y, detail=True)
    assert got["accuracy"] == pytest.approx(metrics.accuracy_score(y, predicted), abs=1e-12)
    assert got["macro_f1"] == pytest.approx(metrics.f1_score(y, predicted, average="macro"),
                                            abs=1e-12)
    assert got["weighted_f1"] == pytest.approx(
        metrics.f1_score(y, predicted, average="weighted"), abs=1e-12)
    shifted = np.exp(logits - logits.max(1, keepdims=True))
    probabilities = shifted / shifted.sum(1, keepdims=True)
    assert got["auroc"] == pytest.approx(
        metrics.roc_auc_score(y, probabilities, multi_class="ovr", average="macro"), abs=1e-10)
    precision, recall, f1, support = metrics.precision_recall_fscore_support(
        y, predicted, labels=range(5), zero_division=0)
    np.testing.assert_allclose(got["per_class"]["precision"], precision, atol=1e-12)
    np.testing.assert_allclose(got["per_class"]["recall"], recall, atol=1e-12)
    np.testing.assert_allclose(got["per_class"]["f1"], f1, atol=1e-12)
    assert got["per_class"]["support"] == support.tolist()
    assert got["confusion"] == metrics.confusion_matrix(y, predicted, labels=range(5)).tolist()


def test_a_class_never_seen_nor_predicted_is_left_out_of_macro_f1_like_scikit_learn():
    y = np.array([0, 0, 1, 1, 2, 2])
    predicted = np.array([0, 1, 1, 1, 2, 0])
    logits = np.eye(4)[predicted]  # class 3 exists in the head, never in y nor predicted
    got = scores.classification_scores(logits, y)
    assert got["macro_f1"] == pytest.approx(metrics.f1_score(y, predicted, average="macro"))


@pytest.mark.parametrize("seed", SEEDS)
def test_binary_auroc_equals_scikit_learns_with_ties(seed):
    rng = np.random.default_rng(seed)
    truth = rng.random(200) < 0.3
    values = np.round(rng.normal(size=200) + truth, 1 if seed % 2 else 6)
    assert scores.binary_auroc(truth, values) == pytest.approx(
        metrics.roc_auc_score(truth, values), abs=1e-12)


def test_auroc_is_undefined_without_both_sides_and_skipped_per_class():
    assert scores.binary_auroc(np.ones(5, bool), np.arange(5)) is None
    y = np.array([0, 0, 1, 1])  # class 2 never occurs: it is left out of the mean
    probabilities = np.array([[.8, .1, .1], [.6, .3, .1], [.2, .7, .1], [.4, .5, .1]])
    assert scores.auroc_one_vs_rest(y, probabilities) == 1.0


@pytest.mark.parametrize("seed", SEEDS)
def test_multilabel_metrics_equal_scikit_learns(seed):
    rng = np.random.default_rng(seed)
    y = (rng.random((200, 6)) < 0.3).astype(np.float32)
    logits = rng.normal(size=(200, 6)) + 2 * (y - 0.5) * rng.random((200, 1))
    predicted = (logits > 0).astype(int)
    got = scores.multilabel_scores(logits, y, detail=True)
    assert got["micro_f1"] == pytest.approx(metrics.f1_score(y, predicted, average="micro"),
                                            abs=1e-12)
    assert got["macro_f1"] == pytest.approx(
        metrics.f1_score(y, predicted, average="macro", zero_division=0), abs=1e-12)
    assert got["subset_accuracy"] == pytest.approx(metrics.accuracy_score(y, predicted))
    assert got["hamming_accuracy"] == pytest.approx(1 - metrics.hamming_loss(y, predicted))
    assert got["auroc"] == pytest.approx(metrics.roc_auc_score(y, logits, average="macro"),
                                         abs=1e-12)
    np.testing.assert_allclose(got["per_label"]["recall"],
                               metrics.recall_score(y, predicted, average=None), atol=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("outputs", [1, 3])
def test_regression_metrics_equal_scikit_learns(seed, outputs):
    rng = np.random.default_rng(seed)
    y = rng.normal(size=(150, outputs))
    predicted = y + rng.normal(scale=0.5, size=y.shape)
    target = y[:, 0] if outputs == 1 else y
    got = scores.regression_scores(predicted.astype(np.float32), target)
    assert got["mae"] == pytest.approx(metrics.mean_absolute_error(target, predicted), rel=1e-6)
    assert got["rmse"] == pytest.approx(np.sqrt(metrics.mean_squared_error(target, predicted)),
                                        rel=1e-6)
    assert got["r2"] == pytest.approx(metrics.r2_score(target, predicted), rel=1e-5)
    stats = pytest.importorskip("scipy.stats")
    rho = np.mean([stats.spearmanr(y[:, k], predicted[:, k]).statistic for k in range(outputs)])
    assert got["spearman"] == pytest.approx(rho, rel=1e-5)
    each = scores.regression_scores(predicted.astype(np.float32), target, detail=True)
    if outputs == 1:
        assert "per_output" not in each
        return
    np.testing.assert_allclose(each["per_output"]["r2"], metrics.r2_score(
        target, predicted, multioutput="raw_values"), rtol=1e-5)
    np.testing.assert_allclose(each["per_output"]["rmse"], np.sqrt(metrics.mean_squared_error(
        target, predicted, multioutput="raw_values")), rtol=1e-6)
    np.testing.assert_allclose(each["per_output"]["mae"], metrics.mean_absolute_error(
        target, predicted, multioutput="raw_values"), rtol=1e-6)
    assert np.mean(each["per_output"]["r2"]) == pytest.approx(got["r2"], rel=1e-9)


def test_spearman_equals_scipys_with_ties_and_is_none_for_a_constant():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(4)
    a, b = rng.integers(0, 5, 80), rng.normal(size=80)  # a has many ties
    assert scores.spearman(a, b) == pytest.approx(stats.spearmanr(a, b).statistic, rel=1e-12)
    assert scores.spearman(np.ones(5), np.arange(5)) is None


def test_alignment_scores_follow_their_definitions():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(5)
    profiles = rng.normal(size=(60, 3))
    embedding = np.concatenate([profiles, rng.normal(scale=0.3, size=(60, 2))], axis=1)
    outputs = np.concatenate([embedding, profiles + 0.1], axis=1)  # then the predicted profile
    got = scores.alignment_scores(outputs, profiles)
    unit = embedding / np.linalg.norm(embedding, axis=1, keepdims=True)
    pairs = np.triu_indices(60, k=1)
    expected = stats.spearmanr((1 - unit @ unit.T)[pairs],
                               np.linalg.norm(profiles[:, None] - profiles[None], axis=2)[pairs])
    assert got["distance_spearman"] == pytest.approx(expected.statistic, rel=1e-9)
    nearest_profile = [np.argsort(np.linalg.norm(profiles - p, axis=1))[1] for p in profiles]
    cosine = unit @ unit.T
    np.fill_diagonal(cosine, -np.inf)
    for k in (1, 5):
        hits = [nearest_profile[i] in np.argsort(-cosine[i], kind="stable")[:k]
                for i in range(60)]
        assert got[f"neighbour_recall_at_{k}"] == pytest.approx(np.mean(hits))
    assert got["profile_mae"] == pytest.approx(0.1)
    shuffled = scores.alignment_scores(np.concatenate([rng.normal(size=(60, 5)), profiles],
                                                      axis=1), profiles)
    assert abs(shuffled["distance_spearman"]) < 0.1 < got["distance_spearman"]  # chance: ρ ≈ 0


def test_r2_of_a_constant_target_follows_scikit_learn():
    y = np.full(10, 3.0)
    assert scores.regression_scores(y.copy(), y)["r2"] == metrics.r2_score(y, y) == 1.0
    assert scores.regression_scores(y + 1, y)["r2"] == metrics.r2_score(y, y + 1) == 0.0


@pytest.mark.parametrize("seed", SEEDS)
def test_retrieval_metrics_equal_neighbours_and_average_precision(seed):
    neighbors = pytest.importorskip("sklearn.neighbors")
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 6, 120)
    y[0] = 99  # a label no other example has: that query is left out
    embeddings = rng.normal(size=(120, 8)) + 1.2 * rng.normal(size=(100, 8))[y % 100]
    got = scores.retrieval_scores(embeddings, y, ks=(1, 5))
    index = neighbors.NearestNeighbors(n_neighbors=6, metric="cosine").fit(embeddings)
    _, nearest = index.kneighbors(embeddings)
    queries = [i for i in range(120) if (y == y[i]).sum() > 1]
    for k in (1, 5):
        expected = np.mean([np.any(y[[j for j in nearest[i] if j != i][:k]] == y[i])
                            for i in queries])
        assert got[f"recall_at_{k}"] == pytest.approx(expected)
    similarity = (embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True))
    similarity = similarity @ similarity.T
    expected_map = np.mean([metrics.average_precision_score(
        np.delete(y == y[i], i), np.delete(similarity[i], i)) for i in queries])
    assert got["map"] == pytest.approx(expected_map, abs=1e-12)


def test_retrieval_chunks_give_the_same_answer_as_one_block():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 2500)  # more rows than one chunk (1024)
    embeddings = rng.normal(size=(2500, 4)) + np.eye(4)[y]
    got = scores.retrieval_scores(embeddings, y, ks=(1,))
    unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    similarity = unit @ unit.T
    np.fill_diagonal(similarity, -np.inf)
    assert got["recall_at_1"] == pytest.approx(np.mean(y[similarity.argmax(1)] == y))
