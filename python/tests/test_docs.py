"""The ```python blocks of README.md run, in order, in one namespace."""
import os
import re

import pytest

README = os.environ.get("FAISS_BQ_README") or os.path.join(
    os.path.dirname(__file__), "..", "..", "README.md")


def test_readme_python_examples(tmp_path, monkeypatch, capsys):
    with open(README) as f:
        blocks = re.findall(r"^```python\n(.*?)^```", f.read(), re.S | re.M)
    assert len(blocks) >= 3, "README.md lost its Python examples"
    monkeypatch.chdir(tmp_path)           # the examples write files
    namespace = {}
    for i, block in enumerate(blocks):
        exec(compile(block, "README.md python block %d" % (i + 1), "exec"), namespace)
    out = capsys.readouterr().out
    assert "BinarizationPlan" in out and "IDMap2,BQ1,RFlat" in out
