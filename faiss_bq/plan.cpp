#include <faiss_bq/plan.h>

#include <faiss_bq/codes.h>

#include <faiss_bq/impl/blas.h>
#include <faiss_bq/impl/validate.h>

#include <faiss/VectorTransform.h>
#include <faiss/impl/FaissAssert.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <numeric>

namespace faiss_bq {

const char* transform_name(Transform t) {
    switch (t) {
        case Transform::identity:
            return "identity";
        case Transform::random_rotation:
            return "random_rotation";
        case Transform::pca:
            return "pca";
    }
    return "?";
}

const char* estimator_name(Estimator e) {
    return e == Estimator::asymmetric ? "asymmetric" : "symmetric";
}

const char* quantization_name(Quantization q) {
    switch (q) {
        case Quantization::lloyd_max:
            return "lloyd_max";
        case Quantization::eden:
            return "eden";
        case Quantization::turbo_mse:
            return "turbo_mse";
    }
    return "?";
}

float BinarizationPlan::unit_scale(const float* y) const {
    if (quantization == Quantization::lloyd_max) {
        return 1;
    }
    double norm2 = 0;
    for (int j = 0; j < d; j++) {
        norm2 += double(y[j]) * y[j];
    }
    return norm2 > 0 ? float(std::sqrt(double(d) / norm2)) : 0.f;
}

bool BinarizationPlan::is_uniform() const {
    return std::all_of(
            bits.begin(), bits.end(), [&](uint8_t b) { return b == nbits; });
}

std::vector<int> BinarizationPlan::bits_histogram() const {
    std::vector<int> h(5, 0);
    for (uint8_t b : bits) {
        h[b]++;
    }
    return h;
}

size_t grouped_plane_bytes(const std::vector<int>& bits_histogram) {
    size_t bytes = 0;
    for (size_t b = 1; b < bits_histogram.size(); b++) {
        bytes += b * ((size_t(bits_histogram[b]) + 7) / 8);
    }
    return bytes;
}

size_t nibble_layout_bytes(const std::vector<int>& bits_histogram) {
    auto count = [&](size_t b) {
        return b < bits_histogram.size() ? size_t(bits_histogram[b]) : 0;
    };
    const size_t n1 = count(1), n2 = count(2), n3 = count(3), n4 = count(4);
    // NibbleLayout's packing (codes.h): 4-bit alone; 3-bit with a 1-bit
    // while any are left; 2-bit in pairs, an odd one with up to two 1-bit;
    // the remaining 1-bit four at a time.
    size_t ones = n1 > n3 ? n1 - n3 : 0;
    if (n2 % 2 == 1) {
        ones -= std::min<size_t>(ones, 2);
    }
    const size_t nibbles = n4 + n3 + (n2 + 1) / 2 + (ones + 3) / 4;
    return (nibbles + 1) / 2;
}

double BinarizationPlan::distortion(size_t n, const float* x) const {
    std::vector<float> y(n * d), r_hat(n * d);
    apply(n, x, y.data());
    const Quantizer quantize(*this);
#pragma omp parallel if (n > 256)
    {
        std::vector<int> q(d);
#pragma omp for
        for (size_t i = 0; i < n; i++) {
            float* ri = r_hat.data() + i * d;
            quantize(y.data() + i * d, q.data(), ri);
            // EDEN's levels are in units of |y| / sqrt(d).
            const float u = unit_scale(y.data() + i * d);
            for (int j = 0; u != 1 && j < d; j++) {
                ri[j] = u > 0 ? ri[j] / u : 0.f;
            }
        }
    }
    std::vector<double> mean(d, 0.0);
    for (size_t i = 0; i < n; i++) {
        for (int j = 0; j < d; j++) {
            mean[j] += y[i * d + j];
        }
    }
    double err = 0, var = 0;
    for (size_t i = 0; i < n; i++) {
        for (int j = 0; j < d; j++) {
            const double v = y[i * d + j];
            const double e = v - r_hat[i * d + j];
            const double c = v - mean[j] / double(n);
            err += e * e;
            var += c * c;
        }
    }
    return var > 0 ? err / var : 0;
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
    sgemm_("T",
           "N",
           &di,
           &ni,
           &di,
           &one,
           rotation.data(),
           &di,
           xc.data(),
           &di,
           &zero,
           y,
           &di);
}

void BinarizationPlan::apply_inverse(size_t n, const float* y, float* x) const {
    if (transform == Transform::identity) {
        std::copy(y, y + n * d, x);
    } else {
        FINTEGER di = d, ni = FINTEGER(n);
        float one = 1, zero = 0;
        sgemm_("N",
               "N",
               &di,
               &ni,
               &di,
               &one,
               rotation.data(),
               &di,
               y,
               &di,
               &zero,
               x,
               &di);
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
    // Stops when no threshold moves at float precision: a few tens of
    // iterations at 1-2 bits. At 3-4 bits most coordinates of use512 still
    // creep at 100, but 1000 iterations changed recall@10 by <= 0.001
    // (NOTES.md, issue 8 at 128 B): 100 bounds the cost, not the quality.
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
    const size_t split = std::lower_bound(sorted.begin(), sorted.end(), 0.f) -
            sorted.begin();
    const int h = k / 2;
    lloyd_max(sorted.data(), split, h, 0.f, thresholds, levels);
    thresholds[h - 1] = 0;
    lloyd_max(
            sorted.data() + split,
            sorted.size() - split,
            h,
            0.f,
            thresholds + h,
            levels + h);
}

} // namespace

namespace {

/// The centre and basis of a plan (fields d, transform, centered, seed set).
void fit_center_and_basis(BinarizationPlan& plan, size_t n, const float* x) {
    const size_t d = plan.d;
    plan.center.assign(d, 0.f);
    if (plan.centered) {
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
    if (plan.transform == Transform::random_rotation) {
        faiss::RandomRotationMatrix rr{int(d), int(d)};
        rr.init(plan.seed);
        plan.rotation = rr.A;
    } else if (plan.transform == Transform::pca) {
        plan.rotation = principal_axes(n, d, x);
    }
}

/// Column j of the transformed sample, sorted (what each 1-D fit needs).
std::vector<float> sorted_column(
        const std::vector<float>& y,
        size_t n,
        size_t d,
        size_t j) {
    std::vector<float> col(n);
    for (size_t i = 0; i < n; i++) {
        col[i] = y[i * d + j];
    }
    std::sort(col.begin(), col.end());
    return col;
}

void check_fit_input(size_t n, size_t d, const float* x, Transform transform) {
    FAISS_THROW_IF_NOT_FMT(n > 0 && d > 0, "n=%zu d=%zu: empty sample", n, d);
    FAISS_THROW_IF_NOT_FMT(
            transform != Transform::pca || n >= d,
            "PCA basis: n=%zu training vectors < d=%zu: the principal axes "
            "are ill-posed; train on at least d vectors or use another basis",
            n,
            d);
    check_finite("training", n, d, x);
}

} // namespace

/// Copies coordinate 0's thresholds and levels to every coordinate: one
/// quantizer for all (pooled after a rotation, or EDEN's fixed one).
static void share_first_quantizer(BinarizationPlan& plan) {
    const int k = plan.n_levels();
    for (size_t j = 1; j < size_t(plan.d); j++) {
        std::copy_n(
                plan.thresholds.data(),
                k - 1,
                plan.thresholds.data() + j * (k - 1));
        std::copy_n(plan.levels.data(), k, plan.levels.data() + j * k);
    }
}

BinarizationPlan fit_plan(
        size_t n,
        size_t d,
        const float* x,
        int nbits,
        Transform transform,
        bool centered,
        int seed) {
    FAISS_THROW_IF_NOT_FMT(
            nbits >= 1 && nbits <= 4, "nbits=%d: must be in 1..4", nbits);
    check_fit_input(n, d, x, transform);
    BinarizationPlan plan;
    plan.d = int(d);
    plan.nbits = nbits;
    plan.transform = transform;
    plan.centered = centered;
    plan.seed = seed;
    plan.bits.assign(d, uint8_t(nbits));
    plan.code_bytes = nbits * ((d + 7) / 8);
    fit_center_and_basis(plan, n, x);

    std::vector<float> y(n * d);
    plan.apply(n, x, y.data());

    const int k = plan.n_levels();
    plan.thresholds.resize(d * (k - 1));
    plan.levels.resize(d * k);
    if (transform != Transform::random_rotation) {
#pragma omp parallel for
        for (size_t j = 0; j < d; j++) {
            fit_quantizer(
                    sorted_column(y, n, d, j),
                    k,
                    !centered,
                    plan.thresholds.data() + j * (k - 1),
                    plan.levels.data() + j * k);
        }
    } else {
        // After a rotation every coordinate has variance ~ tr(Sigma) / d:
        // one quantizer fitted on the pooled values serves them all. A
        // quantizer of at most 16 levels is settled by 2^20 values; more
        // only cost sorting time.
        const size_t stride = std::max<size_t>(1, y.size() >> 20);
        std::vector<float> pooled;
        pooled.reserve(y.size() / stride + 1);
        for (size_t i = 0; i < y.size(); i += stride) {
            pooled.push_back(y[i]);
        }
        std::sort(pooled.begin(), pooled.end());
        fit_quantizer(
                pooled,
                k,
                !centered,
                plan.thresholds.data(),
                plan.levels.data());
        share_first_quantizer(plan);
    }
    return plan;
}

namespace {

/// Standard normal density and distribution function.
double normal_pdf(double t) {
    return std::exp(-0.5 * t * t) / std::sqrt(2 * M_PI);
}
double normal_cdf(double t) {
    return 0.5 * std::erfc(-t / std::sqrt(2.0));
}

} // namespace

void gaussian_lloyd_max(int nbits, float* thresholds, float* levels) {
    FAISS_THROW_IF_NOT_FMT(
            nbits >= 1 && nbits <= 4, "nbits=%d: must be in 1..4", nbits);
    const int k = 1 << nbits;
    // Cell c is (t[c], t[c+1]) with t[0] = -inf, t[k] = +inf; its centroid
    // is E[X | cell] = (pdf(a) - pdf(b)) / (cdf(b) - cdf(a)).
    std::vector<double> t(k + 1), l(k);
    t[0] = -HUGE_VAL;
    t[k] = HUGE_VAL;
    for (int c = 1; c < k; c++) { // equal-probability start
        const double p = double(c) / k;
        double lo = -10, hi = 10; // invert the cdf by bisection
        for (int it = 0; it < 100; it++) {
            const double mid = 0.5 * (lo + hi);
            (normal_cdf(mid) < p ? lo : hi) = mid;
        }
        t[c] = 0.5 * (lo + hi);
    }
    // Linear convergence; 16 levels settle to double precision well within
    // 10000 steps (each O(k)).
    for (int iter = 0; iter < 10000; iter++) {
        for (int c = 0; c < k; c++) {
            const double pa = std::isinf(t[c]) ? 0 : normal_pdf(t[c]);
            const double pb = std::isinf(t[c + 1]) ? 0 : normal_pdf(t[c + 1]);
            l[c] = (pa - pb) / (normal_cdf(t[c + 1]) - normal_cdf(t[c]));
        }
        double moved = 0;
        for (int c = 1; c < k; c++) {
            const double nt = 0.5 * (l[c - 1] + l[c]);
            moved = std::max(moved, std::fabs(nt - t[c]));
            t[c] = nt;
        }
        if (moved < 1e-12) {
            break;
        }
    }
    // Exactly symmetric, the middle threshold exactly 0: one uncentred bit is
    // then FAISS's sign bit (x >= 0).
    for (int c = 0; c < k / 2; c++) {
        const double lc = 0.5 * (l[k - 1 - c] - l[c]);
        levels[c] = float(-lc);
        levels[k - 1 - c] = float(lc);
        const double tc = 0.5 * (t[k - 1 - c] - t[c + 1]);
        thresholds[c] = float(-tc);
        thresholds[k - 2 - c] = float(tc);
    }
    thresholds[k / 2 - 1] = 0.f;
}

BinarizationPlan fit_eden_plan(
        size_t n,
        size_t d,
        const float* x,
        int nbits,
        Transform transform,
        bool centered,
        int seed,
        Quantization quantization) {
    FAISS_THROW_IF_NOT_FMT(
            quantization != Quantization::lloyd_max,
            "EDEN plan: quantization=%s: must be eden or turbo_mse (fit_plan "
            "fits Lloyd-Max levels)",
            quantization_name(quantization));
    FAISS_THROW_IF_NOT_FMT(
            nbits >= 1 && nbits <= 4,
            "EDEN plan: nbits=%d: must be in 1..4",
            nbits);
    FAISS_THROW_IF_NOT_FMT(
            transform != Transform::pca,
            "EDEN plan: transform=%s: EDEN's levels are those of a randomly "
            "rotated coordinate; use random_rotation (or identity)",
            transform_name(transform));
    check_fit_input(n, d, x, transform);
    BinarizationPlan plan;
    plan.d = int(d);
    plan.nbits = nbits;
    plan.transform = transform;
    plan.centered = centered;
    plan.seed = seed;
    plan.quantization = quantization;
    plan.bits.assign(d, uint8_t(nbits));
    plan.code_bytes = nbits * ((d + 7) / 8);
    fit_center_and_basis(plan, n, x);
    const int k = plan.n_levels();
    plan.thresholds.resize(d * (k - 1));
    plan.levels.resize(d * k);
    gaussian_lloyd_max(nbits, plan.thresholds.data(), plan.levels.data());
    share_first_quantizer(plan);
    return plan;
}

namespace {

/// sum_i (v_i - Q(v_i))^2 for the sorted values v[0, m) under the k-level
/// quantizer (thresholds, levels), from prefix sums of v and v^2: O(k log m).
double quantizer_error(
        const std::vector<float>& v,
        const std::vector<double>& s1,
        const std::vector<double>& s2,
        int k,
        const float* thresholds,
        const float* levels) {
    double err = 0;
    size_t a = 0;
    for (int c = 0; c < k; c++) {
        // quantize(): index = number of thresholds <= v
        const size_t b = c + 1 < k
                ? size_t(std::lower_bound(v.begin(), v.end(), thresholds[c]) -
                         v.begin())
                : v.size();
        const double l = levels[c];
        err += (s2[b] - s2[a]) - 2 * l * (s1[b] - s1[a]) +
                l * l * double(b - a);
        a = std::max(a, b);
    }
    return std::max(err, 0.0);
}

} // namespace

BinarizationPlan fit_allocated_plan(
        size_t n,
        size_t d,
        const float* x,
        Transform basis,
        size_t code_bytes,
        int seed,
        int prefix_bits,
        bool fit_nibbles) {
    FAISS_THROW_IF_NOT_FMT(
            prefix_bits == 0 ||
                    (prefix_bits >= 1 && prefix_bits <= 4 &&
                     basis == Transform::identity &&
                     code_bytes >= size_t(prefix_bits)),
            "Matryoshka prefix of %d bits in basis %s with %zu bytes: needs "
            "1..4 bits, the identity basis and at least that many bytes",
            prefix_bits,
            transform_name(basis),
            code_bytes);
    FAISS_THROW_IF_NOT_FMT(
            code_bytes >= 1 && code_bytes <= max_budget_bytes(d),
            "budget of %zu bytes for d=%zu: must be at least 1 byte and at "
            "most 4 bits per coordinate (%zu bytes)",
            code_bytes,
            d,
            max_budget_bytes(d));
    check_fit_input(n, d, x, basis);
    constexpr int max_bits = 4;
    BinarizationPlan plan;
    plan.d = int(d);
    plan.transform = basis;
    plan.centered = true;
    plan.seed = seed;
    plan.code_bytes = code_bytes;
    fit_center_and_basis(plan, n, x);

    std::vector<float> y(n * d);
    plan.apply(n, x, y.data());

    // Quantizers of 1..4 bits per coordinate, and their measured errors:
    // err[j * 5 + b] (b = 0: the variance, the error of the mean alone).
    constexpr int kmax = 1 << max_bits;
    std::vector<float> th(d * (max_bits + 1) * (kmax - 1), 0.f);
    std::vector<float> lv(d * (max_bits + 1) * kmax, 0.f);
    std::vector<double> err(d * (max_bits + 1));
#pragma omp parallel for
    for (size_t j = 0; j < d; j++) {
        const std::vector<float> col = sorted_column(y, n, d, j);
        std::vector<double> s1(n + 1, 0.0), s2(n + 1, 0.0);
        for (size_t i = 0; i < n; i++) {
            s1[i + 1] = s1[i] + col[i];
            s2[i + 1] = s2[i] + double(col[i]) * col[i];
        }
        const double mean = s1[n] / double(n);
        lv[(j * (max_bits + 1)) * kmax] = float(mean);
        err[j * (max_bits + 1)] = std::max(0.0, s2[n] - mean * s1[n]);
        for (int b = 1; b <= max_bits; b++) {
            float* t = th.data() + (j * (max_bits + 1) + b) * (kmax - 1);
            float* l = lv.data() + (j * (max_bits + 1) + b) * kmax;
            fit_quantizer(col, 1 << b, false, t, l);
            err[j * (max_bits + 1) + b] =
                    quantizer_error(col, s1, s2, 1 << b, t, l);
        }
    }
    // No variance at float precision (the null space of rank-deficient data,
    // dead coordinates): no error to remove, so no bits, whatever rounding
    // left in the measured errors.
    double var_max = 0, var_total = 0;
    for (size_t j = 0; j < d; j++) {
        var_max = std::max(var_max, err[j * (max_bits + 1)]);
        var_total += err[j * (max_bits + 1)];
    }
    std::vector<bool> live(d);
    for (size_t j = 0; j < d; j++) {
        live[j] = err[j * (max_bits + 1)] > FLT_EPSILON * var_max;
    }

    // Greedy marginal gain under the byte budget of the grouped planes
    // (IndexBQ), and with fit_nibbles of the fast-scan nibbles too
    // (IndexBQFastScan), or the Matryoshka prefix: the first m coordinates
    // that fit.
    plan.bits.assign(d, 0);
    std::vector<int> hist(max_bits + 1, 0);
    hist[0] = int(d);
    if (prefix_bits > 0) {
        const size_t m = std::min(d, code_bytes / size_t(prefix_bits) * 8);
        for (size_t j = 0; j < m; j++) {
            plan.bits[j] = uint8_t(live[j] ? prefix_bits : 0);
        }
    }
    for (; prefix_bits == 0;) {
        size_t best = d;
        double best_gain = 0;
        for (size_t j = 0; j < d; j++) {
            const int b = plan.bits[j];
            if (!live[j] || b == max_bits) {
                continue;
            }
            const double gain = err[j * (max_bits + 1) + b] -
                    err[j * (max_bits + 1) + b + 1];
            if (gain <= best_gain) {
                continue;
            }
            hist[b]--;
            hist[b + 1]++;
            const bool fits = grouped_plane_bytes(hist) <= code_bytes &&
                    (!fit_nibbles || nibble_layout_bytes(hist) <= code_bytes);
            hist[b]++;
            hist[b + 1]--;
            if (fits) {
                best = j;
                best_gain = gain;
            }
        }
        if (best == d) {
            break;
        }
        hist[plan.bits[best]]--;
        hist[++plan.bits[best]]++;
    }

    plan.nbits = std::max<int>(
            1, *std::max_element(plan.bits.begin(), plan.bits.end()));
    const int k = plan.n_levels();
    plan.thresholds.assign(d * (k - 1), 0.f);
    plan.levels.assign(d * k, 0.f);
    double kept = 0, left = 0;
    for (size_t j = 0; j < d; j++) {
        const int b = plan.bits[j];
        const float* t = th.data() + (j * (max_bits + 1) + b) * (kmax - 1);
        const float* l = lv.data() + (j * (max_bits + 1) + b) * kmax;
        std::copy_n(t, (1 << b) - 1, plan.thresholds.data() + j * (k - 1));
        // Levels past 2^b_j are never indexed: repeat the last one.
        for (int q = 0; q < k; q++) {
            plan.levels[j * k + q] = l[std::min(q, (1 << b) - 1)];
        }
        kept += b > 0 ? err[j * (max_bits + 1)] : 0;
        left += live[j] ? err[j * (max_bits + 1) + b] : 0;
    }
    plan.energy_kept = var_total > 0 ? float(kept / var_total) : 0.f;
    plan.predicted_distortion = var_total > 0 ? float(left / var_total) : 0.f;
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
    if (is_uniform()) {
        appendf(s,
                "BinarizationPlan: d=%d, %d bit%s per coordinate, %s, %s%s%s\n",
                d,
                nbits,
                nbits > 1 ? "s" : "",
                transform_name(transform),
                quantization == Quantization::eden
                        ? "EDEN (each vector scaled to norm sqrt(d), Gaussian "
                          "Lloyd-Max levels, unbiased scale), "
                        : quantization == Quantization::turbo_mse
                        ? "TurboQuant-MSE (each vector scaled to norm "
                          "sqrt(d), Gaussian Lloyd-Max levels, MSE scale), "
                        : "",
                centered ? "centred at the mean"
                         : "uncentred (thresholds at 0)",
                forced ? " (forced)" : "");
    } else {
        const std::vector<int> h = bits_histogram();
        appendf(s,
                "BinarizationPlan: d=%d, bits allocated in the %s basis, %s, "
                "%zu bytes of planes%s\n"
                "  components at 0/1/2/3/4 bits: %d/%d/%d/%d/%d; energy kept "
                "%.4f; distortion predicted %.4f, held-out ",
                d,
                transform_name(transform),
                centered ? "centred at the mean" : "uncentred",
                code_bytes,
                forced ? " (forced)" : "",
                h[0],
                h[1],
                h[2],
                h[3],
                h[4],
                energy_kept,
                predicted_distortion);
        if (heldout_distortion >= 0) {
            appendf(s, "%.4f\n", heldout_distortion);
        } else {
            s += "not measured\n";
        }
    }
    if (is_joint()) {
        appendf(s,
                "  nibbles quantized jointly: each 4-bit sub-code of the "
                "fast-scan layout is one of 16 codewords over its "
                "coordinates (k-means from the product of their levels)\n");
    }
    if ((transform == Transform::random_rotation ||
         quantization != Quantization::lloyd_max) &&
        is_uniform()) {
        s += "  ";
        if (transform == Transform::random_rotation) {
            appendf(s, "rotation seed %d; ", seed);
        }
        appendf(s,
                "shared levels%s:",
                quantization != Quantization::lloyd_max
                        ? " (units of |y|/sqrt(d))"
                        : "");
        for (int q = 0; q < n_levels(); q++) {
            appendf(s, " %.4g", level(0, q));
        }
        s += "\n";
    } else {
        // Summarise the per-coordinate spread between the outer levels.
        std::vector<float> spread(d);
        for (int j = 0; j < d; j++) {
            spread[j] = level(j, (1 << bits[j]) - 1) - level(j, 0);
        }
        std::sort(spread.begin(), spread.end());
        appendf(s,
                "  per-coordinate levels; outer-level spread min %.4g, "
                "median %.4g, max %.4g\n",
                spread.front(),
                spread[d / 2],
                spread.back());
    }
    if (!candidates.empty()) {
        appendf(s,
                "  candidates (estimator %s decides):\n",
                estimator_name(decided_for));
        appendf(s,
                "    %-16s %-16s %-10s %-10s %14s %20s\n",
                "transform",
                "bits",
                "centred",
                "estimator",
                "predicted_loss",
                "heldout_recall@10");
        for (const CandidateReport& c : candidates) {
            const std::string bits_label =
                    (c.prefix              ? "prefix" + std::to_string(c.nbits)
                             : c.allocated ? "alloc<=" + std::to_string(c.nbits)
                                           : std::to_string(c.nbits)) +
                    (c.joint ? " joint" : "") +
                    (c.quantization == Quantization::lloyd_max
                             ? ""
                             : std::string(" ") +
                                     quantization_name(c.quantization));
            appendf(s,
                    "    %-16s %-16s %-10s %-10s %14.4f %13.4f +- %.4f\n",
                    transform_name(c.transform),
                    bits_label.c_str(),
                    c.centered ? "yes" : "no",
                    estimator_name(c.estimator),
                    c.predicted_loss,
                    c.heldout_recall,
                    c.heldout_recall_stderr);
        }
    }
    if (!reason.empty()) {
        appendf(s, "  reason: %s\n", reason.c_str());
    }
    if (!recall_profile.empty()) {
        const int64_t held = int64_t(recall_profile.base_rows);
        appendf(s,
                "  expected 10-recall@10 from the codes alone: %.2f among "
                "%lld vectors (held out), %.2f among 100k, %.2f among 1M "
                "(extrapolated)\n",
                expected_recall(held),
                (long long)held,
                expected_recall(100000),
                expected_recall(1000000));
        appendf(s,
                "  k_factor for 0.90 / 0.95 / 0.99 after exact re-ranking "
                "(k_factor_for): %.1f / %.1f / %.1f among 100k, "
                "%.1f / %.1f / %.1f among 1M\n",
                k_factor_for(0.90f, 100000),
                k_factor_for(0.95f, 100000),
                k_factor_for(0.99f, 100000),
                k_factor_for(0.90f, 1000000),
                k_factor_for(0.95f, 1000000),
                k_factor_for(0.99f, 1000000));
    }
    return s;
}

/// The count holding a share r among `rows` (linear between the grid's
/// counts, from 0 at 0), and the growth exponent at r (linear too).
static void count_and_growth(
        const RecallProfile& p,
        double r,
        double& k,
        double& a) {
    double k0 = 0, r0 = 0, a0 = p.growth.front();
    for (size_t i = 0; i < p.candidates.size(); i++) {
        if (p.recall[i] >= r) {
            const double w =
                    p.recall[i] > r0 ? (r - r0) / (p.recall[i] - r0) : 1;
            k = k0 + w * (p.candidates[i] - k0);
            a = a0 + w * (p.growth[i] - a0);
            return;
        }
        k0 = p.candidates[i];
        r0 = p.recall[i];
        a0 = p.growth[i];
    }
    k = p.candidates.back();
    a = p.growth.back();
}

double RecallProfile::candidates_for(double r, double n) const {
    double k, a;
    count_and_growth(*this, r, k, a);
    return k * std::pow(n / double(base_rows), a);
}

double RecallProfile::recall_at(double k, double n) const {
    // The count grows with the share: the largest share whose count is
    // within k, bisected.
    if (candidates_for(1e-6, n) > k) {
        return 0;
    }
    double lo = 1e-6, hi = 1;
    for (int it = 0; it < 40; it++) {
        const double mid = 0.5 * (lo + hi);
        (candidates_for(mid, n) <= k ? lo : hi) = mid;
    }
    return lo;
}

namespace {

void check_profile_query(
        const RecallProfile& p,
        const char* what,
        int64_t ntotal) {
    FAISS_THROW_IF_NOT_MSG(
            !p.empty(),
            "the plan has no recall profile (it was not chosen by the "
            "trainer's held-out check)");
    FAISS_THROW_IF_NOT_FMT(
            ntotal >= 1,
            "%s: ntotal=%lld must be >= 1",
            what,
            (long long)ntotal);
}

} // namespace

float BinarizationPlan::k_factor_for(float recall, int64_t ntotal) const {
    check_profile_query(recall_profile, "k_factor_for", ntotal);
    FAISS_THROW_IF_NOT_FMT(
            recall > 0 && recall < 1,
            "k_factor_for: recall=%g must be in (0, 1)",
            recall);
    // Candidates are whole: the nearest count, so that a search keeping
    // ceil(10 * k_factor) of them keeps that count.
    const double k =
            std::round(recall_profile.candidates_for(recall, double(ntotal)));
    return float(std::max(1.0, k / 10));
}

float BinarizationPlan::expected_recall(int64_t ntotal, float k_factor) const {
    check_profile_query(recall_profile, "expected_recall", ntotal);
    FAISS_THROW_IF_NOT_FMT(
            k_factor >= 1 && std::isfinite(k_factor),
            "expected_recall: k_factor=%g must be >= 1",
            k_factor);
    return float(recall_profile.recall_at(10.0 * k_factor, double(ntotal)));
}

} // namespace faiss_bq
