// IndexIVFBQFastScan: IndexIVFBQ with its lists scanned by fast scan
// (IndexBQFastScan's kernels and estimator).
#pragma once

#include <faiss_bq/IndexIVFBQ.h>

namespace faiss_bq {

/** IndexIVFBQ whose entries keep the plan's levels as fast-scan nibbles:
 * an entry is the vector's nibble row (NibbleLayout::pack_row, padded with
 * zeros to the plan's bytes of planes), then the same factors as
 * IndexIVFBQ's, so the bytes per vector are the same. A scan turns runs of
 * up to 1024 entries of a list into blocks of 64 (NibbleLayout::
 * rows_to_blocks) and scores them with byte tables held in registers
 * (FastScanScorer, kernels::fast_scan_accumulate), the tables built once per
 * query. Keeping rows in FAISS's ordinary InvertedLists, rather than blocks,
 * is what lets OnDiskInvertedLists, merge_from, remove_ids and update work
 * unchanged, and costs no padding (a list of 244 vectors in blocks of 64
 * would store 13% more).
 *
 * Training as IndexBQFastScan: the allocation fits the nibble layout
 * (TrainerOptions::fast_scan_layout) and each candidate competes with its
 * joint-nibble twin (TrainerOptions::joint_nibbles). The float query only
 * (query_bits must be 0).
 */
struct IndexIVFBQFastScan : IndexIVFBQ {
    IndexIVFBQFastScan();
    IndexIVFBQFastScan(
            faiss::Index* quantizer,
            size_t d,
            size_t nlist,
            int nbits = 1,
            faiss::MetricType metric = faiss::METRIC_L2);
    IndexIVFBQFastScan(
            faiss::Index* quantizer,
            size_t d,
            size_t nlist,
            CodeBudget budget,
            faiss::MetricType metric = faiss::METRIC_L2);

    void train_residual(idx_t n, const float* x) override;
    faiss::InvertedListScanner* get_InvertedListScanner(
            bool store_pairs = false,
            const faiss::IDSelector* sel = nullptr) const override;
    void check_query_bits() const override;
    void codes_to_entries(
            size_t n,
            const uint8_t* codes,
            uint8_t* entries,
            size_t entry_stride) const override;
    void entry_to_code(const uint8_t* entry, uint8_t* code) const override;
};

} // namespace faiss_bq
