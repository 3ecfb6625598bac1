#include <faiss_bq/IndexBQRecurrent.h>

#include <faiss_bq/impl/blas.h>
#include <faiss_bq/impl/merge_heaps.h>
#include <faiss_bq/impl/validate.h>
#include <faiss_bq/kernels/kernels.h>

#include <faiss/VectorTransform.h>
#include <faiss/impl/FaissAssert.h>
#include <faiss/utils/Heap.h>
#include <faiss/utils/random.h>
#include <faiss/utils/utils.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>

namespace faiss_bq {

namespace {

constexpr const char* kWho = "IndexBQRecurrent";

int checked_stages(int n_stages) {
    FAISS_THROW_IF_NOT_FMT(
            n_stages >= 1 && n_stages <= 4,
            "IndexBQRecurrent: n_stages=%d must be in 1..4 (one bit per "
            "coordinate per stage)",
            n_stages);
    return n_stages;
}

/** Encodes one transformed row z (d values) into n_stages sign planes of
 * plane_bytes each (planes, zeroed here) and the stage scales (scales_out,
 * n_stages values). global: one scale per stage, or null for the
 * least-squares scale of each residual (|e|_1 / d). e: scratch of d floats;
 * it ends as the final residual z - z_hat. Returns the correction
 * |z|^2 / <z_hat, z> (1 for z = 0). */
float encode_row(
        const float* z,
        int d,
        int n_stages,
        size_t plane_bytes,
        const float* global,
        uint8_t* planes,
        float* scales_out,
        float* e) {
    std::copy(z, z + d, e);
    std::memset(planes, 0, n_stages * plane_bytes);
    for (int t = 0; t < n_stages; t++) {
        uint8_t* plane = planes + t * plane_bytes;
        double l1 = 0;
        for (int j = 0; j < d; j++) {
            l1 += std::fabs(e[j]);
        }
        const float a = global ? global[t] : float(l1 / d);
        for (int j = 0; j < d; j++) {
            const bool bit = e[j] >= 0;
            plane[j >> 3] |= uint8_t(bit) << (j & 7);
            e[j] -= bit ? a : -a;
        }
        scales_out[t] = a;
    }
    double z2 = 0, zhz = 0;
    for (int j = 0; j < d; j++) {
        z2 += double(z[j]) * z[j];
        zhz += double(z[j] - e[j]) * z[j];
    }
    return zhz > 0 ? float(z2 / zhz) : 1.f;
}

/// Column-major C (d x d) = A^T B for row-major A, B (n x d): BLAS sgemm.
void cross(size_t n, int d, const float* a, const float* b, float* c) {
    FINTEGER m = d, nn = d, k = FINTEGER(n), ld = d;
    float one = 1, zero = 0;
    sgemm_("N", "T", &m, &nn, &k, &one, a, &ld, b, &ld, &zero, c, &ld);
}

/// Row-major Z (n x d) = X R^T for row-major X (n x d), R (d x d).
void apply_rotation(size_t n, int d, const float* x, const float* r, float* z) {
    FINTEGER m = d, nn = FINTEGER(n), k = d, ld = d;
    float one = 1, zero = 0;
    sgemm_("T", "N", &m, &nn, &k, &one, r, &ld, x, &ld, &zero, z, &ld);
}

/** The orthogonal R minimising |X R^T - Zh|_F (Procrustes): with U S V^T
 * the SVD of M = X^T Zh, R^T = U V^T; the row-major R is the column-major
 * U V^T. m (column-major d x d) is overwritten. */
void procrustes(int d, float* m, float* r) {
    FINTEGER n = d, info = 0, lwork = -1;
    std::vector<float> s(d), u(size_t(d) * d), vt(size_t(d) * d);
    float query = 0;
    sgesvd_("A",
            "A",
            &n,
            &n,
            m,
            &n,
            s.data(),
            u.data(),
            &n,
            vt.data(),
            &n,
            &query,
            &lwork,
            &info);
    lwork = FINTEGER(query);
    std::vector<float> work(size_t(std::max<FINTEGER>(lwork, 1)));
    sgesvd_("A",
            "A",
            &n,
            &n,
            m,
            &n,
            s.data(),
            u.data(),
            &n,
            vt.data(),
            &n,
            work.data(),
            &lwork,
            &info);
    FAISS_THROW_IF_NOT_FMT(
            info == 0,
            "IndexBQRecurrent::train: sgesvd failed (info=%d, d=%d)",
            int(info),
            d);
    float one = 1, zero = 0;
    sgemm_("N",
           "N",
           &n,
           &n,
           &n,
           &one,
           u.data(),
           &n,
           vt.data(),
           &n,
           &zero,
           r,
           &n);
}

/** One search query: its transformed y, its float table (asymmetric) or
 * its own recurrent code (symmetric), and the scratch of a block. */
struct RecurrentScanner {
    const IndexBQRecurrent& index;
    const bool symmetric;
    const size_t pb, cs;
    const int ns;
    std::vector<float> y, lut, e, scores, stage_ips;
    std::vector<uint8_t> qcode;
    std::vector<float> qscales;
    float qcorrection = 1;
    std::vector<int32_t> ham;
    std::vector<uint32_t> better;
    float query_const = 0; ///< |y|^2 (L2) or <q, mean> (inner product)

    static constexpr size_t block = 256;

    RecurrentScanner(const IndexBQRecurrent& index, bool symmetric)
            : index(index),
              symmetric(symmetric),
              pb(index.plane_bytes()),
              cs(index.code_size),
              ns(index.n_stages),
              y(index.d),
              e(index.d),
              scores(block),
              stage_ips(block * index.n_stages),
              qcode(pb * index.n_stages),
              qscales(index.n_stages),
              ham(block * index.n_stages * index.n_stages),
              better(block) {
        if (!symmetric) {
            lut.resize(kernels::lut_groups(pb, 1) * kernels::lut_entries);
        }
    }

    /// q and its y = R (q - mean) (search() transforms a chunk at once).
    void set_query(const float* q, const float* yq) {
        const int d = index.d;
        std::copy(yq, yq + d, y.begin());
        double c = 0;
        for (int j = 0; j < d; j++) {
            c += index.metric_type == faiss::METRIC_L2
                    ? double(y[j]) * y[j]
                    : double(q[j]) * index.mean[j];
        }
        query_const = float(c);
        if (symmetric) {
            qcorrection = encode_row(
                    y.data(),
                    d,
                    ns,
                    pb,
                    index.per_vector_scales ? nullptr
                                            : index.stage_scales.data(),
                    qcode.data(),
                    qscales.data(),
                    e.data());
            return;
        }
        // lut[g][byte] = sum over the byte's 8 coordinates of +-y_j
        for (size_t g = 0; g < pb; g++) {
            float* l = lut.data() + g * kernels::lut_entries;
            for (int b = 0; b < 256; b++) {
                float s = 0;
                for (int i = 0; i < 8; i++) {
                    const size_t j = 8 * g + i;
                    if (j < size_t(d)) {
                        s += (b >> i) & 1 ? y[j] : -y[j];
                    }
                }
                l[b] = s;
            }
        }
    }

    /// Pushes the scores of the m <= block codes at codes (ids j0 + i) into
    /// the heap (D, I) of k entries, those of ids sel admits (null: all).
    /// One-stage SDC is one fused kernel (Hamming distances, factors,
    /// selection against the heap's worst): its float epilogue would
    /// otherwise cost more than its popcounts.
    template <class C>
    void push_block(
            const uint8_t* codes,
            size_t m,
            idx_t j0,
            idx_t k,
            float* D,
            idx_t* I,
            const faiss::IDSelector* sel) {
        if (!(symmetric && ns == 1)) {
            score_block(codes, m);
            push_scores<C>(k, D, I, scores.data(), m, j0, sel);
            return;
        }
        // the epilogue below at NS = 1: qc + f0 + k f1 s (d aq - 2 aq h),
        // s the code's scale f2 or the stage's
        const float s = index.per_vector_scales ? 1.f : index.stage_scales[0];
        const float kq = qcorrection *
                (index.metric_type == faiss::METRIC_L2 ? -2.f : 1.f) * s *
                qscales[0];
        kernels::HammingAffine a;
        a.c = query_const;
        a.alpha = kq * float(index.d);
        a.beta = -2 * kq;
        a.has_f2 = index.per_vector_scales;
        const size_t nc = kernels::hamming_scores(
                qcode.data(),
                codes,
                m,
                pb,
                cs,
                a,
                D[0],
                !C::is_max,
                scores.data(),
                better.data());
        push_selected<C>(
                k,
                D,
                I,
                scores.data(),
                better.data(),
                nc,
                [j0](size_t e) { return j0 + idx_t(e); },
                [j0, sel](size_t e) {
                    return !sel || sel->is_member(j0 + idx_t(e));
                });
    }

    /// scores[i] for the m <= block codes at codes: the kernels fill
    /// stage_ips (asymmetric: <y, b_u>) or ham (symmetric: the ns^2
    /// Hamming distances), then one pass reads each code's factors once.
    void score_block(const uint8_t* codes, size_t m) {
        if (symmetric) {
            for (int u = 0; u < ns; u++) {
                for (int t = 0; t < ns; t++) {
                    kernels::hamming_block(
                            qcode.data() + t * pb,
                            codes + u * pb,
                            m,
                            pb,
                            cs,
                            ham.data() + (u * ns + t) * block);
                }
            }
        } else {
            for (int u = 0; u < ns; u++) {
                kernels::lut_scan_block(
                        codes + u * pb,
                        m,
                        cs,
                        pb,
                        1,
                        lut.data(),
                        stage_ips.data() + u * block);
            }
        }
        switch (ns * 4 + 2 * int(symmetric) + int(index.per_vector_scales)) {
#define FAISS_BQ_EPILOGUE(NS)                        \
    case NS * 4 + 0:                                 \
        return epilogue<NS, false, false>(codes, m); \
    case NS * 4 + 1:                                 \
        return epilogue<NS, false, true>(codes, m);  \
    case NS * 4 + 2:                                 \
        return epilogue<NS, true, false>(codes, m);  \
    case NS * 4 + 3:                                 \
        return epilogue<NS, true, true>(codes, m);
            FAISS_BQ_EPILOGUE(1)
            FAISS_BQ_EPILOGUE(2)
            FAISS_BQ_EPILOGUE(3)
            FAISS_BQ_EPILOGUE(4)
#undef FAISS_BQ_EPILOGUE
        }
    }

    /// The scores from the kernels' output, each code's factors read once
    /// (compile-time stage count and layout: no calls, loops unrolled).
    template <int NS, bool SYM, bool PV>
    void epilogue(const uint8_t* codes, size_t m) {
        // sum_t a_t(q) (d - 2 h_t) = d sum_t a_t(q) - 2 sum_t a_t(q) h_t
        float aq[NS], gs[NS];
        double sum_aq = 0;
        for (int t = 0; t < NS; t++) {
            aq[t] = qscales[t];
            gs[t] = index.stage_scales[t];
            sum_aq += aq[t];
        }
        const float d_aq = float(index.d * sum_aq);
        const float k = qcorrection *
                (index.metric_type == faiss::METRIC_L2 ? -2.f : 1.f);
        for (size_t i = 0; i < m; i++) {
            float f[2 + (PV ? NS : 0)]; // offset, correction, scales
            std::memcpy(f, codes + i * cs + NS * pb, sizeof(f));
            float ip = 0;
            for (int u = 0; u < NS; u++) {
                float w;
                if (SYM) {
                    float h = 0;
                    for (int t = 0; t < NS; t++) {
                        h += aq[t] * float(ham[(u * NS + t) * block + i]);
                    }
                    w = d_aq - 2 * h;
                } else {
                    w = stage_ips[u * block + i];
                }
                ip += (PV ? f[2 + u] : gs[u]) * w;
            }
            scores[i] = query_const + f[0] + k * f[1] * ip;
        }
    }
};

} // namespace

IndexBQRecurrent::IndexBQRecurrent() : IndexBQRecurrent(8, 2) {}

IndexBQRecurrent::IndexBQRecurrent(
        idx_t d,
        int n_stages,
        faiss::MetricType metric,
        bool per_vector_scales)
        : faiss::IndexFlatCodes(0, d, metric),
          n_stages(checked_stages(n_stages)),
          per_vector_scales(per_vector_scales) {
    FAISS_THROW_IF_NOT_FMT(d > 0, "%s: d=%ld must be > 0", kWho, long(d));
    FAISS_THROW_IF_NOT_FMT(
            metric == faiss::METRIC_L2 || metric == faiss::METRIC_INNER_PRODUCT,
            "%s: metric=%d: only METRIC_L2 and METRIC_INNER_PRODUCT",
            kWho,
            int(metric));
    code_size = code_size_for(int(d), n_stages, per_vector_scales);
    is_trained = false;
}

size_t IndexBQRecurrent::code_size_for(
        int d,
        int n_stages,
        bool per_vector_scales) {
    return size_t(checked_stages(n_stages)) * ((size_t(d) + 7) / 8) + 8 +
            (per_vector_scales ? 4 * size_t(n_stages) : 0);
}

void IndexBQRecurrent::transform(idx_t n, const float* x, float* z) const {
    std::vector<float> c(size_t(n) * d);
    for (size_t i = 0; i < size_t(n); i++) {
        for (int j = 0; j < d; j++) {
            c[i * d + j] = x[i * d + j] - mean[j];
        }
    }
    apply_rotation(size_t(n), d, c.data(), rotation.data(), z);
}

void IndexBQRecurrent::train(idx_t n, const float* x) {
    FAISS_THROW_IF_NOT_FMT(
            n >= 2,
            "%s::train: n=%ld training vectors (need >= 2)",
            kWho,
            long(n));
    FAISS_THROW_IF_NOT_FMT(
            train_iterations >= 0 && max_train_points >= 2,
            "%s::train: train_iterations=%d, max_train_points=%zu",
            kWho,
            train_iterations,
            max_train_points);
    check_finite("training", size_t(n), size_t(d), x);
    checked_stages(n_stages);
    // A seeded subset when the sample is larger than max_train_points.
    size_t ns = size_t(n);
    const float* xs = faiss::fvecs_maybe_subsample(
            size_t(d), &ns, max_train_points, x, verbose, seed);
    std::unique_ptr<const float[]> owned(xs != x ? xs : nullptr);
    x = xs;
    std::vector<double> m(d, 0.0);
    for (size_t i = 0; i < ns; i++) {
        for (int j = 0; j < d; j++) {
            m[j] += x[i * d + j];
        }
    }
    mean.resize(d);
    for (int j = 0; j < d; j++) {
        mean[j] = float(m[j] / double(ns));
    }
    std::vector<float> xc(ns * d);
    for (size_t i = 0; i < ns; i++) {
        for (int j = 0; j < d; j++) {
            xc[i * d + j] = x[i * d + j] - mean[j];
        }
    }
    rotation.assign(size_t(d) * d, 0.f);
    if (random_init) {
        faiss::RandomRotationMatrix rr(d, d);
        rr.init(seed);
        rotation = rr.A;
    } else {
        for (int j = 0; j < d; j++) {
            rotation[size_t(j) * d + j] = 1;
        }
    }
    const size_t pb = plane_bytes();
    std::vector<float> z(ns * d), zh(ns * d), mcross(size_t(d) * d);
    std::vector<uint8_t> planes(pb * n_stages);
    std::vector<float> scales(n_stages), e(d);
    train_errors.clear();
    // Per-stage scales of the current z: the mean least-squares scale of
    // each stage's residual, the residuals built with those scales.
    auto fit_stage_scales = [&]() {
        std::vector<float> r(z);
        stage_scales.assign(n_stages, 0.f);
        for (int t = 0; t < n_stages; t++) {
            double l1 = 0;
            for (float v : r) {
                l1 += std::fabs(v);
            }
            const float a = float(l1 / (double(ns) * d));
            for (float& v : r) {
                v -= v >= 0 ? a : -a;
            }
            stage_scales[t] = a;
        }
    };
    for (int it = 0;; it++) {
        apply_rotation(ns, d, xc.data(), rotation.data(), z.data());
        fit_stage_scales();
        double err = 0, total = 0;
        for (size_t i = 0; i < ns; i++) {
            encode_row(
                    z.data() + i * d,
                    d,
                    n_stages,
                    pb,
                    per_vector_scales ? nullptr : stage_scales.data(),
                    planes.data(),
                    scales.data(),
                    e.data());
            for (int j = 0; j < d; j++) {
                zh[i * d + j] = z[i * d + j] - e[j];
                err += double(e[j]) * e[j];
                total += double(z[i * d + j]) * z[i * d + j];
            }
        }
        train_errors.push_back(total > 0 ? float(err / total) : 0.f);
        if (verbose) {
            printf("%s::train: iteration %d, relative error %.5f\n",
                   kWho,
                   it,
                   train_errors.back());
        }
        if (it == train_iterations) {
            break;
        }
        cross(ns, d, xc.data(), zh.data(), mcross.data());
        procrustes(d, mcross.data(), rotation.data());
    }
    is_trained = true;
}

void IndexBQRecurrent::add(idx_t n, const float* x) {
    FAISS_THROW_IF_NOT_FMT(
            is_trained, "%s::add: the index is not trained", kWho);
    FAISS_THROW_IF_NOT_FMT(n >= 0, "%s::add: n=%ld", kWho, long(n));
    faiss::IndexFlatCodes::add(n, x);
}

void IndexBQRecurrent::sa_encode(idx_t n, const float* x, uint8_t* bytes)
        const {
    FAISS_THROW_IF_NOT_FMT(
            is_trained, "%s::sa_encode: the index is not trained", kWho);
    FAISS_THROW_IF_NOT_FMT(n >= 0, "%s::sa_encode: n=%ld", kWho, long(n));
    check_finite("encoded", size_t(n), size_t(d), x);
    const size_t pb = plane_bytes();
    constexpr idx_t chunk = 4096;
    for (idx_t i0 = 0; i0 < n; i0 += chunk) {
        const idx_t m = std::min(chunk, n - i0);
        std::vector<float> z(size_t(m) * d);
        transform(m, x + i0 * d, z.data());
#pragma omp parallel if (m > 64)
        {
            std::vector<float> e(d), scales(n_stages);
#pragma omp for
            for (idx_t i = 0; i < m; i++) {
                const float* zi = z.data() + size_t(i) * d;
                const float* xi = x + size_t(i0 + i) * d;
                uint8_t* code = bytes + size_t(i0 + i) * code_size;
                const float correction = encode_row(
                        zi,
                        d,
                        n_stages,
                        pb,
                        per_vector_scales ? nullptr : stage_scales.data(),
                        code,
                        scales.data(),
                        e.data());
                double offset = 0;
                for (int j = 0; j < d; j++) {
                    const double r = double(xi[j]) - mean[j];
                    offset += metric_type == faiss::METRIC_L2 ? r * r
                                                              : mean[j] * r;
                }
                const float f[2] = {float(offset), correction};
                std::memcpy(code + n_stages * pb, f, 8);
                if (per_vector_scales) {
                    std::memcpy(
                            code + n_stages * pb + 8,
                            scales.data(),
                            4 * n_stages);
                }
            }
        }
    }
}

void IndexBQRecurrent::sa_decode(idx_t n, const uint8_t* bytes, float* x)
        const {
    FAISS_THROW_IF_NOT_FMT(
            is_trained, "%s::sa_decode: the index is not trained", kWho);
    const size_t pb = plane_bytes();
    std::vector<float> zh(d);
    for (idx_t i = 0; i < n; i++) {
        const uint8_t* code = bytes + size_t(i) * code_size;
        std::fill(zh.begin(), zh.end(), 0.f);
        for (int t = 0; t < n_stages; t++) {
            float a = stage_scales[t];
            if (per_vector_scales) {
                std::memcpy(&a, code + n_stages * pb + 8 + 4 * t, 4);
            }
            const uint8_t* plane = code + t * pb;
            for (int j = 0; j < d; j++) {
                zh[j] += (plane[j >> 3] >> (j & 7)) & 1 ? a : -a;
            }
        }
        // x = mean + R^T z_hat
        float* xi = x + size_t(i) * d;
        for (int j = 0; j < d; j++) {
            xi[j] = mean[j];
        }
        for (int r = 0; r < d; r++) {
            const float* row = rotation.data() + size_t(r) * d;
            for (int j = 0; j < d; j++) {
                xi[j] += row[j] * zh[r];
            }
        }
    }
}

void IndexBQRecurrent::search(
        idx_t n,
        const float* x,
        idx_t k,
        float* distances,
        idx_t* labels,
        const faiss::SearchParameters* params) const {
    check_search_args("IndexBQRecurrent::search", is_trained, n, d, x, k);
    Estimator est = estimator;
    if (params) {
        if (auto p = dynamic_cast<const SearchParametersBQ*>(params)) {
            FAISS_THROW_IF_NOT_FMT(
                    p->query_bits == 0,
                    "%s::search: query_bits=%d: the recurrent index scores a "
                    "float query or its own code (SDC) only",
                    kWho,
                    p->query_bits);
            est = p->estimator;
        }
    }
    const bool sym = est == Estimator::symmetric;
    const faiss::IDSelector* sel = params ? params->sel : nullptr;
    const size_t block = RecurrentScanner::block;
    std::vector<float> ys;
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
                transform(m, xq, ys.data());
            },
            [&]() { return RecurrentScanner(*this, sym); },
            [&](RecurrentScanner& s,
                idx_t i,
                idx_t j0,
                idx_t j1,
                float* D,
                idx_t* I,
                auto tag) {
                using C = decltype(tag);
                s.set_query(xq + i * d, ys.data() + size_t(i) * d);
                for (idx_t jb = j0; jb < j1; jb += idx_t(block)) {
                    const size_t m = std::min<size_t>(block, size_t(j1 - jb));
                    s.template push_block<C>(
                            codes.data() + size_t(jb) * code_size,
                            m,
                            jb,
                            k,
                            D,
                            I,
                            sel);
                }
            });
}

void IndexBQRecurrent::check_compatible_for_merge(
        const faiss::Index& other) const {
    auto o = dynamic_cast<const IndexBQRecurrent*>(&other);
    FAISS_THROW_IF_NOT_MSG(o, "IndexBQRecurrent: merge from another type");
    FAISS_THROW_IF_NOT_FMT(
            o->d == d && o->n_stages == n_stages &&
                    o->per_vector_scales == per_vector_scales &&
                    o->metric_type == metric_type && o->mean == mean &&
                    o->rotation == rotation && o->stage_scales == stage_scales,
            "IndexBQRecurrent: cannot merge (d=%d/%d, n_stages=%d/%d): "
            "different settings or model",
            d,
            o->d,
            n_stages,
            o->n_stages);
}

} // namespace faiss_bq
