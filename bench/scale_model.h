// The model behind the bench's scale data (make_scale_data): a mixture of K
// Gaussian scale mixtures x = mu_c + sqrt(w) A z fitted to a real set, with
// mu_c its k-means centres, A A^T its within-component covariance and the
// radial factor w matching its multivariate kurtosis.
#pragma once

#include <faiss_bq/analysis.h>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace faiss_bq {

/// Mardia's multivariate kurtosis b2 = mean_i (m_i^2), m_i the squared
/// Mahalanobis distance of row i under the sample's own mean and covariance
/// (divisor n), over the span of the eigenvalues above 1e-5 of the largest
/// (the rank r; below that, float rounding, not data).
struct MardiaKurtosis {
    size_t n = 0;
    size_t rank = 0;
    double b2 = 0;
    double b2_standard_error = 0; ///< sd(m_i^2) / sqrt(n)

    /// b2 / r(r+2): 1 for a Gaussian, E[w^2] / E[w]^2 for a scale mixture.
    double ratio() const;
    double ratio_standard_error() const;
};

/// spectrum: that of the same n rows x (covariance_spectrum).
MardiaKurtosis mardia_kurtosis(
        const CovarianceSpectrum& spectrum,
        size_t n,
        const float* x);

/// Norms of rows, accumulated in double.
struct NormStats {
    size_t n = 0;
    double sum = 0, sum_sq = 0, min = 0, max = 0;

    void add(double norm);
    double mean() const;
    double sd() const;
};

NormStats row_norms(size_t n, size_t d, const float* x, float* norms = nullptr);

/// x = mu_c + sqrt(w) A z: component c drawn with its share of the source
/// (the source's rows nearest each of K k-means centres, mu_c their mean),
/// z ~ N(0, I_d), A = V diag(sqrt(lambda)) from the pooled within-component
/// covariance W (residuals x - mu_c), w ~ Gamma(shape k, scale 1/k)
/// independent of c and z. E[w] = 1 keeps the covariance: between + within
/// = the source's. E[w^2] = 1 + 1/k sets the kurtosis. K = 1 is the plain
/// scale mixture x = mu + sqrt(w) A z with A A^T the source's covariance.
struct ScaleMixtureModel {
    size_t d = 0;
    CovarianceSpectrum source;      ///< mu, lambda and V of the source
    MardiaKurtosis source_kurtosis; ///< measured on the source
    /// mu_c, row-major: the components with at least one source row (K = 1:
    /// the source's mean).
    std::vector<float> centres;
    /// Source rows of components 0 .. c (a component's weight is its share).
    std::vector<uint64_t> cumulative_rows;
    /// mu = 0 (up to rounding), lambda and V of the residuals x - mu_c; the
    /// source itself for K = 1.
    CovarianceSpectrum within;
    /// Shape k of w's Gamma law; 0 when w = 1: a scale mixture cannot lower
    /// the kurtosis (E[w^2] >= E[w]^2), so when the source's ratio is at or
    /// below that of w = 1 (1 for a Gaussian), w = 1 and `clamped` says so.
    double gamma_shape = 0;
    bool clamped = false;
    /// Measured on as many generated rows as the source has (see fit): with
    /// w = 1 (K = 1: not measured, a Gaussian's 1 is assumed) and with the
    /// first guess of the law.
    MardiaKurtosis unit_radial_kurtosis;
    MardiaKurtosis calibration_kurtosis;

    size_t components() const;

    /// Fits the model to n x d source rows with `clusters` k-means centres
    /// (faiss::Clustering, L2, its default 25 iterations and seed), and k so
    /// that n generated rows, measured as the source is, give its ratio.
    static ScaleMixtureModel fit(
            size_t n,
            size_t d,
            const float* x,
            size_t clusters = 1);

    /// E[w^2] / E[w]^2 of the fitted law (the population's kurtosis ratio
    /// for K = 1).
    double model_kurtosis_ratio() const;

    /// Rows [row0, row0 + n) of a stream (0: base, 1: queries) into out
    /// (n x d). Each row is drawn by its own generator seeded from (seed,
    /// stream, row), so the bytes depend neither on blocks nor on threads.
    void generate(
            uint64_t seed,
            uint64_t stream,
            size_t row0,
            size_t n,
            float* out) const;

   private:
    /// unit_radial: draws w as generate does but uses w = 1, so that the
    /// calibration's two samples share c and z.
    void generate_rows(
            uint64_t seed,
            uint64_t stream,
            size_t row0,
            size_t n,
            bool unit_radial,
            float* out) const;
};

} // namespace faiss_bq
