"""IndexIVFBQ / IndexIVFBQFastScan from Python: factory and downcast, nprobe
through faiss.ParameterSpace and faiss.SearchParametersIVF, FAISS's
ivf_tools and IndexShards, files, merge_ondisk, bad input."""
import numpy as np
import pytest

import faiss
from faiss.contrib import ivf_tools
import faiss_bq


@pytest.fixture
def ivf_data():
    rs = np.random.RandomState(5)
    d, nlist = 32, 8
    centres = rs.randn(nlist, d).astype("float32") * 3
    def draw(n, seed):
        r = np.random.RandomState(seed)
        return (centres[r.randint(nlist, size=n)] +
                r.randn(n, d).astype("float32") * 0.5).astype("float32")
    return d, nlist, draw(2000, 1), draw(1500, 2), draw(20, 3)


def trained(d, nlist, xt, description="IVF8,BQ1_fs", metric=faiss.METRIC_L2):
    index = faiss_bq.index_factory(d, description, metric)
    index.train(xt)
    return index


@pytest.mark.parametrize("description,cls", [
    ("IVF8,BQ1_fs", "IndexIVFBQFastScan"),
    ("IVF8,BQ2", "IndexIVFBQ"),
    ("IVF8,BQ8B_fs", "IndexIVFBQFastScan"),
])
def test_factory_downcast_and_nprobe(ivf_data, description, cls):
    d, nlist, xt, xb, xq = ivf_data
    index = trained(d, nlist, xt, description)
    assert type(index) is getattr(faiss_bq, cls)
    assert isinstance(index, faiss.IndexIVF)
    assert faiss_bq.index_factory_string(index) == description
    assert "residuals" in index.plan.reason
    index.add(xb)
    gt = faiss.IndexFlatL2(d)
    gt.add(xb)
    _, Igt = gt.search(xq, 10)
    recalls = []
    for nprobe in (1, 8):
        faiss.ParameterSpace().set_index_parameter(index, "nprobe", nprobe)
        assert index.nprobe == nprobe
        D, I = index.search(xq, 10)
        recalls.append(np.mean([len(set(I[i]) & set(Igt[i])) / 10
                                for i in range(len(xq))]))
        # the same through SearchParametersIVF, whatever the field says
        index.nprobe = 1 if nprobe > 1 else nlist
        D2, I2 = index.search(xq, 10, params=faiss.SearchParametersIVF(nprobe=nprobe))
        np.testing.assert_array_equal(I, I2)
        np.testing.assert_array_equal(D, D2)
    assert recalls[1] >= recalls[0] - 0.05  # more lists, more competitors: noise
    # all lists probed: at least the flat index of the same codes (residual
    # codes are finer), up to noise on 20 queries
    flat = faiss_bq.index_factory(d, description.split(",")[1])
    flat.train(xt)
    flat.add(xb)
    _, If = flat.search(xq, 10)
    r_flat = np.mean([len(set(If[i]) & set(Igt[i])) / 10 for i in range(len(xq))])
    assert recalls[1] >= r_flat - 0.05, (recalls, r_flat)
    # FAISS's ivf_tools: its preassigned search passes zero coarse distances
    index.nprobe = 4
    D, I = index.search(xq, 10)
    _, assign = index.quantizer.search(xq, 4)
    D2, I2 = ivf_tools.search_preassigned(index, xq, 10, assign)
    np.testing.assert_array_equal(I, I2)
    np.testing.assert_allclose(D, D2, rtol=1e-6)


def test_shards_files_and_merge_ondisk(ivf_data, tmp_path):
    d, nlist, xt, xb, xq = ivf_data
    empty = trained(d, nlist, xt)
    full = faiss_bq.clone_index(empty)
    full.add(xb)
    full.nprobe = nlist
    D, I = full.search(xq, 10)
    # two shards of the same trained index, ids kept global
    half = len(xb) // 2
    shards, fnames = [], []
    for s, (i0, i1) in enumerate([(0, half), (half, len(xb))]):
        shard = faiss_bq.clone_index(empty)
        shard.add_with_ids(xb[i0:i1], np.arange(i0, i1).astype("int64"))
        shard.nprobe = nlist
        shards.append(shard)
        fnames.append(str(tmp_path / ("shard%d.index" % s)))
        faiss_bq.write_index(shard, fnames[-1])
    together = faiss.IndexShards(d, False, False)
    for shard in shards:
        together.add_shard(shard)
    D2, I2 = together.search(xq, 10)
    np.testing.assert_array_equal(I, I2)
    np.testing.assert_allclose(D, D2, rtol=1e-6)
    # file round trip
    back = faiss_bq.read_index(fnames[0])
    assert type(back) is faiss_bq.IndexIVFBQFastScan
    assert back.ntotal == half
    # faiss.contrib.ondisk.merge_ondisk, through faiss_bq's reader
    merged = faiss_bq.clone_index(empty)
    faiss_bq.merge_ondisk(merged, fnames, str(tmp_path / "merged.ivfdata"))
    assert merged.ntotal == len(xb)
    faiss_bq.write_index(merged, str(tmp_path / "merged.index"))
    mapped = faiss_bq.read_index(str(tmp_path / "merged.index"))
    assert isinstance(faiss.extract_index_ivf(mapped).invlists,
                      faiss.InvertedLists)
    mapped.nprobe = nlist
    D3, I3 = mapped.search(xq, 10)
    np.testing.assert_array_equal(I, I3)
    np.testing.assert_allclose(D, D3, rtol=1e-6)


def test_bad_input(ivf_data):
    d, nlist, xt, xb, xq = ivf_data
    with pytest.raises(RuntimeError, match="d=33"):
        faiss_bq.IndexIVFBQ(faiss.IndexFlatL2(33), d, nlist)
    index = faiss_bq.IndexIVFBQFastScan(faiss.IndexFlatL2(d), d, nlist, 1)
    with pytest.raises(RuntimeError, match="not trained"):
        index.add(xb)
    index.train(xt)
    index.add(xb)
    index.nprobe = 0
    with pytest.raises(RuntimeError, match="nprobe=0"):
        index.search(xq, 5)
    with pytest.raises((OverflowError, TypeError)):
        index.nprobe = -1
    with pytest.raises(RuntimeError, match="nprobe=0"):
        index.search(xq, 5, params=faiss.SearchParametersIVF(nprobe=0))
    index.nprobe = 1000  # above nlist: clamped, as in FAISS
    index.search(xq, 5)
    with pytest.raises(ValueError):
        index.search(xq[:, :5], 5)
