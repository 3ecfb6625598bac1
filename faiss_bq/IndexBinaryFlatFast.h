// IndexBinaryFlatFast: a drop-in replacement for faiss::IndexBinaryFlat.
#pragma once

#include <faiss/IndexBinary.h>

#include <cstdint>
#include <vector>

namespace faiss_bq {

/** Exhaustive Hamming search over binary codes, as faiss::IndexBinaryFlat,
 * with the SIMD kernels of kernels/ and a scan that uses every thread even
 * for one query.
 *
 * Same constructor (d, a positive multiple of 8), same storage (xb, ntotal *
 * d / 8 bytes, LSB-first bits as faiss::fvecs2bitvecs), same results:
 *  - search(): the k smallest Hamming distances (int32), ordered by
 *    (distance, id). Ties are broken by the smaller id, which is what
 *    FAISS 1.7.3 does deterministically (its max-heap admits a code only
 *    when strictly closer than the worst kept, scans ids in increasing
 *    order, and orders equal distances by id). k > ntotal: the missing
 *    results have label -1 and distance INT32_MAX, as in FAISS.
 *  - range_search(): every code with distance < radius (strict, as FAISS),
 *    in increasing id order.
 *  - remove_ids() shifts the ids of the codes that follow, as FAISS does;
 *    add_with_ids() throws as FAISS's does (wrap in faiss::IndexBinaryIDMap).
 * Beyond FAISS 1.7.3 (whose IndexBinaryFlat rejects search parameters):
 * search() and range_search() honour an IDSelector in
 * faiss::SearchParameters::sel; the results equal FAISS's on the selected
 * subset with the original ids.
 * Threads: OpenMP (omp_get_max_threads()). Fewer queries than threads: the
 * database is split across threads (per-thread heaps, merged); otherwise
 * threads take tiles of queries, each scanning the codes in cache-sized
 * blocks.
 */
struct IndexBinaryFlatFast : faiss::IndexBinary {
    /// database codes, ntotal * code_size bytes (as faiss::IndexBinaryFlat)
    std::vector<uint8_t> xb;
    /// faiss::IndexBinaryFlat's choice between a heap and counting sort for
    /// the k best, and its query tile: kept so that code written for FAISS
    /// sets them unchanged, with no effect here (one scan serves every k;
    /// the results are FAISS's with either setting).
    bool use_heap = true;
    size_t query_batch_size = 32;

    explicit IndexBinaryFlatFast(idx_t d);
    IndexBinaryFlatFast() = default;

    void add(idx_t n, const uint8_t* x) override;
    void reset() override;

    void search(
            idx_t n,
            const uint8_t* x,
            idx_t k,
            int32_t* distances,
            idx_t* labels,
            const faiss::SearchParameters* params = nullptr) const override;

    void range_search(
            idx_t n,
            const uint8_t* x,
            int radius,
            faiss::RangeSearchResult* result,
            const faiss::SearchParameters* params = nullptr) const override;

    void reconstruct(idx_t key, uint8_t* recons) const override;

    size_t remove_ids(const faiss::IDSelector& sel) override;
};

} // namespace faiss_bq
