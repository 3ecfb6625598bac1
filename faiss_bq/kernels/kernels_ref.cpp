// Scalar reference kernels: the specification the SIMD levels must match.
#include <faiss_bq/kernels/kernels.h>

#include <cstring>

namespace faiss_bq {
namespace kernels {

namespace {

uint64_t load64(const uint8_t* p) {
    uint64_t w;
    std::memcpy(&w, p, sizeof(w));
    return w;
}

/// popcount(op(a[i], b[i])) over nbytes, 8 bytes at a time then the tail.
template <typename Op>
uint64_t popcount_of(const uint8_t* a, const uint8_t* b, size_t nbytes, Op op) {
    uint64_t count = 0;
    size_t i = 0;
    for (; i + 8 <= nbytes; i += 8) {
        count += __builtin_popcountll(op(load64(a + i), load64(b + i)));
    }
    for (; i < nbytes; i++) {
        count += __builtin_popcount(unsigned(op(a[i], b[i]) & 0xff));
    }
    return count;
}

} // namespace

uint64_t popcount(const uint8_t* a, size_t nbytes) {
    return popcount_of(a, a, nbytes, [](uint64_t x, uint64_t) { return x; });
}

uint64_t popcount_and(const uint8_t* a, const uint8_t* b, size_t nbytes) {
    return popcount_of(a, b, nbytes, [](uint64_t x, uint64_t y) { return x & y; });
}

uint64_t hamming(const uint8_t* a, const uint8_t* b, size_t nbytes) {
    return popcount_of(a, b, nbytes, [](uint64_t x, uint64_t y) { return x ^ y; });
}

uint64_t weighted_popcount(
        const uint8_t* planes,
        int n_planes,
        const uint8_t* code,
        size_t nbytes) {
    uint64_t sum = 0;
    for (int p = 0; p < n_planes; p++) {
        sum += popcount_and(planes + p * nbytes, code, nbytes) << p;
    }
    return sum;
}

size_t lut_groups(size_t plane_bytes, int nbits) {
    return plane_bytes * nbits;
}

float lut_scan(
        const uint8_t* planes,
        size_t plane_bytes,
        int nbits,
        const float* lut) {
    // Four partial sums: one chain of dependent float adds would bound the
    // scan by the add latency, not by the loads.
    float sum[4] = {0, 0, 0, 0};
    if (nbits == 1) {
        for (size_t g = 0; g < plane_bytes; g++) {
            sum[g % 4] += lut[g * lut_entries + planes[g]];
        }
    } else {
        const uint8_t* hi = planes + plane_bytes;
        for (size_t b = 0; b < plane_bytes; b++) {
            const unsigned lo_index = (planes[b] & 0x0f) | ((hi[b] & 0x0f) << 4);
            const unsigned hi_index = (planes[b] >> 4) | (hi[b] & 0xf0);
            sum[(2 * b) % 4] += lut[(2 * b) * lut_entries + lo_index];
            sum[(2 * b + 1) % 4] += lut[(2 * b + 1) * lut_entries + hi_index];
        }
    }
    return (sum[0] + sum[1]) + (sum[2] + sum[3]);
}

} // namespace kernels
} // namespace faiss_bq
