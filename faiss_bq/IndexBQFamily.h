// IndexBQFamily: the trainer's choice among whole families of codes at the
// same bits per coordinate (issue 16): faiss_bq's binarization plans
// (IndexBQ), BEBR recurrent binarization (IndexBQRecurrent), BlockQuant
// (IndexBlockQuant) and TurboQuant-prod (IndexBQTurbo). Factory
// "BQ<n>_family" / "BQ<B>B_family" (docs/family.md).
#pragma once

#include <faiss/Index.h>

#include <faiss_bq/IndexBQ.h>

#include <cstddef>
#include <string>
#include <vector>

namespace faiss_bq {

/// One family's candidate as the held-out check measured it.
struct FamilyCandidateReport {
    /// The candidate's factory string ("BQ1", "BQR1", "BKQ8x8", "BQT2").
    std::string key;
    /// Bytes per vector of its codes, factors included.
    size_t code_size = 0;
    /// Mean and standard error of the per-query 10-recall@10 on the held-out
    /// queries (0 when left out).
    float heldout_recall = 0, heldout_recall_stderr = 0;
    /// Training on the fitting rows, seconds.
    double train_seconds = 0;
    /// Why the candidate was left out (its FaissException), else empty.
    std::string left_out;
};

/// The factory strings of the candidates for an IndexBQ head ("BQ<n>" or
/// "BQ<B>B") at dimension d: the head itself, then for b = its bytes of bit
/// planes / ceil(d / 8) whole bits per coordinate: BQR<b> (b in 1..4),
/// BKQ<8/b>x<m> (b in 1, 2, 4; m = 8, 7, 5, the measured best of
/// docs/blockquant.md) and BQT<b> (b in 2..4), each with its factory's
/// defaults (asymmetric float-query estimators, trained).
std::vector<std::string> family_candidates(
        int d,
        int nbits,
        size_t budget_bytes);

/** The trainer's choice among families, as one faiss::Index.
 *
 * train() splits the sample as train_plan does (impl/heldout.h: seeded,
 * the same defaults), builds every candidate of family_candidates() with
 * faiss_bq::index_factory, trains it on the fitting rows, adds the check's
 * base and searches its queries. The best mean held-out 10-recall@10 wins,
 * except that the IndexBQ candidate is kept when it is within two standard
 * errors of the best (paired over the same queries): it is the one with IVF,
 * HNSW, fast scan, a refine error bound and the symmetric estimator. The
 * winner is then trained on all of x and holds the vectors; every other
 * method (add, search, range_search, reconstruct, sa_encode, remove_ids,
 * merge_from, ...) forwards to it. `candidates`, `chosen` and `reason`
 * say what was measured and why.
 *
 * A candidate whose construction or training throws a FaissException (a
 * sample too small for it, say) is left out with the message; the IndexBQ
 * candidate's exception propagates.
 */
struct IndexBQFamily : faiss::Index {
    /// The IndexBQ candidate: bits per coordinate (1 or 2), or 0 with a
    /// budget of bytes of bit planes (as IndexBQ).
    int nbits = 1;
    size_t budget_bytes = 0;

    /// The held-out check (as TrainerOptions; the same seed and defaults).
    int seed = 1234;
    float heldout_fraction = 0.2f;
    size_t max_heldout_base = 10000;
    size_t max_heldout_queries = 2000;
    /// Fitting rows given to each candidate (a seeded subset beyond: the
    /// largest any candidate uses, IndexBlockQuant's 65536).
    size_t max_fit_rows = 65536;

    /// The chosen index (owned), null until trained.
    faiss::Index* index = nullptr;
    /// Every candidate in family_candidates() order, and the chosen one's
    /// position.
    std::vector<FamilyCandidateReport> candidates;
    size_t chosen = 0;
    /// Why: the measured recalls, the rule that decided, the winner's
    /// limits, and a warning when few true neighbours are kept.
    std::string reason;

    IndexBQFamily();
    IndexBQFamily(
            idx_t d,
            int nbits,
            faiss::MetricType metric = faiss::METRIC_L2);
    IndexBQFamily(
            idx_t d,
            CodeBudget budget,
            faiss::MetricType metric = faiss::METRIC_L2);
    ~IndexBQFamily() override;
    IndexBQFamily(const IndexBQFamily&) = delete;
    IndexBQFamily& operator=(const IndexBQFamily&) = delete;

    /// Throws faiss::FaissException naming the values unless d > 0, the
    /// metric is L2 or inner product, and either nbits is 1 or 2 (budget 0)
    /// or nbits is 0 and the budget is 1 .. max_budget_bytes(d).
    static void check_settings(
            idx_t d,
            int nbits,
            size_t budget_bytes,
            faiss::MetricType metric);
    /// "BQ<n>" or "BQ<B>B": the IndexBQ candidate's factory string.
    std::string head() const;
    /// The chosen index; throws if not trained.
    const faiss::Index& chosen_index() const;
    faiss::Index& chosen_index();

    /// Throws faiss::FaissException naming the values on n below
    /// TrainerOptions::min_train_points, NaN / Inf in x, a held-out fraction
    /// outside (0, 1), or an index holding vectors.
    void train(idx_t n, const float* x) override;
    void add(idx_t n, const float* x) override;
    void add_with_ids(idx_t n, const float* x, const idx_t* xids) override;
    void search(
            idx_t n,
            const float* x,
            idx_t k,
            float* distances,
            idx_t* labels,
            const faiss::SearchParameters* params = nullptr) const override;
    void range_search(
            idx_t n,
            const float* x,
            float radius,
            faiss::RangeSearchResult* result,
            const faiss::SearchParameters* params = nullptr) const override;
    void reset() override;
    size_t remove_ids(const faiss::IDSelector& sel) override;
    void reconstruct(idx_t key, float* recons) const override;
    void reconstruct_n(idx_t i0, idx_t ni, float* recons) const override;
    faiss::DistanceComputer* get_distance_computer() const override;
    size_t sa_code_size() const override;
    void sa_encode(idx_t n, const float* x, uint8_t* bytes) const override;
    void sa_decode(idx_t n, const uint8_t* bytes, float* x) const override;
    /// other: an IndexBQFamily whose chosen index merges into this one's.
    void merge_from(faiss::Index& other, idx_t add_id = 0) override;
    void check_compatible_for_merge(const faiss::Index& other) const override;
};

} // namespace faiss_bq
