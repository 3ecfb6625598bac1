#include <faiss_bq/IndexIVFBQFastScan.h>

#include <faiss_bq/codes.h>
#include <faiss_bq/estimators.h>
#include <faiss_bq/impl/ivf_scanner.h>
#include <faiss_bq/kernels/kernels.h>

#include <faiss/impl/FaissAssert.h>

#include <algorithm>
#include <cstring>
#include <vector>

namespace faiss_bq {

namespace {

constexpr size_t block = kernels::fast_scan_block;

/// Scores runs of entries: their rows transposed into blocks and their
/// factors gathered per block (IndexBQFastScan's arrangement), then
/// FastScanScorer's inner-product estimate.
struct IVFBQFastScanner : IVFScannerBase {
    mutable FastScanScorer scorer;
    const size_t factors_at; ///< offset of the factors in an entry
    mutable std::vector<uint8_t> blocks;
    mutable std::vector<float> factors;

    IVFBQFastScanner(
            const IndexIVFBQ& index,
            bool store_pairs,
            const faiss::IDSelector* sel)
            : IVFScannerBase(index, store_pairs, sel),
              scorer(index.plan, faiss::METRIC_INNER_PRODUCT),
              factors_at(index.plane_bytes()),
              blocks(scorer.nibbles.blocks_bytes(run)),
              factors(run / block * 3 * block) {}

    void set_query(const float* q) override {
        IVFScannerBase::set_query(q);
        scorer.set_query(q);
    }

    void estimate_ips(const uint8_t* entries, size_t n, float* ips)
            const override {
        const size_t nblocks = (n + block - 1) / block;
        scorer.nibbles.rows_to_blocks(entries, code_size, n, blocks.data());
        std::fill(factors.begin(), factors.begin() + nblocks * 3 * block, 0.f);
        for (size_t i = 0; i < n; i++) {
            const uint8_t* f = entries + i * code_size + factors_at;
            float* to = factors.data() + i / block * 3 * block + i % block;
            for (int c = 0; c < 3; c++) {
                std::memcpy(
                        to + c * block, f + c * sizeof(float), sizeof(float));
            }
        }
        float out[run];
        scorer.scan(blocks.data(), factors.data(), nblocks, out);
        std::copy(out, out + n, ips);
    }
};

} // namespace

IndexIVFBQFastScan::IndexIVFBQFastScan() {
    trainer.set_fast_scan();
}

IndexIVFBQFastScan::IndexIVFBQFastScan(
        faiss::Index* quantizer,
        size_t d,
        size_t nlist,
        int nbits,
        faiss::MetricType metric)
        : IndexIVFBQ(quantizer, d, nlist, nbits, metric) {
    trainer.set_fast_scan();
}

IndexIVFBQFastScan::IndexIVFBQFastScan(
        faiss::Index* quantizer,
        size_t d,
        size_t nlist,
        CodeBudget budget,
        faiss::MetricType metric)
        : IndexIVFBQ(quantizer, d, nlist, budget, metric) {
    trainer.set_fast_scan();
}

void IndexIVFBQFastScan::train_residual(idx_t n, const float* x) {
    IndexIVFBQ::train_residual(n, x);
    const size_t row_bytes = NibbleLayout(plan).nbytes;
    FAISS_THROW_IF_NOT_FMT(
            row_bytes <= plane_bytes(),
            "IndexIVFBQFastScan: the trained plan's nibbles take %zu bytes, "
            "the entries hold %zu",
            row_bytes,
            plane_bytes());
}

faiss::InvertedListScanner* IndexIVFBQFastScan::get_InvertedListScanner(
        bool store_pairs,
        const faiss::IDSelector* sel) const {
    FAISS_THROW_IF_NOT_MSG(
            is_trained, "IndexIVFBQFastScan: the index is not trained");
    check_query_bits();
    return new IVFBQFastScanner(*this, store_pairs, sel);
}

void IndexIVFBQFastScan::check_query_bits() const {
    FAISS_THROW_IF_NOT_FMT(
            query_bits == 0,
            "IndexIVFBQFastScan: query_bits=%d: fast scan has the float query "
            "only (IndexIVFBQ has the quantized one)",
            query_bits);
}

void IndexIVFBQFastScan::codes_to_entries(
        size_t n,
        const uint8_t* codes,
        uint8_t* entries,
        size_t entry_stride) const {
    const CodeLayout layout(plan);
    const NibbleLayout nl(plan);
#pragma omp parallel for if (n > 1000)
    for (size_t i = 0; i < n; i++) {
        const uint8_t* code = codes + i * layout.code_size;
        uint8_t* entry = entries + i * entry_stride;
        std::memset(entry, 0, code_size);
        nl.pack_row(layout, code, entry);
        std::memcpy(
                entry + plane_bytes(),
                code + layout.planes_size,
                CodeLayout::factor_bytes);
    }
}

void IndexIVFBQFastScan::entry_to_code(const uint8_t* entry, uint8_t* code)
        const {
    const CodeLayout layout(plan);
    NibbleLayout(plan).unpack_row(layout, entry, code);
    std::memcpy(
            code + layout.planes_size,
            entry + plane_bytes(),
            CodeLayout::factor_bytes);
}

} // namespace faiss_bq
