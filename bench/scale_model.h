// The model behind the bench's scale data (make_scale_data): a Gaussian scale
// mixture x = mu + sqrt(w) A z fitted to a real set, with A A^T its covariance
// and the radial factor w matching its multivariate kurtosis.
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
MardiaKurtosis mardia_kurtosis(const CovarianceSpectrum& spectrum,
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

/// x = mu + sqrt(w) A z, z ~ N(0, I_d), A = V diag(sqrt(lambda)) from the
/// source's covariance spectrum, w ~ Gamma(shape k, scale 1/k) independent of
/// z: E[w] = 1 keeps the covariance, E[w^2] = 1 + 1/k sets the kurtosis ratio
/// (for a scale mixture b2 = d(d+2) E[w^2] / E[w]^2).
struct ScaleMixtureModel {
    size_t d = 0;
    CovarianceSpectrum source;       ///< mu, lambda and V of the source
    MardiaKurtosis source_kurtosis;  ///< measured on the source
    /// Shape k of w's Gamma law; 0 when w = 1 (a Gaussian): a scale mixture
    /// cannot be lighter-tailed than a Gaussian (E[w^2] >= E[w]^2), so a
    /// source with ratio <= 1 is clamped there and `clamped` says so.
    double gamma_shape = 0;
    bool clamped = false;
    /// The uncalibrated law (k = 1 / (ratio - 1)) measured on as many
    /// generated rows as the source has (see fit).
    MardiaKurtosis calibration_kurtosis;

    /// Fits mu, S and k to n x d source rows: k so that n generated rows,
    /// measured as the source is, give the source's ratio.
    static ScaleMixtureModel fit(size_t n, size_t d, const float* x);

    /// E[w^2] / E[w]^2 of the fitted law: the population's kurtosis ratio.
    double model_kurtosis_ratio() const;

    /// Rows [row0, row0 + n) of a stream (0: base, 1: queries) into out
    /// (n x d). Each row is drawn by its own generator seeded from (seed,
    /// stream, row), so the bytes depend neither on blocks nor on threads.
    void generate(uint64_t seed,
                  uint64_t stream,
                  size_t row0,
                  size_t n,
                  float* out) const;
};

} // namespace faiss_bq
