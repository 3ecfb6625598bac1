// The largest single allocation made through operator new while tracking is
// on (the test binary replaces the global operator new, alloc_tracker.cpp).
#pragma once

#include <cstddef>

namespace faiss_bq {
namespace test {

/// Starts tracking, with the largest allocation reset to 0.
void start_tracking_allocations();
/// Stops tracking; returns the largest allocation since the start, in bytes.
size_t stop_tracking_allocations();

} // namespace test
} // namespace faiss_bq
