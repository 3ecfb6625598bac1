#include <faiss_bq/IndexBQTurbo.h>

#include <faiss_bq/IndexBQ.h>
#include <faiss_bq/codes.h>
#include <faiss_bq/estimators.h>
#include <faiss_bq/impl/blas.h>
#include <faiss_bq/impl/merge_heaps.h>
#include <faiss_bq/impl/validate.h>
#include <faiss_bq/kernels/kernels.h>

#include <faiss/VectorTransform.h>
#include <faiss/impl/FaissAssert.h>
#include <faiss/utils/Heap.h>

#include <algorithm>
#include <cmath>
#include <cstring>

namespace faiss_bq {

namespace {

constexpr const char* kWho = "IndexBQTurbo";

/** The weight w(d) of the sketch's sum, <e, y> ~ |e| w(d) <sign(Q e), Q y>,
 * for Q a Haar-random orthogonal d x d matrix. Each row u of Q is uniform
 * on the unit sphere, where E[sign(<u, e>) <u, y>] = E|u_1| <e, y> / |e| and
 * E|u_1| = Gamma(d/2) / (sqrt(pi) Gamma((d+1)/2)); so w(d) = 1 / (d E|u_1|),
 * unbiased over Q for every d. (QJL's Gaussian S, with sqrt(pi/2) / d, is
 * the large-d limit for S = sqrt(d) Q; orthogonal rows have 0.6x its
 * standard deviation at d = 32..512, measured in numpy.) */
double qjl_weight(int d) {
    return std::sqrt(M_PI) *
            std::exp(std::lgamma((d + 1) / 2.0) - std::lgamma(d / 2.0)) / d;
}

int checked_nbits(int nbits) {
    FAISS_THROW_IF_NOT_FMT(
            nbits >= 2 && nbits <= 4,
            "%s: nbits=%d must be in 2..4 (nbits - 1 bits of TurboQuant-MSE "
            "code and a 1-bit sketch per coordinate)",
            kWho,
            nbits);
    return nbits;
}

/// Row-major Z (n x d) = Y S^T for row-major Y (n x d), S (d x d).
void times_transpose(
        size_t n,
        int d,
        const float* y,
        const float* s,
        float* z) {
    FINTEGER m = d, nn = FINTEGER(n), k = d, ld = d;
    float one = 1, zero = 0;
    sgemm_("T", "N", &m, &nn, &k, &one, s, &ld, y, &ld, &zero, z, &ld);
}

/// Row-major X (n x d) = Z S for row-major Z (n x d), S (d x d).
void times(size_t n, int d, const float* z, const float* s, float* x) {
    FINTEGER m = d, nn = FINTEGER(n), k = d, ld = d;
    float one = 1, zero = 0;
    sgemm_("N", "N", &m, &nn, &k, &one, s, &ld, z, &ld, &zero, x, &ld);
}

/** One search query: the MSE part's scorer, the sketch's tables of Q y',
 * and the scratch of a block. */
struct TurboScanner {
    const IndexBQTurbo& index;
    QueryScorer mse;
    const size_t pb, cs, sketch_offset;
    const float sketch_weight; ///< qjl_weight(d), times -2 for L2
    std::vector<float> lut, scores, sketch_ips;

    static constexpr size_t block = QueryScorer::block_codes;

    explicit TurboScanner(const IndexBQTurbo& index)
            : index(index),
              mse(index.plan,
                  index.metric_type,
                  Estimator::asymmetric,
                  0,
                  index.code_size),
              pb(index.plane_bytes()),
              cs(index.code_size),
              sketch_offset(index.mse_code_size()),
              sketch_weight(
                      float(qjl_weight(index.d)) *
                      (index.metric_type == faiss::METRIC_L2 ? -2.f : 1.f)),
              lut(kernels::lut_groups(pb, 1) * kernels::lut_entries),
              scores(block),
              sketch_ips(block) {}

    /// q, its y' = R (q - c) and z = Q y'.
    void set_query(const float* q, const float* y, const float* z) {
        mse.set_query(q, y);
        const int d = index.d;
        // lut[g][byte] = sum over the byte's 8 coordinates of +-z_i
        for (size_t g = 0; g < pb; g++) {
            float* l = lut.data() + g * kernels::lut_entries;
            for (int b = 0; b < 256; b++) {
                float s = 0;
                for (int i = 0; i < 8; i++) {
                    const size_t j = 8 * g + i;
                    if (j < size_t(d)) {
                        s += (b >> i) & 1 ? z[j] : -z[j];
                    }
                }
                l[b] = s;
            }
        }
    }

    void score_block(const uint8_t* codes, size_t m) {
        mse.score_block(codes, m, scores.data());
        kernels::lut_scan_block(
                codes + sketch_offset,
                m,
                cs,
                pb,
                1,
                lut.data(),
                sketch_ips.data());
        for (size_t i = 0; i < m; i++) {
            float e_norm;
            std::memcpy(&e_norm, codes + i * cs + sketch_offset + pb, 4);
            scores[i] += sketch_weight * e_norm * sketch_ips[i];
        }
    }
};

} // namespace

IndexBQTurbo::IndexBQTurbo() : IndexBQTurbo(8, 2) {}

IndexBQTurbo::IndexBQTurbo(idx_t d, int nbits, faiss::MetricType metric)
        : faiss::IndexFlatCodes(0, d, metric), nbits(checked_nbits(nbits)) {
    FAISS_THROW_IF_NOT_FMT(d > 0, "%s: d=%ld must be > 0", kWho, long(d));
    FAISS_THROW_IF_NOT_FMT(
            metric == faiss::METRIC_L2 || metric == faiss::METRIC_INNER_PRODUCT,
            "%s: metric=%d: only METRIC_L2 and METRIC_INNER_PRODUCT",
            kWho,
            int(metric));
    code_size = code_size_for(int(d), nbits);
    is_trained = false;
}

size_t IndexBQTurbo::code_size_for(int d, int nbits) {
    const size_t pb = (size_t(d) + 7) / 8;
    return size_t(checked_nbits(nbits) - 1) * pb + CodeLayout::factor_bytes +
            pb + sizeof(float);
}

size_t IndexBQTurbo::mse_code_size() const {
    return size_t(nbits - 1) * plane_bytes() + CodeLayout::factor_bytes;
}

void IndexBQTurbo::train(idx_t n, const float* x) {
    FAISS_THROW_IF_NOT_FMT(
            n >= 1, "%s::train: n=%ld training vectors", kWho, long(n));
    FAISS_THROW_IF_NOT_FMT(
            transform == Transform::random_rotation ||
                    transform == Transform::identity,
            "%s::train: transform=%s: TurboQuant's levels are those of a "
            "randomly rotated coordinate; use random_rotation (or identity)",
            kWho,
            transform_name(transform));
    checked_nbits(nbits);
    plan = fit_eden_plan(
            size_t(n),
            size_t(d),
            x,
            nbits - 1,
            transform,
            centered,
            seed,
            Quantization::turbo_mse);
    faiss::RandomRotationMatrix rr(d, d);
    rr.init(sketch_seed);
    sketch = rr.A;
    is_trained = true;
}

void IndexBQTurbo::add(idx_t n, const float* x) {
    FAISS_THROW_IF_NOT_FMT(
            is_trained, "%s::add: the index is not trained", kWho);
    FAISS_THROW_IF_NOT_FMT(n >= 0, "%s::add: n=%ld", kWho, long(n));
    faiss::IndexFlatCodes::add(n, x);
}

void IndexBQTurbo::sa_encode(idx_t n, const float* x, uint8_t* bytes) const {
    FAISS_THROW_IF_NOT_FMT(
            is_trained, "%s::sa_encode: the index is not trained", kWho);
    FAISS_THROW_IF_NOT_FMT(n >= 0, "%s::sa_encode: n=%ld", kWho, long(n));
    check_finite("encoded", size_t(n), size_t(d), x);
    const CodeLayout layout(plan);
    const size_t mcs = mse_code_size(), pb = plane_bytes();
    constexpr idx_t chunk = 4096;
    std::vector<uint8_t> mse_codes;
    std::vector<float> y, y_hat, se;
    for (idx_t i0 = 0; i0 < n; i0 += chunk) {
        const size_t m = size_t(std::min(chunk, n - i0));
        const float* xc = x + size_t(i0) * d;
        mse_codes.resize(m * mcs);
        y.resize(m * d);
        y_hat.resize(m * d);
        se.resize(m * d);
        encode(plan, m, xc, mse_codes.data());
        decode_residuals(plan, layout, m, mse_codes.data(), y_hat.data());
        plan.apply(m, xc, y.data());
        for (size_t t = 0; t < m * d; t++) {
            y[t] -= y_hat[t]; // e = y - y_hat
        }
        times_transpose(m, d, y.data(), sketch.data(), se.data());
        for (size_t i = 0; i < m; i++) {
            uint8_t* code = bytes + (size_t(i0) + i) * code_size;
            std::memcpy(code, mse_codes.data() + i * mcs, mcs);
            uint8_t* plane = code + mcs;
            std::memset(plane, 0, pb);
            double e2 = 0;
            for (int j = 0; j < d; j++) {
                const float ej = y[i * d + j];
                e2 += double(ej) * ej;
                plane[j >> 3] |= uint8_t(se[i * d + j] >= 0) << (j & 7);
            }
            const float e_norm = float(std::sqrt(e2));
            std::memcpy(plane + pb, &e_norm, sizeof(e_norm));
        }
    }
}

void IndexBQTurbo::sa_decode(idx_t n, const uint8_t* bytes, float* x) const {
    FAISS_THROW_IF_NOT_FMT(
            is_trained, "%s::sa_decode: the index is not trained", kWho);
    FAISS_THROW_IF_NOT_FMT(n >= 0, "%s::sa_decode: n=%ld", kWho, long(n));
    const CodeLayout layout(plan);
    const size_t mcs = mse_code_size(), pb = plane_bytes();
    std::vector<uint8_t> mse_codes(size_t(n) * mcs);
    std::vector<float> y(size_t(n) * d), signs(size_t(n) * d), e(size_t(n) * d);
    for (idx_t i = 0; i < n; i++) {
        const uint8_t* code = bytes + size_t(i) * code_size;
        std::memcpy(mse_codes.data() + size_t(i) * mcs, code, mcs);
        float e_norm;
        std::memcpy(&e_norm, code + mcs + pb, sizeof(e_norm));
        const float w = float(qjl_weight(d)) * e_norm;
        for (int j = 0; j < d; j++) {
            signs[size_t(i) * d + j] =
                    (code[mcs + (j >> 3)] >> (j & 7)) & 1 ? w : -w;
        }
    }
    decode_residuals(plan, layout, size_t(n), mse_codes.data(), y.data());
    times(size_t(n), d, signs.data(), sketch.data(), e.data()); // Q^T signs
    for (size_t t = 0; t < y.size(); t++) {
        y[t] += e[t];
    }
    plan.apply_inverse(size_t(n), y.data(), x);
}

void IndexBQTurbo::search(
        idx_t n,
        const float* x,
        idx_t k,
        float* distances,
        idx_t* labels,
        const faiss::SearchParameters* params) const {
    check_search_args("IndexBQTurbo::search", is_trained, n, d, x, k);
    if (params) {
        if (auto p = dynamic_cast<const SearchParametersBQ*>(params)) {
            FAISS_THROW_IF_NOT_FMT(
                    p->query_bits == 0 && p->estimator == Estimator::asymmetric,
                    "%s::search: query_bits=%d, estimator=%s: TurboQuant "
                    "scores a float query only (query_bits=0, asymmetric)",
                    kWho,
                    p->query_bits,
                    estimator_name(p->estimator));
        }
    }
    const faiss::IDSelector* sel = params ? params->sel : nullptr;
    const size_t block = TurboScanner::block;
    std::vector<float> ys, zs;
    const float* xq = nullptr;
    search_flat_chunked(
            n,
            ntotal,
            k,
            metric_type,
            block,
            distances,
            labels,
            [&](idx_t i0, idx_t m) {
                xq = x + i0 * d;
                ys.resize(size_t(m) * d);
                zs.resize(size_t(m) * d);
                plan.apply(size_t(m), xq, ys.data());
                times_transpose(
                        size_t(m), d, ys.data(), sketch.data(), zs.data());
            },
            [&]() { return TurboScanner(*this); },
            [&](TurboScanner& s,
                idx_t i,
                idx_t j0,
                idx_t j1,
                float* D,
                idx_t* I,
                auto tag) {
                using C = decltype(tag);
                s.set_query(
                        xq + i * d,
                        ys.data() + size_t(i) * d,
                        zs.data() + size_t(i) * d);
                for (idx_t jb = j0; jb < j1; jb += idx_t(block)) {
                    const size_t m = std::min<size_t>(block, size_t(j1 - jb));
                    s.score_block(codes.data() + size_t(jb) * code_size, m);
                    push_scores<C>(k, D, I, s.scores.data(), m, jb, sel);
                }
            });
}

void IndexBQTurbo::check_compatible_for_merge(const faiss::Index& other) const {
    auto o = dynamic_cast<const IndexBQTurbo*>(&other);
    FAISS_THROW_IF_NOT_MSG(o, "IndexBQTurbo: merge from another type");
    FAISS_THROW_IF_NOT_FMT(
            o->d == d && o->nbits == nbits && o->metric_type == metric_type &&
                    o->plan.center == plan.center &&
                    o->plan.rotation == plan.rotation && o->sketch == sketch,
            "IndexBQTurbo: cannot merge (d=%d/%d, nbits=%d/%d, metric=%d/%d): "
            "different settings or model",
            d,
            o->d,
            nbits,
            o->nbits,
            int(metric_type),
            int(o->metric_type));
}

} // namespace faiss_bq
