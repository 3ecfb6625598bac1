// Shared helpers of the GoogleTest suite: synthetic data, real data, recall.
#pragma once

#include <faiss/Index.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace faiss_bq {
namespace test {

using idx_t = faiss::Index::idx_t;

/// n x d Gaussian rows: x_ij = mean[j] + sigma[j] * N(0, 1), seeded.
std::vector<float> gaussian(
        size_t n,
        size_t d,
        int seed,
        const std::vector<float>& sigma,
        const std::vector<float>& mean);

/// <a, b> over d coordinates, summed in double (reference computations).
double dot(const float* a, const float* b, size_t d);

/// n x d isotropic Gaussian N(0, I).
std::vector<float> gaussian(size_t n, size_t d, int seed);

/// Fraction of the true top-k (first k of each gt row, gt_stride ids per
/// row) found among the k returned labels of each query.
double recall_at(
        size_t nq,
        size_t k,
        const idx_t* labels,
        const idx_t* gt,
        size_t gt_stride);

/// Exact k nearest neighbours (faiss::IndexFlat) of queries among base.
std::vector<idx_t> exact_knn(
        size_t d,
        const std::vector<float>& base,
        const std::vector<float>& queries,
        size_t k,
        faiss::MetricType metric);

/// Runs f and expects a faiss::FaissException whose message contains needle
/// (bad input must name the values it rejects).
void expect_throw_naming(
        const std::function<void()>& f,
        const std::string& needle);

/// A real embedding set of ../shared/data (TEXMEX files).
struct RealData {
    size_t d = 0, nb = 0, nq = 0, gt_k = 0;
    std::vector<float> base, queries;
    std::vector<idx_t> gt; ///< nq x gt_k exact neighbours (inner product)
};

/// Loads FAISS_BQ_DATA_DIR/name (the env variable FAISS_BQ_DATA overrides the
/// folder). Returns false, with a message in `why`, when it is absent.
bool load_real_data(const std::string& name, RealData& out, std::string& why);

/// Keeps the first nb base vectors and the first nq queries (where the set
/// has more) and recomputes the ground truth (gt_k neighbours by inner
/// product) for that base.
void prefix(RealData& data, size_t nb, size_t nq);

} // namespace test
} // namespace faiss_bq

/// Skips the current test with a visible message when the set is absent.
#define FAISS_BQ_REQUIRE_DATA(name, var)                                   \
    faiss_bq::test::RealData var;                                          \
    do {                                                                   \
        std::string why_;                                                  \
        if (!faiss_bq::test::load_real_data(name, var, why_)) {            \
            GTEST_SKIP() << "real data absent: " << why_                   \
                         << " (build it with ../shared/data/get-data.sh)"; \
        }                                                                  \
    } while (0)
