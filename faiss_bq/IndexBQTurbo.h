// IndexBQTurbo: TurboQuant-prod (Zandieh et al., 2025), an MSE code plus a
// 1-bit QJL sketch of its residual, for unbiased inner products.
#pragma once

#include <faiss/IndexFlatCodes.h>
#include <faiss_bq/plan.h>

#include <cstdint>
#include <vector>

namespace faiss_bq {

/** Float vectors as a (nbits - 1)-bit TurboQuant-MSE code and a 1-bit QJL
 * sketch of what it leaves.
 *
 * Model. y = R (x - c) (R a seeded random rotation or the identity, c the
 * training mean or zero). The MSE part is a TurboQuant-MSE plan
 * (Quantization::turbo_mse, fit_eden_plan): y scaled to norm sqrt(d),
 * Gaussian Lloyd-Max levels at nbits - 1 bits, reconstruction y_hat = (|y| /
 * sqrt(d)) r_hat. The sketch is QJL's with orthogonal rows: with Q a seeded
 * random orthogonal d x d matrix (faiss::RandomRotationMatrix), the signs of
 * Q e for the residual e = y - y_hat, and |e|. Each row u of Q is uniform on
 * the sphere, E[sign(<u, e>) <u, y'>] = E|u_1| <e, y'> / |e|, so
 *   <y, y'> ~ <y_hat, y'> + |e| w(d) <sign(Q e), Q y'>,
 *   w(d) = sqrt(pi) Gamma((d+1)/2) / (d Gamma(d/2))  (-> sqrt(pi/(2d)))
 * is unbiased over Q (the MSE part alone shrinks inner products). QJL's
 * Gaussian S (sqrt(pi/2) / d) is unbiased too; measured, orthogonal rows
 * give 0.6x its standard deviation (docs/rotation-quantizers.md).
 *
 * Search, float query only, y' = R (q - c): the MSE part is IndexBQ's
 * asymmetric estimate of the plan's codes (QueryScorer: look-up tables over
 * its planes, the exact |y|^2 and <x - c, c> of codes.h), the sketch one
 * 256-entry table per byte of Q y' (kernels::lut_scan_block). search()
 * returns |y|^2 + |y'|^2 - 2 ip (METRIC_L2) or <c, q> + <x - c, c> + ip
 * (METRIC_INNER_PRODUCT), ip the estimate above.
 *
 * Code layout (code_size_for(d, nbits) bytes): the plan's code (nbits - 1
 * bit planes of ceil(d / 8) bytes, then |y|^2, |y| / sqrt(d) and <x - c,
 * c>: codes.h), then the sketch plane (ceil(d / 8) bytes, bit i set when
 * (Q e)_i >= 0, LSB-first), then the float |e|.
 */
struct IndexBQTurbo : faiss::IndexFlatCodes {
    /// Total bits per coordinate, 2..4: nbits - 1 for the MSE code, 1 for
    /// the sketch.
    int nbits = 2;

    /// Training options: the basis (random_rotation or identity), centring
    /// at the training mean, the rotation's seed, the sketch's seed.
    Transform transform = Transform::random_rotation;
    bool centered = true;
    int seed = 1234;
    int sketch_seed = 4321;

    /// The trained model: the MSE part's plan, and the sketch's Q (d x d,
    /// row-major, orthogonal).
    BinarizationPlan plan;
    std::vector<float> sketch;

    IndexBQTurbo();
    IndexBQTurbo(
            idx_t d,
            int nbits,
            faiss::MetricType metric = faiss::METRIC_L2);

    /// Bytes per code for these settings (throws on nbits outside 2..4).
    static size_t code_size_for(int d, int nbits);
    size_t plane_bytes() const {
        return (size_t(d) + 7) / 8;
    }
    /// Bytes of the MSE part (the plan's code) at the start of a code.
    size_t mse_code_size() const;

    void train(idx_t n, const float* x) override;
    void add(idx_t n, const float* x) override;
    void search(
            idx_t n,
            const float* x,
            idx_t k,
            float* distances,
            idx_t* labels,
            const faiss::SearchParameters* params = nullptr) const override;

    /// Encodes as the layout above.
    void sa_encode(idx_t n, const float* x, uint8_t* bytes) const override;
    /// The unbiased reconstruction c + R^T (y_hat + |e| w(d) Q^T sign(Q e)).
    void sa_decode(idx_t n, const uint8_t* bytes, float* x) const override;

    void check_compatible_for_merge(const faiss::Index& other) const override;
};

} // namespace faiss_bq
