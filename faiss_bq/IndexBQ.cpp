#include <faiss_bq/IndexBQ.h>

#include <faiss_bq/estimators.h>
#include <faiss_bq/impl/add_progress.h>
#include <faiss_bq/impl/merge_heaps.h>
#include <faiss_bq/impl/query_chunks.h>
#include <faiss_bq/impl/validate.h>

#include <faiss/impl/AuxIndexStructures.h>
#include <faiss/impl/FaissAssert.h>
#include <faiss/impl/IDSelector.h>
#include <faiss/utils/Heap.h>
#include <faiss/utils/distances.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

namespace faiss_bq {

namespace {

/// Validates the constructor's arguments and returns the code size.
size_t checked_code_size(idx_t d, int nbits, faiss::MetricType metric) {
    FAISS_THROW_IF_NOT_FMT(d > 0, "IndexBQ: d=%ld must be > 0", long(d));
    FAISS_THROW_IF_NOT_FMT(
            nbits == 1 || nbits == 2,
            "IndexBQ: nbits=%d must be 1 or 2",
            nbits);
    FAISS_THROW_IF_NOT_FMT(
            metric == faiss::METRIC_L2 || metric == faiss::METRIC_INNER_PRODUCT,
            "IndexBQ: metric=%d: only METRIC_L2 and METRIC_INNER_PRODUCT",
            int(metric));
    return CodeLayout(int(d), nbits).code_size;
}

size_t checked_budget_code_size(
        idx_t d,
        size_t budget_bytes,
        faiss::MetricType metric) {
    checked_code_size(d, 1, metric);
    FAISS_THROW_IF_NOT_FMT(
            budget_bytes >= 1 && budget_bytes <= max_budget_bytes(size_t(d)),
            "IndexBQ: budget of %zu bytes for d=%ld: must be at least 1 byte "
            "and at most 4 bits per coordinate (%zu bytes)",
            budget_bytes,
            long(d),
            max_budget_bytes(size_t(d)));
    return budget_bytes + CodeLayout::factor_bytes;
}

/// Pushes the scores of codes [j0, j1) against the scorer's query into the
/// heap (k entries). Ids in increasing order, admitted only when strictly
/// better than the worst kept: the smaller id wins a tie.
template <class C>
void scan_codes(
        const IndexBQ& index,
        QueryScorer& scorer,
        idx_t j0,
        idx_t j1,
        idx_t k,
        float* D,
        idx_t* I,
        const faiss::IDSelector* sel,
        std::vector<float>& scores) {
    const size_t cs = index.code_size;
    const size_t block = scores.size();
    for (idx_t jb = j0; jb < j1; jb += idx_t(block)) {
        const size_t m = std::min(block, size_t(j1 - jb));
        scorer.score_block(index.codes.data() + jb * cs, m, scores.data());
        push_scores<C>(k, D, I, scores.data(), m, jb, sel);
    }
}

/// k-NN over all codes for queries [0, n) (search_flat: one scorer per
/// thread, over the queries or over the codes).
template <class C>
void search_codes(
        const IndexBQ& index,
        idx_t n,
        const float* x,
        idx_t k,
        float* distances,
        idx_t* labels,
        Estimator estimator,
        int query_bits,
        const faiss::IDSelector* sel) {
    struct Scanner {
        QueryScorer scorer;
        std::vector<float> scores;
    };
    const bool transform = estimator == Estimator::asymmetric;
    for_query_chunks(
            index.plan,
            n,
            x,
            transform,
            [&](idx_t i0, idx_t m, const float* y) {
                search_flat<C>(
                        m,
                        index.ntotal,
                        k,
                        QueryScorer::block_codes,
                        distances + i0 * k,
                        labels + i0 * k,
                        [&] {
                            return Scanner{
                                    QueryScorer(
                                            index.plan,
                                            index.metric_type,
                                            estimator,
                                            query_bits),
                                    std::vector<float>(
                                            QueryScorer::block_codes)};
                        },
                        [&](Scanner& s,
                            idx_t i,
                            idx_t j0,
                            idx_t j1,
                            float* D,
                            idx_t* I) {
                            s.scorer.set_query(
                                    x + (i0 + i) * index.d,
                                    y ? y + i * index.d : nullptr);
                            scan_codes<C>(
                                    index,
                                    s.scorer,
                                    j0,
                                    j1,
                                    k,
                                    D,
                                    I,
                                    sel,
                                    s.scores);
                        });
            });
}

/// The FAISS distance-computer interface over a QueryScorer.
struct BQDistanceComputer : faiss::FlatCodesDistanceComputer {
    const IndexBQ& index;
    QueryScorer scorer;
    const CodeLayout layout;
    float center_norm2 = 0;

    /// symmetric_dis's reconstructions, direct-mapped by id (id % rows).
    /// FAISS's HNSW compares the members of a neighbour list with each
    /// other whenever it prunes one: on use512 (M = 32) about 2,500
    /// symmetric_dis per added vector among about 120 distinct vectors, a
    /// number that grows with the graph until the lists are full. Decoding
    /// both codes per call (a CodeLayout built and d bits gathered each
    /// time) made adding 40x slower than IndexHNSWFlat; cached, a vector is
    /// decoded about once per added vector that touches it. Allocated by
    /// the first symmetric_dis: search never calls it.
    static constexpr size_t cached_rows = 1024;
    std::vector<float> rows;
    std::vector<idx_t> row_id; ///< the id decoded in each row, -1: none
    std::vector<float> spare;  ///< j's row when i holds the slot of both
    size_t n_symmetric_dis = 0, n_decoded = 0;

    BQDistanceComputer(
            const IndexBQ& index,
            Estimator estimator,
            int query_bits)
            : FlatCodesDistanceComputer(index.codes.data(), index.code_size),
              index(index),
              scorer(index.plan, index.metric_type, estimator, query_bits),
              layout(index.layout()) {
        for (float c : index.plan.center) {
            center_norm2 += c * c;
        }
    }

    ~BQDistanceComputer() override {
        indexBQ_stats.add(n_symmetric_dis, n_decoded);
    }

    void set_query(const float* x) override {
        scorer.set_query(x);
    }
    float distance_to_code(const uint8_t* code) override {
        return scorer(code);
    }

    void decode_into(idx_t id, float* y) {
        decode_residuals(index.plan, layout, 1, codes + id * code_size, y);
        n_decoded++;
    }
    const float* reconstruction(idx_t id) {
        const size_t slot = size_t(id) % cached_rows;
        float* row = rows.data() + slot * index.d;
        if (row_id[slot] != id) {
            decode_into(id, row);
            row_id[slot] = id;
        }
        return row;
    }

    /// Between two stored vectors (graph construction): the metric between
    /// their least-squares reconstructions, in the transformed space, O(d).
    /// The inner product adds the exact <x - c, c> of each and |c|^2:
    /// <x_i, x_j> = |c|^2 + <x_i - c, c> + <x_j - c, c> + <x_i - c, x_j - c>.
    float symmetric_dis(idx_t i, idx_t j) override {
        n_symmetric_dis++;
        if (rows.empty()) {
            rows.resize(cached_rows * index.d);
            row_id.assign(cached_rows, -1);
            spare.resize(index.d);
        }
        const float* yi = reconstruction(i);
        const float* yj = yi;
        if (j != i && size_t(j) % cached_rows == size_t(i) % cached_rows) {
            decode_into(j, spare.data());
            yj = spare.data();
        } else if (j != i) {
            yj = reconstruction(j);
        }
        if (index.metric_type == faiss::METRIC_L2) {
            return faiss::fvec_L2sqr(yi, yj, index.d);
        }
        return faiss::fvec_inner_product(yi, yj, index.d) + center_norm2 +
                layout.center_dot(codes + i * code_size) +
                layout.center_dot(codes + j * code_size);
    }
};

} // namespace

IndexBQStats indexBQ_stats;

void IndexBQStats::reset() {
    n_symmetric_dis = n_decoded = 0;
}

void IndexBQStats::add(size_t symmetric_dis, size_t decoded) {
#pragma omp critical(faiss_bq_indexBQ_stats)
    {
        n_symmetric_dis += symmetric_dis;
        n_decoded += decoded;
    }
}

IndexBQ::IndexBQ() : IndexFlatCodes() {
    is_trained = false;
}

IndexBQ::IndexBQ(idx_t d, int nbits, faiss::MetricType metric)
        : IndexFlatCodes(checked_code_size(d, nbits, metric), d, metric),
          nbits(nbits) {
    is_trained = false;
}

IndexBQ::IndexBQ(idx_t d, CodeBudget budget, faiss::MetricType metric)
        : IndexFlatCodes(
                  checked_budget_code_size(d, budget.bytes, metric),
                  d,
                  metric),
          nbits(0),
          budget_bytes(budget.bytes) {
    is_trained = false;
}

IndexBQ::IndexBQ(const BinarizationPlan& plan, faiss::MetricType metric)
        : IndexFlatCodes() {
    FAISS_THROW_IF_NOT_MSG(
            plan.is_trained(), "IndexBQ: the plan is not trained");
    // The foundation's plans keep their index form; others are a budget.
    const bool foundation = plan.is_uniform() && plan.nbits <= 2 &&
            plan.code_bytes == plan.nbits * ((size_t(plan.d) + 7) / 8);
    if (foundation) {
        code_size = checked_code_size(plan.d, plan.nbits, metric);
        nbits = plan.nbits;
    } else {
        code_size = checked_budget_code_size(plan.d, plan.code_bytes, metric);
        nbits = 0;
        budget_bytes = plan.code_bytes;
    }
    d = plan.d;
    metric_type = metric;
    this->plan = plan;
    is_trained = true;
}

void IndexBQ::train(idx_t n, const float* x) {
    FAISS_THROW_IF_NOT_FMT(
            ntotal == 0,
            "IndexBQ::train: the index holds %ld codes of the current plan; "
            "reset() first",
            long(ntotal));
    TrainerOptions options = trainer;
    options.nbits = nbits;
    options.budget_bytes = budget_bytes;
    options.metric = metric_type;
    options.verbose = verbose;
    options.estimator = estimator;
    FAISS_THROW_IF_NOT_FMT(n >= 0, "IndexBQ::train: n=%ld", long(n));
    plan = train_plan(size_t(n), size_t(d), x, options);
    is_trained = true;
}

void IndexBQ::add(idx_t n, const float* x) {
    FAISS_THROW_IF_NOT_MSG(
            is_trained, "IndexBQ::add: the index is not trained");
    FAISS_THROW_IF_NOT_FMT(n >= 0, "IndexBQ::add: n=%ld", long(n));
    if (n == 0) {
        return;
    }
    check_finite("added", size_t(n), size_t(d), x);
    // in steps, so that a verbose index reports its progress
    constexpr idx_t step = 65536;
    AddProgress progress(verbose, "IndexBQ", size_t(n));
    for (idx_t i0 = 0; i0 < n; i0 += step) {
        IndexFlatCodes::add(std::min(step, n - i0), x + i0 * d);
        progress.at(size_t(std::min(n, i0 + step)));
    }
}

void IndexBQ::search(
        idx_t n,
        const float* x,
        idx_t k,
        float* distances,
        idx_t* labels,
        const faiss::SearchParameters* params) const {
    FAISS_THROW_IF_NOT_MSG(
            is_trained, "IndexBQ::search: the index is not trained");
    FAISS_THROW_IF_NOT_FMT(
            k > 0, "IndexBQ::search: k=%ld must be > 0", long(k));
    FAISS_THROW_IF_NOT_FMT(n >= 0, "IndexBQ::search: n=%ld", long(n));
    if (n == 0) {
        return;
    }
    check_finite("query", size_t(n), size_t(d), x);
    Estimator est = estimator;
    int qbits = query_bits;
    const faiss::IDSelector* sel = nullptr;
    if (params) {
        sel = params->sel;
        if (auto bq = dynamic_cast<const SearchParametersBQ*>(params)) {
            est = bq->estimator;
            qbits = bq->query_bits;
        }
    }
    check_query_bits("IndexBQ", qbits);
    QueryScorer::check(plan, est, qbits);
    if (metric_type == faiss::METRIC_INNER_PRODUCT) {
        search_codes<faiss::CMin<float, idx_t>>(
                *this, n, x, k, distances, labels, est, qbits, sel);
    } else {
        search_codes<faiss::CMax<float, idx_t>>(
                *this, n, x, k, distances, labels, est, qbits, sel);
    }
}

void IndexBQ::sa_encode(idx_t n, const float* x, uint8_t* bytes) const {
    FAISS_THROW_IF_NOT_MSG(
            is_trained, "IndexBQ::sa_encode: the index is not trained");
    check_finite("encoded", size_t(n), size_t(d), x);
    encode(plan, size_t(n), x, bytes);
}

void IndexBQ::sa_decode(idx_t n, const uint8_t* bytes, float* x) const {
    FAISS_THROW_IF_NOT_MSG(
            is_trained, "IndexBQ::sa_decode: the index is not trained");
    decode(plan, size_t(n), bytes, x);
}

faiss::FlatCodesDistanceComputer* IndexBQ::get_FlatCodesDistanceComputer()
        const {
    return get_distance_computer(estimator, query_bits);
}

faiss::FlatCodesDistanceComputer* IndexBQ::get_distance_computer(
        Estimator est,
        int qbits) const {
    FAISS_THROW_IF_NOT_MSG(is_trained, "IndexBQ: the index is not trained");
    check_query_bits("IndexBQ", qbits);
    return new BQDistanceComputer(*this, est, qbits);
}

void asymmetric_error_sigmas(
        const IndexBQ& index,
        idx_t n,
        const float* x,
        idx_t k,
        const idx_t* labels,
        float* sigmas) {
    FAISS_THROW_IF_NOT_MSG(
            index.is_trained,
            "asymmetric_error_sigmas: the index is not trained");
    FAISS_THROW_IF_NOT_MSG(
            !index.plan.is_joint(),
            "asymmetric_error_sigmas: the plan quantizes its nibbles jointly "
            "(joint_levels); the error model covers scalar levels only");
    FAISS_THROW_IF_NOT_FMT(
            index.plan.is_uniform(),
            "asymmetric_error_sigmas: the plan allocates bits per coordinate "
            "(budget_bytes=%zu); the error model covers uniform plans only",
            index.budget_bytes);
    const size_t d = size_t(index.d);
    const CodeLayout layout = index.layout();
    const BinarizationPlan& plan = index.plan;
    // Where the quantization error sits: coordinate j's error scales with
    // its level range (Lloyd-Max on a coordinate of spread s puts both its
    // levels and its error in proportion to s), pooled under a rotation.
    std::vector<float> weight(d);
    double weight_sum = 0;
    for (size_t j = 0; j < d; j++) {
        const double range =
                plan.level(j, plan.n_levels() - 1) - plan.level(j, 0);
        weight[j] = float(range * range);
        weight_sum += weight[j];
    }
    const float metric_factor =
            index.metric_type == faiss::METRIC_L2 ? 2.f : 1.f;
    for (idx_t i = 0; i < n * k; i++) {
        FAISS_THROW_IF_NOT_FMT(
                labels[i] < index.ntotal,
                "asymmetric_error_sigmas: label %ld >= ntotal=%ld",
                long(labels[i]),
                long(index.ntotal));
    }
    std::vector<float> y(size_t(n) * d);
    plan.apply(size_t(n), x, y.data());
#pragma omp parallel if (n > 1)
    {
        std::vector<float> e(d);
#pragma omp for
        for (idx_t i = 0; i < n; i++) {
            // sum_j w_j y_j^2 / sum_j w_j: |y|^2 / d when the weights are equal
            double wy2 = 0, y2 = 0;
            for (size_t j = 0; j < d; j++) {
                const double v = y[i * d + j];
                wy2 += weight[j] * v * v;
                y2 += v * v;
            }
            const double spread = weight_sum > 0 ? wy2 / weight_sum : y2 / d;
            const float scale = metric_factor * float(std::sqrt(spread));
            for (idx_t j = 0; j < k; j++) {
                const idx_t id = labels[i * k + j];
                if (id < 0) {
                    sigmas[i * k + j] = 0;
                    continue;
                }
                const uint8_t* code = index.codes.data() + id * index.code_size;
                estimate_vectors(index.plan, 1, code, e.data());
                double e2 = 0;
                for (float v : e) {
                    e2 += double(v) * v;
                }
                // a = 0 (no usable direction) estimates 0: the error is <r, y>.
                // Unbiased scale: <e, r> = |r|^2, so |e - r|^2 = |e|^2 - |r|^2.
                // TurboQuant-MSE's codes do not hold <r_hat, r>: |r| bounds
                // its error |e - r| (its reconstruction is the nearer one).
                const double r2 = layout.residual_norm2(code);
                const double err2 = layout.estimate_scale(code) == 0 ||
                                plan.quantization == Quantization::turbo_mse
                        ? r2
                        : std::max(0.0, e2 - r2);
                sigmas[i * k + j] = scale * float(std::sqrt(err2));
            }
        }
    }
}

void IndexBQ::check_compatible_for_merge(const faiss::Index& other) const {
    auto o = dynamic_cast<const IndexBQ*>(&other);
    FAISS_THROW_IF_NOT_MSG(o, "IndexBQ: can only merge another IndexBQ");
    FAISS_THROW_IF_NOT_FMT(
            o->d == d && o->nbits == nbits && o->metric_type == metric_type &&
                    o->budget_bytes == budget_bytes,
            "IndexBQ: cannot merge d=%ld nbits=%d metric=%d into d=%ld "
            "nbits=%d metric=%d (budget_bytes %zu into %zu)",
            long(o->d),
            o->nbits,
            int(o->metric_type),
            long(d),
            nbits,
            int(metric_type),
            o->budget_bytes,
            budget_bytes);
    FAISS_THROW_IF_NOT_MSG(
            o->plan.center == plan.center &&
                    o->plan.rotation == plan.rotation &&
                    o->plan.thresholds == plan.thresholds &&
                    o->plan.levels == plan.levels && o->plan.bits == plan.bits,
            "IndexBQ: cannot merge indexes trained with different plans");
}

} // namespace faiss_bq
