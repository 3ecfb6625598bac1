#include <faiss_bq/IndexBQFastScan.h>

#include <faiss_bq/estimators.h>
#include <faiss_bq/impl/add_progress.h>
#include <faiss_bq/impl/merge_heaps.h>
#include <faiss_bq/impl/query_chunks.h>
#include <faiss_bq/impl/validate.h>
#include <faiss_bq/kernels/kernels.h>

#include <faiss/impl/FaissAssert.h>
#include <faiss/impl/IDSelector.h>
#include <faiss/utils/Heap.h>

#include <algorithm>
#include <cstring>

namespace faiss_bq {

namespace {

constexpr size_t block = kernels::fast_scan_block;
/// Blocks per kernel call: their sums and scores stay in L1.
constexpr size_t chunk_blocks = 16;
/// Vectors encoded at a time by add (bounds the scratch of IndexBQ codes).
constexpr size_t add_rows = 4096;

/// Queries scanned together (FastScanScorer::scan_group).
constexpr size_t query_group = kernels::fast_scan_max_queries;

/// One thread's scorers and scores, for up to query_group queries.
struct GroupScanner {
    std::vector<FastScanScorer> scorers;
    std::vector<float> scores; ///< query e's at e * chunk_blocks * block
};

/// Pushes the scores of vectors [j0, j1) (j0 a multiple of the block) of
/// the m queries set on s into their heaps (query e's at D + e * k;
/// push_scores: a tie keeps the smaller id).
template <class C>
void scan_blocks(
        const IndexBQFastScan& index,
        GroupScanner& s,
        size_t m,
        idx_t j0,
        idx_t j1,
        idx_t k,
        float* D,
        idx_t* I,
        const faiss::IDSelector* sel) {
    const size_t bb = s.scorers[0].nibbles.block_bytes();
    constexpr size_t run = chunk_blocks * block;
    FastScanScorer* scorers[query_group];
    float* out[query_group];
    for (size_t e = 0; e < m; e++) {
        scorers[e] = &s.scorers[e];
        out[e] = s.scores.data() + e * run;
    }
    for (size_t i0 = size_t(j0); i0 < size_t(j1); i0 += run) {
        const size_t n = std::min(run, size_t(j1) - i0);
        for (size_t e = 0; e < m; e++) {
            scorers[e]->worst = D[e * k];
        }
        FastScanScorer::scan_group(
                scorers,
                m,
                index.codes.data() + i0 / block * bb,
                index.factors.data() + IndexBQFastScan::factor_at(idx_t(i0), 0),
                (n + block - 1) / block,
                out);
        for (size_t e = 0; e < m; e++) {
            // the padding vectors of the last block are not pushed
            const FastScanScorer& sc = *scorers[e];
            const size_t nc =
                    size_t(std::lower_bound(
                                   sc.better.data(),
                                   sc.better.data() + sc.nbetter,
                                   uint32_t(n)) -
                           sc.better.data());
            push_selected<C>(
                    k,
                    D + e * k,
                    I + e * k,
                    out[e],
                    sc.better.data(),
                    nc,
                    [i0](size_t v) { return idx_t(i0 + v); },
                    [i0, sel](size_t v) {
                        return !sel || sel->is_member(idx_t(i0 + v));
                    });
        }
    }
}

template <class C>
void search_blocks(
        const IndexBQFastScan& index,
        idx_t n,
        const float* x,
        idx_t k,
        float* distances,
        idx_t* labels,
        const faiss::IDSelector* sel) {
    for_query_chunks(
            index.plan, n, x, true, [&](idx_t i0, idx_t m, const float* y) {
                search_flat_groups<C>(
                        m,
                        index.ntotal,
                        k,
                        chunk_blocks * block,
                        query_group,
                        distances + i0 * k,
                        labels + i0 * k,
                        [&] {
                            return GroupScanner{
                                    std::vector<FastScanScorer>(
                                            query_group,
                                            FastScanScorer(
                                                    index.plan,
                                                    index.metric_type)),
                                    std::vector<float>(
                                            query_group * chunk_blocks *
                                            block)};
                        },
                        [&](GroupScanner& s,
                            idx_t i,
                            idx_t mq,
                            idx_t j0,
                            idx_t j1,
                            float* D,
                            idx_t* I) {
                            for (idx_t e = 0; e < mq; e++) {
                                s.scorers[e].set_query(
                                        x + (i0 + i + e) * index.d,
                                        y + (i + e) * index.d);
                            }
                            scan_blocks<C>(
                                    index, s, size_t(mq), j0, j1, k, D, I, sel);
                        });
            });
}

/// Vector i's code in IndexBQ's layout: its unpacked nibbles, then its
/// factors (the layouts built once by callers that loop).
void write_code(
        const IndexBQFastScan& index,
        const CodeLayout& layout,
        const NibbleLayout& nl,
        idx_t i,
        uint8_t* code) {
    nl.unpack(layout, index.codes.data(), size_t(i), code);
    for (int c = 0; c < 3; c++) {
        std::memcpy(
                code + layout.planes_size + c * sizeof(float),
                &index.factors[IndexBQFastScan::factor_at(i, c)],
                sizeof(float));
    }
}

/// The IndexBQ of the same configuration (validates it).
IndexBQ make_IndexBQ(const IndexBQFastScan& fs) {
    IndexBQ bq = fs.budget_bytes > 0
            ? IndexBQ(fs.d, CodeBudget{fs.budget_bytes}, fs.metric_type)
            : IndexBQ(fs.d, fs.nbits, fs.metric_type);
    bq.trainer = fs.trainer;
    if (fs.is_trained) {
        bq.plan = fs.plan;
        bq.is_trained = true;
    }
    return bq;
}

} // namespace

IndexBQFastScan::IndexBQFastScan() {
    is_trained = false;
    trainer.set_fast_scan();
}

IndexBQFastScan::IndexBQFastScan(idx_t d, int nbits, faiss::MetricType metric)
        : faiss::Index(d, metric), nbits(nbits) {
    check_index_args("IndexBQFastScan", d, nbits, metric);
    is_trained = false;
    trainer.set_fast_scan();
}

IndexBQFastScan::IndexBQFastScan(
        idx_t d,
        CodeBudget budget,
        faiss::MetricType metric)
        : faiss::Index(d, metric), nbits(0), budget_bytes(budget.bytes) {
    (void)IndexBQ(d, budget, metric); // validates d, the budget, the metric
    is_trained = false;
    trainer.set_fast_scan();
}

IndexBQFastScan::IndexBQFastScan(const IndexBQ& index)
        : faiss::Index(index.d, index.metric_type),
          nbits(index.nbits),
          budget_bytes(index.budget_bytes),
          trainer(index.trainer),
          plan(index.plan) {
    is_trained = index.is_trained;
    // A retrain fits this layout (the IndexBQ's plan may take a few more
    // bytes here: nibble_layout()).
    trainer.set_fast_scan();
    FAISS_THROW_IF_NOT_FMT(
            index.estimator == Estimator::asymmetric && index.query_bits == 0,
            "IndexBQFastScan: the IndexBQ searches with the %s estimator and "
            "query_bits=%d; fast scan has the asymmetric float-query one only",
            estimator_name(index.estimator),
            index.query_bits);
    if (index.ntotal > 0) {
        add_sa_codes(index.ntotal, index.codes.data());
    }
}

IndexBQ IndexBQFastScan::to_IndexBQ(bool with_codes) const {
    IndexBQ bq = make_IndexBQ(*this);
    if (!with_codes) {
        return bq;
    }
    const CodeLayout layout(plan);
    const NibbleLayout nl(plan);
    bq.codes.resize(size_t(ntotal) * bq.code_size);
    for (idx_t i = 0; i < ntotal; i++) {
        write_code(*this, layout, nl, i, bq.codes.data() + i * bq.code_size);
    }
    bq.ntotal = ntotal;
    return bq;
}

void IndexBQFastScan::train(idx_t n, const float* x) {
    FAISS_THROW_IF_NOT_FMT(
            ntotal == 0,
            "IndexBQFastScan::train: the index holds %ld codes of the current "
            "plan; reset() first",
            long(ntotal));
    IndexBQ bq = make_IndexBQ(*this);
    bq.verbose = verbose;
    bq.train(n, x);
    plan = bq.plan;
    is_trained = true;
}

void IndexBQFastScan::add(idx_t n, const float* x) {
    FAISS_THROW_IF_NOT_MSG(
            is_trained, "IndexBQFastScan::add: the index is not trained");
    FAISS_THROW_IF_NOT_FMT(n >= 0, "IndexBQFastScan::add: n=%ld", long(n));
    check_finite("added", size_t(n), size_t(d), x);
    std::vector<uint8_t> scratch;
    const size_t cs = sa_code_size();
    AddProgress progress(verbose, "IndexBQFastScan", size_t(n));
    for (idx_t i0 = 0; i0 < n; i0 += idx_t(add_rows)) {
        const idx_t m = std::min(idx_t(add_rows), n - i0);
        scratch.resize(size_t(m) * cs);
        encode(plan, size_t(m), x + i0 * d, scratch.data());
        add_sa_codes(m, scratch.data());
        progress.at(size_t(i0 + m));
    }
}

void IndexBQFastScan::add_sa_codes(idx_t n, const uint8_t* bytes) {
    FAISS_THROW_IF_NOT_MSG(
            is_trained, "IndexBQFastScan::add: the index is not trained");
    FAISS_THROW_IF_NOT_FMT(n >= 0, "IndexBQFastScan::add: n=%ld", long(n));
    const CodeLayout layout(plan);
    const NibbleLayout nl(plan);
    const size_t n0 = size_t(ntotal), n1 = n0 + size_t(n);
    codes.resize(nl.blocks_bytes(n1), 0);
    factors.resize(nl.blocks_bytes(n1) / nl.block_bytes() * 3 * block, 0.f);
    for (size_t i = 0; i < size_t(n); i++) {
        const uint8_t* code = bytes + i * layout.code_size;
        nl.pack(layout, code, codes.data(), n0 + i);
        for (int c = 0; c < 3; c++) {
            std::memcpy(
                    &factors[factor_at(idx_t(n0 + i), c)],
                    code + layout.planes_size + c * sizeof(float),
                    sizeof(float));
        }
    }
    ntotal = idx_t(n1);
}

void IndexBQFastScan::search(
        idx_t n,
        const float* x,
        idx_t k,
        float* distances,
        idx_t* labels,
        const faiss::SearchParameters* params) const {
    check_search_args("IndexBQFastScan::search", is_trained, n, d, x, k);
    const faiss::IDSelector* sel = params ? params->sel : nullptr;
    if (auto bq = dynamic_cast<const SearchParametersBQ*>(params)) {
        FAISS_THROW_IF_NOT_FMT(
                bq->estimator == Estimator::asymmetric && bq->query_bits == 0,
                "IndexBQFastScan::search: estimator %s with query_bits=%d: "
                "fast scan has the asymmetric float-query estimator only "
                "(IndexBQ has the others)",
                estimator_name(bq->estimator),
                bq->query_bits);
    }
    if (n == 0) {
        return;
    }
    if (metric_type == faiss::METRIC_INNER_PRODUCT) {
        search_blocks<faiss::CMin<float, idx_t>>(
                *this, n, x, k, distances, labels, sel);
    } else {
        search_blocks<faiss::CMax<float, idx_t>>(
                *this, n, x, k, distances, labels, sel);
    }
}

void IndexBQFastScan::reset() {
    codes.clear();
    factors.clear();
    ntotal = 0;
}

void IndexBQFastScan::get_code(idx_t i, uint8_t* code) const {
    FAISS_THROW_IF_NOT_FMT(
            i >= 0 && i < ntotal,
            "IndexBQFastScan: id %ld out of range [0, %ld)",
            long(i),
            long(ntotal));
    write_code(*this, CodeLayout(plan), NibbleLayout(plan), i, code);
}

void IndexBQFastScan::reconstruct(idx_t key, float* recons) const {
    std::vector<uint8_t> code(sa_code_size());
    get_code(key, code.data());
    decode(plan, 1, code.data(), recons);
}

size_t IndexBQFastScan::remove_ids(const faiss::IDSelector& sel) {
    const NibbleLayout nl(plan);
    idx_t kept = 0;
    for (idx_t i = 0; i < ntotal; i++) {
        if (sel.is_member(i)) {
            continue;
        }
        if (kept != i) { // moves down: vector i's slot is not read again
            nl.copy_vector(codes.data(), size_t(i), size_t(kept));
            for (int c = 0; c < 3; c++) {
                factors[factor_at(kept, c)] = factors[factor_at(i, c)];
            }
        }
        kept++;
    }
    const size_t removed = size_t(ntotal - kept);
    // The last block's padding vectors are zero, as add leaves them.
    const size_t end = std::min(
            size_t(ntotal), (size_t(kept) + block - 1) / block * block);
    for (size_t i = size_t(kept); i < end; i++) {
        nl.clear_vector(codes.data(), i);
        for (int c = 0; c < 3; c++) {
            factors[factor_at(idx_t(i), c)] = 0;
        }
    }
    codes.resize(nl.blocks_bytes(size_t(kept)));
    factors.resize(
            nl.blocks_bytes(size_t(kept)) / nl.block_bytes() * 3 * block);
    ntotal = kept;
    return removed;
}

size_t IndexBQFastScan::sa_code_size() const {
    FAISS_THROW_IF_NOT_MSG(
            is_trained, "IndexBQFastScan: the index is not trained");
    return CodeLayout(plan).code_size;
}

void IndexBQFastScan::sa_encode(idx_t n, const float* x, uint8_t* bytes) const {
    FAISS_THROW_IF_NOT_MSG(
            is_trained, "IndexBQFastScan::sa_encode: the index is not trained");
    check_finite("encoded", size_t(n), size_t(d), x);
    encode(plan, size_t(n), x, bytes);
}

void IndexBQFastScan::sa_decode(idx_t n, const uint8_t* bytes, float* x) const {
    FAISS_THROW_IF_NOT_MSG(
            is_trained, "IndexBQFastScan::sa_decode: the index is not trained");
    decode(plan, size_t(n), bytes, x);
}

} // namespace faiss_bq
