"""Bad input raises a Python exception naming the problem, never crashes.

faiss's numpy wrappers convert dtypes and copy non-contiguous arrays (kept:
that is FAISS's convention), but check shapes with `assert`, which python -O
removes; faiss_bq's checks run first and do not depend on asserts. C++
errors (faiss::FaissException) arrive as RuntimeError."""
import numpy as np
import pytest

import faiss
import faiss_bq


@pytest.fixture
def index(data):
    d, xb, _ = data
    index = faiss_bq.IndexBQ(d, 1, faiss.METRIC_INNER_PRODUCT)
    index.train(xb)
    index.add(xb)
    return index


def test_wrong_dtype(index, data):
    _, _, xq = data
    with pytest.raises(TypeError, match="dtype <U"):
        index.search(xq.astype(str), 3)
    with pytest.raises(TypeError, match="complex"):
        index.add(xq.astype(np.complex64))
    with pytest.raises(TypeError, match="object"):
        index.search(np.array([[object()] * index.d]), 3)
    with pytest.raises(TypeError, match="uint8"):
        index.sa_decode(index.sa_encode(xq).astype(np.int32))
    binary = faiss_bq.IndexBinaryFlatFast(64)
    with pytest.raises(TypeError, match="uint8"):
        binary.add(np.zeros((3, 8), np.float32))
    with pytest.raises(TypeError, match="int64"):
        index.add_with_ids(xq, np.zeros(len(xq), np.float32))


def test_wrong_shape(index, data):
    d, _, xq = data
    with pytest.raises(ValueError, match=r"2-D array \(n, 36\), got shape \(36,\)"):
        index.search(xq[0], 3)
    with pytest.raises(ValueError, match="2-D"):
        index.add(xq[None])
    with pytest.raises(ValueError, match="has 35 columns, the index expects 36"):
        index.search(xq[:, :-1], 3)
    with pytest.raises(ValueError, match="has 37 columns"):
        index.add(np.zeros((2, d + 1), np.float32))
    with pytest.raises(ValueError, match="columns"):
        index.train(np.zeros((200, d - 4), np.float32))
    with pytest.raises(ValueError, match="codes: has 4 columns"):
        index.sa_decode(np.zeros((2, 4), np.uint8))
    with pytest.raises(ValueError, match=r"D: expected an array of shape \(20, 3\)"):
        index.search(xq, 3, D=np.empty((20, 2), np.float32))
    with pytest.raises(ValueError, match=r"ids: expected shape \(20,\)"):
        index.add_with_ids(xq, np.arange(5))
    binary = faiss_bq.IndexBinaryFlatFast(64)
    with pytest.raises(ValueError, match=r"has 4 columns, the index expects 8 \(d / 8"):
        binary.search(np.zeros((3, 4), np.uint8), 1)


def test_non_contiguous_and_other_dtypes_are_converted(index, data):
    """FAISS's convention: any real dtype and layout is converted; same results."""
    d, _, xq = data
    D, I = index.search(xq, 5)
    wide = np.zeros((len(xq), 2 * d), np.float32)
    wide[:, ::2] = xq
    assert not wide[:, ::2].flags.c_contiguous
    for x in (wide[:, ::2], np.asfortranarray(xq), xq.astype(np.float64)):
        D2, I2 = index.search(x, 5)
        np.testing.assert_array_equal(I2, I)
        np.testing.assert_allclose(D2, D, rtol=1e-6)
    # The raw C++ entry points take pointers only to contiguous memory.
    with pytest.raises(ValueError, match="not C-contiguous"):
        faiss.swig_ptr(wide[:, ::2])
    with pytest.raises(TypeError):
        index.search_c(len(xq), xq, 5, faiss.swig_ptr(D), faiss.swig_ptr(I))


def test_bad_k(index, data):
    _, _, xq = data
    for k in (0, -1):
        with pytest.raises(ValueError, match="k=%d: must be > 0" % k):
            index.search(xq, k)
    with pytest.raises(TypeError, match="integer"):
        index.search(xq, 2.5)
    with pytest.raises(ValueError, match="k=0"):
        index.assign(xq, 0)
    with pytest.raises(ValueError, match="k=0"):
        faiss_bq.IndexBinaryFlatFast(64).search(np.zeros((1, 8), np.uint8), 0)
    # the C++ check behind it, through the raw method
    D = np.empty((len(xq), 1), np.float32)
    I = np.empty((len(xq), 1), np.int64)
    with pytest.raises(RuntimeError, match="k=0 must be > 0"):
        index.search_c(len(xq), faiss.swig_ptr(xq), 0, faiss.swig_ptr(D), faiss.swig_ptr(I))


def test_untrained(data):
    d, xb, xq = data
    index = faiss_bq.IndexBQ(d, 2)
    assert not index.is_trained
    with pytest.raises(RuntimeError, match="IndexBQ::add: the index is not trained"):
        index.add(xb)
    with pytest.raises(RuntimeError, match="IndexBQ::search: the index is not trained"):
        index.search(xq, 3)
    with pytest.raises(RuntimeError, match="not trained"):
        index.sa_encode(xq)
    with pytest.raises(RuntimeError, match="IndexBQ::sa_decode: the index is not trained"):
        index.sa_decode(np.zeros((1, index.sa_code_size()), np.uint8))
    with pytest.raises(RuntimeError, match="at least|min|n="):
        index.train(xb[:10])        # too few training vectors


def test_out_of_range_keys(index):
    with pytest.raises(IndexError, match="key=600: the index holds 600 vectors"):
        index.reconstruct(600)
    with pytest.raises(IndexError):
        index.reconstruct(-1)
    with pytest.raises(IndexError):
        index.reconstruct_n(590, 20)
    binary = faiss_bq.IndexBinaryFlatFast(64)
    with pytest.raises(IndexError, match="holds 0"):
        binary.reconstruct(0)


def test_bad_values_and_parameters(index, data):
    d, xb, xq = data
    bad = xq.copy()
    bad[3, 7] = np.nan
    with pytest.raises(RuntimeError, match="row 3, column 7 is not finite"):
        index.search(bad, 2)
    # thrown by faiss_bq under faiss's C++ frames (IndexIDMap::add_with_ids)
    idmap = faiss.IndexIDMap(faiss_bq.IndexBQ(index.plan, faiss.METRIC_L2))
    with pytest.raises(RuntimeError, match="added data: value nan at row 3"):
        idmap.add_with_ids(bad, np.arange(len(bad)))
    with pytest.raises(RuntimeError, match="nbits=3 must be 1 or 2"):
        faiss_bq.IndexBQ(d, 3)
    with pytest.raises(RuntimeError, match="query_bits=3"):
        index.search(xq, 2, params=faiss_bq.SearchParametersBQ(query_bits=3))
    with pytest.raises(TypeError, match="no parameter 'bogus'"):
        faiss_bq.SearchParametersBQ(bogus=1)
    with pytest.raises(RuntimeError, match="BQ1_foo"):
        faiss_bq.index_factory(d, "PCA16,BQ1_foo")
    with pytest.raises(RuntimeError):
        faiss_bq.IndexBinaryFlatFast(12)
    with pytest.raises(TypeError):
        faiss_bq.index_factory("36", "BQ1")
    with pytest.raises(RuntimeError, match="candidate 99"):
        index.plan.candidate(99)


def test_checks_survive_python_O(run_py):
    """Under -O faiss's asserts vanish; a wrong d would then read past the
    array in C++. faiss_bq's checks still raise."""
    r = run_py("""
        import numpy as np, faiss, faiss_bq
        assert not __debug__
        index = faiss_bq.IndexBQ(64, 1)
        index.train(np.random.rand(300, 64).astype('float32'))
        for call in (lambda: index.add(np.zeros((10**6, 8), 'float32')),
                     lambda: index.search(np.zeros((5, 8), 'float32'), 3),
                     lambda: index.search(np.zeros((5, 64), 'float32'), 0)):
            try:
                call()
            except ValueError as e:
                print('ValueError:', e)
    """.replace("\n        ", "\n"), flags=["-O"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("ValueError:") == 3, r.stdout


def test_range_search_is_a_clear_error(data):
    """FAISS 1.7.3's IndexFlatCodes has no range_search and IndexBQ adds none
    (yet): a RuntimeError, not a crash."""
    _, xb, xq = data
    index = faiss_bq.index_factory(xb.shape[1], "BQ1")
    index.train(xb)
    index.add(xb)
    with pytest.raises(RuntimeError, match="range search not implemented"):
        index.range_search(xq, 0.5)


# Every error a user reaches from Python names the offending values (issue 17):
# one row per entry point, the message's telling part checked.
ERROR_SWEEP = [
    ("factory, empty", lambda: faiss_bq.index_factory(64, ""), "token '' at position 0 of ''"),
    ("factory, BQ3", lambda: faiss_bq.index_factory(64, "BQ3"), "token 'BQ3' at position 0"),
    ("factory, BQ0B", lambda: faiss_bq.index_factory(64, "BQ0B"), "'BQ0B'"),
    ("factory, d=0", lambda: faiss_bq.index_factory(0, "BQ1"), "d=0"),
    ("factory, IVF0", lambda: faiss_bq.index_factory(64, "IVF0,BQ1"), "token 'IVF0'"),
    ("factory, _q9", lambda: faiss_bq.index_factory(64, "BQ1_q9"), "option 'q9' at position 4"),
    ("IndexBQ, nbits=3", lambda: faiss_bq.IndexBQ(64, 3, faiss.METRIC_L2), "nbits=3"),
    ("IndexBQ, d=-1", lambda: faiss_bq.IndexBQ(-1, 1, faiss.METRIC_L2), "d=-1"),
    ("IndexBQ, METRIC_L1", lambda: faiss_bq.IndexBQ(64, 1, faiss.METRIC_L1), "metric=2"),
    ("IndexBQTurbo, nbits=1", lambda: faiss_bq.IndexBQTurbo(64, 1, faiss.METRIC_L2), "nbits=1 must be in 2..4"),
    ("factory, BQT5", lambda: faiss_bq.index_factory(64, "BQT5"), "bit count 5 is outside 2..4"),
    ("IndexBQFastScan, nbits=5", lambda: faiss_bq.IndexBQFastScan(64, 5, faiss.METRIC_L2), "nbits=5"),
    ("IndexBlockQuant, block_size=16, d=100", lambda: faiss_bq.IndexBlockQuant(100, 16, 6),
     "block_size=16 does not divide the padded dimension 104 (d=100"),
    ("factory, BKQ8x9", lambda: faiss_bq.index_factory(64, "BKQ8x9"), "direction bits 9 are outside 1..8"),
    ("IndexBQFamily, nbits=3", lambda: faiss_bq.IndexBQFamily(64, 3, faiss.METRIC_L2), "nbits=3"),
    ("factory, BQ1_family_axis", lambda: faiss_bq.index_factory(64, "BQ1_family_axis"),
     "_family weighs whole families"),
    ("IndexBQFamily, train n=50", lambda: faiss_bq.IndexBQFamily(16, 1, faiss.METRIC_L2).train(
        np.zeros((50, 16), "float32")), "n=50"),
    ("IndexBinaryFlatFast, d=12", lambda: faiss_bq.IndexBinaryFlatFast(12), "d=12"),
    ("IndexFromBinary, wrong d", lambda: faiss_bq.IndexFromBinary(
        faiss_bq.IndexBinaryFlatFast(128), 64, 1, faiss.METRIC_L2), "d=128 bits but the plan's codes have 64"),
    ("IndexIVFBQ, nlist=0", lambda: faiss_bq.IndexIVFBQ(
        faiss.IndexFlatL2(64), 64, 0, 1, faiss.METRIC_L2), "nlist=0"),
    ("IndexBQRefine, store d", lambda: faiss_bq.IndexBQRefine(
        faiss_bq.IndexBQ(64, 1, faiss.METRIC_L2), faiss.IndexFlatL2(32)), "d=32 differs from the first stage's d=64"),
    ("add, wrong columns", lambda: faiss_bq.IndexBQ(64, 1, faiss.METRIC_L2).add(
        np.zeros((3, 32), "float32")), "has 32 columns, the index expects 64"),
    ("train, 1-D", lambda: faiss_bq.IndexBQ(64, 1, faiss.METRIC_L2).train(
        np.zeros(64, "float32")), "got shape (64,)"),
    ("read_index, missing file", lambda: faiss_bq.read_index("/nonexistent/x.index"),
     "/nonexistent/x.index"),
    ("fit_compatible_map, rows", lambda: faiss_bq.fit_compatible_map(
        np.zeros((10, 4), "float32"), np.zeros((9, 4), "float32")), "x_new has 10 rows, x_old 9"),
]


@pytest.mark.parametrize("case", ERROR_SWEEP, ids=[c[0] for c in ERROR_SWEEP])
def test_errors_name_the_values(case):
    _, call, needle = case
    with pytest.raises((RuntimeError, ValueError)) as e:
        call()
    assert needle in str(e.value), str(e.value)


def test_trainer_options_errors_name_the_values():
    o = faiss_bq.TrainerOptions()
    o.heldout_fraction = 2.0
    x = np.random.RandomState(0).rand(500, 16).astype("float32")
    with pytest.raises(RuntimeError, match="heldout_fraction=2"):
        faiss_bq.train_plan(x, o)


def test_recall_profile_errors_name_the_values():
    x = np.random.RandomState(1).randn(1000, 16).astype("float32")
    index = faiss_bq.IndexBQ(16, 1, faiss.METRIC_L2)
    index.train(x)
    assert 1 <= index.plan.k_factor_for(0.95, 10**6)
    assert 0 < index.plan.expected_recall(10**6) <= index.plan.expected_recall(1000)
    with pytest.raises(RuntimeError, match="recall=1.5"):
        index.plan.k_factor_for(1.5, 1000)
    with pytest.raises(RuntimeError, match="k_factor=0.5"):
        index.plan.expected_recall(1000, 0.5)
    with pytest.raises(RuntimeError, match="no recall profile"):
        faiss_bq.BinarizationPlan().k_factor_for(0.9, 1000)
