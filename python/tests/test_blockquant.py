"""IndexBlockQuant from Python: codes and scores checked against a numpy
encoder and scorer written from the model's definition (IndexBlockQuant.h);
the oblivious mode, factory, serialization, pickle, bad input, and recall
on real data (skipped, saying so, when absent)."""
import os
import pickle

import numpy as np
import pytest

import faiss
import faiss_bq

DATA = os.environ.get("FAISS_BQ_DATA") or os.path.join(
    os.path.dirname(__file__), "..", "..", "..", "shared", "data")


def data(n, d, seed):
    rng = np.random.default_rng(seed)
    sigma = 3.0 * 0.1 ** (np.arange(d) / d)
    return (rng.standard_normal((n, d)) * sigma + 0.1).astype("float32")


def numpy_model(index, x):
    """y = R (x - center) in float64, the best codeword and level per block,
    and the factors (offset, scale)."""
    k, m = index.block_size, index.direction_bits
    y = (x.astype(np.float64) - index.center) @ index.rotation.T.astype(np.float64)
    blocks = y.reshape(len(x), -1, k)
    ips = blocks @ index.codebook.T.astype(np.float64)         # (n, nb, 2^m)
    norm = np.linalg.norm(y, axis=1)
    rho = np.linalg.norm(blocks, axis=2) / norm[:, None]
    level = np.abs(rho[..., None] - index.norm_levels).argmin(axis=2)
    r = x.astype(np.float64) - index.center
    offset = ((r * r).sum(1) if index.metric_type == faiss.METRIC_L2
              else r @ index.center)
    return y, ips, level, norm, offset


@pytest.mark.parametrize("metric", [faiss.METRIC_L2, faiss.METRIC_INNER_PRODUCT])
@pytest.mark.parametrize("description", ["BKQ8x6", "BKQ4x5_obl", "BKQ8x7_nocorr"])
def test_codes_and_scores_match_numpy(metric, description):
    d, nb, nq = 36, 400, 6          # padded to 40: 5 blocks of 8, 10 of 4
    xb, xq = data(nb, d, 1), data(nq, d, 2)
    index = faiss_bq.index_factory(d, description, metric)
    assert isinstance(index, faiss_bq.IndexBlockQuant)
    index.train(xb)
    index.add(xb)
    k, m = index.block_size, index.direction_bits
    nblocks = index.padded_d // k
    assert index.padded_d == 40 and index.code_size == nblocks + 8
    codes = faiss.vector_to_array(index.codes).reshape(nb, -1)
    j = codes[:, :nblocks] & ((1 << m) - 1)
    lv = codes[:, :nblocks] >> m
    f = codes[:, nblocks:].copy().view(np.float32)
    y, ips, level, norm, offset = numpy_model(index, xb)
    chosen = np.take_along_axis(ips, j[..., None].astype(int), 2)[..., 0]
    assert (chosen >= ips.max(2) - 1e-5 * norm[:, None]).all()   # nearest codeword
    assert (lv == level).mean() > 0.99                            # near-ties aside
    yhat_y = (index.norm_levels[lv] * chosen).sum(1)
    scale = norm ** 2 / yhat_y if index.unbiased else norm
    np.testing.assert_allclose(f[:, 0], offset, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(f[:, 1], scale, rtol=1e-4)
    # scores of every stored code, from the codes
    yq, ipq, *_ = numpy_model(index, xq)
    s = np.einsum("nb,qnb->qn", index.norm_levels[lv],
                  np.take_along_axis(
                      (yq.reshape(nq, 1, nblocks, k) @ index.codebook.T.astype(np.float64)),
                      np.broadcast_to(j[None, ..., None].astype(int), (nq, nb, nblocks, 1)),
                      3)[..., 0])
    if metric == faiss.METRIC_L2:
        want = (yq ** 2).sum(1)[:, None] + f[None, :, 0] - 2 * f[None, :, 1] * s
    else:
        want = (xq @ index.center)[:, None] + f[None, :, 0] + f[None, :, 1] * s
    D, I = index.search(xq, nb)
    np.testing.assert_allclose(D, np.take_along_axis(want, I, 1), rtol=1e-4, atol=1e-3)


def test_oblivious_mode_needs_no_training():
    d = 24
    x = data(100, d, 3)
    a = faiss_bq.IndexBlockQuant(d, 8, 6)
    assert a.is_trained and a.oblivious
    a.add(x)
    b = faiss_bq.index_factory(d, "BKQ8x6_obl")
    b.train(np.zeros((0, d), "float32"))
    b.add(x[:40])
    b.add(x[40:])
    np.testing.assert_array_equal(faiss.vector_to_array(a.codes),
                                  faiss.vector_to_array(b.codes))
    trained = faiss_bq.index_factory(d, "BKQ8x6")
    assert not trained.is_trained
    with pytest.raises(RuntimeError, match="not trained"):
        trained.search(x[:2], 3)


def test_factory_serialization_pickle_downcast():
    d = 32
    xb, xq = data(300, d, 4), data(5, d, 5)
    index = faiss_bq.index_factory(d, "BKQ8x6")
    index.train(xb)
    index.add(xb)
    assert faiss_bq.index_factory_string(index) == "BKQ8x6"
    assert index.rotation.shape == (32, 32)
    assert index.codebook.shape == (64, 8)
    np.testing.assert_allclose(np.linalg.norm(index.codebook, axis=1), 1, atol=1e-5)
    D, I = index.search(xq, 5)
    blob = faiss_bq.serialize_index(index)
    assert bytes(blob[:4]) == b"BQbk"
    for back in (faiss_bq.deserialize_index(blob),
                 pickle.loads(pickle.dumps(index)),
                 faiss_bq.clone_index(index)):
        assert isinstance(back, faiss_bq.IndexBlockQuant)
        D2, I2 = back.search(xq, 5)
        np.testing.assert_array_equal(I, I2)
        np.testing.assert_array_equal(D, D2)
    np.testing.assert_array_equal(faiss_bq.serialize_index(
        faiss_bq.deserialize_index(blob)), blob)


def test_bad_input_raises_naming_the_values():
    with pytest.raises(RuntimeError,
                       match=r"block_size=16 does not divide the padded dimension 104 \(d=100"):
        faiss_bq.IndexBlockQuant(100, 16, 6)
    with pytest.raises(RuntimeError, match="direction_bits=9 must be in 1..8"):
        faiss_bq.IndexBlockQuant(32, 8, 9)
    with pytest.raises(RuntimeError, match="block size 40 is outside 2..32"):
        faiss_bq.index_factory(80, "BKQ40x6")
    with pytest.raises(RuntimeError, match="direction bits 0 are outside 1..8"):
        faiss_bq.index_factory(32, "BKQ8x0")
    index = faiss_bq.IndexBlockQuant(16, 8, 6)
    with pytest.raises(ValueError, match="d = 16"):
        index.add(data(5, 12, 6))
    trained = faiss_bq.IndexBlockQuant(16, 8, 6, faiss.METRIC_L2, False)
    with pytest.raises(RuntimeError, match="n=1 training vectors"):
        trained.train(data(1, 16, 7))
    index.add(data(10, 16, 8))
    blob = faiss_bq.serialize_index(index)
    with pytest.raises(RuntimeError):
        faiss_bq.deserialize_index(blob[:len(blob) // 2])


def test_recall_on_minilm():
    folder = os.path.join(DATA, "minilm-sap")
    if not os.path.exists(os.path.join(folder, "base.fvecs")):
        pytest.skip("real data absent: %s (build it with ../shared/data/get-data.sh)"
                    % folder)

    def read_vecs(path, dtype):
        a = np.fromfile(path, dtype=np.int32)
        return a.reshape(-1, a[0] + 1)[:, 1:].copy().view(dtype)

    xb = read_vecs(os.path.join(folder, "base.fvecs"), np.float32)
    xq = read_vecs(os.path.join(folder, "query.fvecs"), np.float32)
    gt = read_vecs(os.path.join(folder, "groundtruth.ivecs"), np.int32)
    recalls = {}
    for s in ("BKQ8x7", "BKQ8x7_obl", "BKQ4x7"):
        index = faiss_bq.index_factory(xb.shape[1], s, faiss.METRIC_INNER_PRODUCT)
        index.train(xb)
        index.add(xb)
        _, I = index.search(xq, 10)
        recalls[s] = np.mean([len(set(I[i]) & set(gt[i, :10])) / 10
                              for i in range(len(I))])
    print("minilm-sap 10-recall@10:", recalls)
    assert recalls["BKQ8x7"] >= 0.75
    assert recalls["BKQ4x7"] > recalls["BKQ8x7"]     # more bytes, more recall
