// fit_compatible_map: a new model's space mapped onto an old index's, from
// paired rows; recovered exactly when the new model is a rotation of the old
// (plus noise dimensions), FAISS's LinearTransform contract, bad input.
#include <faiss_bq/compat_map.h>

#include "test_util.h"

#include <faiss/IndexFlat.h>
#include <faiss/IndexPreTransform.h>
#include <faiss/impl/FaissException.h>
#include <faiss/impl/io.h>
#include <faiss/index_io.h>

#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <random>
#include <vector>

namespace faiss_bq {
namespace {

constexpr size_t n = 3000;
constexpr int d_old = 24;

/// A random orthogonal d x d matrix (row-major), from FAISS's own rotation.
std::vector<float> rotation(int d, int seed) {
    faiss::RandomRotationMatrix rr(d, d);
    rr.init(seed);
    return rr.A;
}

/// The "new model": x_new = [R x_old + shift + noise, extra coordinates
/// unrelated to the old space].
std::vector<float> new_model(
        const std::vector<float>& x_old,
        const std::vector<float>& R,
        int extra,
        float noise) {
    const int d_new = d_old + extra;
    std::mt19937 rng(5);
    std::normal_distribution<float> g(0, 1);
    std::vector<float> x(n * d_new);
    for (size_t i = 0; i < n; i++) {
        for (int r = 0; r < d_old; r++) {
            double v = 0.5 + noise * g(rng);
            for (int c = 0; c < d_old; c++) {
                v += R[r * d_old + c] * x_old[i * d_old + c];
            }
            x[i * d_new + r] = float(v);
        }
        for (int e = 0; e < extra; e++) {
            x[i * d_new + d_old + e] =
                    0.3f * g(rng); // unrelated to the old space
        }
    }
    return x;
}

TEST(CompatMap, RecoversARotationWithEitherFit) {
    const auto x_old = test::gaussian(n, d_old, 1);
    const auto R = rotation(d_old, 3);
    for (int extra : {0, 8}) { // the new space as large, or larger
        const int d_new = d_old + extra;
        const auto x_new = new_model(x_old, R, extra, 1e-3f);
        for (MapFit fit : {MapFit::orthogonal, MapFit::least_squares}) {
            std::unique_ptr<faiss::LinearTransform> map(fit_compatible_map(
                    n,
                    d_new,
                    x_new.data(),
                    n,
                    d_old,
                    x_old.data(),
                    fit,
                    true,
                    1e-6f));
            ASSERT_EQ(map->d_in, d_new);
            ASSERT_EQ(map->d_out, d_old);
            // A = [R^T, 0]: the rotation undone, the noise coordinates dropped
            for (int r = 0; r < d_old; r++) {
                for (int c = 0; c < d_new; c++) {
                    const float want = c < d_old ? R[c * d_old + r] : 0.f;
                    ASSERT_NEAR(map->A[r * d_new + c], want, 2e-2)
                            << map_fit_name(fit) << " extra " << extra << " A("
                            << r << ", " << c << ")";
                }
            }
            std::vector<float> mapped(n * d_old);
            map->apply_noalloc(n, x_new.data(), mapped.data());
            double err = 0, norm = 0;
            for (size_t i = 0; i < mapped.size(); i++) {
                err += double(mapped[i] - x_old[i]) * (mapped[i] - x_old[i]);
                norm += double(x_old[i]) * x_old[i];
            }
            EXPECT_LT(err / norm, 1e-4)
                    << map_fit_name(fit) << " extra " << extra;
        }
    }
}

TEST(CompatMap, IsFaissLinearTransformInAPreTransformAndAFile) {
    const auto x_old = test::gaussian(n, d_old, 1);
    const auto x_new = new_model(x_old, rotation(d_old, 4), 4, 1e-2f);
    const int d_new = d_old + 4;
    std::unique_ptr<faiss::LinearTransform> map(
            fit_compatible_map(n, d_new, x_new.data(), n, d_old, x_old.data()));
    // the old index, searched by the new model's rows through the map
    auto* flat =
            new faiss::IndexFlatL2(d_old); // the nearest old row is its own
    flat->add(n, x_old.data());
    faiss::IndexPreTransform pre(new faiss::LinearTransform(*map), flat);
    pre.own_fields = true;
    const size_t nq = 50;
    std::vector<float> D(nq);
    std::vector<faiss::Index::idx_t> I(nq);
    pre.search(nq, x_new.data(), 1, D.data(), I.data());
    size_t self = 0;
    for (size_t q = 0; q < nq; q++) {
        self += I[q] == faiss::Index::idx_t(q);
    }
    EXPECT_GE(self, nq * 9 / 10) << "each item's new row finds its old row";
    // FAISS writes and reads it as any LinearTransform
    faiss::VectorIOWriter w;
    faiss::write_VectorTransform(map.get(), &w);
    faiss::VectorIOReader r;
    r.data = w.data;
    std::unique_ptr<faiss::VectorTransform> back(
            faiss::read_VectorTransform(&r));
    auto* lt = dynamic_cast<faiss::LinearTransform*>(back.get());
    ASSERT_TRUE(lt);
    EXPECT_EQ(lt->A, map->A);
    EXPECT_EQ(lt->b, map->b);
}

TEST(CompatMap, BadInputNamesTheValues) {
    const auto x = test::gaussian(100, 8, 1);
    auto message = [](auto f) {
        try {
            f();
        } catch (const faiss::FaissException& e) {
            return std::string(e.what());
        }
        return std::string("no exception");
    };
    auto has = [](const std::string& m, const char* s) {
        return m.find(s) != std::string::npos;
    };
    std::string m = message(
            [&] { fit_compatible_map(100, 8, x.data(), 99, 8, x.data()); });
    EXPECT_TRUE(has(m, "100 (new) and 99 (old) rows")) << m;
    m = message([&] { fit_compatible_map(0, 8, x.data(), 0, 8, x.data()); });
    EXPECT_TRUE(has(m, "0 paired rows")) << m;
    m = message(
            [&] { fit_compatible_map(100, 0, x.data(), 100, 8, x.data()); });
    EXPECT_TRUE(has(m, "d_new=0, d_old=8")) << m;
    std::vector<float> bad = x;
    bad[3 * 8 + 5] = NAN;
    m = message(
            [&] { fit_compatible_map(100, 8, bad.data(), 100, 8, x.data()); });
    EXPECT_TRUE(has(m, "new row 3, coordinate 5 is nan")) << m;
    m = message(
            [&] { fit_compatible_map(100, 8, x.data(), 100, 8, bad.data()); });
    EXPECT_TRUE(has(m, "old row 3, coordinate 5 is nan")) << m;
    m = message([&] {
        fit_compatible_map(
                100,
                8,
                x.data(),
                100,
                8,
                x.data(),
                MapFit::least_squares,
                true,
                -1);
    });
    EXPECT_TRUE(has(m, "ridge=-1")) << m;
    // fewer rows than dimensions without a ridge: singular
    m = message([&] {
        fit_compatible_map(
                4, 8, x.data(), 4, 8, x.data(), MapFit::least_squares, true, 0);
    });
    EXPECT_TRUE(has(m, "singular")) << m;
}

} // namespace
} // namespace faiss_bq
