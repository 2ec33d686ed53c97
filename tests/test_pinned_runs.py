"""Behaviour pinned: every example and every training method, run short, ends with the weights,
optimizer state and metrics rows recorded in ``tests/pinned_runs.json`` (``pinned_runs.py``), one
recording per environment (platform, package versions, BLAS kernels, NumPy's SIMD level).

A refactoring of the training layer must leave them bitwise identical; a change that is meant
to alter training re-records them (``python tests/pinned_runs.py --record``) and says so."""

import pytest

import pinned_runs


def recorded_here():
    """This environment's recording (the test skips where there is none)."""
    recorded = pinned_runs.recording_for()
    if recorded is None:
        pytest.skip(f"no digests recorded for {pinned_runs.environment()} (rounding may differ); "
                    f"recorded for {[r['environment'] for r in pinned_runs.recordings()]}")
    return recorded


@pytest.mark.slow
def test_every_pinned_run_is_bitwise_identical_to_its_recording(tmp_path, monkeypatch):
    recorded = recorded_here()
    monkeypatch.setenv("TINYMTL_DATA_DIR", str(tmp_path))  # restored after prepare_data's set
    measured = pinned_runs.compute(workdir=tmp_path)
    different = pinned_runs.differences(recorded["arms"], measured)
    assert not different, "\n".join(different)


def test_the_pinned_arms_cover_every_example_and_method():
    import tinymtl.train.config  # noqa: F401  (registers every built-in method)
    from tinymtl.mtl.plugin import methods

    names = set(pinned_runs.arms())
    assert pinned_runs.recordings()
    for recording in pinned_runs.recordings():
        assert names == set(recording["arms"]), recording["environment"]
        assert set(pinned_runs.FROZEN_ARMS) == set(recording["resumed_format1"])
    examples = {p.stem for p in pinned_runs.EXAMPLES.glob("*.yaml")
                if "compare" not in p.stem and "sweep:" not in p.read_text()
                and "pretraining:" not in p.read_text()}
    assert {f"example:{e}" for e in examples} <= names
    for kind in ("weighting", "continual"):
        assert {f"{kind}:{m}" for m in methods(kind)} <= names
    assert {f"gradients:{m}" for m in methods("gradients") if m != "sum"} <= names


@pytest.mark.parametrize("arm", sorted(pinned_runs.FROZEN_ARMS))
def test_a_format1_checkpoint_resumes_to_the_pinned_end(arm, tmp_path, monkeypatch):
    """Checkpoints written before the plugin protocol (format 1, frozen mid-run) still load and
    resume. (Until float32 gradients were enforced everywhere, issue #16, the resumed runs
    ended exactly where the uninterrupted ones did: the frozen halves were computed with the
    float64 max-pooling gradient of before, so the ends are now recorded on their own.)"""
    recorded = recorded_here()
    monkeypatch.setenv("TINYMTL_DATA_DIR", str(tmp_path))
    pinned_runs.prepare_data(tmp_path)
    assert pinned_runs.resume_frozen(arm, tmp_path) == recorded["resumed_format1"][arm]
