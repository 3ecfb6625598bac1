// TurboQuant (Zandieh et al., 2025): the MSE variant as a plan
// (Quantization::turbo_mse) and the prod variant as IndexBQTurbo. Codes and
// scores against a scalar double reference, the MSE scale, the prod
// estimator's unbiasedness over the sketch, factory, files, bad input.
#include <faiss_bq/IndexBQ.h>
#include <faiss_bq/IndexBQTurbo.h>
#include <faiss_bq/codes.h>
#include <faiss_bq/index_factory.h>
#include <faiss_bq/index_io.h>
#include <faiss_bq/plan.h>
#include <faiss_bq/trainer.h>

#include "test_util.h"

#include <faiss/VectorTransform.h>
#include <faiss/impl/FaissException.h>
#include <faiss/impl/IDSelector.h>
#include <faiss/impl/io.h>

#include <gtest/gtest.h>

#include <omp.h>

#include <cmath>
#include <memory>
#include <numeric>
#include <random>

namespace faiss_bq {
namespace {

using idx_t = faiss::Index::idx_t;

/// Offset, anisotropic Gaussian rows (n x d) with norms spread over 4x.
std::vector<float> varied_rows(size_t n, size_t d, int seed) {
    std::vector<float> sigma(d), mean(d);
    for (size_t j = 0; j < d; j++) {
        sigma[j] = 0.5f + float(j % 7) / 7;
        mean[j] = 0.4f * std::sin(float(j));
    }
    std::vector<float> x = test::gaussian(n, d, seed, sigma, mean);
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> scale(0.5f, 2.0f);
    for (size_t i = 0; i < n; i++) {
        const float s = scale(rng);
        for (size_t j = 0; j < d; j++) {
            x[i * d + j] *= s;
        }
    }
    return x;
}

/// y = R (x - c) of one row in double, from the plan's fields.
std::vector<double> transformed(const BinarizationPlan& p, const float* x) {
    const size_t d = p.d;
    std::vector<double> r(d), y(d);
    for (size_t j = 0; j < d; j++) {
        r[j] = double(x[j]) - p.center[j];
    }
    for (size_t a = 0; a < d; a++) {
        double s = r[a];
        if (p.transform == Transform::random_rotation) {
            s = 0;
            for (size_t b = 0; b < d; b++) {
                s += double(p.rotation[a * d + b]) * r[b];
            }
        }
        y[a] = s;
    }
    return y;
}

/// Gaussian Lloyd-Max distortion E(g - Q(g))^2 at 1..4 bits (Max 1960).
const double kGaussianDistortion[] = {0.3634, 0.1175, 0.03455, 0.009497};

// A TurboQuant-MSE code is an EDEN code (same planes, |y|^2, <x - c, c>)
// with estimate_scale |y| / sqrt(d) (a double reference); EDEN's planes are
// checked against the scalar reference in Eden.CodesAreTheScalarReference.
TEST(TurboQuantMse, CodesAreEdensWithTheMseScale) {
    const size_t n = 300;
    for (size_t d : {100, 64}) {
        const auto x = varied_rows(n, d, 11);
        for (int nbits = 1; nbits <= 4; nbits++) {
            for (Transform t :
                 {Transform::random_rotation, Transform::identity}) {
                const BinarizationPlan p = fit_eden_plan(
                        n,
                        d,
                        x.data(),
                        nbits,
                        t,
                        true,
                        5,
                        Quantization::turbo_mse);
                ASSERT_EQ(p.quantization, Quantization::turbo_mse);
                const BinarizationPlan pe =
                        fit_eden_plan(n, d, x.data(), nbits, t, true, 5);
                const CodeLayout layout(p);
                std::vector<uint8_t> codes(n * layout.code_size),
                        eden(n * layout.code_size);
                encode(p, n, x.data(), codes.data());
                encode(pe, n, x.data(), eden.data());
                for (size_t i = 0; i < n; i++) {
                    const uint8_t* c = codes.data() + i * layout.code_size;
                    const uint8_t* e = eden.data() + i * layout.code_size;
                    ASSERT_EQ(
                            std::vector<uint8_t>(c, c + layout.planes_size),
                            std::vector<uint8_t>(e, e + layout.planes_size));
                    EXPECT_EQ(
                            layout.residual_norm2(c), layout.residual_norm2(e));
                    EXPECT_EQ(layout.center_dot(c), layout.center_dot(e));
                    const auto y = transformed(p, x.data() + i * d);
                    double norm2 = 0;
                    for (double v : y) {
                        norm2 += v * v;
                    }
                    const double want = std::sqrt(norm2 / double(d));
                    EXPECT_NEAR(layout.estimate_scale(c), want, 1e-5 * want)
                            << "d " << d << " nbits " << nbits << " row " << i;
                }
            }
        }
    }
}

// The MSE scale: decode() returns c + R^T ((|y| / sqrt(d)) levels), whose
// relative error |y - y_hat|^2 / |y|^2 is the Gaussian Lloyd-Max distortion
// (rotated coordinates of norm sqrt(d) are near N(0, 1)); EDEN's unbiased
// estimate vector (a larger scale) is further from y, and the MSE
// reconstruction shrinks <y_hat, y> to (1 - distortion) |y|^2.
TEST(TurboQuantMse, ScaleIsTheMseOne) {
    const size_t n = 400, d = 256;
    const auto x = varied_rows(n, d, 3);
    for (int nbits = 1; nbits <= 4; nbits++) {
        const BinarizationPlan p = fit_eden_plan(
                n,
                d,
                x.data(),
                nbits,
                Transform::random_rotation,
                true,
                7,
                Quantization::turbo_mse);
        const CodeLayout layout(p);
        std::vector<uint8_t> codes(n * layout.code_size);
        encode(p, n, x.data(), codes.data());
        std::vector<float> xd(n * d), yh(n * d), ev(n * d);
        decode(p, n, codes.data(), xd.data());
        decode_residuals(p, n, codes.data(), yh.data());
        estimate_vectors(p, n, codes.data(), ev.data());
        double err = 0, norm = 0, dot = 0, err_decoded = 0;
        for (size_t i = 0; i < n; i++) {
            const auto y = transformed(p, x.data() + i * d);
            const uint8_t* c = codes.data() + i * layout.code_size;
            const double s = layout.estimate_scale(c);
            for (size_t j = 0; j < d; j++) {
                const double l = p.level(j, layout.level_index(c, j));
                // decode uses the stored scale as it is
                ASSERT_NEAR(yh[i * d + j], s * l, 1e-6 * (1 + std::abs(s * l)));
                ASSERT_EQ(yh[i * d + j], ev[i * d + j]);
                err += (y[j] - s * l) * (y[j] - s * l);
                norm += y[j] * y[j];
                dot += s * l * y[j];
                const double xe = double(xd[i * d + j]) - x[i * d + j];
                err_decoded += xe * xe;
            }
        }
        const double D = kGaussianDistortion[nbits - 1];
        EXPECT_NEAR(err / norm, D, 0.1 * D) << "nbits " << nbits;
        EXPECT_NEAR(dot / norm, 1 - D, 0.1 * D) << "nbits " << nbits;
        // R is orthogonal: the input-space error is the same
        EXPECT_NEAR(err_decoded / norm, err / norm, 1e-3 * err / norm);
        // EDEN's unbiased scale |y|^2 / <r_hat, y> is larger, its error too
        const BinarizationPlan pe = fit_eden_plan(
                n, d, x.data(), nbits, Transform::random_rotation, true, 7);
        std::vector<float> ee(n * d);
        encode(pe, n, x.data(), codes.data());
        estimate_vectors(pe, n, codes.data(), ee.data());
        double err_eden = 0;
        for (size_t i = 0; i < n; i++) {
            const auto y = transformed(p, x.data() + i * d);
            for (size_t j = 0; j < d; j++) {
                const double e = y[j] - ee[i * d + j];
                err_eden += e * e;
            }
        }
        // (at 4 bits the gap, ~D, is within the scale's per-vector noise)
        if (nbits <= 3) {
            EXPECT_GT(err_eden, err * (1 + 0.5 * D)) << "nbits " << nbits;
        }
    }
}

TEST(TurboQuantMse, FactoryStringsAndFiles) {
    const size_t n = 1000, d = 32;
    const auto x = varied_rows(n, d, 2);
    for (const char* s :
         {"BQ2_tqmse",
          "BQ1_tqmse_axis",
          "BQ16B_uniform_tqmse",
          "BQ2_tqmse_rot_ctr_fs",
          "IVF4,BQ1_tqmse"}) {
        std::unique_ptr<faiss::Index> index(
                index_factory(d, s, faiss::METRIC_INNER_PRODUCT));
        EXPECT_EQ(index_factory_string(index.get()), s);
        index->train(n, x.data());
        index->add(n, x.data());
        faiss::VectorIOWriter w;
        write_index(index.get(), &w);
        faiss::VectorIOReader r;
        r.data = w.data;
        std::unique_ptr<faiss::Index> back(read_index(&r));
        EXPECT_EQ(index_factory_string(back.get()), s);
        faiss::VectorIOWriter w2;
        write_index(back.get(), &w2);
        EXPECT_EQ(w.data, w2.data) << s;
        std::vector<float> d1(50), d2(50);
        std::vector<idx_t> i1(50), i2(50);
        index->search(5, x.data(), 10, d1.data(), i1.data());
        back->search(5, x.data(), 10, d2.data(), i2.data());
        EXPECT_EQ(i1, i2) << s;
        EXPECT_EQ(d1, d2) << s;
        if (auto bq = dynamic_cast<const IndexBQ*>(back.get())) {
            EXPECT_EQ(bq->plan.quantization, Quantization::turbo_mse) << s;
            EXPECT_EQ(bq->trainer.quantization, QuantizationChoice::turbo_mse);
            for (const CandidateReport& c : bq->plan.candidates) {
                EXPECT_EQ(c.quantization, Quantization::turbo_mse) << s;
            }
        }
    }
    // _tqmse refuses what _eden refuses, naming the token
    for (const char* s :
         {"BQ1_tqmse_pca",
          "BQ16B_alloc_tqmse",
          "BQ1_tqmse(BFlat)",
          "BQ1_tqmse_eden",
          "BQ1_lm_tqmse"}) {
        test::expect_throw_naming(
                [&] { delete index_factory(d, s, faiss::METRIC_L2); }, s);
    }
}

TEST(TurboQuantMse, BadInput) {
    const size_t n = 200, d = 16;
    const auto x = test::gaussian(n, d, 1);
    test::expect_throw_naming(
            [&] {
                fit_eden_plan(
                        n,
                        d,
                        x.data(),
                        1,
                        Transform::random_rotation,
                        true,
                        1,
                        Quantization::lloyd_max);
            },
            "quantization=lloyd_max");
    test::expect_throw_naming(
            [&] {
                fit_eden_plan(
                        n,
                        d,
                        x.data(),
                        5,
                        Transform::random_rotation,
                        true,
                        1,
                        Quantization::turbo_mse);
            },
            "nbits=5");
    test::expect_throw_naming(
            [&] {
                BinarizationPlan p = fit_eden_plan(
                        n,
                        d,
                        x.data(),
                        1,
                        Transform::random_rotation,
                        true,
                        1,
                        Quantization::turbo_mse);
                fit_joint_codebooks(p, n, x.data());
            },
            "quantization=turbo_mse");
    TrainerOptions o;
    o.budget_bytes = 4;
    o.quantization = QuantizationChoice::turbo_mse;
    o.allocation = AllocationChoice::allocated;
    test::expect_throw_naming(
            [&] { train_plan(n, d, x.data(), o); },
            "quantization=turbo_mse with allocation=allocated");
}

// ---------------------------------------------------------------- prod

/// w(d) = sqrt(pi) Gamma((d+1)/2) / (d Gamma(d/2)) = 1 / (d E|u_1|) for u
/// uniform on the unit sphere of R^d.
double sketch_weight(size_t d) {
    return std::sqrt(M_PI) *
            std::exp(std::lgamma((d + 1) / 2.0) - std::lgamma(d / 2.0)) / d;
}

/// The estimate of <y, y'> an IndexBQTurbo code gives, in double from the
/// code's fields and the index's model: the MSE part's levels times its
/// stored scale, plus the sketch's w(d) |e| <sign(Q e), Q y'>.
double reference_ip(
        const IndexBQTurbo& index,
        const uint8_t* code,
        const std::vector<double>& yq) {
    const size_t d = index.d;
    const CodeLayout layout(index.plan);
    double mse = 0;
    for (size_t j = 0; j < d; j++) {
        mse += double(index.plan.level(j, layout.level_index(code, j))) * yq[j];
    }
    mse *= layout.estimate_scale(code);
    const uint8_t* plane = code + layout.code_size;
    float e_norm;
    std::memcpy(&e_norm, plane + index.plane_bytes(), 4);
    double sk = 0;
    for (size_t i = 0; i < d; i++) {
        double z = 0;
        for (size_t j = 0; j < d; j++) {
            z += double(index.sketch[i * d + j]) * yq[j];
        }
        sk += ((plane[i / 8] >> (i % 8)) & 1) ? z : -z;
    }
    return mse + sketch_weight(d) * e_norm * sk;
}

// Codes against a double reference: the MSE part is the TurboQuant-MSE
// plan's code (the same bytes as encode()), the sketch bit i is (Q e)_i >=
// 0 for e = y - (|y| / sqrt(d)) levels, then |e|; search() returns the
// reference estimate from those fields (both metrics, all nbits, with and
// without rotation and centring), and sa_decode() is the vector whose inner
// products are those estimates.
TEST(IndexBQTurbo, CodesAndScoresAreTheScalarReference) {
    const size_t d = 40, nb = 300, nq = 6;
    const auto xb = varied_rows(nb, d, 21);
    const auto xq = varied_rows(nq, d, 22);
    for (int nbits = 2; nbits <= 4; nbits++) {
        for (faiss::MetricType metric :
             {faiss::METRIC_L2, faiss::METRIC_INNER_PRODUCT}) {
            for (bool rotated : {true, false}) {
                IndexBQTurbo index(d, nbits, metric);
                index.transform = rotated ? Transform::random_rotation
                                          : Transform::identity;
                index.centered = rotated;
                index.train(nb, xb.data());
                index.add(nb, xb.data());
                const BinarizationPlan& p = index.plan;
                ASSERT_EQ(p.nbits, nbits - 1);
                ASSERT_EQ(p.quantization, Quantization::turbo_mse);
                const size_t mcs = index.mse_code_size();
                ASSERT_EQ(index.code_size, mcs + index.plane_bytes() + 4);
                std::vector<uint8_t> mse(nb * mcs);
                encode(p, nb, xb.data(), mse.data());
                const CodeLayout layout(p);
                size_t borderline = 0;
                for (size_t i = 0; i < nb; i++) {
                    const uint8_t* code =
                            index.codes.data() + i * index.code_size;
                    ASSERT_EQ(
                            std::vector<uint8_t>(code, code + mcs),
                            std::vector<uint8_t>(
                                    mse.data() + i * mcs,
                                    mse.data() + (i + 1) * mcs));
                    const auto y = transformed(p, xb.data() + i * d);
                    const double s = layout.estimate_scale(code);
                    std::vector<double> e(d);
                    double e2 = 0;
                    for (size_t j = 0; j < d; j++) {
                        e[j] = y[j] -
                                s * p.level(j, layout.level_index(code, j));
                        e2 += e[j] * e[j];
                    }
                    float e_norm;
                    std::memcpy(&e_norm, code + mcs + index.plane_bytes(), 4);
                    ASSERT_NEAR(e_norm, std::sqrt(e2), 1e-4 * std::sqrt(e2));
                    for (size_t r = 0; r < d; r++) {
                        double se = 0;
                        for (size_t j = 0; j < d; j++) {
                            se += double(index.sketch[r * d + j]) * e[j];
                        }
                        const int bit = (code[mcs + r / 8] >> (r % 8)) & 1;
                        // float sgemm vs double: signs of tiny values may
                        // differ
                        if (std::abs(se) < 1e-5 * std::sqrt(e2)) {
                            borderline++;
                        } else {
                            ASSERT_EQ(bit, int(se >= 0))
                                    << "row " << i << " " << r;
                        }
                    }
                }
                EXPECT_LT(borderline, nb * d / 1000);
                std::vector<float> D(nq * nb);
                std::vector<idx_t> I(nq * nb);
                index.search(nq, xq.data(), nb, D.data(), I.data());
                std::vector<float> xd(nb * d);
                index.sa_decode(nb, index.codes.data(), xd.data());
                for (size_t i = 0; i < nq; i++) {
                    const auto yq = transformed(p, xq.data() + i * d);
                    double yq2 = 0, cq = 0;
                    for (size_t j = 0; j < d; j++) {
                        yq2 += yq[j] * yq[j];
                        cq += double(p.center[j]) * xq[i * d + j];
                    }
                    for (size_t r = 0; r < nb; r++) {
                        const idx_t v = I[i * nb + r];
                        ASSERT_GE(v, 0);
                        const uint8_t* code =
                                index.codes.data() + v * index.code_size;
                        const double ip = reference_ip(index, code, yq);
                        const double want = metric == faiss::METRIC_L2
                                ? layout.residual_norm2(code) + yq2 - 2 * ip
                                : cq + layout.center_dot(code) + ip;
                        ASSERT_NEAR(D[i * nb + r], want, 1e-4 * (1 + yq2))
                                << "nbits " << nbits << " query " << i;
                        // <R (x_decoded - c), y'> is the same estimate
                        const auto yd = transformed(p, xd.data() + v * d);
                        double ipd = 0;
                        for (size_t j = 0; j < d; j++) {
                            ipd += yd[j] * yq[j];
                        }
                        ASSERT_NEAR(ipd, ip, 1e-4 * (1 + yq2));
                    }
                }
            }
        }
    }
}

/// Mean and standard error.
std::pair<double, double> mean_and_se(const std::vector<double>& v) {
    double m = 0, s2 = 0;
    for (double a : v) {
        m += a;
    }
    m /= v.size();
    for (double a : v) {
        s2 += (a - m) * (a - m);
    }
    return {m, std::sqrt(s2 / (v.size() - 1) / v.size())};
}

// The prod estimate of <x, q> is unbiased over the sketch Q: with the MSE
// part fixed (one plan), the mean over 1,500 seeds of Q of the error
// (averaged over 40 pairs whose <x, q> ~ |x|^2, in units of |x| |q|) is
// within 4 standard errors of 0, while the MSE part alone is biased by more
// than 20 of them. A sketch weight 5% low (qjl_weight in IndexBQTurbo.cpp
// times 0.95) fails it: the mean moved to 10.5 standard errors at 2 bits
// (4.4 at 3 bits) when tried.
TEST(IndexBQTurbo, InnerProductEstimateIsUnbiasedOverSketches) {
    const size_t d = 32, nb = 8, nq = 5, seeds = 1500;
    const int threads = omp_get_max_threads();
    omp_set_num_threads(1); // tiny matrices: no OpenMP fork per product
    const auto xb = test::gaussian(nb, d, 1);
    auto xq = test::gaussian(nq, d, 2);
    for (size_t i = 0; i < nq; i++) {
        for (size_t j = 0; j < d; j++) {
            xq[i * d + j] += xb[i * d + j];
        }
    }
    // The sketches of seeds 17 .. 1516, drawn once for both bit counts:
    // faiss's float_randn seeds a Mersenne twister per 1024 numbers it
    // draws, so drawing them twice was most of this test's time.
    std::vector<std::vector<float>> sketches;
    for (size_t s = 0; s < seeds; s++) {
        faiss::RandomRotationMatrix rr(d, d);
        rr.init(int(s) + 17);
        sketches.push_back(std::move(rr.A));
    }
    for (int nbits : {2, 3}) {
        IndexBQTurbo index(d, nbits, faiss::METRIC_INNER_PRODUCT);
        index.centered = false;
        index.train(nb, xb.data());
        std::vector<double> truth(nq * nb), unit(nq * nb), mse_err(nq * nb);
        std::vector<uint8_t> mse(nb * index.mse_code_size());
        encode(index.plan, nb, xb.data(), mse.data());
        const CodeLayout layout(index.plan);
        std::vector<float> yb(nb * d), yq(nq * d);
        index.plan.apply(nb, xb.data(), yb.data());
        index.plan.apply(nq, xq.data(), yq.data());
        double mse_bias = 0;
        for (size_t i = 0; i < nq; i++) {
            for (size_t v = 0; v < nb; v++) {
                const float* x = xb.data() + v * d;
                const float* q = xq.data() + i * d;
                truth[i * nb + v] = test::dot(x, q, d);
                unit[i * nb + v] =
                        std::sqrt(test::dot(x, x, d) * test::dot(q, q, d));
                const uint8_t* c = mse.data() + v * layout.code_size;
                double m = 0;
                for (size_t j = 0; j < d; j++) {
                    m += index.plan.level(j, layout.level_index(c, j)) *
                            double(yq[i * d + j]);
                }
                mse_bias += (layout.estimate_scale(c) * m - truth[i * nb + v]) /
                        unit[i * nb + v];
            }
        }
        mse_bias /= nq * nb;
        std::vector<double> err;
        std::vector<float> D(nq * nb);
        std::vector<idx_t> I(nq * nb);
        for (size_t s = 0; s < seeds; s++) {
            index.sketch = sketches[s];
            index.reset();
            index.add(nb, xb.data());
            index.search(nq, xq.data(), nb, D.data(), I.data());
            double e = 0;
            for (size_t r = 0; r < nq * nb; r++) {
                const size_t at = (r / nb) * nb + size_t(I[r]);
                e += (D[r] - truth[at]) / unit[at];
            }
            err.push_back(e / (nq * nb));
        }
        const auto [m, se] = mean_and_se(err);
        std::printf(
                "nbits %d: prod mean error %.2e +- %.1e, MSE part alone "
                "%.2e (units of |x||q|)\n",
                nbits,
                m,
                se,
                mse_bias);
        EXPECT_LT(std::abs(m), 4 * se) << "nbits " << nbits;
        EXPECT_GT(std::abs(mse_bias), 20 * se) << "nbits " << nbits;
    }
    omp_set_num_threads(threads);
}

TEST(IndexBQTurbo, SelectorsAndMissingResults) {
    const int d = 24;
    const size_t nb = 500, nq = 5, k = 7;
    const auto xb = varied_rows(nb, d, 7);
    const auto xq = varied_rows(nq, d, 8);
    IndexBQTurbo index(d, 3);
    index.train(nb, xb.data());
    index.add(nb, xb.data());
    faiss::IDSelectorRange range(100, 200);
    faiss::SearchParameters p;
    p.sel = &range;
    std::vector<float> D(nq * k), Dall(nq * nb);
    std::vector<idx_t> I(nq * k), Iall(nq * nb);
    index.search(nq, xq.data(), k, D.data(), I.data(), &p);
    index.search(nq, xq.data(), nb, Dall.data(), Iall.data());
    for (size_t i = 0; i < nq; i++) {
        size_t r = 0;
        for (size_t a = 0; a < nb && r < k; a++) {
            const idx_t v = Iall[i * nb + a];
            if (v >= 100 && v < 200) {
                EXPECT_EQ(I[i * k + r], v);
                EXPECT_EQ(D[i * k + r], Dall[i * nb + a]);
                r++;
            }
        }
    }
    IndexBQTurbo small(d, 2);
    small.train(nb, xb.data());
    small.add(3, xb.data());
    small.search(1, xq.data(), k, D.data(), I.data());
    for (size_t r = 0; r < k; r++) {
        EXPECT_EQ(I[r] >= 0, r < 3) << r;
    }
}

TEST(IndexBQTurbo, FactoryStringsRoundTrip) {
    for (const char* s :
         {"BQT2",
          "BQT3_axis",
          "BQT4_noctr",
          "BQT2_axis_noctr",
          "IDMap2,BQT3"}) {
        std::unique_ptr<faiss::Index> index(index_factory(24, s));
        EXPECT_EQ(index_factory_string(index.get()), s);
    }
    std::unique_ptr<faiss::Index> a(index_factory(24, "BQT3_axis_noctr"));
    auto t = dynamic_cast<IndexBQTurbo*>(a.get());
    ASSERT_TRUE(t);
    EXPECT_EQ(t->nbits, 3);
    EXPECT_EQ(t->transform, Transform::identity);
    EXPECT_FALSE(t->centered);
    EXPECT_EQ(t->code_size, size_t(2 * 3 + 12 + 3 + 4));
    for (const char* s :
         {"BQT1",
          "BQT5",
          "BQT",
          "BQT2_sym",
          "BQT2_axis_axis",
          "BQT2x",
          "IVF4,BQT2",
          "HNSW32_BQT2"}) {
        test::expect_throw_naming([&] { delete index_factory(24, s); }, s);
    }
    test::expect_throw_naming(
            [] { delete index_factory(24, "BQT5"); }, "bit count 5");
}

TEST(IndexBQTurbo, FilesRoundTripAndBadFilesThrow) {
    const int d = 24;
    const size_t nb = 200, nq = 4, k = 5;
    const auto xb = varied_rows(nb, d, 9);
    const auto xq = varied_rows(nq, d, 10);
    for (const char* s : {"BQT2", "BQT4_axis_noctr", "IDMap2,BQT3"}) {
        for (faiss::MetricType metric :
             {faiss::METRIC_L2, faiss::METRIC_INNER_PRODUCT}) {
            std::unique_ptr<faiss::Index> index(index_factory(d, s, metric));
            index->train(nb, xb.data());
            std::vector<idx_t> ids(nb);
            std::iota(ids.begin(), ids.end(), 7);
            if (std::string(s).rfind("IDMap", 0) == 0) {
                index->add_with_ids(nb, xb.data(), ids.data());
            } else {
                index->add(nb, xb.data());
            }
            faiss::VectorIOWriter w;
            write_index(index.get(), &w);
            faiss::VectorIOReader r;
            r.data = w.data;
            std::unique_ptr<faiss::Index> back(read_index(&r));
            EXPECT_EQ(index_factory_string(back.get()), s);
            EXPECT_EQ(back->metric_type, metric);
            std::vector<float> D1(nq * k), D2(nq * k);
            std::vector<idx_t> I1(nq * k), I2(nq * k);
            index->search(nq, xq.data(), k, D1.data(), I1.data());
            back->search(nq, xq.data(), k, D2.data(), I2.data());
            EXPECT_EQ(I1, I2) << s;
            EXPECT_EQ(D1, D2) << s;
            faiss::VectorIOWriter w2;
            write_index(back.get(), &w2);
            EXPECT_EQ(w.data, w2.data) << s;
            for (size_t cut = 0; cut < w.data.size();
                 cut += 1 + w.data.size() / 97) {
                faiss::VectorIOReader t;
                t.data.assign(w.data.begin(), w.data.begin() + cut);
                EXPECT_THROW(
                        std::unique_ptr<faiss::Index>(read_index(&t)),
                        faiss::FaissException)
                        << s << " cut at " << cut;
            }
        }
    }
    IndexBQTurbo untrained(d, 4);
    faiss::VectorIOWriter w;
    write_index(&untrained, &w);
    EXPECT_EQ(std::string(w.data.begin(), w.data.begin() + 4), "BQTq");
    faiss::VectorIOReader r;
    r.data = w.data;
    std::unique_ptr<faiss::Index> back(read_index(&r));
    EXPECT_FALSE(back->is_trained);
    EXPECT_EQ(dynamic_cast<IndexBQTurbo&>(*back).nbits, 4);
    faiss::VectorIOReader flipped;
    flipped.data = w.data;
    flipped.data[20] ^= 1;
    test::expect_throw_naming([&] { delete read_index(&flipped); }, "checksum");
    faiss::VectorIOReader future;
    future.data = w.data;
    future.data[4] = 2; // the version after the fourcc
    test::expect_throw_naming(
            [&] { delete read_index(&future); },
            "IndexBQTurbo format version 2");
}

TEST(IndexBQTurbo, BadInputNamesTheValues) {
    using test::expect_throw_naming;
    const int d = 16;
    const auto x = varied_rows(50, d, 11);
    for (int nbits : {0, 1, 5}) {
        expect_throw_naming(
                [nbits] { IndexBQTurbo index(16, nbits); },
                "nbits=" + std::to_string(nbits) + " must be in 2..4");
    }
    expect_throw_naming([] { IndexBQTurbo index(0, 2); }, "d=0");
    expect_throw_naming(
            [] { IndexBQTurbo index(16, 2, faiss::METRIC_L1); }, "metric=2");
    IndexBQTurbo index(d, 2);
    std::vector<float> D(10);
    std::vector<idx_t> I(10);
    expect_throw_naming(
            [&] { index.add(50, x.data()); }, "add: the index is not trained");
    expect_throw_naming(
            [&] { index.search(1, x.data(), 5, D.data(), I.data()); },
            "search: the index is not trained");
    std::vector<uint8_t> code(index.code_size);
    expect_throw_naming(
            [&] { index.sa_encode(1, x.data(), code.data()); }, "not trained");
    std::vector<float> bad(x);
    bad[7] = NAN;
    expect_throw_naming(
            [&] { index.train(50, bad.data()); }, "column 7 is not finite");
    index.transform = Transform::pca;
    expect_throw_naming([&] { index.train(50, x.data()); }, "transform=pca");
    index.transform = Transform::random_rotation;
    index.train(50, x.data());
    expect_throw_naming(
            [&] { index.add(1, bad.data()); }, "column 7 is not finite");
    expect_throw_naming(
            [&] { index.search(1, x.data(), 0, D.data(), I.data()); }, "k=0");
    SearchParametersBQ p;
    p.estimator = Estimator::symmetric;
    expect_throw_naming(
            [&] { index.search(1, x.data(), 5, D.data(), I.data(), &p); },
            "estimator=symmetric");
    p.estimator = Estimator::asymmetric;
    p.query_bits = 4;
    expect_throw_naming(
            [&] { index.search(1, x.data(), 5, D.data(), I.data(), &p); },
            "query_bits=4");
    // merging: another d, other bits, another model
    IndexBQTurbo other_d(d + 8, 2), other_bits(d, 3), other_model(d, 2);
    other_model.seed = 99;
    other_model.train(50, x.data());
    expect_throw_naming([&] { index.merge_from(other_d); }, "d=16/24");
    expect_throw_naming([&] { index.merge_from(other_bits); }, "nbits=2/3");
    expect_throw_naming(
            [&] { index.merge_from(other_model); }, "different settings");
}

// Recall on use512-wordnet: FAISS's TurboQuant-prod at 2 bits (SQtq2, 136
// bytes) measured 0.688 in the bench's run (docs/rotation-quantizers.md),
// BQT2 0.772 when this test was written (0.667 with QJL's Gaussian sketch).
TEST(IndexBQTurbo, RecallOnUse512) {
    FAISS_BQ_REQUIRE_DATA("use512-wordnet", data);
    std::unique_ptr<faiss::Index> index(
            index_factory(int(data.d), "BQT2", faiss::METRIC_INNER_PRODUCT));
    index->train(data.nb, data.base.data());
    index->add(data.nb, data.base.data());
    const size_t k = 10;
    std::vector<float> D(data.nq * k);
    std::vector<idx_t> I(data.nq * k);
    index->search(data.nq, data.queries.data(), k, D.data(), I.data());
    const double recall =
            test::recall_at(data.nq, k, I.data(), data.gt.data(), data.gt_k);
    std::printf("BQT2 on use512-wordnet: 10-recall@10 %.4f\n", recall);
    EXPECT_GT(recall, 0.75);
}

} // namespace
} // namespace faiss_bq
