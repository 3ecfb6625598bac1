// Estimators: how one query scores stored codes (DESIGN.md, "Estimators").
#pragma once

#include <faiss/MetricType.h>
#include <faiss_bq/codes.h>
#include <faiss_bq/kernels/kernels.h>
#include <faiss_bq/plan.h>

#include <vector>

namespace faiss_bq {

/** Scores the codes of a plan against one query at a time.
 *
 * Asymmetric, float query (query_bits = 0): the query is transformed,
 * y = R (q - c), and one look-up table per few coordinates of a group of
 * codes.h holds the sums of level * y over their bit patterns (coordinates
 * at 0 bits add the constant level * y); with a the code's
 * estimate_scale, <r, y> ~ a * <r_hat, y>. The score is the estimate
 * <c, q> + <x - c, c> + a <r_hat, y> (inner product) or |r|^2 + |y|^2 - 2 a
 * <r_hat, y> (squared L2). Asymmetric, quantized query (query_bits in 4..8):
 * each coordinate's level is written as a polynomial in its bits (1 bit: L0 +
 * (L1 - L0) b0; 2 bits adds b1 and b0 b1 terms; b bits 2^b - 1 terms), each
 * term's weights y_j * coefficient are quantized to query_bits planes per
 * group, and <r_hat, y> becomes popcounts of those planes against the group's
 * bits. A joint plan (BinarizationPlan::joint_levels) has the float query only:
 * one 16-entry table per nibble of <codeword, y>, each code's nibbles
 * gathered from its planes.
 * Symmetric (uniform plans of 1 or 2 bits only): the query is encoded with
 * the same plan and compared in code space (see IndexBQ for the values
 * returned).
 * score_block() scores a block of contiguous codes with one kernel call per
 * plane product (kernels/kernels.h); operator() is the block of one code.
 * One scorer per thread: both use scratch space.
 */
class QueryScorer {
   public:
    /// code_stride: bytes from one code to the next in score_block (0: the
    /// plan's code size; more when codes carry extra bytes after the
    /// factors, as IndexIVFBQ's do for METRIC_L2).
    QueryScorer(
            const BinarizationPlan& plan,
            faiss::MetricType metric,
            Estimator estimator,
            int query_bits,
            size_t code_stride = 0);

    /// Throws (naming the values) when the plan has no such estimator: the
    /// constructor's check, for callers that build scorers in threads.
    static void check(
            const BinarizationPlan& plan,
            Estimator estimator,
            int query_bits);

    /// y: R (q - c) when the caller has it (search() transforms a chunk of
    /// queries at once, impl/query_chunks.h); null: computed here.
    void set_query(const float* q, const float* y = nullptr);
    /// scores[i] = score of codes + i * code_stride, for i < n.
    void score_block(const uint8_t* codes, size_t n, float* scores);
    float operator()(const uint8_t* code) {
        float s;
        score_block(code, 1, &s);
        return s;
    }

    /// Codes per kernel call in score_block (its scratch is sized for it).
    static constexpr size_t block_codes = 256;

    /// Larger scores are better (inner product).
    bool higher_is_better() const {
        return metric == faiss::METRIC_INNER_PRODUCT;
    }

   private:
    const BinarizationPlan& plan;
    const CodeLayout layout;
    const faiss::MetricType metric;
    const Estimator estimator;
    const int query_bits;
    const size_t stride; ///< code_stride

    // asymmetric
    std::vector<float> y; ///< R (q - c)
    float y_norm2 = 0;
    float center_ip = 0; ///< <c, q>
    std::vector<float> lut;
    /// the tables of group g start at lut + lut_offset[g]
    std::vector<size_t> lut_offset;
    /// sum_j L_j[0] y_j: over 0-bit coordinates (float query), over all
    /// (quantized query)
    float base = 0;
    struct Term {
        int group;               ///< of the code layout
        int plane_mask;          ///< the group's planes ANDed in this term
        float lo = 0, delta = 0; ///< weight = lo + delta * u
        /// an all-ones plane (counts the term's bits), then the query_bits
        /// planes of u
        std::vector<uint8_t> planes;
        std::vector<uint32_t> counts; ///< scratch of score_block
    };
    std::vector<Term> terms;

    /// A joint plan's nibbles (BinarizationPlan::joint_levels): lut then
    /// holds 16 entries per nibble, summed per code (residual_ips).
    NibbleLayout nibbles;

    // symmetric
    std::vector<uint8_t> query_code;
    /// nbits = 2: an all-ones plane, then the query's planes
    std::vector<uint8_t> query_planes;
    int64_t query_sum = 0, query_sum2 = 0;

    // scratch of score_block
    std::vector<float> residual, group_ips;
    std::vector<int32_t> hamming;
    std::vector<uint32_t> counts[3];

    void set_query_lut();
    void set_query_quantized();
    void residual_ips(const uint8_t* codes, size_t n);
    void symmetric(const uint8_t* codes, size_t n, float* scores);
};

/** The asymmetric float-query estimator over the fast-scan layout
 * (NibbleLayout, IndexBQFastScan), with its tables quantized to bytes.
 *
 * Table k holds, for each value of sub-code k, the sum over its members of
 * level(j, index) * y_j (y = R (q - c)), stored as u = round((entry -
 * min_k) / step) so that <r_hat, y> ~ sum_k step * u_k + bias (bias = sum_k
 * min_k plus the constant of the 0-bit coordinates). One step serves a run
 * of columns: the largest table range of the run over 127 (the kernels add
 * the two entries of a byte in 8 bits: kernels::fast_scan_max_entry; 255
 * levels, as FAISS's PQ fast scan has, measured no better recall on
 * use512-wordnet and minilm-sap). The layout puts the coordinates with most
 * bits, whose tables have the largest ranges, in the first columns; when
 * that pays (the rounding variance at least halves), the columns are split
 * in two runs with a step each, [0, split) and [split, ncols), summed apart.
 * Each rounding is at most its step / 2 (max_error()), their sum has
 * standard deviation rms_error(). The score then takes the code's factors
 * as QueryScorer does. One scorer per query in flight (scan_group scans
 * several queries' blocks at once).
 */
class FastScanScorer {
   public:
    FastScanScorer(const BinarizationPlan& plan, faiss::MetricType metric);

    /// y as QueryScorer::set_query.
    void set_query(const float* q, const float* y = nullptr);
    /// Scores of the 64 * nblocks vectors of nblocks consecutive blocks
    /// (their codes at blocks, their factors at factors: per block, 64 of
    /// each in turn, residual_norm2, estimate_scale, center_dot;
    /// IndexBQFastScan::factors) into out.
    void scan(
            const uint8_t* blocks,
            const float* factors,
            size_t nblocks,
            float* out);

    /// Of the current query: scan() and scan_group() list in better[0,
    /// nbetter) the positions of the scores strictly better than worst (a
    /// heap's worst kept; set_query sets it to keep every score).
    float worst = 0;
    std::vector<uint32_t> better;
    size_t nbetter = 0;

    /// scan() of nq scorers (of one plan and metric, each set to its query)
    /// over the same blocks, into out[q]: each loaded column of codes serves
    /// every query (kernels::fast_scan_accumulate, fast_scan_max_queries at
    /// a time). Query q's scores are those scan() gives it alone.
    static void scan_group(
            FastScanScorer* const* scorers,
            size_t nq,
            const uint8_t* blocks,
            const float* factors,
            size_t nblocks,
            float* const* out);

    /// Of the current query: the largest error of the estimate of <r_hat, y>
    /// from rounding the tables, and its standard deviation.
    double max_error() const;
    double rms_error() const;

    const NibbleLayout nibbles;
    /// Of the current query: columns [0, split) have step_hi, the others
    /// step_lo.
    size_t split = 0;
    float step_hi = 1, step_lo = 1, bias = 0;

   private:
    const BinarizationPlan& plan;
    const faiss::MetricType metric;
    std::vector<float> member_levels; ///< NibbleLayout::member_levels(plan)
    std::vector<float> y, table, table_min, column_range, suffix;
    std::vector<uint8_t> lut;
    std::vector<uint32_t> sums_hi, sums_lo;
    kernels::FastScanAffine affine() const;
    float y_norm2 = 0, center_ip = 0;
};

} // namespace faiss_bq
