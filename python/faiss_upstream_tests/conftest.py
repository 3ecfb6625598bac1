"""FAISS 1.7.3's own tests of its binary indexes (copied unmodified from
facebookresearch/faiss v1.7.3, tests/; MIT licence: LICENSE-FAISS), run with
faiss_bq as a drop-in: faiss.IndexBinaryFlat is faiss_bq.IndexBinaryFlatFast,
and the binary factory and IO functions are faiss_bq's, for each test here."""
import faiss
import pytest

import faiss_bq

SUBSTITUTES = {
    "IndexBinaryFlat": faiss_bq.IndexBinaryFlatFast,
    "index_binary_factory": faiss_bq.index_binary_factory,
    "write_index_binary": faiss_bq.write_index_binary,
    "read_index_binary": faiss_bq.read_index_binary,
    "serialize_index_binary": faiss_bq.serialize_index_binary,
    "deserialize_index_binary": faiss_bq.deserialize_index_binary,
}


@pytest.fixture(autouse=True)
def faiss_bq_as_faiss(monkeypatch):
    for name, value in SUBSTITUTES.items():
        monkeypatch.setattr(faiss, name, value)
