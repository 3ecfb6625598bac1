// analyze() on synthetic samples whose statistics are known in closed form.
// Tolerances are a few standard errors of the estimator at the sample size,
// so a wrong formula fails and a correct one passes for any seed.
#include "test_util.h"

#include <faiss_bq/analysis.h>

#include <faiss/impl/FaissException.h>

#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

extern "C" int dsyev_(
        const char* jobz,
        const char* uplo,
        int* n,
        double* a,
        int* lda,
        double* w,
        double* work,
        int* lwork,
        int* info);

namespace {

using faiss_bq::analyze;
using faiss_bq::DatasetAnalysis;
using faiss_bq::test::gaussian;

double normal_cdf(double z) {
    return 0.5 * std::erfc(-z / std::sqrt(2.0));
}

double binary_entropy_bits(double p) {
    return -p * std::log2(p) - (1 - p) * std::log2(1 - p);
}

// The report's words, lower case: "nan" and "inf" are what printf writes for
// non-finite values.
std::vector<std::string> words_of(const std::string& text) {
    std::vector<std::string> words(1);
    for (char c : text) {
        if (std::isalpha(static_cast<unsigned char>(c))) {
            words.back() += char(std::tolower(static_cast<unsigned char>(c)));
        } else if (!words.back().empty()) {
            words.emplace_back();
        }
    }
    return words;
}

void expect_all_finite(const DatasetAnalysis& a) {
    for (const std::vector<float>* v :
         {&a.mean,
          &a.sigma,
          &a.positive_fraction,
          &a.positive_fraction_centered,
          &a.eigenvalues,
          &a.excess_kurtosis}) {
        for (float f : *v) {
            EXPECT_TRUE(std::isfinite(f));
        }
    }
    for (float f :
         {a.cv_sigma,
          a.mean_offset_ratio,
          a.sign_entropy_bits,
          a.sign_entropy_centered_bits,
          a.effective_rank,
          a.offdiag_energy,
          a.mean_excess_kurtosis}) {
        EXPECT_TRUE(std::isfinite(f));
    }
    const std::string report = a.report();
    for (const std::string& word : words_of(report)) {
        EXPECT_TRUE(word != "nan" && word != "inf") << report;
    }
}

// The message of the FaissException that analyze(n, d, x) throws.
std::string error_of(size_t n, size_t d, const float* x) {
    try {
        analyze(n, d, x);
    } catch (const faiss::FaissException& e) {
        return e.what();
    }
    ADD_FAILURE() << "analyze(" << n << ", " << d << ") did not throw";
    return "";
}

TEST(Analysis, GaussianMomentsMatchTheGenerator) {
    const size_t n = 20000, d = 16;
    std::vector<float> mu(d), s(d);
    double mean_sq = 0, trace = 0, entropy_sum = 0;
    for (size_t j = 0; j < d; j++) {
        mu[j] = -1.0f + 0.15f * j;
        s[j] = 0.5f + 0.1f * j;
        mean_sq += double(mu[j]) * mu[j];
        trace += double(s[j]) * s[j];
        entropy_sum += binary_entropy_bits(normal_cdf(mu[j] / s[j]));
    }
    const std::vector<float> x = gaussian(n, d, 1, s, mu);
    double s_mean = 0, s_var = 0;
    for (float v : s) {
        s_mean += double(v) / d;
    }
    for (float v : s) {
        s_var += (v - s_mean) * (v - s_mean) / d;
    }

    const DatasetAnalysis a = analyze(n, d, x.data());
    ASSERT_EQ(a.n, n);
    ASSERT_EQ(a.d, d);
    ASSERT_EQ(a.mean.size(), d);
    ASSERT_EQ(a.sigma.size(), d);
    // Standard errors: mean s/sqrt(n), sigma s/sqrt(2n), a fraction p
    // sqrt(p(1-p)/n), a Gaussian excess kurtosis sqrt(24/n); 5 of them.
    const double rn = std::sqrt(double(n));
    for (size_t j = 0; j < d; j++) {
        EXPECT_NEAR(a.mean[j], mu[j], 5 * s[j] / rn) << j;
        EXPECT_NEAR(a.sigma[j], s[j], 5 * s[j] / std::sqrt(2.0 * n)) << j;
        const double p = normal_cdf(mu[j] / s[j]);
        EXPECT_NEAR(a.positive_fraction[j], p, 5 * std::sqrt(p * (1 - p)) / rn)
                << j;
        EXPECT_NEAR(a.positive_fraction_centered[j], 0.5, 2.5 / rn) << j;
        EXPECT_NEAR(a.excess_kurtosis[j], 0, 5 * std::sqrt(24.0 / n)) << j;
    }
    // Each sigma_j is off by ~1/sqrt(2n) = 0.5% relative, which moves their
    // CV by about as much: 0.02 is four such errors.
    EXPECT_NEAR(a.cv_sigma, std::sqrt(s_var) / s_mean, 0.02);
    // |mean|^2 and tr(Sigma) are each estimated to well under 1% here.
    EXPECT_NEAR(a.mean_offset_ratio, mean_sq / (mean_sq + trace), 0.01);
    EXPECT_NEAR(a.total_variance(), trace, 0.02 * trace);
    EXPECT_NEAR(a.mean_excess_kurtosis, 0, 5 * std::sqrt(24.0 / (n * d)));
    EXPECT_EQ(a.n_constant, 0u);
    EXPECT_GT(a.sign_entropy_centered_bits, 0.999f);
    // 5 standard errors of p_j times the entropy's slope there is at most
    // 0.034 bits per coordinate and 0.017 on average over the 16.
    EXPECT_NEAR(a.sign_entropy_bits, entropy_sum / d, 0.02);
    expect_all_finite(a);
}

TEST(Analysis, LaplaceHasExcessKurtosisThree) {
    const size_t n = 20000, d = 16;
    std::mt19937 rng(2);
    std::exponential_distribution<float> exponential;
    std::bernoulli_distribution coin;
    std::vector<float> x(n * d);
    for (float& v : x) {
        v = coin(rng) ? exponential(rng) : -exponential(rng);
    }
    const DatasetAnalysis a = analyze(n, d, x.data());
    // The sample kurtosis of a Laplace has variance (mu8 - 4 mu4 mu6 +
    // 4 mu4^3 - mu4^2) / n = 1188 / n in units of sigma: 0.24 at this n per
    // coordinate, 0.06 for the mean over 16. One coordinate's estimate is
    // skewed to the right (its error is driven by a few extreme values), so
    // it gets 8 standard errors; the mean over 16 is close to normal.
    const double se = std::sqrt(1188.0 / n);
    for (size_t j = 0; j < d; j++) {
        EXPECT_NEAR(a.excess_kurtosis[j], 3, 8 * se) << j;
    }
    EXPECT_NEAR(a.mean_excess_kurtosis, 3, 5 * se / std::sqrt(double(d)));
    EXPECT_NE(a.report().find("heavy tails"), std::string::npos) << a.report();

    const std::vector<float> g = gaussian(n, d, 3);
    EXPECT_EQ(
            analyze(n, d, g.data()).report().find("heavy tails"),
            std::string::npos);
}

TEST(Analysis, LowRankDataHasFewNonZeroEigenvalues) {
    const size_t n = 2000, d = 32, r = 4;
    const std::vector<float> z = gaussian(n, r, 4);
    const std::vector<float> w = gaussian(r, d, 5);
    std::vector<float> x(n * d);
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < d; j++) {
            // The offset makes the uncentred second moment rank r + 1, so a
            // missing centring would show as a fifth eigenvalue.
            double v = 3.0;
            for (size_t k = 0; k < r; k++) {
                v += z[i * r + k] * w[k * d + j];
            }
            x[i * d + j] = float(v);
        }
    }
    const DatasetAnalysis a = analyze(n, d, x.data());
    ASSERT_EQ(a.eigenvalues.size(), d);
    EXPECT_TRUE(std::is_sorted(a.eigenvalues.rbegin(), a.eigenvalues.rend()));
    EXPECT_GE(a.eigenvalues.back(), 0.0f);
    EXPECT_GE(a.effective_rank, 1.0f);
    EXPECT_LE(a.effective_rank, r + 1e-3);
    // Float rounding of the covariance and of ssyevd is about d * eps_float
    // = 4e-6 of the largest eigenvalue.
    EXPECT_GT(a.eigenvalues[r - 1], 1e-2 * a.eigenvalues[0]);
    for (size_t k = r; k < d; k++) {
        EXPECT_LT(a.eigenvalues[k], 1e-4 * a.eigenvalues[0]) << k;
    }
}

TEST(Analysis, IsotropicDataHasFullRankAndNoCorrelation) {
    const size_t n = 4000, d = 32;
    const std::vector<float> x = gaussian(n, d, 6);
    const DatasetAnalysis a = analyze(n, d, x.data());
    // Marchenko-Pastur: an isotropic sample has participation ratio
    // d / (1 + (d - 1) / n) = 31.75 here, and off-diagonal energy
    // (d - 1) / (n + d - 1) = 0.0077.
    EXPECT_GT(a.effective_rank, 0.95 * d);
    EXPECT_LE(a.effective_rank, float(d));
    EXPECT_LT(a.offdiag_energy, 0.02f);
    EXPECT_LT(a.cv_sigma, 0.05f); // sigmas scatter by 1/sqrt(2n) = 0.011
    EXPECT_LT(a.mean_offset_ratio, 0.01f);
    EXPECT_NE(a.report().find("isotropic"), std::string::npos) << a.report();
}

TEST(Analysis, CommonFactorMakesCoordinatesCorrelated) {
    // x_j = z + e_j / 10: correlation 1 / 1.01 between any two coordinates,
    // covariance 1 1^T + 0.01 I with eigenvalues d + 0.01 and 0.01.
    const size_t n = 4000, d = 32;
    const std::vector<float> z = gaussian(n, 1, 7);
    std::vector<float> x = gaussian(n, d, 8);
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < d; j++) {
            x[i * d + j] = z[i] + 0.1f * x[i * d + j];
        }
    }
    const DatasetAnalysis a = analyze(n, d, x.data());
    const double rho2 = 1 / (1.01 * 1.01);
    const double off = d * (d - 1) * rho2;
    // rho is estimated to (1 - rho^2) / sqrt(n) = 3e-4, which moves the
    // energy by about 1e-4.
    EXPECT_NEAR(a.offdiag_energy, off / (d + off), 0.005);
    const double lambda1 = d + 0.01, rest = (d - 1) * 0.01;
    const double rank = (lambda1 + rest) * (lambda1 + rest) /
            (lambda1 * lambda1 + (d - 1) * 0.01 * 0.01);
    // The top eigenvalue is estimated to sqrt(2/n) = 2% relative, which
    // moves the participation ratio by less than 0.001.
    EXPECT_NEAR(a.effective_rank, rank, 0.01);
    EXPECT_NE(a.report().find("correlated coordinates"), std::string::npos)
            << a.report();
}

TEST(Analysis, AllPositiveDataHasConstantUncentredSigns) {
    const size_t n = 10000, d = 16;
    std::mt19937 rng(9);
    std::uniform_real_distribution<float> uniform(0.5f, 1.5f);
    std::vector<float> x(n * d);
    for (float& v : x) {
        v = uniform(rng);
    }
    const DatasetAnalysis a = analyze(n, d, x.data());
    for (size_t j = 0; j < d; j++) {
        EXPECT_EQ(a.positive_fraction[j], 1.0f);
        // Uniform(0.5, 1.5): sigma 1/sqrt(12) (standard error below
        // sigma/sqrt(2n)) and excess kurtosis -1.2 (standard error
        // sqrt(1.32/n) by the formula of the Laplace test).
        EXPECT_NEAR(a.sigma[j], 1 / std::sqrt(12.0), 5 / std::sqrt(24.0 * n));
        EXPECT_NEAR(a.excess_kurtosis[j], -1.2, 5 * std::sqrt(1.32 / n));
    }
    EXPECT_EQ(a.sign_entropy_bits, 0.0f);
    // Centred fractions are 0.5 +- 0.005, whose entropy is 1 - 7e-5.
    EXPECT_GT(a.sign_entropy_centered_bits, 0.999f);
    // |mean|^2 / (|mean|^2 + tr) = 1 / (1 + 1/12).
    EXPECT_NEAR(a.mean_offset_ratio, 12.0 / 13.0, 0.005);
    const std::string report = a.report();
    EXPECT_NE(report.find("centring recommended"), std::string::npos) << report;
    EXPECT_NE(report.find("light tails"), std::string::npos) << report;
}

TEST(Analysis, ConstantCoordinateIsCountedAndHarmless) {
    const size_t n = 2000, d = 8, c = 3;
    std::mt19937 rng(10);
    std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
    std::vector<float> x(n * d);
    for (float& v : x) {
        v = uniform(rng);
    }
    for (size_t i = 0; i < n; i++) {
        x[i * d + c] = 2.5f;
    }
    const DatasetAnalysis a = analyze(n, d, x.data());
    EXPECT_EQ(a.n_constant, 1u);
    EXPECT_EQ(a.sigma[c], 0.0f);
    EXPECT_EQ(a.mean[c], 2.5f);
    EXPECT_EQ(a.excess_kurtosis[c], 0.0f);
    // Its row of the covariance is exactly 0; ssyevd's rounding leaves about
    // d * eps_float of the largest eigenvalue.
    EXPECT_LT(a.eigenvalues.back(), 1e-5 * a.eigenvalues[0]);
    // The other 7 are independent uniforms (excess kurtosis -1.2, standard
    // error sqrt(1.32 / n) each): counting the constant one would give
    // -1.05, and would put NaN into the correlations.
    EXPECT_NEAR(a.mean_excess_kurtosis, -1.2, 5 * std::sqrt(1.32 / (n * 7)));
    EXPECT_LT(a.offdiag_energy, 0.05f);
    expect_all_finite(a);
}

TEST(Analysis, ConstantMeansConstantAtFloatPrecision) {
    const size_t n = 1000, d = 5;
    std::vector<float> x = gaussian(n, d, 11);
    // Coordinate 0 varies by one ulp of its value (a rounded constant; at
    // 1e5 the ulp is 0.008, so only its own scale says so), coordinate 1 at
    // 1e-20 of the others' scale (a dead coordinate, as in all-MiniLM-L6-v2):
    // both constant. Coordinate 2 at 1e-3 of the others' scale (variance
    // 1e-6 of theirs, above float resolution) is small but real.
    const float c = 1e5f, next = std::nextafter(c, 2e5f);
    for (size_t i = 0; i < n; i++) {
        x[i * d] = i % 2 ? c : next;
        x[i * d + 1] *= 1e-20f;
        x[i * d + 2] *= 1e-3f;
    }
    const DatasetAnalysis a = analyze(n, d, x.data());
    EXPECT_EQ(a.n_constant, 2u);
    for (size_t j : {0, 1}) {
        EXPECT_EQ(a.sigma[j], 0.0f) << j;
        EXPECT_EQ(a.excess_kurtosis[j], 0.0f) << j;
    }
    EXPECT_NEAR(a.sigma[2], 1e-3, 5e-3 / std::sqrt(2.0 * n));
    EXPECT_NEAR(a.excess_kurtosis[2], 0, 5 * std::sqrt(24.0 / n));
    expect_all_finite(a);
}

TEST(Analysis, AllZeroDataHasNoNaN) {
    const size_t n = 10, d = 5;
    const std::vector<float> x(n * d, 0.0f);
    const DatasetAnalysis a = analyze(n, d, x.data());
    EXPECT_EQ(a.n_constant, d);
    // FAISS's sign bit is x >= 0 (fvec2bitvec): zeros count as positive.
    EXPECT_EQ(a.positive_fraction, std::vector<float>(d, 1.0f));
    EXPECT_EQ(a.sign_entropy_bits, 0.0f);
    EXPECT_EQ(a.cv_sigma, 0.0f);
    EXPECT_EQ(a.mean_offset_ratio, 0.0f);
    EXPECT_EQ(a.effective_rank, 0.0f);
    EXPECT_EQ(a.offdiag_energy, 0.0f);
    EXPECT_EQ(a.mean_excess_kurtosis, 0.0f);
    EXPECT_EQ(a.total_variance(), 0.0);
    expect_all_finite(a);
}

TEST(Analysis, SpectrumMatchesDoublePrecisionReference) {
    const size_t n = 300, d = 12;
    const std::vector<float> z = gaussian(n, d, 12);
    const std::vector<float> mix = gaussian(d, d, 13);
    std::vector<float> x(n * d);
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < d; j++) {
            double v = 0.5 * j;
            for (size_t k = 0; k < d; k++) {
                v += z[i * d + k] * mix[k * d + j];
            }
            x[i * d + j] = float(v);
        }
    }
    std::vector<double> mean(d), cov(d * d);
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < d; j++) {
            mean[j] += x[i * d + j] / double(n);
        }
    }
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < d; j++) {
            for (size_t k = 0; k < d; k++) {
                cov[j * d + k] += (x[i * d + j] - mean[j]) *
                        (x[i * d + k] - mean[k]) / double(n);
            }
        }
    }
    double off = 0, diag = 0;
    for (size_t j = 0; j < d; j++) {
        for (size_t k = 0; k < d; k++) {
            const double rho2 = cov[j * d + k] * cov[j * d + k] /
                    (cov[j * d + j] * cov[k * d + k]);
            (j == k ? diag : off) += rho2;
        }
    }
    std::vector<double> a_ref = cov, w(d), work(3 * d);
    int di = int(d), lwork = int(work.size()), info = 0;
    dsyev_("N",
           "U",
           &di,
           a_ref.data(),
           &di,
           w.data(),
           work.data(),
           &lwork,
           &info);
    ASSERT_EQ(info, 0);
    std::reverse(w.begin(), w.end());

    const DatasetAnalysis a = analyze(n, d, x.data());
    // Float data, float ssyrk and ssyevd: a few eps_float of the largest
    // eigenvalue, far below any error a wrong covariance would make.
    for (size_t k = 0; k < d; k++) {
        EXPECT_NEAR(a.eigenvalues[k], w[k], 1e-5 * w[0]) << k;
    }
    for (size_t j = 0; j < d; j++) {
        EXPECT_NEAR(a.sigma[j] * a.sigma[j], cov[j * d + j], 1e-5 * w[0]);
    }
    double trace = 0;
    for (double lambda : w) {
        trace += lambda;
    }
    EXPECT_NEAR(a.total_variance(), trace, 1e-5 * trace);
    EXPECT_NEAR(a.offdiag_energy, off / (off + diag), 1e-5);
}

std::vector<uint32_t> bits_of(const std::vector<float>& v) {
    std::vector<uint32_t> bits(v.size());
    std::memcpy(bits.data(), v.data(), v.size() * sizeof(float));
    return bits;
}

// Bit patterns of the statistics that analyze() computes itself, without
// BLAS or LAPACK.
std::vector<uint32_t> own_bits_of(const DatasetAnalysis& a) {
    std::vector<float> all = a.mean;
    for (const std::vector<float>* v :
         {&a.sigma,
          &a.positive_fraction,
          &a.positive_fraction_centered,
          &a.excess_kurtosis}) {
        all.insert(all.end(), v->begin(), v->end());
    }
    all.insert(
            all.end(),
            {a.cv_sigma,
             a.mean_offset_ratio,
             a.sign_entropy_bits,
             a.sign_entropy_centered_bits,
             a.mean_excess_kurtosis,
             float(a.n_constant)});
    return bits_of(all);
}

TEST(Analysis, RepeatedCallsAreBitIdentical) {
    const size_t n = 3000, d = 200; // several column blocks and threads
    std::vector<float> x = gaussian(n, d, 14);
    for (size_t i = 0; i < n; i++) {
        x[i * d + 7] = std::exp(x[i * d + 7]); // skewed, heavy-tailed
    }
    const DatasetAnalysis a = analyze(n, d, x.data());
    const DatasetAnalysis b = analyze(n, d, x.data());
    EXPECT_EQ(own_bits_of(a), own_bits_of(b));
    EXPECT_EQ(bits_of(a.eigenvalues), bits_of(b.eigenvalues));
    EXPECT_EQ(
            bits_of({a.effective_rank, a.offdiag_energy}),
            bits_of({b.effective_rank, b.offdiag_energy}));
    EXPECT_EQ(a.report(), b.report());

    // Nor may they depend on the OpenMP thread count. BLAS keeps its own
    // threads, so the spectrum is only compared within one setting above.
    const int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    const DatasetAnalysis one = analyze(n, d, x.data());
    omp_set_num_threads(threads);
    EXPECT_EQ(own_bits_of(one), own_bits_of(a));
}

TEST(Analysis, TooFewVectorsThrows) {
    const std::vector<float> x(8, 1.0f);
    EXPECT_NE(error_of(1, 8, x.data()).find("n=1"), std::string::npos);
    EXPECT_NE(error_of(0, 8, x.data()).find("n=0"), std::string::npos);
}

TEST(Analysis, ZeroDimensionThrows) {
    const std::vector<float> x(8, 1.0f);
    EXPECT_NE(error_of(4, 0, x.data()).find("d=0"), std::string::npos);
}

TEST(Analysis, NaNThrowsWithItsPosition) {
    std::vector<float> x = gaussian(10, 6, 15);
    x[7 * 6 + 1] = std::numeric_limits<float>::quiet_NaN();
    x[4 * 6 + 5] = std::numeric_limits<float>::quiet_NaN(); // the first
    const std::string what = error_of(10, 6, x.data());
    EXPECT_NE(what.find("nan"), std::string::npos) << what;
    EXPECT_NE(what.find("row 4, column 5"), std::string::npos) << what;
}

TEST(Analysis, InfThrowsWithItsPosition) {
    std::vector<float> x = gaussian(10, 6, 16);
    // Opposite infinities in one column: their sum is NaN, not Inf.
    x[2 * 6 + 3] = -std::numeric_limits<float>::infinity();
    x[5 * 6 + 3] = std::numeric_limits<float>::infinity();
    const std::string what = error_of(10, 6, x.data());
    EXPECT_NE(what.find("-inf"), std::string::npos) << what;
    EXPECT_NE(what.find("row 2, column 3"), std::string::npos) << what;
}

} // namespace
