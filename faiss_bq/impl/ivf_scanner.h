// The inverted-list scanner shared by IndexIVFBQ and IndexIVFBQFastScan:
// the list terms, the metric, the heap and the range results; each index
// gives the estimate of <r, q> over a run of its list entries.
#pragma once

#include <faiss_bq/IndexIVFBQ.h>
#include <faiss_bq/impl/merge_heaps.h>

#include <faiss/IndexFlat.h>
#include <faiss/IndexIVF.h>
#include <faiss/impl/AuxIndexStructures.h>
#include <faiss/impl/IDSelector.h>
#include <faiss/invlists/InvertedLists.h>
#include <faiss/utils/Heap.h>

#include <algorithm>
#include <cstring>
#include <vector>

namespace faiss_bq {

struct IVFScannerBase : faiss::InvertedListScanner {
    using idx_t = faiss::Index::idx_t;
    /// Entries scored per call of estimate_ips.
    static constexpr size_t run = 1024;

    const IndexIVFBQ& index;
    const bool l2;
    const float* query = nullptr;
    /// Of the current query and list: <q, c_l> (inner product) or
    /// |q - c_l|^2 (L2).
    float list_term = 0;
    std::vector<float> centroid;
    const float* flat_centroids = nullptr;
    mutable std::vector<float> scores;

    /// sum_i term(a_i, b_i) in eight independent partial sums (FAISS
    /// 1.7.3's generic build sums in order, which cannot vectorize: the list
    /// term was 7% of a fast scan).
    template <class Term>
    static float sum8(const float* a, const float* b, size_t n, Term term) {
        float part[8] = {};
        size_t i = 0;
        for (; i + 8 <= n; i += 8) {
            for (int j = 0; j < 8; j++) {
                part[j] += term(a[i + j], b[i + j]);
            }
        }
        for (; i < n; i++) {
            part[0] += term(a[i], b[i]);
        }
        double s = 0;
        for (float p : part) {
            s += p;
        }
        return float(s);
    }

    IVFScannerBase(
            const IndexIVFBQ& index,
            bool store_pairs,
            const faiss::IDSelector* sel)
            : InvertedListScanner(store_pairs, sel),
              index(index),
              l2(index.metric_type == faiss::METRIC_L2),
              centroid(index.d),
              scores(run) {
        keep_max = !l2;
        code_size = index.code_size;
        if (auto flat =
                    dynamic_cast<const faiss::IndexFlat*>(index.quantizer)) {
            flat_centroids = flat->get_xb();
        }
    }

    /// ips[i] = the estimate of <r, q> of entries + i * code_size, i < n
    /// (n <= run).
    virtual void estimate_ips(const uint8_t* entries, size_t n, float* ips)
            const = 0;

    void set_query(const float* q) override {
        query = q;
    }
    void set_list(idx_t l, float /*coarse_dis: see IndexIVFBQ*/) override {
        list_no = l;
        // An IndexFlat's centroids are read in place, others reconstructed.
        const float* c = centroid.data();
        if (flat_centroids) {
            c = flat_centroids + size_t(l) * index.d;
        } else {
            index.quantizer->reconstruct(l, centroid.data());
        }
        const size_t d = size_t(index.d);
        list_term = l2
                ? sum8(query,
                       c,
                       d,
                       [](float u, float v) { return (u - v) * (u - v); })
                : sum8(query, c, d, [](float u, float v) { return u * v; });
    }
    /// The score of an entry whose s(q) is ip (IndexIVFBQ's formulas).
    float score(float ip, const uint8_t* entry) const {
        float list_factor;
        std::memcpy(
                &list_factor, entry + code_size - sizeof(float), sizeof(float));
        return l2 ? list_term + list_factor - 2 * ip
                  : list_term + list_factor + ip;
    }
    float distance_to_code(const uint8_t* entry) const override {
        float ip;
        estimate_ips(entry, 1, &ip);
        return score(ip, entry);
    }

    size_t scan_codes(
            size_t n,
            const uint8_t* entries,
            const idx_t* ids,
            float* D,
            idx_t* I,
            size_t k) const override {
        return l2 ? scan<faiss::CMax<float, idx_t>>(n, entries, ids, D, I, k)
                  : scan<faiss::CMin<float, idx_t>>(n, entries, ids, D, I, k);
    }

    void scan_codes_range(
            size_t n,
            const uint8_t* entries,
            const idx_t* ids,
            float radius,
            faiss::RangeQueryResult& result) const override {
        for (size_t i0 = 0; i0 < n; i0 += run) {
            const size_t m = std::min(run, n - i0);
            scores_of(entries + i0 * code_size, m);
            for (size_t e = 0; e < m; e++) {
                const float s = scores[e];
                if ((l2 ? s < radius : s > radius) && selected(ids, i0 + e)) {
                    result.add(s, label(ids, i0 + e));
                }
            }
        }
    }

   private:
    void scores_of(const uint8_t* entries, size_t m) const {
        estimate_ips(entries, m, scores.data());
        for (size_t e = 0; e < m; e++) {
            scores[e] = score(scores[e], entries + e * code_size);
        }
    }
    /// FAISS's OnDiskInvertedLists put a list's ids after its codes, so
    /// they are 8-byte aligned only when code_size is: read them bytewise.
    static idx_t id_at(const idx_t* ids, size_t offset) {
        idx_t id;
        std::memcpy(
                &id,
                reinterpret_cast<const char*>(ids) + offset * sizeof(idx_t),
                sizeof(idx_t));
        return id;
    }
    idx_t label(const idx_t* ids, size_t offset) const {
        return store_pairs ? faiss::lo_build(list_no, offset)
                           : id_at(ids, offset);
    }
    bool selected(const idx_t* ids, size_t offset) const {
        return !sel || sel->is_member(id_at(ids, offset));
    }
    template <class C>
    size_t scan(
            size_t n,
            const uint8_t* entries,
            const idx_t* ids,
            float* D,
            idx_t* I,
            size_t k) const {
        size_t updates = 0;
        for (size_t i0 = 0; i0 < n; i0 += run) {
            const size_t m = std::min(run, n - i0);
            scores_of(entries + i0 * code_size, m);
            updates += push_scores_labeled<C>(
                    idx_t(k),
                    D,
                    I,
                    scores.data(),
                    m,
                    [&](size_t e) { return label(ids, i0 + e); },
                    [&](size_t e) { return selected(ids, i0 + e); });
        }
        return updates;
    }
};

} // namespace faiss_bq
