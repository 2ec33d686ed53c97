"""PNG plots of a run (matplotlib, Agg backend: no display needed)."""

import matplotlib
import numpy as np

from tinymtl.train.metrics import evaluated_split
from tinymtl.train.task_kinds import TASK_KINDS

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import ticker  # noqa: E402

DPI = 110


def subplots(*args, **kwargs):
    """``plt.subplots`` at the resolution the PNG is saved with: the layout pass and the
    saving draw then share one renderer and its measured text (a third faster)."""
    return plt.subplots(*args, dpi=DPI, **kwargs)


def save(figure, path, tight=True, **layout):
    """Lay ``figure`` out (``tight_layout(**layout)``; ``tight=False``: its margins are fixed
    already), write it to ``path`` as PNG, free it."""
    if tight:
        figure.tight_layout(**layout)
    figure.savefig(path)
    plt.close(figure)


class _PlainLogFormatter(ticker.LogFormatter):
    """Matplotlib's choice of which log ticks to label, each written as a plain number."""

    def _num_to_string(self, x, vmin, vmax):
        return f"{x:.3g}"


def log_scale(axis):
    """A log-scaled y axis labelled in plain numbers (0.01, 0.02, 0.1): as readable as
    10⁻², and without typesetting every tick label as mathtext (a quarter of a plot's time)."""
    axis.set_yscale("log")
    axis.yaxis.set_major_formatter(_PlainLogFormatter())
    axis.yaxis.set_minor_formatter(_PlainLogFormatter(labelOnlyBase=False,
                                                      minor_thresholds=(2, 0.5)))


def task_curves(rows, task, path, kind="classification", baseline="single-task baseline",
                unit="tokens"):
    """Validation accuracy (MAE for regression; test in runs without a validation split) and
    training loss of ``task`` against the tokens it has consumed (``unit``: what a token is,
    characters for text, examples for images and graphs): multi-task vs its baseline, so a
    token-controlled baseline ends where the multi-task curve ends."""
    kind = TASK_KINDS[kind]
    # fixed margins, not tight_layout: every run draws these, and measuring the text for a
    # tight layout took 40 % of the time (tick labels are short numbers, titles one line)
    figure, (accuracy_axis, loss_axis) = subplots(
        1, 2, figsize=(11, 4), gridspec_kw=dict(left=0.07, right=0.985, bottom=0.13, top=0.92,
                                                wspace=0.22))
    model_run = next((r["run"] for r in rows if not r["run"].startswith("baseline:")),
                     "multitask")  # (single-task runs are labelled "single-task")
    tasks_trained = {t for r in rows if r["run"] == model_run and r["type"] == "train"
                     for t in r["tasks"]}  # (events, e.g. loss spikes, are rows too)
    lowest = 1.0
    for run, style in ((model_run, "-"), (f"baseline:{task}", "--")):
        evals = [r for r in rows if r["run"] == run and r["type"] == "eval" and task in r["tasks"]]
        trains = [r for r in rows if r["run"] == run and r["type"] == "train"
                  and task in r["tasks"]]
        if run != model_run:
            name = baseline
        else:
            name = "multi-task" if len(tasks_trained) > 1 else "model"
        score = (lambda r: r["tasks"][task].get(f"{evaluated_split(r, task, kind.name)}_"
                                                f"{kind.score}"))
        evals = [r for r in evals if score(r) is not None]  # (undefined on a tiny split)
        if evals:  # x axis: tokens this task consumed, so both runs line up
            accuracies = [score(r) for r in evals]
            lowest = min(lowest, *accuracies)
            accuracy_axis.plot([_tokens(r["tasks"][task]) for r in evals], accuracies,
                               style, marker="." if len(evals) < 10 else None, label=name)
        if trains:
            loss_axis.plot([r["tasks"][task]["tokens"] for r in trains],
                           [r["tasks"][task]["loss"] for r in trains], style, label=name)
    if kind.higher_is_better:  # a share in [0, 1]: zoom in on where the curves are
        margin = max(0.02, (1 - lowest) * 0.1)
        accuracy_axis.set(title=f"{task}: validation {kind.description}", ylabel=kind.score,
                          xlabel=f"{unit} of {task} consumed",
                          ylim=(max(0.0, lowest - margin), 1.0 + margin / 4))
    else:  # an error: over orders of magnitude
        accuracy_axis.set(title=f"{task}: held-out {kind.description}", ylabel=kind.label,
                          xlabel=f"{unit} of {task} consumed")
        log_scale(accuracy_axis)
    loss_axis.set(title=f"{task}: training loss", xlabel=f"{unit} of {task} consumed",
                  ylabel=kind.loss_name)
    log_scale(loss_axis)
    for axis in (accuracy_axis, loss_axis):
        axis.grid(alpha=0.3)
        if axis.get_legend_handles_labels()[0]:  # (a run too short to log has no curve)
            axis.legend()
    save(figure, path, tight=False)


def _tokens(result):
    """An eval row's tokens consumed (rows written before token accounting: its steps)."""
    return result.get("trained_tokens", result["trained_steps"])


def confusion(matrix, classes, title, path):
    """A confusion-matrix heatmap, rows = true class, columns = predicted, row-normalised."""
    rates = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    size = min(12, 3 + 0.3 * len(classes))
    figure, axis = subplots(figsize=(size + 1.5, size))
    image = axis.imshow(rates, cmap="viridis", vmin=0, vmax=1)
    ticks = np.arange(len(classes))
    step = max(1, len(classes) // 16)
    axis.set_xticks(ticks[::step], [classes[k] for k in ticks[::step]], rotation=90)
    axis.set_yticks(ticks[::step], [classes[k] for k in ticks[::step]])
    axis.set(title=title, xlabel="predicted", ylabel="true")
    figure.colorbar(image, ax=axis, label="share of the true class")
    save(figure, path)
    return str(path)


def sample_grid(images, labels, predicted, classes, path, per_class=8):
    """Up to ``per_class`` test images of every class, one row per class (``images``: N×C×H×W,
    grey for one channel, colour for three). A wrong answer has a thick orange frame with the
    predicted class written above it; a right one a thin blue frame (orange/blue: readable with
    any colour vision). Every image shares one grey scale, from the shown pixels' 1st to 99th
    percentile, so contrast between images is real and standardised pixels are not clipped."""
    rows = len(classes)
    chosen = [np.flatnonzero(labels == row)[:per_class] for row in range(rows)]
    shown = np.concatenate([images[members] for members in chosen if len(members)])
    low, high = np.percentile(shown, [1, 99]) if shown.size else (0.0, 1.0)
    high = high if high > low else low + 1.0
    height = rows * 1.1 + 0.5
    figure, axes = subplots(rows, per_class, figsize=(per_class * 1.0, height),
                                squeeze=False)
    wrong_total = 0
    for row, name in enumerate(classes):
        members = chosen[row]
        for column in range(per_class):
            axis = axes[row, column]
            axis.set_xticks([])
            axis.set_yticks([])
            if column == 0:
                axis.set_ylabel(str(name), rotation=0, ha="right", va="center", fontsize=9)
            if column >= len(members):
                axis.axis("off")
                continue
            n = members[column]
            image = (images[n] - low) / (high - low)
            if image.shape[0] == 3:
                axis.imshow(np.clip(image.transpose(1, 2, 0), 0, 1))
            else:
                axis.imshow(image[0], cmap="gray", vmin=0, vmax=1)
            wrong = predicted[n] != labels[n]
            wrong_total += int(wrong)
            for spine in axis.spines.values():
                spine.set(color="tab:orange" if wrong else "tab:blue",
                          linewidth=3 if wrong else 1)
            if wrong:
                axis.set_title(f"→ {classes[predicted[n]]}", fontsize=8, color="tab:orange",
                               pad=2)
    figure.suptitle(f"test images by true class (rows); {wrong_total} of "
                    f"{sum(map(len, chosen))} shown are wrong: orange frame, with the "
                    f"predicted class above", fontsize=9)
    save(figure, path, pad=0.3, rect=(0, 0, 1, 1 - 0.45 / height))  # (room for the title)
    return str(path)


def accuracy_by_group(report, path):
    """The diagnosed task's accuracy per class of the task it is given (e.g. per shape), with
    the ceiling label ambiguity imposes where it is known."""
    if "ambiguity" in report:
        groups = report["ambiguity"]["per_shape"]
        ceilings = [row["ceiling"] for row in groups.values()]
    else:
        groups = report["given_accuracy"]["per_a_class"]
        ceilings = None
    names = list(groups)
    accuracy = [groups[n]["b_accuracy"] or 0.0 for n in names]
    figure, axis = subplots(figsize=(max(6, 0.6 * len(names)), 4))
    x = np.arange(len(names))
    axis.bar(x, accuracy, color="tab:blue", label=f"{report['task']} accuracy")
    if ceilings is not None:
        axis.scatter(x, ceilings, marker="_", s=400, color="black", zorder=3,
                     label="ceiling from symmetry")
    axis.set_xticks(x, names, rotation=45, ha="right")
    axis.set(ylim=(0, 1.05), ylabel="accuracy",
             title=f"{report['task']} accuracy by {report.get('given') or 'shape'}")
    axis.grid(alpha=0.3, axis="y")
    axis.legend()
    save(figure, path)
    return str(path)


def gradient_conflicts(statistics, path):
    """Heatmaps of the per-pair conflict frequency (share of steps with g_i · g_j < 0) and the
    mean cosine similarity of the tasks' shared-parameter gradients."""
    tasks = sorted({t for pair in statistics for t in pair.split("|")})
    index = {t: k for k, t in enumerate(tasks)}
    conflict = np.full((len(tasks), len(tasks)), np.nan)
    cosine = np.full((len(tasks), len(tasks)), np.nan)
    for pair, values in statistics.items():
        a, b = (index[t] for t in pair.split("|"))
        for matrix, key in ((conflict, "conflict_frequency"), (cosine, "mean_cosine")):
            if values[key] is not None:
                matrix[a, b] = matrix[b, a] = values[key]
    figure, axes = subplots(1, 2, figsize=(10, 4.2))
    for axis, matrix, title, limits, cmap in (
            (axes[0], conflict, "conflict frequency", (0, 1), "Reds"),
            (axes[1], cosine, "mean cosine similarity", (-1, 1), "coolwarm")):
        image = axis.imshow(matrix, vmin=limits[0], vmax=limits[1], cmap=cmap)
        axis.set_xticks(range(len(tasks)), tasks, rotation=45, ha="right")
        axis.set_yticks(range(len(tasks)), tasks)
        for (i, j), value in np.ndenumerate(matrix):
            if not np.isnan(value):
                axis.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=9)
        axis.set_title(title)
        figure.colorbar(image, ax=axis)
    figure.suptitle("task gradients on the shared parameters")
    save(figure, path)
    return str(path)


def strategy_comparison(result, path):
    """Per task, each strategy's held-out score (mean ± std over seeds) beside the single-task
    reference; and each strategy's Δm% (higher is better)."""
    tasks, names = list(result["tasks"]), list(result["strategies"])
    figure, axes = subplots(1, len(tasks) + 1, figsize=(4.2 * (len(tasks) + 1), 4))
    x = np.arange(len(names) + 1)
    for axis, task in zip(axes, tasks):
        values = [result["strategies"][n]["tasks"][task] for n in names]
        values.append(result["reference"][task])
        means, stds = zip(*values)
        colours = ["tab:blue"] * len(names) + ["tab:gray"]
        axis.bar(x, means, yerr=stds, color=colours, capsize=3)
        low, high = min(means) - 3 * max(stds) - 1e-3, max(means) + 3 * max(stds) + 1e-3
        kind = TASK_KINDS[result["tasks"][task]]
        axis.set(title=f"{task}: held-out {kind.score if kind.higher_is_better else kind.label}",
                 ylim=(max(0.0, low), min(1.0, high) if kind.higher_is_better else high))
        axis.set_xticks(x, names + ["single"], rotation=30, ha="right")
        axis.grid(alpha=0.3, axis="y")
    means, stds = zip(*(result["strategies"][n]["delta_m"] for n in names))
    axes[-1].bar(x[:-1], means, yerr=stds, capsize=3,
                 color=["tab:green" if m >= 0 else "tab:red" for m in means])
    axes[-1].axhline(0, color="black", linewidth=0.8)
    axes[-1].set_xticks(x[:-1], names, rotation=30, ha="right")
    axes[-1].set(title="Δm% vs single task (higher is better)")
    axes[-1].grid(alpha=0.3, axis="y")
    figure.suptitle(f"{result['name']}: mean ± std over seeds {result['seeds']}")
    save(figure, path)
    return str(path)


def accuracy_matrix(R, tasks, path, title):
    """Heatmap of R[i][j], the accuracy on task j (column) after stage i (row)."""
    R = np.asarray(R)
    size = 2.5 + 0.55 * len(tasks)
    figure, axis = subplots(figsize=(size + 1.5, size))
    image = axis.imshow(100 * R, vmin=0, vmax=100, cmap="viridis")  # (the cells' unit: %)
    for (i, j), value in np.ndenumerate(R):
        axis.text(j, i, f"{100 * value:.0f}", ha="center", va="center", fontsize=8,
                  color="white" if value < 0.6 else "black")
    axis.set_xticks(range(len(tasks)), tasks, rotation=45, ha="right")
    axis.set_yticks(range(len(R)), [f"after {t}" for t in tasks[:len(R)]])
    axis.set(xlabel="evaluated on", ylabel="stage", title=title)
    figure.colorbar(image, ax=axis, label="accuracy %")
    save(figure, path)
    return str(path)


def continual_comparison(result, path):
    """Each strategy's average accuracy after the last stage (mean ± std over seeds)."""
    names = list(result["strategies"])
    means, stds = zip(*(result["strategies"][n]["average_accuracy"] for n in names))
    figure, axis = subplots(figsize=(max(6, 0.55 * len(names) + 2), 4.2))
    x = np.arange(len(names))
    axis.bar(x, means, yerr=stds, capsize=3, color="tab:blue")
    for k, mean in enumerate(means):
        axis.text(k, mean + 0.01, f"{100 * mean:.1f}", ha="center", fontsize=7)
    axis.set_xticks(x, names, rotation=45, ha="right")
    axis.set(ylim=(0, 1.08), ylabel="average accuracy after the last task",
             title=f"{result['name']}: mean ± std over seeds {result['seeds']}")
    axis.grid(alpha=0.3, axis="y")
    save(figure, path)
    return str(path)


def pretraining_curves(rows, path):
    """Contrastive pretraining: NT-Xent loss and contrastive accuracy (the share of graphs whose
    own second view is the nearest of the batch's), on training batches and held-out graphs,
    against steps; chance accuracy drawn as a line."""
    trains = [r for r in rows if r["type"] == "train"]
    evals = [r for r in rows if r["type"] == "eval" and "valid_loss" in r]
    figure, (loss_axis, accuracy_axis) = subplots(1, 2, figsize=(11, 4))
    for axis, key, title in ((loss_axis, "loss", "NT-Xent loss"),
                             (accuracy_axis, "accuracy", "contrastive accuracy")):
        if trains:
            axis.plot([r["step"] for r in trains], [r[key] for r in trains],
                      label="training batches")
        if evals:
            axis.plot([r["step"] for r in evals], [r[f"valid_{key}"] for r in evals], "o-",
                      markersize=3, label="held-out graphs")
        axis.set(title=title, xlabel="step")
        axis.grid(alpha=0.3)
    if evals:
        accuracy_axis.axhline(evals[0]["chance_accuracy"], color="grey", linestyle=":",
                              label="chance (1 / batch)")
        accuracy_axis.set(ylim=(0, 1.02))
    for axis in (loss_axis, accuracy_axis):
        if axis.get_legend_handles_labels()[0]:
            axis.legend()
    save(figure, path)


def embedding_projection(embeddings, colourings, title, path):
    """Embeddings (N, E) projected on their first two principal components (of the unit
    vectors: cosine geometry), once per colouring: (values (N,), name, class names or None) —
    a value scale, or with class names one colour per class (a map of foods by class and by a
    nutrient side by side)."""
    unit = embeddings / np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)
    centred = unit - unit.mean(0)
    _, spread, axes = np.linalg.svd(centred, full_matrices=False)
    points = centred @ axes[:2].T
    explained = spread[:2] ** 2 / max((spread ** 2).sum(), 1e-12)
    figure, panels = subplots(1, len(colourings), figsize=(6.5 * len(colourings), 5.5),
                                  squeeze=False)
    for axis, (values, name, classes) in zip(panels[0], colourings):
        if classes is None:
            image = axis.scatter(points[:, 0], points[:, 1], c=values, cmap="viridis", s=12)
            figure.colorbar(image, ax=axis, label=name)
        else:
            palette = plt.get_cmap("tab10")
            for k, label in enumerate(classes):
                members = np.asarray(values) == k
                axis.scatter(points[members, 0], points[members, 1], s=12,
                             color=palette(k % 10), label=label)
            axis.legend(title=name, fontsize=8, markerscale=1.5)
        axis.set(title=f"{title}\ncoloured by {name}",
                 xlabel=f"PC 1 ({100 * explained[0]:.0f} % of the variance)",
                 ylabel=f"PC 2 ({100 * explained[1]:.0f} %)")
        axis.grid(alpha=0.3)
    save(figure, path)


def profile_scores(names, r2, rmse, title, path):
    """Each predicted property's (e.g. nutrient's) R² and RMSE on test, as two bar charts."""
    figure, (left, right) = subplots(1, 2, figsize=(max(8, 0.9 * len(names) + 3), 4.5))
    order = np.arange(len(names))
    left.bar(order, r2, color="tab:blue")
    left.axhline(0, color="black", linewidth=0.8)
    left.set(ylabel="R² (1: perfect, 0: the mean)", title="R² per output")
    right.bar(order, rmse, color="tab:orange")
    right.set(ylabel="RMSE (standardised units)", title="RMSE per output")
    for axis in (left, right):
        axis.set_xticks(order, names, rotation=45, ha="right", fontsize=8)
        axis.grid(axis="y", alpha=0.3)
    figure.suptitle(title)
    save(figure, path)


def sweep(result, path):
    """Each variant's score on validation (left, what the choice is made on) and test (right):
    every seed a dot, the mean ± std a bar; the chosen variant in orange."""
    names = list(result["variants"])
    display = result["display"]
    figure, axes = subplots(1, 2, figsize=(max(7.0, 0.6 * len(names) + 4), 4.4),
                                sharey=True, squeeze=False)
    x = np.arange(len(names))
    for axis, split in zip(axes[0], ("valid", "test")):
        for k, name in enumerate(names):
            row = result["variants"][name]
            values = [display["sign"] * display["scale"] * r[split]
                      for r in row["runs"].values() if r[split] is not None]
            colour = "tab:orange" if name == result["chosen_on_valid"] else "tab:blue"
            if row[split] is not None:
                mean, std = row[split]
                axis.bar(k, display["sign"] * display["scale"] * mean,
                         yerr=display["scale"] * std, color=colour, alpha=0.35, capsize=3)
            axis.plot([k] * len(values), values, "o", color=colour, markersize=4)
        axis.set_xticks(x, names, rotation=40, ha="right", fontsize=8)
        axis.set(title=f"{'validation (chosen on)' if split == 'valid' else 'test (reported)'}",
                 ylabel=display["label"] if split == "valid" else None)
        axis.grid(alpha=0.3, axis="y")
    shown = [display["sign"] * display["scale"] * r[split] for row in result["variants"].values()
             for r in row["runs"].values() for split in ("valid", "test") if r[split] is not None]
    if shown and min(shown) > 0:  # zoom in on the scores (bars then start below the axis)
        low, high = min(shown), max(shown)
        axes[0][0].set_ylim(max(0.0, low - 0.6 * (high - low) - 0.01 * high),
                            high + 0.25 * (high - low) + 0.01 * high)
    figure.suptitle(f"{result['name']}: {result['scored']}\nseeds {result['seeds']} (dots), "
                    f"mean ± std (bars); orange: chosen on validation", fontsize=9)
    save(figure, path)
    return str(path)
