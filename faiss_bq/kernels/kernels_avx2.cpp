// AVX2 kernels: the only translation unit compiled with -mavx2 -mpopcnt.
// Popcount by nibble look-up (vpshufb) and byte sums (vpsadbw), 32 bytes at a
// time; tails of fewer than 32 bytes by scalar POPCNT. Everything stays in an
// anonymous namespace (see kernels_avx512.cpp for why).
#include <faiss_bq/kernels/levels.h>

#include <immintrin.h>

#include <algorithm>
#include <cstring>

namespace faiss_bq {
namespace kernels {
namespace avx2_level {
namespace {

/// 4 lanes of byte counts of v, summed per 64-bit lane.
inline __m256i popcount256(__m256i v) {
    const __m256i lut = _mm256_setr_epi8(
            0,
            1,
            1,
            2,
            1,
            2,
            2,
            3,
            1,
            2,
            2,
            3,
            2,
            3,
            3,
            4,
            0,
            1,
            1,
            2,
            1,
            2,
            2,
            3,
            1,
            2,
            2,
            3,
            2,
            3,
            3,
            4);
    const __m256i low = _mm256_set1_epi8(0x0f);
    const __m256i lo = _mm256_and_si256(v, low);
    const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low);
    const __m256i counts = _mm256_add_epi8(
            _mm256_shuffle_epi8(lut, lo), _mm256_shuffle_epi8(lut, hi));
    return _mm256_sad_epu8(counts, _mm256_setzero_si256());
}

inline uint64_t sum_lanes(__m256i v) {
    const __m128i s = _mm_add_epi64(
            _mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    return uint64_t(_mm_cvtsi128_si64(s)) +
            uint64_t(_mm_cvtsi128_si64(_mm_unpackhi_epi64(s, s)));
}

inline uint64_t load64(const uint8_t* p) {
    uint64_t w;
    std::memcpy(&w, p, sizeof(w));
    return w;
}

struct OpFirst {
    __m256i operator()(__m256i x, __m256i) const {
        return x;
    }
    uint64_t operator()(uint64_t x, uint64_t) const {
        return x;
    }
};
struct OpAnd {
    __m256i operator()(__m256i x, __m256i y) const {
        return _mm256_and_si256(x, y);
    }
    uint64_t operator()(uint64_t x, uint64_t y) const {
        return x & y;
    }
};
struct OpXor {
    __m256i operator()(__m256i x, __m256i y) const {
        return _mm256_xor_si256(x, y);
    }
    uint64_t operator()(uint64_t x, uint64_t y) const {
        return x ^ y;
    }
};

template <typename Op>
inline uint64_t count_of(
        const uint8_t* a,
        const uint8_t* b,
        size_t nbytes,
        Op op) {
    __m256i acc = _mm256_setzero_si256();
    size_t i = 0;
    for (; i + 32 <= nbytes; i += 32) {
        const __m256i x =
                _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + i));
        const __m256i y =
                _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + i));
        acc = _mm256_add_epi64(acc, popcount256(op(x, y)));
    }
    uint64_t count = sum_lanes(acc);
    for (; i + 8 <= nbytes; i += 8) {
        count += _mm_popcnt_u64(op(load64(a + i), load64(b + i)));
    }
    for (; i < nbytes; i++) {
        count += _mm_popcnt_u32(unsigned(op(uint64_t(a[i]), uint64_t(b[i]))));
    }
    return count;
}

uint64_t popcount(const uint8_t* a, size_t nbytes) {
    return count_of(a, a, nbytes, OpFirst());
}

uint64_t popcount_and(const uint8_t* a, const uint8_t* b, size_t nbytes) {
    return count_of(a, b, nbytes, OpAnd());
}

uint64_t hamming(const uint8_t* a, const uint8_t* b, size_t nbytes) {
    return count_of(a, b, nbytes, OpXor());
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

template <size_t NBYTES>
void hamming_block_of(
        const uint8_t* query,
        const uint8_t* codes,
        size_t n,
        size_t nbytes,
        size_t stride,
        int32_t* distances) {
    const size_t nb = NBYTES ? NBYTES : nbytes;
    for (size_t i = 0; i < n; i++) {
        distances[i] =
                int32_t(count_of(query, codes + i * stride, nb, OpXor()));
    }
}

void hamming_block(
        const uint8_t* query,
        const uint8_t* codes,
        size_t n,
        size_t nbytes,
        size_t stride,
        int32_t* distances) {
    switch (nbytes) {
        case 32:
            return hamming_block_of<32>(query, codes, n, 32, stride, distances);
        case 64:
            return hamming_block_of<64>(query, codes, n, 64, stride, distances);
        case 128:
            return hamming_block_of<128>(
                    query, codes, n, 128, stride, distances);
        default:
            return hamming_block_of<0>(
                    query, codes, n, nbytes, stride, distances);
    }
}

size_t select_less(
        const int32_t* values,
        size_t n,
        int32_t bound,
        uint32_t* positions) {
    const __m256i b = _mm256_set1_epi32(bound);
    size_t count = 0, i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256i v = _mm256_loadu_si256(
                reinterpret_cast<const __m256i*>(values + i));
        unsigned m = unsigned(_mm256_movemask_ps(
                _mm256_castsi256_ps(_mm256_cmpgt_epi32(b, v))));
        while (m) {
            positions[count++] = uint32_t(i + __builtin_ctz(m));
            m &= m - 1;
        }
    }
    for (; i < n; i++) {
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
    // Up to four code planes; absent ones repeat the first (x & x = x).
    int a[4];
    int na = 0;
    for (int b = 0; b < 4; b++) {
        if ((code_plane_mask >> b) & 1) {
            a[na++] = b;
        }
    }
    for (int b = na; b < 4; b++) {
        a[b] = a[0];
    }
    for (size_t i = 0; i < n; i++) {
        const uint8_t* code = codes + i * stride;
        const uint8_t* x0 = code + a[0] * plane_bytes;
        const uint8_t* x1 = code + a[1] * plane_bytes;
        const uint8_t* x2 = code + a[2] * plane_bytes;
        const uint8_t* x3 = code + a[3] * plane_bytes;
        for (int p = 0; p < n_query_planes; p++) {
            const uint8_t* q = query_planes + p * plane_bytes;
            __m256i acc = _mm256_setzero_si256();
            size_t b = 0;
            for (; b + 32 <= plane_bytes; b += 32) {
                auto load = [b](const uint8_t* s) {
                    return _mm256_loadu_si256(
                            reinterpret_cast<const __m256i*>(s + b));
                };
                acc = _mm256_add_epi64(
                        acc,
                        popcount256(_mm256_and_si256(
                                _mm256_and_si256(load(q), load(x0)),
                                _mm256_and_si256(
                                        _mm256_and_si256(load(x1), load(x2)),
                                        load(x3)))));
            }
            uint64_t count = sum_lanes(acc);
            for (; b + 8 <= plane_bytes; b += 8) {
                count += _mm_popcnt_u64(
                        load64(q + b) & load64(x0 + b) & load64(x1 + b) &
                        load64(x2 + b) & load64(x3 + b));
            }
            for (; b < plane_bytes; b++) {
                count += _mm_popcnt_u32(
                        unsigned(q[b] & x0[b] & x1[b] & x2[b] & x3[b]));
            }
            out[i * n_query_planes + p] = uint32_t(count);
        }
    }
}

/// Fast scan (kernels.h): a 64-vector column is two 32-byte halves, each
/// loaded once for the NQ queries; bytes are looked up in the nibble's
/// table (vpshufb, the first two copies of the tables), the two entries of
/// a byte added in 8 bits (entries <= 127), then in 16-bit lanes, each lane
/// the sum of an even vector (low byte) and 256 times the next one (high
/// byte), with the high bytes also summed alone; the even sums are the
/// difference (at most 128 columns: 128 x 254 fits 16 bits).
template <int NQ>
void fast_scan_accumulate_nq(
        const uint8_t* codes,
        size_t nblocks,
        size_t block_stride,
        size_t t0,
        size_t t1,
        FastScanQuery* queries) {
    constexpr size_t lb = fast_scan_lut_bytes;
    const __m256i low = _mm256_set1_epi8(0x0f);
    for (size_t b = 0; b < nblocks; b++) {
        const uint8_t* block = codes + b * block_stride;
        for (int h = 0; h < 2; h++) {
            __m256i both[NQ], od[NQ];
            for (int q = 0; q < NQ; q++) {
                both[q] = _mm256_setzero_si256();
                od[q] = _mm256_setzero_si256();
            }
            for (size_t t = t0; t < t1; t++) {
                const __m256i c = _mm256_loadu_si256(
                        (const __m256i*)(block + t * fast_scan_block + 32 * h));
                const __m256i clo = _mm256_and_si256(c, low);
                const __m256i chi =
                        _mm256_and_si256(_mm256_srli_epi16(c, 4), low);
                for (int q = 0; q < NQ; q++) {
                    const uint8_t* l = queries[q].lut + lb * t;
                    const __m256i r = _mm256_add_epi8(
                            _mm256_shuffle_epi8(
                                    _mm256_loadu_si256((const __m256i*)l), clo),
                            _mm256_shuffle_epi8(
                                    _mm256_loadu_si256(
                                            (const __m256i*)(l + 64)),
                                    chi));
                    both[q] = _mm256_add_epi16(both[q], r);
                    od[q] = _mm256_add_epi16(od[q], _mm256_srli_epi16(r, 8));
                }
            }
            for (int q = 0; q < NQ; q++) {
                const FastScanQuery& fq = queries[q];
                const __m256i even =
                        _mm256_sub_epi16(both[q], _mm256_slli_epi16(od[q], 8));
                // lane L of the unpacks: vectors 16 L..16 L + 7, 16 L + 8..16 L
                // + 15
                const __m256i lo = _mm256_unpacklo_epi16(even, od[q]);
                const __m256i hi = _mm256_unpackhi_epi16(even, od[q]);
                const __m256i w[4] = {
                        _mm256_cvtepu16_epi32(_mm256_castsi256_si128(lo)),
                        _mm256_cvtepu16_epi32(_mm256_castsi256_si128(hi)),
                        _mm256_cvtepu16_epi32(_mm256_extracti128_si256(lo, 1)),
                        _mm256_cvtepu16_epi32(_mm256_extracti128_si256(hi, 1))};
                uint32_t* o = fq.out + b * fast_scan_block + 32 * h;
                for (int i = 0; i < 4; i++) {
                    const __m256i sum = fq.add
                            ? _mm256_add_epi32(
                                      _mm256_loadu_si256(
                                              (const __m256i*)(o + 8 * i)),
                                      w[i])
                            : w[i];
                    _mm256_storeu_si256((__m256i*)(o + 8 * i), sum);
                }
            }
        }
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
    in_query_groups(nq, [&](auto m, size_t q0) {
        fast_scan_accumulate_nq<decltype(m)::value>(
                codes, nblocks, block_stride, t0, t1, queries + q0);
    });
}

/// out[c] = column c of the 16 x 16 byte tile a (a[r] = row r): four
/// rounds of interleaving, bytes, 16-bit pairs, 32-bit quads, 64-bit halves.
inline void transpose16(const __m128i a[16], __m128i out[16]) {
    __m128i p[8], q[8], r[4][4], s[2][4][2];
    for (int i = 0; i < 8; i++) { // p: columns 0-7, q: 8-15, rows 2i, 2i+1
        p[i] = _mm_unpacklo_epi8(a[2 * i], a[2 * i + 1]);
        q[i] = _mm_unpackhi_epi8(a[2 * i], a[2 * i + 1]);
    }
    for (int j = 0; j < 4; j++) { // r[j][g]: rows 4j..4j+3, columns 4g..4g+3
        r[j][0] = _mm_unpacklo_epi16(p[2 * j], p[2 * j + 1]);
        r[j][1] = _mm_unpackhi_epi16(p[2 * j], p[2 * j + 1]);
        r[j][2] = _mm_unpacklo_epi16(q[2 * j], q[2 * j + 1]);
        r[j][3] = _mm_unpackhi_epi16(q[2 * j], q[2 * j + 1]);
    }
    for (int m = 0; m < 2;
         m++) { // s[m][g][h]: rows 8m..8m+7, columns 4g+2h, +1
        for (int g = 0; g < 4; g++) {
            s[m][g][0] = _mm_unpacklo_epi32(r[2 * m][g], r[2 * m + 1][g]);
            s[m][g][1] = _mm_unpackhi_epi32(r[2 * m][g], r[2 * m + 1][g]);
        }
    }
    for (int g = 0; g < 4; g++) {
        for (int h = 0; h < 2; h++) {
            out[4 * g + 2 * h] = _mm_unpacklo_epi64(s[0][g][h], s[1][g][h]);
            out[4 * g + 2 * h + 1] = _mm_unpackhi_epi64(s[0][g][h], s[1][g][h]);
        }
    }
}

void rows_to_block(
        const uint8_t* rows,
        size_t row_stride,
        size_t nrows,
        size_t ncols,
        uint8_t* block) {
    constexpr size_t bs = fast_scan_block;
    // Tiles while a 16-byte load stays inside its row.
    size_t t0 = 0;
    for (; t0 < ncols && t0 + 16 <= row_stride; t0 += 16) {
        const size_t nc = std::min<size_t>(16, ncols - t0);
        for (size_t v0 = 0; v0 < bs; v0 += 16) {
            __m128i a[16], out[16];
            for (size_t i = 0; i < 16; i++) {
                a[i] = v0 + i < nrows
                        ? _mm_loadu_si128((
                                  const __m128i*)(rows + (v0 + i) * row_stride + t0))
                        : _mm_setzero_si128();
            }
            transpose16(a, out);
            for (size_t c = 0; c < nc; c++) {
                _mm_storeu_si128(
                        (__m128i*)(block + (t0 + c) * bs + v0), out[c]);
            }
        }
    }
    if (t0 < ncols) { // columns a tile would read past
        ref_kernels().rows_to_block(
                rows + t0, row_stride, nrows, ncols - t0, block + t0 * bs);
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
} // namespace avx2_level

const KernelTable& avx2_kernels() {
    // lut_scan: scalar at every level (see kernels_avx512.cpp).
    static const KernelTable table = {
            SimdLevel::avx2,
            avx2_level::popcount,
            avx2_level::popcount_and,
            avx2_level::hamming,
            avx2_level::weighted_popcount,
            avx2_level::hamming_block,
            avx2_level::select_less,
            avx2_level::plane_products_block,
            ref_kernels().lut_scan,
            ref_kernels().lut_scan_block,
            avx2_level::fast_scan_accumulate,
            ref_kernels().fast_scan_scores,
            avx2_level::rows_to_block,
            avx2_level::hamming_scores,
    };
    return table;
}

} // namespace kernels
} // namespace faiss_bq
