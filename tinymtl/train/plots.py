"""PNG plots of a run (matplotlib, Agg backend: no display needed)."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def task_curves(rows, task, path):
    """Test accuracy and training loss of ``task`` over steps: multi-task vs its baseline."""
    figure, (accuracy_axis, loss_axis) = plt.subplots(1, 2, figsize=(11, 4))
    tasks_trained = {t for r in rows if r["run"] == "multitask" for t in r["tasks"]}
    lowest = 1.0
    for run, style in (("multitask", "-"), (f"baseline:{task}", "--")):
        evals = [r for r in rows if r["run"] == run and r["type"] == "eval" and task in r["tasks"]]
        trains = [r for r in rows if r["run"] == run and r["type"] == "train"
                  and task in r["tasks"]]
        if run != "multitask":
            name = "single-task baseline"
        else:
            name = "multi-task" if len(tasks_trained) > 1 else "model"
        if evals:  # x axis: steps that trained this task, so both runs line up
            accuracies = [r["tasks"][task]["test_accuracy"] for r in evals]
            lowest = min(lowest, *accuracies)
            accuracy_axis.plot([r["tasks"][task]["trained_steps"] for r in evals], accuracies,
                               style, marker="." if len(evals) < 10 else None, label=name)
        if trains:
            loss_axis.plot([r["tasks"][task]["steps"] for r in trains],
                           [r["tasks"][task]["loss"] for r in trains], style, label=name)
    margin = max(0.02, (1 - lowest) * 0.1)
    accuracy_axis.set(title=f"{task}: held-out accuracy", xlabel=f"steps that trained {task}",
                      ylabel="accuracy", ylim=(max(0.0, lowest - margin), 1.0 + margin / 4))
    loss_axis.set(title=f"{task}: training loss", xlabel=f"steps that trained {task}",
                  ylabel="cross-entropy", yscale="log")
    for axis in (accuracy_axis, loss_axis):
        axis.grid(alpha=0.3)
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
