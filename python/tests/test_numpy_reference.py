"""A NumPy reference of the encoders and estimators (faiss_bq/codes.h,
codes.cpp, estimators.cpp, plan.h) against the C++ through the module.

Code layout: planes of the level index (LSB first: coordinate j is bit j % 8
of byte j / 8, plane p = bit p of the index), then three float32 factors
|r|^2, |r|^2 / <r_hat, r> (0 if unusable), <x - c, c>, with r = R (x - c),
r_hat the reconstruction levels of r's cells, c the centre.
"""
import numpy as np
import pytest

import faiss
import faiss_bq

EPS32 = np.finfo(np.float32).eps


def transformed(plan, x):
    """R (x - c) in float64 (the exact value the float32 C++ approximates)."""
    xc = (x - plan.center).astype(np.float64)   # the C++ subtracts in float32 too
    if plan.transform == faiss_bq.Transform_identity:
        return xc
    return xc @ plan.rotation.astype(np.float64).T


def level_indices(plan, y):
    """Number of thresholds <= y, per coordinate."""
    return (y[:, :, None] >= plan.thresholds[None]).sum(-1)


def np_encode(plan, x):
    d, nbits = plan.d, plan.nbits
    y = transformed(plan, x)
    q = level_indices(plan, y)
    lv = plan.levels.astype(np.float64)[np.arange(d), q]
    planes = [np.packbits(((q >> p) & 1).astype(np.uint8), axis=1,
                          bitorder="little") for p in range(nbits)]
    norm2 = (y * y).sum(1)
    dot = (lv * y).sum(1)
    usable = dot > 1e-3 * np.sqrt(norm2 * (lv * lv).sum(1))
    scale = np.where(usable, norm2 / np.where(usable, dot, 1), 0)
    center_dot = ((x - plan.center).astype(np.float64) * plan.center).sum(1)
    factors = np.stack([norm2, scale, center_dot], 1).astype(np.float32)
    return np.hstack(planes + [factors.view(np.uint8)]), y


def unpack(plan, codes):
    """Level indices (n, d) and the three factors (n, 3) of codes."""
    d, nbits = plan.d, plan.nbits
    pb = (d + 7) // 8
    q = sum(np.unpackbits(codes[:, p * pb:(p + 1) * pb], axis=1,
                          bitorder="little")[:, :d].astype(np.int64) << p
            for p in range(nbits))
    factors = codes[:, nbits * pb:].copy().view(np.float32).astype(np.float64)
    return q, factors


def make_index(data, nbits, transform, metric):
    d, xb, _ = data
    index = faiss_bq.IndexBQ(d, nbits, metric)
    index.trainer.transform = transform
    index.trainer.centering = faiss_bq.CenteringChoice_centered
    # fitted levels: EDEN's reference is test_eden.py
    index.trainer.quantization = faiss_bq.QuantizationChoice_lloyd_max
    index.train(xb)
    assert index.plan.transform == (
        faiss_bq.Transform_identity
        if transform == faiss_bq.TransformChoice_identity
        else faiss_bq.Transform_random_rotation)
    assert index.plan.centered and np.abs(index.plan.center).max() > 0
    return index


PLANS = [(nbits, t) for nbits in (1, 2)
         for t in (faiss_bq.TransformChoice_identity,
                   faiss_bq.TransformChoice_random_rotation)]
METRICS = [faiss.METRIC_L2, faiss.METRIC_INNER_PRODUCT]


@pytest.mark.parametrize("nbits,transform", PLANS)
def test_encoder(data, nbits, transform):
    _, xb, _ = data
    index = make_index(data, nbits, transform, faiss.METRIC_L2)
    plan = index.plan
    codes = index.sa_encode(xb)
    assert codes.shape == (len(xb), faiss_bq.code_size(plan.d, nbits))
    ref, y = np_encode(plan, xb)
    q_cpp, f_cpp = unpack(plan, codes)
    q_ref, f_ref = unpack(plan, ref)
    # Padding bits (coordinates d..8 pb of every plane) are zero.
    pb = (plan.d + 7) // 8
    assert plan.d % 8 != 0
    for p in range(nbits):
        bits = np.unpackbits(codes[:, p * pb:(p + 1) * pb], axis=1, bitorder="little")
        assert not bits[:, plan.d:].any()
    if transform == faiss_bq.TransformChoice_identity:
        # y = x - c in float32 on both sides: the same cells, bit for bit;
        # the factors are float64 sums rounded to float32 (summation order
        # differs: 2 ulp).
        np.testing.assert_array_equal(codes[:, :nbits * pb], ref[:, :nbits * pb])
        np.testing.assert_allclose(f_cpp, f_ref, rtol=4 * EPS32, atol=1e-30)
        return
    # Under a rotation the C++ y comes from a float32 sgemm (error about
    # d eps |x - c| per coordinate): a level may differ only where y sits
    # that close to a threshold; such rows are rare and skipped for factors.
    diff = q_cpp != q_ref
    tol = 4 * plan.d * EPS32 * np.linalg.norm(y, axis=1, keepdims=True)
    near = np.abs(y[:, :, None] - plan.thresholds[None]).min(-1) < tol
    assert not (diff & ~near).any()
    assert diff.mean() < 1e-3
    rows = ~diff.any(1)
    np.testing.assert_allclose(f_cpp[rows], f_ref[rows], rtol=1e-4)


def asymmetric_ref(plan, metric, q_idx, factors, xq):
    """<c,q> + <x-c,c> + a <r_hat, R(q-c)> (IP) or |r|^2 + |y|^2 - 2 a <r_hat, y>
    (L2), float64; and a bound on the magnitude of the summed terms."""
    d = plan.d
    yq = transformed(plan, xq)                                   # (nq, d)
    lv = plan.levels.astype(np.float64)[np.arange(d), q_idx]     # (nb, d)
    norm2, scale, center_dot = factors.T
    est = scale[None] * (yq @ lv.T)                              # (nq, nb)
    mag = scale[None] * (np.abs(yq) @ np.abs(lv).T)
    if metric == faiss.METRIC_INNER_PRODUCT:
        cq = xq.astype(np.float64) @ plan.center.astype(np.float64)
        ref = cq[:, None] + center_dot[None] + est
        mag = mag + np.abs(cq)[:, None] + np.abs(center_dot)[None]
    else:
        yn = (yq * yq).sum(1)
        ref = norm2[None] + yn[:, None] - 2 * est
        mag = 2 * mag + norm2[None] + yn[:, None]
    return ref, mag


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("nbits,transform", PLANS)
def test_asymmetric_estimator(data, nbits, transform, metric):
    _, xb, xq = data
    index = make_index(data, nbits, transform, metric)
    index.add(xb)
    q_idx, factors = unpack(index.plan, index.sa_encode(xb))
    ref, mag = asymmetric_ref(index.plan, metric, q_idx, factors, xq)
    D, I = index.search(xq, index.ntotal)
    assert (I >= 0).all()
    rows = np.arange(len(xq))[:, None]
    # The C++ sums d products in float32: look-up tables of 8 / nbits
    # coordinates, then d nbits / 8 table entries, and y itself is a float32
    # sgemm under a rotation. Each step adds at most about (number of terms)
    # eps times the sum of |terms|; d eps = 40 eps bounds all of them, and
    # 8x that is the tolerance (measured errors sit well below d eps).
    tol = 8 * index.d * EPS32 * mag[rows, I]
    err = np.abs(D - ref[rows, I])
    assert (err <= tol).all(), (err / mag[rows, I]).max()
    # Not vacuous: the estimate differs from the exact metric by far more.
    exact = (xq @ xb.T) if metric == faiss.METRIC_INNER_PRODUCT else \
        ((xq[:, None] - xb[None]) ** 2).sum(-1)
    assert np.median(np.abs(D - exact[rows, I]) / mag[rows, I]) > 100 * 8 * index.d * EPS32


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("nbits,transform", PLANS)
def test_symmetric_estimator(data, nbits, transform, metric):
    """Odd-integer levels s = 2 q - (2^nbits - 1): |s_x - s_q|^2 / 4 (L2, the
    Hamming distance at 1 bit) or <s_x, s_q> (IP); integers, so exact."""
    _, xb, xq = data
    index = make_index(data, nbits, transform, metric)
    index.add(xb)
    plan = index.plan
    top = 2 ** nbits - 1
    sx = 2 * unpack(plan, index.sa_encode(xb))[0] - top
    sq = 2 * unpack(plan, index.sa_encode(xq))[0] - top   # query: the same encoder
    if metric == faiss.METRIC_INNER_PRODUCT:
        ref = sq @ sx.T
    else:
        ref = ((sq[:, None] - sx[None]) ** 2).sum(-1) / 4
    params = faiss_bq.SearchParametersBQ(estimator=faiss_bq.Estimator_symmetric)
    D, I = index.search(xq, index.ntotal, params=params)
    np.testing.assert_array_equal(D, ref[np.arange(len(xq))[:, None], I])
