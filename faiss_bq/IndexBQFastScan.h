// IndexBQFastScan: IndexBQ's plans and estimator, codes stored in the
// fast-scan layout (codes.h, NibbleLayout) and scanned with byte tables held
// in SIMD registers, as FAISS's IndexPQFastScan is to IndexPQ.
#pragma once

#include <faiss_bq/IndexBQ.h>
#include <faiss_bq/kernels/kernels.h>

#include <faiss/Index.h>

#include <vector>

namespace faiss_bq {

/** Float vectors as a trained plan's codes, scanned with quantized tables.
 *
 * Same plans (uniform 1 or 2 bits, or a byte budget), same training (an
 * IndexBQ's trainer, set for this layout and, by default, joint nibbles:
 * the coordinates of each 4-bit sub-code quantized together to 16
 * codewords, BinarizationPlan::joint_levels) and the same estimator as
 * IndexBQ with a float query:
 * search() returns estimates of the squared L2 distance or the inner
 * product. The difference is speed against a small, bounded extra error:
 * the estimator's tables are rounded to bytes (FastScanScorer in
 * estimators.h gives the bound), and the codes sit in blocks of 64 vectors
 * whose 4-bit sub-codes index 16-entry tables kept in registers
 * (kernels::fast_scan_accumulate). Debian's FAISS is built for generic x86-64,
 * so its own fast-scan kernels run emulated; these use AVX2 / AVX-512.
 *
 * Memory per vector: NibbleLayout::nbytes plus 12 bytes of factors: the
 * plan's code bytes when trained here, or a little more for a plan trained
 * by IndexBQ with 3-bit coordinates left without a 1-bit partner.
 * sa_encode / sa_decode use IndexBQ's code layout, so
 * codes move between the two classes unchanged. Only the asymmetric float
 * estimator runs here: a SearchParametersBQ asking for the symmetric one or
 * a quantized query throws (use IndexBQ for those).
 */
struct IndexBQFastScan : faiss::Index {
    /// As IndexBQ: 1 or 2 bits per coordinate, or 0 with budget_bytes > 0.
    int nbits = 1;
    size_t budget_bytes = 0;
    /// IndexBQ's options; the constructors set fast_scan_layout, so that an
    /// allocated plan trained here fits budget_bytes in this layout, and
    /// joint_nibbles, so that each nibble's members are quantized together
    /// (BinarizationPlan::joint_levels: 16 codewords per nibble, which this
    /// index's tables score at no extra cost). Set joint_nibbles = false
    /// before train() for scalar levels (then to_IndexBQ() has every
    /// estimator of IndexBQ).
    TrainerOptions trainer;
    BinarizationPlan plan;

    /// ceil(ntotal / 64) blocks of NibbleLayout(plan).block_bytes() bytes;
    /// padding vectors are zero.
    std::vector<uint8_t> codes;
    /// Per block, 64 of each factor in turn: residual_norm2, estimate_scale,
    /// center_dot (codes.h), zero for padding vectors.
    std::vector<float> factors;
    /// Where factor c (0, 1, 2 as above) of vector i sits in factors.
    static size_t factor_at(idx_t i, int c) {
        constexpr size_t bs = kernels::fast_scan_block;
        return size_t(i) / bs * 3 * bs + size_t(c) * bs + size_t(i) % bs;
    }

    IndexBQFastScan();
    IndexBQFastScan(
            idx_t d,
            int nbits = 1,
            faiss::MetricType metric = faiss::METRIC_L2);
    IndexBQFastScan(
            idx_t d,
            CodeBudget budget,
            faiss::MetricType metric = faiss::METRIC_L2);
    /// Takes the IndexBQ's configuration, plan and codes (copied and
    /// re-packed): the same vectors, searchable by fast scan.
    explicit IndexBQFastScan(const IndexBQ& index);

    NibbleLayout nibble_layout() const {
        return NibbleLayout(plan);
    }
    /// An IndexBQ with the same configuration and plan, and the same codes
    /// (unpacked) unless with_codes is false.
    IndexBQ to_IndexBQ(bool with_codes = true) const;

    /// Trains an IndexBQ of the same configuration and takes its plan.
    void train(idx_t n, const float* x) override;
    void add(idx_t n, const float* x) override;
    /// Adds codes of IndexBQ's layout (sa_encode), ids ntotal, ntotal + 1, ...
    void add_sa_codes(idx_t n, const uint8_t* codes);
    void search(
            idx_t n,
            const float* x,
            idx_t k,
            float* distances,
            idx_t* labels,
            const faiss::SearchParameters* params = nullptr) const override;
    void reset() override;
    void reconstruct(idx_t key, float* recons) const override;
    size_t remove_ids(const faiss::IDSelector& sel) override;

    size_t sa_code_size() const override;
    void sa_encode(idx_t n, const float* x, uint8_t* bytes) const override;
    void sa_decode(idx_t n, const uint8_t* bytes, float* x) const override;

    /// Vector i's code in IndexBQ's layout (sa_code_size() bytes).
    void get_code(idx_t i, uint8_t* code) const;
};

} // namespace faiss_bq
