"""Built-in callbacks (``train.callbacks``): each on a scripted sequence, then in a real run."""

import json
import types

import pytest
from click.testing import CliRunner

from tinymtl.cli import main
from tinymtl.train.callbacks import LossSpike

from mtl_helpers import tiny_config, write_config


def scripted(detector, losses):
    """Feed ``losses`` (one per step, task 'a') to ``detector``; the rows it logged."""
    rows = []
    trainer = types.SimpleNamespace(label="multitask", step=0, log=rows.append)
    for step, loss in enumerate(losses):
        trainer.step = step
        detector.on_after_optimizer_step(trainer, {"a": loss})
    return rows


def test_a_spike_is_a_loss_above_k_times_the_running_median(capsys):
    losses = [1.0, 0.9, 1.1, 1.0, 0.95, 9.0, 10.5, 1.0, 0.9, 50.0]
    rows = scripted(LossSpike(factor=10, window=5, min_steps=3), losses)
    # 9.0 is 9x the median (1.0) of its window: no spike; 10.5 is 10.5x: a spike at step 7;
    # 50.0 at step 10 is far above the median of [0.95, 9.0, 10.5, 1.0, 0.9] = 1.0
    assert [(r["step"], r["loss"], r["median"]) for r in rows] == [(7, 10.5, 1.0),
                                                                   (10, 50.0, 1.0)]
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0] == "warning: step 7 (multitask): task a's loss 10.5 is 10.5x its running " \
                     "median 1"


def test_no_check_before_min_steps_and_warnings_are_capped(capsys):
    assert scripted(LossSpike(factor=2, min_steps=3), [1.0, 100.0, 1.0]) == []
    rows = scripted(LossSpike(factor=2, min_steps=3, max_warnings=1),
                    [1.0, 1.0, 1.0, 5.0, 1.0, 5.0])
    assert [r["step"] for r in rows] == [4, 6]
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_its_state_resumes_where_it_was():
    first = LossSpike(window=4)
    scripted(first, [1.0, 2.0, 3.0, 4.0, 5.0])
    again = LossSpike(window=4)
    again.load_state_dict(json.loads(json.dumps(first.state_dict())))
    assert [list(d) for d in again.recent.values()] == [[2.0, 3.0, 4.0, 5.0]]
    assert scripted(again, [100.0]) == scripted(first, [100.0])


@pytest.mark.parametrize("options", [{"factor": 0.5}, {"window": 1}, {"colour": "red"}])
def test_bad_options_are_refused(options):
    with pytest.raises(ValueError):
        LossSpike(**options)


def test_listed_in_a_config_it_writes_its_rows(tmp_path, data_dir):
    config = tiny_config(training={"steps": 30, "lr": 0.5},
                         callbacks=[{"method": "loss_spike", "factor": 1.0, "min_steps": 3,
                                     "max_warnings": 0}])
    path = write_config(tmp_path / "spiky.yaml", config)
    result = CliRunner().invoke(main, ["run", str(path), "--out", str(tmp_path / "run"),
                                       "--quiet"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    spikes = [r for r in rows if r.get("type") == "loss_spike"]
    assert spikes and all(r["loss"] > r["median"] for r in spikes)  # k = 1: above the median
