// The bench's dataset: base, queries, exact neighbours and the metric.
#pragma once

#include <faiss/Index.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace faiss_bq {

/// Where a dataset's files are. `groundtruth` and `info` may be missing.
struct DatasetFiles {
    std::string name;
    std::string base;
    std::string query;
    std::string groundtruth;
    std::string info; ///< info.txt of ../shared/data (gives `metric:`)

    /// The files of a ../shared/data folder (base.fvecs, query.fvecs, ...).
    static DatasetFiles in_folder(const std::string& folder);
};

struct Dataset {
    std::string name;
    size_t d = 0;
    size_t nb = 0;
    size_t nq = 0;
    faiss::MetricType metric = faiss::METRIC_INNER_PRODUCT;
    std::vector<float> base;    ///< nb x d
    std::vector<float> queries; ///< nq x d
    /// nq x gt_k exact neighbours, best first
    std::vector<int64_t> groundtruth;
    size_t gt_k = 0;
    bool groundtruth_computed = false; ///< no file: computed with IndexFlat
};

bool file_exists(const std::string& path);

/// The `metric:` line of an info.txt, if the file has one it understands.
std::optional<faiss::MetricType> metric_from_info(const std::string& path);

/// Reads the vectors (the first max_queries queries; 0 keeps all) and the
/// ground truth, computing it with faiss::IndexFlat when the file is missing
/// or info.txt gives another metric than `metric`. `metric` overrides
/// info.txt; without both, inner product.
/// Throws faiss::FaissException on unreadable or inconsistent files.
Dataset load_dataset(
        const DatasetFiles& files,
        std::optional<faiss::MetricType> metric,
        size_t max_queries);

const char* metric_name(faiss::MetricType metric);

/// 10-recall@10 of the first 10 labels of each query (its labels in rows of
/// `stride`; -1 never counts) against the dataset's true top 10, averaged.
double recall_at_10(
        const Dataset& ds,
        const std::vector<int64_t>& labels,
        size_t stride);

/// Queries per second of `search_all`, which searches n queries, in wall
/// time; repeated until min_seconds have passed, so that a small set is
/// timed above the clock's and the scheduler's noise.
double queries_per_second(
        size_t n,
        const std::function<void()>& search_all,
        double min_seconds);

} // namespace faiss_bq
