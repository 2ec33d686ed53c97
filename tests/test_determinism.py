"""Same seed -> bitwise-identical parameters after 20 training steps, in one process and across
two processes (the test runs the training in fresh interpreters)."""

import hashlib
import platform
import subprocess
import sys

import numpy as np
import pytest

import tinymtl as tm
import tinymtl.nn as nn
import tinymtl.nn.functional as F
from tinymtl.optim import Adam


def train_and_hash(seed=123, steps=20):
    """Train a small CNN with dropout and batch norm; return the sha256 of its state."""
    tm.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Dropout(0.2), nn.Linear(8 * 4 * 4, 16), nn.GELU(), nn.Linear(16, 3))
    optimizer = Adam(model.parameters(), lr=1e-2, weight_decay=1e-4)
    data = np.random.default_rng(seed)
    for _ in range(steps):
        x = tm.tensor(data.standard_normal((16, 1, 8, 8)))
        y = tm.tensor(data.integers(0, 3, 16))
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
    digest = hashlib.sha256()
    for name, value in model.state_dict().items():
        assert value.dtype == np.float32, name
        digest.update(name.encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


def test_same_seed_gives_identical_weights_in_one_process():
    assert train_and_hash() == train_and_hash()
    assert train_and_hash(seed=1) != train_and_hash(seed=2)


def test_same_seed_gives_identical_weights_across_processes():
    code = ("import sys; sys.path.insert(0, 'tests'); "
            "from test_determinism import train_and_hash; print(train_and_hash())")
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True).stdout.strip() for _ in range(2)]
    assert runs[0] == runs[1] == train_and_hash()


def test_run_identity_records_the_blas_threads_that_decide_the_bits():
    # A product split over more threads sums in another order and rounds differently, so a
    # run's summary says how many threads its BLAS used (backend.blas.blas_threads).
    from threadpoolctl import threadpool_limits

    from tinymtl.backend.blas import blas_threads
    from tinymtl.runs.setup import run_identity

    if blas_threads() is None:
        pytest.skip("threadpoolctl finds no BLAS")
    config = {"seed": 3}
    with threadpool_limits(limits=1, user_api="blas"):
        assert blas_threads() == 1
        assert run_identity(config)["blas_threads"] == 1
    assert run_identity(config)["blas_threads"] == blas_threads() >= 1


def test_numpy_simd_names_the_level_of_the_loops_numpy_chose():
    # NumPy's AVX-512 loops of power, log1p, ... (Intel's SVML) round differently from the
    # C library's that older CPUs run, so a run's summary and the pinned digests name the level
    # (backend.simd): it must be the one NumPy actually picked for power's float32 loop.
    introspect = pytest.importorskip("numpy.lib.introspect")  # (NumPy 2.0 and newer)

    from tinymtl.backend.simd import numpy_simd
    from tinymtl.runs.setup import run_identity

    if platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip("the X86_V levels are x86's")
    level = numpy_simd()
    chosen = introspect.opt_func_info(func_name="^power$", signature="^float32")["power"]
    assert level in ("X86_V4", "X86_V3", "X86_V2")
    assert (level == "X86_V4") == (next(iter(chosen.values()))["current"] == "X86_V4")
    assert run_identity({"seed": 0})["numpy_simd"] == level
