// Merging the per-thread top-k heaps of a search split over the database.
#pragma once

#include <faiss/Index.h>
#include <faiss/utils/Heap.h>

#include <cstddef>

namespace faiss_bq {

/// Merges nt per-thread result heaps into the final sorted results.
/// Thread t's heap of query q is at (t * n + q) * k in tD / tI (label -1 for
/// an empty slot). Equal distances go to the smaller id (C::cmp2), as
/// FAISS's own flat searches order them, whatever thread found them.
template <class C>
void merge_thread_heaps(
        int nt,
        faiss::Index::idx_t n,
        size_t k,
        const typename C::T* tD,
        const faiss::Index::idx_t* tI,
        typename C::T* distances,
        faiss::Index::idx_t* labels) {
    for (faiss::Index::idx_t q = 0; q < n; q++) {
        typename C::T* D = distances + q * k;
        faiss::Index::idx_t* I = labels + q * k;
        faiss::heap_heapify<C>(k, D, I);
        for (int t = 0; t < nt; t++) {
            const size_t off = (size_t(t) * n + q) * k;
            for (size_t e = 0; e < k; e++) {
                if (tI[off + e] >= 0 && C::cmp2(D[0], tD[off + e], I[0], tI[off + e])) {
                    faiss::heap_replace_top<C>(k, D, I, tD[off + e], tI[off + e]);
                }
            }
        }
        faiss::heap_reorder<C>(k, D, I);
    }
}

} // namespace faiss_bq
