#include "bench_data.h"

#include <faiss_bq/utils/vecs_io.h>

#include <faiss/IndexFlat.h>
#include <faiss/impl/FaissAssert.h>
#include <faiss/utils/utils.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <fstream>

namespace faiss_bq {

namespace {

std::string lowercase(std::string s) {
    for (char& c : s) {
        c = char(std::tolower(static_cast<unsigned char>(c)));
    }
    return s;
}

std::string basename_of(std::string path) {
    while (path.size() > 1 && path.back() == '/') {
        path.pop_back();
    }
    const size_t slash = path.rfind('/');
    return slash == std::string::npos ? path : path.substr(slash + 1);
}

std::vector<int64_t> exact_neighbours(const Dataset& ds, size_t k) {
    faiss::IndexFlat flat(ds.d, ds.metric);
    flat.add(ds.nb, ds.base.data());
    std::vector<float> distances(ds.nq * k);
    std::vector<int64_t> labels(ds.nq * k);
    flat.search(ds.nq, ds.queries.data(), k, distances.data(), labels.data());
    return labels;
}

} // namespace

DatasetFiles DatasetFiles::in_folder(const std::string& folder) {
    DatasetFiles files;
    files.name = basename_of(folder);
    files.base = folder + "/base.fvecs";
    files.query = folder + "/query.fvecs";
    files.groundtruth = folder + "/groundtruth.ivecs";
    files.info = folder + "/info.txt";
    return files;
}

bool file_exists(const std::string& path) {
    return std::ifstream(path).good();
}

std::optional<faiss::MetricType> metric_from_info(const std::string& path) {
    std::ifstream in(path);
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("metric:", 0) != 0) {
            continue;
        }
        const std::string value = lowercase(line.substr(7));
        if (value.find("inner") != std::string::npos ||
            value.find("cosine") != std::string::npos) {
            return faiss::METRIC_INNER_PRODUCT;
        }
        if (value.find("l2") != std::string::npos) {
            return faiss::METRIC_L2;
        }
    }
    return std::nullopt;
}

Dataset load_dataset(
        const DatasetFiles& files,
        std::optional<faiss::MetricType> metric,
        size_t max_queries) {
    Dataset ds;
    ds.name = files.name;
    const std::optional<faiss::MetricType> info_metric =
            metric_from_info(files.info);
    ds.metric =
            metric.value_or(info_metric.value_or(faiss::METRIC_INNER_PRODUCT));
    // A ground truth file holds the neighbours under the dataset's metric.
    const bool groundtruth_usable = !files.groundtruth.empty() &&
            file_exists(files.groundtruth) &&
            (!info_metric || *info_metric == ds.metric);

    VecsFile<float> base = read_fvecs(files.base);
    VecsFile<float> query = read_fvecs(files.query);
    FAISS_THROW_IF_NOT_FMT(
            base.d == query.d,
            "base has d=%zu, queries d=%zu",
            base.d,
            query.d);
    FAISS_THROW_IF_NOT_FMT(
            base.n >= 10, "%zu base vectors: need at least 10", base.n);
    ds.d = base.d;
    ds.nb = base.n;
    ds.nq = max_queries ? std::min(max_queries, query.n) : query.n;
    ds.base = std::move(base.data);
    ds.queries = std::move(query.data);
    ds.queries.resize(ds.nq * ds.d);

    if (groundtruth_usable) {
        VecsFile<int32_t> gt = read_ivecs(files.groundtruth);
        FAISS_THROW_IF_NOT_FMT(
                gt.n >= ds.nq && gt.d >= 10,
                "%s: %zu x %zu, need at least %zu x 10",
                files.groundtruth.c_str(),
                gt.n,
                gt.d,
                ds.nq);
        ds.gt_k = gt.d;
        ds.groundtruth.assign(
                gt.data.begin(), gt.data.begin() + ds.nq * ds.gt_k);
    } else {
        ds.gt_k = std::min<size_t>(100, ds.nb);
        ds.groundtruth = exact_neighbours(ds, ds.gt_k);
        ds.groundtruth_computed = true;
    }
    return ds;
}

double recall_at_10(
        const Dataset& ds,
        const std::vector<int64_t>& labels,
        size_t stride) {
    constexpr size_t k = 10;
    size_t hits = 0;
    for (size_t q = 0; q < ds.nq; q++) {
        const int64_t* truth = ds.groundtruth.data() + q * ds.gt_k;
        for (size_t i = 0; i < k; i++) {
            const int64_t id = labels[q * stride + i];
            hits += id >= 0 && std::find(truth, truth + k, id) != truth + k;
        }
    }
    return double(hits) / double(ds.nq * k);
}

double queries_per_second(
        size_t n,
        const std::function<void()>& search_all,
        double min_seconds) {
    const double start = faiss::getmillisecs();
    size_t calls = 0;
    double elapsed = 0;
    do {
        search_all();
        calls++;
        elapsed = (faiss::getmillisecs() - start) / 1000;
    } while (elapsed < min_seconds);
    return double(n * calls) / elapsed;
}

const char* metric_name(faiss::MetricType metric) {
    return metric == faiss::METRIC_INNER_PRODUCT ? "inner product" : "L2";
}

} // namespace faiss_bq
