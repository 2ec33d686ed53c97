"""The food graph study of docs/graphs.md (issue "Graphs II"): does pretraining on the graph
help, does multi-task beat single-task, which loss weighting, do the controls fail as they
must, and how does marker recovery fare as foods hold other classes' markers? Every number on
the test foods, once per run; every choice on the validation foods.

    python benchmarks/food_graph_study.py                 # 3 seeds (graph and weights)
    python benchmarks/food_graph_study.py --seeds 1       # one look

For each seed s (the graph's generator and the model's initialisation both seeded by s):
GraphCL pretraining (examples/food_graph_pretrain.yaml), then examples/food_graph.yaml

    scratch        every weight from its seed (with each task alone too: Δm)
    pretrained     the encoder from the seed's pretraining, everything fine-tuned
    frozen         the pretrained encoder frozen, linear heads on its features
    gradnorm, uncertainty    from scratch, the losses weighted so (equal: scratch)
    shuffled       a control: the training foods' targets permuted — chance must follow
    untrained      a control: salience of the model before any step — chance marker recovery
    cross 0.3 / 0.6   the difficulty knob: the chance a food holds another class's marker
                      (0.1 by default)
    molecule encoder  from scratch, the compounds described by the molecule encoder of
                      examples/molecules_pretrain.yaml (pretrained once, seed 0, on the
                      molecules: "Graphs I") instead of their fingerprints

Writes OUT/study.json and OUT/study.md (mean ± std over seeds) and prints the table. A run
whose folder already holds a finished summary of the same config is read, not run again, so an
interrupted study (or one with an arm added) goes on where it stopped.
"""

import argparse
import json
import pathlib
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
PRETRAIN = ROOT / "examples" / "food_graph_pretrain.yaml"
FINETUNE = ROOT / "examples" / "food_graph.yaml"
MOLECULE_ENCODER = ROOT / "examples" / "molecules_pretrain.yaml"
HEADLINES = {"food_class": ("test_accuracy", True), "nutrients": ("test_distance_spearman", True)}
ARMS = {  # name: overrides of food_graph.yaml (pretrained arms add backbone_from)
    "scratch": ["baselines=single_task"],
    "pretrained": ["baselines=none"],
    "frozen": ["baselines=none", "model.freeze_backbone=true", "model.head_hidden=0"],
    "gradnorm": ["baselines=none", "training.weighting=gradnorm"],
    "uncertainty": ["baselines=none", "training.weighting=uncertainty"],
    "shuffled": ["baselines=none", "tasks.food_class.shuffle_labels=true",
                 "tasks.nutrients.shuffle_labels=true"],
    "cross 0.3": ["baselines=none", "tasks.food_class.cross_marker=0.3",
                  "tasks.nutrients.cross_marker=0.3"],
    "cross 0.6": ["baselines=none", "tasks.food_class.cross_marker=0.6",
                  "tasks.nutrients.cross_marker=0.6"],
    "molecule encoder": ["baselines=none"],  # + compound_features: its checkpoint (run_study)
}


def untrained_salience(seed, out):
    """Marker recovery by the model of food_graph.yaml before any training step."""
    from tinymtl.runs import salience
    from tinymtl.runs.setup import build, load_tasks
    from tinymtl.train import config as config_module

    config = config_module.load(FINETUNE, overrides=[f"seed={seed}", f"data.seed={seed}"])
    tasks = load_tasks(config)
    out.mkdir(parents=True, exist_ok=True)
    found = salience.compounds(build(config, tasks), "food_class", tasks["food_class"], out,
                               seed, draw=0)
    return {m: {k: v for k, v in s.items() if k != "per_class"}
            for m, s in found["methods"].items()}


def run_once(config_path, out, overrides):
    """``tinymtl run`` of a config with overrides into ``out`` — or, when ``out`` already holds
    the finished summary of the very same config, that summary."""
    from tinymtl.runs import run
    from tinymtl.train import config as config_module

    done = out / "summary.json"
    if done.exists():
        summary = json.loads(done.read_text())
        config = config_module.load(config_path, overrides=overrides)
        if summary.get("complete", True) and config_module.same_config(
                summary["config"], dict(config, name=summary["config"].get("name"))):
            return summary
    return run(config_path, out, progress=False, overrides=overrides)


def run_study(seeds, out, steps=None):
    out.mkdir(parents=True, exist_ok=True)
    results = {"seeds": seeds, "runs": {}, "pretraining": {}, "delta_m": {}, "untrained": {}}
    quick = [f"training.steps={steps}"] if steps else []
    encoder = run_once(MOLECULE_ENCODER, out / "molecules_pretrain",
                       [f"pretraining.steps={steps}"] if steps else [])
    results["molecule_encoder"] = {"final": encoder["final"],
                                   "wall_seconds": encoder["wall_seconds"]}
    described = [f"tasks.{task}.compound_features={encoder['checkpoint']['path']}"
                 for task in HEADLINES]
    for seed in seeds:
        common = [f"seed={seed}", f"data.seed={seed}"]
        started = time.perf_counter()
        summary = run_once(PRETRAIN, out / f"pretrain_seed{seed}",
                           common + ([f"pretraining.steps={steps}"] if steps else []))
        results["pretraining"][seed] = {"initial": summary["initial"], "final": summary["final"],
                                        "wall_seconds": summary["wall_seconds"]}
        pretrained = summary["checkpoint"]["path"]
        print(f"seed {seed}: pretrained in {time.perf_counter() - started:.0f} s", flush=True)
        for arm, overrides in ARMS.items():
            started = time.perf_counter()
            extra = ["model.pretrain=null"] + (  # this seed's pretraining, already run
                [f"model.backbone_from={pretrained}"] if arm in ("pretrained", "frozen") else
                described if arm == "molecule encoder" else [])
            name = f"{arm.replace(' ', '')}_seed{seed}"
            summary = run_once(FINETUNE, out / name, common + overrides + extra + quick)
            results["runs"][name] = {
                "arm": arm, "seed": seed, "wall_seconds": summary["wall_seconds"],
                "tasks": {t: {k: v for k, v in r.items() if k.startswith(("test_", "baseline_"))
                              and isinstance(v, (int, float))}
                          for t, r in summary["tasks"].items()},
                "salience": {m: {k: v for k, v in s.items() if k != "per_class"}
                             for m, s in summary["salience"]["methods"].items()}}
            if arm == "scratch":
                terms = [(r[metric] - single) / abs(single)
                         for t, (metric, _) in HEADLINES.items()
                         for r in [summary["tasks"][t]] for single in [r["baseline_" + metric[5:]]]]
                results["delta_m"][seed] = 100 * float(np.mean(terms))
            print(f"  {name}: {time.perf_counter() - started:.0f} s", flush=True)
        results["untrained"][seed] = untrained_salience(seed, out / f"untrained_seed{seed}")
    results["summary"] = summarise(results)
    (out / "study.json").write_text(json.dumps(results, indent=2))
    table = markdown(results)
    (out / "study.md").write_text(table)
    return results, table


def _mean_std(values):
    values = [v for v in values if v is not None]
    return [float(np.mean(values)), float(np.std(values))] if values else None


def summarise(results):
    """[mean, std] over seeds, per arm: each task's headline, the markers' AUROC and
    precision@k by attention and by gradient × input; Δm; the untrained model's recovery."""
    summary = {"delta_m": _mean_std(list(results["delta_m"].values()))}
    for arm in ARMS:
        chosen = [r for r in results["runs"].values() if r["arm"] == arm]
        summary[arm] = {f"{t}_{metric[5:]}": _mean_std([r["tasks"][t][metric] for r in chosen])
                        for t, (metric, _) in HEADLINES.items()}
        summary[arm]["nutrients_profile_r2"] = _mean_std(  # the predicted nutrients' mean R²
            [r["tasks"]["nutrients"].get("test_profile_r2") for r in chosen])
        if arm == "scratch":
            summary[arm].update({f"{t}_single_{metric[5:]}": _mean_std(
                [r["tasks"][t]["baseline_" + metric[5:]] for r in chosen])
                for t, (metric, _) in HEADLINES.items()})
        for method in ("attention", "gradient_x_input", "random"):
            for key in ("auroc", "precision_at_k"):
                summary[arm][f"{method}_{key}"] = _mean_std(
                    [r["salience"][method][key] for r in chosen])
    summary["untrained"] = {f"{m}_{k}": _mean_std([u[m][k] for u in
                                                   results["untrained"].values()])
                            for m in ("attention", "gradient_x_input", "random")
                            for k in ("auroc", "precision_at_k")}
    return summary


def show(pair, scale=1.0, digits=3):
    return "-" if pair is None else f"{scale * pair[0]:.{digits}f} ± {scale * pair[1]:.{digits}f}"


def markdown(results):
    summary, seeds = results["summary"], results["seeds"]
    lines = [f"Test foods, mean ± std over {len(seeds)} seed(s) ({', '.join(map(str, seeds))}).",
             "", "| arm | food class acc. % | nutrient distance ρ | nutrient R² | "
                 "marker AUROC (attention) | precision@k (attention) | "
                 "marker AUROC (grad × input) |",
             "|---|---|---|---|---|---|---|"]
    for arm in ARMS:
        row = summary[arm]
        lines.append(f"| {arm} | {show(row['food_class_accuracy'], 100, 1)} | "
                     f"{show(row['nutrients_distance_spearman'])} | "
                     f"{show(row['nutrients_profile_r2'])} | "
                     f"{show(row['attention_auroc'])} | {show(row['attention_precision_at_k'])} | "
                     f"{show(row['gradient_x_input_auroc'])} |")
    untrained = summary["untrained"]
    lines.append(f"| untrained (control) | - | - | - | {show(untrained['attention_auroc'])} | "
                 f"{show(untrained['attention_precision_at_k'])} | "
                 f"{show(untrained['gradient_x_input_auroc'])} |")
    scratch = summary["scratch"]
    lines += ["", f"Single-task (from scratch, same steps): food class "
                  f"{show(scratch['food_class_single_accuracy'], 100, 1)} %, nutrient distance ρ "
                  f"{show(scratch['nutrients_single_distance_spearman'])}; "
                  f"Δm {show(summary['delta_m'], 1, 2)} %. Random salience: marker AUROC "
                  f"{show(scratch['random_auroc'])}, precision@k "
                  f"{show(scratch['random_precision_at_k'])}."]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", type=pathlib.Path, default=ROOT / "runs" / "food_graph_study")
    parser.add_argument("--steps", type=int, help="Override every run's steps (a quick look).")
    args = parser.parse_args(argv)
    _, table = run_study(list(range(args.seeds)), args.out, args.steps)
    print(table)


if __name__ == "__main__":
    sys.exit(main())
