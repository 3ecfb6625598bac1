// IndexFromBinary: the float front end of faiss::IndexBinary structures.
#include <faiss_bq/IndexBQRefine.h>
#include <faiss_bq/IndexBinaryFlatFast.h>
#include <faiss_bq/IndexFromBinary.h>
#include <faiss_bq/clone_index.h>
#include <faiss_bq/index_factory.h>
#include <faiss_bq/index_io.h>

#include "test_util.h"

#include <faiss/IndexBinaryFlat.h>
#include <faiss/IndexBinaryHNSW.h>
#include <faiss/IndexBinaryHash.h>
#include <faiss/IndexBinaryIVF.h>
#include <faiss/IndexFlat.h>
#include <faiss/IndexIDMap.h>
#include <faiss/impl/FaissException.h>
#include <faiss/impl/IDSelector.h>
#include <faiss/impl/io.h>
#include <faiss/utils/hamming.h>

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <set>

namespace faiss_bq {
namespace {

using idx_t = faiss::Index::idx_t;
constexpr size_t d = 64, nb = 1500, nq = 30;

struct Fixture {
    std::vector<float> xb, xq;
    Fixture() {
        std::vector<float> sigma(d), mean(d, 0.1f);
        for (size_t j = 0; j < d; j++) {
            sigma[j] = 1.f / std::sqrt(1.f + 0.3f * j);
        }
        xb = test::gaussian(nb, d, 1, sigma, mean);
        xq = test::gaussian(nq, d, 2, sigma, mean);
    }
};

struct Result {
    std::vector<float> D;
    std::vector<idx_t> I;
};

Result search(
        const faiss::Index& index,
        const std::vector<float>& xq,
        idx_t k,
        const faiss::SearchParameters* params = nullptr) {
    const size_t n = xq.size() / index.d;
    Result r{std::vector<float>(n * k), std::vector<idx_t>(n * k)};
    index.search(n, xq.data(), k, r.D.data(), r.I.data(), params);
    return r;
}

/// A front end over `binary` (owned), trained and filled with xb.
std::unique_ptr<IndexFromBinary> front(
        const Fixture& f,
        faiss::IndexBinary* binary,
        int nbits = 1,
        faiss::MetricType m = faiss::METRIC_L2) {
    auto fe = std::make_unique<IndexFromBinary>(binary, d, nbits, m);
    fe->own_fields = true;
    fe->train(nb, f.xb.data());
    fe->add(nb, f.xb.data());
    return fe;
}

/// Same distances; the same ids wherever a distance does not tie with the
/// k-th (Hamming distances tie often, and structures order ties freely).
void expect_same_neighbours(const Result& a, const Result& b, idx_t k) {
    ASSERT_EQ(a.D, b.D);
    for (size_t q = 0; q < a.I.size() / k; q++) {
        const float kth = a.D[q * k + k - 1];
        std::set<idx_t> sa, sb;
        for (idx_t j = 0; j < k; j++) {
            if (a.D[q * k + j] != kth) {
                sa.insert(a.I[q * k + j]);
                sb.insert(b.I[q * k + j]);
            }
        }
        ASSERT_EQ(sa, sb) << "query " << q;
    }
}

// With an uncentred axis plan at 1 bit the codes are FAISS's sign bits
// (fvecs2bitvecs): the front end over the flat replacement gives FAISS's
// IndexBinaryFlat results on them.
TEST(IndexFromBinary, SignBitsAreFaissBinaryFlat) {
    Fixture f;
    auto fe =
            std::make_unique<IndexFromBinary>(new IndexBinaryFlatFast(d), d, 1);
    fe->own_fields = true;
    fe->trainer.transform = TransformChoice::identity;
    fe->trainer.centering = CenteringChoice::uncentered;
    fe->train(nb, f.xb.data());
    fe->add(nb, f.xb.data());
    faiss::IndexBinaryFlat faiss_flat(d);
    std::vector<uint8_t> bb(nb * d / 8), qb(nq * d / 8);
    faiss::fvecs2bitvecs(f.xb.data(), bb.data(), d, nb);
    faiss::fvecs2bitvecs(f.xq.data(), qb.data(), d, nq);
    faiss_flat.add(nb, bb.data());
    const idx_t k = 10;
    std::vector<int32_t> hD(nq * k);
    std::vector<idx_t> hI(nq * k);
    faiss_flat.search(nq, qb.data(), k, hD.data(), hI.data());
    const Result got = search(*fe, f.xq, k);
    for (size_t i = 0; i < got.I.size(); i++) {
        ASSERT_EQ(got.D[i], float(hD[i]));
        ASSERT_EQ(got.I[i], hI[i]);
    }
}

// FAISS's IVF (all lists probed) and HNSW (efSearch >= ntotal) return what the
// flat replacement returns, for 1 and 2 bits.
TEST(IndexFromBinary, ExhaustiveStructuresEqualFlat) {
    Fixture f;
    const idx_t k = 10;
    for (int nbits : {1, 2}) {
        const int bits = 8 * nbits * int((d + 7) / 8);
        auto flat = front(f, new IndexBinaryFlatFast(bits), nbits);
        const Result want = search(*flat, f.xq, k);

        auto quantizer = new faiss::IndexBinaryFlat(bits);
        auto ivf = new faiss::IndexBinaryIVF(quantizer, bits, 16);
        ivf->own_fields = true;
        ivf->nprobe = 16;
        auto fe_ivf = front(f, ivf, nbits);
        expect_same_neighbours(search(*fe_ivf, f.xq, k), want, k);

        auto hnsw = new faiss::IndexBinaryHNSW(bits, 16);
        hnsw->hnsw.efSearch = nb;
        auto fe_hnsw = front(f, hnsw, nbits);
        expect_same_neighbours(search(*fe_hnsw, f.xq, k), want, k);

        // the plan the front ends trained is the same (same data, seed)
        EXPECT_EQ(fe_ivf->plan.thresholds, flat->plan.thresholds);
    }
}

// IndexBinaryHash is not exhaustive: whatever it returns carries the true
// Hamming distance of the id it names.
TEST(IndexFromBinary, HashReturnsTrueDistances) {
    Fixture f;
    const idx_t k = 5;
    auto fe = front(f, new faiss::IndexBinaryHash(d, 8));
    const Result got = search(*fe, f.xq, k);
    std::vector<uint8_t> bb(nb * d / 8), qb(nq * d / 8);
    fe->binarize(nb, f.xb.data(), bb.data());
    fe->binarize(nq, f.xq.data(), qb.data());
    size_t found = 0;
    for (size_t i = 0; i < got.I.size(); i++) {
        if (got.I[i] < 0) {
            continue;
        }
        found++;
        const uint8_t* a = qb.data() + (i / k) * d / 8;
        const uint8_t* b = bb.data() + got.I[i] * d / 8;
        int h = 0;
        for (size_t j = 0; j < d / 8; j++) {
            h += __builtin_popcount(a[j] ^ b[j]);
        }
        ASSERT_EQ(got.D[i], float(h));
    }
    EXPECT_GT(found, 0u);
}

TEST(IndexFromBinary, InnerProductScores) {
    Fixture f;
    const idx_t k = 10;
    auto l2 = front(f, new IndexBinaryFlatFast(d), 1, faiss::METRIC_L2);
    // the same plan (the trainer may choose differently for another metric)
    auto ip = std::make_unique<IndexFromBinary>(
            new IndexBinaryFlatFast(d), l2->plan, faiss::METRIC_INNER_PRODUCT);
    ip->own_fields = true;
    ip->add(nb, f.xb.data());
    const Result a = search(*l2, f.xq, k), b = search(*ip, f.xq, k);
    for (size_t i = 0; i < a.D.size(); i++) {
        ASSERT_EQ(b.D[i], float(d) - 2 * a.D[i]);
    }
}

// The selector is passed to the flat replacement and emulated for FAISS's
// HNSW (exhaustive here): both return the selected exact Hamming neighbours.
TEST(IndexFromBinary, IDSelector) {
    Fixture f;
    const idx_t k = 10;
    faiss::IDSelectorRange upper(nb / 2, nb);
    faiss::SearchParameters p;
    p.sel = &upper;
    auto flat = front(f, new IndexBinaryFlatFast(d));
    const Result a = search(*flat, f.xq, k, &p);
    auto hnsw = new faiss::IndexBinaryHNSW(d, 16);
    hnsw->hnsw.efSearch = nb;
    auto fe = front(f, hnsw);
    const Result b = search(*fe, f.xq, k, &p);
    expect_same_neighbours(b, a, k);
    for (idx_t id : b.I) {
        ASSERT_GE(id, idx_t(nb / 2));
    }
    // a selector smaller than k: the rest is -1
    faiss::IDSelectorRange three(10, 13);
    p.sel = &three;
    const Result c = search(*fe, f.xq, k, &p);
    for (size_t q = 0; q < nq; q++) {
        for (idx_t j = 0; j < k; j++) {
            ASSERT_EQ(c.I[q * k + j] < 0, j >= 3);
        }
    }
}

// Refine on top, inside FAISS's id map: with every candidate it is exact.
TEST(IndexFromBinary, RefinedInsideIDMap) {
    Fixture f;
    const idx_t k = 10;
    auto fe = new IndexFromBinary(new faiss::IndexBinaryHNSW(d, 16), d, 1);
    fe->own_fields = true;
    auto rf = new IndexBQRefine(fe);
    rf->own_fields = rf->own_refine_index = true;
    rf->k_factor = float(nb) / k;
    faiss::IndexIDMap2 map(rf);
    map.own_fields = true;
    static_cast<faiss::IndexBinaryHNSW*>(fe->index)->hnsw.efSearch = nb;
    map.train(nb, f.xb.data());
    std::vector<idx_t> ids(nb);
    for (size_t i = 0; i < nb; i++) {
        ids[i] = 5 * idx_t(i) + 1;
    }
    map.add_with_ids(nb, f.xb.data(), ids.data());
    faiss::IndexFlat flat(d);
    flat.add(nb, f.xb.data());
    const Result want = search(flat, f.xq, k), got = search(map, f.xq, k);
    for (size_t i = 0; i < got.I.size(); i++) {
        ASSERT_NEAR(got.D[i], want.D[i], 1e-4f * (1 + want.D[i]));
        ASSERT_EQ(got.I[i], ids[want.I[i]]);
    }
    // remove_ids reaches the binary store (flat replacement supports it)
    auto fe2 = front(f, new IndexBinaryFlatFast(d));
    faiss::IDSelectorRange first(0, 100);
    EXPECT_EQ(fe2->remove_ids(first), 100u);
    EXPECT_EQ(fe2->ntotal, idx_t(nb - 100));
}

// Factory strings and files: every front end (and refine, id map around it)
// comes back from its bytes with the same plan, bytes and results.
TEST(IndexFromBinary, FactoryAndFilesRoundTrip) {
    Fixture f;
    const idx_t k = 10;
    const struct {
        const char* description;
        faiss::MetricType metric;
    } cases[] = {
            {"BQ1(BFlat)", faiss::METRIC_L2},
            {"BQ1(BFlat)", faiss::METRIC_INNER_PRODUCT},
            {"BQ2_axis(BHNSW8)", faiss::METRIC_INNER_PRODUCT},
            {"BQ1_rot(BIVF8)", faiss::METRIC_L2},
            {"IDMap2,BQ1(BHash8),RFlat", faiss::METRIC_INNER_PRODUCT},
            {"BQ2_noctr(BFlat),Refine(SQ8)", faiss::METRIC_L2},
    };
    for (const auto& c : cases) {
        const char* description = c.description;
        const faiss::MetricType m = c.metric;
        SCOPED_TRACE(description);
        {
            std::unique_ptr<faiss::Index> index(
                    faiss_bq::index_factory(d, description, m));
            EXPECT_EQ(faiss_bq::index_factory_string(index.get()), description);
            index->train(nb, f.xb.data());
            if (auto map = dynamic_cast<faiss::IndexIDMap*>(index.get())) {
                std::vector<idx_t> ids(nb);
                for (size_t i = 0; i < nb; i++) {
                    ids[i] = 3 * idx_t(i);
                }
                map->add_with_ids(nb, f.xb.data(), ids.data());
            } else {
                index->add(nb, f.xb.data());
            }
            faiss::VectorIOWriter w;
            faiss_bq::write_index(index.get(), &w);
            faiss::VectorIOReader r;
            r.data = w.data;
            std::unique_ptr<faiss::Index> back(faiss_bq::read_index(&r));
            faiss::VectorIOWriter w2;
            faiss_bq::write_index(back.get(), &w2);
            // FAISS writes IndexBinaryHash's buckets in hash-map order,
            // which a re-read map need not keep: only its results compare.
            if (!std::strstr(description, "BHash")) {
                EXPECT_EQ(w2.data, w.data);
            }
            EXPECT_EQ(faiss_bq::index_factory_string(back.get()), description);
            const Result a = search(*index, f.xq, k),
                         b = search(*back, f.xq, k);
            EXPECT_EQ(a.D, b.D);
            EXPECT_EQ(a.I, b.I);
            std::unique_ptr<faiss::Index> copy(
                    faiss_bq::clone_index(index.get()));
            EXPECT_EQ(search(*copy, f.xq, k).I, a.I);
        }
    }
    // a corrupted front end: every flipped byte is caught by the checksum
    std::unique_ptr<faiss::Index> index(
            faiss_bq::index_factory(d, "BQ1(BFlat)"));
    index->train(nb, f.xb.data());
    index->add(20, f.xb.data());
    faiss::VectorIOWriter w;
    faiss_bq::write_index(index.get(), &w);
    for (size_t at = 4; at < w.data.size(); at += 7) {
        faiss::VectorIOReader r;
        r.data = w.data;
        r.data[at] ^= 0x5a;
        EXPECT_THROW(
                std::unique_ptr<faiss::Index>(faiss_bq::read_index(&r)),
                faiss::FaissException)
                << "byte " << at;
    }
}

TEST(IndexFromBinary, FactoryErrors) {
    const struct {
        const char* description;
        const char* needle;
    } cases[] = {
            {"BQ1_sym(BFlat)", "_sym and _q<b> do not apply"},
            {"BQ1_q4(BFlat)", "_sym and _q<b> do not apply"},
            {"BQ3(BFlat)", "1 or 2 bits"},
            {"BQ1(BFoo)", "token 'BFoo' at position 4"},
            {"BQ1(BFlat", "unmatched '('"},
            {"BQ1()", "expected BQ<n>[_options](<binary index>)"},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.description);
        test::expect_throw_naming(
                [&] { delete faiss_bq::index_factory(d, c.description); },
                c.needle);
    }
}

TEST(IndexFromBinary, BadInput) {
    Fixture f;
    // a binary index whose d is not the plan's code bits
    faiss::IndexBinaryFlat wrong(72);
    test::expect_throw_naming(
            [&] { IndexFromBinary(&wrong, d, 1); },
            "d=72 bits but the plan's codes have 64");
    test::expect_throw_naming(
            [&] { IndexFromBinary(&wrong, 100, 2); }, "have 208 bits");
    faiss::IndexBinaryFlat ok(d);
    test::expect_throw_naming([&] { IndexFromBinary(&ok, d, 3); }, "nbits=3");
    test::expect_throw_naming([&] { IndexFromBinary(&ok, 0, 1); }, "d=0");
    test::expect_throw_naming([&] { IndexFromBinary(nullptr, d, 1); }, "null");
    // adding before the plan is trained
    IndexFromBinary fe(&ok, d, 1);
    test::expect_throw_naming(
            [&] { fe.add(10, f.xb.data()); }, "plan is not trained");
    std::vector<float> D(10);
    std::vector<idx_t> I(10);
    test::expect_throw_naming(
            [&] { fe.search(1, f.xq.data(), 10, D.data(), I.data()); },
            "not trained");
    fe.train(nb, f.xb.data());
    fe.add(nb, f.xb.data());
    test::expect_throw_naming(
            [&] { fe.search(1, f.xq.data(), 0, D.data(), I.data()); }, "k=0");
    std::vector<float> bad(f.xb.begin(), f.xb.begin() + d);
    bad[5] = INFINITY;
    test::expect_throw_naming([&] { fe.add(1, bad.data()); }, "column 5");
    test::expect_throw_naming(
            [&] { fe.search(1, bad.data(), 10, D.data(), I.data()); },
            "column 5");
    // an untrained binary IVF: train() trains it; add before that fails
    auto q = new faiss::IndexBinaryFlat(d);
    faiss::IndexBinaryIVF ivf(q, d, 8);
    ivf.own_fields = true;
    IndexFromBinary with_plan(&ivf, fe.plan);
    EXPECT_FALSE(with_plan.is_trained);
    test::expect_throw_naming(
            [&] { with_plan.add(10, f.xb.data()); },
            "binary index is not trained");
}

} // namespace
} // namespace faiss_bq
