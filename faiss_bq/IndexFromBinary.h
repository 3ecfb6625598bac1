// IndexFromBinary: a float faiss::Index whose storage is any
// faiss::IndexBinary.
#pragma once

#include <faiss/Index.h>
#include <faiss/IndexBinary.h>
#include <faiss_bq/plan.h>
#include <faiss_bq/trainer.h>

#include <vector>

namespace faiss_bq {

using idx_t = faiss::Index::idx_t;

/** The float front end of a binary index (the converse of FAISS's
 * IndexBinaryFromFloat): a trained BinarizationPlan turns each float vector
 * into the bit planes of its code (codes.h, without the per-vector factors),
 * and the binary index (faiss_bq's IndexBinaryFlatFast, FAISS's
 * IndexBinaryIVF, IndexBinaryHNSW, IndexBinaryHash, ...) stores and searches
 * them; queries are binarized the same way. The binary index's d must be
 * the plan's code bits, 8 * nbits * ceil(d / 8).
 *
 * Distances are the binary index's Hamming distance h between the bit planes:
 * h itself for METRIC_L2, and code_bits - 2 h for METRIC_INNER_PRODUCT (so
 * larger is better, as FAISS's containers expect; at 1 bit this is <s_x, s_q>
 * on the +-1 levels, IndexBQ's symmetric score). Use IndexBQRefine on top to
 * rank candidates by the true metric.
 *
 * train() runs the trainer for the symmetric estimator when the plan is not
 * trained yet, then trains the binary index (IVF centroids) on the binarized
 * sample. An IDSelector is passed to binary indexes that take search
 * parameters (IndexBinaryFlatFast); for FAISS's, which reject them in 1.7.3,
 * the search is repeated with k growing (x4) until k selected results or
 * every vector are seen.
 */
struct IndexFromBinary : faiss::Index {
    int nbits = 1;
    /// Used by train(); nbits, metric and the estimator (symmetric) are the
    /// index's.
    TrainerOptions trainer;
    BinarizationPlan plan;
    faiss::IndexBinary* index = nullptr;
    bool own_fields = false; ///< delete index with this one

    IndexFromBinary();
    /// d: dimension of the float vectors. Takes ownership of index only if
    /// own_fields is set.
    IndexFromBinary(
            faiss::IndexBinary* index,
            idx_t d,
            int nbits = 1,
            faiss::MetricType metric = faiss::METRIC_L2);
    /// Around an already trained plan (nbits and d are the plan's).
    IndexFromBinary(
            faiss::IndexBinary* index,
            const BinarizationPlan& plan,
            faiss::MetricType metric = faiss::METRIC_L2);
    ~IndexFromBinary() override;

    /// Bits per stored code: 8 * nbits * ceil(d / 8).
    int code_bits() const;
    /// The bit planes of n vectors, code_bits() / 8 bytes each.
    void binarize(idx_t n, const float* x, uint8_t* bits) const;

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
    size_t remove_ids(const faiss::IDSelector& sel) override;

   private:
    void search_binary(
            idx_t n,
            const uint8_t* bits,
            idx_t k,
            int32_t* distances,
            idx_t* labels,
            faiss::IDSelector* sel) const;
};

} // namespace faiss_bq
