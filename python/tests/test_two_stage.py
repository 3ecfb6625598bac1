"""IndexBQRefine and IndexFromBinary from Python: FAISS objects as stages,
per-search parameters, lifetimes, files, bad input."""
import gc
import weakref

import numpy as np
import pytest

import faiss
import faiss_bq


def exact(xb, xq, k, metric=faiss.METRIC_L2):
    flat = faiss.IndexFlat(xb.shape[1], metric)
    flat.add(xb)
    return flat.search(xq, k)


def test_classes_and_factory(data):
    d, _, _ = data
    assert issubclass(faiss_bq.IndexBQRefine, faiss.Index)
    assert issubclass(faiss_bq.IndexFromBinary, faiss.Index)
    assert issubclass(faiss_bq.SearchParametersBQRefine, faiss.SearchParameters)
    rf = faiss_bq.index_factory(d, "BQ1,RFlat")
    assert type(rf) is faiss_bq.IndexBQRefine
    assert type(rf.base_index) is faiss_bq.IndexBQ
    assert type(faiss_bq.downcast_index(rf.refine_index)) is faiss.IndexFlat
    fb = faiss_bq.index_factory(40, "BQ2_axis(BHNSW8)")
    assert type(fb) is faiss_bq.IndexFromBinary
    assert fb.code_bits() == 80
    assert faiss_bq.index_factory_string(fb) == "BQ2_axis(BHNSW8)"


def test_refine_with_a_faiss_store(data):
    """A faiss.IndexScalarQuantizer store passed from Python, its reference
    dropped: the refine index holds it; all candidates give exact order."""
    d, xb, xq = data
    first = faiss_bq.IndexBQ(d, 1)
    store = faiss.IndexScalarQuantizer(d, faiss.ScalarQuantizer.QT_fp16)
    alive = weakref.ref(store)
    rf = faiss_bq.IndexBQRefine(first, store)
    del first, store
    gc.collect()
    assert alive() is not None
    rf.train(xb)
    rf.add(xb)
    rf.k_factor = len(xb) / 5
    D, I = rf.search(xq, 5)
    De, Ie = exact(xb, xq, 5)
    np.testing.assert_allclose(D, De, rtol=2e-3, atol=1e-3)   # fp16 store
    assert (I == Ie).mean() > 0.95
    del rf
    gc.collect()
    assert alive() is None


def test_per_search_parameters(data):
    d, xb, xq = data
    rf = faiss_bq.IndexBQRefine(faiss_bq.IndexBQ(d, 1))
    rf.train(xb)
    rf.add(xb)
    rf.k_factor = 20
    first = faiss_bq.SearchParametersBQ(query_bits=8)
    params = faiss_bq.SearchParametersBQRefine(k_factor=1, base_params=first)
    del first
    gc.collect()
    D1, I1 = rf.search(xq, 5, params=params)
    assert rf.last_stats.candidates == 5 * len(xq)
    # k_factor 1: the first stage's top 5 (with 8-bit queries), re-ordered
    _, Ib = rf.base_index.search(xq, 5, params=faiss_bq.SearchParametersBQ(query_bits=8))
    for a, b in zip(I1, Ib):
        assert set(a) == set(b)
    assert rf.k_factor == 20
    sel = faiss.IDSelectorRange(0, 100)
    params = faiss_bq.SearchParametersBQRefine(k_factor=len(xb), sel=sel)
    del sel
    gc.collect()
    D, I = rf.search(xq, 5, params=params)
    assert (I < 100).all()
    De, Ie = exact(xb[:100], xq, 5)
    np.testing.assert_allclose(D, De, rtol=1e-5, atol=1e-5)


def test_front_end_over_faiss_binary_hnsw(data):
    d, xb, xq = data
    bits = 8 * ((d + 7) // 8)
    hnsw = faiss.IndexBinaryHNSW(bits, 16)
    hnsw.hnsw.efSearch = len(xb)
    fb = faiss_bq.IndexFromBinary(hnsw, d)
    del hnsw
    gc.collect()
    fb.train(xb)
    fb.add(xb)
    flat = faiss_bq.IndexFromBinary(faiss_bq.IndexBinaryFlatFast(bits), fb.plan)
    flat.add(xb)
    D, I = fb.search(xq, 10)
    Df, If = flat.search(xq, 10)
    np.testing.assert_array_equal(D, Df)      # Hamming distances
    # refine on top (of an empty front end with the same plan), inside
    # faiss.IndexIDMap2
    hnsw = faiss.IndexBinaryHNSW(bits, 16)
    hnsw.hnsw.efSearch = len(xb)
    rf = faiss_bq.IndexBQRefine(faiss_bq.IndexFromBinary(hnsw, fb.plan))
    del hnsw
    rf.k_factor = len(xb) / 10
    idmap = faiss.IndexIDMap2(rf)
    del rf
    gc.collect()
    idmap.add_with_ids(xb, np.arange(len(xb)) * 3)
    D, I = idmap.search(xq, 10)
    De, Ie = exact(xb, xq, 10)
    np.testing.assert_allclose(D, De, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(I, Ie * 3)


def test_serialize_round_trip(data):
    d, xb, xq = data
    index = faiss_bq.index_factory(d, "IDMap2,BQ1(BFlat),Refine(SQ8)")
    index.train(xb)
    index.add_with_ids(xb, np.arange(len(xb)) + 7)
    back = faiss_bq.deserialize_index(faiss_bq.serialize_index(index))
    assert faiss_bq.index_factory_string(back) == "IDMap2,BQ1(BFlat),Refine(SQ8)"
    for a, b in zip(index.search(xq, 5), back.search(xq, 5)):
        np.testing.assert_array_equal(a, b)


def test_bad_input(data):
    d, xb, xq = data
    rf = faiss_bq.IndexBQRefine(faiss_bq.IndexBQ(d, 1))
    with pytest.raises(RuntimeError, match="not trained"):
        rf.search(xq, 5)
    rf.train(xb)
    rf.add(xb)
    rf.k_factor = 0.5
    with pytest.raises(RuntimeError, match="k_factor=0.5"):
        rf.search(xq, 5)
    rf.k_factor = 4
    with pytest.raises(RuntimeError, match="k_factor=0.25"):
        rf.search(xq, 5, params=faiss_bq.SearchParametersBQRefine(k_factor=0.25))
    with pytest.raises(RuntimeError, match="d=37 differs"):
        faiss_bq.IndexBQRefine(faiss_bq.IndexBQ(d, 1), faiss.IndexFlat(d + 1))
    with pytest.raises(RuntimeError, match="d=72 bits but the plan's codes have 40"):
        faiss_bq.IndexFromBinary(faiss.IndexBinaryFlat(72), d)
    fb = faiss_bq.IndexFromBinary(faiss.IndexBinaryFlat(40), d)
    with pytest.raises(RuntimeError, match="plan is not trained"):
        fb.add(xb)


def test_budget_and_matryoshka(data):
    """Issue 8's forms reach Python: CodeBudget, the budget factory with
    _mrl, the prefix candidates in the plan's evidence."""
    d, xb, xq = data
    index = faiss_bq.IndexBQ(d, faiss_bq.CodeBudget(8), faiss.METRIC_L2)
    assert index.budget_bytes == 8 and index.nbits == 0
    index.trainer.matryoshka = True
    index.train(xb)
    index.add(xb)
    assert index.code_size == 8 + 12
    assert sum(c.prefix for c in index.plan.candidates) == 2
    back = faiss_bq.deserialize_index(faiss_bq.serialize_index(index))
    assert back.trainer.matryoshka
    np.testing.assert_array_equal(back.search(xq, 5)[1], index.search(xq, 5)[1])
    assert faiss_bq.index_factory_string(faiss_bq.index_factory(d, "BQ8B_mrl")) == "BQ8B_mrl"
