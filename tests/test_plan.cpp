// fit_plan: Lloyd-Max against known optimal quantizers, the transform, and
// the sign-bit special case.
#include <faiss_bq/codes.h>
#include <faiss_bq/plan.h>

#include "test_util.h"

#include <faiss/impl/FaissException.h>
#include <faiss/utils/hamming.h>

#include <gtest/gtest.h>

#include <cmath>

namespace faiss_bq {
namespace {

// Max's (1960) optimal quantizers of N(0, 1): 1 bit, levels +-sqrt(2/pi);
// 2 bits, thresholds 0, +-0.9816 and levels +-0.4528, +-1.510. With 20k
// samples per coordinate, sample noise on a level is ~ sigma / sqrt(5000) ~
// 0.015; 0.03 is two of those.
TEST(Plan, LloydMaxMatchesMaxsGaussianQuantizers) {
    const size_t n = 20000, d = 4;
    const std::vector<float> x = test::gaussian(n, d, 7);
    const BinarizationPlan p1 =
            fit_plan(n, d, x.data(), 1, Transform::identity, true, 0);
    const BinarizationPlan p2 =
            fit_plan(n, d, x.data(), 2, Transform::identity, true, 0);
    for (size_t j = 0; j < d; j++) {
        EXPECT_NEAR(p1.level(j, 0), -std::sqrt(2 / M_PI), 0.03);
        EXPECT_NEAR(p1.level(j, 1), std::sqrt(2 / M_PI), 0.03);
        const float* t = p2.thresholds.data() + j * 3;
        EXPECT_NEAR(t[0], -0.9816, 0.03);
        EXPECT_NEAR(t[1], 0.0, 0.03);
        EXPECT_NEAR(t[2], 0.9816, 0.03);
        EXPECT_NEAR(p2.level(j, 0), -1.510, 0.03);
        EXPECT_NEAR(p2.level(j, 1), -0.4528, 0.03);
        EXPECT_NEAR(p2.level(j, 2), 0.4528, 0.03);
        EXPECT_NEAR(p2.level(j, 3), 1.510, 0.03);
    }
}

// Uncentred, 1 bit: the threshold is pinned at 0, so the bits are exactly
// FAISS's sign bits (fvec2bitvec: x >= 0, LSB-first).
TEST(Plan, UncentredOneBitIsFaissSignBits) {
    const size_t n = 500, d = 77;
    std::vector<float> mean(d), sigma(d, 1.f);
    for (size_t j = 0; j < d; j++) {
        mean[j] = 0.5f * std::sin(float(j)); // some offset: thresholds stay 0
    }
    const std::vector<float> x = test::gaussian(n, d, 3, sigma, mean);
    const BinarizationPlan p =
            fit_plan(n, d, x.data(), 1, Transform::identity, false, 0);
    const CodeLayout layout(d, 1);
    std::vector<uint8_t> codes(n * layout.code_size);
    encode(p, n, x.data(), codes.data());
    std::vector<uint8_t> faiss_bits(layout.plane_bytes);
    for (size_t i = 0; i < n; i++) {
        faiss::fvec2bitvec(x.data() + i * d, faiss_bits.data(), d);
        ASSERT_EQ(
                0,
                std::memcmp(
                        faiss_bits.data(),
                        codes.data() + i * layout.code_size,
                        layout.plane_bytes))
                << "row " << i;
    }
}

// Centring subtracts the sample mean; the rotation is orthogonal, seeded,
// and apply_inverse undoes apply.
TEST(Plan, TransformIsOrthogonalSeededAndInvertible) {
    const size_t n = 300, d = 33;
    const std::vector<float> x = test::gaussian(n, d, 11);
    const BinarizationPlan a =
            fit_plan(n, d, x.data(), 1, Transform::random_rotation, true, 5);
    const BinarizationPlan b =
            fit_plan(n, d, x.data(), 1, Transform::random_rotation, true, 5);
    const BinarizationPlan c =
            fit_plan(n, d, x.data(), 1, Transform::random_rotation, true, 6);
    EXPECT_EQ(a.rotation, b.rotation);
    EXPECT_NE(a.rotation, c.rotation);
    for (size_t i = 0; i < d; i++) {
        for (size_t k = 0; k < d; k++) {
            double dot = 0;
            for (size_t j = 0; j < d; j++) {
                dot += double(a.rotation[i * d + j]) * a.rotation[k * d + j];
            }
            EXPECT_NEAR(dot, i == k ? 1.0 : 0.0, 1e-5);
        }
    }
    std::vector<float> y(n * d), back(n * d);
    a.apply(n, x.data(), y.data());
    a.apply_inverse(n, y.data(), back.data());
    for (size_t i = 0; i < n * d; i++) {
        EXPECT_NEAR(back[i], x[i], 1e-4);
    }
    // Under a rotation every coordinate shares one quantizer.
    for (size_t j = 1; j < d; j++) {
        EXPECT_EQ(a.level(j, 0), a.level(0, 0));
        EXPECT_EQ(a.level(j, 1), a.level(0, 1));
    }
}

// A constant coordinate: thresholds and levels at its value, no NaN.
TEST(Plan, ConstantCoordinateIsReconstructedExactly) {
    const size_t n = 200, d = 5;
    std::vector<float> x = test::gaussian(n, d, 2);
    for (size_t i = 0; i < n; i++) {
        x[i * d + 3] = 2.5f;
    }
    for (int nbits : {1, 2}) {
        for (bool centred : {false, true}) {
            const BinarizationPlan p = fit_plan(
                    n, d, x.data(), nbits, Transform::identity, centred, 0);
            for (float v : p.levels) {
                EXPECT_TRUE(std::isfinite(v));
            }
            const float c = p.center[3];
            const int q = p.quantize(3, 2.5f - c);
            EXPECT_FLOAT_EQ(p.level(3, q) + c, 2.5f)
                    << "nbits " << nbits << " centred " << centred;
        }
    }
}

TEST(Plan, RejectsBadArguments) {
    const std::vector<float> x = test::gaussian(10, 4, 1);
    for (int nbits : {0, 5, -1}) {
        try {
            fit_plan(10, 4, x.data(), nbits, Transform::identity, true, 0);
            FAIL() << "nbits " << nbits << " accepted";
        } catch (const faiss::FaissException& e) {
            EXPECT_NE(
                    std::string(e.what()).find(
                            "nbits=" + std::to_string(nbits)),
                    std::string::npos)
                    << e.what();
        }
    }
    EXPECT_THROW(
            fit_plan(0, 4, x.data(), 1, Transform::identity, true, 0),
            faiss::FaissException);
}

TEST(Plan, ReportNamesTheChoice) {
    const std::vector<float> x = test::gaussian(100, 8, 1);
    const BinarizationPlan p =
            fit_plan(100, 8, x.data(), 2, Transform::random_rotation, true, 42);
    const std::string r = p.report();
    EXPECT_NE(r.find("2 bits"), std::string::npos) << r;
    EXPECT_NE(r.find("random_rotation"), std::string::npos) << r;
    EXPECT_NE(r.find("seed 42"), std::string::npos) << r;
    EXPECT_EQ(BinarizationPlan().report(), "BinarizationPlan: untrained\n");
}

} // namespace
} // namespace faiss_bq
