"""faiss_bq indexes inside FAISS's Python containers, with the Python
reference to the sub-index deleted before searching (the container must hold
it: faiss's referenced_objects)."""
import gc
import weakref

import numpy as np
import pytest

import faiss
import faiss_bq


def churn():
    """Collects, then allocates and frees indexes of the same sizes, so that
    a freed sub-index's memory is reused (a dangling pointer then reads
    another object's data)."""
    gc.collect()
    junk = [faiss_bq.IndexBQ(36, 2) for _ in range(50)]
    del junk
    gc.collect()


def bq(data, metric=faiss.METRIC_INNER_PRODUCT, nbits=1, x=None):
    d, xb, _ = data
    index = faiss_bq.IndexBQ(d, nbits, metric)
    index.train(xb if x is None else x)
    return index


def test_proxy_classes():
    assert issubclass(faiss_bq.IndexBQ, faiss.IndexFlatCodes)
    assert issubclass(faiss_bq.IndexBinaryFlatFast, faiss.IndexBinary)
    assert issubclass(faiss_bq.SearchParametersBQ, faiss.SearchParameters)


@pytest.mark.parametrize("container", [faiss.IndexIDMap, faiss.IndexIDMap2])
def test_idmap(data, container):
    _, xb, xq = data
    ref = bq(data)
    ref.add(xb)
    Dr, Ir = ref.search(xq, 5)
    sub = bq(data)
    alive = weakref.ref(sub)
    idmap = container(sub)
    ids = np.arange(len(xb)) * 7 + 100
    idmap.add_with_ids(xb, ids)
    del sub
    churn()
    assert alive() is not None           # held by idmap.referenced_objects
    D, I = idmap.search(xq, 5)
    np.testing.assert_array_equal(D, Dr)
    np.testing.assert_array_equal(I, ids[Ir])
    inner = faiss_bq.downcast_index(idmap.index)
    assert type(inner) is faiss_bq.IndexBQ and not inner.thisown
    if container is faiss.IndexIDMap2:
        np.testing.assert_array_equal(idmap.reconstruct(int(ids[3])), ref.reconstruct(3))
    del idmap, inner
    gc.collect()
    assert alive() is None               # and released with it


def test_pretransform(data):
    d, xb, xq = data
    vt = faiss.RandomRotationMatrix(d, d)
    vt.init(4321)
    rotated = vt.apply(xb)
    ref = bq(data, x=rotated)
    ref.add(rotated)
    Dr, Ir = ref.search(vt.apply(xq), 5)
    sub = bq(data, x=rotated)
    alive = weakref.ref(sub)
    pt = faiss.IndexPreTransform(vt, sub)
    del sub, vt
    churn()
    pt.add(xb)
    D, I = pt.search(xq, 5)
    np.testing.assert_array_equal(D, Dr)
    np.testing.assert_array_equal(I, Ir)
    assert alive() is not None
    del pt
    gc.collect()
    assert alive() is None


def test_shards(data):
    d, xb, xq = data
    ref = bq(data)
    ref.add(xb)
    Dr, Ir = ref.search(xq, 8)
    shards = faiss.IndexShards(d, False, True)   # threaded=False, successive_ids
    alive = []
    for _ in range(3):
        shard = faiss_bq.IndexBQ(ref.plan, faiss.METRIC_INNER_PRODUCT)  # same plan
        alive.append(weakref.ref(shard))
        shards.add_shard(shard)
    del shard
    churn()
    shards.add(xb)
    assert [w().ntotal for w in alive] == [200, 200, 200]
    D, I = shards.search(xq, 8)
    np.testing.assert_array_equal(D, Dr)
    np.testing.assert_array_equal(I, Ir)


def test_refine_flat(data):
    d, xb, xq = data
    base = bq(data, metric=faiss.METRIC_L2, nbits=2)
    refine = faiss.IndexRefineFlat(base)
    del base
    churn()
    refine.k_factor = 20
    refine.add(xb)
    D, I = refine.search(xq, 3)
    exact = faiss.IndexFlatL2(d)
    exact.add(xb)
    De, Ie = exact.search(xq, 3)
    np.testing.assert_allclose(D, ((xq[:, None] - xb[I]) ** 2).sum(-1), rtol=1e-4)
    assert (I[:, 0] == Ie[:, 0]).mean() >= 0.9


def test_factory_containers_own_their_parts(data):
    d, xb, xq = data
    idmap = faiss_bq.index_factory(d, "IDMap2,BQ1")
    assert type(idmap) is faiss.IndexIDMap2 and idmap.thisown and idmap.own_fields
    inner = faiss_bq.downcast_index(idmap.index)
    assert type(inner) is faiss_bq.IndexBQ and not inner.thisown    # borrowed
    idmap.train(xb)
    idmap.add_with_ids(xb, np.arange(len(xb)) + 10)
    assert inner.ntotal == len(xb)
    assert (idmap.search(xq, 1)[1] >= 10).all()


def test_selector_kept_alive(data):
    _, xb, xq = data
    index = bq(data)
    index.add(xb)
    sel = faiss.IDSelectorRange(100, 150)
    alive = weakref.ref(sel)
    params = faiss_bq.SearchParametersBQ(sel=sel, estimator=faiss_bq.Estimator_symmetric)
    del sel
    churn()
    assert alive() is not None
    _, I = index.search(xq, 10, params=params)
    assert ((I >= 100) & (I < 150)).all()
    sel = faiss.IDSelectorRange(300, 305)
    alive_new = weakref.ref(sel)
    params.sel = sel                                 # assigned later: held too
    del sel
    churn()
    assert alive() is None and alive_new() is not None   # the old one released
    _, I = index.search(xq, 10, params=params)
    assert ((I[:, :5] >= 300) & (I[:, :5] < 305)).all() and (I[:, 5:] == -1).all()
    del params
    gc.collect()
    assert alive_new() is None


def test_binary_idmap():
    d = 64
    rs = np.random.RandomState(5)
    xb = rs.randint(0, 256, (200, 8)).astype(np.uint8)
    xq = rs.randint(0, 256, (6, 8)).astype(np.uint8)
    sub = faiss_bq.IndexBinaryFlatFast(d)
    idmap = faiss.IndexBinaryIDMap(sub)
    del sub
    churn()
    idmap.add_with_ids(xb, np.arange(200) + 5000)
    theirs = faiss.IndexBinaryFlat(d)
    theirs.add(xb)
    D, I = idmap.search(xq, 4)
    Dt, It = theirs.search(xq, 4)
    np.testing.assert_array_equal(D, Dt)
    np.testing.assert_array_equal(I, It + 5000)
