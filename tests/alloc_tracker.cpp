// Replaces the global operator new/delete of the test binary with malloc/free
// plus a record of the largest request (its own translation unit, so that no
// caller inlines the pair and the compiler sees matched calls).
#include "alloc_tracker.h"

#include <atomic>
#include <cstdlib>
#include <new>

namespace {
std::atomic<bool> g_tracking{false};
std::atomic<size_t> g_largest{0};
} // namespace

void* operator new(size_t n) {
    if (g_tracking.load(std::memory_order_relaxed)) {
        size_t seen = g_largest.load();
        while (n > seen && !g_largest.compare_exchange_weak(seen, n)) {
        }
    }
    void* p = std::malloc(n ? n : 1);
    if (!p) {
        throw std::bad_alloc();
    }
    return p;
}
void* operator new[](size_t n) {
    return operator new(n);
}
void operator delete(void* p) noexcept {
    std::free(p);
}
void operator delete[](void* p) noexcept {
    std::free(p);
}
void operator delete(void* p, size_t) noexcept {
    std::free(p);
}
void operator delete[](void* p, size_t) noexcept {
    std::free(p);
}

namespace faiss_bq {
namespace test {

void start_tracking_allocations() {
    g_largest = 0;
    g_tracking = true;
}

size_t stop_tracking_allocations() {
    g_tracking = false;
    return g_largest;
}

} // namespace test
} // namespace faiss_bq
