"""TurboQuant from Python: the MSE plan (Quantization_turbo_mse, factory
_tqmse) and IndexBQTurbo (TurboQuant-prod, factory BQT<b>), checked against a
numpy encoder and estimator written from the model's definition; factory,
serialization, pickle and bad input."""
import pickle
from math import lgamma

import numpy as np
import pytest

import faiss
import faiss_bq


def data(n, d, seed):
    rng = np.random.default_rng(seed)
    sigma = 0.5 + (np.arange(d) % 7) / 7
    x = rng.standard_normal((n, d)) * sigma + 0.4 * np.sin(np.arange(d))
    return (x * rng.uniform(0.5, 2, size=(n, 1))).astype("float32")


def numpy_turbo(index, x):
    """MSE level indices (n, d), the MSE reconstruction y_hat, sketch bits
    (n, d) and |e| (n) of IndexBQTurbo's model, in float64."""
    plan, d = index.plan, index.d
    y = (x.astype(np.float64) - plan.center) @ (
        plan.rotation.T if plan.rotation.size else np.eye(d))
    norm = np.linalg.norm(y, axis=1, keepdims=True)
    u = y * np.sqrt(d) / norm
    q = (u[:, :, None] >= plan.thresholds[None, :, :]).sum(2)
    y_hat = np.take_along_axis(plan.levels[None].repeat(len(x), 0),
                               q[:, :, None], 2)[:, :, 0] * norm / np.sqrt(d)
    e = y - y_hat
    bits = (e @ index.sketch.T.astype(np.float64)) >= 0
    return q, y_hat, bits, np.linalg.norm(e, axis=1)


def unpack(planes, d, nbits):
    """Level indices (n, d) from nbits LSB-first planes per code."""
    pb = (d + 7) // 8
    q = np.zeros((len(planes), d), int)
    for p in range(nbits):
        bits = np.unpackbits(planes[:, p * pb:(p + 1) * pb], axis=1,
                             bitorder="little")[:, :d]
        q |= bits.astype(int) << p
    return q


@pytest.mark.parametrize("nbits", [2, 3])
@pytest.mark.parametrize("metric", [faiss.METRIC_L2, faiss.METRIC_INNER_PRODUCT])
def test_codes_and_scores_match_numpy(nbits, metric):
    d, nb, nq = 36, 500, 8
    xb, xq = data(nb, d, 1), data(nq, d, 2)
    index = faiss_bq.index_factory(d, "BQT%d" % nbits, metric)
    assert isinstance(index, faiss_bq.IndexBQTurbo)
    index.train(xb)
    index.add(xb)
    pb = (d + 7) // 8
    mcs = (nbits - 1) * pb + 12
    assert index.mse_code_size() == mcs
    assert index.code_size == mcs + pb + 4
    assert index.sketch.shape == (d, d)
    codes = faiss.vector_to_array(index.codes).reshape(nb, index.code_size)
    q, y_hat, bits, e_norm = numpy_turbo(index, xb)
    got_q = unpack(codes, d, nbits - 1)
    assert (got_q != q).mean() < 1e-3        # float vs double at thresholds
    got_bits = np.unpackbits(codes[:, mcs:mcs + pb], axis=1,
                             bitorder="little")[:, :d].astype(bool)
    assert (got_bits != bits).mean() < 1e-3
    got_e = codes[:, mcs + pb:].copy().view("float32")[:, 0]
    np.testing.assert_allclose(got_e, e_norm, rtol=1e-4)
    # the estimate from the stored fields
    plan = index.plan
    R = plan.rotation if plan.rotation.size else np.eye(d)
    yq = (xq.astype(np.float64) - plan.center) @ R.T
    signs = np.where(got_bits, 1.0, -1.0)
    Q = index.sketch.astype(np.float64)
    np.testing.assert_allclose(Q @ Q.T, np.eye(d), atol=1e-5)
    # 1 / (d E|u_1|), u uniform on the unit sphere of R^d
    w = np.sqrt(np.pi) * np.exp(lgamma((d + 1) / 2) - lgamma(d / 2)) / d
    ip = yq @ y_hat.T + w * e_norm[None, :] * ((yq @ Q.T) @ signs.T)
    r = (xb.astype(np.float64) - plan.center)
    if metric == faiss.METRIC_L2:
        want = (yq ** 2).sum(1)[:, None] + (r ** 2).sum(1)[None, :] - 2 * ip
    else:
        want = (xq @ plan.center)[:, None] + (r @ plan.center)[None, :] + ip
    D, I = index.search(xq, nb)
    np.testing.assert_allclose(D, np.take_along_axis(want, I, 1),
                               rtol=1e-3, atol=1e-3)


def test_factory_serialization_pickle_downcast(tmp_path):
    d = 32
    xb, xq = data(400, d, 3), data(5, d, 4)
    for key in ("BQT2", "BQT3_axis_noctr"):
        index = faiss_bq.index_factory(d, key, faiss.METRIC_INNER_PRODUCT)
        assert faiss_bq.index_factory_string(index) == key
        index.train(xb)
        index.add(xb)
        assert index.plan.quantization == faiss_bq.Quantization_turbo_mse
        D, I = index.search(xq, 5)
        path = str(tmp_path / "t.index")
        faiss_bq.write_index(index, path)
        for back in (faiss_bq.read_index(path),
                     faiss_bq.deserialize_index(faiss_bq.serialize_index(index)),
                     pickle.loads(pickle.dumps(index))):
            assert isinstance(back, faiss_bq.IndexBQTurbo)
            D2, I2 = back.search(xq, 5)
            np.testing.assert_array_equal(I, I2)
            np.testing.assert_array_equal(D, D2)


def test_turbo_mse_plan_and_factory():
    d = 64
    x = data(2000, d, 5)
    plan = faiss_bq.fit_eden_plan(
        x, 2, quantization=faiss_bq.Quantization_turbo_mse)
    assert plan.quantization == faiss_bq.Quantization_turbo_mse
    assert (plan.levels[0] == faiss_bq.gaussian_lloyd_max(2)[1]).all()
    index = faiss_bq.index_factory(d, "BQ2_tqmse", faiss.METRIC_L2)
    assert faiss_bq.index_factory_string(index) == "BQ2_tqmse"
    assert index.trainer.quantization == faiss_bq.QuantizationChoice_turbo_mse
    index.train(x)
    index.add(x)
    assert index.plan.quantization == faiss_bq.Quantization_turbo_mse
    # decode uses the MSE scale |y| / sqrt(d): the error is the Gaussian
    # Lloyd-Max distortion of 2 bits (0.1175) of the residual's energy
    xd = index.sa_decode(index.sa_encode(x))
    r = x - index.plan.center
    rel = ((xd - x) ** 2).sum() / (r ** 2).sum()
    assert abs(rel - 0.1175) < 0.02, rel


def test_bad_input_names_the_values():
    with pytest.raises(RuntimeError, match="nbits=5 must be in 2..4"):
        faiss_bq.IndexBQTurbo(16, 5)
    with pytest.raises(RuntimeError, match="bit count 1 is outside 2..4"):
        faiss_bq.index_factory(16, "BQT1")
    with pytest.raises(RuntimeError, match="_tqmse plans are uniform"):
        faiss_bq.index_factory(16, "BQ1_tqmse_pca")
    with pytest.raises(RuntimeError, match="quantization=lloyd_max"):
        faiss_bq.fit_eden_plan(data(50, 16, 1), 1,
                               quantization=faiss_bq.Quantization_lloyd_max)
    index = faiss_bq.IndexBQTurbo(16, 2)
    x = data(50, 16, 5)
    with pytest.raises(RuntimeError, match="not trained"):
        index.add(x)
    with pytest.raises(RuntimeError, match="not trained"):
        index.search(x, 3)
    index.train(x)
    with pytest.raises(ValueError, match="d = 16"):
        index.add(data(5, 12, 6))
    with pytest.raises(RuntimeError, match="estimator=symmetric"):
        index.search(x, 3, params=faiss_bq.SearchParametersBQ(
            estimator=faiss_bq.Estimator_symmetric))
