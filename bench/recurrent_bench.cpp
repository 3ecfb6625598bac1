// Recurrent binarization and SDC (issue 16, BEBR) against plain Hamming and
// faiss_bq's symmetric and asymmetric estimators at equal bits per
// coordinate: 10-recall@10, QPS and bytes per vector, per data set.
//
// QPS on a shared machine drifts with the load, so the rows are timed in
// rounds, every row once per round in turn, and each row keeps its best
// round: rows compared in one table met the same conditions.
//
//   recurrent_bench [--data DIR]... [--nq N] [--rounds R] [--threads T]
//                   [--stages S]
// Without --data: use512-wordnet, minilm-sap and glove100-wink under
// FAISS_BQ_DATA (or ../shared/data).
#include "IndexRecurrentHamming.h"
#include "IndexSignBits.h"
#include "bench_data.h"

#include <faiss_bq/IndexBQ.h>
#include <faiss_bq/IndexBQRecurrent.h>

#include <faiss/impl/FaissAssert.h>

#include <omp.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <vector>

extern "C" void openblas_set_num_threads(int) __attribute__((weak));

namespace faiss_bq {
namespace {

using idx_t = faiss::Index::idx_t;

struct Row {
    std::string name;
    int bits = 0; ///< bits per coordinate
    std::shared_ptr<faiss::Index> index;
    std::shared_ptr<SearchParametersBQ> params;
    double train_seconds = 0;
    double recall = 0;
    double best_qps = 0;
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
            .count();
}

std::shared_ptr<SearchParametersBQ> params_for(Estimator e) {
    auto p = std::make_shared<SearchParametersBQ>();
    p->estimator = e;
    return p;
}

void run(const std::string& folder, size_t nq, int rounds, int max_stages) {
    const Dataset ds =
            load_dataset(DatasetFiles::in_folder(folder), std::nullopt, nq);
    const idx_t d = idx_t(ds.d);
    std::printf(
            "\n## %s: %zu x %zu, %zu queries, %s, %d thread(s)\n\n",
            ds.name.c_str(),
            ds.nb,
            ds.d,
            ds.nq,
            metric_name(ds.metric),
            omp_get_max_threads());
    std::fflush(stdout);
    std::vector<Row> rows;
    auto trained = [&](faiss::Index* index) {
        const auto t0 = std::chrono::steady_clock::now();
        index->train(idx_t(ds.nb), ds.base.data());
        const double s = seconds_since(t0);
        index->add(idx_t(ds.nb), ds.base.data());
        return s;
    };
    for (int nbits : {1, 2}) {
        for (Estimator e : {Estimator::symmetric, Estimator::asymmetric}) {
            auto bq = std::make_shared<IndexBQ>(d, nbits, ds.metric);
            bq->estimator = e; // the trainer decides for this estimator
            const double s = trained(bq.get());
            rows.push_back(
                    {"BQ" + std::to_string(nbits) +
                             (e == Estimator::symmetric ? " sym" : " asym"),
                     nbits,
                     bq,
                     params_for(e),
                     s});
        }
    }
    rows.push_back(
            {"BinaryFlat sign (uncentred)",
             1,
             std::make_shared<IndexSignBits>(d),
             nullptr,
             0});
    rows.back().index->add(idx_t(ds.nb), ds.base.data());
    for (int u = 1; u <= max_stages; u++) {
        for (bool per_vector : {true, false}) {
            auto r = std::make_shared<IndexBQRecurrent>(
                    d, u, ds.metric, per_vector);
            const double s = trained(r.get());
            const std::string name =
                    "BQR" + std::to_string(u) + (per_vector ? "" : "_gscale");
            rows.push_back(
                    {name + " sdc", u, r, params_for(Estimator::symmetric), s});
            rows.push_back(
                    {name + " asym",
                     u,
                     r,
                     params_for(Estimator::asymmetric),
                     s});
            if (per_vector) {
                rows.push_back(
                        {name + " bits, Hamming in faiss::IndexBinaryFlat",
                         u,
                         std::make_shared<IndexRecurrentHamming>(*r, true),
                         nullptr,
                         s});
                rows.push_back(
                        {name + " bits, Hamming in IndexBinaryFlatFast",
                         u,
                         std::make_shared<IndexRecurrentHamming>(*r, false),
                         nullptr,
                         s});
            }
        }
    }
    const idx_t k = 10;
    std::vector<float> D(ds.nq * k);
    std::vector<idx_t> I(ds.nq * k);
    for (Row& row : rows) {
        row.index->search(
                idx_t(ds.nq),
                ds.queries.data(),
                k,
                D.data(),
                I.data(),
                row.params.get());
        row.recall = recall_at_10(ds, I, size_t(k));
    }
    for (int round = 0; round < rounds; round++) {
        for (Row& row : rows) {
            const double qps = queries_per_second(
                    ds.nq,
                    [&] {
                        row.index->search(
                                idx_t(ds.nq),
                                ds.queries.data(),
                                k,
                                D.data(),
                                I.data(),
                                row.params.get());
                    },
                    0.3);
            row.best_qps = std::max(row.best_qps, qps);
        }
    }
    std::printf(
            "| method | bits/coord | bytes/vector | 10-recall@10 | QPS (best "
            "of %d rounds) | train s |\n|---|--:|--:|--:|--:|--:|\n",
            rounds);
    for (const Row& row : rows) {
        std::printf(
                "| %s | %d | %zu | %.3f | %.0f | %.1f |\n",
                row.name.c_str(),
                row.bits,
                row.index->sa_code_size(),
                row.recall,
                row.best_qps,
                row.train_seconds);
    }
    std::fflush(stdout);
}

} // namespace
} // namespace faiss_bq

int main(int argc, char** argv) {
    std::vector<std::string> folders;
    size_t nq = 0;
    int rounds = 3, threads = 1, stages = 4;
    for (int i = 1; i < argc; i++) {
        const std::string arg = argv[i];
        if (i + 1 >= argc) {
            std::fprintf(
                    stderr, "recurrent_bench: %s needs a value\n", argv[i]);
            return 2;
        }
        const std::string value = argv[++i];
        if (arg == "--data") {
            folders.push_back(value);
        } else if (arg == "--nq") {
            nq = std::stoul(value);
        } else if (arg == "--rounds") {
            rounds = std::stoi(value);
        } else if (arg == "--threads") {
            threads = std::stoi(value);
        } else if (arg == "--stages") {
            stages = std::stoi(value);
        } else {
            std::fprintf(
                    stderr,
                    "usage: recurrent_bench [--data DIR]... [--nq N] "
                    "[--rounds R] [--threads T] [--stages 1..4]\n");
            return 2;
        }
    }
    if (folders.empty()) {
        const char* env = std::getenv("FAISS_BQ_DATA");
        const std::string root = env && *env ? env : FAISS_BQ_DEFAULT_DATA;
        for (const char* name :
             {"use512-wordnet", "minilm-sap", "glove100-wink"}) {
            folders.push_back(root + "/" + name);
        }
    }
    omp_set_num_threads(threads);
    if (openblas_set_num_threads) {
        openblas_set_num_threads(threads);
    }
    try {
        for (const std::string& f : folders) {
            faiss_bq::run(f, nq, rounds, stages);
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "recurrent_bench: %s\n", e.what());
        return 1;
    }
    return 0;
}
