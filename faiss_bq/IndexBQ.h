// IndexBQ: float vectors stored as bit-plane codes of a trained plan (1 or 2
// bits per coordinate, or bits allocated per coordinate at a byte budget).
#pragma once

#include <faiss/IndexFlatCodes.h>
#include <faiss_bq/codes.h>
#include <faiss_bq/plan.h>
#include <faiss_bq/trainer.h>

namespace faiss_bq {

using idx_t = faiss::Index::idx_t;

/// Per-search options of IndexBQ (and the IDSelector, inherited).
struct SearchParametersBQ : faiss::SearchParameters {
    Estimator estimator = Estimator::asymmetric;
    /// Asymmetric only: 0 keeps the query float (look-up tables); 4..8
    /// quantizes it to that many bit planes scored with popcounts.
    int query_bits = 0;
};

/** Binary quantization of float vectors, trained per dataset.
 *
 * train() runs the trainer (analysis, candidates, held-out check) and stores
 * the plan; add() encodes; search() scans every code.
 *
 * Distances returned by search():
 *  - asymmetric estimator: an estimate of the metric itself, the squared L2
 *    distance (METRIC_L2) or the inner product (METRIC_INNER_PRODUCT)
 *    between the query and the stored vector;
 *  - symmetric estimator: a code-space value on the odd-integer levels s of
 *    code_values(): |s_x - s_q|^2 / 4 for METRIC_L2 (the Hamming distance
 *    for 1 bit) and <s_x, s_q> for METRIC_INNER_PRODUCT (d - 2 Hamming).
 */
/// A budget of bytes of bit planes per code (IndexBQ's budget constructor).
struct CodeBudget {
    size_t bytes = 0;
};

struct IndexBQ : faiss::IndexFlatCodes {
    /// Bits per coordinate of a uniform index (1 or 2); 0 for a budget index.
    int nbits = 1;
    /// > 0: the codes hold this many bytes of bit planes (plus the factors)
    /// and train() chooses among uniform and allocated plans that fit
    /// (TrainerOptions::budget_bytes).
    size_t budget_bytes = 0;
    /// Used by train(); nbits, metric and estimator are taken from the index.
    TrainerOptions trainer;
    BinarizationPlan plan;
    /// Defaults of search() when no SearchParametersBQ is given.
    Estimator estimator = Estimator::asymmetric;
    int query_bits = 0;

    IndexBQ();
    IndexBQ(idx_t d, int nbits = 1, faiss::MetricType metric = faiss::METRIC_L2);
    /// code_size = budget.bytes + CodeLayout::factor_bytes; budget.bytes in
    /// [1, d / 2] (at most 4 bits per coordinate).
    IndexBQ(idx_t d, CodeBudget budget, faiss::MetricType metric = faiss::METRIC_L2);
    /// An index around an already trained plan.
    IndexBQ(const BinarizationPlan& plan, faiss::MetricType metric = faiss::METRIC_L2);

    /// The layout of the trained plan's codes.
    CodeLayout layout() const {
        return CodeLayout(plan);
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

    /// Distance computer of the default estimator (used by graph indexes).
    faiss::FlatCodesDistanceComputer* get_FlatCodesDistanceComputer() const override;
    faiss::FlatCodesDistanceComputer* get_distance_computer(
            Estimator estimator,
            int query_bits) const;

    void check_compatible_for_merge(const faiss::Index& other) const override;
};

} // namespace faiss_bq
