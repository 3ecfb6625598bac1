// AVX-512 kernels (F, BW, VL, VPOPCNTDQ): the only translation unit compiled
// with those flags. Everything here stays in an anonymous namespace and uses
// intrinsics only: an inline function from a shared header compiled here
// could be picked by the linker for callers on CPUs without AVX-512.
#include <faiss_bq/kernels/levels.h>

#include <immintrin.h>

#include <algorithm>
#include <type_traits>

// GCC 12's AVX-512 intrinsics pass _mm512_undefined_*() as the unused
// merge source and then warn about it at every call (GCC bug 105593).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace faiss_bq {
namespace kernels {
namespace avx512_level {
namespace {

/// Bytes [0, nbytes) of a 64-byte chunk (masked loads never fault on the
/// bytes they skip, so a code's tail is read without reading past it).
inline __mmask64 chunk_mask(size_t nbytes) {
    return nbytes >= 64 ? ~__mmask64(0) : (__mmask64(1) << nbytes) - 1;
}

inline __m512i load_chunk(const uint8_t* p, size_t nbytes) {
    return _mm512_maskz_loadu_epi8(chunk_mask(nbytes), p);
}

/// 8 lanes of partial counts of popcount(op(a, b)) over nbytes.
template <typename Op>
inline __m512i count_of(
        const uint8_t* a,
        const uint8_t* b,
        size_t nbytes,
        Op op) {
    __m512i acc = _mm512_setzero_si512();
    size_t i = 0;
    for (; i + 64 <= nbytes; i += 64) {
        const __m512i x = _mm512_loadu_si512(a + i);
        const __m512i y = _mm512_loadu_si512(b + i);
        acc = _mm512_add_epi64(acc, _mm512_popcnt_epi64(op(x, y)));
    }
    if (i < nbytes) {
        const __m512i x = load_chunk(a + i, nbytes - i);
        const __m512i y = load_chunk(b + i, nbytes - i);
        acc = _mm512_add_epi64(acc, _mm512_popcnt_epi64(op(x, y)));
    }
    return acc;
}

struct OpFirst {
    __m512i operator()(__m512i x, __m512i) const {
        return x;
    }
};
struct OpAnd {
    __m512i operator()(__m512i x, __m512i y) const {
        return _mm512_and_si512(x, y);
    }
};
struct OpXor {
    __m512i operator()(__m512i x, __m512i y) const {
        return _mm512_xor_si512(x, y);
    }
};

uint64_t popcount(const uint8_t* a, size_t nbytes) {
    return _mm512_reduce_add_epi64(count_of(a, a, nbytes, OpFirst()));
}

uint64_t popcount_and(const uint8_t* a, const uint8_t* b, size_t nbytes) {
    return _mm512_reduce_add_epi64(count_of(a, b, nbytes, OpAnd()));
}

uint64_t hamming(const uint8_t* a, const uint8_t* b, size_t nbytes) {
    return _mm512_reduce_add_epi64(count_of(a, b, nbytes, OpXor()));
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

/// Lane j of the result = the sum of the 8 lanes of v[j]: three rounds of
/// pairwise adds instead of eight horizontal reductions.
inline __m512i transpose_sum(const __m512i v[8]) {
    __m512i a[4];
    for (int j = 0; j < 4; j++) {
        a[j] = _mm512_add_epi64(
                _mm512_unpacklo_epi64(v[2 * j], v[2 * j + 1]),
                _mm512_unpackhi_epi64(v[2 * j], v[2 * j + 1]));
    }
    constexpr int even = _MM_SHUFFLE(2, 0, 2, 0), odd = _MM_SHUFFLE(3, 1, 3, 1);
    const __m512i b0 = _mm512_add_epi64(
            _mm512_shuffle_i64x2(a[0], a[1], even),
            _mm512_shuffle_i64x2(a[0], a[1], odd));
    const __m512i b1 = _mm512_add_epi64(
            _mm512_shuffle_i64x2(a[2], a[3], even),
            _mm512_shuffle_i64x2(a[2], a[3], odd));
    return _mm512_add_epi64(
            _mm512_shuffle_i64x2(b0, b1, even),
            _mm512_shuffle_i64x2(b0, b1, odd));
}

/// NBYTES > 0 fixes the code size at compile time (unrolled loads).
template <size_t NBYTES>
void hamming_block_of(
        const uint8_t* query,
        const uint8_t* codes,
        size_t n,
        size_t nbytes,
        size_t stride,
        int32_t* distances) {
    const size_t nb = NBYTES ? NBYTES : nbytes;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m512i v[8];
        for (int j = 0; j < 8; j++) {
            v[j] = count_of(query, codes + (i + j) * stride, nb, OpXor());
        }
        _mm256_storeu_si256(
                reinterpret_cast<__m256i*>(distances + i),
                _mm512_cvtepi64_epi32(transpose_sum(v)));
    }
    for (; i < n; i++) {
        distances[i] = int32_t(_mm512_reduce_add_epi64(
                count_of(query, codes + i * stride, nb, OpXor())));
    }
}

/// 32-byte codes stored contiguously: two codes per 512-bit load, the
/// query in both halves.
void hamming_block_32_contiguous(
        const uint8_t* query,
        const uint8_t* codes,
        size_t n,
        int32_t* distances) {
    const __m512i q = _mm512_broadcast_i64x4(
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(query)));
    // lanes of the pairwise sums below: codes 0 2 1 3 4 6 5 7
    const __m512i order = _mm512_setr_epi64(0, 2, 1, 3, 4, 6, 5, 7);
    constexpr int even = _MM_SHUFFLE(2, 0, 2, 0), odd = _MM_SHUFFLE(3, 1, 3, 1);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m512i v[4]; // v[j]: codes i + 2j (lanes 0-3) and i + 2j + 1 (4-7)
        for (int j = 0; j < 4; j++) {
            v[j] = _mm512_popcnt_epi64(_mm512_xor_si512(
                    q, _mm512_loadu_si512(codes + (i + 2 * j) * 32)));
        }
        const __m512i a01 = _mm512_add_epi64(
                _mm512_unpacklo_epi64(v[0], v[1]),
                _mm512_unpackhi_epi64(v[0], v[1]));
        const __m512i a23 = _mm512_add_epi64(
                _mm512_unpacklo_epi64(v[2], v[3]),
                _mm512_unpackhi_epi64(v[2], v[3]));
        const __m512i b = _mm512_add_epi64(
                _mm512_shuffle_i64x2(a01, a23, even),
                _mm512_shuffle_i64x2(a01, a23, odd));
        _mm256_storeu_si256(
                reinterpret_cast<__m256i*>(distances + i),
                _mm512_cvtepi64_epi32(_mm512_permutexvar_epi64(order, b)));
    }
    hamming_block_of<32>(query, codes + i * 32, n - i, 32, 32, distances + i);
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
            if (stride == 32) {
                return hamming_block_32_contiguous(query, codes, n, distances);
            }
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
    const __m512i b = _mm512_set1_epi32(bound);
    __m512i index = _mm512_setr_epi32(
            0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i sixteen = _mm512_set1_epi32(16);
    size_t count = 0, i = 0;
    for (; i + 16 <= n; i += 16) {
        const __mmask16 m =
                _mm512_cmplt_epi32_mask(_mm512_loadu_si512(values + i), b);
        if (m) {
            // compress in a register then a masked store: the compressing
            // store to memory is microcoded (slow) on some CPUs
            const int c = __builtin_popcount(m);
            _mm512_mask_storeu_epi32(
                    positions + count,
                    __mmask16((1u << c) - 1),
                    _mm512_maskz_compress_epi32(m, index));
            count += c;
        }
        index = _mm512_add_epi32(index, sixteen);
    }
    for (; i < n; i++) {
        if (values[i] < bound) {
            positions[count++] = uint32_t(i);
        }
    }
    return count;
}

/// The 8 sums of the 8 lanes of each of v[0..8), in order, as 8 lanes:
/// a transposing tree (pairs of vectors, then of 128-bit lanes) that costs
/// 7 shuffle-add steps instead of 8 horizontal reductions.
inline __m512i reduce8(const __m512i v[8]) {
    __m512i a[4], b[2];
    for (int i = 0; i < 4; i++) {
        // lane k: [sum of v[2i] over lane k, same for v[2i+1]]
        a[i] = _mm512_add_epi64(
                _mm512_unpacklo_epi64(v[2 * i], v[2 * i + 1]),
                _mm512_unpackhi_epi64(v[2 * i], v[2 * i + 1]));
    }
    for (int i = 0; i < 2; i++) {
        b[i] = _mm512_add_epi64(
                _mm512_shuffle_i64x2(a[2 * i], a[2 * i + 1], 0x88),
                _mm512_shuffle_i64x2(a[2 * i], a[2 * i + 1], 0xdd));
    }
    // b[i] lanes: halves of (v4i, v4i+1), halves of (v4i+2, v4i+3)
    return _mm512_add_epi64(
            _mm512_shuffle_i64x2(b[0], b[1], 0x88),
            _mm512_shuffle_i64x2(b[0], b[1], 0xdd));
}

constexpr int max_block_planes = 16;

void plane_products_block(
        const uint8_t* query_planes,
        int n_query_planes,
        const uint8_t* codes,
        size_t n,
        size_t stride,
        size_t plane_bytes,
        int code_plane_mask,
        uint32_t* out) {
    const int np = n_query_planes;
    // More planes than registers (no caller today: at most 9): one plane at
    // a time. Folding this case into the path below as batches of 16 planes
    // made that path 2x slower (measured on q8 / q4 scans), so it stays apart.
    if (np > max_block_planes) {
        for (size_t i = 0; i < n; i++) {
            const uint8_t* code = codes + i * stride;
            for (int p = 0; p < np; p++) {
                const uint8_t* q = query_planes + p * plane_bytes;
                __m512i acc = _mm512_setzero_si512();
                for (size_t off = 0; off < plane_bytes; off += 64) {
                    const size_t len = plane_bytes - off;
                    __m512i bits = load_chunk(q + off, len);
                    for (int a = 0; (code_plane_mask >> a) != 0; a++) {
                        if ((code_plane_mask >> a) & 1) {
                            bits = _mm512_and_si512(
                                    bits,
                                    load_chunk(
                                            code + a * plane_bytes + off, len));
                        }
                    }
                    acc = _mm512_add_epi64(acc, _mm512_popcnt_epi64(bits));
                }
                out[i * np + p] = uint32_t(_mm512_reduce_add_epi64(acc));
            }
        }
        return;
    }
    // The code's bits are read once per chunk; the counts of all query
    // planes are reduced together (reduce8), 8 planes at a time.
    for (size_t i = 0; i < n; i++) {
        const uint8_t* code = codes + i * stride;
        __m512i acc[max_block_planes];
        for (int p = 0; p < np; p++) {
            acc[p] = _mm512_setzero_si512();
        }
        for (size_t off = 0; off < plane_bytes; off += 64) {
            const size_t len = plane_bytes - off;
            __m512i bits = _mm512_set1_epi64(-1);
            for (int a = 0; (code_plane_mask >> a) != 0; a++) {
                if ((code_plane_mask >> a) & 1) {
                    bits = _mm512_and_si512(
                            bits,
                            load_chunk(code + a * plane_bytes + off, len));
                }
            }
            for (int p = 0; p < np; p++) {
                const __m512i q =
                        load_chunk(query_planes + p * plane_bytes + off, len);
                acc[p] = _mm512_add_epi64(
                        acc[p], _mm512_popcnt_epi64(_mm512_and_si512(q, bits)));
            }
        }
        uint32_t* o = out + i * np;
        for (int p0 = 0; p0 < np; p0 += 8) {
            const int m = np - p0 < 8 ? np - p0 : 8;
            if (m == 1) {
                o[p0] = uint32_t(_mm512_reduce_add_epi64(acc[p0]));
                continue;
            }
            __m512i v[8];
            for (int p = 0; p < 8; p++) {
                v[p] = p < m ? acc[p0 + p] : _mm512_setzero_si512();
            }
            const __m256i sums = _mm512_cvtepi64_epi32(reduce8(v));
            _mm256_mask_storeu_epi32(o + p0, __mmask8((1u << m) - 1), sums);
        }
    }
}

/// lut_scan over 16 codes at once, one code per lane: each lane adds its
/// groups' table entries (gathered) in the reference's order, into the same
/// four partial sums, so the result is the reference's bit for bit.
void lut_scan_block(
        const uint8_t* codes,
        size_t n,
        size_t stride,
        size_t plane_bytes,
        int nbits,
        const float* lut,
        float* out) {
    size_t i = 0;
    // Planes under 4 bytes (small groups of an allocation) are read as one
    // 4-byte word from their start: the caller guarantees 4 readable bytes
    // there (kernels.h).
    if (stride < (size_t(1) << 26)) {
        const __m512i offsets = _mm512_mullo_epi32(
                _mm512_setr_epi32(
                        0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                _mm512_set1_epi32(int(stride)));
        const __m512i byte = _mm512_set1_epi32(0xff);
        const __m512i low = _mm512_set1_epi32(0x0f);
        const __m512i high = _mm512_set1_epi32(0xf0);
        for (; i + 16 <= n; i += 16) {
            const uint8_t* base = codes + i * stride;
            __m512 sum[4] = {
                    _mm512_setzero_ps(),
                    _mm512_setzero_ps(),
                    _mm512_setzero_ps(),
                    _mm512_setzero_ps()};
            auto add = [&](size_t g, __m512i index) {
                index = _mm512_add_epi32(
                        index, _mm512_set1_epi32(int(g * lut_entries)));
                sum[g % 4] = _mm512_add_ps(
                        sum[g % 4], _mm512_i32gather_ps(index, lut, 4));
            };
            size_t g = 0;
            for (size_t b = 0; b < plane_bytes; b += 4) {
                // 4 bytes of each plane per lane; the last word ends at the
                // plane's end (never past it), its first bytes already done
                const size_t w = b + 4 <= plane_bytes || plane_bytes < 4
                        ? b
                        : plane_bytes - 4;
                const unsigned skip = unsigned(8 * (b - w));
                __m512i x0 = _mm512_srli_epi32(
                        _mm512_i32gather_epi32(offsets, base + w, 1), skip);
                __m512i x1 = nbits == 2
                        ? _mm512_srli_epi32(
                                  _mm512_i32gather_epi32(
                                          offsets, base + plane_bytes + w, 1),
                                  skip)
                        : _mm512_setzero_si512();
                const size_t bytes = plane_bytes - b < 4 ? plane_bytes - b : 4;
                if (nbits >= 3) {
                    // Two coordinates per table: bits 2t, 2t + 1 of plane
                    // p's byte at bits 2p, 2p + 1 of the index.
                    __m512i xp[4];
                    for (int p = 0; p < nbits; p++) {
                        xp[p] = _mm512_srli_epi32(
                                _mm512_i32gather_epi32(
                                        offsets, base + p * plane_bytes + w, 1),
                                skip);
                    }
                    const __m512i two = _mm512_set1_epi32(3);
                    for (size_t e = 0; e < bytes; e++) {
                        for (int t = 0; t < 4; t++) {
                            __m512i index = _mm512_setzero_si512();
                            for (int p = 0; p < nbits; p++) {
                                index = _mm512_or_si512(
                                        index,
                                        _mm512_slli_epi32(
                                                _mm512_and_si512(
                                                        _mm512_srli_epi32(
                                                                xp[p],
                                                                unsigned(
                                                                        8 * e +
                                                                        2 * t)),
                                                        two),
                                                unsigned(2 * p)));
                            }
                            add(g++, index);
                        }
                    }
                    continue;
                }
                for (size_t e = 0; e < bytes; e++) {
                    const __m512i y0 = _mm512_and_si512(x0, byte);
                    if (nbits == 1) {
                        add(g++, y0);
                    } else {
                        const __m512i y1 = _mm512_and_si512(x1, byte);
                        add(g++,
                            _mm512_or_si512(
                                    _mm512_and_si512(y0, low),
                                    _mm512_slli_epi32(
                                            _mm512_and_si512(y1, low), 4)));
                        add(g++,
                            _mm512_or_si512(
                                    _mm512_srli_epi32(y0, 4),
                                    _mm512_and_si512(y1, high)));
                    }
                    x0 = _mm512_srli_epi32(x0, 8);
                    x1 = _mm512_srli_epi32(x1, 8);
                }
            }
            _mm512_storeu_ps(
                    out + i,
                    _mm512_add_ps(
                            _mm512_add_ps(sum[0], sum[1]),
                            _mm512_add_ps(sum[2], sum[3])));
        }
    }
    const auto scalar = ref_kernels().lut_scan;
    for (; i < n; i++) {
        out[i] = scalar(codes + i * stride, plane_bytes, nbits, lut);
    }
}

/// Fast scan (kernels.h): one 64-byte column per register, loaded once for
/// the NQ queries (query blocking); per query two whole-register table
/// loads (the tables hold a copy per lane), two vpshufb, the two entries of
/// a byte added in 8 bits (entries <= 127), and 16-bit lanes holding an even
/// vector + 256 x the odd one plus the odd ones alone: two shuffle-port
/// operations per column and query besides the shuffles (Zen 4 and Intel
/// run vpshufb and shifts on two ports).
template <int NQ>
void fast_scan_accumulate_nq(
        const uint8_t* codes,
        size_t nblocks,
        size_t block_stride,
        size_t t0,
        size_t t1,
        FastScanQuery* queries) {
    constexpr size_t lb = fast_scan_lut_bytes;
    const __m512i low = _mm512_set1_epi8(0x0f);
    // 64-bit lanes of (unpacklo, unpackhi) in vector order: lane L of the
    // unpacks holds vectors 16 L..16 L + 7 (lo) and 16 L + 8..16 L + 15 (hi)
    const __m512i first = _mm512_setr_epi64(0, 1, 8, 9, 2, 3, 10, 11);
    const __m512i second = _mm512_setr_epi64(4, 5, 12, 13, 6, 7, 14, 15);
    const uint8_t* luts[NQ];
    for (int q = 0; q < NQ; q++) {
        luts[q] = queries[q].lut;
    }
    for (size_t b = 0; b < nblocks; b++) {
        const uint8_t* block = codes + b * block_stride;
        __m512i both[NQ], odd[NQ];
        for (int q = 0; q < NQ; q++) {
            both[q] = _mm512_setzero_si512();
            odd[q] = _mm512_setzero_si512();
        }
        for (size_t t = t0; t < t1; t++) {
            const __m512i c = _mm512_loadu_si512(
                    (const void*)(block + t * fast_scan_block));
            const __m512i clo = _mm512_and_si512(c, low);
            const __m512i chi = _mm512_and_si512(_mm512_srli_epi16(c, 4), low);
            for (int q = 0; q < NQ; q++) {
                const uint8_t* l = luts[q] + lb * t;
                const __m512i r = _mm512_add_epi8(
                        _mm512_shuffle_epi8(
                                _mm512_loadu_si512((const void*)l), clo),
                        _mm512_shuffle_epi8(
                                _mm512_loadu_si512((const void*)(l + 64)),
                                chi));
                both[q] = _mm512_add_epi16(both[q], r);
                odd[q] = _mm512_add_epi16(odd[q], _mm512_srli_epi16(r, 8));
            }
        }
        for (int q = 0; q < NQ; q++) {
            const FastScanQuery& fq = queries[q];
            const __m512i even =
                    _mm512_sub_epi16(both[q], _mm512_slli_epi16(odd[q], 8));
            const __m512i lo = _mm512_unpacklo_epi16(even, odd[q]);
            const __m512i hi = _mm512_unpackhi_epi16(even, odd[q]);
            const __m512i v0 =
                    _mm512_permutex2var_epi64(lo, first, hi); // 0..31
            const __m512i v1 =
                    _mm512_permutex2var_epi64(lo, second, hi); // 32..63
            uint32_t* o = fq.out + b * fast_scan_block;
            const __m512i w[4] = {
                    _mm512_cvtepu16_epi32(_mm512_castsi512_si256(v0)),
                    _mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64(v0, 1)),
                    _mm512_cvtepu16_epi32(_mm512_castsi512_si256(v1)),
                    _mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64(v1, 1))};
            for (int i = 0; i < 4; i++) {
                const __m512i sum = fq.add
                        ? _mm512_add_epi32(
                                  _mm512_loadu_si512((const void*)(o + 16 * i)),
                                  w[i])
                        : w[i];
                _mm512_storeu_si512((void*)(o + 16 * i), sum);
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

/// The fast-scan epilogue (kernels.h), 16 vectors per register; the
/// positions better than `worst` compressed from a compare mask. The
/// factor terms of zero weight (f0 under inner product, f2 under L2) are
/// not loaded.
template <bool F0, bool F2>
size_t fast_scan_scores_terms(
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
    const __m512 step_hi = _mm512_set1_ps(a.step_hi),
                 step_lo = _mm512_set1_ps(a.step_lo),
                 bias = _mm512_set1_ps(a.bias), c = _mm512_set1_ps(a.c),
                 w0 = _mm512_set1_ps(a.w0), w1 = _mm512_set1_ps(a.w1),
                 w2 = _mm512_set1_ps(a.w2), threshold = _mm512_set1_ps(worst);
    const __m512i lanes = _mm512_setr_epi32(
            0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    size_t count = 0;
    for (size_t b = 0; b < nblocks; b++) {
        const float* f = factors + b * 3 * bs;
        for (size_t i = 0; i < bs; i += 16) {
            const size_t j = b * bs + i;
            __m512 ip = _mm512_fmadd_ps(
                    step_lo,
                    _mm512_cvtepu32_ps(
                            _mm512_loadu_si512((const void*)(lo + j))),
                    bias);
            if (hi) {
                ip = _mm512_fmadd_ps(
                        step_hi,
                        _mm512_cvtepu32_ps(
                                _mm512_loadu_si512((const void*)(hi + j))),
                        ip);
            }
            __m512 o = c;
            if (F0) {
                o = _mm512_fmadd_ps(w0, _mm512_loadu_ps(f + i), o);
            }
            if (F2) {
                o = _mm512_fmadd_ps(w2, _mm512_loadu_ps(f + 2 * bs + i), o);
            }
            o = _mm512_fmadd_ps(
                    _mm512_mul_ps(w1, _mm512_loadu_ps(f + bs + i)), ip, o);
            _mm512_storeu_ps(out + j, o);
            const __mmask16 m = larger_is_better
                    ? _mm512_cmp_ps_mask(o, threshold, _CMP_GT_OQ)
                    : _mm512_cmp_ps_mask(o, threshold, _CMP_LT_OQ);
            if (m) {
                // compress in a register, then a plain store (a compressing
                // store to memory is slow on Zen 4)
                const __m512i idx =
                        _mm512_add_epi32(lanes, _mm512_set1_epi32(int(j)));
                _mm512_storeu_si512(
                        (void*)(better + count),
                        _mm512_maskz_compress_epi32(m, idx));
                count += size_t(__builtin_popcount(m));
            }
        }
    }
    return count;
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
    auto run = [&](auto f0, auto f2) {
        return fast_scan_scores_terms<decltype(f0)::value, decltype(f2)::value>(
                hi,
                lo,
                factors,
                nblocks,
                a,
                worst,
                larger_is_better,
                out,
                better);
    };
    using T = std::true_type;
    using F = std::false_type;
    if (a.w0 == 0) {
        return a.w2 == 0 ? run(F(), F()) : run(F(), T());
    }
    return a.w2 == 0 ? run(T(), F()) : run(T(), T());
}

/// rows_to_block (kernels.h): a 16-column tile of all 64 rows at once. Lane
/// L of a[i] holds row 16 L + i, so the four rounds of 128-bit interleaving
/// (the 16 x 16 byte transpose of kernels_avx2.cpp, in each lane) leave in
/// out[c] column c of rows 0..63, in order: one 64-byte store per column,
/// and half the shuffles of four 16 x 16 tiles.
void rows_to_block(
        const uint8_t* rows,
        size_t row_stride,
        size_t nrows,
        size_t ncols,
        uint8_t* block) {
    constexpr size_t bs = fast_scan_block;
    auto row16 = [&](size_t v, size_t t0) {
        return v < nrows
                ? _mm_loadu_si128((const __m128i*)(rows + v * row_stride + t0))
                : _mm_setzero_si128();
    };
    size_t t0 = 0;
    for (; t0 < ncols && t0 + 16 <= row_stride; t0 += 16) {
        __m512i a[16], p[8], q[8], r[4][4], sv[2][4][2];
        for (size_t i = 0; i < 16; i++) {
            a[i] = _mm512_inserti32x4(
                    _mm512_inserti32x4(
                            _mm512_inserti32x4(
                                    _mm512_castsi128_si512(row16(i, t0)),
                                    row16(16 + i, t0),
                                    1),
                            row16(32 + i, t0),
                            2),
                    row16(48 + i, t0),
                    3);
        }
        for (int i = 0; i < 8; i++) {
            p[i] = _mm512_unpacklo_epi8(a[2 * i], a[2 * i + 1]);
            q[i] = _mm512_unpackhi_epi8(a[2 * i], a[2 * i + 1]);
        }
        for (int j = 0; j < 4; j++) {
            r[j][0] = _mm512_unpacklo_epi16(p[2 * j], p[2 * j + 1]);
            r[j][1] = _mm512_unpackhi_epi16(p[2 * j], p[2 * j + 1]);
            r[j][2] = _mm512_unpacklo_epi16(q[2 * j], q[2 * j + 1]);
            r[j][3] = _mm512_unpackhi_epi16(q[2 * j], q[2 * j + 1]);
        }
        for (int m = 0; m < 2; m++) {
            for (int g = 0; g < 4; g++) {
                sv[m][g][0] =
                        _mm512_unpacklo_epi32(r[2 * m][g], r[2 * m + 1][g]);
                sv[m][g][1] =
                        _mm512_unpackhi_epi32(r[2 * m][g], r[2 * m + 1][g]);
            }
        }
        const size_t nc = std::min<size_t>(16, ncols - t0);
        for (int g = 0; g < 4; g++) {
            for (int h = 0; h < 2; h++) {
                const size_t c = size_t(4 * g + 2 * h);
                if (c < nc) {
                    _mm512_storeu_si512(
                            block + (t0 + c) * bs,
                            _mm512_unpacklo_epi64(sv[0][g][h], sv[1][g][h]));
                }
                if (c + 1 < nc) {
                    _mm512_storeu_si512(
                            block + (t0 + c + 1) * bs,
                            _mm512_unpackhi_epi64(sv[0][g][h], sv[1][g][h]));
                }
            }
        }
    }
    if (t0 < ncols) { // columns a tile would read past
        ref_kernels().rows_to_block(
                rows + t0, row_stride, nrows, ncols - t0, block + t0 * bs);
    }
}

/// hamming_scores (kernels.h): the distances of up to 256 codes, then their
/// scores 16 at a time, the factors gathered (a code's stride apart) and
/// the selection compressed in a register.
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
    const __m512 c = _mm512_set1_ps(a.c), alpha = _mm512_set1_ps(a.alpha),
                 beta = _mm512_set1_ps(a.beta),
                 threshold = _mm512_set1_ps(worst);
    const __m512i lanes = _mm512_setr_epi32(
            0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i offsets =
            _mm512_mullo_epi32(lanes, _mm512_set1_epi32(int(stride)));
    constexpr size_t chunk = 256;
    alignas(64) int32_t h[chunk];
    size_t count = 0;
    for (size_t i0 = 0; i0 < n; i0 += chunk) {
        const size_t m = std::min(chunk, n - i0);
        const uint8_t* block = codes + i0 * stride;
        hamming_block(query, block, m, nbytes, stride, h);
        size_t j = 0;
        for (; j + 16 <= m; j += 16) {
            const uint8_t* f = block + j * stride + nbytes;
            const __m512 f0 = _mm512_i32gather_ps(offsets, f, 1);
            __m512 g = _mm512_i32gather_ps(offsets, f + 4, 1);
            if (a.has_f2) {
                g = _mm512_mul_ps(g, _mm512_i32gather_ps(offsets, f + 8, 1));
            }
            const __m512 e = _mm512_fmadd_ps(
                    beta, _mm512_cvtepi32_ps(_mm512_load_si512(h + j)), alpha);
            const __m512 o = _mm512_fmadd_ps(g, e, _mm512_add_ps(c, f0));
            _mm512_storeu_ps(out + i0 + j, o);
            const __mmask16 mask = larger_is_better
                    ? _mm512_cmp_ps_mask(o, threshold, _CMP_GT_OQ)
                    : _mm512_cmp_ps_mask(o, threshold, _CMP_LT_OQ);
            if (mask) {
                // compress in a register, then a plain store (as
                // fast_scan_scores)
                const __m512i idx =
                        _mm512_add_epi32(lanes, _mm512_set1_epi32(int(i0 + j)));
                _mm512_storeu_si512(
                        (void*)(better + count),
                        _mm512_maskz_compress_epi32(mask, idx));
                count += size_t(__builtin_popcount(mask));
            }
        }
        count += hamming_scores_of(
                h + j,
                block + j * stride,
                m - j,
                nbytes,
                stride,
                a,
                worst,
                larger_is_better,
                i0 + j,
                out + i0 + j,
                better + count);
    }
    return count;
}

} // namespace
} // namespace avx512_level

const KernelTable& avx512_kernels() {
    // One code's look-up-table scan stays scalar (a gather per look-up is
    // not cheaper than a load); blocks of codes use a lane per code.
    static const KernelTable table = {
            SimdLevel::avx512,
            avx512_level::popcount,
            avx512_level::popcount_and,
            avx512_level::hamming,
            avx512_level::weighted_popcount,
            avx512_level::hamming_block,
            avx512_level::select_less,
            avx512_level::plane_products_block,
            ref_kernels().lut_scan,
            avx512_level::lut_scan_block,
            avx512_level::fast_scan_accumulate,
            avx512_level::fast_scan_scores,
            avx512_level::rows_to_block,
            avx512_level::hamming_scores,
    };
    return table;
}

} // namespace kernels
} // namespace faiss_bq
