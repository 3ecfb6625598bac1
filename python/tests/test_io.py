"""Round trips through serialize_index / deserialize_index (numpy uint8) and
files, for faiss_bq indexes alone, inside FAISS containers, and binary."""
import gc

import numpy as np
import pytest

import faiss
import faiss_bq


def trained(data, description="BQ2", metric=faiss.METRIC_INNER_PRODUCT):
    d, xb, _ = data
    index = faiss_bq.index_factory(d, description, metric)
    index.train(xb)
    return index


def same_search(a, b, xq, k=7):
    Da, Ia = a.search(xq, k)
    Db, Ib = b.search(xq, k)
    np.testing.assert_array_equal(Da, Db)
    np.testing.assert_array_equal(Ia, Ib)


def test_serialize_round_trip(data):
    _, xb, xq = data
    index = trained(data)
    index.add(xb)
    blob = faiss_bq.serialize_index(index)
    assert blob.dtype == np.uint8 and blob.ndim == 1
    back = faiss_bq.deserialize_index(blob)
    assert type(back) is faiss_bq.IndexBQ and back.thisown
    assert back.ntotal == index.ntotal and back.nbits == 2
    assert back.plan.report() == index.plan.report()
    np.testing.assert_array_equal(back.plan.levels, index.plan.levels)
    same_search(index, back, xq)
    np.testing.assert_array_equal(faiss_bq.serialize_index(back), blob)
    del index
    gc.collect()
    same_search(back, faiss_bq.deserialize_index(blob), xq)   # back owns its data


def test_untrained_round_trip():
    back = faiss_bq.deserialize_index(faiss_bq.serialize_index(faiss_bq.IndexBQ(16, 1)))
    assert type(back) is faiss_bq.IndexBQ and not back.is_trained and back.d == 16


def test_file_round_trip(tmp_path, data):
    _, xb, xq = data
    index = trained(data, "BQ1_rot", faiss.METRIC_L2)
    index.add(xb)
    path = str(tmp_path / "bq.index")
    faiss_bq.write_index(index, path)
    back = faiss_bq.read_index(path)
    assert type(back) is faiss_bq.IndexBQ and back.thisown
    assert back.plan.transform == faiss_bq.Transform_random_rotation
    np.testing.assert_array_equal(back.plan.rotation, index.plan.rotation)
    same_search(index, back, xq)


@pytest.mark.parametrize("description", ["IDMap2,BQ1", "IDMap,BQ2_sym", "PCA16,BQ1", "BQ1,RFlat"])
def test_containers_round_trip(tmp_path, data, description):
    _, xb, xq = data
    index = trained(data, description)
    if description.startswith("IDMap"):
        index.add_with_ids(xb, np.arange(len(xb)) * 3 + 5)
    else:
        index.add(xb)
    back = faiss_bq.deserialize_index(faiss_bq.serialize_index(index))
    assert type(back) is type(index) and back.thisown
    assert faiss_bq.index_factory_string(back) == faiss_bq.index_factory_string(index)
    same_search(index, back, xq)
    path = str(tmp_path / "c.index")
    faiss_bq.write_index(index, path)
    same_search(index, faiss_bq.read_index(path), xq)
    # FAISS cannot write a container holding a faiss_bq index
    with pytest.raises(RuntimeError):
        faiss.serialize_index(index)


def test_faiss_index_through_faiss_bq_io(data):
    d, xb, xq = data
    flat = faiss.IndexFlatIP(d)
    flat.add(xb)
    back = faiss_bq.deserialize_index(faiss.serialize_index(flat))
    assert type(back) is faiss.IndexFlat and back.thisown
    same_search(flat, back, xq)
    # and what faiss_bq writes for a pure-FAISS index, FAISS reads
    same_search(flat, faiss.deserialize_index(faiss_bq.serialize_index(flat)), xq)


def test_clone(data):
    _, xb, xq = data
    index = trained(data)
    index.add(xb)
    clone = faiss_bq.clone_index(index)
    assert type(clone) is faiss_bq.IndexBQ and clone.thisown
    same_search(index, clone, xq)
    clone.add(xb[:10])
    assert (index.ntotal, clone.ntotal) == (len(xb), len(xb) + 10)
    with pytest.raises(RuntimeError):
        faiss.clone_index(index)        # FAISS cannot clone plugin types


def binary_codes(n, d, seed):
    return np.random.RandomState(seed).randint(0, 256, (n, d // 8)).astype(np.uint8)


def test_binary_round_trips(tmp_path):
    d = 64
    xb, xq = binary_codes(300, d, 1), binary_codes(9, d, 2)
    index = faiss_bq.IndexBinaryFlatFast(d)
    index.add(xb)
    back = faiss_bq.deserialize_index_binary(faiss_bq.serialize_index_binary(index))
    assert type(back) is faiss_bq.IndexBinaryFlatFast and back.thisown
    same_search(index, back, xq)
    np.testing.assert_array_equal(faiss.vector_to_array(back.xb).reshape(xb.shape), xb)
    path = str(tmp_path / "b.index")
    faiss_bq.write_index_binary(index, path)
    same_search(index, faiss_bq.read_index_binary(path), xq)
    # the record is FAISS's IBxF: FAISS reads it, and faiss_bq reads it as
    # FAISS's class on request
    theirs = faiss.read_index_binary(path)
    assert type(theirs) is faiss.IndexBinaryFlat
    same_search(index, theirs, xq)
    as_faiss = faiss_bq.read_index_binary(path, faiss_bq.IO_FLAG_FAISS_BINARY_FLAT)
    assert type(as_faiss) is faiss.IndexBinaryFlat and as_faiss.thisown
    idmap = faiss_bq.index_binary_factory(d, "IDMap2,BFlat")
    idmap.add_with_ids(xb, np.arange(len(xb)) + 1000)
    back = faiss_bq.deserialize_index_binary(faiss_bq.serialize_index_binary(idmap))
    assert type(back) is faiss.IndexBinaryIDMap2
    assert type(faiss_bq.downcast_IndexBinary(back.index)) is faiss_bq.IndexBinaryFlatFast
    same_search(idmap, back, xq)


def test_bad_bytes_raise(data):
    index = trained(data)
    blob = faiss_bq.serialize_index(index)
    flipped = blob.copy()
    flipped[len(blob) // 2] ^= 0x40
    with pytest.raises(RuntimeError, match="checksum"):
        faiss_bq.deserialize_index(flipped)
    with pytest.raises(RuntimeError):
        faiss_bq.deserialize_index(blob[: len(blob) // 3])
    with pytest.raises(RuntimeError):
        faiss_bq.read_index("/nonexistent/file.index")
    with pytest.raises(TypeError, match="uint8"):
        faiss_bq.deserialize_index(blob.astype(np.float32))
    with pytest.raises(TypeError, match="uint8"):
        faiss_bq.deserialize_index(list(blob))


def test_pickle_and_deepcopy(data):
    import copy
    import pickle
    _, xb, xq = data
    index = trained(data)
    index.add(xb)
    for back in (pickle.loads(pickle.dumps(index)), copy.deepcopy(index)):
        assert type(back) is faiss_bq.IndexBQ
        same_search(index, back, xq)
    binary = faiss_bq.IndexBinaryFlatFast(64)
    binary.add(np.arange(640, dtype=np.uint8).reshape(80, 8))
    back = pickle.loads(pickle.dumps(binary))
    assert type(back) is faiss_bq.IndexBinaryFlatFast
    np.testing.assert_array_equal(faiss.vector_to_array(back.xb),
                                  faiss.vector_to_array(binary.xb))
    del index, binary
    gc.collect()
    assert back.ntotal == 80                 # the copy owns its data


def test_binary_ivf_with_a_faiss_bq_quantizer():
    """FAISS's IndexBinaryIVF over an IndexBinaryFlatFast quantizer (issue 17:
    FAISS's writer cannot serialize it): FAISS's IBwF layout, the quantizer
    written by faiss_bq; FAISS reads the file too, with its own flat class."""
    d = 64
    xb, xq = binary_codes(2000, d, 1), binary_codes(20, d, 2)
    quantizer = faiss_bq.IndexBinaryFlatFast(d)
    index = faiss.IndexBinaryIVF(quantizer, d, 16)
    index.train(xb)
    index.add(xb)
    index.nprobe = 4
    with pytest.raises(RuntimeError):
        faiss.serialize_index_binary(index)  # FAISS alone cannot
    blob = faiss_bq.serialize_index_binary(index)
    back = faiss_bq.deserialize_index_binary(blob)
    assert type(back) is faiss.IndexBinaryIVF and back.nprobe == 4
    assert type(faiss_bq.downcast_IndexBinary(back.quantizer)) is faiss_bq.IndexBinaryFlatFast
    same_search(index, back, xq)
    theirs = faiss.deserialize_index_binary(blob)
    assert type(faiss.downcast_IndexBinary(theirs.quantizer)) is faiss.IndexBinaryFlat
    same_search(index, theirs, xq)
    # a FAISS-only IndexBinaryIVF: faiss_bq writes FAISS's bytes
    plain = faiss.IndexBinaryIVF(faiss.IndexBinaryFlat(d), d, 16)
    plain.train(xb)
    plain.add(xb)
    plain.make_direct_map(True)
    np.testing.assert_array_equal(faiss_bq.serialize_index_binary(plain),
                                  faiss.serialize_index_binary(plain))
    for cut in (10, len(blob) // 2, len(blob) - 1):
        with pytest.raises(RuntimeError):
            faiss_bq.deserialize_index_binary(blob[:cut])
