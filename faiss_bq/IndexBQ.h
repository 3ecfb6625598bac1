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
    IndexBQ(idx_t d,
            int nbits = 1,
            faiss::MetricType metric = faiss::METRIC_L2);
    /// code_size = budget.bytes + CodeLayout::factor_bytes; budget.bytes in
    /// [1, d / 2] (at most 4 bits per coordinate).
    IndexBQ(idx_t d,
            CodeBudget budget,
            faiss::MetricType metric = faiss::METRIC_L2);
    /// An index around an already trained plan.
    IndexBQ(const BinarizationPlan& plan,
            faiss::MetricType metric = faiss::METRIC_L2);

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
    faiss::FlatCodesDistanceComputer* get_FlatCodesDistanceComputer()
            const override;
    faiss::FlatCodesDistanceComputer* get_distance_computer(
            Estimator estimator,
            int query_bits) const;

    void check_compatible_for_merge(const faiss::Index& other) const override;
};

/// Work of IndexBQ's distance computers, summed as each is destroyed (as
/// faiss::hnsw_stats for HNSW search): graph construction's symmetric_dis
/// calls and the codes they decoded.
struct IndexBQStats {
    size_t n_symmetric_dis = 0;
    size_t n_decoded = 0;
    void reset();
    void add(size_t symmetric_dis, size_t decoded);
};
extern IndexBQStats indexBQ_stats;

/** One standard deviation of the asymmetric estimator's error, for each
 * query i < n and candidate labels[i * k + j] (an id of this index; -1 gives
 * 0), written to sigmas[i * k + j].
 *
 * The estimate of <r, y> (r = R (x - c), y = R (q - c)) is <a r_hat, y>,
 * a = estimate_scale. Its error is <e, y> with e = a r_hat - r, orthogonal
 * to r (that is what a = |r|^2 / <r_hat, r> means), and
 * |e|^2 = |a r_hat|^2 - |r|^2 comes from the code. Model: e spreads over the
 * coordinates as the quantization error does, in proportion to w_j, the
 * square of coordinate j's level range, with a random sign pattern; then
 * sigma^2 = |e|^2 sum_j w_j y_j^2 / sum_j w_j. Under a rotation the w_j are
 * equal and this is RaBitQ's |e| |y| / sqrt(d) (e in a random direction).
 * Doubled for METRIC_L2, whose estimate is |r|^2 + |y|^2 - 2 <a r_hat, y>.
 * Measured in test_IndexBQRefine (ErrorSigmasCoverTheEstimateError): under a
 * rotation about 0.3% of candidates miss by more than 3 sigma, as a Gaussian
 * would. O(d) per candidate, one plan.apply per query. Uniform plans only
 * (an allocated plan's 0-bit coordinates carry error the levels do not
 * show): throws faiss::FaissException for an allocated plan.
 */
void asymmetric_error_sigmas(
        const IndexBQ& index,
        idx_t n,
        const float* x,
        idx_t k,
        const idx_t* labels,
        float* sigmas);

} // namespace faiss_bq
