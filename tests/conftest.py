"""Shared fixtures: float64 for gradient checks, and the device list (GPU skipped cleanly).

Hypothesis draws the same examples on every run (``derandomize``): the suite passes or fails
the same way on every machine and every CI run, as a reproducibility suite must; a property
test's examples change only when the test does.
"""

import importlib.util

import numpy as np
import pytest
from hypothesis import settings

import tinymtl

settings.register_profile("reproducible", derandomize=True)
settings.load_profile("reproducible")


def _cuda_available():
    if importlib.util.find_spec("cupy") is None:
        return False
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # noqa: BLE001  (no driver, no device: all mean "no GPU")
        return False


DEVICES = [
    "cpu",
    pytest.param("cuda", marks=[pytest.mark.gpu, pytest.mark.skipif(
        not _cuda_available(), reason="CuPy or a CUDA device is not available")]),
]


@pytest.fixture
def float64():
    """Run the test with float64 as the default dtype (gradient checks need it)."""
    with tinymtl.default_dtype(np.float64):
        yield


@pytest.fixture(autouse=True)
def _seeded():
    tinymtl.manual_seed(0)
    yield


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    """Generated datasets go to a temporary cache, not the checkout's datasets/ folder."""
    directory = tmp_path / "data-cache"
    monkeypatch.setenv("TINYMTL_DATA_DIR", str(directory))
    return directory
