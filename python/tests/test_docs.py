"""The ```python blocks of README.md and of every docs/*.md page run: each page's
blocks in order, in one namespace of their own, in an empty working folder."""
import glob
import os
import re

import pytest

ROOT = os.environ.get("FAISS_BQ_SOURCE_DIR") or os.path.join(
    os.path.dirname(__file__), "..", "..")
PAGES = [os.path.join(ROOT, "README.md")] + sorted(
    glob.glob(os.path.join(ROOT, "docs", "*.md")))


def python_blocks(page):
    with open(page) as f:
        return re.findall(r"^```python\n(.*?)^```", f.read(), re.S | re.M)


def test_pages_are_found():
    assert len(PAGES) > 10, "docs/ is missing from %s" % ROOT
    assert sum(len(python_blocks(p)) for p in PAGES) >= 7, "the Python examples are gone"


@pytest.mark.parametrize("page", PAGES, ids=[os.path.relpath(p, ROOT) for p in PAGES])
def test_python_examples(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)           # the examples write files
    namespace = {"__name__": "__main__"}  # guarded blocks run too
    name = os.path.relpath(page, ROOT)
    for i, block in enumerate(python_blocks(page)):
        exec(compile(block, "%s python block %d" % (name, i + 1), "exec"), namespace)
