// Statistics of a training sample that decide how to binarize it (DESIGN.md,
// "The model").
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace faiss_bq {

/// What the trainer knows about a sample of n vectors of dimension d.
/// Plain data: computed once by analyze(), printed by report().
struct DatasetAnalysis {
    size_t n = 0;
    size_t d = 0;

    std::vector<float> mean;  ///< d: per-coordinate mean
    std::vector<float> sigma; ///< d: per-coordinate standard deviation
    /// std(sigma_j) / mean(sigma_j): how unequal the coordinates' scales are
    float cv_sigma = 0;
    /// |mean|^2 / E|x|^2: share of the energy in the common offset
    float mean_offset_ratio = 0;
    /// Per coordinate, the fraction of values >= 0 and >= mean_j
    std::vector<float> positive_fraction;
    std::vector<float> positive_fraction_centered;
    /// Mean over coordinates of the binary entropy (bits) of those fractions:
    /// 1 means every sign bit is balanced, 0 that every one is constant
    float sign_entropy_bits = 0;
    float sign_entropy_centered_bits = 0;
    /// Eigenvalues of the covariance, largest first
    std::vector<float> eigenvalues;
    /// Participation ratio (sum lambda)^2 / sum lambda^2, between 1 and d
    float effective_rank = 0;
    /// Share of the correlation matrix's squared Frobenius norm off its
    /// diagonal
    float offdiag_energy = 0;
    /// Per-coordinate excess kurtosis (0 for a Gaussian, 3 for a Laplace)
    std::vector<float> excess_kurtosis;
    float mean_excess_kurtosis = 0;
    /// Coordinates with zero variance (they get no weight in the statistics
    /// above that divide by sigma)
    size_t n_constant = 0;

    /// Sum of the per-coordinate variances, tr(Sigma)
    double total_variance() const;

    /// A readable multi-line report of the statistics with what they imply.
    std::string report() const;
};

/// Computes every statistic of DatasetAnalysis on x (n x d, row-major).
/// The covariance is one BLAS ssyrk and its spectrum one LAPACK ssyevd.
/// Throws faiss::FaissException if n < 2, d <= 0 or x holds NaN or Inf.
DatasetAnalysis analyze(size_t n, size_t d, const float* x);

/// Principal axes of x (n x d): the eigenvectors of its covariance (one
/// ssyrk, one ssyevd) as the rows of a d x d row-major orthogonal matrix,
/// largest eigenvalue first. Throws faiss::FaissException if n < d (the
/// axes of the null space would be arbitrary).
std::vector<float> principal_axes(size_t n, size_t d, const float* x);

/// The mean and covariance (divisor n) of x (n x d, n >= 2) as a spectrum:
/// eigenvalues largest first, clamped at 0, and the eigenvectors as the rows
/// of a d x d row-major orthogonal matrix in the same order (one ssyrk, one
/// ssyevd). For models of a sample, e.g. the bench's scale data.
struct CovarianceSpectrum {
    size_t d = 0;
    std::vector<float> mean;
    std::vector<float> eigenvalues;
    std::vector<float> axes;
};
CovarianceSpectrum covariance_spectrum(size_t n, size_t d, const float* x);

} // namespace faiss_bq
