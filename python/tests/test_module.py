"""Loading next to faiss (one FAISS copy), downcasting, the plan and the
analysis as attributes, the SIMD level, the numpy front ends."""
import os
import subprocess

import numpy as np
import pytest

import faiss
import faiss_bq

EXTENSION = [os.path.join(os.path.dirname(faiss_bq.__file__), f)
             for f in os.listdir(os.path.dirname(faiss_bq.__file__))
             if f.startswith("_swigfaiss_bq") and f.endswith(".so")][0]


def test_import_alone_imports_faiss_first(run_py):
    r = run_py("""
        import sys
        import faiss_bq
        assert 'faiss' in sys.modules
        print(faiss_bq.IndexBQ(8).d)
    """)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "8"


def test_one_faiss_copy():
    """FAISS comes from faiss's own extension (NEEDED _swigfaiss.so), never
    from libfaiss.a linked in: faiss::index_factory is not defined here."""
    tools = [t for t in ("readelf", "nm") if subprocess.run(
        ["which", t], capture_output=True).returncode == 0]
    if len(tools) < 2:
        pytest.skip("binutils (readelf, nm) not installed: cannot inspect %s" % EXTENSION)
    dyn = subprocess.run(["readelf", "-d", EXTENSION], capture_output=True, text=True).stdout
    assert "[_swigfaiss.so]" in dyn
    syms = subprocess.run(["nm", "-D", EXTENSION], capture_output=True, text=True).stdout
    factory = [l for l in syms.splitlines()
               if l.endswith(" _ZN5faiss13index_factoryEiPKcNS_10MetricTypeE")]
    assert factory and factory[0].split()[0] == "U", factory


def test_downcasting(data):
    d, xb, _ = data
    assert type(faiss_bq.index_factory(d, "BQ2_rot")) is faiss_bq.IndexBQ
    assert type(faiss_bq.index_factory(d, "IDMap,BQ1")) is faiss.IndexIDMap
    assert type(faiss_bq.index_factory(d, "PCA16,BQ1")) is faiss.IndexPreTransform
    hnsw = faiss_bq.index_factory(d, "HNSW16_BQ1")
    assert type(hnsw) is faiss.IndexHNSW and hnsw.thisown
    assert type(faiss_bq.downcast_index(hnsw.storage)) is faiss_bq.IndexBQ
    ivf = faiss_bq.index_factory(d, "IVF4,Flat")          # FAISS's, passed through
    assert type(ivf) is faiss.IndexIVFFlat and ivf.thisown
    assert type(faiss_bq.index_binary_factory(64, "BFlat")) is faiss_bq.IndexBinaryFlatFast
    assert type(faiss_bq.index_binary_factory(64, "BHNSW8")) is faiss.IndexBinaryHNSW
    # faiss's own downcast does not know faiss_bq's types; ours falls back to it
    # (a member proxy is borrowed: its container must stay alive)
    idmap = faiss.IndexIDMap(faiss_bq.IndexBQ(d))
    assert type(idmap.index) is faiss.Index
    assert type(faiss_bq.downcast_index(idmap.index)) is faiss_bq.IndexBQ
    idmap_flat = faiss.IndexIDMap(faiss.IndexFlatL2(d))
    assert type(faiss_bq.downcast_index(idmap_flat.index)) is faiss.IndexFlat
    assert faiss_bq.downcast_index(None) is None


def test_reverse_factory(data):
    d, _, _ = data
    for s in ("BQ1", "BQ2_rot_ctr_q4", "IDMap2,BQ1_sym", "PCA16,BQ1,RFlat", "HNSW16_BQ2"):
        assert faiss_bq.index_factory_string(faiss_bq.index_factory(d, s)) == s
    assert faiss_bq.index_factory_string(faiss_bq.index_binary_factory(64, "IDMap,BFlat")) \
        == "IDMap,BFlat"
    assert faiss_bq.index_factory_string(faiss.IndexBinaryFlat(64)) == "BFlat"


def test_plan_and_analysis_attributes(data):
    d, xb, _ = data
    index = faiss_bq.IndexBQ(d, 2, faiss.METRIC_INNER_PRODUCT)
    index.trainer.transform = faiss_bq.TransformChoice_random_rotation
    index.train(xb)
    plan = index.plan
    assert (plan.d, plan.nbits, plan.n_levels()) == (d, 2, 4)
    assert plan.transform == faiss_bq.Transform_random_rotation and plan.forced
    assert plan.center.shape == (d,) and plan.center.dtype == np.float32
    R = plan.rotation
    assert R.shape == (d, d)
    np.testing.assert_allclose(R @ R.T, np.eye(d), atol=1e-5)
    assert plan.thresholds.shape == (d, 3) and (np.diff(plan.thresholds, axis=1) > 0).all()
    assert plan.levels.shape == (d, 4) and (np.diff(plan.levels, axis=1) > 0).all()
    if plan.centered:
        np.testing.assert_allclose(plan.center, xb.mean(0), rtol=1e-4, atol=1e-5)
    a = plan.analysis
    assert (a.n, a.d) == (len(xb), d)
    np.testing.assert_allclose(a.mean, xb.mean(0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(a.sigma, xb.std(0), rtol=1e-3)
    ev = np.linalg.eigvalsh(np.cov(xb.T, bias=True))[::-1]
    np.testing.assert_allclose(a.eigenvalues, ev, rtol=1e-3, atol=1e-4)
    assert 1 <= a.effective_rank <= d
    assert "BinarizationPlan" in plan.report() and "random_rotation" in plan.report()
    assert a.report() in plan.report() or len(a.report()) > 100
    cands = plan.candidates
    assert len(cands) == plan.n_candidates() > 0
    assert all(0 <= c.heldout_recall <= 1 for c in cands)
    assert isinstance(plan.reason, str) and plan.reason
    # copies: changing the array leaves the plan alone
    plan.center[:] = 123
    assert (index.plan.center != 123).all()


def test_numpy_front_ends(data):
    d, xb, _ = data
    a = faiss_bq.analyze(xb)
    assert a.d == d and a.mean.shape == (d,)
    opts = faiss_bq.TrainerOptions()
    opts.nbits = 2
    opts.transform = faiss_bq.TransformChoice_identity
    plan = faiss_bq.train_plan(xb, opts)
    assert plan.nbits == 2 and plan.transform == faiss_bq.Transform_identity
    # an index around a given plan is trained, and encodes as a trained one
    index = faiss_bq.IndexBQ(plan, faiss.METRIC_L2)
    assert index.is_trained
    fitted = faiss_bq.fit_plan(xb, 1, faiss_bq.Transform_identity, True, 7)
    assert fitted.is_trained() and fitted.centered and fitted.seed == 7
    with pytest.raises(ValueError):
        faiss_bq.analyze(xb[0])


def test_simd_level(run_py):
    assert faiss_bq.simd_level() in ("ref", "avx2", "avx512")
    r = run_py("""
        import faiss_bq
        print(faiss_bq.simd_level())
    """.replace("\n        ", "\n"))
    assert r.returncode == 0, r.stderr
    env_r = subprocess.run(
        [__import__("sys").executable, "-c", "import faiss_bq; print(faiss_bq.simd_level())"],
        capture_output=True, text=True, env=dict(os.environ, FAISS_BQ_SIMD="ref"))
    assert env_r.stdout.strip() == "ref", env_r.stderr
    bad = subprocess.run(
        [__import__("sys").executable, "-c", "import faiss_bq; faiss_bq.simd_level()"],
        capture_output=True, text=True, env=dict(os.environ, FAISS_BQ_SIMD="sse9"))
    assert bad.returncode == 1 and "RuntimeError" in bad.stderr and "sse9" in bad.stderr


def test_binary_drop_in(data):
    """IndexBinaryFlatFast returns what faiss.IndexBinaryFlat returns."""
    _, xb, xq = data
    d = 256
    rs = np.random.RandomState(3)
    codes = rs.randint(0, 256, (1000, d // 8)).astype(np.uint8)
    queries = rs.randint(0, 256, (13, d // 8)).astype(np.uint8)
    ours, theirs = faiss_bq.IndexBinaryFlatFast(d), faiss.IndexBinaryFlat(d)
    for index in (ours, theirs):
        index.add(codes)
    for k in (1, 10, 1200):
        D, I = ours.search(queries, k)
        Dt, It = theirs.search(queries, k)
        np.testing.assert_array_equal(D, Dt)
        np.testing.assert_array_equal(I, It)
    lims, D, I = ours.range_search(queries, 120)
    lt, Dt, It = theirs.range_search(queries, 120)
    np.testing.assert_array_equal(lims, lt)
    np.testing.assert_array_equal(I, It)
    np.testing.assert_array_equal(ours.reconstruct(5), codes[5])
    # xb is the C++ vector, as faiss.IndexBinaryFlat's: FAISS's helpers read it
    assert type(ours.xb) is type(theirs.xb)
    np.testing.assert_array_equal(faiss.vector_to_array(ours.xb).reshape(codes.shape), codes)
    # the fields FAISS users set exist (no effect: the results are FAISS's)
    for use_heap in (False, True):
        ours.use_heap = use_heap
        ours.query_batch_size = 7
        np.testing.assert_array_equal(ours.search(queries, 5)[1], theirs.search(queries, 5)[1])
    assert ours.query_batch_size == 7
    assert ours.remove_ids(np.arange(10)) == 10 and ours.ntotal == 990
