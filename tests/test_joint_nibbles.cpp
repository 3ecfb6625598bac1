// Joint nibble codebooks (BinarizationPlan::joint_levels, fit_joint_codebooks):
// the fit, the encoder against a brute-force nearest codeword, determinism,
// the estimators that do and do not take them, and bad input.
#include <faiss_bq/IndexBQ.h>
#include <faiss_bq/IndexBQFastScan.h>
#include <faiss_bq/codes.h>
#include <faiss_bq/estimators.h>
#include <faiss_bq/kernels/kernels.h>
#include <faiss_bq/trainer.h>

#include "test_util.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <random>

namespace faiss_bq {
namespace {

using idx_t = faiss::Index::idx_t;

/// Rows whose coordinates come in groups of `group` that share a common
/// factor: coordinate j = s_j (sqrt(rho) z_{j / group} + sqrt(1 - rho)
/// e_j), so that the correlation within a group is rho, with unequal scales
/// s_j and an offset, as embeddings have.
std::vector<float> grouped(
        size_t n,
        size_t d,
        size_t group,
        float rho,
        int seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> g;
    std::vector<float> x(n * d);
    std::vector<float> z((d + group - 1) / group);
    for (size_t i = 0; i < n; i++) {
        for (float& v : z) {
            v = g(rng);
        }
        for (size_t j = 0; j < d; j++) {
            const float s = 0.5f + float(j % 7) / 6;
            x[i * d + j] = 0.2f * std::cos(float(j)) +
                    s *
                            (std::sqrt(rho) * z[j / group] +
                             std::sqrt(1 - rho) * g(rng));
        }
    }
    return x;
}

/// Plans with every nibble kind (4 x 1 bit, 2 x 2, 3 + 1, 2 + 1 + 1, lone
/// 3- and 4-bit coordinates), uniform and allocated, in three bases.
std::vector<BinarizationPlan> plans(
        size_t n,
        size_t d,
        const std::vector<float>& x) {
    std::vector<BinarizationPlan> out;
    out.push_back(fit_plan(n, d, x.data(), 1, Transform::identity, true, 1));
    out.push_back(fit_plan(n, d, x.data(), 1, Transform::identity, false, 1));
    out.push_back(
            fit_plan(n, d, x.data(), 2, Transform::random_rotation, true, 1));
    for (size_t bytes : {d / 8 + 1, d / 4, d / 2}) {
        for (Transform t : {Transform::identity, Transform::pca}) {
            out.push_back(
                    fit_allocated_plan(n, d, x.data(), t, bytes, 1, 0, true));
        }
    }
    return out;
}

std::string describe(const BinarizationPlan& p) {
    const std::vector<int> h = p.bits_histogram();
    return std::string(transform_name(p.transform)) +
            " bits 0-4: " + std::to_string(h[0]) + "/" + std::to_string(h[1]) +
            "/" + std::to_string(h[2]) + "/" + std::to_string(h[3]) + "/" +
            std::to_string(h[4]) + (p.centered ? " centred" : " uncentred");
}

// Every Lloyd step from the product of the scalar levels lowers the
// distortion on the fitting rows (a codeword without points stays put), so
// the joint plan's is at most the scalar plan's there. Unused values of a
// nibble (bits beyond its members') repeat the codeword of their used bits,
// and the same rows give the same codebooks, bit for bit.
TEST(JointNibbles, FitNeverRaisesTheFittingDistortion) {
    const size_t n = 800, d = 37;
    const auto x = grouped(n, d, 4, 0.5f, 1);
    for (const BinarizationPlan& scalar : plans(n, d, x)) {
        BinarizationPlan joint = scalar;
        fit_joint_codebooks(joint, n, x.data());
        ASSERT_TRUE(joint.is_joint());
        const double ds = scalar.distortion(n, x.data());
        const double dj = joint.distortion(n, x.data());
        EXPECT_LE(dj, ds * (1 + 1e-6)) << describe(scalar);
        std::printf(
                "%-40s distortion scalar %.4f joint %.4f\n",
                describe(scalar).c_str(),
                ds,
                dj);
        const NibbleLayout nl(joint);
        for (size_t k = 0; k < nl.n_nibbles; k++) {
            const int used = 1 << nl.used_bits(k);
            for (size_t m = nl.begin[k]; m < nl.begin[k + 1]; m++) {
                const int j = nl.members[m].coord;
                for (int v = used; v < 16; v++) {
                    ASSERT_EQ(
                            joint.joint_levels[j * 16 + v],
                            joint.joint_levels[j * 16 + (v & (used - 1))]);
                }
                if (nl.begin[k + 1] - nl.begin[k] == 1) { // kept scalar
                    for (int v = 0; v < used; v++) {
                        ASSERT_EQ(
                                joint.joint_levels[j * 16 + v],
                                scalar.level(j, v));
                    }
                }
            }
        }
        BinarizationPlan again = scalar;
        fit_joint_codebooks(again, n, x.data());
        EXPECT_EQ(again.joint_levels, joint.joint_levels) << describe(scalar);
    }
}

// Where the coordinates of a nibble depend on one another, joint codewords
// follow the dependence: at correlation 0.9 within pairs of 2-bit
// coordinates, a product grid spends most of its 16 cells off the diagonal
// the points lie along, and 16 codewords along it cut the error by more
// than half (measured 0.118 -> 0.047). Within quads of 1-bit coordinates the
// product grid has 16 corners for points that mostly lie near the line of
// their common factor (0.364 -> 0.073). The held-out rows (never fitted)
// show it is no over-fit; 0.75 leaves room for other seeds.
TEST(JointNibbles, DependentCoordinatesGainOnHeldOutRows) {
    const size_t n = 4000, d = 32;
    for (int nbits : {1, 2}) {
        const size_t group = nbits == 1 ? 4 : 2;
        const auto x = grouped(2 * n, d, group, 0.9f, 2);
        const float* held_out = x.data() + n * d;
        const BinarizationPlan scalar =
                fit_plan(n, d, x.data(), nbits, Transform::identity, true, 1);
        BinarizationPlan joint = scalar;
        fit_joint_codebooks(joint, n, x.data());
        const double ds = scalar.distortion(n, held_out);
        const double dj = joint.distortion(n, held_out);
        std::printf(
                "%d bit, groups of %zu at correlation 0.9: held-out distortion "
                "scalar %.4f joint %.4f\n",
                nbits,
                group,
                ds,
                dj);
        EXPECT_LT(dj, 0.75 * ds) << nbits << " bit";
    }
}

// The encoder picks, for each nibble, the codeword nearest to the
// transformed vector among the 2^used_bits in use (brute force here, in
// double), and the estimate is that reconstruction times estimate_scale.
TEST(JointNibbles, EncoderPicksTheNearestCodeword) {
    const size_t n = 600, d = 37;
    const auto x = grouped(n, d, 2, 0.6f, 3);
    const auto xe = grouped(50, d, 2, 0.6f, 4);
    for (BinarizationPlan plan : plans(n, d, x)) {
        fit_joint_codebooks(plan, n, x.data());
        const CodeLayout layout(plan);
        const NibbleLayout nl(plan);
        std::vector<uint8_t> codes(50 * layout.code_size);
        encode(plan, 50, xe.data(), codes.data());
        std::vector<float> y(50 * d), e(50 * d);
        plan.apply(50, xe.data(), y.data());
        estimate_vectors(plan, 50, codes.data(), e.data());
        for (size_t i = 0; i < 50; i++) {
            const uint8_t* code = codes.data() + i * layout.code_size;
            const float* yi = y.data() + i * d;
            for (size_t k = 0; k < nl.n_nibbles; k++) {
                auto err = [&](int v) {
                    double s = 0;
                    for (size_t m = nl.begin[k]; m < nl.begin[k + 1]; m++) {
                        const int j = nl.members[m].coord;
                        s += std::pow(
                                yi[j] - double(plan.joint_levels[j * 16 + v]),
                                2);
                    }
                    return s;
                };
                const int got = nl.code_nibble(layout, code, k);
                ASSERT_LT(got, 1 << nl.used_bits(k));
                for (int v = 0; v < (1 << nl.used_bits(k)); v++) {
                    // float rounding of near-equal distances aside
                    ASSERT_LE(err(got), err(v) + 1e-5 * (1 + err(v)))
                            << describe(plan) << " vector " << i << " nibble "
                            << k;
                }
                for (size_t m = nl.begin[k]; m < nl.begin[k + 1]; m++) {
                    const int j = nl.members[m].coord;
                    ASSERT_FLOAT_EQ(
                            e[i * d + j],
                            layout.estimate_scale(code) *
                                    plan.joint_levels[j * 16 + got]);
                }
            }
        }
    }
}

// IndexBQ scores a joint plan's codes with the float query only (the tables
// of its nibbles, gathered from the planes): equal, to float rounding, to the
// estimate from estimate_vectors; IndexBQFastScan's byte tables are within
// their rounding bound of it. The bit-plane estimators refuse the plan.
TEST(JointNibbles, EstimatorsAgreeAndRefuseWhatTheyCannotScore) {
    const size_t n = 1000, d = 40, nq = 5;
    const auto x = grouped(n, d, 4, 0.5f, 5);
    const auto q = grouped(nq, d, 4, 0.5f, 6);
    IndexBQFastScan fs(d, 1, faiss::METRIC_INNER_PRODUCT);
    fs.train(n, x.data());
    fs.add(n, x.data());
    ASSERT_TRUE(fs.plan.is_joint());
    const IndexBQ bq = fs.to_IndexBQ();
    const CodeLayout layout = bq.layout();
    std::vector<float> e(n * d), y(d), got(n);
    estimate_vectors(bq.plan, n, bq.codes.data(), e.data());
    QueryScorer scorer(
            bq.plan, faiss::METRIC_INNER_PRODUCT, Estimator::asymmetric, 0);
    FastScanScorer fast(fs.plan, faiss::METRIC_INNER_PRODUCT);
    const size_t nblocks = fs.codes.size() / fast.nibbles.block_bytes();
    std::vector<float> fast_scores(nblocks * kernels::fast_scan_block);
    for (size_t i = 0; i < nq; i++) {
        const float* qi = q.data() + i * d;
        bq.plan.apply(1, qi, y.data());
        scorer.set_query(qi);
        scorer.score_block(bq.codes.data(), n, got.data());
        fast.set_query(qi);
        fast.scan(
                fs.codes.data(),
                fs.factors.data(),
                nblocks,
                fast_scores.data());
        const double cq = test::dot(bq.plan.center.data(), qi, d);
        for (size_t j = 0; j < n; j++) {
            const uint8_t* code = bq.codes.data() + j * bq.code_size;
            const double ey = test::dot(e.data() + j * d, y.data(), d);
            const double want = cq + layout.center_dot(code) + ey;
            // d products summed in float, nibble by nibble
            const double tol = 4 * (d + 8) * FLT_EPSILON *
                    (std::abs(cq) + std::abs(layout.center_dot(code)) +
                     std::sqrt(
                             test::dot(e.data() + j * d, e.data() + j * d, d) *
                             test::dot(y.data(), y.data(), d)));
            ASSERT_NEAR(got[j], want, tol) << "query " << i << " vector " << j;
            ASSERT_LE(
                    std::abs(fast_scores[j] - got[j]),
                    std::abs(layout.estimate_scale(code)) * fast.max_error() +
                            1e-4 * (1 + std::abs(got[j])))
                    << "query " << i << " vector " << j;
        }
    }
    // The search is the scorer's top k.
    const idx_t k = 5;
    std::vector<float> D(k);
    std::vector<idx_t> I(k);
    bq.search(1, q.data(), k, D.data(), I.data());
    scorer.set_query(q.data());
    scorer.score_block(bq.codes.data(), n, got.data());
    std::vector<float> sorted(got);
    std::sort(sorted.rbegin(), sorted.rend());
    for (idx_t r = 0; r < k; r++) {
        EXPECT_FLOAT_EQ(D[r], sorted[r]);
        EXPECT_EQ(got[I[r]], D[r]);
    }

    using test::expect_throw_naming;
    expect_throw_naming(
            [&] {
                QueryScorer(
                        bq.plan, faiss::METRIC_L2, Estimator::asymmetric, 4);
            },
            "query_bits=4");
    expect_throw_naming(
            [&] {
                QueryScorer(bq.plan, faiss::METRIC_L2, Estimator::symmetric, 0);
            },
            "jointly");
    SearchParametersBQ sym;
    sym.estimator = Estimator::symmetric;
    expect_throw_naming(
            [&] { bq.search(1, q.data(), k, D.data(), I.data(), &sym); },
            "jointly");
    SearchParametersBQ q8;
    q8.query_bits = 8;
    expect_throw_naming(
            [&] { bq.search(1, q.data(), k, D.data(), I.data(), &q8); },
            "query_bits=8");
    std::vector<float> sigmas(k);
    expect_throw_naming(
            [&] {
                asymmetric_error_sigmas(
                        bq, 1, q.data(), k, I.data(), sigmas.data());
            },
            "jointly");
}

// With joint_nibbles every candidate is measured twice on the held-out
// rows, scalar and with joint nibbles (the twin right after it), and the
// better one is chosen like any candidate: the plan is joint exactly when
// the chosen candidate is, and none of the others measured better. At
// correlation 0.9 within quads the joint twins win clearly.
TEST(JointNibbles, TrainerWeighsEachCandidateScalarAndJoint) {
    const size_t n = 3000, d = 32;
    const auto x = grouped(n, d, 4, 0.9f, 8);
    for (size_t budget : {0, 8}) {
        TrainerOptions o;
        o.nbits = 1;
        o.budget_bytes = budget;
        o.metric = faiss::METRIC_INNER_PRODUCT;
        o.joint_nibbles = true;
        o.fast_scan_layout = budget > 0;
        // EDEN's candidates have no twin (Eden.BudgetAndFastScan)
        o.quantization = QuantizationChoice::lloyd_max;
        const BinarizationPlan plan = train_plan(n, d, x.data(), o);
        std::printf("%s", plan.report().c_str());
        std::vector<CandidateReport> c; // the reports of the estimator deciding
        for (const CandidateReport& r : plan.candidates) {
            if (r.estimator == Estimator::asymmetric) {
                c.push_back(r);
            } else {
                EXPECT_FALSE(r.joint)
                        << "joint plans have no symmetric estimator";
            }
        }
        ASSERT_EQ(c.size() % 2, 0u);
        const CandidateReport* chosen = nullptr;
        for (size_t i = 0; i < c.size(); i += 2) {
            EXPECT_FALSE(c[i].joint);
            EXPECT_TRUE(c[i + 1].joint);
            EXPECT_EQ(c[i].transform, c[i + 1].transform);
            EXPECT_EQ(c[i].centered, c[i + 1].centered);
            EXPECT_EQ(c[i].allocated, c[i + 1].allocated);
            for (const CandidateReport* r : {&c[i], &c[i + 1]}) {
                if (!chosen || r->heldout_recall > chosen->heldout_recall) {
                    chosen = r;
                }
            }
        }
        // no preference for a cheaper tied plan here: at a budget by rule,
        // and without one the best is joint and identity-based
        EXPECT_TRUE(chosen->joint) << "budget " << budget;
        EXPECT_TRUE(plan.is_joint()) << "budget " << budget;
        EXPECT_NE(plan.reason.find("/joint"), std::string::npos) << plan.reason;
    }
}

// A tie goes to the joint twin: at 4 bits per coordinate (a budget of d / 2
// bytes, uniform) every nibble is one coordinate, so the twin is the scalar
// plan itself and both measure the same; the joint one is chosen and the
// reason says why. On independent Gaussian coordinates at 2 bits, 16 points
// in 2-D beat the 4 x 4 grid (0.118 -> ~0.10 distortion) and the twin wins
// outright.
TEST(JointNibbles, TiesGoToTheJointTwin) {
    const size_t n = 3000, d = 32;
    const auto x = test::gaussian(n, d, 9);
    TrainerOptions o;
    o.transform = TransformChoice::identity;
    o.centering = CenteringChoice::centered;
    o.metric = faiss::METRIC_INNER_PRODUCT;
    o.joint_nibbles = true;
    o.budget_bytes = d / 2;
    o.allocation = AllocationChoice::uniform;
    o.quantization = QuantizationChoice::lloyd_max; // no EDEN candidate
    BinarizationPlan plan = train_plan(n, d, x.data(), o);
    ASSERT_EQ(plan.candidates.size(), 2u);
    EXPECT_EQ(
            plan.candidates[0].heldout_recall,
            plan.candidates[1].heldout_recall);
    EXPECT_TRUE(plan.is_joint());
    EXPECT_NE(plan.reason.find("its joint twin"), std::string::npos)
            << plan.reason;

    o.budget_bytes = 0;
    o.nbits = 2;
    plan = train_plan(n, d, x.data(), o);
    ASSERT_EQ(plan.candidates.size(), 3u); // asymmetric, symmetric, joint twin
    std::printf(
            "iid Gaussian, 2 bits: held-out recall scalar %.4f joint %.4f\n",
            plan.candidates[0].heldout_recall,
            plan.candidates[2].heldout_recall);
    EXPECT_GT(
            plan.candidates[2].heldout_recall,
            plan.candidates[0].heldout_recall);
    EXPECT_TRUE(plan.is_joint());
}

TEST(JointNibbles, BadInput) {
    using test::expect_throw_naming;
    const size_t n = 200, d = 16;
    const auto x = grouped(n, d, 2, 0.5f, 7);
    BinarizationPlan untrained;
    expect_throw_naming(
            [&] { fit_joint_codebooks(untrained, n, x.data()); },
            "not trained");
    BinarizationPlan plan =
            fit_plan(n, d, x.data(), 2, Transform::identity, true, 1);
    expect_throw_naming(
            [&] { fit_joint_codebooks(plan, 15, x.data()); }, "n=15");
    fit_joint_codebooks(plan, n, x.data());
    expect_throw_naming(
            [&] { fit_joint_codebooks(plan, n, x.data()); }, "already joint");
    TrainerOptions o;
    o.joint_nibbles = true;
    o.estimator = Estimator::symmetric;
    expect_throw_naming(
            [&] { train_plan(n, d, x.data(), o); }, "estimator=symmetric");
}

} // namespace
} // namespace faiss_bq
