// EDEN (Quantization::eden): the Gaussian Lloyd-Max levels against Max's
// table, codes and scores against a plain scalar reference, the unbiased
// inner-product estimate, the trainer's candidate, factory, IO, bad input.
#include <faiss_bq/IndexBQ.h>
#include <faiss_bq/IndexBQFastScan.h>
#include <faiss_bq/codes.h>
#include <faiss_bq/estimators.h>
#include <faiss_bq/index_factory.h>
#include <faiss_bq/index_io.h>
#include <faiss_bq/plan.h>
#include <faiss_bq/trainer.h>

#include "test_util.h"

#include <faiss/impl/FaissException.h>
#include <faiss/impl/io.h>

#include <gtest/gtest.h>

#include <omp.h>

#include <cmath>
#include <memory>
#include <random>

namespace faiss_bq {
namespace {

using idx_t = faiss::Index::idx_t;

// Max (1960), "Quantizing for minimum distortion", Table I: the optimal
// quantizers of N(0, 1), the non-negative half (4 significant digits).
TEST(Eden, GaussianLloydMaxIsMaxsTable) {
    const std::vector<std::vector<double>> max_levels = {
            {0.7979},
            {0.4528, 1.510},
            {0.2451, 0.7560, 1.344, 2.152},
            {0.1284, 0.3881, 0.6568, 0.9424, 1.256, 1.618, 2.069, 2.733}};
    const std::vector<std::vector<double>> max_thresholds = {
            {0.0},
            {0.0, 0.9816},
            {0.0, 0.5006, 1.050, 1.748},
            {0.0, 0.2582, 0.5224, 0.7996, 1.099, 1.437, 1.844, 2.401}};
    for (int nbits = 1; nbits <= 4; nbits++) {
        const int k = 1 << nbits;
        std::vector<float> t(k - 1), l(k);
        gaussian_lloyd_max(nbits, t.data(), l.data());
        const auto& ml = max_levels[nbits - 1];
        const auto& mt = max_thresholds[nbits - 1];
        for (int c = 0; c < k / 2; c++) {
            // The table's last digit: 5e-4 relative, 1e-4 absolute.
            EXPECT_NEAR(l[k / 2 + c], ml[c], 5e-4 * ml[c] + 1e-4)
                    << "nbits " << nbits << " level " << c;
            EXPECT_NEAR(l[k / 2 - 1 - c], -ml[c], 5e-4 * ml[c] + 1e-4);
            EXPECT_NEAR(t[k / 2 - 1 + c], mt[c], 5e-4 * mt[c] + 1e-4)
                    << "nbits " << nbits << " threshold " << c;
        }
        EXPECT_EQ(t[k / 2 - 1], 0.f); // uncentred 1 bit: FAISS's sign bit
        for (int c = 0; c < k / 2; c++) {
            EXPECT_EQ(l[c], -l[k - 1 - c]);
        }
        for (int c = 0; c + 1 < k; c++) { // the fixed point's first condition
            EXPECT_NEAR(t[c], 0.5f * (l[c] + l[c + 1]), 1e-6);
        }
    }
    test::expect_throw_naming(
            [] {
                float t[31], l[32];
                gaussian_lloyd_max(5, t, l);
            },
            "nbits=5");
}

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

// The scalar reference of an EDEN code, from the plan's centre, rotation and
// Gaussian levels with plain double loops: y = R (x - c), u = sqrt(d) / |y|,
// level index = number of thresholds <= u y_j; factors |y|^2, |y|^2 /
// <levels, y> and <x - c, c>. The library's y comes from one sgemm in float,
// so a coordinate within 1e-5 of a threshold may fall on either side: such
// coordinates are checked only for being one of the two neighbours.
TEST(Eden, CodesAreTheScalarReference) {
    const size_t n = 300;
    for (size_t d : {100, 64}) {
        const auto x = varied_rows(n, d, 11);
        for (int nbits = 1; nbits <= 4; nbits++) {
            for (Transform t :
                 {Transform::random_rotation, Transform::identity}) {
                for (bool centered : {true, false}) {
                    const BinarizationPlan p = fit_eden_plan(
                            n, d, x.data(), nbits, t, centered, 5);
                    ASSERT_EQ(p.quantization, Quantization::eden);
                    const int k = 1 << nbits;
                    std::vector<float> gt(k - 1), gl(k);
                    gaussian_lloyd_max(nbits, gt.data(), gl.data());
                    const CodeLayout layout(p);
                    std::vector<uint8_t> codes(n * layout.code_size);
                    encode(p, n, x.data(), codes.data());
                    size_t borderline = 0;
                    for (size_t i = 0; i < n; i++) {
                        const float* xi = x.data() + i * d;
                        std::vector<double> r(d), y(d);
                        double cdot = 0;
                        for (size_t j = 0; j < d; j++) {
                            r[j] = double(xi[j]) - p.center[j];
                            cdot += r[j] * p.center[j];
                        }
                        double norm2 = 0;
                        for (size_t a = 0; a < d; a++) {
                            double s = r[a];
                            if (t == Transform::random_rotation) {
                                s = 0;
                                for (size_t b = 0; b < d; b++) {
                                    s += double(p.rotation[a * d + b]) * r[b];
                                }
                            }
                            y[a] = s;
                            norm2 += s * s;
                        }
                        const double u = std::sqrt(double(d) / norm2);
                        const uint8_t* code =
                                codes.data() + i * layout.code_size;
                        double dot = 0;
                        for (size_t j = 0; j < d; j++) {
                            int q = 0;
                            double nearest = HUGE_VAL;
                            for (int c = 0; c < k - 1; c++) {
                                q += u * y[j] >= gt[c];
                                nearest = std::min(
                                        nearest, std::abs(u * y[j] - gt[c]));
                            }
                            const int got = layout.level_index(code, j);
                            if (nearest < 1e-5) {
                                borderline++;
                                ASSERT_LE(std::abs(got - q), 1);
                            } else {
                                ASSERT_EQ(got, q)
                                        << "d " << d << " nbits " << nbits
                                        << " vector " << i << " coord " << j;
                            }
                            dot += double(gl[got]) * y[j];
                        }
                        EXPECT_NEAR(
                                layout.residual_norm2(code),
                                norm2,
                                1e-5 * norm2);
                        EXPECT_NEAR(
                                layout.estimate_scale(code),
                                norm2 / dot,
                                1e-4 * norm2 / dot);
                        EXPECT_NEAR(
                                layout.center_dot(code),
                                cdot,
                                1e-5 * (std::abs(cdot) + norm2));
                    }
                    // ~ (thresholds x density x 2e-5) of the coordinates
                    EXPECT_LT(borderline, n * d / 2000);
                }
            }
        }
    }
}

// IndexBQ's asymmetric scores (look-up tables over the planes) and
// IndexBQFastScan's (7-bit tables in registers) of an EDEN plan against the
// scalar estimate <c, q> + <x - c, c> + scale * <levels, R (q - c)>.
TEST(Eden, ScoresAreTheScalarEstimate) {
    const size_t d = 48, nb = 500, nq = 10;
    const auto x = varied_rows(nb, d, 3);
    const auto q = varied_rows(nq, d, 4);
    for (int nbits : {1, 2}) {
        const BinarizationPlan p = fit_eden_plan(
                nb, d, x.data(), nbits, Transform::random_rotation, true, 9);
        IndexBQ index(p, faiss::METRIC_INNER_PRODUCT);
        index.add(nb, x.data());
        const CodeLayout layout = index.layout();
        std::vector<float> dis(nq * nb);
        std::vector<idx_t> ids(nq * nb);
        index.search(nq, q.data(), nb, dis.data(), ids.data());
        IndexBQFastScan fs(index);
        std::vector<float> fdis(nq * nb);
        std::vector<idx_t> fids(nq * nb);
        fs.search(nq, q.data(), nb, fdis.data(), fids.data());
        FastScanScorer fast(fs.plan, faiss::METRIC_INNER_PRODUCT);
        for (size_t i = 0; i < nq; i++) {
            std::vector<float> y(d);
            p.apply(1, q.data() + i * d, y.data());
            fast.set_query(q.data() + i * d);
            std::vector<double> want(nb);
            for (size_t v = 0; v < nb; v++) {
                const uint8_t* code = index.codes.data() + v * layout.code_size;
                double e = 0, cq = 0;
                for (size_t j = 0; j < d; j++) {
                    e += double(p.level(j, layout.level_index(code, j))) * y[j];
                    cq += double(p.center[j]) * q[i * d + j];
                }
                want[v] = cq + layout.center_dot(code) +
                        layout.estimate_scale(code) * e;
            }
            for (size_t r = 0; r < nb; r++) {
                const idx_t v = ids[i * nb + r];
                ASSERT_NEAR(
                        dis[i * nb + r],
                        want[v],
                        1e-4 * (1 + std::abs(want[v])))
                        << "nbits " << nbits << " query " << i;
                const idx_t fv = fids[i * nb + r];
                const double a = std::abs(layout.estimate_scale(
                        index.codes.data() + fv * layout.code_size));
                ASSERT_LE(
                        std::abs(fdis[i * nb + r] - want[fv]),
                        a * fast.max_error() + 1e-4 * (1 + std::abs(want[fv])))
                        << "fast scan, nbits " << nbits << " query " << i;
            }
        }
    }
}

// EDEN's estimate of <x, q>, scale * <levels(Q(u R x)), R q>, is unbiased
// over the random rotation (EDEN, Theorem 2.1): for pairs of random vectors,
// each pair under its own rotation, the mean of the error (in units of |x|
// |q|) is within 4 standard errors of 0. The least-squares scale <r_hat,
// r> / |r_hat|^2 of decode() shrinks the estimate (by ~2/pi at 1 bit): the
// same test rejects it at 1 and 2 bits, so it can fail.
TEST(Eden, InnerProductEstimateIsUnbiasedOverRotations) {
    const size_t d = 32, npairs = 400;
    // One thread: each pair's data and rotation are a few hundred floats,
    // where FAISS's float_randn pays an OpenMP fork per call.
    const int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    for (int nbits : {1, 2, 4}) {
        std::vector<double> err_eden, err_ls;
        for (size_t i = 0; i < npairs; i++) {
            const auto x = test::gaussian(1, d, int(2 * i + 1));
            auto q = test::gaussian(1, d, int(2 * i + 2));
            for (size_t j = 0; j < d; j++) {
                q[j] += x[j]; // correlated: <x, q> ~ |x|^2, a bias shows
            }
            const BinarizationPlan p = fit_eden_plan(
                    1,
                    d,
                    x.data(),
                    nbits,
                    Transform::random_rotation,
                    false,
                    int(i) + 100);
            const CodeLayout layout(p);
            std::vector<uint8_t> code(layout.code_size);
            encode(p, 1, x.data(), code.data());
            std::vector<float> e(d), xd(d), y(d);
            estimate_vectors(p, 1, code.data(), e.data());
            decode(p, 1, code.data(), xd.data());
            p.apply(1, q.data(), y.data());
            const double unit = std::sqrt(
                    test::dot(x.data(), x.data(), d) *
                    test::dot(q.data(), q.data(), d));
            const double truth = test::dot(x.data(), q.data(), d);
            err_eden.push_back(
                    (test::dot(e.data(), y.data(), d) - truth) / unit);
            err_ls.push_back(
                    (test::dot(xd.data(), q.data(), d) - truth) / unit);
        }
        auto mean_and_se = [](const std::vector<double>& v) {
            double m = 0, s2 = 0;
            for (double a : v) {
                m += a;
            }
            m /= v.size();
            for (double a : v) {
                s2 += (a - m) * (a - m);
            }
            return std::make_pair(m, std::sqrt(s2 / (v.size() - 1) / v.size()));
        };
        const auto [m, se] = mean_and_se(err_eden);
        EXPECT_LT(std::abs(m), 4 * se) << "nbits " << nbits;
        const auto [mls, sels] = mean_and_se(err_ls);
        if (nbits <= 2) {
            EXPECT_GT(std::abs(mls), 4 * sels) << "nbits " << nbits;
        }
        std::printf(
                "nbits %d: EDEN mean error %.2e +- %.1e, least-squares scale "
                "%.2e +- %.1e (units of |x||q|)\n",
                nbits,
                m,
                se,
                mls,
                sels);
    }
    omp_set_num_threads(threads);
}

// Vectors whose norms span 100x: a pooled fitted quantizer puts the short
// vectors' coordinates in its inner cells (2 bits act as 1), EDEN scales
// each vector first. The trainer must find that, and the report say so.
TEST(Eden, TrainerChoosesEdenWhenNormsVary) {
    const size_t n = 4000, d = 64;
    std::vector<float> x = test::gaussian(n, d, 21);
    std::mt19937 rng(5);
    std::uniform_real_distribution<float> log_scale(0, std::log(100.f));
    for (size_t i = 0; i < n; i++) {
        const float s = std::exp(log_scale(rng));
        for (size_t j = 0; j < d; j++) {
            x[i * d + j] *= s;
        }
    }
    TrainerOptions o;
    o.nbits = 2;
    o.metric = faiss::METRIC_L2;
    const BinarizationPlan p = train_plan(n, d, x.data(), o);
    EXPECT_EQ(p.quantization, Quantization::eden) << p.report();
    EXPECT_NE(p.reason.find("EDEN measured best"), std::string::npos)
            << p.reason;
    bool has_eden = false, has_fitted = false;
    for (const CandidateReport& c : p.candidates) {
        has_eden |= c.quantization == Quantization::eden;
        has_fitted |= c.quantization == Quantization::lloyd_max;
    }
    EXPECT_TRUE(has_eden && has_fitted);
    EXPECT_NE(p.report().find(" eden "), std::string::npos) << p.report();

    // Same norms: the fitted levels are no worse; the report names EDEN's
    // best beside the choice whichever wins.
    const auto iso = test::gaussian(n, d, 22);
    const BinarizationPlan q = train_plan(n, d, iso.data(), o);
    EXPECT_NE(q.reason.find("EDEN"), std::string::npos) << q.reason;

    o.quantization = QuantizationChoice::lloyd_max;
    const BinarizationPlan f = train_plan(n, d, x.data(), o);
    EXPECT_EQ(f.quantization, Quantization::lloyd_max);
    for (const CandidateReport& c : f.candidates) {
        EXPECT_EQ(c.quantization, Quantization::lloyd_max);
    }
    o.quantization = QuantizationChoice::eden;
    o.transform = TransformChoice::identity;
    const BinarizationPlan e = train_plan(n, d, iso.data(), o);
    EXPECT_EQ(e.quantization, Quantization::eden);
    EXPECT_EQ(e.transform, Transform::identity);
    EXPECT_TRUE(e.forced);
}

// A budget's uniform candidates include EDEN's at the bits that fit (4 at
// d / 2 bytes); fast scan keeps no joint twin of it.
TEST(Eden, BudgetAndFastScan) {
    const size_t n = 2000, d = 32;
    const auto x = varied_rows(n, d, 8);
    IndexBQ index(d, CodeBudget{16}, faiss::METRIC_L2);
    index.trainer.quantization = QuantizationChoice::eden;
    index.trainer.allocation = AllocationChoice::uniform;
    index.train(n, x.data());
    EXPECT_EQ(index.plan.quantization, Quantization::eden);
    EXPECT_EQ(index.plan.nbits, 4);
    EXPECT_TRUE(index.plan.is_uniform());

    IndexBQFastScan fs(d, 1, faiss::METRIC_L2);
    fs.train(n, x.data());
    size_t eden = 0;
    for (const CandidateReport& c : fs.plan.candidates) {
        eden += c.quantization == Quantization::eden;
        EXPECT_FALSE(c.quantization == Quantization::eden && c.joint);
    }
    EXPECT_GT(eden, 0u);
}

// When d is not a multiple of 8, 4 bits per coordinate take 4 padded
// planes: 52 bytes at d = 100 (glove100's d), the largest budget there.
TEST(Eden, FourBitsWhenDIsNotAMultipleOf8) {
    const size_t n = 2000, d = 100;
    const auto x = varied_rows(n, d, 9);
    EXPECT_EQ(max_budget_bytes(d), 52u);
    std::unique_ptr<faiss::Index> index(
            index_factory(d, "BQ52B_uniform_eden", faiss::METRIC_L2));
    index->train(n, x.data());
    const auto& plan = dynamic_cast<IndexBQ&>(*index).plan;
    EXPECT_EQ(plan.quantization, Quantization::eden);
    EXPECT_EQ(plan.nbits, 4);
    EXPECT_TRUE(plan.is_uniform());
    EXPECT_EQ(plan.code_bytes, 52u);
    test::expect_throw_naming(
            [] { delete index_factory(100, "BQ53B", faiss::METRIC_L2); },
            "budget of 53 bytes for d=100: must be at least 1 byte and at "
            "most 4 bits per coordinate (52 bytes)");
}

TEST(Eden, FactoryStringsAndFiles) {
    const size_t n = 1000, d = 32;
    const auto x = varied_rows(n, d, 2);
    for (const char* s :
         {"BQ2_eden",
          "BQ1_eden_axis",
          "BQ16B_uniform_eden",
          "BQ1_lm_fs",
          "BQ2_eden_fs",
          "IVF4,BQ1_eden",
          "IVF4,BQ2_eden_fs"}) {
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
        std::vector<float> d1(50), d2(50);
        std::vector<idx_t> i1(50), i2(50);
        index->search(5, x.data(), 10, d1.data(), i1.data());
        back->search(5, x.data(), 10, d2.data(), i2.data());
        EXPECT_EQ(i1, i2) << s;
        EXPECT_EQ(d1, d2) << s;
        if (auto bq = dynamic_cast<const IndexBQ*>(back.get())) {
            auto orig = dynamic_cast<const IndexBQ*>(index.get());
            EXPECT_EQ(bq->plan.quantization, orig->plan.quantization) << s;
            EXPECT_EQ(bq->trainer.quantization, orig->trainer.quantization);
            for (size_t c = 0; c < bq->plan.candidates.size(); c++) {
                EXPECT_EQ(
                        bq->plan.candidates[c].quantization,
                        orig->plan.candidates[c].quantization);
            }
        }
    }
}

TEST(Eden, BadInput) {
    const size_t n = 200, d = 16;
    const auto x = test::gaussian(n, d, 1);
    test::expect_throw_naming(
            [&] {
                fit_eden_plan(
                        n, d, x.data(), 5, Transform::random_rotation, true, 1);
            },
            "nbits=5");
    test::expect_throw_naming(
            [&] {
                fit_eden_plan(
                        n, d, x.data(), 0, Transform::random_rotation, true, 1);
            },
            "nbits=0");
    test::expect_throw_naming(
            [&] { fit_eden_plan(n, d, x.data(), 1, Transform::pca, true, 1); },
            "transform=pca");
    test::expect_throw_naming(
            [&] {
                BinarizationPlan p = fit_eden_plan(
                        n, d, x.data(), 1, Transform::random_rotation, true, 1);
                fit_joint_codebooks(p, n, x.data());
            },
            "quantization=eden");
    TrainerOptions o;
    o.budget_bytes = 4;
    o.quantization = QuantizationChoice::eden;
    o.allocation = AllocationChoice::allocated;
    test::expect_throw_naming(
            [&] { train_plan(n, d, x.data(), o); }, "allocation=allocated");
    o.allocation = AllocationChoice::automatic;
    o.transform = TransformChoice::pca;
    test::expect_throw_naming(
            [&] { train_plan(n, d, x.data(), o); }, "transform=pca");
    for (const char* s :
         {"BQ1_eden_pca",
          "BQ16B_alloc_eden",
          "BQ1_eden(BFlat)",
          "BQ1_eden_lm"}) {
        EXPECT_THROW(
                delete index_factory(d, s, faiss::METRIC_L2),
                faiss::FaissException)
                << s;
    }
    test::expect_throw_naming(
            [&] { delete index_factory(d, "BQ1_eden_pca", faiss::METRIC_L2); },
            "BQ1_eden_pca");
}

} // namespace
} // namespace faiss_bq
