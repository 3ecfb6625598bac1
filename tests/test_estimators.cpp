// Each estimator against a direct double computation on decoded vectors.
#include <faiss_bq/codes.h>
#include <faiss_bq/estimators.h>

#include "test_util.h"

#include <gtest/gtest.h>

#include <cfloat>
#include <cmath>

namespace faiss_bq {
namespace {

using test::dot;

struct Fixture {
    size_t n = 60, d;
    BinarizationPlan plan;
    std::vector<float> x, q, decoded;
    std::vector<uint8_t> codes;
    CodeLayout layout;

    Fixture(size_t d, int nbits, Transform t, bool centred) : d(d) {
        std::vector<float> mean(d), sigma(d);
        for (size_t j = 0; j < d; j++) {
            mean[j] =
                    0.3f * std::cos(float(j));  // an offset, as real embeddings
            sigma[j] = 0.5f + float(j % 5) / 4; // and unequal scales
        }
        x = test::gaussian(n, d, 17, sigma, mean);
        q = test::gaussian(10, d, 18, sigma, mean);
        plan = fit_plan(n, d, x.data(), nbits, t, centred, 4);
        layout = CodeLayout(d, nbits);
        codes.resize(n * layout.code_size);
        encode(plan, n, x.data(), codes.data());
        decoded.resize(n * d);
        decode(plan, n, codes.data(), decoded.data());
    }
};

// Asymmetric, float query. decode() returns x~ = c + R^T (s r_hat) with s the
// least-squares scale; the estimator's a r_hat is the same direction scaled to
// a / s = |x - c|^2 / |x~ - c|^2, so (DESIGN, Estimators):
//   IP estimate = <c, q> + <x - c, c> + |x-c|^2 / |x~-c|^2 <x~ - c, q - c>
//   L2 estimate = |x - c|^2 + |q - c|^2 - 2 (the same scaled product).
// Tolerance: the scorer sums d float products through d/8 (or d/4) table
// entries in float; the rounding error is below ~d * FLT_EPSILON times the
// sum of the absolute terms, bounded here by |a r_hat| |q - c| + |<c, q>|.
TEST(Estimators, AsymmetricFloatQueryMatchesDecodedVectors) {
    for (size_t d : {1, 9, 64, 130}) {
        for (int nbits : {1, 2}) {
            for (Transform t :
                 {Transform::identity, Transform::random_rotation}) {
                for (bool centred : {false, true}) {
                    Fixture f(d, nbits, t, centred);
                    const float* c = f.plan.center.data();
                    for (faiss::MetricType m :
                         {faiss::METRIC_INNER_PRODUCT, faiss::METRIC_L2}) {
                        QueryScorer scorer(f.plan, m, Estimator::asymmetric, 0);
                        for (size_t qi = 0; qi < 10; qi++) {
                            const float* q = f.q.data() + qi * d;
                            scorer.set_query(q);
                            std::vector<float> qc(d);
                            for (size_t j = 0; j < d; j++) {
                                qc[j] = q[j] - c[j];
                            }
                            for (size_t i = 0; i < f.n; i++) {
                                const float* x = f.x.data() + i * d;
                                const float* xt = f.decoded.data() + i * d;
                                std::vector<float> xc(d), xtc(d);
                                for (size_t j = 0; j < d; j++) {
                                    xc[j] = x[j] - c[j];
                                    xtc[j] = xt[j] - c[j];
                                }
                                const double xtc2 =
                                        dot(xtc.data(), xtc.data(), d);
                                const double ratio = xtc2 > 0
                                        ? dot(xc.data(), xc.data(), d) / xtc2
                                        : 0;
                                const double est_res =
                                        ratio * dot(xtc.data(), qc.data(), d);
                                const double want =
                                        m == faiss::METRIC_INNER_PRODUCT
                                        ? dot(c, q, d) + dot(xc.data(), c, d) +
                                                est_res
                                        : dot(xc.data(), xc.data(), d) +
                                                dot(qc.data(), qc.data(), d) -
                                                2 * est_res;
                                const double mag =
                                        std::sqrt(
                                                ratio * ratio * xtc2 *
                                                dot(qc.data(), qc.data(), d)) +
                                        std::abs(dot(c, q, d)) +
                                        dot(xc.data(), xc.data(), d) +
                                        dot(qc.data(), qc.data(), d);
                                const double tol =
                                        4 * (d + 8) * FLT_EPSILON * mag;
                                ASSERT_NEAR(
                                        scorer(f.codes.data() +
                                               i * f.layout.code_size),
                                        want,
                                        tol)
                                        << "d " << d << " nbits " << nbits
                                        << " " << transform_name(t)
                                        << " centred " << centred << " metric "
                                        << m;
                            }
                        }
                    }
                }
            }
        }
    }
}

// Quantized query: each term's weights w_j are rounded to a grid of step
// delta = (max w - min w) / (2^B - 1), an error of at most delta / 2 per
// coordinate whose term bit is set. Summed over terms and scaled by the
// code's estimate_scale a, |quantized - float| <= a sum_t delta_t / 2 d,
// where the weights w = coefficient * y are at most 2 max|L| |y_j| apart
// per term coefficient (|coefficient| <= 4 max|L| for the b0 b1 term).
TEST(Estimators, QuantizedQueryIsWithinItsRoundingBound) {
    for (size_t d : {9, 64, 130}) {
        for (int nbits : {1, 2}) {
            Fixture f(d, nbits, Transform::identity, true);
            float max_level = 0;
            for (float l : f.plan.levels) {
                max_level = std::max(max_level, std::abs(l));
            }
            double mean_err[9] = {};
            for (int bits : {4, 6, 8}) {
                QueryScorer exact(
                        f.plan,
                        faiss::METRIC_INNER_PRODUCT,
                        Estimator::asymmetric,
                        0);
                QueryScorer quant(
                        f.plan,
                        faiss::METRIC_INNER_PRODUCT,
                        Estimator::asymmetric,
                        bits);
                for (size_t qi = 0; qi < 10; qi++) {
                    const float* q = f.q.data() + qi * d;
                    exact.set_query(q);
                    quant.set_query(q);
                    double ymax = 0;
                    for (size_t j = 0; j < d; j++) {
                        ymax = std::max(
                                ymax,
                                double(std::abs(q[j] - f.plan.center[j])));
                    }
                    const int n_terms = (1 << nbits) - 1;
                    const double coef_max = (nbits == 1 ? 2 : 4) * max_level;
                    const double delta =
                            2 * coef_max * ymax / ((1 << bits) - 1);
                    for (size_t i = 0; i < f.n; i++) {
                        const uint8_t* code =
                                f.codes.data() + i * f.layout.code_size;
                        const double bound = f.layout.estimate_scale(code) *
                                        n_terms * delta / 2 * d +
                                1e-4;
                        const double err = std::abs(quant(code) - exact(code));
                        ASSERT_LE(err, bound) << "d " << d << " nbits " << nbits
                                              << " bits " << bits;
                        mean_err[bits] += err;
                    }
                }
            }
            // More query bits, smaller errors (the grid step halves per bit).
            EXPECT_LT(mean_err[8], mean_err[6])
                    << "d " << d << " nbits " << nbits;
            EXPECT_LT(mean_err[6], mean_err[4])
                    << "d " << d << " nbits " << nbits;
        }
    }
}

// Symmetric: the code values s (odd integers) of x and of the encoded query;
// L2 returns |s_x - s_q|^2 / 4 (the Hamming distance at 1 bit), IP <s_x, s_q>.
// Integers: exact.
TEST(Estimators, SymmetricIsCodeSpaceDistance) {
    for (size_t d : {1, 9, 64, 130}) {
        for (int nbits : {1, 2}) {
            Fixture f(d, nbits, Transform::identity, true);
            std::vector<float> sx(f.n * d), sq(d);
            code_values(f.layout, f.n, f.codes.data(), sx.data());
            std::vector<uint8_t> qcode(f.layout.code_size);
            for (faiss::MetricType m :
                 {faiss::METRIC_INNER_PRODUCT, faiss::METRIC_L2}) {
                QueryScorer scorer(f.plan, m, Estimator::symmetric, 0);
                for (size_t qi = 0; qi < 10; qi++) {
                    const float* q = f.q.data() + qi * d;
                    scorer.set_query(q);
                    encode(f.plan, 1, q, qcode.data());
                    code_values(f.layout, 1, qcode.data(), sq.data());
                    for (size_t i = 0; i < f.n; i++) {
                        double ip = 0, l2 = 0;
                        for (size_t j = 0; j < d; j++) {
                            ip += sx[i * d + j] * sq[j];
                            l2 += (sx[i * d + j] - sq[j]) *
                                    (sx[i * d + j] - sq[j]);
                        }
                        const double want =
                                m == faiss::METRIC_INNER_PRODUCT ? ip : l2 / 4;
                        ASSERT_EQ(
                                scorer(f.codes.data() + i * f.layout.code_size),
                                want)
                                << "d " << d << " nbits " << nbits << " metric "
                                << m;
                    }
                }
            }
        }
    }
}

} // namespace
} // namespace faiss_bq
