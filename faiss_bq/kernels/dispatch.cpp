// The one place that chooses a SIMD level: once, on first use.
#include <faiss_bq/kernels/levels.h>

#include <faiss/impl/FaissAssert.h>

#include <cstdlib>
#include <cstring>
#include <string>

namespace faiss_bq {
namespace kernels {

const char* simd_level_name(SimdLevel level) {
    switch (level) {
        case SimdLevel::ref:
            return "ref";
        case SimdLevel::avx2:
            return "avx2";
        case SimdLevel::avx512:
            return "avx512";
    }
    return "?";
}

bool cpu_supports(SimdLevel level) {
    switch (level) {
        case SimdLevel::ref:
            return true;
        case SimdLevel::avx2:
            return __builtin_cpu_supports("avx2") &&
                    __builtin_cpu_supports("popcnt");
        case SimdLevel::avx512:
            return __builtin_cpu_supports("avx512f") &&
                    __builtin_cpu_supports("avx512bw") &&
                    __builtin_cpu_supports("avx512vl") &&
                    __builtin_cpu_supports("avx512vpopcntdq") &&
                    __builtin_cpu_supports("popcnt");
    }
    return false;
}

const KernelTable& kernel_table(SimdLevel level) {
    FAISS_THROW_IF_NOT_FMT(
            cpu_supports(level),
            "faiss_bq: SIMD level %s is not supported by this CPU",
            simd_level_name(level));
    switch (level) {
        case SimdLevel::avx512:
            return avx512_kernels();
        case SimdLevel::avx2:
            return avx2_kernels();
        case SimdLevel::ref:
            break;
    }
    return ref_kernels();
}

namespace {

SimdLevel choose_level() {
    const char* forced = std::getenv("FAISS_BQ_SIMD");
    if (forced && *forced) {
        for (SimdLevel l :
             {SimdLevel::ref, SimdLevel::avx2, SimdLevel::avx512}) {
            if (std::strcmp(forced, simd_level_name(l)) == 0) {
                FAISS_THROW_IF_NOT_FMT(
                        cpu_supports(l),
                        "FAISS_BQ_SIMD=%s: this CPU lacks that level",
                        forced);
                return l;
            }
        }
        FAISS_THROW_FMT(
                "FAISS_BQ_SIMD=%s: unknown SIMD level "
                "(expected ref, avx2 or avx512)",
                forced);
    }
    if (cpu_supports(SimdLevel::avx512)) {
        return SimdLevel::avx512;
    }
    return cpu_supports(SimdLevel::avx2) ? SimdLevel::avx2 : SimdLevel::ref;
}

/// The chosen table. A throwing initialiser leaves the static unset, so
/// every later call throws the same message again.
const KernelTable& active() {
    static const KernelTable& table = kernel_table(choose_level());
    return table;
}

} // namespace

SimdLevel simd_level() {
    return active().level;
}

uint64_t popcount(const uint8_t* a, size_t nbytes) {
    return active().popcount(a, nbytes);
}

uint64_t popcount_and(const uint8_t* a, const uint8_t* b, size_t nbytes) {
    return active().popcount_and(a, b, nbytes);
}

uint64_t hamming(const uint8_t* a, const uint8_t* b, size_t nbytes) {
    return active().hamming(a, b, nbytes);
}

uint64_t weighted_popcount(
        const uint8_t* planes,
        int n_planes,
        const uint8_t* code,
        size_t nbytes) {
    return active().weighted_popcount(planes, n_planes, code, nbytes);
}

void hamming_block(
        const uint8_t* query,
        const uint8_t* codes,
        size_t n,
        size_t nbytes,
        size_t stride,
        int32_t* distances) {
    active().hamming_block(query, codes, n, nbytes, stride, distances);
}

size_t select_less(
        const int32_t* values,
        size_t n,
        int32_t bound,
        uint32_t* positions) {
    return active().select_less(values, n, bound, positions);
}

void plane_products_block(
        const uint8_t* query_planes,
        int n_query_planes,
        const uint8_t* codes,
        size_t n,
        size_t stride,
        size_t plane_bytes,
        int code_plane_mask,
        uint32_t* out) {
    active().plane_products_block(
            query_planes,
            n_query_planes,
            codes,
            n,
            stride,
            plane_bytes,
            code_plane_mask,
            out);
}

float lut_scan(
        const uint8_t* planes,
        size_t plane_bytes,
        int nbits,
        const float* lut) {
    return active().lut_scan(planes, plane_bytes, nbits, lut);
}

void lut_scan_block(
        const uint8_t* codes,
        size_t n,
        size_t stride,
        size_t plane_bytes,
        int nbits,
        const float* lut,
        float* out) {
    active().lut_scan_block(codes, n, stride, plane_bytes, nbits, lut, out);
}

void fast_scan_accumulate(
        const uint8_t* codes,
        size_t nblocks,
        size_t block_stride,
        size_t t0,
        size_t t1,
        size_t nq,
        FastScanQuery* queries) {
    active().fast_scan_accumulate(
            codes, nblocks, block_stride, t0, t1, nq, queries);
}

size_t fast_scan_scores(
        const uint32_t* hi,
        const uint32_t* lo,
        const float* factors,
        size_t nblocks,
        const FastScanAffine& a,
        float worst,
        bool larger_is_better,
        float* out,
        uint32_t* better) {
    return active().fast_scan_scores(
            hi, lo, factors, nblocks, a, worst, larger_is_better, out, better);
}

void rows_to_block(
        const uint8_t* rows,
        size_t row_stride,
        size_t nrows,
        size_t ncols,
        uint8_t* block) {
    active().rows_to_block(rows, row_stride, nrows, ncols, block);
}

size_t hamming_scores(
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
    return active().hamming_scores(
            query,
            codes,
            n,
            nbytes,
            stride,
            a,
            worst,
            larger_is_better,
            out,
            better);
}

} // namespace kernels
} // namespace faiss_bq
