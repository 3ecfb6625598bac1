"""IndexBQRecurrent from Python: recurrent sign codes and SDC, checked
against a numpy encoder and scorer written from the model's definition;
factory, serialization, pickle and bad input."""
import pickle

import numpy as np
import pytest

import faiss
import faiss_bq


def data(n, d, seed):
    rng = np.random.default_rng(seed)
    sigma = 3.0 * 0.1 ** (np.arange(d) / d)
    return (rng.standard_normal((n, d)) * sigma + 0.1).astype("float32")


def numpy_encode(index, x):
    """Signs (n, stages, d) in {-1, 1}, per-vector scales (n, stages) and
    the correction |z|^2 / <z_hat, z> (n)."""
    z = (x - index.mean) @ index.rotation.T
    e = z
    signs, scales = [], []
    for t in range(index.n_stages):
        a = (np.abs(e).mean(axis=1) if index.per_vector_scales
             else np.full(len(e), index.stage_scales[t]))
        b = np.where(e >= 0, 1.0, -1.0)
        e = e - a[:, None] * b
        signs.append(b)
        scales.append(a)
    z_hat = z - e
    return (np.stack(signs, 1), np.stack(scales, 1),
            (z * z).sum(1) / (z_hat * z).sum(1))


@pytest.mark.parametrize("metric", [faiss.METRIC_L2, faiss.METRIC_INNER_PRODUCT])
def test_sdc_and_asymmetric_match_numpy(metric):
    d, nb, nq, k = 48, 800, 10, 10
    xb, xq = data(nb, d, 1), data(nq, d, 2)
    index = faiss_bq.index_factory(d, "BQR3", metric)
    assert isinstance(index, faiss_bq.IndexBQRecurrent)
    index.train_iterations = 3
    index.train(xb)
    index.add(xb)
    assert index.code_size == 3 * 6 + 8 + 3 * 4
    sb, ab, cb = numpy_encode(index, xb)
    zb = np.einsum("nt,ntd->nd", ab, sb) * cb[:, None]   # corrected
    sq, aq, cq = numpy_encode(index, xq)
    yq_hat = np.einsum("nt,ntd->nd", aq, sq) * cq[:, None]
    yq = (xq - index.mean) @ index.rotation.T
    r = xb - index.mean
    if metric == faiss.METRIC_L2:
        const_q, const_b, sign = (yq ** 2).sum(1), (r ** 2).sum(1), -2
    else:
        const_q, const_b, sign = xq @ index.mean, r @ index.mean, 1
    for estimator, left in ((faiss_bq.Estimator_asymmetric, yq),
                            (faiss_bq.Estimator_symmetric, yq_hat)):
        want = const_q[:, None] + const_b[None, :] + sign * (left @ zb.T)
        D, I = index.search(
            xq, k, params=faiss_bq.SearchParametersBQ(estimator=estimator))
        order = np.sort(want, 1) if metric == faiss.METRIC_L2 else -np.sort(-want, 1)
        np.testing.assert_allclose(D, order[:, :k], rtol=1e-3, atol=1e-3)
        np.testing.assert_allclose(
            D, np.take_along_axis(want, I, 1), rtol=1e-3, atol=1e-3)


def test_factory_serialization_pickle():
    d = 32
    xb, xq = data(500, d, 3), data(5, d, 4)
    index = faiss_bq.index_factory(d, "BQR2_sym")
    index.train(xb)
    index.add(xb)
    assert faiss_bq.index_factory_string(index) == "BQR2_sym"
    assert index.rotation.shape == (d, d)
    np.testing.assert_allclose(index.rotation @ index.rotation.T, np.eye(d),
                               atol=1e-4)
    assert index.train_errors[-1] < index.train_errors[0]
    D, I = index.search(xq, 5)
    for back in (faiss_bq.deserialize_index(faiss_bq.serialize_index(index)),
                 pickle.loads(pickle.dumps(index))):
        assert isinstance(back, faiss_bq.IndexBQRecurrent)
        D2, I2 = back.search(xq, 5)
        np.testing.assert_array_equal(I, I2)
        np.testing.assert_array_equal(D, D2)


def test_bad_input_names_the_values():
    with pytest.raises(RuntimeError, match="n_stages=5 must be in 1..4"):
        faiss_bq.IndexBQRecurrent(16, 5)
    with pytest.raises(RuntimeError, match="stage count 0 is outside 1..4"):
        faiss_bq.index_factory(16, "BQR0")
    index = faiss_bq.IndexBQRecurrent(16, 2)
    x = data(50, 16, 5)
    with pytest.raises(RuntimeError, match="not trained"):
        index.add(x)
    with pytest.raises(RuntimeError, match="not trained"):
        index.search(x, 3)
    index.train(x)
    with pytest.raises(ValueError, match="d = 16"):
        index.add(data(5, 12, 6))
    with pytest.raises(ValueError, match="k"):
        index.search(x, 0)
