// Queries of a batch search, transformed by the plan a chunk at a time.
#pragma once

#include <faiss_bq/plan.h>

#include <faiss/Index.h>

#include <algorithm>
#include <vector>

namespace faiss_bq {

/// Calls f(i0, m, y) for consecutive chunks [i0, i0 + m) of the n queries x
/// (n x plan.d), with y = R (x - c) of the chunk (m x d, plan.apply): one
/// matrix product per chunk instead of a matrix-vector product per query,
/// which dominated a fast scan of a rotated or PCA plan. y is null when
/// transform is false (a scorer that does not use it).
template <class F>
void for_query_chunks(
        const BinarizationPlan& plan,
        faiss::Index::idx_t n,
        const float* x,
        bool transform,
        F f) {
    using idx_t = faiss::Index::idx_t;
    constexpr idx_t chunk = 1024;
    std::vector<float> y;
    for (idx_t i0 = 0; i0 < n; i0 += chunk) {
        const idx_t m = std::min(chunk, n - i0);
        if (transform) {
            y.resize(size_t(m) * plan.d);
            plan.apply(size_t(m), x + i0 * plan.d, y.data());
        }
        f(i0, m, transform ? y.data() : nullptr);
    }
}

} // namespace faiss_bq
