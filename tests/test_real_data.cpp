// Recall on real embeddings (../shared/data), against exact neighbours and
// against FAISS baselines with the same bytes per vector, in the same test.
#include <faiss_bq/IndexBQ.h>

#include "test_util.h"

#include <faiss/IndexBinaryFlat.h>
#include <faiss/IndexLSH.h>
#include <faiss/utils/hamming.h>

#include <gtest/gtest.h>

#include <cstdio>

namespace faiss_bq {
namespace {

using idx_t = faiss::Index::idx_t;
constexpr size_t k = 10;

#ifdef FAISS_BQ_SANITIZE
// Under the sanitizers the scans run ~20x slower: a prefix of the base, the
// ground truth recomputed, and only the comparisons made in the same run.
constexpr bool full_size = false;
#else
constexpr bool full_size = true;
#endif

/// The base (a prefix of at most max_nb under the sanitizers) with ground
/// truth for it.
void shrink(test::RealData& data, size_t max_nb, size_t max_nq) {
    if (full_size || data.nb <= max_nb) {
        return;
    }
    data.nb = max_nb;
    data.base.resize(max_nb * data.d);
    data.nq = std::min(data.nq, max_nq);
    data.queries.resize(data.nq * data.d);
    data.gt = test::exact_knn(
            data.d, data.base, data.queries, k, faiss::METRIC_INNER_PRODUCT);
    data.gt_k = k;
}

double recall_of(
        const faiss::Index& index,
        const test::RealData& data,
        const faiss::SearchParameters* params = nullptr) {
    std::vector<float> D(data.nq * k);
    std::vector<idx_t> I(data.nq * k);
    index.search(data.nq, data.queries.data(), k, D.data(), I.data(), params);
    return test::recall_at(data.nq, k, I.data(), data.gt.data(), data.gt_k);
}

/// FAISS's common practice: uncentred sign bits in IndexBinaryFlat.
double sign_bits_recall(const test::RealData& data) {
    faiss::IndexBinaryFlat index(data.d);
    auto bits = [&](size_t n, const float* x) {
        std::vector<uint8_t> b(n * data.d / 8);
        faiss::fvecs2bitvecs(x, b.data(), data.d, n);
        return b;
    };
    index.add(data.nb, bits(data.nb, data.base.data()).data());
    std::vector<int32_t> D(data.nq * k);
    std::vector<idx_t> I(data.nq * k);
    index.search(
            data.nq,
            bits(data.nq, data.queries.data()).data(),
            k,
            D.data(),
            I.data());
    return test::recall_at(data.nq, k, I.data(), data.gt.data(), data.gt_k);
}

/// FAISS's IndexLSH (random rotation, trained thresholds) given the same
/// bytes per vector as the IndexBQ code (bits plus factors).
double lsh_recall(const test::RealData& data, size_t bytes) {
    faiss::IndexLSH index(data.d, int(8 * bytes), true, true);
    index.train(data.nb, data.base.data());
    index.add(data.nb, data.base.data());
    return recall_of(index, data);
}

struct Result {
    double bq_asym, bq_sym, sign, lsh;
};

/// `sign`: sign_bits_recall(data), the same at every nbits (computed once).
Result run(const test::RealData& data, int nbits, double sign) {
    IndexBQ index(data.d, nbits, faiss::METRIC_INNER_PRODUCT);
    index.train(data.nb, data.base.data());
    index.add(data.nb, data.base.data());
    SearchParametersBQ sym;
    sym.estimator = Estimator::symmetric;
    Result r{
            recall_of(index, data),
            recall_of(index, data, &sym),
            sign,
            lsh_recall(data, index.code_size)};
    std::printf(
            "[%s BQ%d, %zu B/vector] 10-recall@10: asymmetric %.4f, "
            "symmetric %.4f; FAISS sign bits (%zu B) %.4f, IndexLSH (%zu B) "
            "%.4f\n%s",
            full_size ? "full" : "sanitizer subset",
            nbits,
            index.code_size,
            r.bq_asym,
            r.bq_sym,
            data.d / 8,
            r.sign,
            index.code_size,
            r.lsh,
            index.plan.report().c_str());
    return r;
}

// IndexBQ must beat what FAISS offers at the same bytes per vector: sign
// bits (fewer bytes, the common practice) and IndexLSH given BQ's bytes.
void expect_beats_faiss(const Result& r) {
    EXPECT_GE(r.bq_asym, r.sign);
    EXPECT_GE(r.bq_asym, r.lsh);
}

TEST(RealData, MiniLM) {
    FAISS_BQ_REQUIRE_DATA("minilm-sap", data);
    const double sign = sign_bits_recall(data);
    for (int nbits : {1, 2}) {
        expect_beats_faiss(run(data, nbits, sign));
    }
}

// The foundation's targets on use512-wordnet (60k base, 1000 queries):
// stage-1 10-recall@10 >= 0.70 at 1 bit and >= 0.85 at 2 bits, asymmetric.
TEST(RealData, Use512WordNet) {
    FAISS_BQ_REQUIRE_DATA("use512-wordnet", data);
    shrink(data, 10000, 200);
    const double sign = sign_bits_recall(data);
    const Result r1 = run(data, 1, sign);
    const Result r2 = run(data, 2, sign);
    expect_beats_faiss(r1);
    expect_beats_faiss(r2);
    EXPECT_GT(r2.bq_asym, r1.bq_asym);
    if (full_size) {
        EXPECT_GE(r1.bq_asym, 0.70);
        EXPECT_GE(r2.bq_asym, 0.85);
    }
}

} // namespace
} // namespace faiss_bq
