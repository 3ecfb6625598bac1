// Deep copies of indexes that hold faiss_bq types (faiss::clone_index cannot
// clone plugin types).
#pragma once

#include <faiss/Index.h>
#include <faiss/IndexBinary.h>

namespace faiss_bq {

/// A deep copy made by writing to memory and reading back (index_io.h), so
/// it covers every type faiss_bq::write_index covers. The caller owns it.
faiss::Index* clone_index(const faiss::Index* index);
faiss::IndexBinary* clone_index_binary(const faiss::IndexBinary* index);

} // namespace faiss_bq
