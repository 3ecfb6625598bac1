// Checks at the public boundary, shared by every entry point that takes floats.
#pragma once

#include <faiss/Index.h>
#include <faiss/impl/FaissAssert.h>

#include <cmath>
#include <cstddef>

namespace faiss_bq {

/// Throws faiss::FaissException naming the first NaN or Inf of x (n x d) and
/// its position; `what` says which input it was ("training", "added", ...).
inline void check_finite(const char* what, size_t n, size_t d, const float* x) {
    for (size_t i = 0; i < n * d; i++) {
        FAISS_THROW_IF_NOT_FMT(
                std::isfinite(x[i]),
                "%s data: value %g at row %zu, column %zu is not finite",
                what,
                x[i],
                i / d,
                i % d);
    }
}

/// The arguments of a faiss_bq float index's constructor: d > 0, nbits 1 or
/// 2, and a metric its estimators have (L2 or inner product). `who` names the
/// class in the message.
inline void check_index_args(
        const char* who,
        faiss::Index::idx_t d,
        int nbits,
        faiss::MetricType metric) {
    FAISS_THROW_IF_NOT_FMT(d > 0, "%s: d=%ld must be > 0", who, long(d));
    FAISS_THROW_IF_NOT_FMT(
            nbits == 1 || nbits == 2,
            "%s: nbits=%d must be 1 or 2",
            who,
            nbits);
    FAISS_THROW_IF_NOT_FMT(
            metric == faiss::METRIC_L2 || metric == faiss::METRIC_INNER_PRODUCT,
            "%s: metric=%d: only METRIC_L2 and METRIC_INNER_PRODUCT",
            who,
            int(metric));
}

/// query_bits of an asymmetric search: 0 (float query) or 4..8 planes.
inline void check_query_bits(const char* who, int query_bits) {
    FAISS_THROW_IF_NOT_FMT(
            query_bits == 0 || (query_bits >= 4 && query_bits <= 8),
            "%s: query_bits=%d must be 0 (float query) or in 4..8",
            who,
            query_bits);
}

/// What every search() checks first: trained, k > 0, n >= 0, and finite
/// queries (n x d). `who` names the method in the message.
inline void check_search_args(
        const char* who,
        bool trained,
        faiss::Index::idx_t n,
        faiss::Index::idx_t d,
        const float* x,
        faiss::Index::idx_t k) {
    FAISS_THROW_IF_NOT_FMT(trained, "%s: the index is not trained", who);
    FAISS_THROW_IF_NOT_FMT(k > 0, "%s: k=%ld must be > 0", who, long(k));
    FAISS_THROW_IF_NOT_FMT(n >= 0, "%s: n=%ld", who, long(n));
    check_finite("query", size_t(n), size_t(d), x);
}

} // namespace faiss_bq
