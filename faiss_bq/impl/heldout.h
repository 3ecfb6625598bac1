// The held-out check both trainers decide by: train_plan (trainer.h) weighs
// binarization plans with it, train_family (IndexBQFamily.h) whole indexes.
#pragma once

#include <faiss/Index.h>

#include <cstddef>
#include <vector>

namespace faiss_bq {

/// k of the held-out check's k-recall@k.
constexpr size_t heldout_recall_k = 10;

/// A seeded split of a training sample, and the check on its held-out part.
/// Rows perm[0, n_heldout) are never fitted on; the fitting rows are the next
/// n_fit. The check's base is rows perm[0, nb) (the held-out rows first, then
/// fitting rows: a database holds its training data, but queries are new),
/// its queries the first nq of them, each query's own row excluded from its
/// neighbours; gt holds their exact top heldout_recall_k.
struct HeldOut {
    size_t d = 0;
    std::vector<int> perm;
    size_t n_heldout = 0, n_fit = 0;
    size_t nb = 0, nq = 0;
    std::vector<float> x;                ///< nb x d, rows perm[0, nb)
    std::vector<faiss::Index::idx_t> gt; ///< nq x heldout_recall_k
    faiss::MetricType metric = faiss::METRIC_L2;

    /// n_heldout = clamp(n * fraction, 20, max_base), n_fit = min(n -
    /// n_heldout, max_fit), nb = min(n, max_base), nq = min(n_heldout,
    /// max_queries). The caller checks n (at least 20 + 1 rows).
    HeldOut(size_t n,
            size_t d,
            const float* x,
            faiss::MetricType metric,
            int seed,
            float fraction,
            size_t max_base,
            size_t max_queries,
            size_t max_fit);

    /// Rows perm[first, first + count) of x (n x d).
    std::vector<float> rows(const float* x, size_t first, size_t count) const;
    /// The fitting rows of x.
    std::vector<float> fit_rows(const float* x) const {
        return rows(x, n_heldout, n_fit);
    }

    /// Per-query recall of `found` (nq x heldout_recall_k ids).
    std::vector<float> recalls(
            const std::vector<faiss::Index::idx_t>& found) const;
    /// Per-query recall of an index that holds the check's base (nb rows, in
    /// order) and is searched with its queries.
    std::vector<float> recalls(const faiss::Index& index) const;
};

/// The top heldout_recall_k of nq queries among nb vectors (queries are the
/// first nq vectors of vb's set: query i's own id i is skipped), larger
/// inner products or smaller L2 distances first.
std::vector<faiss::Index::idx_t> top_k_excluding_self(
        size_t nq,
        size_t nb,
        size_t dim,
        const float* vq,
        const float* vb,
        bool l2);

/// Drops query i's own id from its row of k ids (k >= heldout_recall_k + 1)
/// and keeps the first heldout_recall_k others.
std::vector<faiss::Index::idx_t> drop_self(
        size_t nq,
        size_t k,
        const std::vector<faiss::Index::idx_t>& ids);

float mean_of(const std::vector<float>& v);
/// Standard error of the mean of v (per-query recalls or their differences).
float stderr_of(const std::vector<float>& v);
/// a measures no worse than b within two standard errors, paired over the
/// same queries: mean(b - a) <= 2 stderr(b - a).
bool tied_or_better(const std::vector<float>& a, const std::vector<float>& b);

} // namespace faiss_bq
