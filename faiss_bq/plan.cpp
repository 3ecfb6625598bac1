#include <faiss_bq/plan.h>

#include <faiss_bq/impl/blas.h>

#include <faiss/VectorTransform.h>
#include <faiss/impl/FaissAssert.h>

#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <numeric>

namespace faiss_bq {

const char* transform_name(Transform t) {
    return t == Transform::identity ? "identity" : "random_rotation";
}

const char* estimator_name(Estimator e) {
    return e == Estimator::asymmetric ? "asymmetric" : "symmetric";
}

void BinarizationPlan::apply(size_t n, const float* x, float* y) const {
    std::vector<float> xc(x, x + n * d);
    for (size_t i = 0; i < n; i++) {
        for (int j = 0; j < d; j++) {
            xc[i * d + j] -= center[j];
        }
    }
    if (transform == Transform::identity) {
        std::copy(xc.begin(), xc.end(), y);
        return;
    }
    // Row-major Y = X R^T is, column-major, Y^T = R X^T; the row-major R
    // read column-major is R^T, hence "T".
    FINTEGER di = d, ni = FINTEGER(n);
    float one = 1, zero = 0;
    sgemm_("T", "N", &di, &ni, &di, &one, rotation.data(), &di, xc.data(),
           &di, &zero, y, &di);
}

void BinarizationPlan::apply_inverse(size_t n, const float* y, float* x) const {
    if (transform == Transform::identity) {
        std::copy(y, y + n * d, x);
    } else {
        FINTEGER di = d, ni = FINTEGER(n);
        float one = 1, zero = 0;
        sgemm_("N", "N", &di, &ni, &di, &one, rotation.data(), &di, y, &di,
               &zero, x, &di);
    }
    for (size_t i = 0; i < n; i++) {
        for (int j = 0; j < d; j++) {
            x[i * d + j] += center[j];
        }
    }
}

namespace {

/// 1-D Lloyd-Max quantizer with k levels of the sorted values v[0, m):
/// levels are the means of their cells, thresholds the midpoints of adjacent
/// levels. Starts from equal-count cells; prefix sums make an iteration
/// O(k log m). Empty input gives levels and thresholds at `empty_value`.
void lloyd_max(
        const float* v,
        size_t m,
        int k,
        float empty_value,
        float* thresholds, // k - 1
        float* levels) {   // k
    if (m == 0) {
        std::fill(thresholds, thresholds + k - 1, empty_value);
        std::fill(levels, levels + k, empty_value);
        return;
    }
    std::vector<double> prefix(m + 1, 0.0);
    for (size_t i = 0; i < m; i++) {
        prefix[i + 1] = prefix[i] + v[i];
    }
    std::vector<size_t> bounds(k + 1);
    for (int c = 0; c <= k; c++) {
        bounds[c] = m * c / k;
    }
    auto cell_mean = [&](int c, float fallback) {
        size_t a = bounds[c], b = bounds[c + 1];
        return b > a ? float((prefix[b] - prefix[a]) / double(b - a))
                     : fallback;
    };
    for (int c = 0; c < k; c++) {
        levels[c] = cell_mean(c, v[std::min(bounds[c], m - 1)]);
    }
    // Lloyd-Max converges in a few tens of iterations on unimodal data;
    // 100 bounds the cost on pathological samples.
    for (int iter = 0; iter < 100; iter++) {
        bool changed = false;
        for (int c = 0; c + 1 < k; c++) {
            float t = 0.5f * (levels[c] + levels[c + 1]);
            changed |= iter == 0 || t != thresholds[c];
            thresholds[c] = t;
            bounds[c + 1] = std::lower_bound(v, v + m, t) - v;
        }
        if (!changed) {
            break;
        }
        for (int c = 0; c < k; c++) {
            levels[c] = cell_mean(c, levels[c]);
        }
    }
}

/// Fits the k-level quantizer of one coordinate (or of the pooled
/// coordinates) from its sorted values. Uncentred plans pin the middle
/// threshold at 0 and fit k/2 levels on each side: 1 bit is then the sign.
void fit_quantizer(
        const std::vector<float>& sorted,
        int k,
        bool pin_zero,
        float* thresholds,
        float* levels) {
    if (!pin_zero) {
        lloyd_max(sorted.data(), sorted.size(), k, 0.f, thresholds, levels);
        return;
    }
    const size_t split =
            std::lower_bound(sorted.begin(), sorted.end(), 0.f) - sorted.begin();
    const int h = k / 2;
    lloyd_max(sorted.data(), split, h, 0.f, thresholds, levels);
    thresholds[h - 1] = 0;
    lloyd_max(sorted.data() + split, sorted.size() - split, h, 0.f,
              thresholds + h, levels + h);
}

} // namespace

BinarizationPlan fit_plan(
        size_t n,
        size_t d,
        const float* x,
        int nbits,
        Transform transform,
        bool centered,
        int seed) {
    FAISS_THROW_IF_NOT_FMT(
            nbits == 1 || nbits == 2, "nbits=%d: must be 1 or 2", nbits);
    FAISS_THROW_IF_NOT_FMT(n > 0 && d > 0, "n=%zu d=%zu: empty sample", n, d);
    BinarizationPlan plan;
    plan.d = int(d);
    plan.nbits = nbits;
    plan.transform = transform;
    plan.centered = centered;
    plan.seed = seed;

    plan.center.assign(d, 0.f);
    if (centered) {
        std::vector<double> sum(d, 0.0);
        for (size_t i = 0; i < n; i++) {
            for (size_t j = 0; j < d; j++) {
                sum[j] += x[i * d + j];
            }
        }
        for (size_t j = 0; j < d; j++) {
            plan.center[j] = float(sum[j] / double(n));
        }
    }
    if (transform == Transform::random_rotation) {
        faiss::RandomRotationMatrix rr{int(d), int(d)};
        rr.init(seed);
        plan.rotation = rr.A;
    }

    std::vector<float> y(n * d);
    plan.apply(n, x, y.data());

    const int k = plan.n_levels();
    plan.thresholds.resize(d * (k - 1));
    plan.levels.resize(d * k);
    if (transform == Transform::identity) {
        // Column j of y, contiguous, for each coordinate's sort.
        std::vector<float> yt(n * d);
        for (size_t i = 0; i < n; i++) {
            for (size_t j = 0; j < d; j++) {
                yt[j * n + i] = y[i * d + j];
            }
        }
#pragma omp parallel for
        for (size_t j = 0; j < d; j++) {
            std::vector<float> col(yt.begin() + j * n, yt.begin() + (j + 1) * n);
            std::sort(col.begin(), col.end());
            fit_quantizer(col, k, !centered,
                          plan.thresholds.data() + j * (k - 1),
                          plan.levels.data() + j * k);
        }
    } else {
        // After a rotation every coordinate has variance ~ tr(Sigma) / d:
        // one quantizer fitted on the pooled values serves them all. A
        // quantizer of at most 4 levels is settled by 2^20 values; more
        // only cost sorting time.
        const size_t stride = std::max<size_t>(1, y.size() >> 20);
        std::vector<float> pooled;
        pooled.reserve(y.size() / stride + 1);
        for (size_t i = 0; i < y.size(); i += stride) {
            pooled.push_back(y[i]);
        }
        std::sort(pooled.begin(), pooled.end());
        fit_quantizer(pooled, k, !centered, plan.thresholds.data(),
                      plan.levels.data());
        for (size_t j = 1; j < d; j++) {
            std::copy_n(plan.thresholds.data(), k - 1,
                        plan.thresholds.data() + j * (k - 1));
            std::copy_n(plan.levels.data(), k, plan.levels.data() + j * k);
        }
    }
    return plan;
}

namespace {

void appendf(std::string& s, const char* fmt, ...)
        __attribute__((format(printf, 2, 3)));

void appendf(std::string& s, const char* fmt, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    s += buf;
}

} // namespace

std::string BinarizationPlan::report() const {
    std::string s;
    if (!is_trained()) {
        return "BinarizationPlan: untrained\n";
    }
    appendf(s, "BinarizationPlan: d=%d, %d bit%s per coordinate, %s, %s%s\n",
            d, nbits, nbits > 1 ? "s" : "", transform_name(transform),
            centered ? "centred at the mean" : "uncentred (thresholds at 0)",
            forced ? " (forced)" : "");
    if (transform == Transform::random_rotation) {
        appendf(s, "  rotation seed %d; shared levels:", seed);
        for (int q = 0; q < n_levels(); q++) {
            appendf(s, " %.4g", level(0, q));
        }
        s += "\n";
    } else {
        // Summarise the per-coordinate spread between the outer levels.
        std::vector<float> spread(d);
        for (int j = 0; j < d; j++) {
            spread[j] = level(j, n_levels() - 1) - level(j, 0);
        }
        std::sort(spread.begin(), spread.end());
        appendf(s,
                "  per-coordinate levels; outer-level spread min %.4g, "
                "median %.4g, max %.4g\n",
                spread.front(), spread[d / 2], spread.back());
    }
    if (!candidates.empty()) {
        appendf(s, "  candidates (estimator %s decides):\n",
                estimator_name(decided_for));
        appendf(s, "    %-16s %-10s %-10s %14s %20s\n", "transform", "centred",
                "estimator", "predicted_loss", "heldout_recall@10");
        for (const CandidateReport& c : candidates) {
            appendf(s, "    %-16s %-10s %-10s %14.4f %13.4f +- %.4f\n",
                    transform_name(c.transform), c.centered ? "yes" : "no",
                    estimator_name(c.estimator), c.predicted_loss,
                    c.heldout_recall, c.heldout_recall_stderr);
        }
    }
    if (!reason.empty()) {
        appendf(s, "  reason: %s\n", reason.c_str());
    }
    return s;
}

} // namespace faiss_bq
