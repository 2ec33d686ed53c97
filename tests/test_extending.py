"""docs/extending.md's worked example, run as written: a loss weighting defined outside the
library, checked against its equation and used from a config."""

import math
import pathlib
import re

import numpy as np
import pytest

import tinymtl as tm
from tinymtl.mtl import plugin as P
from tinymtl.train import config as config_module

from mtl_helpers import small_config, train_straight_and_resumed

DOC = pathlib.Path(__file__).resolve().parent.parent / "docs" / "extending.md"


@pytest.fixture
def geometric():
    code = re.search(r"```python\n(.*?)```", DOC.read_text(), re.S).group(1)
    namespace = {"__name__": "extending_example"}
    exec(compile(code, str(DOC), "exec"), namespace)
    yield namespace["GeometricMean"]
    del P.REGISTRY["weighting"]["geometric"]


def test_its_gradient_is_that_of_the_geometric_mean(geometric, float64):
    rng = np.random.default_rng(0)
    w = tm.tensor(rng.standard_normal(4), requires_grad=True)
    targets = [rng.standard_normal(4) for _ in range(3)]

    def losses():
        return {t: ((w - tm.tensor(y)) ** 2).mean() for t, y in zip("abc", targets)}

    method = geometric().bind(list("abc"))
    method.combine(losses()).backward()
    by_weights = w.grad.copy()
    w.grad = None
    values = list(losses().values())
    ((values[0] * values[1] * values[2]) ** (1 / 3)).backward()
    np.testing.assert_allclose(by_weights, w.grad, rtol=1e-6)
    L = [v.item() for v in values]
    mean = math.prod(L) ** (1 / 3)
    assert method.weights() == pytest.approx({t: mean / (3 * v) for t, v in zip("abc", L)})


def test_it_runs_from_a_config_and_resumes_exactly(geometric, tmp_path, data_dir):
    config = small_config(training={"steps": 8, "schedule": "mixed", "log_every": 2,
                                    "weighting": {"method": "geometric", "eps": 1.0e-6}})
    assert config["training"]["weighting"] == {"method": "geometric", "eps": 1e-6}
    from tinymtl.runs.setup import load_tasks

    straight, resumed = train_straight_and_resumed(config, load_tasks(config), 3,
                                                   tmp_path / "c.h5")
    assert type(straight.weighting).__name__ == "GeometricMean"
    assert straight.weighting.weights() == resumed.weighting.weights()
    assert "geometric" in config_module.method_listing("weighting")
