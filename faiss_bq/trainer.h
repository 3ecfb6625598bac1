// Trainer: analysis -> candidate plans -> model -> held-out check -> plan.
#pragma once

#include <faiss/MetricType.h>
#include <faiss_bq/plan.h>

#include <cstddef>
#include <cstdint>

namespace faiss_bq {

/// Which candidates the trainer may choose from. `automatic` lets the held-out
/// check decide; the other values force the choice (the record is kept).
enum class TransformChoice : uint8_t {
    automatic,
    identity,
    random_rotation,
    pca
};
enum class CenteringChoice : uint8_t { automatic, centered, uncentered };
/// With a byte budget: whether the bits may be allocated per coordinate
/// (fit_allocated_plan) or must be equal (the uniform plans).
enum class AllocationChoice : uint8_t { automatic, allocated, uniform };
/// How the levels are set (Quantization in plan.h): `automatic` weighs EDEN
/// candidates (random rotation, uniform bits) beside the fitted Lloyd-Max
/// ones; `eden` / `lloyd_max` keep only those; `turbo_mse` keeps
/// TurboQuant-MSE candidates only (EDEN's candidates with the MSE scale; not
/// weighed under `automatic`: docs/rotation-quantizers.md says why).
enum class QuantizationChoice : uint8_t {
    automatic,
    lloyd_max,
    eden,
    turbo_mse
};

struct TrainerOptions {
    int nbits = 1;
    /// > 0: bytes of bit planes per code instead of nbits. The candidates are
    /// then the uniform plans of the most bits per coordinate that fit
    /// (identity, rotation) and the allocated plans of fit_allocated_plan in
    /// each basis (identity, rotation, PCA; PCA only when the fitting part
    /// has at least d rows, otherwise left out and the reason says so), all
    /// centred candidates for the asymmetric estimator; the best held-out
    /// recall decides (without the preference for a cheaper tied candidate:
    /// at a budget the bytes set the scan's cost).
    size_t budget_bytes = 0;
    AllocationChoice allocation = AllocationChoice::automatic;
    /// The model is Matryoshka-trained (its leading coordinates carry the
    /// most): at a budget, prefix plans (identity, the first m coordinates
    /// at 1 or 2 bits, the rest not stored) join the allocated candidates.
    bool matryoshka = false;
    /// At a budget, allocated plans also fit the fast-scan layout
    /// (NibbleLayout, codes.h) within budget_bytes, where a 3-bit coordinate
    /// without a 1-bit partner takes 4 bits (IndexBQFastScan sets it).
    bool fast_scan_layout = false;
    /// Every candidate also competes with joint nibbles, the members of each
    /// fast-scan nibble quantized together (BinarizationPlan::joint_levels,
    /// fit_joint_codebooks), and the held-out recall decides between the
    /// two as between any candidates, except that a scalar choice gives way
    /// to its joint twin when they tie within two standard errors (the twin
    /// never fits worse; few fitting rows can make it over-fit, which only
    /// a measured loss shows): IndexBQFastScan sets it. Joint plans
    /// have the asymmetric float-query estimator only (their nibble tables
    /// are not sums over bit planes).
    bool joint_nibbles = false;
    TransformChoice transform = TransformChoice::automatic;
    CenteringChoice centering = CenteringChoice::automatic;
    /// EDEN candidates are uniform plans of the uniform bits (1 or 2, or
    /// the most that fit a budget, up to 4) in the identity and the
    /// random-rotation bases that `transform` allows, centred and uncentred
    /// as `centering` allows; they have no joint twins (fit_joint_codebooks).
    QuantizationChoice quantization = QuantizationChoice::automatic;
    /// The estimator the decision is made for (the index's default).
    Estimator estimator = Estimator::asymmetric;
    /// Exact neighbours of the held-out check use this metric.
    faiss::MetricType metric = faiss::METRIC_L2;
    int seed = 1234;
    /// Share of the training sample held out (never fitted on) for the
    /// check, and caps on the check's base and queries (its cost is
    /// O(queries x base x d)). 2000 queries halve the standard error of
    /// 500: measured on glove100-wink at 2 bits, 500 queries tied fitted
    /// and EDEN levels exactly (0.6736 each) and kept the fitted ones, 0.014
    /// below EDEN on the test queries; 2000 separated them (training 7 ->
    /// 12 s there, 16 -> 21 s on use512-wordnet).
    float heldout_fraction = 0.2f;
    size_t max_heldout_base = 10000;
    size_t max_heldout_queries = 2000;
    /// Rows used for the statistics and to fit thresholds and levels (a
    /// seeded subsample above this): 20k rows pin a 4-level quantizer's
    /// thresholds to about 1% of sigma.
    size_t max_fit_rows = 20000;
    /// Print the trainer's steps to stdout (the analysis, each candidate with
    /// its held-out recall, the choice). Not stored in files: the indexes
    /// set it from their own `verbose` when they train.
    bool verbose = false;

    /// The options of a fast-scan index (IndexBQFastScan, IndexIVFBQFastScan):
    /// allocations that fit its layout and joint-nibble twins.
    void set_fast_scan() {
        fast_scan_layout = true;
        joint_nibbles = true;
    }

    /// The smallest training sample the trainer accepts.
    static constexpr size_t min_train_points = 100;
};

/// Trains a plan on x (n x d, row-major): analysis; every allowed candidate
/// fitted on the fitting part and measured on the held-out queries (searched
/// among all training rows, up to max_heldout_base, as the database holds its
/// training data but queries are new); the best held-out recall chosen, or
/// identity when it is within two standard errors of the best (no rotation
/// to pay for); the choice refitted on all of x (up to max_fit_rows).
/// Throws faiss::FaissException on nbits not in {1, 2} (without a budget), a
/// budget below 1 byte or above 4 bits per coordinate, a budget with the
/// symmetric estimator, n < min_train_points, d <= 0, NaN / Inf in x, or
/// quantization `eden` or `turbo_mse` with allocation `allocated` or the PCA
/// transform (EDEN plans are uniform, in a rotated basis).
BinarizationPlan train_plan(
        size_t n,
        size_t d,
        const float* x,
        const TrainerOptions& options);

} // namespace faiss_bq
