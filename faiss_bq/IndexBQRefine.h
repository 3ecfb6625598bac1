// IndexBQRefine: a fast first stage finds candidates, a refine store ranks
// them.
#pragma once

#include <faiss/Index.h>

namespace faiss_bq {

using idx_t = faiss::Index::idx_t;

/// Per-search options of IndexBQRefine. FAISS 1.7.3's IndexRefine has none.
struct SearchParametersBQRefine : faiss::SearchParameters {
    /// Candidates fetched from the first stage: k * k_factor (rounded up).
    /// 0 keeps the index's k_factor; otherwise it must be >= 1.
    float k_factor = 0;
    /// Error-bound skip (see IndexBQRefine::bound_sigmas). A negative value
    /// keeps the index's setting, 0 turns the skip off.
    float bound_sigmas = -1;
    /// Passed to the first stage (e.g. a SearchParametersBQ). When null, the
    /// first stage gets a plain faiss::SearchParameters with this object's
    /// IDSelector. Its own IDSelector, when set, takes precedence.
    const faiss::SearchParameters* base_params = nullptr;
};

/// What one IndexBQRefine::search() did: candidates the first stage
/// returned, and those the error bound let go un-scored.
struct RefineStats {
    size_t candidates = 0;
    size_t skipped = 0;
};

/** Two-stage search: the first stage (any faiss::Index, usually an IndexBQ
 * or an IndexFromBinary) returns k * k_factor candidates, and the refine
 * store (exact floats by default, or any index with the same vectors in the
 * same order: faiss::IndexScalarQuantizer fp16 / SQ8, ...) re-scores them with
 * its own distance computer. The k best are returned with the refine store's
 * distances, ordered as FAISS orders them (equal distances: smaller id first).
 *
 * Error-bound skip: when the first stage is an IndexBQ with a uniform plan
 * searched with the asymmetric estimator, each candidate's estimate comes with
 * a standard deviation sigma (asymmetric_error_sigma, estimators.h). Once k
 * candidates are re-scored, a candidate whose estimate is worse than the k-th
 * best refined distance by more than bound_sigmas * sigma is not re-scored.
 * With bound_sigmas = 0 every candidate is re-scored.
 *
 * Unlike faiss::IndexRefine, k_factor and the skip can be set per search
 * (SearchParametersBQRefine), and other search parameters (a
 * SearchParametersBQ, an IDSelector) pass through to the first stage.
 */
struct IndexBQRefine : faiss::Index {
    faiss::Index* base_index = nullptr;
    faiss::Index* refine_index = nullptr;
    bool own_fields = false;       ///< delete base_index with this index
    bool own_refine_index = false; ///< delete refine_index with this index

    /// Default candidates per result (k * k_factor are re-scored).
    float k_factor = 4;
    /// Default of the error-bound skip; 0 disables it.
    float bound_sigmas = 0;

    /// Counters of the last search() (all queries). Diagnostics for one
    /// caller at a time: searches running concurrently on the same index
    /// overwrite each other's counters.
    mutable RefineStats last_stats;

    IndexBQRefine();
    /// refine_index null: an exact faiss::IndexFlat of base's d and metric,
    /// owned by this index. Takes ownership of neither argument (set
    /// own_fields / own_refine_index).
    explicit IndexBQRefine(
            faiss::Index* base_index,
            faiss::Index* refine_index = nullptr);
    ~IndexBQRefine() override;

    void train(idx_t n, const float* x) override;
    void add(idx_t n, const float* x) override;
    void reset() override;
    void search(
            idx_t n,
            const float* x,
            idx_t k,
            float* distances,
            idx_t* labels,
            const faiss::SearchParameters* params = nullptr) const override;
    void reconstruct(idx_t key, float* recons) const override;

    /// Throws faiss::FaissException when the two stages disagree on d,
    /// metric or ntotal (the refine store must hold the same vectors in the
    /// same order).
    void check_consistent(const char* where) const;
};

} // namespace faiss_bq
