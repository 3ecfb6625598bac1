#include "test_util.h"

#include <faiss_bq/utils/vecs_io.h>

#include <faiss/IndexFlat.h>
#include <faiss/impl/FaissException.h>
#include <faiss/utils/random.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>

namespace faiss_bq {
namespace test {

double dot(const float* a, const float* b, size_t d) {
    double s = 0;
    for (size_t j = 0; j < d; j++) {
        s += double(a[j]) * b[j];
    }
    return s;
}

std::vector<float> gaussian(
        size_t n,
        size_t d,
        int seed,
        const std::vector<float>& sigma,
        const std::vector<float>& mean) {
    std::vector<float> x(n * d);
    faiss::float_randn(x.data(), x.size(), seed);
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < d; j++) {
            x[i * d + j] = mean[j] + sigma[j] * x[i * d + j];
        }
    }
    return x;
}

std::vector<float> gaussian(size_t n, size_t d, int seed) {
    return gaussian(
            n, d, seed, std::vector<float>(d, 1.f), std::vector<float>(d, 0.f));
}

double recall_at(
        size_t nq,
        size_t k,
        const idx_t* labels,
        const idx_t* gt,
        size_t gt_stride) {
    size_t hits = 0;
    for (size_t i = 0; i < nq; i++) {
        const idx_t* l = labels + i * k;
        for (size_t a = 0; a < k; a++) {
            hits += std::count(l, l + k, gt[i * gt_stride + a]);
        }
    }
    return double(hits) / double(nq * k);
}

std::vector<idx_t> exact_knn(
        size_t d,
        const std::vector<float>& base,
        const std::vector<float>& queries,
        size_t k,
        faiss::MetricType metric) {
    faiss::IndexFlat flat(d, metric);
    flat.add(base.size() / d, base.data());
    const size_t nq = queries.size() / d;
    std::vector<float> dis(nq * k);
    std::vector<idx_t> ids(nq * k);
    flat.search(nq, queries.data(), k, dis.data(), ids.data());
    return ids;
}

void expect_throw_naming(
        const std::function<void()>& f,
        const std::string& needle) {
    try {
        f();
        ADD_FAILURE() << "no exception; expected one naming '" << needle << "'";
    } catch (const faiss::FaissException& e) {
        EXPECT_NE(std::string(e.what()).find(needle), std::string::npos)
                << e.what();
    }
}

bool load_real_data(const std::string& name, RealData& out, std::string& why) {
    const char* env = std::getenv("FAISS_BQ_DATA");
    const std::string dir =
            std::string(env && *env ? env : FAISS_BQ_DATA_DIR) + "/" + name;
    for (const char* f : {"base.fvecs", "query.fvecs", "groundtruth.ivecs"}) {
        if (!std::ifstream(dir + "/" + f)) {
            why = dir + "/" + f + " not found";
            return false;
        }
    }
    VecsFile<float> base = read_fvecs(dir + "/base.fvecs");
    VecsFile<float> query = read_fvecs(dir + "/query.fvecs");
    VecsFile<int32_t> gt = read_ivecs(dir + "/groundtruth.ivecs");
    out.d = base.d;
    out.nb = base.n;
    out.nq = query.n;
    out.gt_k = gt.d;
    out.base = std::move(base.data);
    out.queries = std::move(query.data);
    out.gt.assign(gt.data.begin(), gt.data.end());
    return true;
}

void prefix(RealData& data, size_t nb, size_t nq) {
    data.nb = std::min(data.nb, nb);
    data.base.resize(data.nb * data.d);
    data.nq = std::min(data.nq, nq);
    data.queries.resize(data.nq * data.d);
    data.gt = exact_knn(
            data.d,
            data.base,
            data.queries,
            data.gt_k,
            faiss::METRIC_INNER_PRODUCT);
}

} // namespace test
} // namespace faiss_bq
