#include <faiss_bq/IndexIVFBQ.h>

#include <faiss_bq/codes.h>
#include <faiss_bq/estimators.h>
#include <faiss_bq/impl/ivf_scanner.h>
#include <faiss_bq/impl/validate.h>

#include <faiss/impl/AuxIndexStructures.h>
#include <faiss/impl/FaissAssert.h>
#include <faiss/invlists/InvertedLists.h>
#include <faiss/utils/distances.h>
#include <faiss/utils/utils.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

namespace faiss_bq {

namespace {

/// Vectors encoded at a time (bounds the residual and code scratch).
constexpr size_t encode_rows = 16384;

/// The quantizer, once it is known to fit (before IndexIVF's own check,
/// whose message names no values).
faiss::Index* checked_quantizer(faiss::Index* quantizer, size_t d) {
    FAISS_THROW_IF_NOT_MSG(quantizer, "IndexIVFBQ: the quantizer is null");
    FAISS_THROW_IF_NOT_FMT(
            quantizer->d == faiss::Index::idx_t(d),
            "IndexIVFBQ: the quantizer has d=%ld, the index d=%ld",
            long(quantizer->d),
            long(d));
    return quantizer;
}

size_t uniform_plane_bytes(size_t d, int nbits) {
    return size_t(nbits) * ((d + 7) / 8);
}

/// The scanner of IndexIVFBQ: QueryScorer's inner-product estimate of
/// <r, q> over the entries' planes and factors (IVFScannerBase adds the
/// list terms and keeps the heap).
struct IVFBQScanner : IVFScannerBase {
    mutable QueryScorer scorer;

    IVFBQScanner(
            const IndexIVFBQ& index,
            bool store_pairs,
            const faiss::IDSelector* sel)
            : IVFScannerBase(index, store_pairs, sel),
              scorer(index.plan,
                     faiss::METRIC_INNER_PRODUCT,
                     Estimator::asymmetric,
                     index.query_bits,
                     index.code_size) {}

    void set_query(const float* q) override {
        IVFScannerBase::set_query(q);
        scorer.set_query(q);
    }
    void estimate_ips(const uint8_t* entries, size_t n, float* ips)
            const override {
        scorer.score_block(entries, n, ips);
    }
};

} // namespace

void check_nprobe(const char* who, size_t nprobe) {
    FAISS_THROW_IF_NOT_FMT(
            nprobe > 0 && nprobe <= size_t(INT64_MAX),
            "%s: nprobe=%ld must be > 0 (an nprobe above nlist is clamped)",
            who,
            long(nprobe));
}

IndexIVFBQ::IndexIVFBQ() {
    is_trained = false;
}

IndexIVFBQ::IndexIVFBQ(
        faiss::Index* quantizer,
        size_t d,
        size_t nlist,
        int nbits,
        faiss::MetricType metric)
        : IndexIVF(
                  checked_quantizer(quantizer, d),
                  d,
                  nlist,
                  entry_size(uniform_plane_bytes(d, nbits)),
                  metric) {
    check_index_args("IndexIVFBQ", idx_t(d), nbits, metric);
    init(nbits, 0);
}

IndexIVFBQ::IndexIVFBQ(
        faiss::Index* quantizer,
        size_t d,
        size_t nlist,
        CodeBudget budget,
        faiss::MetricType metric)
        : IndexIVF(
                  checked_quantizer(quantizer, d),
                  d,
                  nlist,
                  entry_size(budget.bytes),
                  metric) {
    (void)IndexBQ(
            idx_t(d), budget, metric); // validates d, the budget, the metric
    init(0, budget.bytes);
}

void IndexIVFBQ::init(int nb, size_t budget) {
    FAISS_THROW_IF_NOT_FMT(
            nlist > 0, "IndexIVFBQ: nlist=%zu must be > 0", nlist);
    nbits = nb;
    budget_bytes = budget;
    // Trained only when the plan is: the quantizer alone is not enough.
    is_trained = false;
}

size_t IndexIVFBQ::entry_size(size_t plane_bytes) {
    return plane_bytes + CodeLayout::factor_bytes + sizeof(float);
}

size_t IndexIVFBQ::plane_bytes() const {
    return budget_bytes > 0 ? budget_bytes : uniform_plane_bytes(d, nbits);
}

TrainerOptions IndexIVFBQ::training_options() const {
    TrainerOptions options = trainer;
    options.nbits = nbits;
    options.budget_bytes = budget_bytes;
    options.metric = metric_type;
    options.estimator = Estimator::asymmetric;
    options.verbose = verbose;
    return options;
}

void IndexIVFBQ::train_residual(idx_t n, const float* x) {
    FAISS_THROW_IF_NOT_FMT(
            ntotal == 0,
            "IndexIVFBQ::train: the index holds %ld codes of the current "
            "plan; reset() first",
            long(ntotal));
    check_finite("training", size_t(n), size_t(d), x);
    const TrainerOptions options = training_options();
    // The trainer fits at most max_fit_rows and holds out heldout_fraction:
    // assigning more rows to lists would only be thrown away.
    size_t ns = size_t(n);
    const size_t wanted = size_t(
            double(options.max_fit_rows) / (1 - options.heldout_fraction));
    const float* xs = faiss::fvecs_maybe_subsample(
            size_t(d),
            &ns,
            std::max(wanted, TrainerOptions::min_train_points),
            x,
            verbose,
            options.seed);
    std::unique_ptr<const float[]> owned(xs != x ? xs : nullptr);
    std::vector<idx_t> assign(ns);
    quantizer->assign(idx_t(ns), xs, assign.data());
    std::vector<float> residuals(ns * d);
    quantizer->compute_residual_n(
            idx_t(ns), xs, residuals.data(), assign.data());
    BinarizationPlan trained =
            train_plan(ns, size_t(d), residuals.data(), options);
    FAISS_THROW_IF_NOT_FMT(
            trained.code_bytes <= plane_bytes(),
            "IndexIVFBQ: the trained plan takes %zu bytes of planes, the "
            "entries hold %zu",
            trained.code_bytes,
            plane_bytes());
    trained.reason = "trained on the residuals x - c_list of " +
            std::to_string(ns) +
            " training vectors (nlist=" + std::to_string(nlist) +
            "): " + trained.reason;
    plan = std::move(trained);
    is_trained = true;
}

void IndexIVFBQ::add_with_ids(idx_t n, const float* x, const idx_t* xids) {
    FAISS_THROW_IF_NOT_MSG(
            is_trained,
            "IndexIVFBQ::add: the index is not trained (train() fits the "
            "coarse quantizer and the plan)");
    FAISS_THROW_IF_NOT_FMT(n >= 0, "IndexIVFBQ::add: n=%ld", long(n));
    check_finite("added", size_t(n), size_t(d), x);
    IndexIVF::add_with_ids(n, x, xids);
}

void IndexIVFBQ::encode_vectors(
        idx_t n,
        const float* x,
        const idx_t* list_nos,
        uint8_t* codes,
        bool include_listno) const {
    FAISS_THROW_IF_NOT_MSG(
            is_trained, "IndexIVFBQ::encode_vectors: the index is not trained");
    const size_t cs = code_size;
    const size_t stride = cs + (include_listno ? coarse_code_size() : 0);
    const size_t bq_size = CodeLayout(plan).code_size;
    for (size_t i0 = 0; i0 < size_t(n); i0 += encode_rows) {
        const size_t m = std::min(encode_rows, size_t(n) - i0);
        std::vector<float> r(m * d), c(m * d);
        std::vector<uint8_t> bq(m * bq_size);
#pragma omp parallel for if (m > 1000)
        for (size_t i = 0; i < m; i++) {
            const idx_t l = list_nos[i0 + i];
            if (l >= 0) {
                quantizer->reconstruct(l, c.data() + i * d);
            }
            for (size_t j = 0; j < size_t(d); j++) {
                r[i * d + j] = x[(i0 + i) * d + j] - c[i * d + j];
            }
        }
        encode(plan, m, r.data(), bq.data());
        // The scan's s(q) is IndexBQ's estimate of <r, q> for a plan centred
        // at c_p (exact in c_p). Its part that would change with q - c_l
        // instead of q, <c_p, c_l> + <e, R c_l> (e the estimate vector), is
        // fixed per vector: rc = R c_l = R ((c_l + c_p) - c_p).
        std::vector<float> shifted(m * d), rc(m * d), e(m * d);
        for (size_t i = 0; i < m; i++) {
            for (size_t j = 0; j < size_t(d); j++) {
                shifted[i * d + j] = c[i * d + j] + plan.center[j];
            }
        }
        plan.apply(m, shifted.data(), rc.data());
        estimate_vectors(plan, m, bq.data(), e.data());
        const bool l2 = metric_type == faiss::METRIC_L2;
        const size_t ccs = include_listno ? coarse_code_size() : 0;
        uint8_t* entries = codes + i0 * stride + ccs;
        codes_to_entries(m, bq.data(), entries, stride);
#pragma omp parallel for if (m > 1000)
        for (size_t i = 0; i < m; i++) {
            uint8_t* out = entries + i * stride;
            const idx_t l = list_nos[i0 + i];
            if (include_listno) {
                encode_listno(l, out - ccs);
            }
            if (l < 0) { // not stored: FAISS's add_core skips it
                std::memset(out, 0, cs);
                continue;
            }
            const float* ri = r.data() + i * d;
            const float* ci = c.data() + i * d;
            const float shift =
                    faiss::fvec_inner_product(plan.center.data(), ci, d) +
                    faiss::fvec_inner_product(
                            e.data() + i * d, rc.data() + i * d, d);
            const float f = l2 ? faiss::fvec_norm_L2sqr(ri, d) + 2 * shift
                               : faiss::fvec_inner_product(ri, ci, d) - shift;
            std::memcpy(out + cs - sizeof(float), &f, sizeof(float));
        }
    }
}

void IndexIVFBQ::codes_to_entries(
        size_t n,
        const uint8_t* codes,
        uint8_t* entries,
        size_t entry_stride) const {
    const size_t bq_size = CodeLayout(plan).code_size;
    for (size_t i = 0; i < n; i++) {
        std::memset(entries + i * entry_stride, 0, code_size);
        std::memcpy(entries + i * entry_stride, codes + i * bq_size, bq_size);
    }
}

void IndexIVFBQ::entry_to_code(const uint8_t* entry, uint8_t* code) const {
    std::memcpy(code, entry, CodeLayout(plan).code_size);
}

void IndexIVFBQ::search(
        idx_t n,
        const float* x,
        idx_t k,
        float* distances,
        idx_t* labels,
        const faiss::SearchParameters* params) const {
    check_search_args("IndexIVFBQ::search", is_trained, n, d, x, k);
    if (auto ivf = dynamic_cast<const faiss::SearchParametersIVF*>(params)) {
        check_nprobe("IndexIVFBQ::search", ivf->nprobe);
    } else {
        check_nprobe("IndexIVFBQ::search", nprobe);
    }
    if (n == 0) {
        return;
    }
    IndexIVF::search(n, x, k, distances, labels, params);
}

void IndexIVFBQ::search_preassigned(
        idx_t n,
        const float* x,
        idx_t k,
        const idx_t* assign,
        const float* centroid_dis,
        float* distances,
        idx_t* labels,
        bool store_pairs,
        const faiss::IVFSearchParameters* params,
        faiss::IndexIVFStats* stats) const {
    check_search_args("IndexIVFBQ::search_preassigned", is_trained, n, d, x, k);
    check_nprobe(
            "IndexIVFBQ::search_preassigned", params ? params->nprobe : nprobe);
    check_query_bits();
    IndexIVF::search_preassigned(
            n,
            x,
            k,
            assign,
            centroid_dis,
            distances,
            labels,
            store_pairs,
            params,
            stats);
}

void IndexIVFBQ::check_query_bits() const {
    faiss_bq::check_query_bits("IndexIVFBQ", query_bits);
    QueryScorer::check(plan, Estimator::asymmetric, query_bits);
}

faiss::InvertedListScanner* IndexIVFBQ::get_InvertedListScanner(
        bool store_pairs,
        const faiss::IDSelector* sel) const {
    FAISS_THROW_IF_NOT_MSG(is_trained, "IndexIVFBQ: the index is not trained");
    check_query_bits();
    return new IVFBQScanner(*this, store_pairs, sel);
}

void IndexIVFBQ::reconstruct_from_offset(
        int64_t list_no,
        int64_t offset,
        float* recons) const {
    FAISS_THROW_IF_NOT_FMT(
            list_no >= 0 && size_t(list_no) < nlist && offset >= 0 &&
                    size_t(offset) < invlists->list_size(list_no),
            "IndexIVFBQ: no entry %ld in list %ld (nlist=%zu)",
            long(offset),
            long(list_no),
            nlist);
    faiss::InvertedLists::ScopedCodes entry(invlists, list_no, offset);
    decode_entry(list_no, entry.get(), recons);
}

void IndexIVFBQ::decode_entry(idx_t list_no, const uint8_t* entry, float* x)
        const {
    std::vector<uint8_t> code(CodeLayout(plan).code_size);
    entry_to_code(entry, code.data());
    decode(plan, 1, code.data(), x);
    std::vector<float> c(d);
    quantizer->reconstruct(list_no, c.data());
    for (size_t j = 0; j < size_t(d); j++) {
        x[j] += c[j];
    }
}

void IndexIVFBQ::sa_decode(idx_t n, const uint8_t* bytes, float* x) const {
    FAISS_THROW_IF_NOT_MSG(
            is_trained, "IndexIVFBQ::sa_decode: the index is not trained");
    const size_t ccs = coarse_code_size(), stride = ccs + code_size;
    for (idx_t i = 0; i < n; i++) {
        const uint8_t* in = bytes + i * stride;
        const idx_t l = decode_listno(in);
        FAISS_THROW_IF_NOT_FMT(
                l >= 0 && size_t(l) < nlist,
                "IndexIVFBQ::sa_decode: code %ld names list %ld (nlist=%zu)",
                long(i),
                long(l),
                nlist);
        decode_entry(l, in + ccs, x + i * d);
    }
}

void IndexIVFBQ::check_compatible_for_merge(const faiss::Index& other) const {
    IndexIVF::check_compatible_for_merge(other);
    auto o = dynamic_cast<const IndexIVFBQ*>(&other);
    FAISS_THROW_IF_NOT_MSG(o, "IndexIVFBQ: can only merge another IndexIVFBQ");
    FAISS_THROW_IF_NOT_FMT(
            o->nbits == nbits && o->budget_bytes == budget_bytes &&
                    o->metric_type == metric_type,
            "IndexIVFBQ: cannot merge nbits=%d budget_bytes=%zu metric=%d "
            "into nbits=%d budget_bytes=%zu metric=%d",
            o->nbits,
            o->budget_bytes,
            int(o->metric_type),
            nbits,
            budget_bytes,
            int(metric_type));
    FAISS_THROW_IF_NOT_MSG(
            o->plan.center == plan.center &&
                    o->plan.rotation == plan.rotation &&
                    o->plan.thresholds == plan.thresholds &&
                    o->plan.levels == plan.levels &&
                    o->plan.bits == plan.bits &&
                    o->plan.joint_levels == plan.joint_levels,
            "IndexIVFBQ: cannot merge indexes trained with different plans");
}

} // namespace faiss_bq
