// Statistics of a training sample (DESIGN.md, "The model"): two passes over
// the coordinates for the moments, one BLAS ssyrk for the covariance and one
// LAPACK ssyevd for its spectrum.
#include <faiss_bq/analysis.h>

#include <faiss_bq/impl/blas.h>

#include <faiss/impl/FaissAssert.h>

#include <algorithm>
#include <cfloat>
#include <climits>
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>

namespace faiss_bq {

namespace {

// Coordinates per OpenMP task: each row contributes whole cache lines, and
// every coordinate sums its rows in order, so results do not depend on the
// number of threads.
constexpr size_t kBlockCols = 64;

// Rows centred at a time before ssyrk: 16 MiB is enough for BLAS to run at
// full speed without doubling the memory of a large sample.
constexpr size_t kBufferFloats = size_t(1) << 22;

// A sign bit split 25/75 or worse is what the report calls unbalanced; its
// entropy (0.81 bits) is the warning threshold for the mean entropy.
constexpr double kUnbalancedLow = 0.25;
constexpr double kUnbalancedHigh = 0.75;

// At |mean|^2 / E|x|^2 = 0.2 the offset is half a sigma per coordinate
// (|mean|^2 = tr(Sigma) / 4), so an uncentred Gaussian sign bit splits 69/31
// and carries 0.89 bits: below that centring has little to gain.
constexpr double kLargeOffset = 0.2;

// CV(sigma) = 0.2: variances typically 40% away from their mean, enough for
// Hamming's equal weights to misrepresent the distance.
constexpr double kHeterogeneousScales = 0.2;

// The sampling error of a Gaussian excess kurtosis is sqrt(24 / n) (0.15 at
// n = 1000), so these are far outside noise: halfway to a Laplace (3) and
// halfway to a uniform (-1.2).
constexpr double kHeavyTails = 1.5;
constexpr double kLightTails = -0.6;

// A coordinate whose squared correlations with the others sum (beyond
// sampling noise) to 1/3 shares about a third of its variance with them.
constexpr double kCorrelatedEnergy = 1.0 / 3;

// Below 1/20 of its variance shared with the others (and scales within
// kHeterogeneousScales), the covariance is close enough to sigma^2 I that no
// rotation has anything to even out or decorrelate.
constexpr double kIsotropicEnergy = 0.05;

// Effective rank below half of what independent coordinates with the same
// sigmas would give: the energy sits in few directions.
constexpr double kLowRank = 0.5;

// 90% of the variance in the top 10% of components: evenly spread bits
// mostly encode the remaining noise.
constexpr double kTopShare = 0.1;
constexpr double kConcentrated = 0.9;

template <typename F>
void parallel_over_column_blocks(size_t d, F&& f) {
    const int64_t n_blocks = int64_t((d + kBlockCols - 1) / kBlockCols);
#pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < n_blocks; b++) {
        const size_t j0 = size_t(b) * kBlockCols;
        f(j0, std::min(d, j0 + kBlockCols));
    }
}

double binary_entropy_bits(double p) {
    if (p <= 0 || p >= 1) {
        return 0;
    }
    return -p * std::log2(p) - (1 - p) * std::log2(1 - p);
}

double mean_binary_entropy_bits(const std::vector<float>& fractions) {
    if (fractions.empty()) {
        return 0;
    }
    double sum = 0;
    for (float p : fractions) {
        sum += binary_entropy_bits(p);
    }
    return sum / fractions.size();
}

size_t count_unbalanced(const std::vector<float>& fractions) {
    return std::count_if(fractions.begin(), fractions.end(), [](float p) {
        return p < kUnbalancedLow || p > kUnbalancedHigh;
    });
}

// Sum of the d x d matrix Xc^T Xc of the centred rows, upper triangle of a
// column-major matrix. Blocks are summed in double so that large n adds no
// rounding beyond that of one block.
std::vector<double> centred_scatter(
        size_t n,
        size_t d,
        const float* x,
        const std::vector<double>& mean) {
    const size_t block_rows =
            std::min(n, std::max<size_t>(1, kBufferFloats / d));
    std::vector<float> centred(block_rows * d);
    std::vector<float> block_scatter(d * d);
    std::vector<double> scatter(d * d);
    for (size_t i0 = 0; i0 < n; i0 += block_rows) {
        const size_t rows = std::min(block_rows, n - i0);
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < int64_t(rows); i++) {
            const float* row = x + (i0 + i) * d;
            float* out = centred.data() + i * d;
            for (size_t j = 0; j < d; j++) {
                out[j] = float(row[j] - mean[j]);
            }
        }
        // Row-major rows x d is column-major d x rows: C = A A^T is 'N'.
        FINTEGER di = FINTEGER(d), ki = FINTEGER(rows);
        float one = 1, zero = 0;
        ssyrk_("U",
               "N",
               &di,
               &ki,
               &one,
               centred.data(),
               &di,
               &zero,
               block_scatter.data(),
               &di);
        for (size_t j = 0; j < d; j++) {
            for (size_t i = 0; i <= j; i++) {
                scatter[i + j * d] += block_scatter[i + j * d];
            }
        }
    }
    return scatter;
}

// Eigenvalues of the symmetric matrix whose upper triangle is in cov, largest
// first, clamped at 0: a covariance has none below, and the float rounding of
// ssyevd produces tiny negative ones for rank-deficient samples. With
// `vectors`, also its eigenvectors as the rows of a d x d row-major matrix,
// in the same order.
std::vector<float> descending_eigenvalues(
        size_t d,
        const std::vector<double>& cov,
        std::vector<float>* vectors = nullptr) {
    std::vector<float> a(cov.begin(), cov.end());
    std::vector<float> w(d);
    const char* jobz = vectors ? "V" : "N";
    FINTEGER di = FINTEGER(d), info = 0;
    FINTEGER lwork = -1, liwork = -1, iwork_size = 0;
    float work_size = 0;
    ssyevd_(jobz,
            "U",
            &di,
            a.data(),
            &di,
            w.data(),
            &work_size,
            &lwork,
            &iwork_size,
            &liwork,
            &info);
    FAISS_THROW_IF_NOT_FMT(info == 0, "ssyevd workspace query: info=%d", info);
    lwork = FINTEGER(work_size);
    liwork = iwork_size;
    std::vector<float> work(lwork);
    std::vector<FINTEGER> iwork(liwork);
    ssyevd_(jobz,
            "U",
            &di,
            a.data(),
            &di,
            w.data(),
            work.data(),
            &lwork,
            iwork.data(),
            &liwork,
            &info);
    FAISS_THROW_IF_NOT_FMT(info == 0, "ssyevd (d=%zu): info=%d", d, info);
    std::reverse(w.begin(), w.end());
    for (float& lambda : w) {
        lambda = std::max(lambda, 0.0f);
    }
    if (vectors) {
        // Column k of the column-major result is the k-th smallest
        // eigenvector, i.e. row d - 1 - k of ours.
        vectors->resize(d * d);
        for (size_t k = 0; k < d; k++) {
            std::copy_n(a.data() + k * d, d, vectors->data() + (d - 1 - k) * d);
        }
    }
    return w;
}

// Share of the squared Frobenius norm of the correlation matrix (restricted
// to non-constant coordinates) that lies off its diagonal.
float offdiag_energy_of(
        size_t d,
        const std::vector<double>& cov,
        const std::vector<double>& sigma,
        const std::vector<bool>& constant) {
    std::vector<size_t> live;
    for (size_t j = 0; j < d; j++) {
        if (!constant[j]) {
            live.push_back(j);
        }
    }
    if (live.size() < 2) {
        return 0;
    }
    double off = 0;
    for (size_t b = 1; b < live.size(); b++) {
        const size_t j = live[b];
        for (size_t a = 0; a < b; a++) {
            const size_t i = live[a];
            const double rho = cov[i + j * d] / (sigma[i] * sigma[j]);
            off += 2 * rho * rho;
        }
    }
    return float(off / (live.size() + off));
}

[[gnu::format(printf, 2, 3)]] void appendf(
        std::string& out,
        const char* fmt,
        ...) {
    va_list args;
    va_start(args, fmt);
    va_list size_args;
    va_copy(size_args, args);
    const int size = std::vsnprintf(nullptr, 0, fmt, size_args);
    va_end(size_args);
    std::string line(size_t(size) + 1, '\0');
    std::vsnprintf(line.data(), line.size(), fmt, args);
    va_end(args);
    line.pop_back();
    out += line;
}

} // namespace

double DatasetAnalysis::total_variance() const {
    double sum = 0;
    for (float s : sigma) {
        sum += double(s) * s;
    }
    return sum;
}

DatasetAnalysis analyze(size_t n, size_t d, const float* x) {
    FAISS_THROW_IF_NOT_FMT(
            n >= 2, "analyze needs n >= 2 vectors, got n=%zu", n);
    FAISS_THROW_IF_NOT_FMT(
            d > 0 && d <= size_t(INT_MAX),
            "analyze needs 0 < d <= %d, got d=%zu",
            INT_MAX,
            d);
    FAISS_THROW_IF_NOT_FMT(x, "analyze: x is null (n=%zu, d=%zu)", n, d);

    DatasetAnalysis a;
    a.n = n;
    a.d = d;

    std::vector<double> sum(d);
    std::vector<size_t> n_nonneg(d);
    std::vector<float> max_abs(d);
    parallel_over_column_blocks(d, [&](size_t j0, size_t j1) {
        double s[kBlockCols] = {};
        size_t pos[kBlockCols] = {};
        float mx[kBlockCols] = {};
        for (size_t i = 0; i < n; i++) {
            const float* row = x + i * d;
            for (size_t j = j0; j < j1; j++) {
                s[j - j0] += row[j];
                pos[j - j0] += row[j] >= 0;
                mx[j - j0] = std::max(mx[j - j0], std::fabs(row[j]));
            }
        }
        std::copy(s, s + (j1 - j0), sum.begin() + j0);
        std::copy(pos, pos + (j1 - j0), n_nonneg.begin() + j0);
        std::copy(mx, mx + (j1 - j0), max_abs.begin() + j0);
    });

    // A double sum of floats cannot overflow (n * FLT_MAX << DBL_MAX), so it
    // is non-finite exactly when one of its terms is: only then look for the
    // first culprit.
    if (!std::all_of(sum.begin(), sum.end(), [](double s) {
            return std::isfinite(s);
        })) {
        for (size_t i = 0; i < n; i++) {
            for (size_t j = 0; j < d; j++) {
                const float v = x[i * d + j];
                FAISS_THROW_IF_NOT_FMT(
                        std::isfinite(v),
                        "analyze: x holds %f at row %zu, column %zu "
                        "(n=%zu, d=%zu)",
                        v,
                        i,
                        j,
                        n,
                        d);
            }
        }
    }

    std::vector<double> mean(d);
    a.mean.resize(d);
    a.positive_fraction.resize(d);
    for (size_t j = 0; j < d; j++) {
        mean[j] = sum[j] / n;
        a.mean[j] = float(mean[j]);
        a.positive_fraction[j] = float(double(n_nonneg[j]) / n);
    }

    std::vector<double> m2(d), m4(d);
    std::vector<size_t> n_above_mean(d);
    parallel_over_column_blocks(d, [&](size_t j0, size_t j1) {
        double s2[kBlockCols] = {};
        double s4[kBlockCols] = {};
        size_t above[kBlockCols] = {};
        for (size_t i = 0; i < n; i++) {
            const float* row = x + i * d;
            for (size_t j = j0; j < j1; j++) {
                const double dev = row[j] - mean[j];
                const double dev2 = dev * dev;
                s2[j - j0] += dev2;
                s4[j - j0] += dev2 * dev2;
                above[j - j0] += row[j] >= a.mean[j];
            }
        }
        for (size_t j = j0; j < j1; j++) {
            m2[j] = s2[j - j0] / n;
            m4[j] = s4[j - j0] / n;
            n_above_mean[j] = above[j - j0];
        }
    });

    // Constant at float precision: a spread within the rounding of the
    // coordinate's own values (a rounded constant), or a variance below float
    // resolution beside the largest one (its terms vanish in the rounding of
    // any float distance; all-MiniLM-L6-v2 has three such dead coordinates,
    // sigma 1e-7 to 1e-31 of the largest, while its live ones are above 0.3).
    // Dividing by such a sigma would turn rounding into kurtosis and
    // correlations. It gets sigma 0, so that sigma_j == 0 is what n_constant
    // counts and the variance sums leave the rounding out.
    double var_largest = 0;
    for (size_t j = 0; j < d; j++) {
        var_largest = std::max(var_largest, m2[j]);
    }
    std::vector<bool> constant(d);
    std::vector<double> sigma(d);
    a.sigma.resize(d);
    a.positive_fraction_centered.resize(d);
    a.excess_kurtosis.resize(d);
    double kurtosis_sum = 0;
    for (size_t j = 0; j < d; j++) {
        a.positive_fraction_centered[j] = float(double(n_above_mean[j]) / n);
        constant[j] = std::sqrt(m2[j]) <= FLT_EPSILON * max_abs[j] ||
                m2[j] <= FLT_EPSILON * var_largest;
        if (constant[j]) {
            m2[j] = 0;
            a.n_constant++;
        } else {
            a.excess_kurtosis[j] = float(m4[j] / (m2[j] * m2[j]) - 3);
            kurtosis_sum += a.excess_kurtosis[j];
        }
        sigma[j] = std::sqrt(m2[j]);
        a.sigma[j] = float(sigma[j]);
    }
    if (a.n_constant < d) {
        a.mean_excess_kurtosis = float(kurtosis_sum / (d - a.n_constant));
    }

    double sigma_sum = 0, mean_sq = 0, trace = 0;
    for (size_t j = 0; j < d; j++) {
        sigma_sum += sigma[j];
        mean_sq += mean[j] * mean[j];
        trace += m2[j];
    }
    const double sigma_mean = sigma_sum / d;
    if (sigma_mean > 0) {
        double var = 0;
        for (size_t j = 0; j < d; j++) {
            var += (sigma[j] - sigma_mean) * (sigma[j] - sigma_mean);
        }
        a.cv_sigma = float(std::sqrt(var / d) / sigma_mean);
    }
    // E|x|^2 = |mean|^2 + tr(Sigma), from the same sums as the rest.
    if (mean_sq + trace > 0) {
        a.mean_offset_ratio = float(mean_sq / (mean_sq + trace));
    }
    a.sign_entropy_bits = float(mean_binary_entropy_bits(a.positive_fraction));
    a.sign_entropy_centered_bits =
            float(mean_binary_entropy_bits(a.positive_fraction_centered));

    std::vector<double> cov = centred_scatter(n, d, x, mean);
    for (double& c : cov) {
        c /= n;
    }
    a.eigenvalues = descending_eigenvalues(d, cov);
    double lambda_sum = 0, lambda_sq = 0;
    for (float lambda : a.eigenvalues) {
        lambda_sum += lambda;
        lambda_sq += double(lambda) * lambda;
    }
    if (lambda_sq > 0) {
        a.effective_rank = float(lambda_sum * lambda_sum / lambda_sq);
    }
    a.offdiag_energy = offdiag_energy_of(d, cov, sigma, constant);
    return a;
}

std::string DatasetAnalysis::report() const {
    if (d == 0) {
        return "dataset analysis: empty (analyze() has not run)\n";
    }
    std::string out;
    appendf(out, "dataset analysis: n=%zu vectors, d=%zu\n", n, d);

    appendf(out, "  mean offset |mean|^2 / E|x|^2 = %.3f\n", mean_offset_ratio);
    if (mean_offset_ratio >= kLargeOffset) {
        out += "    -> uncentred sign bits are nearly constant on many "
               "coordinates; centring recommended for estimators with "
               "per-vector factors\n";
    } else {
        out += "    -> small: centring may cost more than it brings "
               "(measure)\n";
    }

    double sigma_sum = 0, sigma_min = HUGE_VAL, sigma_max = 0;
    for (float s : sigma) {
        sigma_sum += s;
        sigma_min = std::min<double>(sigma_min, s);
        sigma_max = std::max<double>(sigma_max, s);
    }
    appendf(out,
            "  scales: sigma mean %.4g, min %.4g, max %.4g; CV(sigma) %.3f; "
            "total variance %.4g\n",
            sigma_sum / d,
            sigma_min,
            sigma_max,
            cv_sigma,
            total_variance());
    if (cv_sigma >= kHeterogeneousScales) {
        out += "    -> heterogeneous scales: Hamming overweights "
               "low-variance coordinates; a rotation evens them "
               "(per-coordinate levels under an asymmetric estimator do "
               "not need it)\n";
    }

    // Statistics over the non-constant coordinates, which analyze() marks
    // with sigma > 0.
    size_t n_live = 0;
    double live_entropy = 0;
    float kurtosis_max = 0;
    for (size_t j = 0; j < d; j++) {
        if (sigma[j] > 0) {
            kurtosis_max = n_live == 0
                    ? excess_kurtosis[j]
                    : std::max(kurtosis_max, excess_kurtosis[j]);
            live_entropy += binary_entropy_bits(positive_fraction_centered[j]);
            n_live++;
        }
    }
    if (n_live > 0) {
        live_entropy /= n_live;
    }

    appendf(out,
            "  sign bits: mean entropy %.3f bits at 0, %.3f bits at the "
            "mean\n",
            sign_entropy_bits,
            sign_entropy_centered_bits);
    const size_t unbalanced = count_unbalanced(positive_fraction);
    const size_t unbalanced_centered =
            count_unbalanced(positive_fraction_centered);
    appendf(out,
            "    coordinates split worse than %.0f/%.0f: %zu of %zu (%.0f%%) "
            "at 0, %zu (%.0f%%) at the mean\n",
            100 * kUnbalancedLow,
            100 * kUnbalancedHigh,
            unbalanced,
            d,
            100.0 * unbalanced / d,
            unbalanced_centered,
            100.0 * unbalanced_centered / d);

    appendf(out,
            "  tails: excess kurtosis mean %.2f, max %.2f over %zu "
            "non-constant coordinates (Gaussian 0, Laplace 3)\n",
            mean_excess_kurtosis,
            kurtosis_max,
            n_live);
    if (mean_excess_kurtosis >= kHeavyTails) {
        out += "    -> heavy tails: 1 bit keeps less energy than for a "
               "Gaussian (Laplace 1/2, Gaussian 2/pi); a rotation "
               "Gaussianises them\n";
    } else if (mean_excess_kurtosis <= kLightTails) {
        out += "    -> light tails or bimodal coordinates: 1 bit keeps more "
               "energy than for a Gaussian; a rotation would mix that away "
               "(keep the axes)\n";
    }

    double lambda_total = 0;
    for (float lambda : eigenvalues) {
        lambda_total += lambda;
    }
    const size_t n_top = std::max<size_t>(1, size_t(std::ceil(kTopShare * d)));
    double top_share = 0;
    if (lambda_total > 0) {
        double cumulative = 0;
        size_t n_for_90 = 0;
        for (size_t k = 0; k < eigenvalues.size(); k++) {
            cumulative += eigenvalues[k];
            if (k < n_top) {
                top_share = cumulative / lambda_total;
            }
            if (n_for_90 == 0 && cumulative >= 0.9 * lambda_total) {
                n_for_90 = k + 1;
            }
        }
        out += "  spectrum: top eigenvalues";
        for (size_t k = 0; k < std::min<size_t>(8, eigenvalues.size()); k++) {
            appendf(out, " %.4g", eigenvalues[k]);
        }
        appendf(out,
                "%s\n    top %.0f%% of the components (%zu of %zu) hold "
                "%.1f%% of the variance; 90%% of it needs %zu\n",
                eigenvalues.size() > 8 ? " ..." : "",
                100 * kTopShare,
                n_top,
                d,
                100 * top_share,
                n_for_90);
    } else {
        out += "  spectrum: all eigenvalues 0 (no variance)\n";
    }

    // Sampling alone lowers the effective rank and raises the correlations:
    // for independent coordinates E|C|_F^2 = Q + (T^2 - Q) / n with
    // T = sum sigma^2 and Q = sum sigma^4, and each of the m (m - 1)
    // squared correlations is about 1/n.
    double sigma4 = 0;
    for (float s : sigma) {
        sigma4 += double(s) * s * s * s;
    }
    const double trace = total_variance();
    const double independent_rank = sigma4 > 0
            ? trace * trace / (sigma4 + (trace * trace - sigma4) / n)
            : 0;
    appendf(out,
            "  effective rank %.1f of %zu (independent coordinates with "
            "these sigmas at this n: %.1f)\n",
            effective_rank,
            d,
            independent_rank);
    if (effective_rank < kLowRank * independent_rank) {
        out += "    -> the energy sits in few directions; a PCA basis with "
               "more bits in its top components beats bits spread evenly\n";
    }
    // offdiag_energy = S / (m + S) with S the off-diagonal sum, so S / m,
    // the squared correlations of one coordinate with all others, is:
    const double per_coordinate = offdiag_energy / (1 - offdiag_energy);
    const double noise = n_live > 1 ? double(n_live - 1) / n : 0;
    appendf(out,
            "  off-diagonal correlation energy %.3f (per coordinate %.3f, "
            "sampling noise at this n %.3f)\n",
            offdiag_energy,
            per_coordinate,
            noise);
    if (per_coordinate - noise >= kCorrelatedEnergy) {
        out += "    -> correlated coordinates: sign bits partly repeat one "
               "another; a rotation gives each bit its own direction (the "
               "held-out check measures whether that pays)\n";
    } else if (
            n_live > 1 && per_coordinate - noise < kIsotropicEnergy &&
            cv_sigma < kHeterogeneousScales) {
        out += "    -> near-isotropic covariance: every orthogonal transform "
               "is equivalent; identity is cheapest\n";
    }

    appendf(out,
            "  constant coordinates: %zu (no information; left out of "
            "kurtosis and correlations)\n",
            n_constant);

    const double balanced_bits = binary_entropy_bits(kUnbalancedLow);
    if (n_live > 0 && live_entropy < balanced_bits) {
        appendf(out,
                "  warning: sign bits stay unbalanced after centring (mean "
                "entropy %.2f bits over the non-constant coordinates, below "
                "the %.2f of a %.0f/%.0f split): skewed or sparse marginals, "
                "not Gaussian-like; 1-bit signs keep little (measure median "
                "or Lloyd-Max thresholds, 2 bits)\n",
                live_entropy,
                balanced_bits,
                100 * kUnbalancedLow,
                100 * kUnbalancedHigh);
    }
    if (top_share >= kConcentrated) {
        appendf(out,
                "  warning: %.0f%% of the variance in the top %zu of %zu "
                "components: not the spread spectrum of a contrastive "
                "embedding; bits spread evenly mostly encode noise\n",
                100 * top_share,
                n_top,
                d);
    }
    if (n < d) {
        appendf(out,
                "  warning: n=%zu < d=%zu: at most n - 1 eigenvalues are "
                "non-zero; the spectrum and correlations are dominated by "
                "sampling\n",
                n,
                d);
    }
    return out;
}

std::vector<float> principal_axes(size_t n, size_t d, const float* x) {
    FAISS_THROW_IF_NOT_FMT(
            n >= d && d > 0,
            "principal_axes: n=%zu training vectors < d=%zu: the covariance is "
            "rank-deficient and its principal axes are ill-posed",
            n,
            d);
    std::vector<double> mean(d, 0.0);
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < d; j++) {
            mean[j] += x[i * d + j];
        }
    }
    for (double& m : mean) {
        m /= double(n);
    }
    std::vector<double> cov = centred_scatter(n, d, x, mean);
    std::vector<float> axes;
    descending_eigenvalues(d, cov, &axes);
    return axes;
}

CovarianceSpectrum covariance_spectrum(size_t n, size_t d, const float* x) {
    FAISS_THROW_IF_NOT_FMT(
            n >= 2 && d > 0 && d <= size_t(INT_MAX),
            "covariance_spectrum needs n >= 2 and 0 < d <= %d, "
            "got n=%zu, d=%zu",
            INT_MAX,
            n,
            d);
    std::vector<double> mean(d, 0.0);
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < d; j++) {
            mean[j] += x[i * d + j];
        }
    }
    CovarianceSpectrum s;
    s.d = d;
    s.mean.resize(d);
    for (size_t j = 0; j < d; j++) {
        mean[j] /= double(n);
        s.mean[j] = float(mean[j]);
    }
    std::vector<double> cov = centred_scatter(n, d, x, mean);
    for (double& c : cov) {
        c /= double(n);
    }
    s.eigenvalues = descending_eigenvalues(d, cov, &s.axes);
    return s;
}

} // namespace faiss_bq
