// Internal: the kernel table of each level, one per translation unit.
// Only dispatch.cpp and the tests' level loop reach them (via kernel_table).
#pragma once

#include <faiss_bq/kernels/kernels.h>

namespace faiss_bq {
namespace kernels {

const KernelTable& ref_kernels();
const KernelTable& avx2_kernels();
const KernelTable& avx512_kernels();

} // namespace kernels
} // namespace faiss_bq
