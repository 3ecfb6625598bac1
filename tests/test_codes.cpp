// The code layout: sizes, bit positions, padding, factors, decode.
#include <faiss_bq/codes.h>

#include "test_util.h"

#include <faiss/impl/FaissException.h>

#include <gtest/gtest.h>

#include <cmath>

namespace faiss_bq {
namespace {

const int dims[] = {1, 7, 8, 9, 63, 64, 65, 127, 128, 129, 384, 512, 1024};

TEST(Codes, SizeFormula) {
    for (int d : dims) {
        for (int nbits : {1, 2}) {
            EXPECT_EQ(code_size(d, nbits), nbits * size_t((d + 7) / 8) + 12)
                    << "d " << d << " nbits " << nbits;
        }
    }
    EXPECT_EQ(code_size(512, 1), 76u); // 64 bytes of bits + 3 floats
    EXPECT_THROW(code_size(0, 1), faiss::FaissException);
    EXPECT_THROW(code_size(8, 3), faiss::FaissException);
}

/// Every bit, padding bit and factor of the codes of plan p on x.
void check_layout(
        const BinarizationPlan& p,
        size_t n,
        const std::vector<float>& x) {
    const size_t d = p.d;
    const CodeLayout layout(p.d, p.nbits);
    std::vector<uint8_t> codes(n * layout.code_size);
    encode(p, n, x.data(), codes.data());
    std::vector<float> y(n * d), e(n * d), s(n * d);
    p.apply(n, x.data(), y.data());
    estimate_vectors(p, n, codes.data(), e.data());
    code_values(layout, n, codes.data(), s.data());
    const int top = p.n_levels() - 1;
    for (size_t i = 0; i < n; i++) {
        const uint8_t* code = codes.data() + i * layout.code_size;
        double norm2 = 0, dot = 0, cdot = 0, rhat2 = 0;
        for (size_t j = 0; j < d; j++) {
            const int q = p.quantize(j, y[i * d + j]);
            ASSERT_EQ(layout.level_index(code, j), q)
                    << "d " << d << " j " << j;
            EXPECT_EQ(s[i * d + j], float(2 * q - top));
            norm2 += double(y[i * d + j]) * y[i * d + j];
            dot += double(p.level(j, q)) * y[i * d + j];
            rhat2 += double(p.level(j, q)) * p.level(j, q);
            cdot += double(x[i * d + j] - p.center[j]) * p.center[j];
        }
        // Padding bits of every plane are zero.
        for (int pl = 0; pl < p.nbits; pl++) {
            for (size_t j = d; j < 8 * layout.plane_bytes; j++) {
                ASSERT_EQ((layout.plane(code, pl)[j / 8] >> (j % 8)) & 1, 0);
            }
        }
        // Factors in float from double sums: relative 1e-5 covers rounding.
        EXPECT_NEAR(layout.residual_norm2(code), norm2, 1e-5 * norm2 + 1e-12);
        EXPECT_NEAR(
                layout.center_dot(code), cdot, 1e-5 * std::abs(cdot) + 1e-6);
        // A reconstruction (nearly) orthogonal to the residual has scale 0
        // (possible for tiny d, where one coordinate's cell straddles 0).
        const double a =
                dot > 1e-3 * std::sqrt(norm2 * rhat2) ? norm2 / dot : 0;
        EXPECT_NEAR(layout.estimate_scale(code), a, 1e-5 * a);
        for (size_t j = 0; j < d; j++) {
            const float want =
                    float(a) * p.level(j, layout.level_index(code, j));
            EXPECT_NEAR(e[i * d + j], want, 1e-5 * std::abs(want) + 1e-7);
        }
    }
}

TEST(Codes, LayoutForEveryDimension) {
    for (int d : dims) {
        const size_t n = 40;
        const std::vector<float> x = test::gaussian(n, d, d);
        for (int nbits : {1, 2}) {
            for (bool centred : {false, true}) {
                SCOPED_TRACE(
                        "d " + std::to_string(d) + " nbits " +
                        std::to_string(nbits) + " centred " +
                        std::to_string(centred));
                check_layout(
                        fit_plan(
                                n,
                                d,
                                x.data(),
                                nbits,
                                Transform::identity,
                                centred,
                                1),
                        n,
                        x);
            }
        }
        if (d <= 129) { // the rotation path is the same code for every d
            check_layout(
                    fit_plan(
                            n,
                            d,
                            x.data(),
                            2,
                            Transform::random_rotation,
                            true,
                            1),
                    n,
                    x);
        }
    }
}

// decode() is c + R^T (s r_hat) with the least-squares s: never farther from
// x than the centre is, and closer with 2 bits than with 1.
TEST(Codes, DecodeIsTheLeastSquaresReconstruction) {
    const size_t n = 500, d = 96;
    const std::vector<float> x = test::gaussian(n, d, 9);
    double err[3] = {0, 0, 0}, energy = 0;
    for (int nbits : {1, 2}) {
        for (Transform t : {Transform::identity, Transform::random_rotation}) {
            const BinarizationPlan p =
                    fit_plan(n, d, x.data(), nbits, t, true, 3);
            std::vector<uint8_t> codes(n * code_size(d, nbits));
            encode(p, n, x.data(), codes.data());
            std::vector<float> back(n * d);
            decode(p, n, codes.data(), back.data());
            double e = 0, c = 0;
            for (size_t i = 0; i < n * d; i++) {
                e += (back[i] - x[i]) * (back[i] - x[i]);
                c += (x[i] - p.center[i % d]) * (x[i] - p.center[i % d]);
            }
            EXPECT_LT(e, c);
            if (t == Transform::identity) {
                err[nbits] = e;
                energy = c;
            }
        }
    }
    // Gaussian coordinates: 1 bit keeps ~2/pi of the energy (error ~0.36),
    // 2 bits leave ~0.12 (Max 1960); generous bounds for n = 500.
    EXPECT_NEAR(err[1] / energy, 1 - 2 / M_PI, 0.05);
    EXPECT_NEAR(err[2] / energy, 0.1175, 0.03);
}

} // namespace
} // namespace faiss_bq
