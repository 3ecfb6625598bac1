#include <faiss_bq/trainer.h>

#include <faiss_bq/codes.h>
#include <faiss_bq/impl/blas.h>
#include <faiss_bq/impl/heldout.h>
#include <faiss_bq/impl/validate.h>

#include <faiss/Index.h>
#include <faiss/impl/FaissAssert.h>
#include <faiss/utils/distances.h>
#include <faiss/utils/random.h>
#include <faiss/utils/utils.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>

namespace faiss_bq {

namespace {

using idx_t = faiss::Index::idx_t;
constexpr size_t recall_k = heldout_recall_k;

/// The estimator's ranking on the held-out part, written as a plain
/// inner-product or L2 search over float vectors (the same arithmetic as
/// QueryScorer, without look-up tables), with y = R (q - c):
///  asymmetric IP: max <x - c, c> + <e, y> = <[e, <x - c, c>], [y, 1]>;
///  asymmetric L2: min |r|^2 - 2 <e, y>, i.e. max <[e, |r|^2], [2 y, -1]>;
///  symmetric: the code values s, IP or L2.
struct EstimatorVectors {
    size_t dim = 0;
    std::vector<float> q, b; ///< h.nq x dim queries, h.nb x dim base
    bool l2 = false;         ///< rank by L2 distance, else inner product
};

EstimatorVectors estimator_vectors(
        const BinarizationPlan& plan,
        Estimator estimator,
        const HeldOut& h) {
    const CodeLayout layout(plan);
    std::vector<uint8_t> codes(h.nb * layout.code_size);
    encode(plan, h.nb, h.x.data(), codes.data());
    const size_t d = h.d;
    const bool l2 = h.metric == faiss::METRIC_L2;
    EstimatorVectors v;
    if (estimator == Estimator::symmetric) {
        v.dim = d;
        v.l2 = l2;
        v.b.resize(h.nb * d);
        code_values(layout, h.nb, codes.data(), v.b.data());
        v.q.assign(v.b.begin(), v.b.begin() + h.nq * d);
        return v;
    }
    const size_t da = d + 1;
    v.dim = da;
    std::vector<float> e(h.nb * d);
    v.b.resize(h.nb * da);
    v.q.resize(h.nq * da);
    estimate_vectors(plan, h.nb, codes.data(), e.data());
    std::vector<float> y(h.nq * d);
    plan.apply(h.nq, h.x.data(), y.data());
    for (size_t i = 0; i < h.nb; i++) {
        const uint8_t* code = codes.data() + i * layout.code_size;
        std::copy_n(e.data() + i * d, d, v.b.data() + i * da);
        v.b[i * da + d] =
                l2 ? layout.residual_norm2(code) : layout.center_dot(code);
    }
    for (size_t i = 0; i < h.nq; i++) {
        for (size_t j = 0; j < d; j++) {
            v.q[i * da + j] = l2 ? 2 * y[i * d + j] : y[i * d + j];
        }
        v.q[i * da + d] = l2 ? -1 : 1;
    }
    return v;
}

std::vector<float> heldout_recalls(
        const BinarizationPlan& plan,
        Estimator estimator,
        const HeldOut& h) {
    const EstimatorVectors v = estimator_vectors(plan, estimator, h);
    return h.recalls(top_k_excluding_self(
            h.nq, h.nb, v.dim, v.q.data(), v.b.data(), v.l2));
}

/// C = A B^T for row-major A (na x d) and B (nb x d): C is na x nb.
std::vector<float> products(
        const float* a,
        size_t na,
        const float* b,
        size_t nb,
        size_t d) {
    std::vector<float> c(na * nb);
    FINTEGER m = FINTEGER(nb), n = FINTEGER(na), k = FINTEGER(d);
    float one = 1, zero = 0;
    // Column-major C^T (nb x na) = B A^T.
    sgemm_("T", "N", &m, &n, &k, &one, b, &k, a, &k, &zero, c.data(), &m);
    return c;
}

/// Scores of nq queries against nb vectors, larger is better: inner
/// products, or <q, x> - |x|^2 / 2 for L2 (the same order as -|q - x|^2).
std::vector<float> scores(
        const float* q,
        size_t nq,
        const float* x,
        size_t nb,
        size_t dim,
        bool l2) {
    std::vector<float> s = products(q, nq, x, nb, dim);
    if (l2) {
        for (size_t j = 0; j < nb; j++) {
            const float half = 0.5f * faiss::fvec_norm_L2sqr(x + j * dim, dim);
            for (size_t i = 0; i < nq; i++) {
                s[i * nb + j] -= half;
            }
        }
    }
    return s;
}

/// The counts of a RecallProfile: 1 .. 32, then 12.5% apart, up to n.
std::vector<float> profile_counts(size_t n) {
    std::vector<float> k;
    for (double c = 1; c < double(n);
         c = c < 32 ? c + 1 : std::ceil(c * 1.125)) {
        k.push_back(float(c));
    }
    k.push_back(float(n));
    return k;
}

/// Share of the sorted ranks within k (linear between whole counts).
double share_within(const std::vector<float>& ranks, double k) {
    const double lo = std::floor(k), w = k - lo;
    auto count = [&](double c) {
        return double(
                std::upper_bound(ranks.begin(), ranks.end(), float(c)) -
                ranks.begin());
    };
    return ((1 - w) * count(lo) + w * count(lo + 1)) / double(ranks.size());
}

/// Where each query's exact top recall_k (among the first n rows of the
/// held-out base, itself excluded) ranks under the estimator's scores: the
/// sorted ranks + 1, over all (query, neighbour) pairs.
std::vector<float> neighbour_ranks(
        const HeldOut& h,
        const std::vector<float>& truth,
        const std::vector<float>& est,
        size_t n) {
    std::vector<float> ranks;
    ranks.reserve(h.nq * recall_k);
    std::vector<idx_t> order(n);
    for (size_t i = 0; i < h.nq; i++) {
        const float* t = truth.data() + i * h.nb;
        const float* e = est.data() + i * h.nb;
        std::iota(order.begin(), order.end(), idx_t(0));
        order.erase(order.begin() + i); // the query's own row
        const size_t k = std::min(recall_k, order.size());
        std::partial_sort(
                order.begin(),
                order.begin() + k,
                order.end(),
                [&](idx_t a, idx_t b) { return t[a] > t[b]; });
        for (size_t a = 0; a < k; a++) {
            const float s = e[order[a]];
            size_t better = 0;
            for (size_t j = 0; j < n; j++) {
                better += j != i && e[j] > s;
            }
            ranks.push_back(float(better + 1));
        }
        order.resize(n); // erase shrank it
    }
    std::sort(ranks.begin(), ranks.end());
    return ranks;
}

/// The count holding a share r of the sorted ranks (continuous: the
/// inverse of share_within).
double count_for_share(const std::vector<float>& ranks, double r) {
    const double want = r * double(ranks.size());
    // share_within is linear between whole counts: find the whole count c
    // with count(c) < want <= count(c + 1).
    double c = 0;
    double below = 0;
    for (;;) {
        const double next = double(
                std::upper_bound(ranks.begin(), ranks.end(), float(c + 1)) -
                ranks.begin());
        if (next >= want || c + 1 >= double(ranks.back())) {
            return c + (next > below ? (want - below) / (next - below) : 1);
        }
        below = next;
        c++;
    }
}

/// The RecallProfile of a plan on the held-out part: the share of the true
/// neighbours within each count among all h.nb rows, and at each share the
/// exponent of its count's growth over 1/4, 1/2 and all of the rows (those
/// holding more rows than queries).
RecallProfile recall_profile(
        const BinarizationPlan& plan,
        Estimator estimator,
        const HeldOut& h) {
    const EstimatorVectors v = estimator_vectors(plan, estimator, h);
    const bool l2 = h.metric == faiss::METRIC_L2;
    const std::vector<float> truth =
            scores(h.x.data(), h.nq, h.x.data(), h.nb, h.d, l2);
    const std::vector<float> est =
            scores(v.q.data(), h.nq, v.b.data(), h.nb, v.dim, v.l2);
    RecallProfile p;
    p.base_rows = h.nb;
    std::vector<std::pair<size_t, std::vector<float>>> sizes;
    for (size_t n : {h.nb / 4, h.nb / 2}) {
        if (n >= h.nq + 2 * recall_k) {
            sizes.push_back({n, neighbour_ranks(h, truth, est, n)});
        }
    }
    sizes.push_back({h.nb, neighbour_ranks(h, truth, est, h.nb)});
    const std::vector<float>& all = sizes.back().second;
    p.candidates = profile_counts(h.nb);
    for (float k : p.candidates) {
        const double r = share_within(all, k);
        p.recall.push_back(float(r));
        double a = 0;
        if (sizes.size() > 1 && r > 0 && r < 1) {
            double mx = 0, my = 0;
            std::vector<double> lx, ly;
            for (const auto& [n, ranks] : sizes) {
                lx.push_back(std::log(double(n)));
                ly.push_back(
                        std::log(std::max(1e-3, count_for_share(ranks, r))));
                mx += lx.back() / sizes.size();
                my += ly.back() / sizes.size();
            }
            double sxy = 0, sxx = 0;
            for (size_t s = 0; s < lx.size(); s++) {
                sxy += (lx[s] - mx) * (ly[s] - my);
                sxx += (lx[s] - mx) * (lx[s] - mx);
            }
            a = std::min(1.0, std::max(0.0, sxy / sxx));
        }
        p.growth.push_back(float(a));
    }
    return p;
}

/// Sum over rows of the variance of the row's entries of M (na x nb):
/// what varies across the candidates of one query is what ranks them.
double row_variance_sum(const std::vector<float>& m, size_t na, size_t nb) {
    double total = 0;
    for (size_t i = 0; i < na; i++) {
        double s = 0, s2 = 0;
        for (size_t j = 0; j < nb; j++) {
            s += m[i * nb + j];
            s2 += double(m[i * nb + j]) * m[i * nb + j];
        }
        total += s2 - s * s / double(nb);
    }
    return total;
}

/// The model: how far the estimator's scores are from the true inner
/// products <x, q>, for queries q and vectors x of the training sample. Only
/// the error's variance across one query's candidates changes their order,
/// so the loss is sum_q Var_x(err) / sum_q Var_x(<x, q>): 0 is lossless, 1 is
/// no better than a constant. Asymmetric: err = a <r_hat, y> - <r, y> with
/// y = R (q - c) (the other terms are exact). Symmetric: err = b <s_x, s_q> -
/// <x, q> with the one scale b that minimises it. Unlike the energy kept per
/// coordinate, this sees where the error points: bits that repeat one another
/// (correlated or low-variance coordinates) leave errors along the queries.
float predicted_loss(
        const BinarizationPlan& plan,
        Estimator estimator,
        size_t nx,
        const float* x,
        size_t nq,
        const float* q) {
    const CodeLayout layout(plan);
    const size_t d = plan.d;
    std::vector<uint8_t> cx(nx * layout.code_size);
    encode(plan, nx, x, cx.data());
    const std::vector<float> truth = products(q, nq, x, nx, d);
    const double signal = row_variance_sum(truth, nq, nx);
    if (signal <= 0) {
        return 0;
    }
    std::vector<float> err;
    if (estimator == Estimator::asymmetric) {
        std::vector<float> e(nx * d), r(nx * d), y(nq * d);
        estimate_vectors(plan, nx, cx.data(), e.data());
        plan.apply(nx, x, r.data());
        plan.apply(nq, q, y.data());
        err = products(y.data(), nq, e.data(), nx, d);
        const std::vector<float> exact =
                products(y.data(), nq, r.data(), nx, d);
        for (size_t i = 0; i < err.size(); i++) {
            err[i] -= exact[i];
        }
    } else {
        std::vector<uint8_t> cq(nq * layout.code_size);
        encode(plan, nq, q, cq.data());
        std::vector<float> sx(nx * d), sq(nq * d);
        code_values(layout, nx, cx.data(), sx.data());
        code_values(layout, nq, cq.data(), sq.data());
        const std::vector<float> est =
                products(sq.data(), nq, sx.data(), nx, d);
        // Least-squares scale of the per-query centred estimates.
        double ab = 0, aa = 0;
        for (size_t i = 0; i < nq; i++) {
            double ma = 0, mb = 0;
            for (size_t j = 0; j < nx; j++) {
                ma += est[i * nx + j];
                mb += truth[i * nx + j];
            }
            ma /= double(nx);
            mb /= double(nx);
            for (size_t j = 0; j < nx; j++) {
                ab += (est[i * nx + j] - ma) * (truth[i * nx + j] - mb);
                aa += (est[i * nx + j] - ma) * (est[i * nx + j] - ma);
            }
        }
        const double b = aa > 0 ? ab / aa : 0;
        err.resize(est.size());
        for (size_t i = 0; i < err.size(); i++) {
            err[i] = float(b * est[i] - truth[i]);
        }
    }
    return float(row_variance_sum(err, nq, nx) / signal);
}

struct Candidate {
    Transform transform;
    bool centered;
    int nbits = 1;          ///< uniform bits (ignored when allocated)
    bool allocated = false; ///< fit_allocated_plan at the budget
    int prefix_bits = 0;    ///< allocated as a Matryoshka prefix of these bits
    /// The same plan with joint nibbles (fit_joint_codebooks): a twin that
    /// follows its scalar candidate when TrainerOptions::joint_nibbles.
    bool joint = false;
    Quantization quantization = Quantization::lloyd_max;
    /// Cost rank when held-out recalls tie: identity needs no d x d product
    /// per vector; among equals, the better measured recall wins.
    int cost() const {
        return transform == Transform::identity ? 0 : 1;
    }
};

bool transform_allowed(const TrainerOptions& o, Transform t) {
    switch (o.transform) {
        case TransformChoice::automatic:
            // PCA is a basis for an allocation; uniform PCA plans only on
            // request.
            return t != Transform::pca || o.budget_bytes > 0;
        case TransformChoice::identity:
            return t == Transform::identity;
        case TransformChoice::random_rotation:
            return t == Transform::random_rotation;
        case TransformChoice::pca:
            return t == Transform::pca;
    }
    return false;
}

/// The uniform bits of a budget: the most bits per coordinate that fit.
int uniform_bits_within(size_t budget_bytes, size_t d) {
    int b = 0;
    while (b < 4 && (b + 1) * ((d + 7) / 8) <= budget_bytes) {
        b++;
    }
    return b;
}

/// pca_ok: the fitting part has at least d rows.
std::vector<Candidate> allowed_candidates(
        const TrainerOptions& o,
        size_t d,
        bool pca_ok) {
    std::vector<Candidate> out;
    const bool budget = o.budget_bytes > 0;
    const bool fitted_levels =
            o.quantization == QuantizationChoice::automatic ||
            o.quantization == QuantizationChoice::lloyd_max;
    const int uniform_bits =
            budget ? uniform_bits_within(o.budget_bytes, d) : o.nbits;
    if (!budget ||
        (o.allocation != AllocationChoice::allocated && uniform_bits > 0)) {
        for (Transform t :
             {Transform::identity,
              Transform::random_rotation,
              Transform::pca}) {
            if (!transform_allowed(o, t) ||
                (t == Transform::pca && (budget || !pca_ok))) {
                continue;
            }
            for (bool c : {false, true}) {
                if ((o.centering == CenteringChoice::centered && !c) ||
                    (o.centering == CenteringChoice::uncentered && c)) {
                    continue;
                }
                if (fitted_levels) {
                    out.push_back({t, c, uniform_bits, false});
                }
                // EDEN in both bases, as the fitted levels: its per-vector
                // scaling is worth having without a rotation too (FAISS's
                // IndexEDEN runs unrotated), and on isotropic data the
                // identity twin is the cheaper tie.
                if (o.quantization != QuantizationChoice::lloyd_max &&
                    t != Transform::pca) {
                    Candidate e{t, c, uniform_bits, false};
                    e.quantization =
                            o.quantization == QuantizationChoice::turbo_mse
                            ? Quantization::turbo_mse
                            : Quantization::eden;
                    out.push_back(e);
                }
            }
        }
    }
    if (budget && o.allocation != AllocationChoice::uniform && fitted_levels &&
        o.centering != CenteringChoice::uncentered) {
        for (Transform t :
             {Transform::identity,
              Transform::random_rotation,
              Transform::pca}) {
            if (transform_allowed(o, t) && (t != Transform::pca || pca_ok)) {
                out.push_back({t, true, 0, true});
            }
        }
        if (o.matryoshka && transform_allowed(o, Transform::identity)) {
            for (int b : {1, 2}) {
                if (o.budget_bytes >= size_t(b)) {
                    out.push_back({Transform::identity, true, b, true, b});
                }
            }
        }
    }
    if (o.joint_nibbles) {
        std::vector<Candidate> twins;
        for (const Candidate& c : out) {
            twins.push_back(c);
            if (c.quantization == Quantization::lloyd_max) {
                twins.push_back(c);
                twins.back().joint = true;
            }
        }
        out = std::move(twins);
    }
    return out;
}

std::string describe(const Candidate& c) {
    return std::string(transform_name(c.transform)) +
            (c.centered ? "/centred" : "/uncentred") +
            (c.prefix_bits ? "/prefix" + std::to_string(c.prefix_bits) + "bit"
                     : c.allocated ? "/allocated"
                                   : "/" + std::to_string(c.nbits) + "bit") +
            (c.joint ? "/joint" : "") +
            (c.quantization == Quantization::lloyd_max
                     ? ""
                     : std::string("/") + quantization_name(c.quantization));
}

BinarizationPlan fit_candidate(
        const Candidate& c,
        size_t n,
        size_t d,
        const float* x,
        const TrainerOptions& o) {
    BinarizationPlan p;
    if (c.allocated) {
        p = fit_allocated_plan(
                n,
                d,
                x,
                c.transform,
                o.budget_bytes,
                o.seed,
                c.prefix_bits,
                o.fast_scan_layout);
    } else {
        p = c.quantization != Quantization::lloyd_max
                ? fit_eden_plan(
                          n,
                          d,
                          x,
                          c.nbits,
                          c.transform,
                          c.centered,
                          o.seed,
                          c.quantization)
                : fit_plan(n, d, x, c.nbits, c.transform, c.centered, o.seed);
        if (o.budget_bytes > 0) {
            p.code_bytes =
                    o.budget_bytes; // zero padding to the index's code size
        }
    }
    if (c.joint) {
        fit_joint_codebooks(p, n, x);
    }
    return p;
}

} // namespace

BinarizationPlan train_plan(
        size_t n,
        size_t d,
        const float* x,
        const TrainerOptions& o) {
    FAISS_THROW_IF_NOT_FMT(d > 0, "d=%zu: must be > 0", d);
    const bool budget = o.budget_bytes > 0;
    FAISS_THROW_IF_NOT_FMT(
            budget || o.nbits == 1 || o.nbits == 2,
            "nbits=%d: must be 1 or 2",
            o.nbits);
    FAISS_THROW_IF_NOT_FMT(
            !budget || o.budget_bytes <= max_budget_bytes(d),
            "budget of %zu bytes for d=%zu: must be at least 1 byte and at "
            "most 4 bits per coordinate (%zu bytes)",
            o.budget_bytes,
            d,
            max_budget_bytes(d));
    FAISS_THROW_IF_NOT_MSG(
            !o.matryoshka || budget,
            "matryoshka: prefix plans need a byte budget (budget_bytes > 0)");
    FAISS_THROW_IF_NOT_MSG(
            !budget || o.estimator == Estimator::asymmetric,
            "a byte budget needs the asymmetric estimator (allocated plans "
            "have no symmetric one)");
    FAISS_THROW_IF_NOT_MSG(
            !o.joint_nibbles || o.estimator == Estimator::asymmetric,
            "joint_nibbles: joint plans have the asymmetric estimator only "
            "(estimator=symmetric asked)");
    FAISS_THROW_IF_NOT_FMT(
            n >= TrainerOptions::min_train_points,
            "training on n=%zu vectors: the trainer needs at least %zu "
            "(a fitting part and a held-out part of 20 or more)",
            n,
            TrainerOptions::min_train_points);
    FAISS_THROW_IF_NOT_FMT(
            o.heldout_fraction > 0 && o.heldout_fraction < 1,
            "heldout_fraction=%g: must be in (0, 1)",
            o.heldout_fraction);
    FAISS_THROW_IF_NOT_FMT(
            o.metric == faiss::METRIC_L2 ||
                    o.metric == faiss::METRIC_INNER_PRODUCT,
            "metric=%d: only METRIC_L2 and METRIC_INNER_PRODUCT",
            int(o.metric));

    FAISS_THROW_IF_NOT_FMT(
            (o.quantization != QuantizationChoice::eden &&
             o.quantization != QuantizationChoice::turbo_mse) ||
                    (o.allocation != AllocationChoice::allocated &&
                     o.transform != TransformChoice::pca),
            "quantization=%s with allocation=%s, transform=%s: EDEN and "
            "TurboQuant-MSE plans are uniform, in a rotated (or identity) "
            "basis",
            o.quantization == QuantizationChoice::eden ? "eden" : "turbo_mse",
            o.allocation == AllocationChoice::allocated ? "allocated"
                                                        : "not allocated",
            o.transform == TransformChoice::pca ? "pca" : "not pca");
    check_finite("training", n, d, x);

    // The seeded split (impl/heldout.h): the held-out check, the fitting
    // rows, and for the statistics and the final fit the same rows with the
    // held-out ones first.
    const HeldOut h(
            n,
            d,
            x,
            o.metric,
            o.seed,
            o.heldout_fraction,
            o.max_heldout_base,
            o.max_heldout_queries,
            o.max_fit_rows);
    const size_t nh = h.n_heldout, nfit = h.n_fit;
    const std::vector<float> fit = h.fit_rows(x);
    const size_t nall = std::min(n, o.max_fit_rows);
    const std::vector<float> all = h.rows(x, 0, nall);
    const double t_start = faiss::getmillisecs();
    auto say = [&](const char* fmt, auto... args) {
        if (o.verbose) {
            std::printf(
                    "[faiss_bq train %6.2f s] ",
                    (faiss::getmillisecs() - t_start) / 1000);
            std::printf(fmt, args...);
            std::printf("\n");
            std::fflush(stdout);
        }
    };
    say("%zu rows, d=%zu: %zu held out (%zu as queries), %zu to fit",
        n,
        d,
        nh,
        h.nq,
        nfit);
    DatasetAnalysis analysis = analyze(nall, d, all.data());
    say("analysis of %zu rows done", nall);

    // The model scores (at most) 200 fitting rows as queries against the
    // next 2000: 400k pairs put its noise well under the gaps it explains.
    const size_t model_nq = std::min<size_t>(200, nfit / 5);
    const size_t model_nx = std::min<size_t>(2000, nfit - model_nq);
    const float* model_q = fit.data();
    const float* model_x = fit.data() + model_nq * d;

    const bool pca_ok = nfit >= d;
    const std::vector<Candidate> cands = allowed_candidates(o, d, pca_ok);
    FAISS_THROW_IF_NOT_FMT(
            !cands.empty(),
            "no candidate plan: budget %zu bytes for d=%zu fits no uniform "
            "plan, and the options exclude allocated ones",
            o.budget_bytes,
            d);
    const size_t nh_rows = std::min(nh, h.nb); // held-out rows lead h.x
    std::vector<CandidateReport> reports;
    std::vector<std::vector<float>> decide_recalls; // per candidate
    std::vector<float> cand_pred_dist, cand_heldout_dist;
    std::vector<BinarizationPlan> decide_plans; // as fitted, per candidate
    BinarizationPlan
            scalar; // the last scalar candidate: its joint twin's start
    for (const Candidate& c : cands) {
        BinarizationPlan p;
        if (c.joint) {
            p = scalar;
            fit_joint_codebooks(p, nfit, fit.data());
        } else {
            p = fit_candidate(c, nfit, d, fit.data(), o);
            scalar = p;
        }
        for (Estimator e : {Estimator::asymmetric, Estimator::symmetric}) {
            if (e == Estimator::symmetric &&
                (budget || !p.is_uniform() || p.nbits > 2 || p.is_joint())) {
                continue;
            }
            std::vector<float> r = heldout_recalls(p, e, h);
            CandidateReport rep;
            rep.transform = c.transform;
            rep.centered = c.centered;
            rep.estimator = e;
            rep.nbits = p.nbits;
            rep.allocated = c.allocated;
            rep.prefix = c.prefix_bits > 0;
            rep.joint = c.joint;
            rep.quantization = c.quantization;
            if (c.allocated) {
                rep.predicted_distortion = p.predicted_distortion;
                rep.heldout_distortion =
                        float(p.distortion(nh_rows, h.x.data()));
            }
            rep.predicted_loss =
                    predicted_loss(p, e, model_nx, model_x, model_nq, model_q);
            rep.heldout_recall = mean_of(r);
            rep.heldout_recall_stderr = stderr_of(r);
            say("candidate %s, %s estimator: held-out 10-recall@10 %.3f +- %.3f",
                describe(c).c_str(),
                estimator_name(e),
                rep.heldout_recall,
                rep.heldout_recall_stderr);
            reports.push_back(rep);
            if (e == o.estimator) {
                decide_recalls.push_back(std::move(r));
                cand_pred_dist.push_back(rep.predicted_distortion);
                cand_heldout_dist.push_back(rep.heldout_distortion);
                decide_plans.push_back(p);
            }
        }
    }

    // Decide: the best held-out recall, unless a cheaper candidate is within
    // two standard errors of it (paired over the same queries).
    auto recall = [&](size_t i) { return mean_of(decide_recalls[i]); };
    size_t best = 0;
    for (size_t i = 1; i < cands.size(); i++) {
        if (recall(i) > recall(best)) {
            best = i;
        }
    }
    // i measures no worse than j, within two standard errors (paired).
    auto tied = [&](size_t i, size_t j) {
        return tied_or_better(decide_recalls[i], decide_recalls[j]);
    };
    auto tied_with_best = [&](size_t i) { return tied(i, best); };
    // Among the candidates tied with the best: the cheapest, then the best.
    // Not with a budget: there the bytes set the scan's cost, and a d x d
    // product per query or added vector is small beside it, while the
    // held-out check's noise (two standard errors, ~0.01) would give away
    // real recall (glove100 at 32 B: identity over PCA cost 0.02).
    size_t choice = best;
    for (size_t i = 0; i < cands.size(); i++) {
        if (i != best && !budget && tied_with_best(i) &&
            (cands[i].cost() < cands[choice].cost() ||
             (cands[i].cost() == cands[choice].cost() &&
              recall(i) > recall(choice)))) {
            choice = i;
        }
    }

    // A scalar choice gives way to its joint twin when that is tied with it:
    // the twin's fitting distortion is never higher, and only a measured
    // loss (an over-fit on few fitting rows) should keep the scalar levels.
    bool to_twin = false;
    if (!cands[choice].joint && choice + 1 < cands.size() &&
        cands[choice + 1].joint && tied(choice + 1, choice)) {
        choice++;
        to_twin = true;
    }

    // Which candidate the model alone would pick, to say whether it agrees.
    std::vector<const CandidateReport*> decide_reports;
    for (const CandidateReport& r : reports) {
        if (r.estimator == o.estimator) {
            decide_reports.push_back(&r);
        }
    }
    size_t model_pick = 0;
    for (size_t i = 1; i < decide_reports.size(); i++) {
        if (decide_reports[i]->predicted_loss <
            decide_reports[model_pick]->predicted_loss) {
            model_pick = i;
        }
    }
    const float best_loss = decide_reports[model_pick]->predicted_loss;

    const bool forced = o.transform != TransformChoice::automatic ||
            o.centering != CenteringChoice::automatic ||
            (budget && o.allocation != AllocationChoice::automatic) ||
            o.quantization != QuantizationChoice::automatic;
    char buf[2048];
    std::string reason;
    if (budget && !pca_ok && transform_allowed(o, Transform::pca)) {
        snprintf(
                buf,
                sizeof(buf),
                "PCA candidates left out: %zu fitting rows < d=%zu; ",
                nfit,
                d);
        reason = buf;
    }
    if (cands.size() == 1) {
        reason += "forced " + describe(cands[0]) + "; measured for the record";
    } else {
        snprintf(
                buf,
                sizeof(buf),
                "%s has the best held-out recall@10 (%s estimator): %.4f",
                describe(cands[best]).c_str(),
                estimator_name(o.estimator),
                recall(best));
        reason += buf;
        if (choice != best && !(to_twin && choice == best + 1)) {
            snprintf(
                    buf,
                    sizeof(buf),
                    "; %s (%.4f) is within two standard errors and cheaper "
                    "(no rotation), so it is chosen",
                    describe(cands[to_twin ? choice - 1 : choice]).c_str(),
                    recall(to_twin ? choice - 1 : choice));
            reason += buf;
        }
        if (to_twin) {
            snprintf(
                    buf,
                    sizeof(buf),
                    "; its joint twin (%.4f) is within two standard errors "
                    "and fits no worse, so it is chosen",
                    recall(choice));
            reason += buf;
        }
        // Predicted losses within 2% of each other are no preference: the
        // model's own sampling noise (400k pairs) is about that size.
        const float chosen_loss = decide_reports[choice]->predicted_loss;
        if (model_pick == choice) {
            reason += "; the model (lowest predicted loss) agrees";
        } else if (chosen_loss <= 1.02f * best_loss) {
            reason +=
                    "; the model ranks it within 2% of its best (no preference)";
        } else {
            reason += "; the model predicted " + describe(cands[model_pick]) +
                    " (lowest predicted loss), the measurement decides";
        }
        // The rotation quantizers are baselines as much as candidates: say
        // how the best of them measured against the choice.
        size_t best_eden = cands.size();
        for (size_t i = 0; i < cands.size(); i++) {
            if (cands[i].quantization == Quantization::eden &&
                (best_eden == cands.size() || recall(i) > recall(best_eden))) {
                best_eden = i;
            }
        }
        if (cands[choice].quantization == Quantization::eden) {
            reason += cands[choice].transform == Transform::random_rotation
                    ? "; EDEN measured best: after a random rotation every "
                      "coordinate is near N(0, |r|^2/d), which its fixed "
                      "Gaussian levels and unbiased per-vector scale assume"
                    : "; EDEN measured best: each vector scaled to norm "
                      "sqrt(d) before fixed Gaussian levels, with its "
                      "unbiased per-vector scale, fits these vectors better "
                      "than levels fitted on the sample";
        } else if (best_eden < cands.size()) {
            snprintf(
                    buf,
                    sizeof(buf),
                    "; the best EDEN candidate, %s, measured %.4f",
                    describe(cands[best_eden]).c_str(),
                    recall(best_eden));
            reason += buf;
        }
        if (forced) {
            reason = "choice restricted by the caller; " + reason;
        }
    }
    // Where the true neighbours rank under the choice: the recall to expect
    // and the k_factor a refine stage needs (BinarizationPlan::k_factor_for).
    RecallProfile profile =
            recall_profile(decide_plans[choice], o.estimator, h);
    say("recall profile on %zu held-out rows done", h.nb);
    // Refit the choice on the fitting rows plus the held-out rows.
    BinarizationPlan chosen =
            fit_candidate(cands[choice], nall, d, all.data(), o);
    if (cands[choice].allocated) {
        // Both of the candidate fitted without the held-out rows (the refit
        // on all rows has no held-out part left to measure).
        chosen.predicted_distortion = cand_pred_dist[choice];
        chosen.heldout_distortion = cand_heldout_dist[choice];
    }
    chosen.analysis = std::move(analysis);
    chosen.candidates = std::move(reports);
    chosen.decided_for = o.estimator;
    chosen.forced = forced;
    chosen.reason = std::move(reason);
    chosen.recall_profile = std::move(profile);
    // Binarization keeps little of the neighbourhoods of non-contrastive or
    // low-dimensional embeddings (GloVe at 1 bit): say so plainly.
    const float at_1m = chosen.expected_recall(1000000);
    if (recall(choice) < 0.5f || at_1m < 0.5f) {
        const size_t two_bits = 2 * ((d + 7) / 8);
        snprintf(
                buf,
                sizeof(buf),
                ". WARNING: these codes keep few of the true neighbours: "
                "held-out 10-recall@10 %.2f among %zu vectors, about %.2f "
                "among 1M (extrapolated); these embeddings binarize "
                "poorly (not contrastive-trained, or too few dimensions "
                "for %s). Re-rank with floats (\",RFlat\"; k_factor %.0f "
                "for 0.95 among 1M: k_factor_for(0.95, ntotal)) or give "
                "more bits (BQ2, or a budget of BQ%zuB and up)",
                recall(choice),
                h.nb,
                at_1m,
                describe(cands[choice]).c_str(),
                std::ceil(chosen.k_factor_for(0.95f, 1000000)),
                two_bits);
        chosen.reason += buf;
    }
    say("chosen: %s", chosen.reason.c_str());
    return chosen;
}

} // namespace faiss_bq
