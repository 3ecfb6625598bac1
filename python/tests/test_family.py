"""IndexBQFamily from Python: the choice among families (factory
BQ<n>_family), its report, forwarding to the chosen index, files, pickle and
bad input; on real data (skipped, saying so, when absent) the choice against
each candidate on the set's own queries."""
import os
import pickle

import numpy as np
import pytest

import faiss
import faiss_bq

DATA = os.environ.get("FAISS_BQ_DATA") or os.path.join(
    os.path.dirname(__file__), "..", "..", "..", "shared", "data")


def test_candidates_per_budget():
    assert faiss_bq.family_candidates(512, 1) == ["BQ1", "BQR1", "BKQ8x8"]
    assert faiss_bq.family_candidates(512, 0, 192) == ["BQ192B", "BQR3", "BQT3"]
    assert faiss_bq.family_candidates(100, 2) == ["BQ2", "BQR2", "BKQ4x7", "BQT2"]


def test_choice_report_forwarding_files_and_pickle():
    d, n, nq, k = 32, 1200, 10, 5
    x = np.random.default_rng(3).standard_normal((n, d)).astype("float32")
    index = faiss_bq.index_factory(d, "BQ1_family", faiss.METRIC_INNER_PRODUCT)
    assert isinstance(index, faiss_bq.IndexBQFamily)
    assert not index.is_trained and index.index is None
    index.train(x)
    keys = [c.key for c in index.candidates]
    assert keys == ["BQ1", "BQR1", "BKQ8x8"]
    chosen = index.candidates[index.chosen]
    best = max(index.candidates, key=lambda c: c.heldout_recall)
    assert best.key + " has the best" in index.reason
    assert chosen.heldout_recall >= best.heldout_recall - 2.5 * best.heldout_recall_stderr - 0.02
    # The chosen index is downcast to its own class.
    inner = index.index
    assert faiss_bq.index_factory_string(inner) == chosen.key
    index.add(x)
    assert index.ntotal == n and inner.ntotal == n
    D, I = index.search(x[:nq], k)
    D2, I2 = inner.search(x[:nq], k)
    np.testing.assert_array_equal(I, I2)
    np.testing.assert_array_equal(D, D2)
    assert faiss_bq.index_factory_string(index) == "BQ1_family"

    back = faiss_bq.deserialize_index(faiss_bq.serialize_index(index))
    assert isinstance(back, faiss_bq.IndexBQFamily)
    assert back.reason == index.reason and back.chosen == index.chosen
    np.testing.assert_array_equal(back.search(x[:nq], k)[1], I)
    again = pickle.loads(pickle.dumps(index))
    np.testing.assert_array_equal(again.search(x[:nq], k)[1], I)


def test_bad_input_raises():
    index = faiss_bq.IndexBQFamily(16, 1, faiss.METRIC_L2)
    with pytest.raises(RuntimeError, match="not trained"):
        index.search(np.zeros((1, 16), "float32"), 1)
    with pytest.raises(RuntimeError, match="n=99"):
        index.train(np.zeros((99, 16), "float32"))
    x = np.random.default_rng(4).standard_normal((300, 16)).astype("float32")
    x[7, 2] = np.nan
    with pytest.raises(RuntimeError, match="row 7, column 2"):
        index.train(x)
    with pytest.raises(RuntimeError, match="flat-only"):
        faiss_bq.index_factory(16, "IVF4,BQ1_family")


def test_real_data_choice_on_minilm():
    path = os.path.join(DATA, "minilm-sap")
    if not os.path.exists(os.path.join(path, "base.fvecs")):
        pytest.skip("real data absent: %s (build it with ../shared/data/get-data.sh)" % path)
    xb = _fvecs(os.path.join(path, "base.fvecs"))
    xq = _fvecs(os.path.join(path, "query.fvecs"))
    flat = faiss.IndexFlatIP(xb.shape[1])
    flat.add(xb)
    _, gt = flat.search(xq, 10)
    index = faiss_bq.index_factory(xb.shape[1], "BQ1_family", faiss.METRIC_INNER_PRODUCT)
    index.train(xb)
    index.add(xb)
    print(index.reason)

    def recall(ix):
        _, I = ix.search(xq, 10)
        return np.mean([len(set(a) & set(b)) / 10 for a, b in zip(I, gt)])

    r = recall(index)
    for c in index.candidates:
        other = faiss_bq.index_factory(xb.shape[1], c.key, faiss.METRIC_INNER_PRODUCT)
        other.train(xb)
        other.add(xb)
        print(c.key, "held out", c.heldout_recall, "test", recall(other), "choice", r)
        # 100 queries: a standard error near 0.02; the choice within 0.05.
        assert recall(other) <= r + 0.05


def _fvecs(path):
    a = np.fromfile(path, dtype="int32")
    d = a[0]
    return a.reshape(-1, d + 1)[:, 1:].copy().view("float32")
