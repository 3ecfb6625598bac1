// Scalar reference kernels: the specification the SIMD levels must match.
#include <faiss_bq/kernels/levels.h>

#include <cstring>

namespace faiss_bq {
namespace kernels {

namespace ref_level {
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

uint64_t popcount(const uint8_t* a, size_t nbytes) {
    return popcount_of(a, a, nbytes, [](uint64_t x, uint64_t) { return x; });
}

uint64_t popcount_and(const uint8_t* a, const uint8_t* b, size_t nbytes) {
    return popcount_of(
            a, b, nbytes, [](uint64_t x, uint64_t y) { return x & y; });
}

uint64_t hamming(const uint8_t* a, const uint8_t* b, size_t nbytes) {
    return popcount_of(
            a, b, nbytes, [](uint64_t x, uint64_t y) { return x ^ y; });
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

float lut_scan(
        const uint8_t* planes,
        size_t plane_bytes,
        int nbits,
        const float* lut) {
    // Four partial sums: one chain of dependent float adds would bound the
    // scan by the add latency, not by the loads.
    float sum[4] = {0, 0, 0, 0};
    if (nbits >= 3) {
        // Two coordinates per table: 2 bits of each plane's byte per index.
        size_t g = 0;
        for (size_t b = 0; b < plane_bytes; b++) {
            for (int t = 0; t < 4; t++) {
                unsigned index = 0;
                for (int p = 0; p < nbits; p++) {
                    index |= ((planes[p * plane_bytes + b] >> (2 * t)) & 3u)
                            << (2 * p);
                }
                sum[g % 4] += lut[g * lut_entries + index];
                g++;
            }
        }
    } else if (nbits == 1) {
        for (size_t g = 0; g < plane_bytes; g++) {
            sum[g % 4] += lut[g * lut_entries + planes[g]];
        }
    } else {
        const uint8_t* hi = planes + plane_bytes;
        for (size_t b = 0; b < plane_bytes; b++) {
            const unsigned lo_index =
                    (planes[b] & 0x0f) | ((hi[b] & 0x0f) << 4);
            const unsigned hi_index = (planes[b] >> 4) | (hi[b] & 0xf0);
            sum[(2 * b) % 4] += lut[(2 * b) * lut_entries + lo_index];
            sum[(2 * b + 1) % 4] += lut[(2 * b + 1) * lut_entries + hi_index];
        }
    }
    return (sum[0] + sum[1]) + (sum[2] + sum[3]);
}

void hamming_block(
        const uint8_t* query,
        const uint8_t* codes,
        size_t n,
        size_t nbytes,
        size_t stride,
        int32_t* distances) {
    for (size_t i = 0; i < n; i++) {
        distances[i] = int32_t(hamming(query, codes + i * stride, nbytes));
    }
}

size_t select_less(
        const int32_t* values,
        size_t n,
        int32_t bound,
        uint32_t* positions) {
    size_t count = 0;
    for (size_t i = 0; i < n; i++) {
        if (values[i] < bound) {
            positions[count++] = uint32_t(i);
        }
    }
    return count;
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
    for (size_t i = 0; i < n; i++) {
        const uint8_t* code = codes + i * stride;
        for (int p = 0; p < n_query_planes; p++) {
            const uint8_t* q = query_planes + p * plane_bytes;
            uint64_t count = 0;
            for (size_t b = 0; b < plane_bytes; b++) {
                unsigned bits = q[b];
                for (int a = 0; (code_plane_mask >> a) != 0; a++) {
                    if ((code_plane_mask >> a) & 1) {
                        bits &= code[a * plane_bytes + b];
                    }
                }
                count += __builtin_popcount(bits);
            }
            out[i * n_query_planes + p] = uint32_t(count);
        }
    }
}

void lut_scan_block(
        const uint8_t* codes,
        size_t n,
        size_t stride,
        size_t plane_bytes,
        int nbits,
        const float* lut,
        float* out) {
    for (size_t i = 0; i < n; i++) {
        out[i] = lut_scan(codes + i * stride, plane_bytes, nbits, lut);
    }
}

void fast_scan_accumulate(
        const uint8_t* codes,
        size_t nblocks,
        size_t block_stride,
        size_t t0,
        size_t t1,
        size_t nq,
        FastScanQuery* queries) {
    constexpr size_t bs = fast_scan_block;
    for (size_t q = 0; q < nq; q++) {
        const FastScanQuery& fq = queries[q];
        for (size_t b = 0; b < nblocks; b++) {
            const uint8_t* block = codes + b * block_stride;
            for (size_t v = 0; v < bs; v++) {
                uint32_t sum = 0;
                for (size_t t = t0; t < t1; t++) {
                    const unsigned byte = block[t * bs + v];
                    sum += fq.lut[fast_scan_lut_bytes * t + (byte & 15)];
                    sum += fq.lut[fast_scan_lut_bytes * t + 64 + (byte >> 4)];
                }
                fq.out[b * bs + v] = (fq.add ? fq.out[b * bs + v] : 0) + sum;
            }
        }
    }
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
    constexpr size_t bs = fast_scan_block;
    size_t count = 0;
    for (size_t i = 0; i < nblocks * bs; i++) {
        const float* f = factors + i / bs * 3 * bs + i % bs;
        const float h = hi ? float(hi[i]) : 0.f;
        const float ip = a.step_hi * h + a.step_lo * float(lo[i]) + a.bias;
        out[i] = a.c + a.w0 * f[0] + a.w2 * f[2 * bs] + a.w1 * f[bs] * ip;
        if (larger_is_better ? out[i] > worst : out[i] < worst) {
            better[count++] = uint32_t(i);
        }
    }
    return count;
}

void rows_to_block(
        const uint8_t* rows,
        size_t row_stride,
        size_t nrows,
        size_t ncols,
        uint8_t* block) {
    for (size_t t = 0; t < ncols; t++) {
        for (size_t v = 0; v < fast_scan_block; v++) {
            block[t * fast_scan_block + v] =
                    v < nrows ? rows[v * row_stride + t] : 0;
        }
    }
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
    return hamming_scores_blocked(
            hamming_block,
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

} // namespace
} // namespace ref_level

const KernelTable& ref_kernels() {
    static const KernelTable table = {
            SimdLevel::ref,
            ref_level::popcount,
            ref_level::popcount_and,
            ref_level::hamming,
            ref_level::weighted_popcount,
            ref_level::hamming_block,
            ref_level::select_less,
            ref_level::plane_products_block,
            ref_level::lut_scan,
            ref_level::lut_scan_block,
            ref_level::fast_scan_accumulate,
            ref_level::fast_scan_scores,
            ref_level::rows_to_block,
            ref_level::hamming_scores,
    };
    return table;
}

size_t lut_groups(size_t plane_bytes, int nbits) {
    return plane_bytes * (nbits >= 3 ? 4 : nbits);
}

} // namespace kernels
} // namespace faiss_bq
