// Scan kernels over packed codes. This file declares them; kernels_ref.cpp is
// the scalar reference (the specification). SIMD levels slot in beside it.
#pragma once

#include <cstddef>
#include <cstdint>

namespace faiss_bq {
namespace kernels {

/// Number of set bits in a[0, nbytes).
uint64_t popcount(const uint8_t* a, size_t nbytes);
/// popcount(a & b).
uint64_t popcount_and(const uint8_t* a, const uint8_t* b, size_t nbytes);
/// popcount(a ^ b): the Hamming distance.
uint64_t hamming(const uint8_t* a, const uint8_t* b, size_t nbytes);

/// sum_p 2^p popcount(planes[p] & code) for p < n_planes, where plane p is
/// planes + p * nbytes: the inner product of an integer vector stored as bit
/// planes with a 0/1 vector.
uint64_t weighted_popcount(
        const uint8_t* planes,
        int n_planes,
        const uint8_t* code,
        size_t nbytes);

/// Number of look-up tables and their size for a float query over codes of
/// nbits (1 or 2) bits per coordinate: one table of 256 entries per group of
/// 8 / nbits coordinates, indexed by the bits of that group.
size_t lut_groups(size_t plane_bytes, int nbits);
constexpr size_t lut_entries = 256;

/// sum over groups g of lut[g * 256 + index_g(code)], with index_g the byte
/// of plane 0 (nbits = 1), or the nibble of plane 0 in the low and of plane 1
/// in the high half (nbits = 2). planes: the code's first plane; plane p
/// starts at planes + p * plane_bytes.
float lut_scan(
        const uint8_t* planes,
        size_t plane_bytes,
        int nbits,
        const float* lut);

} // namespace kernels
} // namespace faiss_bq
