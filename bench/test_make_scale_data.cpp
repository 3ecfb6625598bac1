// make_scale_data run on use512-wordnet at its size (60k): its files, ground
// truth, moments, kurtosis and cluster structure against references computed
// here, reproducibility, and K = 1 as the single scale mixture it was.
#include "scale_model.h"

#include "../tests/test_util.h"

#include <faiss_bq/impl/blas.h>
#include <faiss_bq/utils/vecs_io.h>

#include <faiss/Clustering.h>
#include <faiss/IndexFlat.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

extern "C" int dtrsm_(
        const char* side,
        const char* uplo,
        const char* transa,
        const char* diag,
        FINTEGER* m,
        FINTEGER* n,
        const double* alpha,
        const double* a,
        FINTEGER* lda,
        double* b,
        FINTEGER* ldb);

namespace faiss_bq {
namespace {

namespace fs = std::filesystem;

// The source's size, so that the kurtosis compares on equal n (see below)
// and the list balance on the same rows.
constexpr size_t kN = 60000;
constexpr size_t kNq = 50;
constexpr size_t kK = 100;
// The source's first rows, for the reproducibility runs.
constexpr size_t kReproRows = 12000;

std::string read_all(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

std::string source_dir() {
    const char* env = std::getenv("FAISS_BQ_DATA");
    return std::string(env && *env ? env : FAISS_BQ_DATA_DIR) +
            "/use512-wordnet";
}

/// This process's own folder under testing::TempDir() (made once, removed
/// at exit): ctest runs tests in parallel, and other builds' tests may run
/// on the same machine, so fixed names under /tmp collide.
const std::string& scratch() {
    struct Dir {
        std::string path;
        Dir() {
            std::string t = testing::TempDir() + "faiss_bq_scale_XXXXXX";
            if (!mkdtemp(t.data())) {
                throw std::runtime_error("mkdtemp failed for " + t);
            }
            path = t + "/";
        }
        ~Dir() {
            std::error_code ec;
            fs::remove_all(path, ec);
        }
    };
    static const Dir dir;
    return dir.path;
}

/// Runs the tool with `args` and `threads` threads; returns its exit status
/// and puts its output in `log`.
int run_tool(const std::string& args, int threads, std::string& log) {
    const std::string log_path = scratch() + "make_scale_data.log";
    const std::string t = std::to_string(threads);
    const std::string cmd = "OMP_NUM_THREADS=" + t +
            " OPENBLAS_NUM_THREADS=" + t + " " MAKE_SCALE_DATA " " + args +
            " > " + log_path + " 2>&1";
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
std::vector<double> covariance(
        size_t n,
        size_t d,
        const float* x,
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
        sgemm_("N",
               "T",
               &di,
               &di,
               &ri,
               &one,
               xc.data(),
               &di,
               xc.data(),
               &di,
               &zero,
               c.data(),
               &di);
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
std::pair<double, double> reference_kurtosis(
        size_t n,
        size_t d,
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
    // m_i = |L^-1 (x_i - mean)|^2: forward substitution in double, by
    // blocks of rows (BLAS dtrsm). A block of centred rows, row-major, is
    // the d x rows matrix of its columns; l, row-major lower, is L^T to
    // column-major BLAS: solve (L^T)^T Y = X.
    std::vector<double> m(n);
    const size_t block = 4096;
    std::vector<double> y(block * d);
    for (size_t i0 = 0; i0 < n; i0 += block) {
        const size_t rows = std::min(block, n - i0);
        for (size_t i = 0; i < rows; i++) {
            for (size_t j = 0; j < d; j++) {
                y[i * d + j] = x[(i0 + i) * d + j] - mean[j];
            }
        }
        FINTEGER di = FINTEGER(d), ri = FINTEGER(rows);
        const double one = 1;
        dtrsm_("L",
               "U",
               "T",
               "N",
               &di,
               &ri,
               &one,
               l.data(),
               &di,
               y.data(),
               &di);
        for (size_t i = 0; i < rows; i++) {
            double s = 0;
            for (size_t j = 0; j < d; j++) {
                s += y[i * d + j] * y[i * d + j];
            }
            m[i0 + i] = s;
        }
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

/// IVF list balance: rows per list of 256 L2 k-means lists (faiss::Clustering,
/// its defaults) trained on rows [0, 20k) and applied to rows [20k, 60k).
/// Returns the median of the list sizes (mean 156).
double median_list_size(size_t d, const float* x) {
    const size_t nlist = 256, n_train = 20000, n_assign = 40000;
    faiss::IndexFlatL2 index{faiss::Index::idx_t(d)};
    faiss::Clustering kmeans{int(d), int(nlist)};
    kmeans.train(faiss::Index::idx_t(n_train), x, index);
    std::vector<float> distances(n_assign);
    std::vector<faiss::Index::idx_t> lists(n_assign);
    index.search(
            faiss::Index::idx_t(n_assign),
            x + n_train * d,
            1,
            distances.data(),
            lists.data());
    std::vector<size_t> sizes(nlist);
    for (auto l : lists) {
        sizes[size_t(l)]++;
    }
    std::sort(sizes.begin(), sizes.end());
    return 0.5 * double(sizes[nlist / 2 - 1] + sizes[nlist / 2]);
}

TEST(MakeScaleData, BadArgumentsAreNamedAndWriteNothing) {
    const std::string out = scratch() + "scale_bad";
    fs::remove_all(out);
    std::string log;
    EXPECT_NE(
            run_tool(
                    "--source " + source_dir() + " --out " + out + " --n 0",
                    1,
                    log),
            0);
    EXPECT_NE(log.find("--n 0"), std::string::npos) << log;
    EXPECT_NE(
            run_tool(
                    "--source " + source_dir() + " --out " + out +
                            " --n 50 --k 60",
                    1,
                    log),
            0);
    EXPECT_NE(log.find("--k 60"), std::string::npos) << log;
    EXPECT_NE(
            run_tool(
                    "--source " + source_dir() + " --out " + source_dir(),
                    1,
                    log),
            0);
    EXPECT_NE(log.find("is the source folder"), std::string::npos) << log;
    EXPECT_NE(run_tool("--out " + out + " --n x", 1, log), 0);
    EXPECT_NE(log.find("usage:"), std::string::npos) << log;
    EXPECT_NE(
            run_tool(
                    "--source " + source_dir() + " --out " + out +
                            " --n 50 --k 1 --clusters 0",
                    1,
                    log),
            0);
    EXPECT_NE(log.find("--clusters 0"), std::string::npos) << log;
    EXPECT_FALSE(fs::exists(out + "/base.fvecs"));
}

TEST(MakeScaleData, GeneratedSetMatchesTheSourceAndIsReproducible) {
    FAISS_BQ_REQUIRE_DATA("use512-wordnet", real);
    const size_t d = real.d;
    const std::string out_a = scratch() + "scale_a";
    const std::string out_b = scratch() + "scale_b";
    const std::string args = "--source " + source_dir() + " --n " +
            std::to_string(kN) + " --nq " + std::to_string(kNq) + " --k " +
            std::to_string(kK) + " --seed 7 --out ";
    std::string log;
    ASSERT_EQ(run_tool(args + out_a, 2, log), 0) << log;
    std::cout << log;
    // Another thread count, same seed: the same bytes. Shown on a source of
    // the first kReproRows rows, where every step of the tool runs as at 60k
    // (the 1024-centre k-means fit, the calibration, generation, the BLAS
    // ground truth, each over rows split by thread count) at a fifth of the
    // fit's cost: the fit dominates a run (about 27 s at 60k rows), and the
    // second run at 60k was a third of this test's time. Both runs of the
    // small source: 2 threads, then 1.
    const std::string small_source = scratch() + "source_small";
    fs::create_directories(small_source);
    write_fvecs(small_source + "/base.fvecs", kReproRows, d, real.base.data());
    const std::string small_args = "--source " + small_source + " --n " +
            std::to_string(kReproRows) + " --nq " + std::to_string(kNq) +
            " --k " + std::to_string(kK) + " --seed 7 --out ";
    const std::string out_c = scratch() + "scale_c";
    ASSERT_EQ(run_tool(small_args + out_b, 2, log), 0) << log;
    ASSERT_EQ(run_tool(small_args + out_c, 1, log), 0) << log;
    for (const char* f : {"base.fvecs", "query.fvecs", "groundtruth.ivecs"}) {
        const std::string b = read_all(out_b + "/" + f);
        EXPECT_FALSE(b.empty()) << f;
        EXPECT_TRUE(b == read_all(out_c + "/" + f)) << f << " differs";
    }
    EXPECT_TRUE(fs::exists(out_a + "/model.txt"));
    for (const auto& entry : fs::directory_iterator(out_a)) {
        EXPECT_EQ(
                entry.path().filename().string().find(".partial"),
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
                EXPECT_NEAR(
                        test::dot(xq, base.data.data() + a * d, d),
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
    // About the source's ratio (1.11); the mixture's components add little
    // beyond a single scale mixture's at this ratio.
    const double kappa = 1 + 1 / 8.0;
    const double expected =
            (kappa * trace * trace + (2 * kappa - 1) * frob) / kN;
    std::cout << "covariance |S_hat - S|_F^2 = " << err << ", expected "
              << expected << " (ratio " << err / expected << ")\n";
    EXPECT_LT(err / expected, 1.5);

    // The tool's Mardia kurtosis (float, eigenvectors) against the reference
    // (double, Cholesky) on the same rows.
    const MardiaKurtosis tool = mardia_kurtosis(
            covariance_spectrum(kN, d, base.data.data()), kN, base.data.data());
    EXPECT_NEAR(tool.ratio(), gen_ratio, 1e-3);

    // Kurtosis: the same measure on as many rows of the source (all of it):
    // the sample covariance lowers a heavy-tailed set's ratio by about 2 d/n
    // of its excess, so only equal n compare. 4 joint standard errors
    // (0.015); the mixture with w = 1 (1.005) is 0.1 away.
    const auto [real_ratio, real_se] =
            reference_kurtosis(kN, d, real.base.data());
    std::cout << "kurtosis ratio on " << kN << " rows: generated " << gen_ratio
              << " +- " << gen_se << ", source " << real_ratio << " +- "
              << real_se << "\n";
    EXPECT_NEAR(
            gen_ratio,
            real_ratio,
            4 * std::sqrt(gen_se * gen_se + real_se * real_se));
    EXPECT_GT(gen_ratio, 1.03); // not a Gaussian's

    // Cluster structure: the real set's IVF lists are balanced (median 142
    // of mean 156); the single scale mixture has none to find (median 0,
    // most lists empty), the mixture of 1024 components 139 to 154 (seeds
    // 1234 and 7). A factor 2 separates them; the K = 1 test shows it fails.
    const double real_median = median_list_size(d, real.base.data());
    const double gen_median = median_list_size(d, base.data.data());
    std::cout << "median IVF list size (256 lists): generated " << gen_median
              << ", source " << real_median << "\n";
    EXPECT_GT(gen_median, real_median / 2);
    EXPECT_LT(gen_median, real_median * 2);
}

TEST(MakeScaleData, OneClusterIsTheSingleScaleMixture) {
    FAISS_BQ_REQUIRE_DATA("use512-wordnet", real);
    const size_t d = real.d;
    const std::string out = scratch() + "scale_k1";
    std::string log;
    ASSERT_EQ(
            run_tool(
                    "--source " + source_dir() + " --n " + std::to_string(kN) +
                            " --nq 10 --k 1 --seed 1234 --clusters 1 --out " +
                            out,
                    2,
                    log),
            0)
            << log;
    const VecsFile<float> base = read_fvecs(out + "/base.fvecs");
    const VecsFile<float> query = read_fvecs(out + "/query.fvecs");
    ASSERT_EQ(base.n, kN);

    // Written by the tool before --clusters (commit f1172a8, seed 1234, the
    // 1M set scale1m-use512): rows 0 and 59999, query 0, first 4 values. A
    // different BLAS may move the last digits, a changed draw all of them.
    const float known[3][4] = {
            {0.0354753062f, 0.0262402222f, 0.00328893005f, -0.0676900148f},
            {-0.0153954728f, -0.000615347642f, 0.0112067889f, 0.00858630519f},
            {-0.0159804113f, 0.0480496772f, 0.0289518926f, -0.0121215377f}};
    const float* rows[3] = {
            base.data.data(),
            base.data.data() + (kN - 1) * d,
            query.data.data()};
    for (size_t r = 0; r < 3; r++) {
        for (size_t j = 0; j < 4; j++) {
            EXPECT_NEAR(rows[r][j], known[r][j], 1e-6)
                    << "row " << r << " value " << j;
        }
    }
    // The 1M set itself, when present: the same bytes.
    const std::string old_set = fs::path(source_dir()).parent_path().string() +
            "/scale1m-use512/base.fvecs";
    if (fs::exists(old_set)) {
        const std::string written = read_all(out + "/base.fvecs");
        std::ifstream in(old_set, std::ios::binary);
        std::string prefix(written.size(), '\0');
        in.read(&prefix[0], std::streamsize(prefix.size()));
        EXPECT_TRUE(prefix == written)
                << "the first " << kN << " rows differ from " << old_set;
    } else {
        std::cout << "not compared byte for byte: no " << old_set << "\n";
    }

    // No cluster structure: the measure the mixture passes fails here.
    const double real_median = median_list_size(d, real.base.data());
    const double gen_median = median_list_size(d, base.data.data());
    std::cout << "median IVF list size (256 lists), K = 1: " << gen_median
              << ", source " << real_median << "\n";
    EXPECT_LT(gen_median, real_median / 2);
}

} // namespace
} // namespace faiss_bq
