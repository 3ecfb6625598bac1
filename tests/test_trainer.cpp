// The trainer's decisions on synthetic data whose right answer is known
// (DESIGN.md, "The model"), determinism, and its bad inputs.
#include <faiss_bq/IndexBQ.h>
#include <faiss_bq/trainer.h>

#include "test_util.h"

#include <faiss/impl/FaissException.h>
#include <faiss/utils/random.h>

#include <gtest/gtest.h>

#include <omp.h>

#include <cmath>

namespace faiss_bq {
namespace {

constexpr size_t n = 5000, d = 32;

BinarizationPlan train(
        const std::vector<float>& x,
        Estimator e,
        int nbits = 1,
        faiss::MetricType metric = faiss::METRIC_L2) {
    TrainerOptions o;
    o.nbits = nbits;
    o.estimator = e;
    o.metric = metric;
    return train_plan(x.size() / d, d, x.data(), o);
}

std::string why(const BinarizationPlan& p) {
    return p.report();
}

// All-positive data (every coordinate offset by 4 sigma): uncentred sign bits
// are all 1 and carry nothing, so both estimators must centre.
TEST(Trainer, AllPositiveDataIsCentred) {
    const auto x = test::gaussian(
            n, d, 1, std::vector<float>(d, 1.f), std::vector<float>(d, 4.f));
    for (Estimator e : {Estimator::asymmetric, Estimator::symmetric}) {
        const BinarizationPlan p = train(x, e);
        EXPECT_TRUE(p.centered) << why(p);
        EXPECT_GT(p.analysis.mean_offset_ratio, 0.9f);
    }
}

// A moderate offset (mean = 1 sigma on every coordinate): uncentred sign bits
// are 84% ones, so centring wins under the asymmetric estimator, and the
// model predicts it before the held-out check confirms it.
TEST(Trainer, OffsetDataIsCentredAndTheModelAgrees) {
    const auto x = test::gaussian(
            n, d, 2, std::vector<float>(d, 1.f), std::vector<float>(d, 1.f));
    const BinarizationPlan p = train(x, Estimator::asymmetric);
    EXPECT_TRUE(p.centered) << why(p);
    EXPECT_NE(
            p.reason.find("the model (lowest predicted loss) agrees"),
            std::string::npos)
            << why(p);
}

/// The transform of the candidate the model alone ranks best for the
/// estimator the plan was decided for.
Transform model_choice(const BinarizationPlan& p) {
    const CandidateReport* best = nullptr;
    for (const CandidateReport& c : p.candidates) {
        if (c.estimator == p.decided_for &&
            (!best || c.predicted_loss < best->predicted_loss)) {
            best = &c;
        }
    }
    return best->transform;
}

// Heterogeneous scales, energy in few coordinates (4 with sigma 1, 28 with
// sigma 0.05): on the axes, Hamming counts the 28 noise coordinates like the
// 4 that matter, and even per-coordinate levels (asymmetric) resolve the
// signal with only 4 bits. A rotation spreads the energy evenly: 32 bits cut
// the signal, and Hamming becomes an angle estimate. Both estimators rotate,
// and the model predicts it.
TEST(Trainer, EnergyInFewCoordinatesIsRotated) {
    std::vector<float> sigma(d, 0.05f);
    std::fill(sigma.begin(), sigma.begin() + 4, 1.f);
    const auto x = test::gaussian(n, d, 3, sigma, std::vector<float>(d, 0.f));
    for (Estimator e : {Estimator::asymmetric, Estimator::symmetric}) {
        const BinarizationPlan p = train(x, e);
        EXPECT_EQ(p.transform, Transform::random_rotation) << why(p);
        EXPECT_EQ(model_choice(p), Transform::random_rotation) << why(p);
        EXPECT_GT(p.analysis.cv_sigma, 1.f);
    }
}

// Low rank (rank 4 in 32 dimensions, randomly oriented): correlated sign bits
// partly repeat one another; a random rotation gives every bit a different
// hyperplane through the 4-dimensional signal, so the asymmetric estimate's
// error shrinks. (DESIGN.md expected no gain; the model and the held-out
// check both measure one at 1 bit.)
TEST(Trainer, LowRankDataIsRotated) {
    const size_t r = 4;
    const auto z = test::gaussian(n, r, 5);
    const auto w = test::gaussian(r, d, 6);
    std::vector<float> x(n * d, 0.f);
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < r; k++) {
            for (size_t j = 0; j < d; j++) {
                x[i * d + j] += z[i * r + k] * w[k * d + j];
            }
        }
    }
    const BinarizationPlan p = train(x, Estimator::asymmetric);
    EXPECT_EQ(p.transform, Transform::random_rotation) << why(p);
    EXPECT_EQ(model_choice(p), Transform::random_rotation) << why(p);
    EXPECT_LT(p.analysis.effective_rank, float(r) + 0.5f);
}

// Isotropic Gaussian data: every orthogonal transform is equivalent, so the
// held-out recalls tie and the cheaper identity is kept. (16 dimensions at 2
// bits and 20k rows, so that neighbours mean something: at d = 32 and 1 bit
// iid neighbours are found with recall ~0.1 and chance configurations of one
// sample dominate the comparison.)
TEST(Trainer, IsotropicDataKeepsTheAxes) {
    const size_t n_iso = 20000, d_iso = 16;
    const auto x = test::gaussian(n_iso, d_iso, 4);
    for (Estimator e : {Estimator::asymmetric, Estimator::symmetric}) {
        TrainerOptions o;
        o.nbits = 2;
        o.estimator = e;
        const BinarizationPlan p = train_plan(n_iso, d_iso, x.data(), o);
        EXPECT_EQ(p.transform, Transform::identity) << why(p);
    }
}

// Bimodal "feature" coordinates (+-1 with small noise): one bit captures
// them almost exactly; a rotation mixes them into Gaussians and loses that.
TEST(Trainer, BimodalFeaturesKeepTheAxes) {
    auto x = test::gaussian(
            n, d, 7, std::vector<float>(d, 0.1f), std::vector<float>(d, 0.f));
    faiss::RandomGenerator rng(8);
    for (float& v : x) {
        v += rng.rand_int(2) ? 1.f : -1.f;
    }
    for (Estimator e : {Estimator::asymmetric, Estimator::symmetric}) {
        const BinarizationPlan p = train(x, e);
        EXPECT_EQ(p.transform, Transform::identity) << why(p);
        EXPECT_LT(p.analysis.mean_excess_kurtosis, -1.5f);
    }
}

TEST(Trainer, ForcedChoiceIsRecordedAndMeasured) {
    const auto x = test::gaussian(n, d, 9);
    TrainerOptions o;
    o.transform = TransformChoice::random_rotation;
    o.centering = CenteringChoice::centered;
    o.quantization = QuantizationChoice::lloyd_max; // else EDEN's twin too
    const BinarizationPlan p = train_plan(n, d, x.data(), o);
    EXPECT_TRUE(p.forced);
    EXPECT_EQ(p.transform, Transform::random_rotation);
    EXPECT_TRUE(p.centered);
    ASSERT_EQ(p.candidates.size(), 2u); // one plan, both estimators measured
    EXPECT_GT(p.candidates[0].heldout_recall, 0.f);
    EXPECT_NE(p.reason.find("forced"), std::string::npos) << p.reason;
}

bool same_plan(const BinarizationPlan& a, const BinarizationPlan& b) {
    auto same_candidates = [&] {
        if (a.candidates.size() != b.candidates.size()) {
            return false;
        }
        for (size_t i = 0; i < a.candidates.size(); i++) {
            const CandidateReport &x = a.candidates[i], &y = b.candidates[i];
            if (x.transform != y.transform || x.centered != y.centered ||
                x.estimator != y.estimator ||
                x.predicted_loss != y.predicted_loss ||
                x.heldout_recall != y.heldout_recall ||
                x.heldout_recall_stderr != y.heldout_recall_stderr) {
                return false;
            }
        }
        return true;
    };
    return a.d == b.d && a.nbits == b.nbits && a.transform == b.transform &&
            a.centered == b.centered && a.seed == b.seed &&
            a.center == b.center && a.rotation == b.rotation &&
            a.thresholds == b.thresholds && a.levels == b.levels &&
            a.analysis.eigenvalues == b.analysis.eigenvalues &&
            a.analysis.excess_kurtosis == b.analysis.excess_kurtosis &&
            a.reason == b.reason && a.report() == b.report() &&
            same_candidates();
}

// Same data and seed: the same plan bit for bit, whatever the thread count.
TEST(Trainer, DeterministicAcrossRunsAndThreads) {
    const auto x = test::gaussian(
            3000,
            d,
            10,
            std::vector<float>(d, 1.f),
            std::vector<float>(d, 0.5f));
    TrainerOptions o;
    o.nbits = 2;
    o.seed = 77;
    const BinarizationPlan a = train_plan(3000, d, x.data(), o);
    const BinarizationPlan b = train_plan(3000, d, x.data(), o);
    EXPECT_TRUE(same_plan(a, b));
    const int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    const BinarizationPlan c = train_plan(3000, d, x.data(), o);
    omp_set_num_threads(threads);
    EXPECT_TRUE(same_plan(a, c));
    o.seed = 78;
    const BinarizationPlan e = train_plan(3000, d, x.data(), o);
    EXPECT_FALSE(same_plan(a, e));
}

TEST(Trainer, BadInput) {
    auto x = test::gaussian(200, d, 11);
    TrainerOptions o;
    test::expect_throw_naming([&] { train_plan(99, d, x.data(), o); }, "n=99");
    test::expect_throw_naming([&] { train_plan(200, 0, x.data(), o); }, "d=0");
    o.nbits = 3;
    test::expect_throw_naming(
            [&] { train_plan(200, d, x.data(), o); }, "nbits=3");
    o.nbits = 1;
    x[5 * d + 7] = NAN;
    test::expect_throw_naming(
            [&] { train_plan(200, d, x.data(), o); }, "row 5, column 7");
    x[5 * d + 7] = INFINITY;
    test::expect_throw_naming([&] { train_plan(200, d, x.data(), o); }, "inf");
}

// Constant coordinates: no division by zero anywhere in the plan.
TEST(Trainer, ConstantCoordinatesGiveAFinitePlan) {
    auto x = test::gaussian(500, d, 12);
    for (size_t i = 0; i < 500; i++) {
        x[i * d + 0] = 0.f;
        x[i * d + 1] = 3.f;
    }
    const BinarizationPlan p = train_plan(500, d, x.data(), TrainerOptions());
    for (const std::vector<float>* v : {&p.center, &p.thresholds, &p.levels}) {
        for (float f : *v) {
            EXPECT_TRUE(std::isfinite(f));
        }
    }
    for (const CandidateReport& c : p.candidates) {
        EXPECT_TRUE(std::isfinite(c.predicted_loss));
        EXPECT_TRUE(std::isfinite(c.heldout_recall));
    }
    EXPECT_EQ(p.analysis.n_constant, 2u);
}

} // namespace
} // namespace faiss_bq

namespace faiss_bq {
namespace {

// verbose (set by an index's own `verbose`) prints each step: the split, the
// analysis, every candidate with its held-out recall, the choice; without
// it, nothing.
TEST(Trainer, VerbosePrintsTheStepsAndQuietPrintsNothing) {
    using idx_t = faiss::Index::idx_t;
    const size_t n = 2000, d = 16;
    const auto x = test::gaussian(n, d, 8);
    IndexBQ index(d, 1, faiss::METRIC_L2);
    testing::internal::CaptureStdout();
    index.train(n, x.data());
    EXPECT_EQ(testing::internal::GetCapturedStdout(), "");
    index.reset();
    index.verbose = true;
    testing::internal::CaptureStdout();
    index.train(n, x.data());
    const std::string out = testing::internal::GetCapturedStdout();
    EXPECT_NE(out.find("2000 rows, d=16"), std::string::npos) << out;
    EXPECT_NE(out.find("analysis of"), std::string::npos) << out;
    size_t candidates = 0;
    for (size_t p = out.find("candidate "); p != std::string::npos;
         p = out.find("candidate ", p + 1)) {
        candidates++;
    }
    EXPECT_EQ(candidates, index.plan.candidates.size()) << out;
    EXPECT_NE(out.find("chosen: " + index.plan.reason), std::string::npos)
            << out;
    // a large add reports its progress, a small one does not
    const size_t nbig = 300000;
    const auto big = test::gaussian(nbig, d, 9);
    testing::internal::CaptureStdout();
    index.add(n, x.data());
    EXPECT_EQ(testing::internal::GetCapturedStdout(), "");
    testing::internal::CaptureStdout();
    index.add(nbig, big.data());
    const std::string add = testing::internal::GetCapturedStdout();
    EXPECT_NE(
            add.find("[IndexBQ add] 262144 / 300000 vectors"),
            std::string::npos)
            << add;
    EXPECT_NE(
            add.find("[IndexBQ add] 300000 / 300000 vectors"),
            std::string::npos)
            << add;
    EXPECT_EQ(index.ntotal, idx_t(n + nbig));
}

} // namespace
} // namespace faiss_bq
