// IndexBQRecurrent: recurrent (residual) binarization, after BEBR (Tencent's
// binary embedding retrieval), with its symmetric distance (SDC).
#pragma once

#include <faiss/IndexFlatCodes.h>
#include <faiss_bq/IndexBQ.h>
#include <faiss_bq/plan.h>

#include <cstdint>
#include <vector>

namespace faiss_bq {

/** Float vectors as n_stages sign codes of successive residuals.
 *
 * Model. z = R (x - mean), R a d x d orthogonal matrix. Stage 1 binarizes z,
 * stage t the residual e_t = z - sum_{u<t} a_u b_u left by the stages
 * before it: b_t = sign(e_t) (bit 1 for e_t >= 0), a_t its scale. The
 * reconstruction is z_hat = sum_t a_t b_t: n_stages bits per coordinate.
 * The scales are per vector (a_t = |e_t|_1 / d, the least-squares scale of
 * a sign code; stored with the code) or, without per_vector_scales, one per
 * stage fitted on the training sample (the mean of the same).
 *
 * Training fits the linear map R on the sample by alternating minimisation
 * of |z - z_hat|^2 (as ITQ does for one stage): codes for a fixed R, then
 * R by orthogonal Procrustes (LAPACK sgesvd) for fixed codes. BEBR's seed
 * method learns the map with a small MLP; a linear map is what fits a FAISS
 * plugin without a deep-learning runtime. One R shared by every stage keeps
 * all codes in one space, so the symmetric score needs only popcounts.
 *
 * Search, with two exact per-vector factors stored beside the code: the
 * offset |x - mean|^2 (METRIC_L2) or <mean, x - mean> (METRIC_INNER_PRODUCT),
 * and the correction c(x) = |z|^2 / <z_hat, z>. A sign code shrinks inner
 * products (by 2/pi per side for Gaussian coordinates); c(x) z_hat is the
 * scaling that makes <y, c(x) z_hat> unbiased under a random rotation (as
 * RaBitQ's estimator). Measured on use512-wordnet, without it the exact
 * offset outweighs the shrunken cross term and one-stage SDC fell below
 * plain Hamming. With y = R (q - mean):
 *  - asymmetric: the float query against the reconstruction,
 *    c(x) <y, z_hat>, from one look-up table per byte of a plane
 *    (kernels::lut_scan_block);
 *  - symmetric (SDC): the query encoded the same way, c(q) c(x) <y_hat,
 *    z_hat> with <y_hat, z_hat> = sum_{t,u} a_t(q) a_u(x) (d - 2
 *    hamming(b_t(q), b_u(x))): n_stages^2 Hamming distances per code
 *    (kernels::hamming_block).
 * Either way search() returns an estimate of the metric: |y|^2 + offset -
 * 2 ip for METRIC_L2, <q, mean> + offset + ip for METRIC_INNER_PRODUCT.
 *
 * Code layout (code_size bytes): n_stages bit planes of ceil(d / 8) bytes
 * (LSB-first, as faiss::fvec2bitvec), then the float offset and the float
 * correction, then the n_stages float scales when per_vector_scales.
 */
struct IndexBQRecurrent : faiss::IndexFlatCodes {
    /// Stages = bits per coordinate, 1..4.
    int n_stages = 2;
    /// Scales stored per vector (true) or one per stage (false).
    bool per_vector_scales = true;
    /// Default estimator of search(): asymmetric (float query) or symmetric
    /// (SDC). SearchParametersBQ::estimator overrides it per search.
    Estimator estimator = Estimator::asymmetric;

    /// Training options: alternating iterations (0 keeps the initial map),
    /// the initial map (a random rotation of seed `seed`, or the identity:
    /// measured, the identity is a poor start, as the sign codes of
    /// coordinates of unequal variance waste bits, and the fit leaves it
    /// slowly), and the largest sample used (a seeded random subset beyond
    /// it).
    int train_iterations = 16;
    bool random_init = true;
    int seed = 1234;
    size_t max_train_points = 32768;

    /// The trained model: mean (d), R (d x d, row-major), the per-stage
    /// scales (n_stages; used for codes without per_vector_scales, and a
    /// record of the sample's scales otherwise).
    std::vector<float> mean;
    std::vector<float> rotation;
    std::vector<float> stage_scales;
    /// |z - z_hat|^2 / |z|^2 on the sample before each iteration and after
    /// the last (train_iterations + 1 values).
    std::vector<float> train_errors;

    IndexBQRecurrent();
    IndexBQRecurrent(
            idx_t d,
            int n_stages,
            faiss::MetricType metric = faiss::METRIC_L2,
            bool per_vector_scales = true);

    /// Bytes per code for these settings.
    static size_t code_size_for(int d, int n_stages, bool per_vector_scales);
    size_t plane_bytes() const {
        return (size_t(d) + 7) / 8;
    }

    void train(idx_t n, const float* x) override;
    void add(idx_t n, const float* x) override;
    void search(
            idx_t n,
            const float* x,
            idx_t k,
            float* distances,
            idx_t* labels,
            const faiss::SearchParameters* params = nullptr) const override;

    void sa_encode(idx_t n, const float* x, uint8_t* bytes) const override;
    void sa_decode(idx_t n, const uint8_t* bytes, float* x) const override;

    /// z = R (x - mean) for n rows (n x d out).
    void transform(idx_t n, const float* x, float* z) const;

    void check_compatible_for_merge(const faiss::Index& other) const override;
};

} // namespace faiss_bq
