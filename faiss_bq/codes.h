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
// so that <r, y> ~ estimate_scale * <r_hat, y> for any y. The third,
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

/// Bytes per vector for d dimensions and nbits bits per coordinate.
size_t code_size(int d, int nbits);

/// Encodes n vectors (n x plan.d) into n codes of CodeLayout(plan).code_size
/// bytes.
void encode(const BinarizationPlan& plan, size_t n, const float* x, uint8_t* codes);

/// Approximate vectors in the input space: x ~ c + R^T (s r_hat), with s the
/// least-squares scale <r_hat, r> / |r_hat|^2 recovered from the factors.
void decode(const BinarizationPlan& plan, size_t n, const uint8_t* codes, float* x);

/// The same reconstruction left in the transformed space: s r_hat ~ R (x - c).
/// Distances between them are distances between decoded vectors (R is
/// orthogonal), without the d x d product.
void decode_residuals(
        const BinarizationPlan& plan,
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
void code_values(const CodeLayout& layout, size_t n, const uint8_t* codes, float* s);

} // namespace faiss_bq
