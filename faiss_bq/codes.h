// The one owner of the code layout: bit planes plus per-vector factors.
//
// Coordinates are grouped by their bit count b (1..4; b = 0 is not stored),
// groups in increasing b, coordinates in increasing index within a group. A
// group of m coordinates is b bit planes of ceil(m / 8) bytes; plane p holds
// bit p of each member's level index, LSB-first (the group's i-th member is
// bit i % 8 of byte i / 8, as FAISS's fvec2bitvec), zero-padded. Zero bytes
// pad the groups to plan.code_bytes, then three float factors follow:
//   group 1 planes | group 2 planes | ... | padding |
//   residual_norm2 | estimate_scale | center_dot
// A uniform plan (every b_j = nbits) is one group in coordinate order, so its
// code is plane 0 | ... | plane nbits-1 of ceil(d / 8) bytes, then the factors.
// The first two factors (RaBitQ-style) make the asymmetric estimator unbiased
// for the residual r = R (x - c):
//   residual_norm2 = |r|^2,  estimate_scale = |r|^2 / <r_hat, r>
// so that <r, y> ~ estimate_scale * <r_hat, y> for any y (TurboQuant-MSE
// plans store the MSE scale |r| / sqrt(d) instead: plan.h). The third,
// center_dot = <x - c, c>, is exact where the inner product needs it:
//   <x, q> = <c, q> + <x - c, c> + <x - c, q - c>,
// so only <x - c, q - c> is estimated, against the centred query (on
// embeddings with a large common offset, a much shorter vector than q).
#pragma once

#include <faiss_bq/plan.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

namespace faiss_bq {

struct CodeLayout {
    /// The coordinates that share a bit count, stored as nbits planes.
    struct Group {
        int nbits = 0;
        size_t offset = 0;      ///< of plane 0 in the code
        size_t plane_bytes = 0; ///< ceil(coords.size() / 8)
        std::vector<int> coords;
    };

    int d = 0;
    int nbits = 1;          ///< uniform bits, or the largest b_j
    size_t plane_bytes = 0; ///< ceil(d / 8)
    size_t planes_size = 0; ///< bytes before the factors (plan.code_bytes)
    size_t code_size = 0;   ///< planes_size + factor_bytes
    std::vector<Group> groups;
    /// Per coordinate: its group (-1 for 0 bits) and place in the group.
    std::vector<int> group_of, slot_of;

    static constexpr size_t factor_bytes = 3 * sizeof(float);

    CodeLayout() = default;
    /// Uniform: nbits bits on every coordinate.
    CodeLayout(int d, int nbits);
    /// The plan's allocation (uniform plans give the layout above).
    explicit CodeLayout(const BinarizationPlan& plan);

    /// Plane p of a uniform layout.
    const uint8_t* plane(const uint8_t* code, int p) const {
        return code + p * plane_bytes;
    }
    float residual_norm2(const uint8_t* code) const {
        return load_float(code + planes_size);
    }
    float estimate_scale(const uint8_t* code) const {
        return load_float(code + planes_size + sizeof(float));
    }
    float center_dot(const uint8_t* code) const {
        return load_float(code + planes_size + 2 * sizeof(float));
    }
    /// Level index of coordinate j (bits gathered from its group's planes).
    int level_index(const uint8_t* code, size_t j) const {
        const int g = group_of[j];
        if (g < 0) {
            return 0;
        }
        const Group& gr = groups[g];
        const size_t s = slot_of[j];
        const uint8_t* base = code + gr.offset + s / 8;
        int q = 0;
        for (int p = 0; p < gr.nbits; p++) {
            q |= ((base[p * gr.plane_bytes] >> (s % 8)) & 1) << p;
        }
        return q;
    }
    /// Writes level index q of coordinate j into a zeroed code.
    void set_level_index(uint8_t* code, size_t j, int q) const {
        const int g = group_of[j];
        if (g < 0) {
            return;
        }
        const Group& gr = groups[g];
        const size_t s = slot_of[j];
        uint8_t* base = code + gr.offset + s / 8;
        for (int p = 0; p < gr.nbits; p++) {
            base[p * gr.plane_bytes] |= ((q >> p) & 1) << (s % 8);
        }
    }

   private:
    void build(const std::vector<uint8_t>& bits, size_t planes_size);
    static float load_float(const uint8_t* p) {
        float f;
        std::memcpy(&f, p, sizeof(f));
        return f;
    }
};

/** The fast-scan layout of a plan's codes (IndexBQFastScan): the level
 * indices of a code regrouped into 4-bit sub-codes, "nibbles", of whole
 * coordinates, so that the asymmetric estimate <r_hat, y> is a sum of one
 * 16-entry table per nibble (kernels::fast_scan_accumulate). A nibble holds one
 * 4-bit coordinate; or one 3-bit coordinate and, while any are left, a
 * 1-bit one (at bit 3); or two 2-bit; or one 2-bit and up to two 1-bit; or
 * four 1-bit coordinates (coordinates in increasing index within each
 * kind). A uniform 1-bit plan's nibble k is coordinates 4k..4k+3, the
 * halves of its plane bytes; a uniform 2-bit plan's holds coordinates 2k
 * (bits 0-1) and 2k + 1 (bits 2-3). Every plan without 3-bit coordinates,
 * or with at least as many 1-bit as 3-bit ones, takes no more bytes than
 * its planes; each 3-bit coordinate beyond that wastes one bit.
 *
 * Storage is by blocks of kernels::fast_scan_block (64) vectors, each
 * nbytes columns of 64 bytes: byte v of column t is nibble 2t (low half)
 * and 2t + 1 (high half) of the block's vector v. The per-vector factors
 * are kept apart (IndexBQFastScan::factors).
 */
struct NibbleLayout {
    struct Member {
        int coord = 0; ///< coordinate of the plan's basis
        int nbits = 0; ///< its bit count
        int shift = 0; ///< its level index sits at these bits of the nibble
    };
    /// Members of nibble k: members[begin[k]] .. members[begin[k + 1] - 1].
    std::vector<Member> members;
    std::vector<size_t> begin;
    size_t n_nibbles = 0;
    /// Bytes per vector: ceil(n_nibbles / 2), the columns of a block.
    size_t nbytes = 0;
    /// A uniform 1-bit plan: a vector's row (pack_row) is its code's plane.
    bool rows_are_planes = false;

    NibbleLayout() = default;
    explicit NibbleLayout(const BinarizationPlan& plan);

    /// Bytes of a block of kernels::fast_scan_block vectors.
    size_t block_bytes() const;
    /// Bytes of the blocks that hold n vectors.
    size_t blocks_bytes(size_t n) const;

    /// Writes the nibbles of a code of `layout` (the plan's CodeLayout) as
    /// vector i of blocks (its old nibbles are overwritten).
    void pack(
            const CodeLayout& layout,
            const uint8_t* code,
            uint8_t* blocks,
            size_t i) const;
    /// The inverse: the planes of vector i's code (layout.planes_size
    /// bytes written; the factors are not touched).
    void unpack(
            const CodeLayout& layout,
            const uint8_t* blocks,
            size_t i,
            uint8_t* code) const;
    /// Nibble k of vector i.
    int nibble(const uint8_t* blocks, size_t i, size_t k) const;

    /// One vector's nibbles as a row of nbytes bytes (byte t = nibble 2t |
    /// nibble 2t + 1 << 4), the form in which IndexIVFBQFastScan's
    /// inverted lists keep them: row t of vector v is byte v of column t of
    /// its block.
    void pack_row(const CodeLayout& layout, const uint8_t* code, uint8_t* row)
            const;
    /// The inverse: the planes of the code (layout.planes_size bytes
    /// written; the factors are not touched).
    void unpack_row(const CodeLayout& layout, const uint8_t* row, uint8_t* code)
            const;
    /// The rows of n vectors (row i at rows + i * row_stride) as the
    /// blocks_bytes(n) bytes of ceil(n / 64) blocks; padding vectors are
    /// zero.
    void rows_to_blocks(
            const uint8_t* rows,
            size_t row_stride,
            size_t n,
            uint8_t* blocks) const;
    /// Nibble k of a code of `layout` (its members' level indices).
    int code_nibble(const CodeLayout& layout, const uint8_t* code, size_t k)
            const;
    /// Bits of nibble k in use (its members' bits): its values are 0 ..
    /// 2^used_bits - 1.
    int used_bits(size_t k) const;
    /// Member mb's reconstruction when its nibble holds v: its joint level
    /// (BinarizationPlan::joint_levels), or its scalar level of index (v >>
    /// shift) & (2^nbits - 1).
    static float member_level(
            const BinarizationPlan& plan,
            const Member& mb,
            int v) {
        return plan.is_joint()
                ? plan.joint_levels[size_t(mb.coord) * 16 + v]
                : plan.level(mb.coord, (v >> mb.shift) & ((1 << mb.nbits) - 1));
    }
    /// The float-query tables: tables[16 k + v] = sum over nibble k's
    /// members j of member_level(v) * y_j (y = R (q - c)), for every v < 16.
    void float_tables(
            const BinarizationPlan& plan,
            const float* y,
            float* tables) const;
    /// member_level(plan, members[m], v) at 16 m + v.
    std::vector<float> member_levels(const BinarizationPlan& plan) const;
    /// float_tables from member_levels(plan) (its loops vectorize over v).
    void float_tables(const float* levels, const float* y, float* tables) const;
    /// Vector i's bytes (both halves of each column byte are its own) set to
    /// vector from's, or to zero (a padding vector).
    void copy_vector(uint8_t* blocks, size_t from, size_t i) const;
    void clear_vector(uint8_t* blocks, size_t i) const;
};

/** The plan's quantizer of transformed vectors y = R (x - c), prepared for
 * many vectors: each coordinate on its own (thresholds), or, for a joint
 * plan, each nibble of NibbleLayout(plan) to its nearest codeword (the
 * first of equal ones), its codewords kept contiguous here. The plan must
 * outlive it.
 */
class Quantizer {
   public:
    explicit Quantizer(const BinarizationPlan& plan);
    /// Each coordinate's level index into q and its reconstruction into
    /// r_hat (plan.d values each; 0-bit coordinates: index 0 and their
    /// constant level). EDEN plans quantize y * plan.unit_scale(y), and
    /// r_hat is then in those units (the plan's levels).
    void operator()(const float* y, int* q, float* r_hat) const;

   private:
    const BinarizationPlan& plan;
    NibbleLayout nibbles;
    /// Joint plans: nibble k's 2^used_bits codewords, each its members'
    /// values in member order, from codewords[offset[k]].
    std::vector<float> codewords;
    std::vector<size_t> offset;
};

/** Fits plan.joint_levels on x (n x plan.d, input space), making the plan
 * joint. For each nibble of NibbleLayout(plan): Lloyd's k-means of its
 * members' transformed values to its 2^used_bits codewords, started from
 * the product of their scalar levels, so that the distortion on x never
 * exceeds the scalar plan's (each Lloyd step lowers it; a codeword left
 * without points keeps its place). One-member nibbles keep their scalar
 * levels (Lloyd-Max is already this fixed point). Dependent coordinates gain
 * most: on use512-wordnet (axis basis, 1 bit), 4-D codewords for the four
 * 1-bit coordinates of a nibble cut the distortion by 18%. predicted_
 * distortion becomes the joint quantizer's distortion on x. Throws when the
 * plan is untrained, already joint or EDEN's, or n < 16 (fewer points
 * than codewords).
 */
void fit_joint_codebooks(BinarizationPlan& plan, size_t n, const float* x);

/// Bytes per vector for d dimensions and nbits bits per coordinate.
size_t code_size(int d, int nbits);

/// Encodes n vectors (n x plan.d) into n codes of CodeLayout(plan).code_size
/// bytes.
void encode(
        const BinarizationPlan& plan,
        size_t n,
        const float* x,
        uint8_t* codes);

/// Approximate vectors in the input space: x ~ c + R^T (s r_hat), with s the
/// least-squares scale <r_hat, r> / |r_hat|^2 recovered from the factors
/// (TurboQuant-MSE: s = estimate_scale as stored, |r| / sqrt(d)).
void decode(
        const BinarizationPlan& plan,
        size_t n,
        const uint8_t* codes,
        float* x);

/// The same reconstruction left in the transformed space: s r_hat ~ R (x - c).
/// Distances between them are distances between decoded vectors (R is
/// orthogonal), without the d x d product.
void decode_residuals(
        const BinarizationPlan& plan,
        size_t n,
        const uint8_t* codes,
        float* y);
/// The same with the plan's layout given (CodeLayout(plan)), for callers
/// that decode one code at a time.
void decode_residuals(
        const BinarizationPlan& plan,
        const CodeLayout& layout,
        size_t n,
        const uint8_t* codes,
        float* y);

/// What the asymmetric estimator sees, in the transformed space:
/// e = estimate_scale * r_hat, so that <x, q> ~ <c, q> + <e, R (q - c)>.
void estimate_vectors(
        const BinarizationPlan& plan,
        size_t n,
        const uint8_t* codes,
        float* e);

/// What the symmetric estimator sees: each coordinate's level index q mapped
/// to the odd integer 2q - (2^nbits - 1), i.e. +-1 for 1 bit, +-1, +-3 for 2
/// (uniform layouts).
void code_values(
        const CodeLayout& layout,
        size_t n,
        const uint8_t* codes,
        float* s);

} // namespace faiss_bq
