"""The ```python blocks of docs/recurrent.md run, in order, in one namespace."""
import os
import re

DOC = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "recurrent.md")


def test_recurrent_doc_examples(tmp_path, monkeypatch, capsys):
    with open(DOC) as f:
        blocks = re.findall(r"^```python\n(.*?)^```", f.read(), re.S | re.M)
    assert blocks, "docs/recurrent.md lost its Python example"
    monkeypatch.chdir(tmp_path)
    namespace = {}
    for i, block in enumerate(blocks):
        exec(compile(block, "docs/recurrent.md python block %d" % (i + 1), "exec"),
             namespace)
    assert "BQR2_sym" in capsys.readouterr().out
