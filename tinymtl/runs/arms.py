"""Running many runs: every arm of a sweep, a comparison or a seed study, serially or on Dask.

An *arm* (``Arm``) is one ordinary run: a config and the run directory it writes. ``execute``
runs a list of them and returns their summaries:

- **serially**, in this process, one after another (``workers=0``, or Dask not installed);
- on **Dask distributed** (the ``dist`` extra): a ``LocalCluster`` of one worker process per
  core by default, or an existing cluster (``scheduler="tcp://host:8786"``, deployed with Dask's
  own tools: SSH, Kubernetes, HPC job queues). Dask does the scheduling, retries and worker
  bookkeeping; this module only says what an arm is.

Both ways give **bitwise the same weights**: an arm runs with ``threads`` BLAS threads (1 by
default, so that N workers use N cores without oversubscription) whichever process runs it,
and a matrix product's rounding depends on how many threads split it.

Arms resume, so nothing is lost: an arm whose run directory holds a finished run of its config
is reused without running; one that holds a checkpoint resumes from it (bit for bit, as
``tinymtl run --resume``). A worker killed mid-arm is replaced by Dask and the arm, handed to
another worker, resumes from its last periodic checkpoint; a sweep interrupted as a whole
(Ctrl-C) continues where it stopped when started again.
"""

import contextlib
import dataclasses
import os
import pathlib
import sys
import time

from tinymtl.errors import Interrupted
from tinymtl.train import interrupt
from tinymtl.train.config import ConfigError
from tinymtl.train.progress import ProgressBar, RunCounter

DIST_HINT = "pip install 'tinymtl[dist]'"


@dataclasses.dataclass(frozen=True)
class Arm:
    """One run of a multi-run command: ``name`` (e.g. "ewc/ewc_lambda=100/seed_0", shown in
    progress and errors), its validated ``config`` and the run directory ``out``."""
    name: str
    config: dict
    out: str


@contextlib.contextmanager
def thread_limit(threads):
    """BLAS (and Numba) use at most ``threads`` threads inside the block (None: as they are)."""
    if threads is None:
        yield
        return
    import numba
    from threadpoolctl import threadpool_limits

    numba_threads = numba.get_num_threads()
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    try:
        with threadpool_limits(limits=threads):
            yield
    finally:
        numba.set_num_threads(numba_threads)


def finished(arm):
    """The summary of a finished run of ``arm``'s config in its directory, or None (its
    checkpoint may have been deleted: an arm's result is its summary)."""
    from tinymtl.runs.setup import finished_summary

    return finished_summary(pathlib.Path(arm.out), arm.config, weights_needed=False)


def plugin_modules(arms):
    """The modules outside tinymtl whose plugins (``tinymtl.Plugin``) are registered here: a
    worker imports them before its arm, so that a plugin of the user's own package is known
    there too. A plugin an arm names that no worker could import (defined in a script or in a
    function) is refused in one line."""
    import importlib

    from tinymtl.mtl.plugin import REGISTRY

    foreign = [cls for kind in REGISTRY.values() for cls in kind.values()
               if not cls.__module__.startswith("tinymtl")]
    stranded = {cls.name: cls for cls in foreign
                if cls.__module__ == "__main__" or "<locals>" in cls.__qualname__}
    named = set()

    def methods_in(value):
        if isinstance(value, dict):
            if isinstance(value.get("method"), str):
                named.add(value["method"])
            for item in value.values():
                methods_in(item)
        elif isinstance(value, list):
            for item in value:
                methods_in(item)
    for arm in arms:
        methods_in(arm.config)
    for name in sorted(named & set(stranded)):
        where = stranded[name].__module__
        raise ConfigError(f"plugin {name!r} is defined in {where} ({stranded[name].__qualname__})"
                          f", which Dask workers cannot import; expected it in an importable "
                          f"module, or --workers 0 to run the arms in this process")
    modules = sorted({cls.__module__ for cls in foreign if cls.name not in stranded})
    for module in modules:  # (fails here, once, if it cannot be imported)
        importlib.import_module(module)
    return modules


def run_arm(arm, threads=1, progress=False, imports=()):
    """Run one arm to its end and return its summary: what a Dask worker is sent (so it is a
    module-level function of plain arguments). ``imports``: modules to import first (their
    plugins register themselves). Reuses a finished run, resumes a checkpointed one; raises
    Interrupted if the run paused (Ctrl-C, a time budget)."""
    import importlib

    import numpy as np

    from tinymtl import runs

    for module in imports:
        importlib.import_module(module)

    summary = finished(arm)
    if summary is not None:
        return summary
    out = pathlib.Path(arm.out)
    # (overflow and NaN are the trainer's to report, training.on_nonfinite, as in the CLI)
    with thread_limit(threads), np.errstate(all="ignore"):
        summary = runs.run(arm.config, out, resume=(out / "checkpoint.h5").exists(),
                           progress=progress)
    if summary.get("complete") is False:
        raise Interrupted(f"paused at step {summary['step']} ({summary['stopped']})")
    return summary


def execute(arms, workers=None, scheduler=None, threads=1, progress=True,
            again="run the same command again"):
    """Run every arm; returns ({arm name: summary}, {arm name: its one-line error}).

    ``workers``: worker processes of a local Dask cluster (None: one per core, at most one per
    arm; 0: serially in this process). ``scheduler``: the address of an existing Dask cluster
    instead. Without Dask installed, arms run serially (with a note saying so) unless a
    scheduler was asked for. Ctrl-C: Interrupted, once the arms in flight are checkpointed (serial)
    or their workers stopped (Dask: they resume from their last periodic checkpoint), saying
    how to continue (``again``: e.g. "run the same command again")."""
    done = {}
    for arm in arms:
        summary = finished(arm)
        if summary is not None:
            done[arm.name] = summary
    left = [arm for arm in arms if arm.name not in done]
    if not left:
        return done, {}
    if scheduler is None and workers == 0:
        return _serial(left, done, threads, progress, again)
    try:
        import distributed  # noqa: F401
    except ImportError:
        if scheduler is not None:
            raise ConfigError(f"--scheduler {scheduler}: Dask distributed is not installed; "
                              f"expected it ({DIST_HINT})") from None
        print(f"note: Dask is not installed ({DIST_HINT}); running the {len(left)} arms one "
              f"after another in this process", file=sys.stderr)
        return _serial(left, done, threads, progress, again)
    return _distributed(left, done, workers, scheduler, threads, progress, again, len(arms))


def _one_line(error):
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}".rstrip(": ")


def _serial(arms, done, threads, progress, again):
    failed = {}
    counter = RunCounter(len(arms))
    for arm in arms:
        with counter.run(arm.name):
            try:
                done[arm.name] = run_arm(arm, threads, progress)
            except Interrupted as error:
                raise Interrupted(f"{arm.out}: {error}; {again} to continue: finished runs "
                                  f"are reused, this one resumes from its checkpoint") from None
            except Exception as error:  # noqa: BLE001 (one arm's failure ends only that arm)
                failed[arm.name] = _one_line(error)
                print(f"arm {arm.name} failed: {failed[arm.name]}", file=sys.stderr)
    return done, failed


@contextlib.contextmanager
def environment_kept():
    """``os.environ`` as it was before the block. Starting a LocalCluster writes the workers'
    environment (OMP/MKL/OPENBLAS_NUM_THREADS=1, MALLOC_TRIM_THRESHOLD_, PYTHONHASHSEED) into
    this process's too, and every process started from here afterwards (a notebook kernel, a
    ``tinymtl run`` subprocess) would run its products on one thread: slower, and rounded
    differently."""
    before = dict(os.environ)
    try:
        yield
    finally:
        for key in set(os.environ) - set(before):
            del os.environ[key]
        os.environ.update(before)


def _cluster(workers, scheduler, arms):
    """A Dask client: of the cluster at ``scheduler``, or of a new LocalCluster (one worker
    process per core or ``workers``, one thread each; Dask starts workers with
    OMP/MKL/OPENBLAS_NUM_THREADS=1).

    The LocalCluster's scheduler never drops a worker for missing heartbeats (``worker-ttl``
    off; Dask's default is 5 minutes): on one machine a worker that stops answering has been
    paused with the rest of the sweep (a laptop asleep, Ctrl-Z, SIGSTOP), and dropping it would
    restart its arm from the last checkpoint on another worker. A worker that dies is still
    replaced: its nanny sees the process end. A cluster at ``scheduler`` keeps its own setting,
    which guards against machines lost on a network."""
    import logging

    import dask
    from distributed import Client, LocalCluster

    if scheduler is not None:
        return Client(scheduler, timeout="20s"), None
    count = workers or min(os.cpu_count() or 1, len(arms))
    with environment_kept(), dask.config.set({"distributed.scheduler.worker-ttl": None}):
        cluster = LocalCluster(n_workers=count, threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=logging.ERROR)
    return Client(cluster), cluster


def _distributed(arms, done, workers, scheduler, threads, progress, again, total):
    from distributed import as_completed

    imports = plugin_modules(arms)  # (before a cluster is started for nothing)
    client, cluster = _cluster(workers, scheduler, arms)
    failed = {}
    bar = ProgressBar(total, "arms", start=len(done), enabled=progress, unit="arm")
    try:
        pending = {client.submit(run_arm, arm, threads, False, imports, pure=False,
                                 key=f"tinymtl-arm-{arm.name}-{time.time_ns()}"): arm
                   for arm in arms}
        keys = {future.key for future in pending}
        completed = as_completed(list(pending))
        while pending:
            if interrupt.requested():
                raise Interrupted(
                    f"sweep interrupted ({interrupt.requested()}): {len(done)} of {total} arms "
                    f"finished; {again} to continue: finished arms are reused, the others "
                    f"resume from their last checkpoints")
            finished_now = completed.next_batch(block=False)
            if not finished_now:
                time.sleep(0.2)
            for future in finished_now:
                arm = pending.pop(future)
                if future.status == "finished":
                    done[arm.name] = future.result()
                else:
                    failed[arm.name] = _one_line(future.exception())
                    print(f"\narm {arm.name} failed: {failed[arm.name]}", file=sys.stderr)
            threads_of = client.nthreads()  # (a worker's "processing" also lists its queue)
            running = sum(min(sum(key in keys for key in keys_on), threads_of.get(worker, 1))
                          for worker, keys_on in client.processing().items())
            bar.update(len(done) + len(failed),
                       f"{running} running, {len(failed)} failed" if progress else "")
    finally:
        bar.close()
        client.close()
        if cluster is not None:
            cluster.close()
    return done, failed
