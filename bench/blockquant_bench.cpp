// BlockQuant (issue 16) against fast scan's joint nibbles, the data-trained
// 4-D / 2-D codebooks, at equal bytes per vector (every byte counted,
// factors included): 10-recall@10 of the first stage against exact
// neighbours, per data set.
//
// Rows are factory strings. By default, for each block size k that divides
// the padded dimension D: BKQ<k>x<m> (trained) and BKQ<k>x<m>_obl for the
// direction bits in --bits, beside BQ<D/k - 4>B_fs (a budget of D/k - 4
// code bytes: with its 12 bytes of factors at most the D/k + 8 bytes of
// BlockQuant), plus BQ1_fs and BQ2_fs. QPS is timed in rounds, every row
// once per round, each keeping its best; on a shared machine it is only
// indicative (recall is exact).
//
//   blockquant_bench [--data DIR]... [--nq N] [--rounds R] [--threads T]
//                    [--blocks 4,8,16] [--bits 5,6,7] [--rows S1;S2;...]
// Without --data: use512-wordnet, minilm-sap and glove100-wink under
// FAISS_BQ_DATA (or ../shared/data); a missing set is skipped with a line.
#include "bench_data.h"

#include <faiss_bq/IndexBlockQuant.h>
#include <faiss_bq/index_factory.h>

#include <omp.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

extern "C" void openblas_set_num_threads(int) __attribute__((weak));

namespace faiss_bq {
namespace {

using idx_t = faiss::Index::idx_t;

struct Options {
    size_t nq = 0;
    int rounds = 2;
    std::vector<int> blocks{4, 8, 16, 32};
    std::vector<int> bits{4, 5, 6, 7, 8};
    std::vector<std::string> rows; ///< explicit factory strings
};

struct Row {
    std::string name;
    std::unique_ptr<faiss::Index> index;
    double train_seconds = 0, add_seconds = 0, recall = 0, best_qps = 0;
};

std::vector<std::string> split(const std::string& s, char sep) {
    std::vector<std::string> out;
    std::stringstream in(s);
    for (std::string item; std::getline(in, item, sep);) {
        if (!item.empty()) {
            out.push_back(item);
        }
    }
    return out;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
            .count();
}

std::vector<std::string> default_rows(int d, const Options& o) {
    const int D = IndexBlockQuant::padded_dim(d);
    std::vector<std::string> rows{"BQ1_fs", "BQ2_fs"};
    for (int k : o.blocks) {
        if (D % k != 0) {
            continue;
        }
        if (D / k > 4) {
            rows.push_back("BQ" + std::to_string(D / k - 4) + "B_fs");
        }
        for (int m : o.bits) {
            const std::string s =
                    "BKQ" + std::to_string(k) + "x" + std::to_string(m);
            rows.push_back(s);
            rows.push_back(s + "_obl");
        }
    }
    return rows;
}

void run(const std::string& folder, const Options& o) {
    const DatasetFiles files = DatasetFiles::in_folder(folder);
    if (!file_exists(files.base)) {
        std::printf(
                "\n## %s: absent (%s), skipped\n",
                folder.c_str(),
                files.base.c_str());
        return;
    }
    const Dataset ds = load_dataset(files, std::nullopt, o.nq);
    const int d = int(ds.d);
    std::printf(
            "\n## %s: %zu x %zu, %zu queries, %s, %d thread(s)\n\n",
            ds.name.c_str(),
            ds.nb,
            ds.d,
            ds.nq,
            metric_name(ds.metric),
            omp_get_max_threads());
    std::fflush(stdout);
    const idx_t k = 10;
    std::vector<float> D(ds.nq * k);
    std::vector<idx_t> I(ds.nq * k);
    std::vector<Row> rows;
    for (const std::string& s : o.rows.empty() ? default_rows(d, o) : o.rows) {
        Row row;
        row.name = s;
        row.index.reset(index_factory(d, s.c_str(), ds.metric));
        auto t0 = std::chrono::steady_clock::now();
        row.index->train(idx_t(ds.nb), ds.base.data());
        row.train_seconds = seconds_since(t0);
        t0 = std::chrono::steady_clock::now();
        row.index->add(idx_t(ds.nb), ds.base.data());
        row.add_seconds = seconds_since(t0);
        row.index->search(
                idx_t(ds.nq), ds.queries.data(), k, D.data(), I.data());
        row.recall = recall_at_10(ds, I, size_t(k));
        rows.push_back(std::move(row));
    }
    for (int round = 0; round < o.rounds; round++) {
        for (Row& row : rows) {
            const double qps = queries_per_second(
                    ds.nq,
                    [&] {
                        row.index->search(
                                idx_t(ds.nq),
                                ds.queries.data(),
                                k,
                                D.data(),
                                I.data());
                    },
                    0.2);
            row.best_qps = std::max(row.best_qps, qps);
        }
    }
    std::printf(
            "| method | bytes/vector | 10-recall@10 | QPS (best of %d, "
            "loaded machine) | train s | add s |\n|---|--:|--:|--:|--:|--:|\n",
            o.rounds);
    for (const Row& row : rows) {
        std::printf(
                "| %s | %zu | %.3f | %.0f | %.2f | %.2f |\n",
                row.name.c_str(),
                row.index->sa_code_size(),
                row.recall,
                row.best_qps,
                row.train_seconds,
                row.add_seconds);
    }
    std::fflush(stdout);
}

std::vector<int> ints(const std::string& s) {
    std::vector<int> out;
    for (const std::string& t : split(s, ',')) {
        out.push_back(std::stoi(t));
    }
    return out;
}

} // namespace
} // namespace faiss_bq

int main(int argc, char** argv) {
    std::vector<std::string> folders;
    faiss_bq::Options o;
    int threads = 1;
    for (int i = 1; i < argc; i++) {
        const std::string arg = argv[i];
        if (i + 1 >= argc) {
            std::fprintf(
                    stderr, "blockquant_bench: %s needs a value\n", argv[i]);
            return 2;
        }
        const std::string value = argv[++i];
        if (arg == "--data") {
            folders.push_back(value);
        } else if (arg == "--nq") {
            o.nq = std::stoul(value);
        } else if (arg == "--rounds") {
            o.rounds = std::stoi(value);
        } else if (arg == "--threads") {
            threads = std::stoi(value);
        } else if (arg == "--blocks") {
            o.blocks = faiss_bq::ints(value);
        } else if (arg == "--bits") {
            o.bits = faiss_bq::ints(value);
        } else if (arg == "--rows") {
            o.rows = faiss_bq::split(value, ';');
        } else {
            std::fprintf(
                    stderr,
                    "usage: blockquant_bench [--data DIR]... [--nq N] "
                    "[--rounds R] [--threads T] [--blocks 4,8] [--bits 5,6] "
                    "[--rows 'S1;S2']\n");
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
            faiss_bq::run(f, o);
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "blockquant_bench: %s\n", e.what());
        return 1;
    }
    return 0;
}
