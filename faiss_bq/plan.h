// BinarizationPlan: how float vectors become bits, and the evidence for it.
#pragma once

#include <faiss_bq/analysis.h>

#include <cstdint>
#include <string>
#include <vector>

namespace faiss_bq {

/// The orthogonal map applied to the centred vector before quantization.
enum class Transform : uint8_t {
    identity = 0,        ///< axis-preserving: coordinates keep their meaning
    random_rotation = 1, ///< seeded random orthogonal matrix (spreads energy)
};

/// How a query is compared with stored codes.
enum class Estimator : uint8_t {
    /// The query stays float (or is quantized to 4-8 bit planes); with the
    /// per-vector factors the score estimates the true metric.
    asymmetric = 0,
    /// The query is binarized with the same plan; the score is a code-space
    /// distance (Hamming for 1 bit), not an estimate of the metric.
    symmetric = 1,
};

const char* transform_name(Transform t);
const char* estimator_name(Estimator e);

/// One candidate the trainer weighed: the model's prediction and the
/// held-out measurement.
struct CandidateReport {
    Transform transform = Transform::identity;
    bool centered = false;
    Estimator estimator = Estimator::asymmetric;
    /// The model, on the training part (see trainer.cpp): the variance of
    /// the score error across a query's candidates relative to that of the
    /// true inner products. 0 is lossless, 1 no better than a constant.
    float predicted_loss = 0;
    /// 10-recall@10 against exact neighbours on the held-out part.
    float heldout_recall = 0;
    /// Standard error of heldout_recall over the held-out queries.
    float heldout_recall_stderr = 0;
};

/// y = R (x - c), then per coordinate a (2^nbits)-level scalar quantizer.
/// Plain, printable data. Same training data and seed give the same plan, bit
/// for bit, with the same BLAS library and BLAS thread count (OpenBLAS may
/// round a product differently when it splits it across more threads).
struct BinarizationPlan {
    int d = 0;
    int nbits = 1; ///< bits per coordinate, 1 or 2
    Transform transform = Transform::identity;
    bool centered = false;
    int seed = 0; ///< seed of the random rotation (faiss::RandomRotationMatrix)

    std::vector<float> center;   ///< d; zeros when not centred
    std::vector<float> rotation; ///< d x d row-major R; empty for identity
    /// d x (2^nbits - 1), ascending per coordinate: level index of a value v
    /// is the number of thresholds <= v (so 1 bit at threshold 0 is FAISS's
    /// x >= 0 sign bit)
    std::vector<float> thresholds;
    /// d x 2^nbits reconstruction levels per coordinate (centroids of the
    /// cells on the training sample). Shared by all coordinates under a
    /// rotation, per coordinate on the axes.
    std::vector<float> levels;

    // ---- evidence
    DatasetAnalysis analysis;
    std::vector<CandidateReport> candidates;
    Estimator decided_for = Estimator::asymmetric;
    bool forced = false;
    std::string reason;

    bool is_trained() const {
        return d > 0 && !levels.empty();
    }
    int n_levels() const {
        return 1 << nbits;
    }

    /// y = R (x - c) for n vectors (one sgemm under a rotation).
    void apply(size_t n, const float* x, float* y) const;
    /// x = R^T y + c, the inverse of apply().
    void apply_inverse(size_t n, const float* y, float* x) const;

    /// Level index of value v of transformed coordinate j, in [0, 2^nbits).
    int quantize(size_t j, float v) const {
        const float* t = thresholds.data() + j * (n_levels() - 1);
        int q = 0;
        for (int l = 0; l < n_levels() - 1; l++) {
            q += v >= t[l];
        }
        return q;
    }
    /// Reconstruction level of index q for transformed coordinate j.
    float level(size_t j, int q) const {
        return levels[j * n_levels() + q];
    }

    /// A readable report: the statistics, the plan, the candidates, the reason.
    std::string report() const;
};

/// Fits one plan with the given shape on x (n x d): centre (mean or zero),
/// rotation (from seed), then 1-D Lloyd-Max thresholds and levels per
/// coordinate (identity) or pooled over coordinates (rotation). Uncentred
/// plans keep a threshold at 0, so 1 uncentred bit is the common sign bit.
/// The evidence fields are left empty (the trainer fills them).
BinarizationPlan fit_plan(
        size_t n,
        size_t d,
        const float* x,
        int nbits,
        Transform transform,
        bool centered,
        int seed);

} // namespace faiss_bq
