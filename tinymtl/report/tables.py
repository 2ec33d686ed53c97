"""Text tables of results, for the terminal and for Markdown files: one function per kind of
result (a multi-task run, a continual sequence, seeds, a comparison, a diagnosis). How a task's
score is named and shown comes from its kind (``train.task_kinds``)."""

from tinymtl.train.task_kinds import TASK_KINDS


def _percent(value):
    return "-" if value is None else f"{100 * value:.1f}"


def multitask(summary):
    """The table ``tinymtl run`` prints: per-task results, baselines, round trip, size, time.
    Classification tasks show accuracy in %, regression tasks their mean absolute error.
    ``test`` (and single, transfer, linear) are on the test split, evaluated once at the end;
    ``valid``, the best validation value during training, and forgetting (from it) on the
    validation split."""
    lines = [f"{'task':<14} {'metric':<10} {'test':>7} {'valid':>7} {'forget%':>7} "
             f"{'single':>7} {'transfer':>8} {'linear':>7}"]
    for task, result in summary["tasks"].items():
        kind = TASK_KINDS[result.get("kind", "classification")]
        test, best, single, linear = (result.get(key) for key in (
            f"test_{kind.score}", kind.best, f"baseline_{kind.score}", f"linear_{kind.score}"))
        lines.append(f"{task:<14} {kind.label:<10} {kind.show(test):>7} {kind.show(best):>7} "
                     f"{_percent(result.get('forgetting')):>7} {kind.show(single):>7} "
                     f"{kind.show(result.get('transfer')):>8} {kind.show(linear):>7}")
    rt = summary["roundtrip"]
    lines.append(f"round trip: weights bitwise equal {rt['weights_bitwise_equal']}, "
                 f"outputs bitwise equal {rt['outputs_bitwise_equal']}; checkpoint "
                 f"{summary['checkpoint']['bytes'] / 1e6:.2f} MB; wall {summary['wall_seconds']:.1f} s"
                 + _before_resume(summary))
    return "\n".join(lines)


def _before_resume(summary):
    """What a resumed run's wall time includes from before its resume, said."""
    timings = summary.get("timings") or {}
    if timings.get("resumed_from_step") is None:
        return ""
    return (f" (of which {timings.get('seconds_before_resume', 0):.1f} s before the resume "
            f"at step {timings['resumed_from_step']})")


def pretraining(summary):
    """What ``tinymtl pretrain`` prints: the held-out contrastive loss and accuracy before and
    after, the pool, memory, time, and how fine-tuning loads the encoder."""
    first, last, pool = summary["initial"] or {}, summary["final"] or {}, summary["pool"]

    def show(row, key, scale=1.0, digits=3):
        return "-" if key not in row else f"{scale * row[key]:.{digits}f}"

    return "\n".join([
        f"{'held out':<24} {'step':>7} {'NT-Xent':>8} {'contrastive acc. %':>19}",
        f"{'before pretraining':<24} {0:>7} {show(first, 'valid_loss'):>8} "
        f"{show(first, 'valid_accuracy', 100, 1):>19}",
        f"{'after':<24} {summary['steps']:>7} {show(last, 'valid_loss'):>8} "
        f"{show(last, 'valid_accuracy', 100, 1):>19}",
        f"chance {100 * last.get('chance_accuracy', 0):.1f} %; pool {pool['train']:,} graphs "
        f"trained on, {pool['valid']:,} held out"
        + (f" ({pool['test_molecules_left_out']:,} test molecules left out)"
           if pool["test_molecules_left_out"] else "")
        + f"; {summary['epochs']} epochs; peak memory "
        f"{summary['peak_rss_mib']:.0f} MiB; wall {summary['wall_seconds']:.1f} s",
        f"fine-tune from it with  {summary['fine_tune']}"])


def pretraining_stage(summary):
    """One line on a run's pretraining stage (``model.pretrain``), after its table."""
    stage = summary["pretraining"]
    first, last = stage["initial"] or {}, stage["final"] or {}

    def accuracy(row):
        return "-" if "valid_accuracy" not in row else f"{100 * row['valid_accuracy']:.1f} %"

    return (f"pretraining stage ({stage['config']}): {stage['steps']} steps, held-out "
            f"contrastive accuracy {accuracy(first)} → {accuracy(last)}, "
            f"{stage['wall_seconds']:.1f} s; fine-tuned from {stage['checkpoint']}")


METHOD_NAMES = {"gradient_x_input": "gradient × input"}


def salient_compounds(result, methods=("attention", "gradient_x_input")):
    """salient_compounds.md: per class, its top compounds by each method side by side, each
    marked with the class it was planted for (✓ when it is this class's own marker) — the
    cross-reference of what the model found against the planted answer — and how many of the
    class's markers each method ranks in its top k."""
    lines = [f"# Salient compounds of `{result['task']}`", "",
             f"{result['compounds']} compounds; the candidates of a class are the compounds its "
             f"{result['foods_used']} training foods contain. ✓: a marker planted for this "
             f"class; (other): planted for another class.", ""]
    for name, listed in result["classes"].items():
        shown = [m for m in methods if m in listed]
        lines += [f"## {name}", "", "| rank | " + " | ".join(
            f"{METHOD_NAMES.get(m, m)} | score" for m in shown) + " |",
            "|---|" + "---|---|" * len(shown)]
        for rank in range(max(len(listed[m]) for m in shown)):
            cells = []
            for m in shown:
                if rank >= len(listed[m]):
                    cells += ["", ""]
                    continue
                item = listed[m][rank]
                mark = "" if not item["planted"] else \
                    " ✓" if item["planted"] == name else f" ({item['planted']})"
                cells += [f"`{item['compound']}`{mark}", f"{item['score']:.3f}"]
            lines.append(f"| {rank + 1} | " + " | ".join(cells) + " |")
        scored = [(m, result["methods"][m]["per_class"].get(name)) for m in shown
                  if m in result["methods"]]
        if any(s for _, s in scored):
            lines += ["", "; ".join(f"{METHOD_NAMES.get(m, m)}: precision@k {s['precision_at_k']:.2f}, "
                                    f"AUROC {s['auroc']:.3f}" for m, s in scored if s)]
        lines.append("")
    return "\n".join(lines)


def continual(summary):
    """The accuracy matrix and its summaries, as ``tinymtl run`` prints them."""
    result = summary["continual"]
    tasks = result["tasks"]
    width = max(8, *(len(t) + 2 for t in tasks))
    names = ["initial"] + [f"after {t}" for t in tasks]
    label = max(len(n) for n in names) + 1
    lines = [f"{result['method']}, {result['scenario']}-incremental: accuracy % on each task "
             f"(columns) after each stage (rows)",
             " " * label + "".join(f"{t:>{width}}" for t in tasks)]
    for name, row in zip(names, [result["initial"]] + result["matrix"]):
        lines.append(f"{name:<{label}}" + "".join(f"{100 * v:>{width}.1f}" for v in row))

    def show(value):
        return "-" if value is None else f"{100 * value:+.1f}"

    lines.append(f"ACC {100 * result['average_accuracy']:.1f} %   BWT "
                 f"{show(result['backward_transfer'])}   FWT {show(result['forward_transfer'])}"
                 f"   forgetting {show(result['average_forgetting'])} (points; Chaudhry)")
    kept = ", ".join(f"{t} {100 * v['kept_of_peak']:.1f} %" for t, v in summary["tasks"].items()
                     if v["kept_of_peak"] is not None)
    lines.append(f"final accuracy as a share of each task's peak: {kept}; wall "
                 f"{summary['wall_seconds']:.1f} s")
    return "\n".join(lines)


def seeds(result):
    """The Markdown table of ``run_seeds``'s result."""
    seeds = result["seeds"]
    lines = [f"Seeds {', '.join(map(str, seeds))}; baseline: {result['baseline']}; "
             f"accuracy in %, MAE as is; mean ± std over {len(seeds)} seed(s).", "",
             "| task | metric | multi-task | baseline | multi-task gain (± 2 se) | verdict |",
             "|---|---|---|---|---|---|"]
    for task, entry in result["tasks"].items():
        kind = TASK_KINDS[entry["kind"]]
        multitask_score = kind.show_mean_std(entry["multitask_mean_std"])
        if "label" not in entry:
            lines.append(f"| {task} | {kind.label} | {multitask_score} | - | - | no baseline |")
            continue
        noise = "" if entry["standard_error"] is None else \
            f" ± {kind.scale * 2 * entry['standard_error']:.2f}"
        lines.append(f"| {task} | {kind.label} | {multitask_score} | "
                     f"{kind.show_mean_std(entry['baseline_mean_std'])} | "
                     f"{kind.scale * entry['difference']:+.2f}{noise} | {entry['label']} |")
    if result.get("continual"):
        lines.append("")
        lines.append("Sequence: " + ", ".join(
            f"{name} {100 * value[0]:.2f} ± {100 * value[1]:.2f}"
            for name, value in result["continual"].items() if value is not None))
    return "\n".join(lines)


def _continual_comparison(result):
    def points(value):
        return "-" if value is None else f"{100 * value[0]:+.2f} ± {100 * value[1]:.2f}"

    lines = [f"Mean ± std over seeds {', '.join(map(str, result['seeds']))}; ACC in %, "
             f"transfer and forgetting in points (docs/continual.md has the definitions).", "",
             "| strategy | method | scenario | ACC % | BWT | FWT | forgetting | wall s |",
             "|---|---|---|---|---|---|---|---|"]
    for name, entry in result["strategies"].items():
        acc, acc_std = entry["average_accuracy"]
        lines.append(f"| {name} | {entry['config']['method']} | {entry['config']['scenario']} "
                     f"| {100 * acc:.2f} ± {100 * acc_std:.2f} | "
                     f"{points(entry['backward_transfer'])} | "
                     f"{points(entry['forward_transfer'])} | "
                     f"{points(entry['average_forgetting'])} | "
                     f"{entry['wall_seconds'][0]:.0f} |")
    return "\n".join(lines + _chosen(result, "ACC"))


def _chosen(result, figure):
    if not result.get("chosen_on_valid"):
        return []
    return ["", f"Chosen on the validation splits (best {figure} there): "
                f"**{result['chosen_on_valid']}**."]


def comparison(result):
    """The comparison as a Markdown table."""
    if result.get("continual"):
        return _continual_comparison(result)
    tasks = list(result["tasks"])
    metric = {t: TASK_KINDS[k].short_label for t, k in result["tasks"].items()}
    header = " | ".join(f"{t} {metric[t]}" for t in tasks)
    lines = [f"Mean ± std over seeds {', '.join(map(str, result['seeds']))}. Δm% against "
             f"token-controlled single-task runs (higher is better).", "",
             f"| strategy | {header} | Δm% | step ms |",
             "|---" * (len(tasks) + 3) + "|"]
    for name, entry in result["strategies"].items():
        cells = " | ".join(TASK_KINDS[result["tasks"][t]].show_mean_std(entry["tasks"][t])
                           for t in tasks)
        dm, dm_std = entry["delta_m"]
        ms, ms_std = entry["train_step_ms"]
        lines.append(f"| {name} | {cells} | {dm:+.2f} ± {dm_std:.2f} | {ms:.1f} ± {ms_std:.1f} |")
    cells = " | ".join(TASK_KINDS[result["tasks"][t]].show_mean_std(result["reference"][t])
                       for t in tasks)
    lines.append(f"| single task (reference) | {cells} | 0 | - |")
    return "\n".join(lines + _chosen(result, "Δm%"))


def diagnosis(report):
    """A few lines for the terminal; everything is in report.json."""
    lines = [f"{report['task']}: accuracy {100 * report['accuracy']:.1f} % "
             f"(chance {100 * report['chance_accuracy']:.1f} %), {report['test_items']} items"]
    e = report["entropy"]
    lines.append(f"entropy {e['mean_nats']:.3f} nats of at most {e['uniform_max_nats']:.3f}")
    if "given_accuracy" in report:
        g = report["given_accuracy"]
        lines.append(f"given {report['given']}: {report['task']} accuracy when {report['given']}"
                     f" is right {_pct(g['b_accuracy_given_a_correct'])}, wrong "
                     f"{_pct(g['b_accuracy_given_a_wrong'])}")
    if "ambiguity" in report:
        a = report["ambiguity"]
        lines.append(f"symmetry ceiling {100 * a['ceiling']:.1f} % "
                     f"({'well posed' if a['well_posed'] else 'absolute labels'}); accuracy is "
                     f"{100 * a['share_of_ceiling']:.1f} % of it")
    p = report["probe"]
    lines.append(f"frozen-backbone probe ({p['head']} head, {p['steps']} steps): "
                 f"{100 * p['frozen_probe_accuracy']:.1f} %")
    if "oracle" in report:
        o = report["oracle"]
        lines.append(f"oracle probe (+ true {o['conditioned_on']}): "
                     f"{100 * o['oracle_probe_accuracy']:.1f} % (gain {100 * o['gain']:+.1f} "
                     f"points)")
    lines.append("wrote " + ", ".join(report["artefacts"].values()))
    return "\n".join(lines)


def _pct(value):
    return "-" if value is None else f"{100 * value:.1f} %"


def sweep(result):
    """A sweep's table: each variant's validation and test score over its seeds (mean ± std,
    in the units of ``result["display"]``), its wall time; the best variant of each arm
    (chosen on validation) marked *, the best overall **."""
    display = result["display"]

    def show(value):
        if value is None:
            return "-"
        mean, std = value
        digits = display["decimals"]
        return f"{display['sign'] * display['scale'] * mean:.{digits}f} ± " \
               f"{display['scale'] * std:.{digits}f}"

    names = {"backward_transfer": "BWT", "forward_transfer": "FWT",
             "average_forgetting": "forgetting"}  # (continual sweeps: in points)
    extras = [c for c in names if any(c in row for row in result["variants"].values())]

    def points(value):
        return "-" if value is None else f"{100 * value[0]:+.2f} ± {100 * value[1]:.2f}"

    lines = [f"sweep {result['name']}: {result['scored']} ({display['label']}), mean ± std over "
             f"seeds {', '.join(map(str, result['seeds']))}; chosen on validation "
             f"(* best of its arm, ** best overall), test reported"
             + ("; BWT, FWT and forgetting on test, in points" if extras else ""), "",
             "| variant | valid | test | " + "".join(f"{names[c]} | " for c in extras)
             + "seeds done | wall s |",
             "|---|---|---|" + "---|" * len(extras) + "---|---|"]
    for variant, row in result["variants"].items():
        mark = "**" if variant == result["chosen_on_valid"] else \
            "*" if variant in result["chosen_per_arm"].values() else ""
        wall = "-" if row["wall_seconds"] is None else f"{row['wall_seconds'][0]:.0f}"
        lines.append(f"| {variant}{mark} | {show(row['valid'])} | {show(row['test'])} | "
                     + "".join(f"{points(row.get(c))} | " for c in extras)
                     + f"{len(row['runs'])}/{len(result['seeds'])} | {wall} |")
    for name, error in result["failed"].items():
        lines.append(f"\nfailed: {name}: {error}")
    return "\n".join(lines)
