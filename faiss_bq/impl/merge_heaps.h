// The k-NN loop of the flat scans, and merging the per-thread top-k heaps of
// a search split over the database.
#pragma once

#include <faiss/Index.h>
#include <faiss/impl/IDSelector.h>
#include <faiss/utils/Heap.h>

#include <omp.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

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
                if (tI[off + e] >= 0 &&
                    C::cmp2(D[0], tD[off + e], I[0], tI[off + e])) {
                    faiss::heap_replace_top<C>(
                            k, D, I, tD[off + e], tI[off + e]);
                }
            }
        }
        faiss::heap_reorder<C>(k, D, I);
    }
}

/// Pushes scores[e] for e in better[0, nc) (increasing, each strictly
/// better than the heap's worst when they were selected) into the heap (D,
/// I) of k entries under label label(e), when still strictly better than
/// the worst kept (so a tie keeps the earlier entry) and keep(e) holds.
/// Returns the number of heap updates.
template <class C, class Label, class Keep>
size_t push_selected(
        faiss::Index::idx_t k,
        typename C::T* D,
        faiss::Index::idx_t* I,
        const typename C::T* scores,
        const uint32_t* better,
        size_t nc,
        Label label,
        Keep keep) {
    size_t updates = 0;
    for (size_t c = 0; c < nc; c++) {
        const size_t e = better[c];
        if (C::cmp(D[0], scores[e]) && keep(e)) {
            faiss::heap_replace_top<C>(k, D, I, scores[e], label(e));
            updates++;
        }
    }
    return updates;
}

/// Pushes scores[e], e < m, into the heap (D, I) of k entries under label
/// label(e): in increasing e, admitted only when strictly better than the
/// worst kept (so a tie keeps the earlier entry) and when keep(e) holds.
/// Returns the number of heap updates.
template <class C, class Label, class Keep>
size_t push_scores_labeled(
        faiss::Index::idx_t k,
        typename C::T* D,
        faiss::Index::idx_t* I,
        const typename C::T* scores,
        size_t m,
        Label label,
        Keep keep) {
    // First the positions better than the worst kept at the start, without
    // branches (most scores are not), then the heap in order: the worst kept
    // only improves, so the second test admits exactly what one loop would.
    constexpr size_t chunk = 1024;
    uint32_t better[chunk];
    size_t updates = 0;
    for (size_t e0 = 0; e0 < m; e0 += chunk) {
        const size_t e1 = std::min(m, e0 + chunk);
        const typename C::T worst = D[0];
        size_t nc = 0;
        for (size_t e = e0; e < e1; e++) {
            better[nc] = uint32_t(e);
            nc += C::cmp(worst, scores[e]);
        }
        updates += push_selected<C>(k, D, I, scores, better, nc, label, keep);
    }
    return updates;
}

/// Pushes scores[e] of ids j0 + e, e < m, into the heap (D, I) of k
/// entries (push_scores_labeled), selected by sel (null: every id).
template <class C>
void push_scores(
        faiss::Index::idx_t k,
        typename C::T* D,
        faiss::Index::idx_t* I,
        const typename C::T* scores,
        size_t m,
        faiss::Index::idx_t j0,
        const faiss::IDSelector* sel) {
    using idx_t = faiss::Index::idx_t;
    push_scores_labeled<C>(
            k,
            D,
            I,
            scores,
            m,
            [j0](size_t e) { return j0 + idx_t(e); },
            [j0, sel](size_t e) {
                return !sel || sel->is_member(j0 + idx_t(e));
            });
}

/** The k-NN loop of a flat scan: n queries against items [0, nb), in
 * groups of up to `group` queries. make() builds one scanner per thread;
 * scan(scanner, i, m, j0, j1, D, I) sets queries i..i + m - 1 on it and
 * pushes their scores of items [j0, j1) into their heaps of k entries (query
 * i + e's at D + e * k, I + e * k, already heapified). With fewer queries
 * than threads and at least 4 * unit * threads items, the items are split
 * across threads (at multiples of unit; per-thread heaps, merged; one query
 * per call); otherwise the groups of queries are. Results come out sorted,
 * best first.
 */
template <class C, class Make, class Scan>
void search_flat_groups(
        faiss::Index::idx_t n,
        faiss::Index::idx_t nb,
        faiss::Index::idx_t k,
        size_t unit,
        size_t group,
        typename C::T* distances,
        faiss::Index::idx_t* labels,
        Make make,
        Scan scan) {
    using idx_t = faiss::Index::idx_t;
    const int nt = omp_get_max_threads();
    if (n < nt && size_t(nb) >= 4 * unit * size_t(nt)) {
        std::vector<typename C::T> tD(size_t(nt) * n * k);
        std::vector<idx_t> tI(size_t(nt) * n * k);
        int used = nt;
#pragma omp parallel num_threads(nt)
        {
            const int t = omp_get_thread_num();
#pragma omp single
            used = omp_get_num_threads();
            auto scanner = make();
            const idx_t units = (nb + idx_t(unit) - 1) / idx_t(unit);
            const idx_t j0 = std::min(nb, units * t / used * idx_t(unit));
            const idx_t j1 = std::min(nb, units * (t + 1) / used * idx_t(unit));
            for (idx_t i = 0; i < n; i++) {
                typename C::T* D = tD.data() + (t * n + i) * k;
                idx_t* I = tI.data() + (t * n + i) * k;
                faiss::heap_heapify<C>(k, D, I);
                scan(scanner, i, idx_t(1), j0, j1, D, I);
            }
        }
        merge_thread_heaps<C>(
                used, n, size_t(k), tD.data(), tI.data(), distances, labels);
        return;
    }
    const idx_t g = idx_t(std::max<size_t>(1, group));
    const idx_t ngroups = (n + g - 1) / g;
#pragma omp parallel if (ngroups > 1)
    {
        auto scanner = make();
#pragma omp for
        for (idx_t gi = 0; gi < ngroups; gi++) {
            const idx_t i = gi * g, m = std::min(g, n - i);
            typename C::T* D = distances + i * k;
            idx_t* I = labels + i * k;
            for (idx_t e = 0; e < m; e++) {
                faiss::heap_heapify<C>(k, D + e * k, I + e * k);
            }
            scan(scanner, i, m, idx_t(0), nb, D, I);
            for (idx_t e = 0; e < m; e++) {
                faiss::heap_reorder<C>(k, D + e * k, I + e * k);
            }
        }
    }
}

/// search_flat_groups one query at a time: scan(scanner, i, j0, j1, D, I).
template <class C, class Make, class Scan>
void search_flat(
        faiss::Index::idx_t n,
        faiss::Index::idx_t nb,
        faiss::Index::idx_t k,
        size_t unit,
        typename C::T* distances,
        faiss::Index::idx_t* labels,
        Make make,
        Scan scan) {
    using idx_t = faiss::Index::idx_t;
    search_flat_groups<C>(
            n,
            nb,
            k,
            unit,
            1,
            distances,
            labels,
            make,
            [&](auto& scanner,
                idx_t i,
                idx_t /*m = 1*/,
                idx_t j0,
                idx_t j1,
                typename C::T* D,
                idx_t* I) { scan(scanner, i, j0, j1, D, I); });
}

/** search_flat over queries prepared a chunk at a time (one matrix product
 * per chunk instead of one matrix-vector product per query), under the
 * comparator of the metric (faiss::CMax for METRIC_L2, else faiss::CMin):
 * prepare(i0, m) prepares queries i0 .. i0 + m - 1; scan(scanner, i, j0, j1,
 * D, I, C()) pushes the scores of items [j0, j1) for query i of the chunk.
 */
template <class Prepare, class Make, class Scan>
void search_flat_chunked(
        faiss::Index::idx_t n,
        faiss::Index::idx_t nb,
        faiss::Index::idx_t k,
        faiss::MetricType metric,
        size_t unit,
        float* distances,
        faiss::Index::idx_t* labels,
        Prepare prepare,
        Make make,
        Scan scan) {
    using idx_t = faiss::Index::idx_t;
    constexpr idx_t chunk = 1024;
    for (idx_t i0 = 0; i0 < n; i0 += chunk) {
        const idx_t m = std::min(chunk, n - i0);
        prepare(i0, m);
        auto run = [&](auto comparator) {
            using C = decltype(comparator);
            search_flat<C>(
                    m,
                    nb,
                    k,
                    unit,
                    distances + i0 * k,
                    labels + i0 * k,
                    make,
                    [&](auto& s,
                        idx_t i,
                        idx_t j0,
                        idx_t j1,
                        float* D,
                        idx_t* I) { scan(s, i, j0, j1, D, I, C()); });
        };
        if (metric == faiss::METRIC_L2) {
            run(faiss::CMax<float, idx_t>());
        } else {
            run(faiss::CMin<float, idx_t>());
        }
    }
}

} // namespace faiss_bq
