"""Every documented figure, with the command that produces it: re-run them and report which no
longer hold.

    python benchmarks/reproduce.py              # the fast figures (seconds; also run in CI)
    python benchmarks/reproduce.py --slow       # and the ones that take minutes
    python benchmarks/reproduce.py --all        # and the ones that take hours (continual tables)
    python benchmarks/reproduce.py --only flagship     # figures whose name contains a word
    (add --json FILE for a machine-readable report, --keep DIR to keep the runs)

A figure is a value printed in README.md or docs/ (a held-out accuracy, a share of a peak, the
output of a README example), where it is printed, the command that produces it, where its run
puts it (a JSON path, or the printed text), and how close it must come: by default, rounded as
the document prints it, it must read the same. Runs are deterministic for a seed on a given
machine and package versions; on another machine rounding can move a figure, which is what
this report is for. Wall times and speed ratios are not listed: they are a machine's, and
docs/benchmarks.md gives their commands.

OpenBLAS picks its kernels for the CPU it finds, and its AVX2 and AVX-512 kernels round
differently, so a figure reads the same only under the kernels it was measured with. Most were
measured with the AVX2 ("Haswell") ones, which every x86-64 machine of the last decade has:
each figure runs in a process whose ``OPENBLAS_CORETYPE`` names the figure's kernels
(``"blas"``, Haswell unless it says otherwise).
"""

import argparse
import json
import os
import pathlib
import platform
import re
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent


def readme_block(heading, index=0):
    """The ``index``-th Python block after ``heading`` in README.md, and the text block printed
    after it (the output the README promises)."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index(heading):]
    code = re.findall(r"```python\n(.*?)```", section, re.S)[index]
    after = section[section.index(code) + len(code) + len("```"):]  # past the code's fence
    printed = re.search(r"```\n(.*?)```", after, re.S).group(1)
    return code, printed


# -- the figures ------------------------------------------------------------------------------------
FLAGSHIP = ["tinymtl", "run", "examples/kindergarten_math.yaml", "--quiet"]
SEQUENTIAL = ["tinymtl", "run", "examples/kindergarten_math_sequential.yaml", "--quiet"]
KTM = ["tinymtl", "run", "examples/kindergarten_then_math.yaml", "--quiet", "--set"]
TOKENS = ["tinymtl", "run", "examples/kindergarten_math.yaml", "--seeds", "5", "--set",
          "baselines=token_controlled", "--quiet"]
SHAPES3 = ["tinymtl", "run", "examples/shapes3.yaml", "--quiet"]
GRAPH_MOTIFS = ["tinymtl", "run", "examples/graph_motifs.yaml", "--quiet"]
SHAPES3_WELL_POSED = ["tinymtl", "run", "examples/shapes3_well_posed.yaml", "--quiet"]
MOLECULES = ["tinymtl", "run", "examples/molecules_mtl.yaml", "--quiet"]
FOOD_GRAPH = ["tinymtl", "run", "examples/food_graph.yaml", "--quiet"]  # pretraining included
FOOD_GRAPH_SCRATCH = FOOD_GRAPH + ["--set", "model.pretrain=null"]
FOOD_STUDY = [sys.executable, "benchmarks/food_graph_study.py"]  # 28 minutes
MOLECULES_STUDY = [sys.executable, "benchmarks/molecules_study.py"]  # 11 minutes
SPLIT_MNIST_SWEEP = ["tinymtl", "sweep", "examples/split_mnist_sweep.yaml", "--quiet"]  # 71 min
# about 11 hours on 2 cores; its runs of record are committed in benchmarks/results/permuted_mnist_sweep/
PERMUTED_MNIST_SWEEP = ["tinymtl", "sweep", "examples/permuted_mnist_sweep.yaml", "--quiet"]

def _flagship(what, path, value):
    """A figure of the flagship run's summary.json printed in the README."""
    return {"name": f"flagship {what}", "doc": "README.md", "speed": "slow",
            "command": FLAGSHIP, "path": path, "value": value}


FIGURES = [
    # fast: README examples, compared with the output the README prints
    {"name": "readme intro example output", "doc": "README.md", "speed": "fast",
     "snippet": ("# tinymtl", 0)},
    {"name": "readme plugin example output", "doc": "README.md", "speed": "fast",
     "snippet": ("## From Python: a run with your own plugin", 0)},
    # slow: minutes each
    *(_flagship(f"{task} {what}", f"tasks.{task}.{key}", value)
      for task, what, key, value in (
          ("kindergarten", "accuracy", "test_accuracy", 97.5),
          ("math", "accuracy", "test_accuracy", 99.8),
          ("kindergarten", "single-task", "baseline_accuracy", 98.6),
          ("math", "single-task", "baseline_accuracy", 99.9),
          ("kindergarten", "linear", "linear_accuracy", 20.5),
          ("math", "linear", "linear_accuracy", 16.8))),
    _flagship("round trip bitwise", "roundtrip.weights_bitwise_equal", True),
    {"name": "sequential kindergarten peak", "doc": "README.md", "speed": "slow",
     "command": SEQUENTIAL, "path": "tasks.kindergarten.peak_accuracy", "value": 99.8},
    {"name": "sequential kindergarten final", "doc": "README.md", "speed": "slow",
     "command": SEQUENTIAL, "path": "tasks.kindergarten.test_accuracy", "value": 38.6},
    {"name": "kindergarten then math, finetune: kept of peak", "doc": "docs/continual.md",
     "speed": "slow", "command": KTM + ["continual.method=finetune"],
     "path": "tasks.kindergarten.kept_of_peak", "value": 28.4},
    {"name": "kindergarten then math, EWC: kept of peak", "doc": "docs/continual.md",
     "speed": "slow", "command": KTM + ["continual.method=ewc"],
     "path": "tasks.kindergarten.kept_of_peak", "value": 96.2},
    {"name": "kindergarten then math, replay: kept of peak", "doc": "docs/continual.md",
     "speed": "slow", "command": KTM + ["continual.method=replay"],
     "path": "tasks.kindergarten.kept_of_peak", "value": 85.8},
    {"name": "token-controlled kindergarten, 5 seeds", "doc": "README.md", "speed": "slow",
     "command": TOKENS, "result": "seeds.json",
     "path": "tasks.kindergarten.multitask_mean_std.0", "value": 97.58, "decimals": 2},
    {"name": "token-controlled kindergarten alone, 5 seeds", "doc": "README.md",
     "speed": "slow", "command": TOKENS, "result": "seeds.json",
     "path": "tasks.kindergarten.baseline_mean_std.0", "value": 98.62, "decimals": 2},
    {"name": "token-controlled kindergarten verdict", "doc": "README.md", "speed": "slow",
     "command": TOKENS, "result": "seeds.json", "path": "tasks.kindergarten.label",
     "value": "negative transfer"},
    {"name": "token-controlled math verdict", "doc": "README.md", "speed": "slow",
     "command": TOKENS, "result": "seeds.json", "path": "tasks.math.label",
     "value": "exposure only"},
    {"name": "strategy comparison: equal weighting's delta m", "doc": "docs/strategies.md",
     "speed": "all", "command": ["tinymtl", "run", "examples/compare_strategies.yaml",
                                 "--quiet"],
     "result": "comparison.json", "path": "strategies.equal.delta_m.0", "value": 0.01,
     "scale": 1, "decimals": 2},
    {"name": "strategy comparison: CAGrad's delta m", "doc": "docs/strategies.md",
     "speed": "all", "command": ["tinymtl", "run", "examples/compare_strategies.yaml",
                                 "--quiet"],
     "result": "comparison.json", "path": "strategies.cagrad.delta_m.0", "value": -0.11,
     "scale": 1, "decimals": 2},
    {"name": "graph motifs: motif accuracy", "doc": "docs/graphs.md", "speed": "slow",
     "command": GRAPH_MOTIFS, "path": "tasks.motif.test_accuracy", "value": 96.0},
    {"name": "graph motifs: count MAE", "doc": "docs/graphs.md", "speed": "slow",
     "command": GRAPH_MOTIFS, "path": "tasks.count.test_mae", "value": 0.0783, "scale": 1,
     "decimals": 4},
    # longer: 6-7 minutes a run (shapes3), or data from `tinymtl data fetch mnist|molecules`
    {"name": "shapes3 shape accuracy", "doc": "README.md", "speed": "all",
     "command": SHAPES3, "path": "tasks.A.test_accuracy", "value": 99.7},
    {"name": "shapes3 orientation accuracy", "doc": "README.md", "speed": "all",
     "command": SHAPES3, "path": "tasks.B.test_accuracy", "value": 34.0},
    {"name": "shapes3 intensity MAE", "doc": "README.md", "speed": "all",
     "command": SHAPES3, "path": "tasks.C.test_mae", "value": 0.0223, "scale": 1,
     "decimals": 4},
    {"name": "shapes3 well-posed orientation accuracy", "doc": "README.md", "speed": "all",
     "command": SHAPES3_WELL_POSED, "path": "tasks.B.test_accuracy", "value": 91.8},
    {"name": "food graph: food class accuracy", "doc": "docs/graphs.md", "speed": "all",
     "command": FOOD_GRAPH, "path": "tasks.food_class.test_accuracy", "value": 98.3},
    {"name": "food graph: nutrient distance rho", "doc": "docs/graphs.md", "speed": "all",
     "command": FOOD_GRAPH, "path": "tasks.nutrients.test_distance_spearman", "value": 0.764,
     "scale": 1, "decimals": 3},
    {"name": "food graph: nutrient profile R2", "doc": "docs/graphs.md", "speed": "all",
     "command": FOOD_GRAPH, "path": "tasks.nutrients.test_profile_r2", "value": 0.637,
     "scale": 1, "decimals": 3},
    {"name": "food graph: marker AUROC by attention", "doc": "docs/graphs.md", "speed": "all",
     "command": FOOD_GRAPH, "path": "salience.methods.attention.auroc", "value": 0.877,
     "scale": 1, "decimals": 3},
    {"name": "food graph: marker AUROC by gradient x input", "doc": "docs/graphs.md",
     "speed": "all", "command": FOOD_GRAPH, "path": "salience.methods.gradient_x_input.auroc",
     "value": 0.951, "scale": 1, "decimals": 3},
    {"name": "food graph from scratch: food class accuracy", "doc": "docs/graphs.md",
     "speed": "all", "command": FOOD_GRAPH_SCRATCH, "path": "tasks.food_class.test_accuracy",
     "value": 97.5},
    {"name": "food graph from scratch: marker AUROC by gradient x input",
     "doc": "docs/graphs.md", "speed": "all", "command": FOOD_GRAPH_SCRATCH,
     "path": "salience.methods.gradient_x_input.auroc", "value": 0.918, "scale": 1,
     "decimals": 3},
    {"name": "food graph study: scratch accuracy", "doc": "README.md", "speed": "all",
     "command": FOOD_STUDY, "result": "study.json",
     "path": "summary.scratch.food_class_accuracy.0", "value": 96.7},
    {"name": "food graph study: frozen accuracy", "doc": "docs/graphs.md", "speed": "all",
     "command": FOOD_STUDY, "result": "study.json",
     "path": "summary.frozen.food_class_accuracy.0", "value": 53.3},
    {"name": "food graph study: shuffled-label control accuracy", "doc": "docs/graphs.md",
     "speed": "all", "command": FOOD_STUDY, "result": "study.json",
     "path": "summary.shuffled.food_class_accuracy.0", "value": 18.3},
    {"name": "food graph study: untrained attention AUROC (control)", "doc": "docs/graphs.md",
     "speed": "all", "command": FOOD_STUDY, "result": "study.json",
     "path": "summary.untrained.attention_auroc.0", "value": 0.475, "scale": 1,
     "decimals": 3},
    {"name": "food graph study: molecule-encoder features accuracy", "doc": "docs/graphs.md",
     "speed": "all", "command": FOOD_STUDY, "result": "study.json",
     "path": "summary.molecule encoder.food_class_accuracy.0", "value": 93.6},
    {"name": "food graph study: frozen nutrient R2", "doc": "docs/graphs.md", "speed": "all",
     "command": FOOD_STUDY, "result": "study.json",
     "path": "summary.frozen.nutrients_profile_r2.0", "value": 0.122, "scale": 1,
     "decimals": 3},
    {"name": "food graph study: gradient x input AUROC", "doc": "README.md", "speed": "all",
     "command": FOOD_STUDY, "result": "study.json",
     "path": "summary.scratch.gradient_x_input_auroc.0", "value": 0.908, "scale": 1,
     "decimals": 3},
    {"name": "molecules: solubility class accuracy", "doc": "docs/graphs.md", "speed": "all",
     "command": MOLECULES, "path": "tasks.solubility.test_accuracy", "value": 85.2},
    {"name": "molecules: log S MAE", "doc": "docs/graphs.md", "speed": "all",
     "command": MOLECULES, "path": "tasks.log_s.test_mae", "value": 0.429, "scale": 1,
     "decimals": 3},
    {"name": "molecules: profile distance rho", "doc": "docs/graphs.md", "speed": "all",
     "command": MOLECULES, "path": "tasks.profile.test_distance_spearman", "value": 0.962,
     "scale": 1, "decimals": 3},
    {"name": "molecules: pretraining contrastive accuracy", "doc": "docs/graphs.md",
     "speed": "all", "command": ["tinymtl", "pretrain", "examples/molecules_pretrain.yaml",
                                 "--quiet"],
     "path": "final.valid_accuracy", "value": 89.3},
    {"name": "molecules study: solubility accuracy, scratch, all labels", "doc": "README.md",
     "speed": "all", "command": MOLECULES_STUDY, "result": "study.json",
     "path": "summary.f100.scratch.solubility_accuracy.0", "value": 83.3},
    {"name": "molecules study: log S MAE, scratch, all labels", "doc": "README.md",
     "speed": "all", "command": MOLECULES_STUDY, "result": "study.json",
     "path": "summary.f100.scratch.log_s_mae.0", "value": 0.426, "scale": 1, "decimals": 3},
    {"name": "molecules study: fingerprint forest accuracy, all labels", "doc": "README.md",
     "speed": "all", "command": MOLECULES_STUDY, "result": "study.json",
     "path": "summary.f100.fingerprint_random_forest.solubility_accuracy.0", "value": 73.4},
    {"name": "molecules study: pretrained log S MAE at 30 %", "doc": "docs/graphs.md",
     "speed": "all", "command": MOLECULES_STUDY, "result": "study.json",
     "path": "summary.f30.pretrained.log_s_mae.0", "value": 0.843, "scale": 1, "decimals": 3},
    {"name": "molecules study: delta m", "doc": "README.md", "speed": "all",
     "command": MOLECULES_STUDY, "result": "study.json", "path": "summary.delta_m.0",
     "value": 1.2, "scale": 1},
    {"name": "MNIST accuracy", "doc": "README.md", "speed": "all",
     "command": ["tinymtl", "run", "examples/mnist.yaml", "--quiet"],
     "path": "tasks.digits.test_accuracy", "value": 99.2},
    # hours: the continual benchmarks (docs/continual.md), MNIST data needed
    {"name": "split MNIST sweep: fine-tuning, task-incremental (ACC table)",
     "doc": "docs/continual.md", "speed": "all", "command": SPLIT_MNIST_SWEEP,
     "result": "sweep.json", "path": "variants.task/finetune.test.0", "value": 92.27,
     "decimals": 2, "blas": None},
    {"name": "split MNIST sweep: replay, class-incremental", "doc": "docs/continual.md",
     "speed": "all", "command": SPLIT_MNIST_SWEEP,
     "result": "sweep.json", "path": "variants.class/replay.test.0", "value": 90.84,
     "decimals": 2, "blas": None},
    {"name": "split MNIST sweep: fine-tuning, domain-incremental",
     "doc": "docs/continual.md", "speed": "all", "command": SPLIT_MNIST_SWEEP,
     "result": "sweep.json", "path": "variants.domain/finetune.test.0", "value": 56.24,
     "decimals": 2, "blas": None},
    {"name": "split MNIST sweep: EWC domain-incremental at the chosen λ 10⁹",
     "doc": "docs/continual.md", "speed": "all", "command": SPLIT_MNIST_SWEEP,
     "result": "sweep.json", "path": "variants.domain/ewc/ewc_lambda=1000000000.test.0",
     "value": 67.11, "decimals": 2, "blas": None},
    {"name": "split MNIST sweep: online EWC's domain-incremental choice on valid",
     "doc": "docs/continual.md", "speed": "all", "command": SPLIT_MNIST_SWEEP,
     "result": "sweep.json", "path": "chosen_per_arm.domain/online_ewc",
     "value": "domain/online_ewc/ewc_lambda=1000000000000", "blas": None},
    *({"name": f"permuted MNIST sweep: {what}", "doc": "docs/continual.md", "speed": "all",
       "command": PERMUTED_MNIST_SWEEP, "result": "sweep.json",
       "path": ["variants", variant, "test", 0],  # (a list: variant names hold dots)
       "value": value, "decimals": 2, "blas": None}
      for what, variant, value in (
          ("fine-tuning", "finetune", 80.62),
          ("EWC at the chosen λ 100", "ewc/ewc_lambda=100", 93.30),
          ("online EWC at the chosen λ 100", "online_ewc/ewc_lambda=100", 94.35),
          ("SI at the chosen c 10", "si/si_c=10.0", 93.14),
          ("LwF", "lwf", 75.84),
          ("naive rehearsal", "replay", 95.15),
          ("offline (joint) training", "offline", 97.44))),
    *({"name": f"permuted MNIST sweep: {arm}'s choice on valid", "doc": "docs/continual.md",
       "speed": "all", "command": PERMUTED_MNIST_SWEEP, "result": "sweep.json",
       "path": f"chosen_per_arm.{arm}", "value": choice, "blas": None}
      for arm, choice in (("ewc", "ewc/ewc_lambda=100"), ("online_ewc", "online_ewc/ewc_lambda=100"),
                          ("si", "si/si_c=10.0"))),
]


def lookup(result, path):
    """``result``'s value at ``path``: keys joined by dots, or a list of keys (when one holds a
    dot, as a sweep's variant ``si/si_c=10.0`` does)."""
    for part in (path.split(".") if isinstance(path, str) else path):
        result = result[int(part)] if isinstance(result, list) else result[part]
    return result


def shown(value, decimals, scale=100):
    """A measured value as the document prints it (accuracies in %, rounded)."""
    if isinstance(value, (bool, str)):
        return value
    return round(scale * value, decimals)


def kernel_environment(blas):
    """The environment of a process whose OpenBLAS uses the kernels named ``blas`` (what
    ``tinymtl.backend.blas.blas_kernels()`` reports, e.g. "Haswell"; None: OpenBLAS's own
    choice). Only x86-64 has these kernels; elsewhere the environment is left as it is."""
    environment = dict(os.environ)
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return environment
    environment.pop("OPENBLAS_CORETYPE", None)
    if blas is not None:
        environment["OPENBLAS_CORETYPE"] = blas
    return environment


def run_snippet(heading, index, blas):
    """(what the README prints, what its code prints), run in a fresh Python process (its
    OpenBLAS with the kernels ``blas``) in a scratch folder with a copy of examples/ (the
    code's paths are relative to the repository)."""
    import shutil

    code, printed = readme_block(heading, index)
    with tempfile.TemporaryDirectory(prefix="readme-") as scratch:
        shutil.copytree(ROOT / "examples", pathlib.Path(scratch) / "examples")
        environment = kernel_environment(blas)
        environment["PYTHONPATH"] = os.pathsep.join(  # this checkout's tinymtl, as imported here
            [str(ROOT)] + [p for p in environment.get("PYTHONPATH", "").split(os.pathsep) if p])
        ran = subprocess.run([sys.executable, "-c", code], cwd=scratch, env=environment,
                             capture_output=True, text=True)
    if ran.returncode:
        raise RuntimeError(f"README.md, {heading!r} block {index}: failed:\n{ran.stderr}")
    return printed, ran.stdout


def run_command(command, workdir, done, blas):
    """The JSON result of ``command`` run into its own folder under ``workdir`` (once), its
    OpenBLAS with the kernels ``blas``."""
    key = " ".join(command) + f" [{blas}]"
    if key not in done:
        out = workdir / f"run{len(done)}"
        subprocess.run(command + ["--out", str(out)], cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL, env=kernel_environment(blas))
        done[key] = out
    return done[key]


def check(figures, workdir):
    """[(figure, measured, holds)] for each figure."""
    done, report = {}, []
    for figure in figures:
        blas = figure.get("blas", "Haswell")
        if "snippet" in figure:
            expected, measured = run_snippet(*figure["snippet"], blas)
            report.append({**figure, "measured": measured, "expected": expected,
                           "holds": measured == expected})
            continue
        out = run_command(figure["command"], workdir, done, blas)
        result = json.loads((out / figure.get("result", "summary.json")).read_text())
        measured = shown(lookup(result, figure["path"]), figure.get("decimals", 1),
                         figure.get("scale", 100))
        report.append({**figure, "expected": figure["value"], "measured": measured,
                       "holds": measured == figure["value"]})
    return report


def select(speed, only=None):
    levels = {"fast": ("fast",), "slow": ("fast", "slow"), "all": ("fast", "slow", "all")}
    return [f for f in FIGURES if f["speed"] in levels[speed]
            and (only is None or only in f["name"])]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slow", action="store_true", help="also the figures of minutes")
    parser.add_argument("--all", action="store_true", help="also the figures of hours")
    parser.add_argument("--only", help="only figures whose name contains this")
    parser.add_argument("--json", help="write the report here")
    parser.add_argument("--keep", metavar="DIR",
                        help="keep the runs in DIR (to update a document's whole table when a "
                             "figure moved), instead of a temporary folder")
    args = parser.parse_args(argv)
    speed = "all" if args.all else "slow" if args.slow else "fast"
    figures = select(speed, args.only)
    if args.keep:
        pathlib.Path(args.keep).mkdir(parents=True, exist_ok=True)
        report = check(figures, pathlib.Path(args.keep))
    else:
        with tempfile.TemporaryDirectory(prefix="reproduce-") as scratch:
            report = check(figures, pathlib.Path(scratch))
    for entry in report:
        mark = "holds" if entry["holds"] else "DIFFERS"
        expected = "(printed output)" if "snippet" in entry else entry["expected"]
        measured = "(same)" if entry["holds"] and "snippet" in entry else entry["measured"]
        print(f"{mark:<8} {entry['name']:<48} {entry['doc']:<18} documented {expected}, "
              f"measured {measured}")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(report, indent=2, default=str))
    failed = [e["name"] for e in report if not e["holds"]]
    print(f"{len(report) - len(failed)} of {len(report)} figures hold")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
