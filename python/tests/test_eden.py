"""EDEN from Python: its codes against a numpy reference, the factory option,
the trainer's record, bad input."""
import numpy as np
import pytest

import faiss
import faiss_bq


def eden_reference(plan, x):
    """Level indices and the three factors of EDEN codes, in numpy (float64):
    y = R (x - c), each row scaled to norm sqrt(d), the index of each value the
    number of thresholds <= it."""
    d = plan.d
    r = x.astype(np.float64) - plan.center
    y = r @ plan.rotation.T.astype(np.float64) if plan.rotation.size else r
    norm2 = (y * y).sum(1)
    u = np.sqrt(d / norm2)[:, None]
    t = plan.thresholds[0].astype(np.float64)
    q = ((u * y)[:, :, None] >= t).sum(-1)
    levels = plan.levels[0].astype(np.float64)
    dot = (levels[q] * y).sum(1)
    return q, norm2, norm2 / dot, (r * plan.center).sum(1), u * y, t


def unpack_levels(codes, d, nbits):
    plane_bytes = (d + 7) // 8
    q = np.zeros((len(codes), d), dtype=np.int64)
    for p in range(nbits):
        plane = codes[:, p * plane_bytes:(p + 1) * plane_bytes]
        q |= np.unpackbits(plane, axis=1, bitorder="little")[:, :d].astype(np.int64) << p
    return q


@pytest.mark.parametrize("nbits", [1, 2])
def test_codes_match_numpy_reference(data, nbits):
    d, xb, _ = data
    plan = faiss_bq.fit_eden_plan(xb, nbits, seed=3)
    assert plan.quantization == faiss_bq.Quantization_eden
    index = faiss_bq.IndexBQ(plan, faiss.METRIC_INNER_PRODUCT)
    codes = index.sa_encode(xb)
    q, norm2, scale, cdot, uy, t = eden_reference(plan, xb)
    got = unpack_levels(codes, d, nbits)
    # float sgemm against float64: a value within 1e-5 of a threshold may
    # fall on either side
    near = (np.abs(uy[:, :, None] - t) < 1e-5).any(-1)
    assert (got[~near] == q[~near]).all()
    assert near.mean() < 1e-3
    factors = codes[:, nbits * ((d + 7) // 8):].view(np.float32)
    np.testing.assert_allclose(factors[:, 0], norm2, rtol=1e-5)
    np.testing.assert_allclose(factors[:, 1], scale, rtol=1e-4)
    np.testing.assert_allclose(factors[:, 2], cdot, rtol=1e-4, atol=1e-4)


def test_gaussian_levels_and_factory(data):
    d, xb, xq = data
    t, lv = faiss_bq.gaussian_lloyd_max(2)
    np.testing.assert_allclose(t, [-0.9816, 0, 0.9816], atol=2e-4)
    np.testing.assert_allclose(lv, [-1.510, -0.4528, 0.4528, 1.510], atol=1e-3)
    index = faiss_bq.index_factory(d, "BQ2_eden", faiss.METRIC_INNER_PRODUCT)
    assert index.trainer.quantization == faiss_bq.QuantizationChoice_eden
    assert faiss_bq.index_factory_string(index) == "BQ2_eden"
    index.train(xb)
    index.add(xb)
    assert index.plan.quantization == faiss_bq.Quantization_eden
    assert "EDEN" in index.plan.report() and index.plan.forced
    np.testing.assert_allclose(index.plan.levels[0], lv)
    D, I = index.search(xq, 5)
    assert (I >= 0).all()
    # the trainer left to itself weighs EDEN beside the fitted levels
    auto = faiss_bq.IndexBQ(d, 2, faiss.METRIC_INNER_PRODUCT)
    auto.train(xb)
    kinds = {c.quantization for c in auto.plan.candidates}
    assert kinds == {faiss_bq.Quantization_eden, faiss_bq.Quantization_lloyd_max}
    assert "EDEN" in auto.plan.reason


def test_bad_input(data):
    _, xb, _ = data
    with pytest.raises(ValueError, match="nbits=5"):
        faiss_bq.gaussian_lloyd_max(5)
    with pytest.raises(RuntimeError, match="transform=pca"):
        faiss_bq.fit_eden_plan(xb, 1, faiss_bq.Transform_pca)
    with pytest.raises(RuntimeError, match="nbits=7"):
        faiss_bq.fit_eden_plan(xb, 7)
    with pytest.raises(RuntimeError, match="_eden plans are uniform"):
        faiss_bq.index_factory(36, "BQ8B_alloc_eden")
