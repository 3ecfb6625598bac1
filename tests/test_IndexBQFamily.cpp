// IndexBQFamily (issue 16): the candidates per byte budget, the held-out
// measurements against an independent re-measurement, the decision rule,
// forwarding to the chosen index, factory strings, files, bad input, and on
// real embeddings the choice's recall against every candidate's.
#include <faiss_bq/IndexBQ.h>
#include <faiss_bq/IndexBQFamily.h>
#include <faiss_bq/IndexBQRefine.h>
#include <faiss_bq/IndexBlockQuant.h>
#include <faiss_bq/impl/heldout.h>
#include <faiss_bq/index_factory.h>
#include <faiss_bq/index_io.h>

#include "test_util.h"

#include <faiss/IndexIDMap.h>
#include <faiss/impl/AuxIndexStructures.h>
#include <faiss/impl/FaissException.h>
#include <faiss/impl/IDSelector.h>
#include <faiss/impl/io.h>

#include <gtest/gtest.h>

#include <cmath>
#include <memory>

namespace faiss_bq {
namespace {

using idx_t = faiss::Index::idx_t;
using Strings = std::vector<std::string>;

std::unique_ptr<faiss::Index> make(
        int d,
        const char* description,
        faiss::MetricType metric = faiss::METRIC_L2) {
    return std::unique_ptr<faiss::Index>(index_factory(d, description, metric));
}

/// Rows whose variance falls 20x across the coordinates.
std::vector<float> decaying_rows(size_t n, size_t d, int seed) {
    std::vector<float> sigma(d), mean(d, 0.f);
    for (size_t j = 0; j < d; j++) {
        sigma[j] = std::pow(20.f, -0.5f * float(j) / float(d - 1));
    }
    return test::gaussian(n, d, seed, sigma, mean);
}

std::vector<uint8_t> to_bytes(const faiss::Index* index) {
    faiss::VectorIOWriter w;
    write_index(index, &w);
    return w.data;
}

std::unique_ptr<faiss::Index> from_bytes(const std::vector<uint8_t>& bytes) {
    faiss::VectorIOReader r;
    r.data = bytes;
    return std::unique_ptr<faiss::Index>(read_index(&r));
}

TEST(IndexBQFamily, CandidatesAtEachBudget) {
    EXPECT_EQ(family_candidates(512, 1, 0), (Strings{"BQ1", "BQR1", "BKQ8x8"}));
    EXPECT_EQ(
            family_candidates(512, 2, 0),
            (Strings{"BQ2", "BQR2", "BKQ4x7", "BQT2"}));
    EXPECT_EQ(
            family_candidates(512, 0, 192),
            (Strings{"BQ192B", "BQR3", "BQT3"}));
    EXPECT_EQ(
            family_candidates(512, 0, 256),
            (Strings{"BQ256B", "BQR4", "BKQ2x5", "BQT4"}));
    // Whole bits per coordinate only: 100 bytes at d = 512 is 1 bit.
    EXPECT_EQ(
            family_candidates(512, 0, 100),
            (Strings{"BQ100B", "BQR1", "BKQ8x8"}));
    EXPECT_EQ(family_candidates(512, 0, 10), (Strings{"BQ10B"}));
    // d = 100: planes of 13 bytes (the padded 104 coordinates).
    EXPECT_EQ(family_candidates(100, 1, 0), (Strings{"BQ1", "BQR1", "BKQ8x8"}));
    EXPECT_EQ(
            family_candidates(100, 0, 52),
            (Strings{"BQ52B", "BQR4", "BKQ2x5", "BQT4"}));
    // Each candidate builds, with the bytes docs/family.md gives.
    for (const std::string& key : family_candidates(100, 2, 0)) {
        SCOPED_TRACE(key);
        EXPECT_NO_THROW(make(100, key.c_str()));
    }
}

/// The report's recalls are what an independent run of each candidate on
/// the same seeded split measures, and the choice follows the rule: the best
/// recall, or the IndexBQ candidate when it is within two standard errors.
void expect_reported_and_decided(
        const IndexBQFamily& f,
        size_t n,
        const float* x) {
    const HeldOut h(
            n,
            f.d,
            x,
            f.metric_type,
            f.seed,
            f.heldout_fraction,
            f.max_heldout_base,
            f.max_heldout_queries,
            f.max_fit_rows);
    const std::vector<float> fit = h.fit_rows(x);
    const Strings keys = family_candidates(f.d, f.nbits, f.budget_bytes);
    ASSERT_EQ(f.candidates.size(), keys.size());
    std::vector<std::vector<float>> r(keys.size());
    size_t best = 0;
    for (size_t i = 0; i < keys.size(); i++) {
        SCOPED_TRACE(keys[i]);
        EXPECT_EQ(f.candidates[i].key, keys[i]);
        EXPECT_EQ(f.candidates[i].left_out, "");
        auto c = make(f.d, keys[i].c_str(), f.metric_type);
        c->train(idx_t(h.n_fit), fit.data());
        c->add(idx_t(h.nb), h.x.data());
        r[i] = h.recalls(*c);
        EXPECT_FLOAT_EQ(f.candidates[i].heldout_recall, mean_of(r[i]));
        EXPECT_FLOAT_EQ(f.candidates[i].heldout_recall_stderr, stderr_of(r[i]));
        EXPECT_EQ(f.candidates[i].code_size, c->sa_code_size());
        if (mean_of(r[i]) > mean_of(r[best])) {
            best = i;
        }
    }
    const size_t expected = tied_or_better(r[0], r[best]) ? 0 : best;
    EXPECT_EQ(f.chosen, expected) << f.reason;
    EXPECT_NE(f.reason.find(keys[best] + " has the best"), std::string::npos)
            << f.reason;
    // The chosen index is that candidate, trained on every row.
    ASSERT_NE(f.index, nullptr);
    EXPECT_EQ(index_factory_string(f.index), keys[f.chosen]);
    EXPECT_TRUE(f.index->is_trained);
}

// Isotropic vectors: after any rotation every coordinate is alike, and
// BlockQuant's joint code of 8 coordinates (a direction on S^7 of 256
// points and no norm level) keeps more of them than 8 signs (measured:
// BKQ8x8 beats BQ1 by several standard errors at d = 64).
TEST(IndexBQFamily, IsotropicDataChoosesBlockQuant) {
    const size_t n = 2500, d = 64;
    const std::vector<float> x = test::gaussian(n, d, 5);
    IndexBQFamily f(d, 1);
    f.train(n, x.data());
    std::cout << f.reason << "\n";
    expect_reported_and_decided(f, n, x.data());
    EXPECT_EQ(f.candidates[f.chosen].key, "BKQ8x8") << f.reason;
    EXPECT_NE(f.reason.find("beats BQ1"), std::string::npos) << f.reason;
    EXPECT_NE(f.reason.find("flat"), std::string::npos) << f.reason;
}

// Variance falling 20x across the coordinates at a budget: the trainer's
// allocated bits (more where the variance is) beat rotation-based codes.
TEST(IndexBQFamily, DecayingVarianceKeepsIndexBQ) {
    const size_t n = 2500, d = 64;
    const std::vector<float> x = decaying_rows(n, d, 6);
    IndexBQFamily f(d, CodeBudget{16}, faiss::METRIC_INNER_PRODUCT);
    f.train(n, x.data());
    std::cout << f.reason << "\n";
    expect_reported_and_decided(f, n, x.data());
    EXPECT_EQ(f.chosen, 0u) << f.reason;
    EXPECT_NE(dynamic_cast<const IndexBQ*>(f.index), nullptr);
}

// A refine stage over a family that chose a uniform IndexBQ keeps its error
// bound (IndexBQRefine looks through the family to the IndexBQ). The family
// is given its IndexBQ directly (synthetic Gaussian sets choose BlockQuant).
TEST(IndexBQFamily, RefineKeepsTheErrorBoundOfAChosenIndexBQ) {
    const size_t n = 3000, d = 64, nq = 50, k = 10;
    const std::vector<float> x = decaying_rows(n, d, 11);
    auto f = std::make_unique<IndexBQFamily>(d, 1);
    auto bq = std::make_unique<IndexBQ>(d, 1);
    bq->train(n, x.data());
    f->index = bq.release();
    f->is_trained = true;
    IndexBQRefine rf(f.release());
    rf.own_fields = rf.own_refine_index = true;
    rf.add(n, x.data());
    rf.k_factor = 20;
    SearchParametersBQRefine p;
    p.bound_sigmas = 2;
    std::vector<float> D(nq * k);
    std::vector<idx_t> I(nq * k);
    rf.search(nq, x.data(), k, D.data(), I.data(), &p);
    EXPECT_GT(rf.last_stats.skipped, 0u);
}

// Every method forwards to the chosen index: the same results as the chosen
// index searched directly, ntotal kept in step.
TEST(IndexBQFamily, ForwardsToTheChosenIndex) {
    const size_t n = 1000, d = 32, nq = 20, k = 5;
    const std::vector<float> x = test::gaussian(n, d, 7);
    IndexBQFamily f(d, 1);
    EXPECT_FALSE(f.is_trained);
    f.train(n, x.data());
    EXPECT_TRUE(f.is_trained);
    f.add(n, x.data());
    EXPECT_EQ(f.ntotal, idx_t(n));
    EXPECT_EQ(f.index->ntotal, idx_t(n));
    std::vector<float> D1(nq * k), D2(nq * k);
    std::vector<idx_t> I1(nq * k), I2(nq * k);
    f.search(nq, x.data(), k, D1.data(), I1.data());
    f.index->search(nq, x.data(), k, D2.data(), I2.data());
    EXPECT_EQ(I1, I2);
    EXPECT_EQ(D1, D2);
    EXPECT_EQ(f.sa_code_size(), f.index->sa_code_size());
    std::vector<uint8_t> c1(nq * f.sa_code_size()), c2(c1.size());
    f.sa_encode(nq, x.data(), c1.data());
    f.index->sa_encode(nq, x.data(), c2.data());
    EXPECT_EQ(c1, c2);
    std::vector<float> r1(d), r2(d);
    f.reconstruct(3, r1.data());
    f.index->reconstruct(3, r2.data());
    EXPECT_EQ(r1, r2);

    faiss::IDSelectorRange first_half(0, n / 2);
    EXPECT_EQ(f.remove_ids(first_half), n / 2);
    EXPECT_EQ(f.ntotal, idx_t(n - n / 2));
    EXPECT_EQ(f.index->ntotal, f.ntotal);

    // Merging: another family trained on the same rows makes the same
    // choice; its vectors join this one's.
    IndexBQFamily g(d, 1);
    g.train(n, x.data());
    g.add(10, x.data());
    f.merge_from(g);
    EXPECT_EQ(f.ntotal, idx_t(n - n / 2 + 10));
    EXPECT_EQ(g.ntotal, 0);
    f.reset();
    EXPECT_EQ(f.ntotal, 0);
    EXPECT_EQ(f.index->ntotal, 0);

    // Containers around it: ids, and a refine stage with the floats.
    auto idmap = make(d, "IDMap,BQ1_family,RFlat");
    idmap->train(n, x.data());
    std::vector<idx_t> ids(n);
    for (size_t i = 0; i < n; i++) {
        ids[i] = idx_t(1000 + i);
    }
    idmap->add_with_ids(n, x.data(), ids.data());
    idmap->search(nq, x.data(), k, D1.data(), I1.data());
    for (size_t q = 0; q < nq; q++) {
        EXPECT_EQ(I1[q * k], idx_t(1000 + q)); // exact after re-ranking
    }
}

TEST(IndexBQFamily, FactoryStringsRoundTrip) {
    for (const char* s :
         {"BQ1_family",
          "BQ2_family",
          "BQ24B_family",
          "IDMap2,BQ1_family,RFlat",
          "PCA32,BQ2_family"}) {
        SCOPED_TRACE(s);
        auto index = make(64, s);
        EXPECT_EQ(index_factory_string(index.get()), s);
    }
    auto f = make(64, "BQ24B_family", faiss::METRIC_INNER_PRODUCT);
    auto fam = dynamic_cast<IndexBQFamily*>(f.get());
    ASSERT_NE(fam, nullptr);
    EXPECT_EQ(fam->budget_bytes, 24u);
    EXPECT_EQ(fam->nbits, 0);
    EXPECT_EQ(fam->metric_type, faiss::METRIC_INNER_PRODUCT);
}

TEST(IndexBQFamily, FilesRoundTripAndBadFilesThrow) {
    const size_t n = 1500, d = 24, nq = 10, k = 4;
    const std::vector<float> x = test::gaussian(n, d, 8);
    // Untrained: the settings come back.
    IndexBQFamily untrained(d, CodeBudget{6}, faiss::METRIC_INNER_PRODUCT);
    untrained.seed = 99;
    untrained.max_heldout_queries = 300;
    auto back = from_bytes(to_bytes(&untrained));
    auto u = dynamic_cast<IndexBQFamily*>(back.get());
    ASSERT_NE(u, nullptr);
    EXPECT_FALSE(u->is_trained);
    EXPECT_EQ(u->index, nullptr);
    EXPECT_EQ(u->budget_bytes, 6u);
    EXPECT_EQ(u->seed, 99);
    EXPECT_EQ(u->max_heldout_queries, 300u);
    EXPECT_EQ(u->metric_type, faiss::METRIC_INNER_PRODUCT);

    IndexBQFamily f(d, 2);
    f.train(n, x.data());
    f.add(n, x.data());
    const std::vector<uint8_t> good = to_bytes(&f);
    back = from_bytes(good);
    auto r = dynamic_cast<IndexBQFamily*>(back.get());
    ASSERT_NE(r, nullptr);
    EXPECT_EQ(r->ntotal, f.ntotal);
    EXPECT_EQ(r->chosen, f.chosen);
    EXPECT_EQ(r->reason, f.reason);
    ASSERT_EQ(r->candidates.size(), f.candidates.size());
    for (size_t i = 0; i < f.candidates.size(); i++) {
        EXPECT_EQ(r->candidates[i].key, f.candidates[i].key);
        EXPECT_EQ(
                r->candidates[i].heldout_recall,
                f.candidates[i].heldout_recall);
        EXPECT_EQ(r->candidates[i].code_size, f.candidates[i].code_size);
    }
    std::vector<float> D1(nq * k), D2(nq * k);
    std::vector<idx_t> I1(nq * k), I2(nq * k);
    f.search(nq, x.data(), k, D1.data(), I1.data());
    r->search(nq, x.data(), k, D2.data(), I2.data());
    EXPECT_EQ(I1, I2);
    EXPECT_EQ(D1, D2);

    // A flipped byte anywhere: an error, never a different index.
    for (size_t at = 4; at < good.size(); at += good.size() / 97 + 1) {
        std::vector<uint8_t> bad = good;
        bad[at] ^= 0x40;
        EXPECT_THROW(from_bytes(bad), faiss::FaissException) << "byte " << at;
    }
    // Consistent checksums, inconsistent values: the reader checks them.
    f.chosen = (f.chosen + 1) % f.candidates.size();
    test::expect_throw_naming(
            [&] { from_bytes(to_bytes(&f)); }, "IndexBQFamily chose");
    f.chosen = f.candidates.size();
    test::expect_throw_naming([&] { from_bytes(to_bytes(&f)); }, "chosen=");
}

TEST(IndexBQFamily, BadInputNamesTheValues) {
    using test::expect_throw_naming;
    expect_throw_naming([] { IndexBQFamily(16, 3); }, "nbits=3");
    expect_throw_naming([] { IndexBQFamily(0, 1); }, "d=0");
    expect_throw_naming(
            [] { IndexBQFamily(16, 1, faiss::METRIC_L1); }, "metric=");
    expect_throw_naming(
            [] { IndexBQFamily(16, CodeBudget{9}); }, "budget of 9 bytes");
    expect_throw_naming(
            [] { IndexBQFamily(16, CodeBudget{0}); }, "budget of 0 bytes");

    const size_t d = 16;
    std::vector<float> x = test::gaussian(400, d, 9);
    IndexBQFamily f(d, 1);
    expect_throw_naming([&] { f.train(50, x.data()); }, "n=50");
    // 110 rows: 22 held out leave 88 to fit, below the candidates' 100.
    expect_throw_naming([&] { f.train(110, x.data()); }, "88 fitting rows");
    f.heldout_fraction = 1.5f;
    expect_throw_naming(
            [&] { f.train(400, x.data()); }, "heldout_fraction=1.5");
    f.heldout_fraction = 0.2f;
    x[5 * d + 3] = NAN;
    expect_throw_naming([&] { f.train(400, x.data()); }, "row 5, column 3");
    x[5 * d + 3] = 0;
    std::vector<float> D(4);
    std::vector<idx_t> I(4);
    expect_throw_naming(
            [&] { f.search(1, x.data(), 4, D.data(), I.data()); },
            "not trained");
    expect_throw_naming([&] { f.add(1, x.data()); }, "not trained");
    f.train(400, x.data());
    f.add(10, x.data());
    expect_throw_naming([&] { f.train(400, x.data()); }, "holds 10 vectors");
    IndexBQ other(d, 1);
    expect_throw_naming(
            [&] { f.merge_from(other); }, "merges only another IndexBQFamily");
    IndexBQFamily g(d, 2);
    g.train(400, x.data());
    expect_throw_naming([&] { f.merge_from(g); }, "the other index chose");

    // Factory: no other option, no graph, IVF or binary index around it.
    for (const char* s :
         {"BQ1_family_axis",
          "BQ1_eden_family",
          "HNSW32_BQ1_family",
          "IVF16,BQ1_family",
          "BQ1_family(BFlat)",
          "BQ1_family_family"}) {
        SCOPED_TRACE(s);
        EXPECT_THROW(make(64, s), faiss::FaissException);
    }
    expect_throw_naming([] { make(64, "BQ1_fs_family"); }, "no other option");
    expect_throw_naming([] { make(64, "IVF8,BQ2_family"); }, "flat-only");
}

// On real embeddings: each candidate trained on the base and searched with
// the set's own queries (not the held-out ones): the family's choice within
// 0.01 of the best (issue 16's target), or within three standard errors of
// the paired difference when the sample is small.
TEST(IndexBQFamily, RealDataChoiceIsWithinTheBestCandidate) {
    FAISS_BQ_REQUIRE_DATA("use512-wordnet", data);
    // A prefix of the base (the family's training runs every candidate):
    // 8000 rows, 1000 queries; under the sanitizers (~20x slower) 3000 and
    // 200. The full set's table is bench/bq_bench's "family" rows.
#ifdef FAISS_BQ_SANITIZE
    const size_t nb = 3000, nq = 200;
#else
    const size_t nb = 8000, nq = 1000;
#endif
    test::prefix(data, nb, nq);
    const size_t k = 10;
    for (int nbits : {1}) {
        SCOPED_TRACE(nbits);
        IndexBQFamily f(data.d, nbits, faiss::METRIC_INNER_PRODUCT);
        f.train(data.nb, data.base.data());
        std::cout << "use512 (" << data.nb << " rows) BQ" << nbits
                  << "_family: " << f.reason << "\n";
        f.add(data.nb, data.base.data());
        auto per_query = [&](const faiss::Index& index) {
            std::vector<float> D(data.nq * k);
            std::vector<idx_t> I(data.nq * k);
            index.search(data.nq, data.queries.data(), k, D.data(), I.data());
            std::vector<float> r(data.nq);
            for (size_t q = 0; q < data.nq; q++) {
                r[q] = float(test::recall_at(
                        1,
                        k,
                        I.data() + q * k,
                        data.gt.data() + q * data.gt_k,
                        data.gt_k));
            }
            return r;
        };
        const std::vector<float> chosen = per_query(f);
        for (const FamilyCandidateReport& c : f.candidates) {
            if (c.key == f.candidates[f.chosen].key) {
                continue;
            }
            auto other =
                    make(data.d, c.key.c_str(), faiss::METRIC_INNER_PRODUCT);
            other->train(data.nb, data.base.data());
            other->add(data.nb, data.base.data());
            const std::vector<float> r = per_query(*other);
            std::vector<float> diff(data.nq);
            for (size_t q = 0; q < data.nq; q++) {
                diff[q] = r[q] - chosen[q];
            }
            std::cout << "  " << c.key << ": test 10-recall@10 " << mean_of(r)
                      << " (held out " << c.heldout_recall << "), chosen "
                      << f.candidates[f.chosen].key << " " << mean_of(chosen)
                      << "\n";
            EXPECT_LE(mean_of(diff), std::max(0.01f, 3 * stderr_of(diff)))
                    << c.key << " " << mean_of(r) << " vs the choice's "
                    << mean_of(chosen);
        }
    }
}

} // namespace
} // namespace faiss_bq
