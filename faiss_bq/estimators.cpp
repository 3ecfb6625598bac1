#include <faiss_bq/estimators.h>

#include <faiss_bq/kernels/kernels.h>

#include <faiss/impl/FaissAssert.h>

#include <algorithm>
#include <cmath>

namespace faiss_bq {

QueryScorer::QueryScorer(
        const BinarizationPlan& plan,
        faiss::MetricType metric,
        Estimator estimator,
        int query_bits)
        : plan(plan),
          layout(plan.d, plan.nbits),
          metric(metric),
          estimator(estimator),
          query_bits(query_bits) {
    y.resize(plan.d);
    if (estimator == Estimator::symmetric) {
        query_code.resize(layout.code_size);
    } else if (query_bits == 0) {
        lut.resize(kernels::lut_groups(layout.plane_bytes, plan.nbits) *
                   kernels::lut_entries);
    } else {
        // The level polynomial's terms: one per non-empty subset of the
        // code's bits (b0; or b0, b1, b0 b1).
        for (int mask = 1; mask < plan.n_levels(); mask++) {
            Term t;
            t.plane_mask = mask;
            t.u_planes.resize(query_bits * layout.plane_bytes);
            terms.push_back(std::move(t));
        }
        and_plane.resize(layout.plane_bytes);
    }
}

void QueryScorer::set_query(const float* q) {
    if (estimator == Estimator::symmetric) {
        encode(plan, 1, q, query_code.data());
        // sum_j v_j and sum_j v_j^2 of the query's level indices v, from
        // popcounts of its planes (see symmetric()).
        query_sum = query_sum2 = 0;
        for (int a = 0; a < plan.nbits; a++) {
            const uint8_t* qa = layout.plane(query_code.data(), a);
            query_sum += int64_t(kernels::popcount(qa, layout.plane_bytes)) << a;
            query_sum2 += int64_t(kernels::weighted_popcount(
                                  query_code.data(), plan.nbits, qa,
                                  layout.plane_bytes))
                    << a;
        }
        return;
    }
    plan.apply(1, q, y.data());
    double n2 = 0, cip = 0;
    for (int j = 0; j < plan.d; j++) {
        n2 += double(y[j]) * y[j];
        cip += double(plan.center[j]) * q[j];
    }
    y_norm2 = float(n2);
    center_ip = float(cip);
    if (query_bits == 0) {
        set_query_lut();
    } else {
        set_query_quantized();
    }
}

void QueryScorer::set_query_lut() {
    const int nbits = plan.nbits;
    const int group = 8 / nbits; // coordinates per table
    const size_t ngroups = kernels::lut_groups(layout.plane_bytes, nbits);
    float contrib[8][4]; // [coordinate in group][level index]
    for (size_t g = 0; g < ngroups; g++) {
        for (int i = 0; i < group; i++) {
            const size_t j = g * group + i;
            for (int v = 0; v < plan.n_levels(); v++) {
                // padding coordinates (j >= d) have zero bits and weight
                contrib[i][v] = j < size_t(plan.d) ? plan.level(j, v) * y[j] : 0;
            }
        }
        float* table = lut.data() + g * kernels::lut_entries;
        for (unsigned m = 0; m < kernels::lut_entries; m++) {
            float s = 0;
            for (int i = 0; i < group; i++) {
                // index layout of kernels::lut_scan
                const int v = nbits == 1
                        ? (m >> i) & 1
                        : ((m >> i) & 1) | (((m >> (4 + i)) & 1) << 1);
                s += contrib[i][v];
            }
            table[m] = s;
        }
    }
}

void QueryScorer::set_query_quantized() {
    const int d = plan.d;
    const int top = (1 << query_bits) - 1;
    double b = 0;
    for (int j = 0; j < d; j++) {
        b += double(plan.level(j, 0)) * y[j];
    }
    base = float(b);
    std::vector<float> w(d);
    for (Term& t : terms) {
        // Coefficient of the bit product "mask" in the level polynomial
        // (Moebius inversion over the subsets of mask).
        for (int j = 0; j < d; j++) {
            float coef = 0;
            for (int sub = t.plane_mask;; sub = (sub - 1) & t.plane_mask) {
                const int sign =
                        (__builtin_popcount(t.plane_mask ^ sub) & 1) ? -1 : 1;
                coef += sign * plan.level(j, sub);
                if (sub == 0) {
                    break;
                }
            }
            w[j] = coef * y[j];
        }
        const auto [lo, hi] = std::minmax_element(w.begin(), w.end());
        t.lo = *lo;
        t.delta = (*hi - *lo) / top;
        std::fill(t.u_planes.begin(), t.u_planes.end(), 0);
        for (int j = 0; j < d; j++) {
            const int u = t.delta > 0 ? int(std::lround((w[j] - t.lo) / t.delta))
                                      : 0;
            for (int p = 0; p < query_bits; p++) {
                t.u_planes[p * layout.plane_bytes + j / 8] |=
                        ((u >> p) & 1) << (j % 8);
            }
        }
    }
}

float QueryScorer::residual_ip(const uint8_t* code) {
    if (query_bits == 0) {
        return kernels::lut_scan(code, layout.plane_bytes, plan.nbits, lut.data());
    }
    float s = base;
    for (const Term& t : terms) {
        const uint8_t* bits;
        if (t.plane_mask == 1 || t.plane_mask == 2) {
            bits = layout.plane(code, t.plane_mask >> 1);
        } else {
            const uint8_t* p0 = layout.plane(code, 0);
            const uint8_t* p1 = layout.plane(code, 1);
            for (size_t i = 0; i < layout.plane_bytes; i++) {
                and_plane[i] = p0[i] & p1[i];
            }
            bits = and_plane.data();
        }
        s += t.lo * float(kernels::popcount(bits, layout.plane_bytes)) +
                t.delta *
                        float(kernels::weighted_popcount(
                                t.u_planes.data(), query_bits, bits,
                                layout.plane_bytes));
    }
    return s;
}

float QueryScorer::symmetric(const uint8_t* code) {
    const int64_t d = plan.d;
    if (plan.nbits == 1) {
        const int64_t h = kernels::hamming(code, query_code.data(), layout.plane_bytes);
        return metric == faiss::METRIC_L2 ? float(h) : float(d - 2 * h);
    }
    // Level indices v (x) and w (query) as planes: sum v = sum_a 2^a |X_a|,
    // sum v w = sum_{a,b} 2^{a+b} |X_a & Q_b|, sum v^2 likewise with X_b.
    // The odd-integer values are s = 2 v - top.
    const int64_t top = plan.n_levels() - 1;
    int64_t sx = 0, sxx = 0, sxq = 0;
    for (int a = 0; a < plan.nbits; a++) {
        const uint8_t* xa = layout.plane(code, a);
        sx += int64_t(kernels::popcount(xa, layout.plane_bytes)) << a;
        sxx += int64_t(kernels::weighted_popcount(code, plan.nbits, xa,
                                                  layout.plane_bytes))
                << a;
        sxq += int64_t(kernels::weighted_popcount(query_code.data(), plan.nbits,
                                                  xa, layout.plane_bytes))
                << a;
    }
    const int64_t ip = 4 * sxq - 2 * top * (sx + query_sum) + top * top * d;
    if (metric == faiss::METRIC_INNER_PRODUCT) {
        return float(ip);
    }
    const int64_t nx = 4 * sxx - 4 * top * sx + top * top * d;
    const int64_t nq = 4 * query_sum2 - 4 * top * query_sum + top * top * d;
    return float(nx + nq - 2 * ip) / 4;
}

float QueryScorer::operator()(const uint8_t* code) {
    if (estimator == Estimator::symmetric) {
        return symmetric(code);
    }
    const float ip = layout.estimate_scale(code) * residual_ip(code);
    return metric == faiss::METRIC_INNER_PRODUCT
            ? center_ip + layout.center_dot(code) + ip
            : layout.residual_norm2(code) + y_norm2 - 2 * ip;
}

} // namespace faiss_bq
