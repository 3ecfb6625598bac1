// IndexIVFBQ: an inverted file (faiss::IndexIVF) whose lists hold a trained
// plan's codes of the residuals x - c_list.
#pragma once

#include <faiss/IndexIVF.h>
#include <faiss_bq/IndexBQ.h>

namespace faiss_bq {

/** Binary quantization under a coarse quantizer, as FAISS's IndexIVFPQ is
 * to IndexPQ: any faiss::Index assigns a vector to its list l, and the list
 * stores the code of r = x - c_l under one plan trained (train_residual:
 * analysis, candidates, held-out check) on the residuals of the training
 * sample. Everything of faiss::IndexIVF works: FAISS's InvertedLists
 * (ArrayInvertedLists, OnDiskInvertedLists), nprobe and max_codes per
 * search (faiss::SearchParametersIVF), IDSelector, search_preassigned,
 * range_search, remove_ids, merge_from, direct maps, IndexIVFStats.
 *
 * A list entry is entry_size() bytes:
 *   the plan's code_bytes of planes | residual_norm2 | estimate_scale |
 *   center_dot | list_factor
 * the first four parts IndexBQ's code of r (codes.h). With s(q) IndexBQ's
 * inner-product estimate of <r, q> (exact in the plan's centre c_p, with e
 * = estimate_scale * r_hat against R (q - c_p); its tables depend on the
 * query only, so they are built once per query and serve every list),
 * search() returns
 *   <q, c_l> + list_factor + s(q)        (METRIC_INNER_PRODUCT)
 *   |q - c_l|^2 + list_factor - 2 s(q)   (METRIC_L2)
 * with list_factor = <r, c_l> - t or |r|^2 + 2 t, t = <c_p, c_l> +
 * <e, R c_l>, computed when the vector is added. So s(q) - t is IndexBQ's
 * estimate of <r, q - c_l>: the query centred on the list, as IndexBQ
 * centres it on the plan's centre. Two cheaper forms measured worse on
 * use512-wordnet with IVF1,BQ1 (one list: the flat index's plan), against
 * IndexBQ's 0.715 recall@10: s(q) alone (4 bytes less) 0.559, the query's
 * offset left in the error; t from s linear in q (c_p estimated, not
 * exact) 0.666.
 * The list terms are computed from the centroid (quantizer->reconstruct),
 * not taken from the coarse distances, so search_preassigned returns the
 * same whatever coarse distances a caller passes (faiss.contrib.ivf_tools
 * passes zeros).
 */
struct IndexIVFBQ : faiss::IndexIVF {
    /// Bits per coordinate of a uniform plan (1 or 2); 0 with a budget.
    int nbits = 1;
    /// > 0: bytes of planes per code (IndexBQ's budget plans).
    size_t budget_bytes = 0;
    /// Used by train_residual(); nbits, the budget and the metric are taken
    /// from the index, the estimator is the asymmetric one.
    TrainerOptions trainer;
    BinarizationPlan plan;
    /// 0: the query stays float (look-up tables); 4..8: quantized to that
    /// many bit planes (IndexBQ's query_bits; scalar plans only).
    int query_bits = 0;

    IndexIVFBQ();
    /// quantizer: any index of dimension d (not owned unless own_fields).
    IndexIVFBQ(
            faiss::Index* quantizer,
            size_t d,
            size_t nlist,
            int nbits = 1,
            faiss::MetricType metric = faiss::METRIC_L2);
    IndexIVFBQ(
            faiss::Index* quantizer,
            size_t d,
            size_t nlist,
            CodeBudget budget,
            faiss::MetricType metric = faiss::METRIC_L2);

    /// Bytes of a list entry (see above).
    static size_t entry_size(size_t plane_bytes);
    /// Where an entry's factors start: the plan's bytes of planes.
    size_t plane_bytes() const;

    /// Trains the plan on the residuals of (a subsample of) x.
    void train_residual(idx_t n, const float* x) override;
    void add_with_ids(idx_t n, const float* x, const idx_t* xids) override;
    void encode_vectors(
            idx_t n,
            const float* x,
            const idx_t* list_nos,
            uint8_t* codes,
            bool include_listno = false) const override;
    void search(
            idx_t n,
            const float* x,
            idx_t k,
            float* distances,
            idx_t* labels,
            const faiss::SearchParameters* params = nullptr) const override;
    void search_preassigned(
            idx_t n,
            const float* x,
            idx_t k,
            const idx_t* assign,
            const float* centroid_dis,
            float* distances,
            idx_t* labels,
            bool store_pairs,
            const faiss::IVFSearchParameters* params = nullptr,
            faiss::IndexIVFStats* stats = nullptr) const override;
    faiss::InvertedListScanner* get_InvertedListScanner(
            bool store_pairs = false,
            const faiss::IDSelector* sel = nullptr) const override;
    void reconstruct_from_offset(int64_t list_no, int64_t offset, float* recons)
            const override;
    void sa_decode(idx_t n, const uint8_t* bytes, float* x) const override;
    void check_compatible_for_merge(const faiss::Index& other) const override;

    /// The entries of n IndexBQ codes of the plan (entry i at entries + i *
    /// entry_stride; code_size bytes written, list_factor zero), and back
    /// (one entry: the planes and the three factors). IndexIVFBQFastScan
    /// keeps the planes as nibble rows instead.
    virtual void codes_to_entries(
            size_t n,
            const uint8_t* codes,
            uint8_t* entries,
            size_t entry_stride) const;
    virtual void entry_to_code(const uint8_t* entry, uint8_t* code) const;

    /// Throws (naming it) unless query_bits has an estimator for the plan:
    /// search checks it before its threads start.
    virtual void check_query_bits() const;

   protected:
    /// x = c_list + the decoded residual of an entry of list list_no.
    void decode_entry(idx_t list_no, const uint8_t* entry, float* x) const;
    /// Validates the arguments common to both constructors.
    void init(int nbits, size_t budget_bytes);
    /// The trainer options of this index (fast scan sets its layout).
    virtual TrainerOptions training_options() const;
};

/// Throws faiss::FaissException naming the value unless nprobe is in
/// [1, 2^63) (a negative int stored in the size_t field shows as negative).
void check_nprobe(const char* who, size_t nprobe);

} // namespace faiss_bq
