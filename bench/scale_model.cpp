#include "scale_model.h"

#include <faiss_bq/impl/blas.h>

#include <faiss/Clustering.h>
#include <faiss/IndexFlat.h>
#include <faiss/impl/FaissAssert.h>

#include <algorithm>
#include <cmath>
#include <random>

namespace faiss_bq {

namespace {

// Eigenvalues below this share of the largest are float rounding of the
// covariance (ssyevd's error is ~1e-7 of the largest; all-MiniLM-L6-v2 has
// three exact zeros), not directions of the data. Dropping directions does
// not move a scale mixture's ratio b2 / r(r+2), whatever r is.
constexpr double kRankTolerance = 1e-5;

// Rows projected at a time: 16 MiB of floats per block.
constexpr size_t kBufferFloats = size_t(1) << 22;

// The calibration sample is a stream of its own, apart from any output.
constexpr uint64_t kCalibrationSeed = 0;
constexpr uint64_t kCalibrationStream = 2;

// OpenBLAS splits ssyrk (and LAPACK's inner BLAS calls) by thread count,
// which changes their rounding, and the model's bits are the output's: the
// fit runs BLAS on one thread. Weak: a BLAS without these (the reference
// one) is single-threaded already.
extern "C" int openblas_get_num_threads(void) __attribute__((weak));
extern "C" void openblas_set_num_threads(int) __attribute__((weak));

struct SingleThreadedBlas {
    int saved = 0;
    SingleThreadedBlas() {
        if (openblas_get_num_threads && openblas_set_num_threads) {
            saved = openblas_get_num_threads();
            openblas_set_num_threads(1);
        }
    }
    ~SingleThreadedBlas() {
        if (saved > 0) {
            openblas_set_num_threads(saved);
        }
    }
    SingleThreadedBlas(const SingleThreadedBlas&) = delete;
    SingleThreadedBlas& operator=(const SingleThreadedBlas&) = delete;
};

uint64_t splitmix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

// Assigns each row to the nearest of `clusters` k-means centres and sets
// mu_c to the mean of its rows (so that the source's covariance is exactly
// between + within), the weights to the counts and W to the residuals'
// covariance. Components left without rows are dropped.
void fit_components(
        size_t n,
        size_t d,
        const float* x,
        size_t clusters,
        ScaleMixtureModel& model) {
    faiss::ClusteringParameters cp;
    // All the source's rows: at 60k x 1024 centres, faiss's default cap of
    // 256 per centre samples none away.
    cp.max_points_per_centroid = int(std::max<size_t>(n / clusters + 1, 256));
    faiss::Clustering kmeans(int(d), int(clusters), cp);
    faiss::IndexFlatL2 index{faiss::Index::idx_t(d)};
    kmeans.train(faiss::Index::idx_t(n), x, index);
    std::vector<float> distances(n);
    std::vector<faiss::Index::idx_t> assign(n);
    index.search(faiss::Index::idx_t(n), x, 1, distances.data(), assign.data());

    std::vector<double> sums(clusters * d);
    std::vector<uint64_t> counts(clusters);
    for (size_t i = 0; i < n; i++) {
        const size_t c = size_t(assign[i]);
        counts[c]++;
        for (size_t j = 0; j < d; j++) {
            sums[c * d + j] += x[i * d + j];
        }
    }
    // Non-empty components renumbered in order.
    std::vector<size_t> renumber(clusters);
    uint64_t total = 0;
    for (size_t c = 0; c < clusters; c++) {
        if (counts[c] == 0) {
            continue;
        }
        renumber[c] = model.cumulative_rows.size();
        total += counts[c];
        model.cumulative_rows.push_back(total);
        for (size_t j = 0; j < d; j++) {
            model.centres.push_back(float(sums[c * d + j] / double(counts[c])));
        }
    }
    std::vector<float> residuals(n * d);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < int64_t(n); i++) {
        const float* mu = model.centres.data() + renumber[assign[i]] * d;
        for (size_t j = 0; j < d; j++) {
            residuals[i * d + j] = x[i * d + j] - mu[j];
        }
    }
    model.within = covariance_spectrum(n, d, residuals.data());
}

} // namespace

double MardiaKurtosis::ratio() const {
    return rank ? b2 / (double(rank) * double(rank + 2)) : 0;
}

double MardiaKurtosis::ratio_standard_error() const {
    return rank ? b2_standard_error / (double(rank) * double(rank + 2)) : 0;
}

MardiaKurtosis mardia_kurtosis(
        const CovarianceSpectrum& spectrum,
        size_t n,
        const float* x) {
    const size_t d = spectrum.d;
    FAISS_THROW_IF_NOT_FMT(
            n >= 2 && d > 0 && spectrum.eigenvalues.size() == d,
            "mardia_kurtosis: n=%zu rows, d=%zu, %zu eigenvalues",
            n,
            d,
            spectrum.eigenvalues.size());
    MardiaKurtosis k;
    k.n = n;
    const double largest = spectrum.eigenvalues[0];
    while (k.rank < d &&
           spectrum.eigenvalues[k.rank] > kRankTolerance * largest) {
        k.rank++;
    }
    FAISS_THROW_IF_NOT_FMT(
            k.rank > 0, "mardia_kurtosis: zero covariance (n=%zu)", n);
    const size_t r = k.rank;
    const size_t block_rows = std::max<size_t>(1, kBufferFloats / d);
    std::vector<float> centred(block_rows * d), y(block_rows * r);
    std::vector<double> m(n);
    for (size_t i0 = 0; i0 < n; i0 += block_rows) {
        const size_t rows = std::min(block_rows, n - i0);
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < int64_t(rows); i++) {
            for (size_t j = 0; j < d; j++) {
                centred[i * d + j] = x[(i0 + i) * d + j] - spectrum.mean[j];
            }
        }
        // Column-major Y^T (r x rows) = V_r (r x d) Xc^T; row-major V is
        // column-major V^T, hence "T".
        FINTEGER ri = FINTEGER(r), ni = FINTEGER(rows), di = FINTEGER(d);
        float one = 1, zero = 0;
        sgemm_("T",
               "N",
               &ri,
               &ni,
               &di,
               &one,
               spectrum.axes.data(),
               &di,
               centred.data(),
               &di,
               &zero,
               y.data(),
               &ri);
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < int64_t(rows); i++) {
            double s = 0;
            for (size_t c = 0; c < r; c++) {
                const double v = y[i * r + c];
                s += v * v / spectrum.eigenvalues[c];
            }
            m[i0 + i] = s;
        }
    }
    // Every m_i sums to n r (the covariance is the sample's own), so b2 =
    // r^2 + var(m): its error is that of a sample variance.
    double mean_m = 0;
    for (double mi : m) {
        mean_m += mi;
    }
    mean_m /= double(n);
    double var = 0, mu4 = 0;
    for (double mi : m) {
        const double c2 = (mi - mean_m) * (mi - mean_m);
        var += c2;
        mu4 += c2 * c2;
    }
    var /= double(n);
    mu4 /= double(n);
    k.b2 = mean_m * mean_m + var;
    k.b2_standard_error = std::sqrt(std::max(0.0, mu4 - var * var) / double(n));
    return k;
}

void NormStats::add(double norm) {
    min = n ? std::min(min, norm) : norm;
    max = n ? std::max(max, norm) : norm;
    n++;
    sum += norm;
    sum_sq += norm * norm;
}

double NormStats::mean() const {
    return n ? sum / n : 0;
}

double NormStats::sd() const {
    return n ? std::sqrt(std::max(0.0, sum_sq / n - mean() * mean())) : 0;
}

NormStats row_norms(size_t n, size_t d, const float* x, float* norms) {
    std::vector<double> nr(n);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < int64_t(n); i++) {
        double s = 0;
        for (size_t j = 0; j < d; j++) {
            s += double(x[i * d + j]) * x[i * d + j];
        }
        nr[i] = std::sqrt(s);
    }
    NormStats stats;
    for (size_t i = 0; i < n; i++) {
        stats.add(nr[i]);
        if (norms) {
            norms[i] = float(nr[i]);
        }
    }
    return stats;
}

size_t ScaleMixtureModel::components() const {
    return cumulative_rows.size();
}

ScaleMixtureModel ScaleMixtureModel::fit(
        size_t n,
        size_t d,
        const float* x,
        size_t clusters) {
    FAISS_THROW_IF_NOT_FMT(
            clusters >= 1 && clusters <= n,
            "ScaleMixtureModel::fit: %zu clusters for %zu rows",
            clusters,
            n);
    const SingleThreadedBlas single_threaded;
    ScaleMixtureModel model;
    model.d = d;
    model.source = covariance_spectrum(n, d, x);
    model.source_kurtosis = mardia_kurtosis(model.source, n, x);
    if (clusters == 1) {
        model.centres = model.source.mean;
        model.cumulative_rows = {n};
        model.within = model.source;
    } else {
        fit_components(n, d, x, clusters, model);
    }
    // E[w^2] = 1 + 1/k for w ~ Gamma(k, 1/k). The ratio R is affine in
    // E[w^2]: in the population E[m^2] = a + b E[w^2] for m the squared
    // Mahalanobis distance of mu_c - mu + sqrt(w) e. Measured with the
    // sample's own covariance, R falls short by about 2 d/n of its excess
    // (2% at 60k x 512, 20% at 5k), so it is measured on as many generated
    // rows as the source has: with a first guess k1 (E[w^2] - 1 = the
    // source's excess) and, for K > 1, with w = 1 and the same c and z (R0;
    // a Gaussian's 1 for K = 1). One secant step matches the source.
    const double target_excess = model.source_kurtosis.ratio() - 1;
    model.clamped = target_excess <= 0;
    if (model.clamped) {
        return model;
    }
    model.gamma_shape = 1 / target_excess;
    std::vector<float> sample(n * d);
    double unit_ratio = 1;
    if (model.components() > 1) {
        model.generate_rows(
                kCalibrationSeed,
                kCalibrationStream,
                0,
                n,
                true,
                sample.data());
        model.unit_radial_kurtosis = mardia_kurtosis(
                covariance_spectrum(n, d, sample.data()), n, sample.data());
        unit_ratio = model.unit_radial_kurtosis.ratio();
    }
    // The excess above w = 1 that the law must add.
    const double needed_excess = model.source_kurtosis.ratio() - unit_ratio;
    if (needed_excess <= 0) {
        model.clamped = true;
        model.gamma_shape = 0;
        return model;
    }
    model.generate(kCalibrationSeed, kCalibrationStream, 0, n, sample.data());
    model.calibration_kurtosis = mardia_kurtosis(
            covariance_spectrum(n, d, sample.data()), n, sample.data());
    const double measured_excess =
            model.calibration_kurtosis.ratio() - unit_ratio;
    if (measured_excess > 0) {
        // k = slope / needed, slope = measured_excess / (E[w1^2] - 1).
        model.gamma_shape = measured_excess / (needed_excess * target_excess);
    }
    return model;
}

double ScaleMixtureModel::model_kurtosis_ratio() const {
    return gamma_shape > 0 ? 1 + 1 / gamma_shape : 1;
}

void ScaleMixtureModel::generate(
        uint64_t seed,
        uint64_t stream,
        size_t row0,
        size_t n,
        float* out) const {
    generate_rows(seed, stream, row0, n, false, out);
}

void ScaleMixtureModel::generate_rows(
        uint64_t seed,
        uint64_t stream,
        size_t row0,
        size_t n,
        bool unit_radial,
        float* out) const {
    std::vector<float> sigma(d);
    for (size_t j = 0; j < d; j++) {
        sigma[j] = std::sqrt(within.eigenvalues[j]);
    }
    const size_t k = components();
    const uint64_t source_rows = cumulative_rows.back();
    // Row i of scaled holds sqrt(w) sqrt(lambda_j) z_j: the coordinates of
    // x - mu_c along the within-component principal axes.
    std::vector<float> scaled(n * d);
    const uint64_t stream_key = splitmix64(splitmix64(seed) ^ stream);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < int64_t(n); i++) {
        std::mt19937_64 rng(splitmix64(stream_key ^ (row0 + size_t(i))));
        // K = 1 draws nothing here, so its rows are the plain model's. The
        // modulo's bias is below source_rows / 2^64.
        size_t c = 0;
        if (k > 1) {
            c = std::upper_bound(
                        cumulative_rows.begin(),
                        cumulative_rows.end(),
                        rng() % source_rows) -
                    cumulative_rows.begin();
        }
        std::copy_n(centres.data() + c * d, d, out + i * d);
        float scale = 1;
        if (gamma_shape > 0) {
            std::gamma_distribution<double> w(gamma_shape, 1 / gamma_shape);
            const double wi = w(rng);
            scale = unit_radial ? 1 : float(std::sqrt(wi));
        }
        std::normal_distribution<float> z;
        float* row = scaled.data() + i * d;
        for (size_t j = 0; j < d; j++) {
            row[j] = scale * sigma[j] * z(rng);
        }
    }
    // Row-major out = mu_c + scaled V: column-major out^T = V^T scaled^T,
    // and row-major V is column-major V^T.
    FINTEGER di = FINTEGER(d), ni = FINTEGER(n);
    float one = 1;
    sgemm_("N",
           "N",
           &di,
           &ni,
           &di,
           &one,
           within.axes.data(),
           &di,
           scaled.data(),
           &di,
           &one,
           out,
           &di);
}

} // namespace faiss_bq
