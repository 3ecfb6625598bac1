"""The Python module and a C++ program (bq_py_reference, linked with
libfaiss.a) run the same pipeline on the same data: factory, train (seeded
trainer), add, search, sa_encode, write_index. Everything must be equal, bit
for bit: plan report, codes, distances, labels, file bytes."""
import os
import subprocess

import numpy as np
import pytest

import faiss
import faiss_bq

from conftest import clustered

REFERENCE = os.environ.get("FAISS_BQ_PY_REFERENCE")


def write_fvecs(path, x):
    n, d = x.shape
    rows = np.empty((n, d + 1), dtype=np.float32)
    rows[:, 0] = np.array([d], dtype=np.int32).view(np.float32)[0]
    rows[:, 1:] = x
    rows.tofile(path)


@pytest.mark.skipif(not REFERENCE, reason="FAISS_BQ_PY_REFERENCE not set: "
                    "run through ctest, which builds bq_py_reference")
@pytest.mark.parametrize("description,metric", [
    ("BQ1", "IP"), ("BQ2_rot", "L2"), ("BQ1_sym", "L2"), ("BQ2_q4", "IP"),
    ("PCA24,BQ1", "IP"), ("BQ1,RFlat", "L2")])
def test_same_as_cpp(tmp_path, description, metric):
    d, k = 32, 10
    xt, xb, xq = clustered(1000, d, 11), clustered(500, d, 12), clustered(25, d, 13)
    paths = [str(tmp_path / n) for n in ("train.fvecs", "base.fvecs", "query.fvecs")]
    for p, x in zip(paths, (xt, xb, xq)):
        write_fvecs(p, x)
    out = str(tmp_path / "cpp")
    r = subprocess.run([REFERENCE, *paths, description, metric, str(k), out],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr

    m = faiss.METRIC_INNER_PRODUCT if metric == "IP" else faiss.METRIC_L2
    index = faiss_bq.index_factory(d, description, m)
    index.train(xt)
    index.add(xb)
    D, I = index.search(xq, k)
    np.testing.assert_array_equal(D, np.fromfile(out + ".D", np.float32).reshape(-1, k))
    np.testing.assert_array_equal(I, np.fromfile(out + ".I", np.int64).reshape(-1, k))
    with open(out + ".index", "rb") as f:
        assert faiss_bq.serialize_index(index).tobytes() == f.read()
    if isinstance(index, faiss_bq.IndexBQ):
        np.testing.assert_array_equal(
            index.sa_encode(xb), np.fromfile(out + ".codes", np.uint8).reshape(len(xb), -1))
        with open(out + ".report") as f:
            assert index.plan.report() == f.read()
    else:
        assert not os.path.exists(out + ".codes")
