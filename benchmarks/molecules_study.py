"""Does GraphCL pretraining help, and where? Does multi-task beat single-task? Does the graph
network beat what a chemist would try first? The molecules study of docs/graphs.md, on the
real data (`tinymtl data fetch molecules`), every number on the test split, once per run;
every choice (checkpoints, a baseline's regulariser) on the validation split.

    python benchmarks/molecules_study.py                      # 3 seeds × 10/30/100 % labels
    python benchmarks/molecules_study.py --seeds 1 --fractions 1.0   # one seed, all labels

For each seed s: GraphCL pretraining of examples/molecules_pretrain.yaml (seed s), then at each
fraction f of the 1,025 training molecules (the first f·1,025 of the file; the validation
split is carved from them), examples/molecules_mtl.yaml (seed s) three ways:

    scratch      every weight from its seed
    pretrained   the encoder from the seed's pretraining, then everything fine-tuned
    frozen       the pretrained encoder frozen, linear heads trained on its features

and, on the same training molecules, Morgan fingerprints (radius 2, 2,048 bits) with
scikit-learn: a random forest (500 trees) and a logistic (class) or ridge (log S) regression
whose C or α is chosen on the validation split. From scratch with all labels, each task is also
trained alone (the run's single-task baselines), for

    Δm = (1/T) Σ_t (−1)^{l_t} (M_t^multi − M_t^single) / M_t^single · 100 %

(Maninis et al. 2019; l_t = 1 when lower is better: log S MAE), over the test headline of
each task (solubility accuracy, log S MAE, profile distance ρ). Writes OUT/study.json and
OUT/study.md (mean ± std over seeds), and prints the table. Needs the bench extra
(scikit-learn) and the chem extra (RDKit).
"""

import argparse
import json
import pathlib
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
PRETRAIN = ROOT / "examples" / "molecules_pretrain.yaml"
FINETUNE = ROOT / "examples" / "molecules_mtl.yaml"
TRAIN_MOLECULES = 1025
ARMS = ("scratch", "pretrained", "frozen")
HEADLINES = {"solubility": ("test_accuracy", True), "log_s": ("test_mae", False),
             "profile": ("test_distance_spearman", True)}  # (metric, higher is better)


def arm_overrides(arm, fraction, seed, pretrained):
    size = int(round(fraction * TRAIN_MOLECULES))
    overrides = [f"seed={seed}", "linear_baseline=false",
                 f"baselines={'single_task' if arm == 'scratch' and fraction == 1.0 else 'none'}"]
    overrides += [f"tasks.{task}.train_size={size}" for task in HEADLINES]
    if arm in ("pretrained", "frozen"):
        overrides.append(f"model.backbone_from={pretrained}")
    if arm == "frozen":
        overrides += ["model.freeze_backbone=true", "model.head_hidden=0"]
    return overrides


def fingerprints(smiles):
    from rdkit import Chem
    from rdkit.Chem import rdFingerprintGenerator

    generator = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=2048)
    return np.stack([generator.GetFingerprintAsNumPy(Chem.MolFromSmiles(s)) for s in smiles]
                    ).astype(np.float32)


def fingerprint_baselines(config, seed):
    """Random forest and a linear model on Morgan fingerprints, trained on the molecules the
    run trains on, the linear model's regulariser chosen on its validation molecules."""
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
    from sklearn.linear_model import LogisticRegression, Ridge

    from tinymtl.datasets import molecules
    from tinymtl.runs.setup import load_tasks
    from tinymtl.train.scores import regression_scores

    tasks = load_tasks(config)
    train_smiles = molecules.load_set("solubility_train")["smiles"]
    test_smiles = molecules.load_set("solubility_test")["smiles"]
    results = {}
    for task, kind in (("solubility", "classification"), ("log_s", "regression")):
        data = tasks[task]
        rows = {split: getattr(data, f"{split}_attributes")["molecule"]
                for split in ("train", "valid", "test")}
        x = {split: fingerprints([(test_smiles if split == "test" else train_smiles)[k]
                                  for k in rows[split]]) for split in rows}
        y = {"train": data.y_train, "valid": data.y_valid, "test": data.y_test}
        if kind == "classification":
            forest = RandomForestClassifier(n_estimators=500, random_state=seed, n_jobs=2)
            linear = [LogisticRegression(C=c, max_iter=5000) for c in (0.01, 0.1, 1.0, 10.0)]
            score = (lambda model, split: float((model.predict(x[split]) == y[split]).mean()))
        else:
            forest = RandomForestRegressor(n_estimators=500, random_state=seed, n_jobs=2)
            linear = [Ridge(alpha=a) for a in (0.1, 1.0, 10.0, 100.0)]
            score = (lambda model, split: -float(np.abs(model.predict(x[split]) - y[split])
                                                 .mean()))
        for model in [forest] + linear:
            model.fit(x["train"], y["train"])
        chosen = max(linear, key=lambda model: score(model, "valid"))
        for name, model in (("random_forest", forest), ("linear", chosen)):
            if kind == "classification":
                found = {"test_accuracy": score(model, "test")}
            else:
                found = {f"test_{k}": v for k, v in regression_scores(
                    model.predict(x["test"]).astype(np.float64), y["test"]).items()}
            results[f"{task}:{name}"] = found
    return results


def delta_m(multi, single):
    """Δm % (module docstring) of one seed's test headlines."""
    terms = []
    for task, (metric, higher) in HEADLINES.items():
        m, s = multi[task][metric], single[task]
        terms.append((1 if higher else -1) * (m - s) / abs(s))
    return 100 * float(np.mean(terms))


def run_study(seeds, fractions, out, steps=None):
    from tinymtl.runs import run

    out.mkdir(parents=True, exist_ok=True)
    results = {"seeds": seeds, "fractions": fractions, "runs": {}, "fingerprints": {},
               "delta_m": {}, "pretraining": {}}
    extra = [f"training.steps={steps}"] if steps else []
    for seed in seeds:
        started = time.perf_counter()
        summary = run(PRETRAIN, out / f"pretrain_seed{seed}", progress=False,
                      overrides=[f"seed={seed}"] + ([f"pretraining.steps={steps}"]
                                                    if steps else []))
        results["pretraining"][seed] = {"final": summary["final"],
                                        "peak_rss_mib": summary["peak_rss_mib"],
                                        "wall_seconds": summary["wall_seconds"]}
        pretrained = summary["checkpoint"]["path"]
        print(f"seed {seed}: pretrained in {time.perf_counter() - started:.0f} s", flush=True)
        for fraction in fractions:
            for arm in ARMS:
                started = time.perf_counter()
                name = f"{arm}_f{fraction}_seed{seed}"
                summary = run(FINETUNE, out / name, progress=False,
                              overrides=arm_overrides(arm, fraction, seed, pretrained) + extra)
                results["runs"][name] = {
                    "arm": arm, "fraction": fraction, "seed": seed,
                    "tasks": {t: {k: v for k, v in r.items() if k.startswith(("test_", "baseline_"))
                                  and isinstance(v, (int, float))}
                              for t, r in summary["tasks"].items()},
                    "salience": {m: v for m, v in summary["salience"]["methods"].items()},
                    "wall_seconds": summary["wall_seconds"]}
                if arm == "scratch" and fraction == 1.0:
                    single = {t: summary["tasks"][t][f"baseline_{HEADLINES[t][0][5:]}"]
                              for t in HEADLINES}
                    results["delta_m"][seed] = delta_m(summary["tasks"], single)
                print(f"  {name}: {time.perf_counter() - started:.0f} s", flush=True)
            from tinymtl.train import config as config_module

            config = config_module.load(FINETUNE, overrides=arm_overrides(
                "scratch", fraction, seed, None))
            results["fingerprints"][f"f{fraction}_seed{seed}"] = fingerprint_baselines(
                config, seed)
    results["summary"] = summarise(results)
    (out / "study.json").write_text(json.dumps(results, indent=2))
    table = markdown(results)
    (out / "study.md").write_text(table)
    return results, table


SUMMARY_METRICS = {"solubility": ("test_accuracy",),
                   "log_s": ("test_mae", "test_rmse", "test_spearman"),
                   "profile": ("test_distance_spearman",)}


def summarise(results):
    """[mean, std] over seeds of each headline, per fraction (f10, f30, f100) and arm, and of
    Δm: what docs/graphs.md prints (benchmarks/reproduce.py reads it here)."""
    summary = {"delta_m": [float(np.mean(list(results["delta_m"].values()))),
                           float(np.std(list(results["delta_m"].values())))]
               if results["delta_m"] else None}
    for fraction in results["fractions"]:
        key = f"f{round(100 * fraction)}"
        summary[key] = {}
        for arm in ARMS:
            chosen = [r for r in results["runs"].values()
                      if r["arm"] == arm and r["fraction"] == fraction]
            summary[key][arm] = {
                f"{task}_{metric[5:]}": [float(np.mean(values)), float(np.std(values))]
                for task, metrics in SUMMARY_METRICS.items() for metric in metrics
                for values in [[r["tasks"][task][metric] for r in chosen]]}
        for name in ("random_forest", "linear"):
            found = [v for k, v in results["fingerprints"].items()
                     if k.startswith(f"f{fraction}_")]
            summary[key][f"fingerprint_{name}"] = {
                f"{task}_{metric[5:]}": [float(np.mean(values)), float(np.std(values))]
                for task, metrics in SUMMARY_METRICS.items() if task != "profile"
                for metric in metrics
                for values in [[f[f"{task}:{name}"][metric] for f in found]]}
    return summary


def mean_std(values, scale=1.0, digits=3):
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    return f"{scale * np.mean(values):.{digits}f} ± {scale * np.std(values):.{digits}f}"


def markdown(results):
    """The study's tables (mean ± std over seeds)."""
    runs, seeds = results["runs"], results["seeds"]
    lines = [f"Test split, mean ± std over {len(seeds)} seed(s) ({', '.join(map(str, seeds))}).",
             "", "| labels | arm | solubility acc. % | log S MAE | log S RMSE | log S ρ | "
                 "profile distance ρ | salience AUROC (grad×input) |",
             "|---|---|---|---|---|---|---|---|"]
    for fraction in results["fractions"]:
        for arm in ARMS:
            chosen = [r for r in runs.values() if r["arm"] == arm and r["fraction"] == fraction]
            get = (lambda task, key: [r["tasks"][task].get(key) for r in chosen])
            lines.append(
                f"| {100 * fraction:.0f} % | {arm} | "
                f"{mean_std(get('solubility', 'test_accuracy'), 100, 1)} | "
                f"{mean_std(get('log_s', 'test_mae'))} | {mean_std(get('log_s', 'test_rmse'))} | "
                f"{mean_std(get('log_s', 'test_spearman'))} | "
                f"{mean_std(get('profile', 'test_distance_spearman'))} | "
                f"{mean_std([r['salience']['gradient_x_input']['polar_auroc'] for r in chosen])} |")
        for name in ("random_forest", "linear"):
            found = [v for k, v in results["fingerprints"].items() if k.startswith(f"f{fraction}_")]
            get = (lambda key, task: [f[f"{task}:{name}"].get(key) for f in found])
            lines.append(f"| {100 * fraction:.0f} % | Morgan FP + {name.replace('_', ' ')} | "
                         f"{mean_std(get('test_accuracy', 'solubility'), 100, 1)} | "
                         f"{mean_std(get('test_mae', 'log_s'))} | "
                         f"{mean_std(get('test_rmse', 'log_s'))} | "
                         f"{mean_std(get('test_spearman', 'log_s'))} | - | - |")
    if results["delta_m"]:
        single = [r for r in runs.values() if r["arm"] == "scratch" and r["fraction"] == 1.0]
        lines += ["", "Multi-task vs single-task (from scratch, all labels, test):", "",
                  "| task | multi-task | single-task |", "|---|---|---|"]
        for task, (metric, _) in HEADLINES.items():
            scale, digits = (100, 1) if metric == "test_accuracy" else (1, 3)
            multi = [r["tasks"][task][metric] for r in single]
            alone = [r["tasks"][task]["baseline_" + metric[5:]] for r in single]
            lines.append(f"| {task} ({metric[5:]}) | {mean_std(multi, scale, digits)} | "
                         f"{mean_std(alone, scale, digits)} |")
        lines.append(f"| Δm | {mean_std(list(results['delta_m'].values()), 1, 2)} % | |")
    salience = [r["salience"] for r in runs.values() if r["arm"] == "scratch"
                and r["fraction"] == 1.0]
    if salience:
        lines += ["", "Atom salience of the log S head (from scratch, all labels, test "
                      "molecules):", "",
                  "| method | polar AUROC | polar precision@k | ρ with log P contributions |",
                  "|---|---|---|---|"]
        for method in ("attention", "gradient_x_input", "random"):
            get = (lambda key: [s[method][key] for s in salience])
            lines.append(f"| {method.replace('_', ' ')} | {mean_std(get('polar_auroc'))} | "
                         f"{mean_std(get('polar_precision_at_k'))} | "
                         f"{mean_std(get('logp_spearman'))} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.1, 0.3, 1.0])
    parser.add_argument("--out", type=pathlib.Path, default=ROOT / "runs" / "molecules_study")
    parser.add_argument("--steps", type=int, help="Override every run's steps (a quick look).")
    args = parser.parse_args(argv)
    _, table = run_study(list(range(args.seeds)), args.fractions, args.out, args.steps)
    print(table)


if __name__ == "__main__":
    sys.exit(main())
