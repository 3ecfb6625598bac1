// The one owner of the code layout: bit planes plus per-vector factors.
//
// A code of a d-dimensional vector with nbits bits per coordinate is
//   plane 0 | ... | plane nbits-1 | residual_norm2 | estimate_scale | center_dot
// Plane p holds bit p of every coordinate's level index, LSB-first (coordinate
// j is bit j % 8 of byte j / 8, as FAISS's fvec2bitvec), padded with zero bits
// to plane_bytes = ceil(d / 8). Three float factors follow. The first two
// (RaBitQ-style) make the asymmetric estimator unbiased for the residual
// r = R (x - c):
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

namespace faiss_bq {

struct CodeLayout {
    int d = 0;
    int nbits = 1;
    size_t plane_bytes = 0; ///< ceil(d / 8)
    size_t code_size = 0;   ///< nbits * plane_bytes + factor_bytes

    static constexpr size_t factor_bytes = 3 * sizeof(float);

    CodeLayout() = default;
    CodeLayout(int d, int nbits);

    const uint8_t* plane(const uint8_t* code, int p) const {
        return code + p * plane_bytes;
    }
    float residual_norm2(const uint8_t* code) const {
        return load_float(code + nbits * plane_bytes);
    }
    float estimate_scale(const uint8_t* code) const {
        return load_float(code + nbits * plane_bytes + sizeof(float));
    }
    float center_dot(const uint8_t* code) const {
        return load_float(code + nbits * plane_bytes + 2 * sizeof(float));
    }
    /// Level index of coordinate j (bits gathered from the planes).
    int level_index(const uint8_t* code, size_t j) const {
        int q = 0;
        for (int p = 0; p < nbits; p++) {
            q |= ((code[p * plane_bytes + j / 8] >> (j % 8)) & 1) << p;
        }
        return q;
    }

   private:
    static float load_float(const uint8_t* p) {
        float f;
        std::memcpy(&f, p, sizeof(f));
        return f;
    }
};

/// Bytes per vector for d dimensions and nbits bits per coordinate.
size_t code_size(int d, int nbits);

/// Encodes n vectors (n x plan.d) into n codes of code_size(d, nbits) bytes.
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
/// to the odd integer 2q - (2^nbits - 1), i.e. +-1 for 1 bit, +-1, +-3 for 2.
void code_values(const CodeLayout& layout, size_t n, const uint8_t* codes, float* s);

} // namespace faiss_bq
