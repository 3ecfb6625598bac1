// fast_scan_ref: FAISS's own fast-scan indexes measured as bq_bench measures
// its rows (10-recall@10, QPS of a batch of all queries and of one query at a
// time, bytes per vector), printed as bench_tsv.h rows for bq_bench
// --reference to merge into its table and plot.
//
// It links FAISS only, never faiss_bq: the CMake build compiles it against
// Debian's FAISS 1.7.3 (generic x86-64, its fast-scan kernels emulated),
// and bench/build_fast_scan_ref.sh against a FAISS built from source with
// FAISS_OPT_LEVEL=avx512, the reference that issue 15 compares with.

#include "bench_data.h"
#include "bench_tsv.h"

#include <faiss/IndexPQFastScan.h>
#include <faiss/impl/FaissAssert.h>
#include <faiss/utils/utils.h>
#if __has_include(<faiss/IndexRaBitQFastScan.h>)
#include <faiss/IndexRaBitQFastScan.h>
#define FAST_SCAN_REF_RABITQ 1
#endif
#if __has_include(<faiss/IndexEDEN.h>)
// FAISS with EDEN also has TurboQuant (ScalarQuantizer QT_*_tq*)
#include <faiss/IndexEDEN.h>
#include <faiss/index_factory.h>
#define FAST_SCAN_REF_ROTATION 1
#endif

#include <omp.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <string>
#include <vector>

// OpenBLAS's own thread count (its pthread build ignores OpenMP's).
extern "C" void openblas_set_num_threads(int) __attribute__((weak));

namespace faiss_bq {
namespace {

constexpr size_t k = 10;
constexpr size_t max_single_queries = 200; // as bq_bench
constexpr double min_timing_seconds = 0.5;

struct Options {
    std::string data_folder;
    size_t nq = 0;
    int threads = 0;
    std::vector<size_t> subcodes; ///< M of PQ<M>x4fs; empty: d/4 and d/2
    bool rabitq = true;
    bool rotation = true; ///< EDEN and TurboQuant rows
};

[[noreturn]] void usage(int status) {
    std::fprintf(
            status ? stderr : stdout,
            "usage: fast_scan_ref --data DIR [--nq N] [--threads T] "
            "[--subcodes M1,M2] [--no-rabitq] [--no-rotation]\n"
            "  rows PQ<M>x4fs (faiss::IndexPQFastScan, M 4-bit sub-codes; "
            "default M = d/4 and d/2,\n"
            "  the sub-codes of faiss_bq's 1- and 2-bit fast scan) and, "
            "where FAISS has it,\n"
            "  RaBitQfs / RaBitQfs2 (IndexRaBitQFastScan), and EDEN / "
            "TurboQuant (index_factory\n"
            "  EDEN<b>, SQtq<b>, SQtqmse<b>, with and without RR<d> before "
            "them), as TSV on stdout\n");
    std::exit(status);
}

size_t parse_count(const char* option, const char* value) {
    char* end = nullptr;
    const long v = std::strtol(value, &end, 10);
    if (*value == '\0' || *end != '\0' || v <= 0) {
        std::fprintf(
                stderr,
                "fast_scan_ref: %s %s: expected a positive integer\n",
                option,
                value);
        usage(2);
    }
    return size_t(v);
}

Options parse_options(int argc, char** argv) {
    Options opt;
    for (int i = 1; i < argc; i++) {
        const std::string a = argv[i];
        auto value = [&]() -> const char* {
            if (i + 1 >= argc) {
                std::fprintf(
                        stderr, "fast_scan_ref: %s needs a value\n", a.c_str());
                usage(2);
            }
            return argv[++i];
        };
        if (a == "--data") {
            opt.data_folder = value();
        } else if (a == "--nq") {
            opt.nq = parse_count("--nq", value());
        } else if (a == "--threads") {
            opt.threads = int(parse_count("--threads", value()));
        } else if (a == "--subcodes") {
            std::string list = value();
            for (size_t p = 0; p <= list.size();) {
                const size_t e = std::min(list.find(',', p), list.size());
                opt.subcodes.push_back(parse_count(
                        "--subcodes", list.substr(p, e - p).c_str()));
                p = e + 1;
            }
        } else if (a == "--no-rabitq") {
            opt.rabitq = false;
        } else if (a == "--no-rotation") {
            opt.rotation = false;
        } else if (a == "--help" || a == "-h") {
            usage(0);
        } else {
            std::fprintf(
                    stderr, "fast_scan_ref: unknown option %s\n", a.c_str());
            usage(2);
        }
    }
    if (opt.data_folder.empty()) {
        usage(2);
    }
    return opt;
}

bench::TsvRow measure(
        const std::string& name,
        double bytes_per_vector,
        faiss::Index& index,
        const Dataset& ds,
        const std::string& build,
        const char* family = "FAISS fast scan") {
    bench::TsvRow row;
    row.name = name;
    row.family = family;
    row.build = build;
    row.bytes_per_vector = bytes_per_vector;
    double t0 = faiss::getmillisecs();
    index.train(int64_t(ds.nb), ds.base.data());
    row.train_seconds = (faiss::getmillisecs() - t0) / 1000;
    t0 = faiss::getmillisecs();
    index.add(int64_t(ds.nb), ds.base.data());
    row.add_seconds = (faiss::getmillisecs() - t0) / 1000;

    std::vector<float> D(ds.nq * k);
    std::vector<int64_t> I(ds.nq * k);
    row.qps_batch = queries_per_second(
            ds.nq,
            [&] {
                index.search(
                        int64_t(ds.nq),
                        ds.queries.data(),
                        k,
                        D.data(),
                        I.data());
            },
            min_timing_seconds);
    row.recall = recall_at_10(ds, I, k);
    const size_t n1 = std::min(ds.nq, max_single_queries);
    row.qps_single = queries_per_second(
            n1,
            [&] {
                for (size_t q = 0; q < n1; q++) {
                    index.search(
                            1,
                            ds.queries.data() + q * ds.d,
                            k,
                            D.data(),
                            I.data());
                }
            },
            min_timing_seconds);
    return row;
}

int run(const Options& opt) {
    if (opt.threads > 0) {
        omp_set_num_threads(opt.threads);
        if (openblas_set_num_threads) {
            openblas_set_num_threads(opt.threads);
        }
    }
    const Dataset ds = load_dataset(
            DatasetFiles::in_folder(opt.data_folder), std::nullopt, opt.nq);
    const std::string build = "FAISS " + std::to_string(FAISS_VERSION_MAJOR) +
            "." + std::to_string(FAISS_VERSION_MINOR) + "." +
            std::to_string(FAISS_VERSION_PATCH) +
#if defined(__AVX512F__)
            " avx512";
#elif defined(__AVX2__)
            " avx2";
#else
            " generic";
#endif
    std::vector<size_t> subcodes = opt.subcodes;
    if (subcodes.empty()) {
        subcodes = {ds.d / 4, ds.d / 2};
    }
    std::printf("%s", bench::tsv_header());
    std::fflush(stdout);
    for (size_t m : subcodes) {
        if (m == 0 || ds.d % m != 0) {
            std::fprintf(
                    stderr,
                    "fast_scan_ref: PQ%zux4fs skipped: d=%zu is not a multiple of %zu\n",
                    m,
                    ds.d,
                    m);
            continue;
        }
        faiss::IndexPQFastScan index(int64_t(ds.d), m, 4, ds.metric);
        const std::string name = "PQ" + std::to_string(m) + "x4fs";
        std::fprintf(stderr, "[fast_scan_ref] %s\n", name.c_str());
        // M 4-bit sub-codes per vector, as the index packs them
        std::printf(
                "%s",
                bench::tsv_line(measure(name, double(m) / 2, index, ds, build))
                        .c_str());
        std::fflush(stdout);
    }
#ifdef FAST_SCAN_REF_RABITQ
    if (opt.rabitq) {
        for (int bits : {1, 2}) {
            faiss::IndexRaBitQFastScan index(
                    int64_t(ds.d), ds.metric, 32, uint8_t(bits));
            const std::string name = bits == 1 ? "RaBitQfs" : "RaBitQfs2";
            std::fprintf(stderr, "[fast_scan_ref] %s\n", name.c_str());
            // codes and per-vector factors as the index stores them
            const double bytes = double(index.code_size);
            std::printf(
                    "%s",
                    bench::tsv_line(measure(name, bytes, index, ds, build))
                            .c_str());
            std::fflush(stdout);
        }
    }
#endif
#ifdef FAST_SCAN_REF_ROTATION
    // The rotation quantizers of issue 16, as FAISS's factory builds them:
    // EDEN (IndexEDEN, centred, unbiased scale) and TurboQuant (full: MSE
    // b-1 bits + QJL 1 bit; MSE only), bare and after a random rotation.
    if (opt.rotation) {
        const std::string rr = "RR" + std::to_string(ds.d) + ",";
        for (const std::string core :
             {"EDEN1", "EDEN2", "EDEN4", "SQtq2", "SQtq3", "SQtqmse2"}) {
            for (const std::string& pre : {std::string(), rr}) {
                const std::string key = pre + core;
                std::unique_ptr<faiss::Index> index(faiss::index_factory(
                        int(ds.d), key.c_str(), ds.metric));
                std::fprintf(stderr, "[fast_scan_ref] %s\n", key.c_str());
                // codes and per-vector factors as the index stores them
                const double bytes = double(index->sa_code_size());
                std::printf(
                        "%s",
                        bench::tsv_line(measure("FAISS " + key,
                                                bytes,
                                                *index,
                                                ds,
                                                build,
                                                "FAISS rotation quantizers"))
                                .c_str());
                std::fflush(stdout);
            }
        }
    }
#endif
    return 0;
}

} // namespace
} // namespace faiss_bq

int main(int argc, char** argv) {
    try {
        return faiss_bq::run(faiss_bq::parse_options(argc, argv));
    } catch (const std::exception& e) {
        std::fprintf(stderr, "fast_scan_ref: %s\n", e.what());
        return 1;
    }
}
