// Factory strings for faiss_bq indexes, delegating everything else to FAISS.
//
// FAISS 1.7.3 has no registration hook, so these are faiss_bq's own entry
// points: they build faiss_bq indexes (and FAISS's containers around them)
// and hand any pure-FAISS description to faiss::index_factory unchanged. The
// grammar, with each parameter's range and its bytes per vector, is in
// docs/factory.md.
#pragma once

#include <faiss/Index.h>
#include <faiss/IndexBinary.h>

#include <string>

namespace faiss_bq {

/// Builds the index a description names, e.g. "BQ2", "PCA64,BQ1_rot_q8",
/// "IDMap2,BQ1_sym,RFlat", "HNSW32_BQ2", "BQ1,Refine(SQ8)", or any FAISS
/// string. The caller owns the result. Throws faiss::FaissException naming
/// the offending token and its character position.
faiss::Index* index_factory(
        int d,
        const char* description,
        faiss::MetricType metric = faiss::METRIC_L2);

/// Binary indexes: "BFlat", "IDMap,BFlat", "IDMap2,BFlat", and FAISS's binary
/// strings ("BIVF1024", "BHNSW32", "BHash16", ...) passed through.
faiss::IndexBinary* index_binary_factory(int d, const char* description);

/// The canonical description of an index: index_factory(d, s, metric) builds
/// an index of the same types and factory options. Throws
/// faiss::FaissException naming the type when a part has no factory string.
std::string index_factory_string(const faiss::Index* index);
std::string index_factory_string(const faiss::IndexBinary* index);

} // namespace faiss_bq
