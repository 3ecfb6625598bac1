// IndexBinaryFlatFast against faiss::IndexBinaryFlat computed in the same
// test: identical distances and ids (ties included), with 1 and 2 threads.
#include <faiss_bq/IndexBinaryFlatFast.h>

#include "test_util.h"

#include <faiss/IndexBinaryFlat.h>
#include <faiss/impl/AuxIndexStructures.h>
#include <faiss/impl/IDSelector.h>
#include <faiss/utils/hamming.h>

#include <gtest/gtest.h>

#include <omp.h>

#include <algorithm>
#include <climits>
#include <random>
#include <vector>

namespace faiss_bq {
namespace {

using idx_t = faiss::Index::idx_t;

std::vector<uint8_t> random_codes(size_t n, size_t code_size, int seed) {
    std::mt19937 rng(seed);
    std::vector<uint8_t> v(n * code_size);
    for (uint8_t& b : v) {
        b = uint8_t(rng());
    }
    return v;
}

/// Keeps every id whose hash is odd: scattered ids, about half of them.
struct IDSelectorOddHash : faiss::IDSelector {
    bool is_member(idx_t id) const override {
        return ((uint64_t(id) * 0x9E3779B97F4A7C15ull) >> 40) & 1;
    }
};

/// Runs f with omp_set_num_threads(t) for t = 1 and 2 (restored after).
template <class F>
void with_1_and_2_threads(F f) {
    const int saved = omp_get_max_threads();
    for (int t : {1, 2}) {
        omp_set_num_threads(t);
        SCOPED_TRACE(testing::Message() << t << " thread(s)");
        f();
    }
    omp_set_num_threads(saved);
}

/// FAISS's answer: IndexBinaryFlat 1.7.3 rejects search parameters, so with
/// a selector it searches the selected codes and maps the ids back.
struct FaissAnswer {
    faiss::IndexBinaryFlat index;
    std::vector<idx_t> ids; ///< index id -> original id

    FaissAnswer(
            int d,
            size_t nb,
            const uint8_t* codes,
            const faiss::IDSelector* sel)
            : index(d) {
        const size_t cs = d / 8;
        for (size_t i = 0; i < nb; i++) {
            if (!sel || sel->is_member(idx_t(i))) {
                index.add(1, codes + i * cs);
                ids.push_back(idx_t(i));
            }
        }
    }
    idx_t original(idx_t i) const {
        return i < 0 ? i : ids[i];
    }
};

void expect_same_knn(
        int d,
        size_t nb,
        const uint8_t* codes,
        size_t nq,
        const uint8_t* queries,
        idx_t k,
        const faiss::IDSelector* sel) {
    SCOPED_TRACE(
            testing::Message() << "d=" << d << " nb=" << nb << " nq=" << nq
                               << " k=" << k << (sel ? " selector" : ""));
    const FaissAnswer want(d, nb, codes, sel);
    std::vector<int32_t> wd(nq * k);
    std::vector<idx_t> wi(nq * k);
    want.index.search(nq, queries, k, wd.data(), wi.data());
    for (idx_t& i : wi) {
        i = want.original(i);
    }
    IndexBinaryFlatFast index(d);
    index.add(nb, codes);
    faiss::SearchParameters params;
    params.sel = const_cast<faiss::IDSelector*>(sel);
    with_1_and_2_threads([&] {
        std::vector<int32_t> gd(nq * k, -7);
        std::vector<idx_t> gi(nq * k, -7);
        index.search(
                nq, queries, k, gd.data(), gi.data(), sel ? &params : nullptr);
        EXPECT_EQ(gd, wd);
        EXPECT_EQ(gi, wi);
    });
}

void expect_same_range(
        int d,
        size_t nb,
        const uint8_t* codes,
        size_t nq,
        const uint8_t* queries,
        int radius,
        const faiss::IDSelector* sel) {
    SCOPED_TRACE(
            testing::Message() << "range d=" << d << " radius=" << radius
                               << (sel ? " selector" : ""));
    const FaissAnswer want(d, nb, codes, sel);
    faiss::RangeSearchResult wr(nq);
    want.index.range_search(nq, queries, radius, &wr);
    IndexBinaryFlatFast index(d);
    index.add(nb, codes);
    faiss::SearchParameters params;
    params.sel = const_cast<faiss::IDSelector*>(sel);
    size_t found = 0;
    with_1_and_2_threads([&] {
        faiss::RangeSearchResult gr(nq);
        index.range_search(nq, queries, radius, &gr, sel ? &params : nullptr);
        ASSERT_EQ(
                std::vector<size_t>(gr.lims, gr.lims + nq + 1),
                std::vector<size_t>(wr.lims, wr.lims + nq + 1));
        for (size_t e = 0; e < wr.lims[nq]; e++) {
            EXPECT_EQ(gr.labels[e], want.original(wr.labels[e])) << e;
            EXPECT_EQ(gr.distances[e], wr.distances[e]) << e;
        }
        found = wr.lims[nq];
    });
    EXPECT_GT(found, 0u) << "a range test that finds nothing tests nothing";
}

// Random codes: Hamming distances concentrate around d / 2, so ties are
// everywhere and the tie rule is tested, not assumed. nb = 20000 codes of 32
// bytes is above the size where one query is split across threads.
TEST(IndexBinaryFlatFast, SameAsFaissOnRandomCodes) {
    const int d = 256;
    const size_t nb = 20000, nq = 20;
    const auto codes = random_codes(nb, d / 8, 1);
    const auto queries = random_codes(nq, d / 8, 2);
    const IDSelectorOddHash odd;
    for (const faiss::IDSelector* sel :
         {(const faiss::IDSelector*)nullptr, (const faiss::IDSelector*)&odd}) {
        for (idx_t k : {idx_t(1), idx_t(10), idx_t(100)}) {
            expect_same_knn(d, nb, codes.data(), 1, queries.data(), k, sel);
            expect_same_knn(d, nb, codes.data(), nq, queries.data(), k, sel);
        }
        expect_same_knn(d, nb, codes.data(), 1, queries.data(), nb, sel);
        expect_same_knn(d, nb, codes.data(), 1, queries.data(), nb + 5, sel);
        expect_same_range(d, nb, codes.data(), nq, queries.data(), 100, sel);
    }
}

// Every code size class: FAISS has special cases for 4, 8, 16 and 32 bytes;
// ours for 32, 64 and 128 and a generic tail. Small nb: k = ntotal + 5.
TEST(IndexBinaryFlatFast, SameAsFaissForEveryCodeSize) {
    const size_t nb = 300, nq = 7;
    const IDSelectorOddHash odd;
    for (int d : {8, 24, 32, 64, 128, 200, 256, 512, 520, 1024, 1032}) {
        const auto codes = random_codes(nb, d / 8, d);
        const auto queries = random_codes(nq, d / 8, d + 1);
        for (idx_t k : {idx_t(1), idx_t(10), idx_t(nb), idx_t(nb + 5)}) {
            expect_same_knn(
                    d, nb, codes.data(), nq, queries.data(), k, nullptr);
        }
        expect_same_knn(d, nb, codes.data(), nq, queries.data(), 10, &odd);
        expect_same_range(
                d, nb, codes.data(), nq, queries.data(), d / 2, nullptr);
    }
}

/// Sign codes (faiss::fvecs2bitvecs) of a real set; queries are the first
/// nq query vectors.
void same_as_faiss_on(const test::RealData& data, size_t max_nb, size_t nq) {
    const size_t nb = std::min(data.nb, max_nb);
    nq = std::min(nq, data.nq);
    const int d = int(data.d / 8 * 8); // whole bytes: the trailing bits dropped
    std::vector<uint8_t> codes(nb * d / 8), queries(nq * d / 8);
    std::vector<float> row(d);
    for (size_t i = 0; i < nb + nq; i++) {
        const float* x = i < nb ? &data.base[i * data.d]
                                : &data.queries[(i - nb) * data.d];
        uint8_t* out = i < nb ? &codes[i * d / 8] : &queries[(i - nb) * d / 8];
        faiss::fvec2bitvec(x, out, d);
    }
    const IDSelectorOddHash odd;
    for (const faiss::IDSelector* sel :
         {(const faiss::IDSelector*)nullptr, (const faiss::IDSelector*)&odd}) {
        for (idx_t k : {idx_t(1), idx_t(10), idx_t(100)}) {
            expect_same_knn(d, nb, codes.data(), nq, queries.data(), k, sel);
        }
        expect_same_knn(d, nb, codes.data(), 1, queries.data(), 1, sel);
        expect_same_knn(d, nb, codes.data(), 2, queries.data(), nb, sel);
        expect_same_knn(d, nb, codes.data(), 2, queries.data(), nb + 5, sel);
        expect_same_range(d, nb, codes.data(), nq, queries.data(), d / 4, sel);
    }
}

#ifdef FAISS_BQ_SANITIZE
constexpr size_t max_real_nb = 10000; // the sanitizers scan ~20x slower
#else
constexpr size_t max_real_nb = SIZE_MAX;
#endif

TEST(IndexBinaryFlatFast, SameAsFaissOnMiniLMSignCodes) {
    FAISS_BQ_REQUIRE_DATA("minilm-sap", data);
    same_as_faiss_on(data, max_real_nb, 100);
}

TEST(IndexBinaryFlatFast, SameAsFaissOnUse512SignCodes) {
    FAISS_BQ_REQUIRE_DATA("use512-wordnet", data);
    same_as_faiss_on(data, max_real_nb, 50);
}

TEST(IndexBinaryFlatFast, StorageReconstructRemoveAndResetAsFaiss) {
    const int d = 64;
    const size_t nb = 50;
    const auto codes = random_codes(nb, d / 8, 3);
    faiss::IndexBinaryFlat want(d);
    IndexBinaryFlatFast got(d);
    want.add(nb, codes.data());
    got.add(nb / 2, codes.data()); // two adds append
    got.add(nb - nb / 2, codes.data() + nb / 2 * d / 8);
    EXPECT_EQ(got.xb, want.xb);
    EXPECT_EQ(got.ntotal, want.ntotal);
    EXPECT_EQ(got.code_size, want.code_size);
    std::vector<uint8_t> a(d / 8), b(d / 8);
    got.reconstruct(17, a.data());
    want.reconstruct(17, b.data());
    EXPECT_EQ(a, b);
    faiss::IDSelectorRange range(10, 20);
    EXPECT_EQ(got.remove_ids(range), want.remove_ids(range));
    EXPECT_EQ(got.xb, want.xb); // later ids shifted, as FAISS does
    EXPECT_EQ(got.ntotal, idx_t(nb - 10));
    got.reset();
    EXPECT_EQ(got.ntotal, 0);
    EXPECT_TRUE(got.xb.empty());
}

TEST(IndexBinaryFlatFast, BadInputIsRejectedNamingTheValue) {
    test::expect_throw_naming([] { IndexBinaryFlatFast index(12); }, "d=12");
    test::expect_throw_naming([] { IndexBinaryFlatFast index(0); }, "d=0");
    test::expect_throw_naming([] { IndexBinaryFlatFast index(-8); }, "d=-8");
    IndexBinaryFlatFast index(64);
    const auto codes = random_codes(5, 8, 4);
    index.add(5, codes.data());
    std::vector<int32_t> D(10, -7);
    std::vector<idx_t> I(10, -7);
    test::expect_throw_naming(
            [&] { index.search(1, codes.data(), 0, D.data(), I.data()); },
            "k=0");
    test::expect_throw_naming(
            [&] { index.search(1, codes.data(), -3, D.data(), I.data()); },
            "k=-3");
    test::expect_throw_naming(
            [&] {
                std::vector<uint8_t> r(8);
                index.reconstruct(5, r.data());
            },
            "key=5");
    // add_with_ids throws as faiss::IndexBinaryFlat's does
    const idx_t ids[1] = {42};
    test::expect_throw_naming(
            [&] { index.add_with_ids(1, codes.data(), ids); }, "add_with_ids");
    // n = 0: nothing written; an empty range result
    faiss::RangeSearchResult none(0);
    index.range_search(0, codes.data(), 10, &none);
    EXPECT_EQ(none.lims[0], 0u);
    index.search(0, codes.data(), 3, D.data(), I.data());
    EXPECT_EQ(D[0], -7);
    EXPECT_EQ(I[0], -7);
    // k > ntotal: -1 labels and INT32_MAX distances, as FAISS
    index.search(1, codes.data(), 10, D.data(), I.data());
    EXPECT_EQ(D[0], 0);
    EXPECT_EQ(I[0], 0);
    for (int j = 5; j < 10; j++) {
        EXPECT_EQ(I[j], -1);
        EXPECT_EQ(D[j], INT32_MAX);
    }
}

} // namespace
} // namespace faiss_bq
