#include <faiss_bq/compat_map.h>

#include <faiss_bq/impl/blas.h>

#include <faiss/impl/FaissAssert.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

namespace faiss_bq {

namespace {

/// The rows' mean (in double; zero without `centre`), and the rows minus it.
std::vector<float> centred(
        size_t n,
        int d,
        const float* x,
        bool centre,
        std::vector<double>& mean) {
    mean.assign(size_t(d), 0.0);
    for (size_t i = 0; centre && i < n; i++) {
        for (int j = 0; j < d; j++) {
            mean[j] += x[i * d + j];
        }
    }
    for (double& m : mean) {
        m /= double(n);
    }
    std::vector<float> c(n * size_t(d));
    for (size_t i = 0; i < n; i++) {
        for (int j = 0; j < d; j++) {
            c[i * d + j] = float(x[i * d + j] - mean[j]);
        }
    }
    return c;
}

/// Column-major C (ra x rb) = A^T B for row-major A (n x ra), B (n x rb).
std::vector<float> cross(
        size_t n,
        int ra,
        const float* a,
        int rb,
        const float* b) {
    std::vector<float> c(size_t(ra) * rb);
    FINTEGER m = ra, nn = rb, k = FINTEGER(n), lda = ra, ldb = rb, ldc = ra;
    float one = 1, zero = 0;
    sgemm_("N",
           "T",
           &m,
           &nn,
           &k,
           &one,
           a,
           &lda,
           b,
           &ldb,
           &zero,
           c.data(),
           &ldc);
    return c;
}

void check_finite(size_t n, int d, const float* x, const char* which) {
    for (size_t i = 0; i < n * size_t(d); i++) {
        FAISS_THROW_IF_NOT_FMT(
                std::isfinite(x[i]),
                "fit_compatible_map: %s row %zu, coordinate %zu is %g",
                which,
                i / size_t(d),
                i % size_t(d),
                double(x[i]));
    }
}

} // namespace

const char* map_fit_name(MapFit fit) {
    return fit == MapFit::orthogonal ? "orthogonal Procrustes"
                                     : "least squares";
}

faiss::LinearTransform* fit_compatible_map(
        size_t n_new,
        int d_new,
        const float* x_new,
        size_t n_old,
        int d_old,
        const float* x_old,
        MapFit fit,
        bool centre,
        float ridge) {
    FAISS_THROW_IF_NOT_FMT(
            n_new == n_old,
            "fit_compatible_map: the paired arrays have %zu (new) and %zu "
            "(old) rows; row i of each must embed the same item",
            n_new,
            n_old);
    FAISS_THROW_IF_NOT_FMT(
            n_new > 0, "fit_compatible_map: %zu paired rows", n_new);
    FAISS_THROW_IF_NOT_FMT(
            d_new >= 1 && d_old >= 1,
            "fit_compatible_map: dimensions d_new=%d, d_old=%d (need >= 1)",
            d_new,
            d_old);
    FAISS_THROW_IF_NOT_FMT(
            ridge >= 0 && std::isfinite(ridge),
            "fit_compatible_map: ridge=%g (need a finite value >= 0)",
            double(ridge));
    FAISS_THROW_IF_NOT_MSG(x_new && x_old, "fit_compatible_map: null array");
    check_finite(n_new, d_new, x_new, "new");
    check_finite(n_old, d_old, x_old, "old");
    const size_t n = n_new;

    std::vector<double> mean_new, mean_old;
    const std::vector<float> cn = centred(n, d_new, x_new, centre, mean_new);
    const std::vector<float> co = centred(n, d_old, x_old, centre, mean_old);
    // Both solves leave W (d_new x d_old, column-major) in w: then the
    // row-major A (d_old x d_new) of y = A x is the same buffer.
    std::vector<float> w = cross(n, d_new, cn.data(), d_old, co.data());
    FINTEGER info = 0;
    if (fit == MapFit::orthogonal) {
        // W = U V^T from the SVD of X_new^T X_old.
        FINTEGER m = d_new, nn = d_old, k = std::min(d_new, d_old);
        std::vector<float> s(static_cast<size_t>(k)),
                u(static_cast<size_t>(m) * k), vt(static_cast<size_t>(k) * nn);
        FINTEGER lwork = -1;
        float query = 0;
        sgesvd_("S",
                "S",
                &m,
                &nn,
                w.data(),
                &m,
                s.data(),
                u.data(),
                &m,
                vt.data(),
                &k,
                &query,
                &lwork,
                &info);
        lwork = FINTEGER(query);
        std::vector<float> work(size_t(std::max<FINTEGER>(lwork, 1)));
        sgesvd_("S",
                "S",
                &m,
                &nn,
                w.data(),
                &m,
                s.data(),
                u.data(),
                &m,
                vt.data(),
                &k,
                work.data(),
                &lwork,
                &info);
        FAISS_THROW_IF_NOT_FMT(
                info == 0,
                "fit_compatible_map: sgesvd failed (info=%d)",
                int(info));
        float one = 1, zero = 0;
        sgemm_("N",
               "N",
               &m,
               &nn,
               &k,
               &one,
               u.data(),
               &m,
               vt.data(),
               &k,
               &zero,
               w.data(),
               &m);
    } else {
        // (X_new^T X_new + lambda I) W = X_new^T X_old
        std::vector<float> g = cross(n, d_new, cn.data(), d_new, cn.data());
        double trace = 0;
        for (int j = 0; j < d_new; j++) {
            trace += g[size_t(j) * d_new + j];
        }
        const float lambda = float(ridge * trace / d_new);
        for (int j = 0; j < d_new; j++) {
            g[size_t(j) * d_new + j] += lambda > 0 ? lambda : 0;
        }
        FINTEGER m = d_new, nrhs = d_old;
        sposv_("U", &m, &nrhs, g.data(), &m, w.data(), &m, &info);
        FAISS_THROW_IF_NOT_FMT(
                info == 0,
                "fit_compatible_map: the new rows' covariance is singular "
                "(sposv info=%d; %zu rows at d_new=%d): raise the ridge",
                int(info),
                n,
                d_new);
    }
    auto map = std::make_unique<faiss::LinearTransform>(d_new, d_old, centre);
    map->A = std::move(w);
    map->b.resize(centre ? size_t(d_old) : 0);
    for (int i = 0; centre && i < d_old; i++) {
        double v = mean_old[i];
        for (int j = 0; j < d_new; j++) {
            v -= double(map->A[size_t(i) * d_new + j]) * mean_new[j];
        }
        map->b[i] = float(v);
    }
    map->is_trained = true;
    if (fit == MapFit::orthogonal && d_old <= d_new) {
        map->set_is_orthonormal(); // rows orthonormal: reverse_transform works
    }
    return map.release();
}

} // namespace faiss_bq
