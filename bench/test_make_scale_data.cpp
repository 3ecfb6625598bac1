// make_scale_data run at small N on use512-wordnet: its files, ground truth,
// moments and kurtosis against references computed here, and reproducibility.
#include "scale_model.h"

#include "../tests/test_util.h"

#include <faiss_bq/impl/blas.h>
#include <faiss_bq/utils/vecs_io.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

namespace faiss_bq {
namespace {

namespace fs = std::filesystem;

constexpr size_t kN = 5000;
constexpr size_t kNq = 50;
constexpr size_t kK = 100;

std::string read_all(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

std::string source_dir() {
    const char* env = std::getenv("FAISS_BQ_DATA");
    return std::string(env && *env ? env : FAISS_BQ_DATA_DIR) +
           "/use512-wordnet";
}

/// Runs the tool with `args` and `threads` threads; returns its exit status
/// and puts its output in `log`.
int run_tool(const std::string& args, int threads, std::string& log) {
    const std::string log_path = testing::TempDir() + "make_scale_data.log";
    const std::string t = std::to_string(threads);
    const std::string cmd = "OMP_NUM_THREADS=" + t + " OPENBLAS_NUM_THREADS=" +
                            t + " " MAKE_SCALE_DATA " " + args + " > " +
                            log_path + " 2>&1";
    const int status = std::system(cmd.c_str());
    log = read_all(log_path);
    return status;
}

std::vector<double> column_mean(size_t n, size_t d, const float* x) {
    std::vector<double> mean(d);
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < d; j++) {
            mean[j] += x[i * d + j];
        }
    }
    for (double& m : mean) {
        m /= double(n);
    }
    return mean;
}

/// Full d x d covariance (divisor n): float sgemm over centred blocks of
/// rows, summed in double.
std::vector<double> covariance(size_t n, size_t d, const float* x,
                               const std::vector<double>& mean) {
    const size_t block = 4096;
    std::vector<float> xc(block * d), c(d * d);
    std::vector<double> cov(d * d);
    for (size_t i0 = 0; i0 < n; i0 += block) {
        const size_t rows = std::min(block, n - i0);
        for (size_t i = 0; i < rows; i++) {
            for (size_t j = 0; j < d; j++) {
                xc[i * d + j] = float(x[(i0 + i) * d + j] - mean[j]);
            }
        }
        FINTEGER di = FINTEGER(d), ri = FINTEGER(rows);
        float one = 1, zero = 0;
        sgemm_("N", "T", &di, &di, &ri, &one, xc.data(), &di, xc.data(), &di,
               &zero, c.data(), &di);
        for (size_t j = 0; j < d * d; j++) {
            cov[j] += c[j];
        }
    }
    for (double& v : cov) {
        v /= double(n);
    }
    return cov;
}

/// Mardia's b2 / d(d+2) and its standard error, by a route of its own:
/// Cholesky of the covariance in double and triangular solves (the tool
/// projects on eigenvectors in float).
std::pair<double, double> reference_kurtosis(size_t n, size_t d,
                                             const float* x) {
    const std::vector<double> mean = column_mean(n, d, x);
    std::vector<double> l = covariance(n, d, x, mean);
    for (size_t j = 0; j < d; j++) { // lower Cholesky factor, in place
        for (size_t k = 0; k < j; k++) {
            l[j * d + j] -= l[j * d + k] * l[j * d + k];
        }
        EXPECT_GT(l[j * d + j], 0) << "covariance not positive definite";
        l[j * d + j] = std::sqrt(l[j * d + j]);
        for (size_t i = j + 1; i < d; i++) {
            for (size_t k = 0; k < j; k++) {
                l[i * d + j] -= l[i * d + k] * l[j * d + k];
            }
            l[i * d + j] /= l[j * d + j];
        }
    }
    std::vector<double> m(n);
#pragma omp parallel for
    for (int64_t i = 0; i < int64_t(n); i++) {
        std::vector<double> y(d);
        double s = 0;
        for (size_t j = 0; j < d; j++) {
            double v = x[i * d + j] - mean[j];
            for (size_t k = 0; k < j; k++) {
                v -= l[j * d + k] * y[k];
            }
            y[j] = v / l[j * d + j];
            s += y[j] * y[j];
        }
        m[i] = s;
    }
    double s1 = 0, s2 = 0;
    for (double v : m) {
        s1 += v;
        s2 += v * v;
    }
    const double b2 = s2 / n, var = b2 - (s1 / n) * (s1 / n);
    double mu4 = 0;
    for (double v : m) {
        mu4 += std::pow(v - s1 / n, 4);
    }
    mu4 /= n;
    const double gauss = double(d) * double(d + 2);
    return {b2 / gauss, std::sqrt((mu4 - var * var) / n) / gauss};
}

TEST(MakeScaleData, BadArgumentsAreNamedAndWriteNothing) {
    const std::string out = testing::TempDir() + "scale_bad";
    fs::remove_all(out);
    std::string log;
    EXPECT_NE(run_tool("--source " + source_dir() + " --out " + out +
                               " --n 0",
                       1, log),
              0);
    EXPECT_NE(log.find("--n 0"), std::string::npos) << log;
    EXPECT_NE(run_tool("--source " + source_dir() + " --out " + out +
                               " --n 50 --k 60",
                       1, log),
              0);
    EXPECT_NE(log.find("--k 60"), std::string::npos) << log;
    EXPECT_NE(run_tool("--source " + source_dir() + " --out " + source_dir(),
                       1, log),
              0);
    EXPECT_NE(log.find("is the source folder"), std::string::npos) << log;
    EXPECT_NE(run_tool("--out " + out + " --n x", 1, log), 0);
    EXPECT_NE(log.find("usage:"), std::string::npos) << log;
    EXPECT_FALSE(fs::exists(out + "/base.fvecs"));
}

TEST(MakeScaleData, SmallSetMatchesTheSourceAndIsReproducible) {
    FAISS_BQ_REQUIRE_DATA("use512-wordnet", real);
    const size_t d = real.d;
    const std::string out_a = testing::TempDir() + "scale_a";
    const std::string out_b = testing::TempDir() + "scale_b";
    const std::string args = "--source " + source_dir() + " --n " +
                             std::to_string(kN) + " --nq " +
                             std::to_string(kNq) + " --k " +
                             std::to_string(kK) + " --seed 7 --out ";
    std::string log;
    ASSERT_EQ(run_tool(args + out_a, 2, log), 0) << log;
    std::cout << log;
    // Another thread count, same seed: the same bytes.
    ASSERT_EQ(run_tool(args + out_b, 1, log), 0) << log;
    for (const char* f : {"base.fvecs", "query.fvecs", "groundtruth.ivecs"}) {
        const std::string a = read_all(out_a + "/" + f);
        EXPECT_FALSE(a.empty()) << f;
        EXPECT_TRUE(a == read_all(out_b + "/" + f)) << f << " differs";
    }
    EXPECT_TRUE(fs::exists(out_a + "/model.txt"));
    for (const auto& entry : fs::directory_iterator(out_a)) {
        EXPECT_EQ(entry.path().filename().string().find(".partial"),
                  std::string::npos)
                << entry.path();
    }

    const VecsFile<float> base = read_fvecs(out_a + "/base.fvecs");
    const VecsFile<float> query = read_fvecs(out_a + "/query.fvecs");
    const VecsFile<int32_t> gt = read_ivecs(out_a + "/groundtruth.ivecs");
    ASSERT_EQ(base.n, kN);
    ASSERT_EQ(base.d, d);
    ASSERT_EQ(query.n, kNq);
    ASSERT_EQ(query.d, d);
    ASSERT_EQ(gt.n, kNq);
    ASSERT_EQ(gt.d, kK);

    // Ground truth: FAISS's flat search of the written files. A different id
    // at a rank is allowed only for a tie within float rounding.
    const std::vector<test::idx_t> flat = test::exact_knn(
            d, base.data, query.data, kK, faiss::METRIC_INNER_PRODUCT);
    size_t differing = 0;
    for (size_t q = 0; q < kNq; q++) {
        const float* xq = query.data.data() + q * d;
        for (size_t j = 0; j < kK; j++) {
            const int32_t a = gt.data[q * kK + j];
            const test::idx_t b = flat[q * kK + j];
            ASSERT_TRUE(a >= 0 && size_t(a) < kN);
            if (a != b) {
                differing++;
                EXPECT_NEAR(test::dot(xq, base.data.data() + a * d, d),
                            test::dot(xq, base.data.data() + b * d, d),
                            1e-5)
                        << "query " << q << " rank " << j;
            }
        }
    }
    EXPECT_LE(differing, 2u);

    // Mean: each coordinate's sample mean has sd sqrt(S_jj / N) (E[w] = 1);
    // 5 sd over 512 coordinates fails by chance with probability 3e-4.
    const std::vector<double> mu = column_mean(real.nb, d, real.base.data());
    const std::vector<double> s = covariance(real.nb, d, real.base.data(), mu);
    const std::vector<double> mean = column_mean(kN, d, base.data.data());
    for (size_t j = 0; j < d; j++) {
        EXPECT_NEAR(mean[j], mu[j], 5 * std::sqrt(s[j * d + j] / kN))
                << "coordinate " << j;
    }

    // Covariance: for a scale mixture with kurtosis ratio kappa, the sample
    // covariance's entries have variance (kappa S_ii S_jj + (2 kappa - 1)
    // S_ij^2) / N, so E |S_hat - S|_F^2 = (kappa tr(S)^2 + (2 kappa - 1)
    // |S|_F^2) / N. The sum spreads over many entries (a few % noise); 1.5x
    // is far below what a wrong A or a missing w would give.
    const std::vector<double> s_hat = covariance(kN, d, base.data.data(), mean);
    const auto [gen_ratio, gen_se] =
            reference_kurtosis(kN, d, base.data.data());
    double trace = 0, frob = 0, err = 0;
    for (size_t i = 0; i < d; i++) {
        trace += s[i * d + i];
        for (size_t j = 0; j < d; j++) {
            frob += s[i * d + j] * s[i * d + j];
            err += (s_hat[i * d + j] - s[i * d + j]) *
                   (s_hat[i * d + j] - s[i * d + j]);
        }
    }
    const double kappa = 1 + 1 / 8.0; // about the model's E[w^2] (1.11)
    const double expected =
            (kappa * trace * trace + (2 * kappa - 1) * frob) / kN;
    std::cout << "covariance |S_hat - S|_F^2 = " << err << ", expected "
              << expected << " (ratio " << err / expected << ")\n";
    EXPECT_LT(err / expected, 1.5);

    // The tool's Mardia kurtosis (float, eigenvectors) against the reference
    // (double, Cholesky) on the same rows.
    const MardiaKurtosis tool = mardia_kurtosis(
            covariance_spectrum(kN, d, base.data.data()), kN,
            base.data.data());
    EXPECT_NEAR(tool.ratio(), gen_ratio, 1e-3);

    // Kurtosis: the same measure on as many rows of the source (its first
    // N, a random sample): the sample covariance lowers a heavy-tailed set's
    // ratio by about 2 d/n of its excess, so only equal n compare. 4 joint
    // standard errors; a Gaussian (ratio 1.00 at this n) is 0.08 away.
    const auto [real_ratio, real_se] =
            reference_kurtosis(kN, d, real.base.data());
    std::cout << "kurtosis ratio on " << kN << " rows: generated " << gen_ratio
              << " +- " << gen_se << ", source " << real_ratio << " +- "
              << real_se << "\n";
    EXPECT_NEAR(gen_ratio, real_ratio,
                4 * std::sqrt(gen_se * gen_se + real_se * real_se));
    EXPECT_GT(gen_ratio, 1.03); // not a Gaussian's
}

} // namespace
} // namespace faiss_bq
