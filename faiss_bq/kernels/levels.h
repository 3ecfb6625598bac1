// Internal: the kernel table of each level, one per translation unit.
// Only dispatch.cpp and the tests' level loop reach them (via kernel_table).
#pragma once

#include <faiss_bq/kernels/kernels.h>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <type_traits>

namespace faiss_bq {
namespace kernels {

const KernelTable& ref_kernels();
const KernelTable& avx2_kernels();
const KernelTable& avx512_kernels();

/// run(std::integral_constant<int, m>(), q0) for the nq queries in groups
/// of m <= fast_scan_max_queries (q0 the group's first): the SIMD levels'
/// fast scan is a template on the group size.
template <class Run>
void in_query_groups(size_t nq, Run run) {
    for (size_t q0 = 0; q0 < nq; q0 += fast_scan_max_queries) {
        switch (std::min(fast_scan_max_queries, nq - q0)) {
            case 1:
                run(std::integral_constant<int, 1>(), q0);
                break;
            case 2:
                run(std::integral_constant<int, 2>(), q0);
                break;
            case 3:
                run(std::integral_constant<int, 3>(), q0);
                break;
            default:
                run(std::integral_constant<int, 4>(), q0);
                break;
        }
    }
}

/// hamming_scores (kernels.h) from the n distances h of the codes at codes +
/// i * stride, their positions numbered from `first`: every level's scalar
/// epilogue (the reference, and the tails of the SIMD levels).
inline size_t hamming_scores_of(
        const int32_t* h,
        const uint8_t* codes,
        size_t n,
        size_t nbytes,
        size_t stride,
        const HammingAffine& a,
        float worst,
        bool larger_is_better,
        size_t first,
        float* out,
        uint32_t* better) {
    size_t count = 0;
    for (size_t i = 0; i < n; i++) {
        float f[3] = {0, 0, 1};
        std::memcpy(f, codes + i * stride + nbytes, (a.has_f2 ? 3 : 2) * 4);
        const float s =
                a.c + f[0] + f[1] * f[2] * (a.alpha + a.beta * float(h[i]));
        out[i] = s;
        better[count] = uint32_t(first + i);
        count += larger_is_better ? s > worst : s < worst;
    }
    return count;
}

/// hamming_scores in blocks of 64 codes: hamming_block of a level, then the
/// scalar epilogue.
template <class HammingBlock>
size_t hamming_scores_blocked(
        HammingBlock hamming_block,
        const uint8_t* query,
        const uint8_t* codes,
        size_t n,
        size_t nbytes,
        size_t stride,
        const HammingAffine& a,
        float worst,
        bool larger_is_better,
        float* out,
        uint32_t* better) {
    constexpr size_t block = 64;
    int32_t h[block];
    size_t count = 0;
    for (size_t i0 = 0; i0 < n; i0 += block) {
        const size_t m = std::min(block, n - i0);
        const uint8_t* c = codes + i0 * stride;
        hamming_block(query, c, m, nbytes, stride, h);
        count += hamming_scores_of(
                h,
                c,
                m,
                nbytes,
                stride,
                a,
                worst,
                larger_is_better,
                i0,
                out + i0,
                better + count);
    }
    return count;
}

} // namespace kernels
} // namespace faiss_bq
