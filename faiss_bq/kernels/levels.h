// Internal: the kernel table of each level, one per translation unit.
// Only dispatch.cpp and the tests' level loop reach them (via kernel_table).
#pragma once

#include <faiss_bq/kernels/kernels.h>

#include <algorithm>
#include <cstddef>
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

} // namespace kernels
} // namespace faiss_bq
