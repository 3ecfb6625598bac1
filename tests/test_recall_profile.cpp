// The recall profile of a trained plan (BinarizationPlan::recall_profile):
// the recall to expect and the k_factor a refine stage needs, checked
// against exact search on more rows than the trainer saw, and its bad input.
#include <faiss_bq/IndexBQ.h>
#include <faiss_bq/IndexBQRefine.h>
#include <faiss_bq/clone_index.h>
#include <faiss_bq/trainer.h>

#include "test_util.h"

#include <gtest/gtest.h>

#include <cmath>
#include <memory>

namespace faiss_bq {
namespace {

constexpr size_t d = 32;

/// Coordinates of decaying spread: the trainer keeps the axes and the
/// neighbourhoods are those of a ~20-dimensional set.
std::vector<float> sigmas() {
    std::vector<float> s(d);
    for (size_t j = 0; j < d; j++) {
        s[j] = std::exp(-0.08f * float(j));
    }
    return s;
}

std::vector<float> data(size_t n, int seed) {
    return test::gaussian(n, d, seed, sigmas(), std::vector<float>(d, 0.f));
}

/// The report line of the candidate the plan was chosen from.
const CandidateReport& chosen_candidate(const BinarizationPlan& p) {
    for (const CandidateReport& c : p.candidates) {
        if (c.transform == p.transform && c.centered == p.centered &&
            c.nbits == p.nbits && c.estimator == p.decided_for &&
            c.joint == p.is_joint() && !c.allocated) {
            return c;
        }
    }
    throw std::runtime_error("no candidate matches the plan");
}

TEST(RecallProfile, MatchesTheHeldOutRecallAndGrows) {
    const std::vector<float> x = data(5000, 1);
    TrainerOptions o;
    o.metric = faiss::METRIC_INNER_PRODUCT;
    const BinarizationPlan p = train_plan(5000, d, x.data(), o);
    const RecallProfile& rp = p.recall_profile;
    ASSERT_FALSE(rp.empty());
    EXPECT_EQ(rp.base_rows, 5000u);
    ASSERT_EQ(rp.candidates.size(), rp.recall.size());
    EXPECT_EQ(rp.candidates.back(), 5000.f);
    EXPECT_EQ(rp.recall.back(), 1.f);
    for (size_t i = 1; i < rp.recall.size(); i++) {
        EXPECT_GT(rp.candidates[i], rp.candidates[i - 1]) << i;
        EXPECT_GE(rp.recall[i], rp.recall[i - 1]) << i;
        EXPECT_GE(rp.growth[i], 0.f) << i;
        EXPECT_LE(rp.growth[i], 1.f) << i;
    }
    // K = 10 candidates is the codes' own 10-recall@10 on the held-out base.
    EXPECT_NEAR(
            p.expected_recall(5000), chosen_candidate(p).heldout_recall, 0.02)
            << p.report();
    // More rows, lower recall; more candidates, higher.
    EXPECT_LE(p.expected_recall(1000000), p.expected_recall(5000));
    EXPECT_GE(p.expected_recall(5000, 4), p.expected_recall(5000));
    EXPECT_GE(p.k_factor_for(0.99f, 100000), p.k_factor_for(0.9f, 100000));
    EXPECT_NE(
            p.report().find("k_factor for 0.90 / 0.95 / 0.99"),
            std::string::npos)
            << p.report();
}

// Trained on 5000 rows, asked about 40000: the k_factor it gives for 0.95
// gives 0.95 with exact re-ranking, and the stage-1 recall it expects is the
// one measured.
TEST(RecallProfile, PredictsTheRecallOnALargerBase) {
    const size_t nt = 5000, nb = 40000, nq = 400, k = 10;
    const std::vector<float> xt = data(nt, 2), xb = data(nb, 3),
                             xq = data(nq, 4);
    const std::vector<idx_t> gt =
            test::exact_knn(d, xb, xq, k, faiss::METRIC_INNER_PRODUCT);
    IndexBQRefine index(new IndexBQ(d, 1, faiss::METRIC_INNER_PRODUCT));
    index.own_fields = true;
    index.train(nt, xt.data());
    index.add(nb, xb.data());
    const BinarizationPlan& plan =
            dynamic_cast<const IndexBQ*>(index.base_index)->plan;
    std::vector<float> dis(nq * k);
    std::vector<idx_t> lab(nq * k);
    index.base_index->search(nq, xq.data(), k, dis.data(), lab.data());
    const double stage1 = test::recall_at(nq, k, lab.data(), gt.data(), k);
    EXPECT_NEAR(plan.expected_recall(nb), stage1, 0.04) << plan.report();
    for (float target : {0.9f, 0.95f}) {
        index.k_factor = plan.k_factor_for(target, nb);
        index.search(nq, xq.data(), k, dis.data(), lab.data());
        const double r = test::recall_at(nq, k, lab.data(), gt.data(), k);
        EXPECT_NEAR(r, target, 0.03) << "k_factor " << index.k_factor << "\n"
                                     << plan.report();
    }
}

TEST(RecallProfile, SurvivesFiles) {
    const std::vector<float> x = data(1000, 5);
    IndexBQ index(d, 2, faiss::METRIC_L2);
    index.train(1000, x.data());
    std::unique_ptr<faiss::Index> back(clone_index(&index));
    const RecallProfile& a = index.plan.recall_profile;
    const RecallProfile& b = dynamic_cast<IndexBQ&>(*back).plan.recall_profile;
    EXPECT_EQ(a.base_rows, b.base_rows);
    EXPECT_EQ(a.recall, b.recall);
    EXPECT_EQ(a.candidates, b.candidates);
    EXPECT_EQ(a.growth, b.growth);
    EXPECT_FALSE(a.empty());
    EXPECT_EQ(
            index.plan.k_factor_for(0.95f, 50000),
            dynamic_cast<IndexBQ&>(*back).plan.k_factor_for(0.95f, 50000));
}

TEST(RecallProfile, BadInput) {
    const std::vector<float> x = data(1000, 6);
    TrainerOptions o;
    const BinarizationPlan p = train_plan(1000, d, x.data(), o);
    test::expect_throw_naming(
            [&] { p.k_factor_for(1.5f, 1000); }, "recall=1.5");
    test::expect_throw_naming(
            [&] { p.k_factor_for(0.f, 1000); }, "recall=0 must be in (0, 1)");
    test::expect_throw_naming([&] { p.k_factor_for(0.9f, 0); }, "ntotal=0");
    test::expect_throw_naming(
            [&] { p.k_factor_for(std::nanf(""), 1000); }, "recall=nan");
    test::expect_throw_naming(
            [&] { p.expected_recall(1000, 0.5f); }, "k_factor=0.5");
    test::expect_throw_naming([&] { p.expected_recall(-3); }, "ntotal=-3");
    const BinarizationPlan untrained;
    test::expect_throw_naming(
            [&] { untrained.k_factor_for(0.9f, 1000); }, "no recall profile");
}

} // namespace
} // namespace faiss_bq
