#include <faiss_bq/IndexBQRefine.h>

#include <faiss_bq/IndexBQ.h>
#include <faiss_bq/IndexBQFamily.h>
#include <faiss_bq/estimators.h>
#include <faiss_bq/impl/validate.h>

#include <faiss/IndexFlat.h>
#include <faiss/impl/DistanceComputer.h>
#include <faiss/impl/FaissAssert.h>
#include <faiss/utils/Heap.h>
#include <faiss/utils/distances.h>

#include <cmath>
#include <memory>
#include <vector>

namespace faiss_bq {

namespace {

/// Distances by reconstruction, for refine stores without a distance
/// computer (FAISS 1.7.3's generic one only does METRIC_L2).
struct ReconstructDistanceComputer : faiss::DistanceComputer {
    const faiss::Index& index;
    std::vector<float> buf;
    const float* q = nullptr;

    explicit ReconstructDistanceComputer(const faiss::Index& index)
            : index(index), buf(index.d) {}
    void set_query(const float* x) override {
        q = x;
    }
    float operator()(idx_t i) override {
        index.reconstruct(i, buf.data());
        return index.metric_type == faiss::METRIC_INNER_PRODUCT
                ? faiss::fvec_inner_product(q, buf.data(), index.d)
                : faiss::fvec_L2sqr(q, buf.data(), index.d);
    }
    float symmetric_dis(idx_t, idx_t) override {
        FAISS_THROW_MSG("ReconstructDistanceComputer: no symmetric_dis");
    }
};

std::unique_ptr<faiss::DistanceComputer> refine_distance_computer(
        const faiss::Index& refine) {
    try {
        return std::unique_ptr<faiss::DistanceComputer>(
                refine.get_distance_computer());
    } catch (const faiss::FaissException&) {
        return std::make_unique<ReconstructDistanceComputer>(refine);
    }
}

/// The effective options of one search() call.
struct RefineOptions {
    float k_factor;
    float bound_sigmas;
    const faiss::SearchParameters* base_params;
};

RefineOptions resolve(
        const IndexBQRefine& index,
        const faiss::SearchParameters* params,
        faiss::SearchParameters& sel_only) {
    RefineOptions o{index.k_factor, index.bound_sigmas, params};
    if (auto rp = dynamic_cast<const SearchParametersBQRefine*>(params)) {
        if (rp->k_factor != 0) {
            o.k_factor = rp->k_factor;
        }
        if (!(rp->bound_sigmas < 0)) { // NaN is taken, and rejected below
            o.bound_sigmas = rp->bound_sigmas;
        }
        o.base_params = rp->base_params;
        if (!o.base_params && rp->sel) {
            sel_only.sel = rp->sel;
            o.base_params = &sel_only;
        }
    }
    FAISS_THROW_IF_NOT_FMT(
            std::isfinite(o.k_factor) && o.k_factor >= 1,
            "IndexBQRefine: k_factor=%g must be >= 1",
            o.k_factor);
    FAISS_THROW_IF_NOT_FMT(
            std::isfinite(o.bound_sigmas) && o.bound_sigmas >= 0,
            "IndexBQRefine: bound_sigmas=%g must be >= 0",
            o.bound_sigmas);
    return o;
}

/// The first stage when it is an IndexBQ (or an IndexBQFamily that chose
/// one) with a uniform plan searched with the asymmetric estimator (what the
/// error model covers), else null.
const IndexBQ* bounded_first_stage(
        const faiss::Index* base,
        const faiss::SearchParameters* base_params) {
    if (auto family = dynamic_cast<const IndexBQFamily*>(base)) {
        base = family->index;
    }
    auto bq = dynamic_cast<const IndexBQ*>(base);
    if (!bq || !bq->plan.is_uniform()) {
        return nullptr;
    }
    Estimator est = bq->estimator;
    if (auto p = dynamic_cast<const SearchParametersBQ*>(base_params)) {
        est = p->estimator;
    }
    return est == Estimator::asymmetric ? bq : nullptr;
}

/// Re-scores the candidates (cand_I, with first-stage estimates cand_D and
/// error sigmas, or null) of queries [0, n) and keeps the k best.
template <class C>
void refine_candidates(
        const IndexBQRefine& index,
        idx_t n,
        const float* x,
        idx_t k,
        idx_t k_base,
        const float* cand_D,
        const idx_t* cand_I,
        const float* sigmas,
        float bound_sigmas,
        float* distances,
        idx_t* labels) {
    size_t skipped = 0;
#pragma omp parallel reduction(+ : skipped) if (n > 1)
    {
        auto dc = refine_distance_computer(*index.refine_index);
#pragma omp for
        for (idx_t q = 0; q < n; q++) {
            float* D = distances + q * k;
            idx_t* I = labels + q * k;
            faiss::heap_heapify<C>(k, D, I);
            dc->set_query(x + q * index.d);
            for (idx_t j = q * k_base; j < (q + 1) * k_base; j++) {
                const idx_t id = cand_I[j];
                if (id < 0) {
                    continue;
                }
                // D[0] is the k-th best so far (the neutral value until k
                // candidates are in): skip a candidate whose estimate is
                // worse by more than bound_sigmas of its error.
                if (sigmas) {
                    const float optimistic = cand_D[j] +
                            (C::is_max ? -bound_sigmas : bound_sigmas) *
                                    sigmas[j];
                    if (C::cmp(optimistic, D[0])) {
                        skipped++;
                        continue;
                    }
                }
                const float dis = (*dc)(id);
                if (C::cmp2(D[0], dis, I[0], id)) {
                    faiss::heap_replace_top<C>(k, D, I, dis, id);
                }
            }
            faiss::heap_reorder<C>(k, D, I);
        }
    }
    index.last_stats.skipped = skipped;
}

} // namespace

IndexBQRefine::IndexBQRefine() = default;

IndexBQRefine::IndexBQRefine(faiss::Index* base, faiss::Index* refine)
        : faiss::Index(
                  base ? base->d : 0,
                  base ? base->metric_type : faiss::METRIC_L2),
          base_index(base),
          refine_index(refine) {
    FAISS_THROW_IF_NOT_MSG(base, "IndexBQRefine: null first stage");
    if (!refine_index) {
        refine_index = new faiss::IndexFlat(base->d, base->metric_type);
        own_refine_index = true;
        // An exact store of vectors already in the first stage cannot be
        // filled here: it must start empty, like the first stage.
        FAISS_THROW_IF_NOT_FMT(
                base->ntotal == 0,
                "IndexBQRefine: the first stage holds %ld vectors but the "
                "exact store starts empty; pass a filled refine index",
                long(base->ntotal));
    }
    check_consistent("IndexBQRefine");
    ntotal = base->ntotal;
    is_trained = base->is_trained && refine_index->is_trained;
}

IndexBQRefine::~IndexBQRefine() {
    if (own_fields) {
        delete base_index;
    }
    if (own_refine_index) {
        delete refine_index;
    }
}

void IndexBQRefine::check_consistent(const char* where) const {
    FAISS_THROW_IF_NOT_FMT(
            base_index && refine_index, "%s: missing a stage", where);
    FAISS_THROW_IF_NOT_FMT(
            refine_index->d == base_index->d,
            "%s: refine store d=%ld differs from the first stage's d=%ld",
            where,
            long(refine_index->d),
            long(base_index->d));
    FAISS_THROW_IF_NOT_FMT(
            refine_index->metric_type == base_index->metric_type,
            "%s: refine store metric=%d differs from the first stage's "
            "metric=%d",
            where,
            int(refine_index->metric_type),
            int(base_index->metric_type));
    FAISS_THROW_IF_NOT_FMT(
            refine_index->ntotal == base_index->ntotal,
            "%s: refine store ntotal=%ld differs from the first stage's "
            "ntotal=%ld",
            where,
            long(refine_index->ntotal),
            long(base_index->ntotal));
}

void IndexBQRefine::train(idx_t n, const float* x) {
    if (!base_index->is_trained) {
        base_index->train(n, x);
    }
    if (!refine_index->is_trained) {
        refine_index->train(n, x);
    }
    is_trained = true;
}

void IndexBQRefine::add(idx_t n, const float* x) {
    FAISS_THROW_IF_NOT_MSG(
            is_trained, "IndexBQRefine::add: the index is not trained");
    FAISS_THROW_IF_NOT_FMT(n >= 0, "IndexBQRefine::add: n=%ld", long(n));
    check_consistent("IndexBQRefine::add");
    if (n == 0) {
        return;
    }
    check_finite("added", size_t(n), size_t(d), x);
    base_index->add(n, x);
    refine_index->add(n, x);
    ntotal = base_index->ntotal;
}

void IndexBQRefine::reset() {
    base_index->reset();
    refine_index->reset();
    ntotal = 0;
}

void IndexBQRefine::reconstruct(idx_t key, float* recons) const {
    refine_index->reconstruct(key, recons);
}

void IndexBQRefine::search(
        idx_t n,
        const float* x,
        idx_t k,
        float* distances,
        idx_t* labels,
        const faiss::SearchParameters* params) const {
    check_search_args("IndexBQRefine::search", is_trained, n, d, x, k);
    faiss::SearchParameters sel_only;
    const RefineOptions o = resolve(*this, params, sel_only);
    check_consistent("IndexBQRefine::search");
    last_stats = RefineStats();
    if (n == 0) {
        return;
    }
    // More candidates than vectors are never useful; fewer than k never.
    // k * k_factor rounded up, but not for float round-off (1.1f * 10 is
    // 11.0000002: 11 candidates, not 12).
    const double wanted = std::ceil(double(k) * o.k_factor - 1e-4);
    const idx_t k_base = std::max(k, idx_t(std::min(wanted, double(ntotal))));
    std::vector<float> cand_D(size_t(n) * k_base);
    std::vector<idx_t> cand_I(size_t(n) * k_base);
    base_index->search(
            n, x, k_base, cand_D.data(), cand_I.data(), o.base_params);

    std::vector<float> sigmas;
    const IndexBQ* bq = o.bound_sigmas > 0
            ? bounded_first_stage(base_index, o.base_params)
            : nullptr;
    if (bq) {
        sigmas.resize(cand_I.size());
        asymmetric_error_sigmas(
                *bq, n, x, k_base, cand_I.data(), sigmas.data());
    }
    for (idx_t id : cand_I) {
        last_stats.candidates += id >= 0;
    }
    const float* sig = bq ? sigmas.data() : nullptr;
    if (metric_type == faiss::METRIC_INNER_PRODUCT) {
        refine_candidates<faiss::CMin<float, idx_t>>(
                *this,
                n,
                x,
                k,
                k_base,
                cand_D.data(),
                cand_I.data(),
                sig,
                o.bound_sigmas,
                distances,
                labels);
    } else {
        refine_candidates<faiss::CMax<float, idx_t>>(
                *this,
                n,
                x,
                k,
                k_base,
                cand_D.data(),
                cand_I.data(),
                sig,
                o.bound_sigmas,
                distances,
                labels);
    }
}

} // namespace faiss_bq
