// Checks at the public boundary, shared by every entry point that takes floats.
#pragma once

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

} // namespace faiss_bq
