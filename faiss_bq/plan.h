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
    /// principal axes of the training sample (eigenvectors of its
    /// covariance, largest eigenvalue first): concentrates energy, so that a
    /// bit allocation can follow it
    pca = 2,
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

/// How a plan's thresholds and levels are set.
enum class Quantization : uint8_t {
    /// Lloyd-Max thresholds and levels fitted on the training sample, per
    /// coordinate (identity, PCA) or pooled (rotation).
    lloyd_max = 0,
    /// EDEN (Vargaftik et al., ICML 2022): each vector's transformed residual
    /// y = R (x - c) is scaled to norm sqrt(d) before its thresholds, and
    /// every coordinate has the Lloyd-Max quantizer of N(0, 1), the
    /// distribution of a coordinate of a randomly rotated vector of norm
    /// sqrt(d) (gaussian_lloyd_max): data-oblivious but for the centre. The
    /// code's estimate_scale |r|^2 / <r_hat, r> (codes.h) is then EDEN's
    /// unbiased scale.
    eden = 1,
    /// TurboQuant-MSE (Zandieh et al., 2025): EDEN's encoder (the same
    /// per-vector scaling to norm sqrt(d) and Gaussian Lloyd-Max levels),
    /// but the code's estimate_scale is the MSE scale |r| / sqrt(d): the
    /// reconstruction estimate_scale * r_hat is the quantizer's nearest
    /// point to r, not an unbiased estimate of it (inner products shrink by
    /// about 1 - the distortion of the levels).
    turbo_mse = 2,
};

const char* transform_name(Transform t);
const char* estimator_name(Estimator e);
const char* quantization_name(Quantization q);

/// The largest byte budget of a plan's bit planes in dimension d: 4 bits
/// per coordinate, as 4 planes of ceil(d / 8) bytes (a uniform 4-bit plan,
/// EDEN's or Lloyd-Max's, when d is not a multiple of 8).
inline size_t max_budget_bytes(size_t d) {
    return 4 * ((d + 7) / 8);
}

/// One candidate the trainer weighed: the model's prediction and the
/// held-out measurement.
struct CandidateReport {
    Transform transform = Transform::identity;
    bool centered = false;
    Estimator estimator = Estimator::asymmetric;
    /// Bits per coordinate of a uniform plan; the largest b_j of an
    /// allocated one.
    int nbits = 1;
    /// Bits allocated per coordinate (fit_allocated_plan) rather than equal.
    bool allocated = false;
    /// An allocated candidate that is a Matryoshka prefix (the first m
    /// coordinates at nbits bits, the rest at 0; TrainerOptions::matryoshka).
    bool prefix = false;
    /// With joint nibbles (TrainerOptions::joint_nibbles): the twin of the
    /// scalar candidate before it.
    bool joint = false;
    Quantization quantization = Quantization::lloyd_max;
    /// Allocated candidates: the relative quantization error predicted on
    /// the fitting rows and measured on the held-out rows
    /// (BinarizationPlan::distortion); -1 when not applicable.
    float predicted_distortion = -1;
    float heldout_distortion = -1;
    /// The model, on the training part (see trainer.cpp): the variance of
    /// the score error across a query's candidates relative to that of the
    /// true inner products. 0 is lossless, 1 no better than a constant.
    float predicted_loss = 0;
    /// 10-recall@10 against exact neighbours on the held-out part.
    float heldout_recall = 0;
    /// Standard error of heldout_recall over the held-out queries.
    float heldout_recall_stderr = 0;
};

/// Where the exact top-10 neighbours rank under a plan's estimator, measured
/// by the trainer's held-out check (the chosen candidate as fitted, queries
/// the candidates were not fitted on): recall[i] is the share of the true
/// top-10 within the first candidates[i] of the estimator's ranking, in a
/// base of base_rows vectors (the empirical distribution of their ranks, on
/// an ascending grid of counts up to base_rows). The count that holds a
/// share r grows with the base as (n / base_rows)^a(r); growth[i] is a at
/// share recall[i], fitted (log-log least squares) on 1/4, 1/2 and all of
/// the held-out base (0 when the base is too small to fit it). Exact
/// re-ranking of K = k_factor * 10 candidates gives the share within K as
/// 10-recall@10.
struct RecallProfile {
    size_t base_rows = 0;
    std::vector<float> candidates; ///< ascending counts, the last base_rows
    std::vector<float> recall;     ///< share within each count, ascending
    std::vector<float> growth;     ///< per count, in [0, 1]

    bool empty() const {
        return candidates.empty();
    }
    /// Share of the true top-10 within the first k candidates among n rows.
    double recall_at(double k, double n) const;
    /// The fewest candidates holding a share `recall` of them among n rows.
    double candidates_for(double recall, double n) const;
};

/// y = R (x - c), then coordinate j of y quantized to 2^b_j levels (b_j = 0:
/// not stored, reconstructed as its training mean). Uniform plans have b_j =
/// nbits everywhere; allocated plans spread a byte budget by measured
/// distortion (fit_allocated_plan). Plain, printable data. Same training data
/// and seed give the same plan, bit for bit, with the same BLAS library and
/// BLAS thread count (OpenBLAS may round a product differently when it splits
/// it across more threads).
struct BinarizationPlan {
    int d = 0;
    /// Bits per coordinate of a uniform plan (1..4); for an allocated plan the
    /// largest b_j. Sets the stride of thresholds and levels.
    int nbits = 1;
    Transform transform = Transform::identity;
    bool centered = false;
    int seed = 0; ///< seed of the random rotation (faiss::RandomRotationMatrix)
    /// Fitted levels, or EDEN's / TurboQuant-MSE's: y scaled per vector to
    /// norm sqrt(d), fixed Gaussian levels (uniform plans only; no joint
    /// nibbles).
    Quantization quantization = Quantization::lloyd_max;

    std::vector<float> center;   ///< d; zeros when not centred
    std::vector<float> rotation; ///< d x d row-major R; empty for identity
    /// d x (2^nbits - 1), ascending per coordinate: level index of a value v
    /// is the number of thresholds <= v among the first 2^b_j - 1 (so 1 bit
    /// at threshold 0 is FAISS's x >= 0 sign bit); the rest is padding
    std::vector<float> thresholds;
    /// d x 2^nbits reconstruction levels per coordinate (centroids of the
    /// cells on the training sample; the first 2^b_j are used). Shared by all
    /// coordinates of a uniform plan under a rotation, per coordinate
    /// otherwise.
    std::vector<float> levels;
    /// d: bits b_j in 0..4 of each transformed coordinate.
    std::vector<uint8_t> bits;
    /// Joint codebooks of the fast-scan nibbles (TrainerOptions::
    /// joint_nibbles; fit_joint_codebooks in codes.h), or empty: each
    /// coordinate its own scalar quantizer. d x 16: coordinate j's value in
    /// each of the 16 codewords of its nibble (NibbleLayout, codes.h). The
    /// members of a nibble are quantized together to the nearest codeword v
    /// of the 2^(their bits) in use, and v is stored as it would be for
    /// scalar levels: member j's level index is (v >> shift) & (2^b_j - 1).
    /// So the codes keep their layouts, and a nibble's 16-entry look-up
    /// table holds <codeword, y> instead of a sum of scalar levels.
    /// Coordinates at 0 bits keep their constant level.
    std::vector<float> joint_levels;
    /// Bytes of bit planes per code: the groups of codes.h fill at most this
    /// many, zero padding after. nbits * ceil(d / 8) for a uniform plan.
    size_t code_bytes = 0;

    // ---- evidence
    DatasetAnalysis analysis;
    std::vector<CandidateReport> candidates;
    Estimator decided_for = Estimator::asymmetric;
    bool forced = false;
    std::string reason;
    /// Allocated plans: the share of the transformed variance in coordinates
    /// given at least one bit, and the quantization error sum_j E(y_j -
    /// Q(y_j))^2 / sum_j Var(y_j) predicted on the fitting sample (the sum of
    /// the measured per-component distortions) and measured on held-out rows
    /// (-1: not measured).
    float energy_kept = 0;
    float predicted_distortion = 0;
    float heldout_distortion = -1;
    /// Ranks of the true neighbours on the held-out part (empty for plans
    /// that did not come from the trainer).
    RecallProfile recall_profile;

    /// The k_factor a refine stage (IndexBQRefine, ",RFlat") needs for a
    /// 10-recall@10 of `recall` with exact re-ranking over ntotal vectors,
    /// from recall_profile (extrapolated past its base), for the nearest
    /// whole number of candidates (10 * k_factor): at least 1. Throws
    /// faiss::FaissException when recall is outside (0, 1), ntotal < 1, or
    /// the plan has no profile.
    float k_factor_for(float recall, int64_t ntotal) const;
    /// The 10-recall@10 to expect from the codes alone (k_factor 1), or after
    /// exact re-ranking of k_factor * 10 candidates, over ntotal vectors.
    /// Throws when k_factor < 1, ntotal < 1 or the plan has no profile.
    float expected_recall(int64_t ntotal, float k_factor = 1) const;

    bool is_trained() const {
        return d > 0 && !levels.empty();
    }
    int n_levels() const {
        return 1 << nbits;
    }
    /// Every coordinate has nbits bits (the foundation's plans).
    bool is_uniform() const;
    /// Nibbles are quantized jointly (joint_levels).
    bool is_joint() const {
        return !joint_levels.empty();
    }
    /// Number of coordinates with b bits, b = 0..4.
    std::vector<int> bits_histogram() const;

    /// y = R (x - c) for n vectors (one sgemm under a rotation).
    void apply(size_t n, const float* x, float* y) const;
    /// x = R^T y + c, the inverse of apply().
    void apply_inverse(size_t n, const float* y, float* x) const;

    /// The factor by which a transformed vector y (d values) is multiplied
    /// before quantize(): sqrt(d) / |y| under EDEN and TurboQuant-MSE (0 for
    /// y = 0), else 1.
    float unit_scale(const float* y) const;
    /// Level index of value v of transformed coordinate j, in [0, 2^b_j)
    /// (v already multiplied by unit_scale(y)).
    int quantize(size_t j, float v) const {
        const float* t = thresholds.data() + j * (n_levels() - 1);
        const int nt = (1 << bits[j]) - 1;
        int q = 0;
        for (int l = 0; l < nt; l++) {
            q += v >= t[l];
        }
        return q;
    }
    /// Reconstruction level of index q for transformed coordinate j.
    float level(size_t j, int q) const {
        return levels[j * n_levels() + q];
    }

    /// Quantization error of n vectors x in the transformed space, relative
    /// to their variance around the plan's centre: sum |y - Q(y)|^2 / sum
    /// |y - mean(y)|^2 with y = R (x - c) (no per-vector rescale; Q the
    /// joint quantizer of a joint plan).
    double distortion(size_t n, const float* x) const;

    /// A readable report: the statistics, the plan, the candidates, the reason.
    std::string report() const;
};

/// Fits one uniform plan with the given shape on x (n x d): centre (mean or
/// zero), basis (rotation from seed, or the principal axes of x), then 1-D
/// Lloyd-Max thresholds and levels per coordinate (identity, PCA) or pooled
/// over coordinates (rotation). nbits in 1..4. Uncentred plans keep a
/// threshold at 0, so 1 uncentred bit is the common sign bit. The evidence
/// fields are left empty (the trainer fills them). PCA needs n >= d.
BinarizationPlan fit_plan(
        size_t n,
        size_t d,
        const float* x,
        int nbits,
        Transform transform,
        bool centered,
        int seed);

/// The Lloyd-Max quantizer of the standard normal N(0, 1) with 2^nbits
/// levels (nbits in 1..4): thresholds (2^nbits - 1) the midpoints of adjacent
/// levels, levels (2^nbits) the conditional means of their cells, iterated
/// from equal-probability cells to a fixed point in closed form (Max 1960:
/// 1 bit +-0.7979; 2 bits +-0.4528, +-1.510).
void gaussian_lloyd_max(int nbits, float* thresholds, float* levels);

/// Fits an EDEN plan (Quantization::eden), or with quantization
/// turbo_mse a TurboQuant-MSE plan, on x (n x d): the centre (the mean, or
/// zero uncentred) and the basis (a seeded random rotation, or identity)
/// from the sample, the levels from gaussian_lloyd_max for every coordinate.
/// nbits in 1..4. Throws faiss::FaissException on nbits out of range, the
/// PCA basis (EDEN's levels assume rotated coordinates), quantization
/// lloyd_max, an empty sample or NaN / Inf in x.
BinarizationPlan fit_eden_plan(
        size_t n,
        size_t d,
        const float* x,
        int nbits,
        Transform transform,
        bool centered,
        int seed,
        Quantization quantization = Quantization::eden);

/// Fits a centred plan in the given basis with bits allocated per coordinate
/// under a budget of code_bytes bytes of bit planes: each coordinate's
/// Lloyd-Max quantizer is fitted at 1..4 bits and its distortion D_j(b)
/// measured on x; then, from b_j = 0 (D_j(0) = its variance), one bit at a
/// time goes to the coordinate with the largest gain D_j(b_j) - D_j(b_j + 1)
/// whose move keeps the grouped layout (codes.h), and with fit_nibbles the
/// fast-scan layout too (NibbleLayout), within code_bytes: greedy
/// reverse water-filling, optimal for convex D_j. Coordinates with no
/// variance at float precision (var <= FLT_EPSILON * the largest) never get
/// bits. Throws faiss::FaissException when code_bytes < 1, code_bytes * 8 >
/// 4 d, n < d under PCA, or x holds NaN / Inf.
/// prefix_bits in 1..4 replaces the greedy allocation by a Matryoshka
/// prefix: the first m coordinates at prefix_bits bits (m the most whose
/// planes fit code_bytes, at most d), the others at 0, in the identity basis
/// only (a Matryoshka-trained model orders its coordinates by importance).
BinarizationPlan fit_allocated_plan(
        size_t n,
        size_t d,
        const float* x,
        Transform basis,
        size_t code_bytes,
        int seed,
        int prefix_bits = 0,
        bool fit_nibbles = false);

/// Bytes of bit planes of the grouped layout of an allocation: sum over b of
/// b * ceil(#{j : b_j = b} / 8).
size_t grouped_plane_bytes(const std::vector<int>& bits_histogram);

/// Bytes per vector of the fast-scan layout of an allocation (NibbleLayout
/// in codes.h: 4-bit sub-codes of whole coordinates; a 3-bit coordinate
/// without a 1-bit partner takes a whole sub-code).
size_t nibble_layout_bytes(const std::vector<int>& bits_histogram);

} // namespace faiss_bq
