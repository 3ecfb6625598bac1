"""faiss_bq.fit_compatible_map: a faiss.LinearTransform from a new model's
space to an old index's, fitted on paired rows; bad input raises."""
import numpy as np
import pytest

import faiss
import faiss_bq


def test_map_recovers_a_rotation_and_searches_the_old_index():
    rng = np.random.default_rng(0)
    x_old = rng.standard_normal((2000, 16)).astype("float32")
    R = np.linalg.qr(rng.standard_normal((16, 16)))[0].astype("float32")
    # the new model: rotated, shifted, noisy, with 4 unrelated coordinates
    x_new = np.hstack([x_old @ R.T + 0.5 + 1e-3 * rng.standard_normal((2000, 16)),
                       0.3 * rng.standard_normal((2000, 4))]).astype("float32")
    for fit in (faiss_bq.MapFit_orthogonal, faiss_bq.MapFit_least_squares):
        m = faiss_bq.fit_compatible_map(x_new, x_old, fit, ridge=1e-6)
        assert isinstance(m, faiss.LinearTransform)
        assert (m.d_in, m.d_out) == (20, 16)
        mapped = m.apply(x_new)
        assert np.abs(mapped - x_old).max() < 0.05
        old = faiss.IndexFlatL2(16)  # the nearest old row is its own
        old.add(x_old)
        index = faiss.IndexPreTransform(m, old)
        _, I = index.search(x_new[:100], 1)
        assert (I[:, 0] == np.arange(100)).mean() > 0.9


def test_bad_input_names_the_values():
    x = np.ones((10, 4), dtype="float32")
    with pytest.raises(ValueError, match="x_new has 9 rows, x_old 10"):
        faiss_bq.fit_compatible_map(x[:9], x)
    with pytest.raises(ValueError, match="x_old: expected a 2-D"):
        faiss_bq.fit_compatible_map(x, x[0])
    bad = x.copy()
    bad[2, 1] = np.nan
    with pytest.raises(RuntimeError, match="new row 2, coordinate 1 is nan"):
        faiss_bq.fit_compatible_map(bad, x)
    with pytest.raises(RuntimeError, match="ridge=-1"):
        faiss_bq.fit_compatible_map(x, x, faiss_bq.MapFit_least_squares, ridge=-1)
