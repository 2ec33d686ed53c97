"""The README's Python example runs as written (shortened: fewer steps)."""

import re
import shutil
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent


def python_block_after(heading):
    text = (ROOT / "README.md").read_text()
    section = text[text.index(heading):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.mark.slow
def test_the_plugin_example_runs(tmp_path, monkeypatch, capsys, data_dir):
    code = python_block_after("## From Python: a run with your own plugin")
    assert "training.steps=1500" in code
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    monkeypatch.chdir(tmp_path)
    exec(compile(code.replace("training.steps=1500", "training.steps=500"), "README", "exec"),
         {"__name__": "readme"})
    printed = capsys.readouterr().out.splitlines()
    assert re.fullmatch(r"step 500: conflicts [01]\.\d\d, mean cosine [+-]\d\.\d{3}", printed[0])
    assert [line.split(":")[0] for line in printed[1:]] == ["kindergarten", "math"]
    assert (tmp_path / "runs" / "pcgrad_demo" / "summary.json").exists()
