// Scan kernels over packed codes. This file declares them; kernels_ref.cpp is
// the scalar reference (the specification), kernels_avx2.cpp and
// kernels_avx512.cpp the SIMD levels (each the only translation unit compiled
// with its instruction set), dispatch.cpp the one place that picks a level.
//
// The free functions below run at the level chosen once per process from the
// CPU, or forced by the environment variable FAISS_BQ_SIMD=ref|avx2|avx512.
// An unknown value, or a level the CPU lacks, throws faiss::FaissException at
// the first kernel call (naming the value): a silent fallback would make a
// benchmark or a bug report lie about what ran.
#pragma once

#include <cstddef>
#include <cstdint>

namespace faiss_bq {
namespace kernels {

enum class SimdLevel {
    ref,    ///< scalar C++ (the specification), software-portable
    avx2,   ///< AVX2 + POPCNT; popcount by nibble look-up (vpshufb)
    avx512, ///< AVX-512 F/BW/VL + VPOPCNTDQ (Ice Lake, Zen 4 and later)
};

/// "ref", "avx2" or "avx512".
const char* simd_level_name(SimdLevel level);
/// Whether this CPU (and this build) can run the level.
bool cpu_supports(SimdLevel level);
/// The level the free functions use (chosen on first use, thread-safe).
SimdLevel simd_level();

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

/// distances[i] = hamming(query, codes + i * stride, nbytes) for i < n.
/// stride >= nbytes (IndexBQ codes carry factors after their planes).
void hamming_block(
        const uint8_t* query,
        const uint8_t* codes,
        size_t n,
        size_t nbytes,
        size_t stride,
        int32_t* distances);

/// Top-k pre-selection: writes the positions i < n with values[i] < bound,
/// in increasing order, to positions (room for n) and returns their number.
size_t select_less(
        const int32_t* values,
        size_t n,
        int32_t bound,
        uint32_t* positions);

/// Bit-plane products over a block of codes. Code i's bits are the AND of its
/// planes a in code_plane_mask (plane a at codes + i * stride + a *
/// plane_bytes); then out[i * n_query_planes + p] = popcount(query plane p &
/// those bits), with query plane p at query_planes + p * plane_bytes.
/// code_plane_mask is in 1..15 (codes have one to four planes).
/// An all-ones query plane gives the popcount of the code bits themselves.
void plane_products_block(
        const uint8_t* query_planes,
        int n_query_planes,
        const uint8_t* codes,
        size_t n,
        size_t stride,
        size_t plane_bytes,
        int code_plane_mask,
        uint32_t* out);

/// Number of look-up tables and their size for a float query over codes of
/// nbits (1..4) bits per coordinate: one table of 256 entries per group of
/// 8 (1 bit), 4 (2 bits) or 2 (3 and 4 bits) coordinates, indexed by the
/// bits of that group.
size_t lut_groups(size_t plane_bytes, int nbits);
constexpr size_t lut_entries = 256;

/// sum over groups g of lut[g * 256 + index_g(code)], with index_g the byte
/// of plane 0 (nbits = 1), the nibble of plane 0 in the low and of plane 1
/// in the high half (nbits = 2), or (nbits = 3, 4; four groups per byte, group
/// t of a byte its bits 2t, 2t + 1) those two bits of plane p at bits 2p,
/// 2p + 1 of the index. planes: the code's first plane; plane p starts at
/// planes + p * plane_bytes.
float lut_scan(
        const uint8_t* planes,
        size_t plane_bytes,
        int nbits,
        const float* lut);

/// out[i] = lut_scan(codes + i * stride, plane_bytes, nbits, lut), i < n.
/// At least 4 bytes must be readable from the start of every plane of every
/// code (the SIMD levels load planes of under 4 bytes as one word); codes.h
/// guarantees it, as the 12 bytes of factors follow the planes.
void lut_scan_block(
        const uint8_t* codes,
        size_t n,
        size_t stride,
        size_t plane_bytes,
        int nbits,
        const float* lut,
        float* out);

/// Vectors per block of the fast-scan layout (codes.h, NibbleLayout).
constexpr size_t fast_scan_block = 64;

/// The fast-scan tables of one column in the form the kernels read them
/// (FastScanScorer builds them): the 16 entries of the column's first
/// sub-code four times, one copy per 128-bit lane so that a 512-bit register
/// loads them whole (a broadcast costs a shuffle), then the 16 entries of
/// its second sub-code four times.
constexpr size_t fast_scan_lut_bytes = 128;
/// The largest table entry: the SIMD levels add the two entries of a byte
/// in 8 bits.
constexpr unsigned fast_scan_max_entry = 127;
/// Queries that share each loaded column in fast_scan_accumulate (query
/// blocking; more are taken in groups of this many).
constexpr size_t fast_scan_max_queries = 4;
/// Columns per fast_scan_accumulate call (the SIMD levels add in 16-bit
/// lanes and widen once per call).
constexpr size_t fast_scan_max_columns = 128;

/// One query of a fast_scan_accumulate call.
struct FastScanQuery {
    /// Its tables, from column 0: fast_scan_lut_bytes per column, entries at
    /// most fast_scan_max_entry.
    const uint8_t* lut = nullptr;
    /// Its sums: vector 64 b + v's at out[64 b + v].
    uint32_t* out = nullptr;
    /// out += the call's sums; false: out = them.
    bool add = false;
};

/// Fast-scan sums of nq queries over the same
/// nblocks blocks of the nibble layout (codes.h), columns [t0, t1) (t1 - t0
/// <= fast_scan_max_columns); each loaded column serves all queries. A block
/// holds 64 vectors as 64-byte columns: byte v of a column is two 4-bit
/// sub-codes of vector v, the column's first (low half) and second (high
/// half). Block b starts at codes + b * block_stride, its column t at + 64 t.
/// Query q's sums: sum over t0 <= t < t1 of lut[128 t + low(v, t)] +
/// lut[128 t + 64 + high(v, t)], exactly, written or added to its out as it
/// says.
void fast_scan_accumulate(
        const uint8_t* codes,
        size_t nblocks,
        size_t block_stride,
        size_t t0,
        size_t t1,
        size_t nq,
        FastScanQuery* queries);

/// The float epilogue of a fast scan: the estimate from the sums, then the
/// vector's factors (FastScanScorer; one per query).
struct FastScanAffine {
    float step_hi = 0, step_lo = 0,
          bias = 0; ///< ip = step_hi hi + step_lo lo + bias
    float c = 0, w0 = 0, w1 = 0, w2 = 0; ///< out = c + w0 f0 + w2 f2 + w1 f1 ip
};

/// out[64 b + i] = a.c + a.w0 * f0 + a.w2 * f2 + a.w1 * f1 * (a.step_hi *
/// hi + a.step_lo * lo + a.bias) for the 64 nblocks vectors of nblocks
/// blocks: hi and lo their sums (hi null: 0), their factors f0, f1, f2 at
/// factors + 192 b + (0, 64, 128) + i (IndexBQFastScan::factors). The SIMD
/// levels may fuse multiply-adds: equal to the reference within float rounding.
/// Also writes to better, in increasing order, the positions whose score is
/// strictly better than `worst` (greater when larger_is_better, else
/// smaller) and returns their count: a heap's candidates, selected without
/// a branch per vector.
size_t fast_scan_scores(
        const uint32_t* hi,
        const uint32_t* lo,
        const float* factors,
        size_t nblocks,
        const FastScanAffine& a,
        float worst,
        bool larger_is_better,
        float* out,
        uint32_t* better);

/// The float epilogue of a one-stage symmetric estimate (IndexBQRecurrent's
/// SDC at 1 bit), fused with its Hamming distances.
struct HammingAffine {
    float c = 0, alpha = 0, beta = 0; ///< out = c + f0 + f1 f2 (alpha + beta h)
    bool has_f2 = true;               ///< false: two factors, f2 = 1
};

/// out[i] = a.c + f0 + f1 * f2 * (a.alpha + a.beta * h) for the n codes at
/// codes + i * stride (stride < 2^27): h = hamming(query, code, nbytes), f0,
/// f1 (and f2) the floats stored at code + nbytes. Writes to better the
/// positions whose score is strictly better than `worst`, in increasing
/// order, and returns their count (as fast_scan_scores). The SIMD levels may
/// fuse multiply-adds: equal to the reference within float rounding.
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
        uint32_t* better);

/// Rows of nrows <= 64 vectors (row v at rows + v * row_stride, its
/// columns t < ncols) as one block of the fast-scan layout: block[64 t + v] =
/// rows[v * row_stride + t] for t < ncols, zero for v >= nrows (padding
/// vectors). The SIMD levels transpose 16 x 16 tiles and may read up to 15
/// bytes past column ncols of a row while below row_stride; a row_stride
/// of at least ncols + 15 lets every tile be one (IndexIVFBQFastScan's
/// entries hold their factors there).
void rows_to_block(
        const uint8_t* rows,
        size_t row_stride,
        size_t nrows,
        size_t ncols,
        uint8_t* block);

/// One level's kernels (the free functions call the chosen level's table).
struct KernelTable {
    SimdLevel level;
    uint64_t (*popcount)(const uint8_t*, size_t);
    uint64_t (*popcount_and)(const uint8_t*, const uint8_t*, size_t);
    uint64_t (*hamming)(const uint8_t*, const uint8_t*, size_t);
    uint64_t (*weighted_popcount)(const uint8_t*, int, const uint8_t*, size_t);
    void (*hamming_block)(
            const uint8_t*,
            const uint8_t*,
            size_t,
            size_t,
            size_t,
            int32_t*);
    size_t (*select_less)(const int32_t*, size_t, int32_t, uint32_t*);
    void (*plane_products_block)(
            const uint8_t*,
            int,
            const uint8_t*,
            size_t,
            size_t,
            size_t,
            int,
            uint32_t*);
    float (*lut_scan)(const uint8_t*, size_t, int, const float*);
    void (*lut_scan_block)(
            const uint8_t*,
            size_t,
            size_t,
            size_t,
            int,
            const float*,
            float*);
    void (*fast_scan_accumulate)(
            const uint8_t*,
            size_t,
            size_t,
            size_t,
            size_t,
            size_t,
            FastScanQuery*);
    size_t (*fast_scan_scores)(
            const uint32_t*,
            const uint32_t*,
            const float*,
            size_t,
            const FastScanAffine&,
            float,
            bool,
            float*,
            uint32_t*);
    void (*rows_to_block)(const uint8_t*, size_t, size_t, size_t, uint8_t*);
    size_t (*hamming_scores)(
            const uint8_t*,
            const uint8_t*,
            size_t,
            size_t,
            size_t,
            const HammingAffine&,
            float,
            bool,
            float*,
            uint32_t*);
};

/// The kernels of one level (tests compare every level with the reference).
/// Throws faiss::FaissException when the CPU lacks the level.
const KernelTable& kernel_table(SimdLevel level);

} // namespace kernels
} // namespace faiss_bq
