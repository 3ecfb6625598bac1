"""IndexBQFastScan from Python: built from an IndexBQ or the factory, the
same neighbours as IndexBQ up to the table rounding, files, bad input."""
import numpy as np
import pytest

import faiss
import faiss_bq


def neighbour_overlap(I0, I1):
    """The mean share of each query's neighbours that both lists hold: the
    tables' rounding reorders near ties, so positions may differ."""
    return np.mean([len(set(a) & set(b)) / len(a) for a, b in zip(I0, I1)])


def test_from_indexbq_and_factory(data):
    d, xb, xq = data
    bq = faiss_bq.IndexBQ(d, 2, faiss.METRIC_INNER_PRODUCT)
    bq.train(xb)
    bq.add(xb)
    fs = faiss_bq.IndexBQFastScan(bq)
    assert isinstance(fs, faiss.Index)
    assert fs.ntotal == bq.ntotal and fs.is_trained
    D0, I0 = bq.search(xq, 10)
    D1, I1 = fs.search(xq, 10)
    # The tables are rounded to 7 bits: the same neighbours, nearly everywhere
    # (0.97 measured; 0.82 at the same positions).
    assert neighbour_overlap(I0, I1) > 0.9
    np.testing.assert_allclose(D1, D0, rtol=0.05, atol=0.05 * np.abs(D0).max())
    # sa codes are IndexBQ's, and reconstruct agrees
    np.testing.assert_array_equal(fs.sa_encode(xb[:5]), bq.sa_encode(xb[:5]))
    np.testing.assert_array_equal(fs.reconstruct(3), bq.reconstruct(3))
    f = faiss_bq.index_factory(d, "BQ2_fs,RFlat", faiss.METRIC_INNER_PRODUCT)
    assert type(f.base_index) is faiss_bq.IndexBQFastScan
    assert faiss_bq.index_factory_string(f) == "BQ2_fs,RFlat"


def test_file_round_trip_and_selector(data, tmp_path):
    d, xb, xq = data
    fs = faiss_bq.index_factory(d, "BQ1_fs")
    fs.train(xb)
    fs.add(xb)
    path = str(tmp_path / "fs.index")
    faiss_bq.write_index(fs, path)
    back = faiss_bq.read_index(path)
    assert type(back) is faiss_bq.IndexBQFastScan
    D0, I0 = fs.search(xq, 5)
    D1, I1 = back.search(xq, 5)
    np.testing.assert_array_equal(I0, I1)
    np.testing.assert_array_equal(D0, D1)
    sel = faiss.IDSelectorRange(0, len(xb) // 2)
    params = faiss.SearchParameters()
    params.sel = sel
    _, I = fs.search(xq, 5, params=params)
    assert (I < len(xb) // 2).all()


def test_bad_input(data):
    d, xb, xq = data
    with pytest.raises(RuntimeError, match="nbits=3"):
        faiss_bq.IndexBQFastScan(d, 3)
    fs = faiss_bq.IndexBQFastScan(d, 1)
    with pytest.raises(RuntimeError, match="not trained"):
        fs.search(xq, 5)
    fs.train(xb)
    fs.add(xb)
    params = faiss_bq.SearchParametersBQ()
    params.query_bits = 4
    with pytest.raises(RuntimeError, match="query_bits=4"):
        fs.search(xq, 5, params=params)
    bad = xq.copy()
    bad[0, 1] = np.nan
    with pytest.raises((RuntimeError, ValueError)):
        fs.search(bad, 5)


def test_joint_nibbles(data):
    """Trained as fast scan, each nibble's coordinates are quantized together
    (16 codewords); IndexBQ scores such codes with the float query only."""
    d, xb, xq = data
    fs = faiss_bq.IndexBQFastScan(d, 1, faiss.METRIC_INNER_PRODUCT)
    assert fs.trainer.joint_nibbles
    fs.train(xb)
    fs.add(xb)
    assert fs.plan.is_joint() and fs.plan.joint_levels.size() == 16 * d
    assert "jointly" in fs.plan.report()
    bq = fs.to_IndexBQ()
    D0, I0 = bq.search(xq, 10)
    D1, I1 = fs.search(xq, 10)
    assert neighbour_overlap(I0, I1) > 0.9  # 0.975 measured
    params = faiss_bq.SearchParametersBQ()
    params.estimator = faiss_bq.Estimator_symmetric
    with pytest.raises(RuntimeError, match="jointly"):
        bq.search(xq, 5, params=params)
    scalar = faiss_bq.IndexBQFastScan(d, 1, faiss.METRIC_INNER_PRODUCT)
    scalar.trainer.joint_nibbles = False
    scalar.train(xb)
    assert not scalar.plan.is_joint()
