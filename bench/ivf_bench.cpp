// ivf_bench: the scale bench (issue 14). Inverted files over BQ codes against
// FAISS's IVF indexes on one dataset, in one run: recall@10 and QPS at each
// nprobe, bytes per vector, train and add times.
//
// Every index shares one coarse quantizer (k-means trained once, its time
// reported apart), so the rows differ only in how the lists are coded. The
// search is one thread, a batch of all queries; add uses every core.

#include "bench_data.h"

#include <faiss_bq/IndexBQRefine.h>
#include <faiss_bq/IndexIVFBQ.h>
#include <faiss_bq/index_factory.h>
#include <faiss_bq/utils/vecs_io.h>

#include <faiss/Clustering.h>
#include <faiss/IndexFlat.h>
#include <faiss/IndexIVF.h>
#include <faiss/IndexIVFPQFastScan.h>
#include <faiss/impl/FaissAssert.h>
#include <faiss/invlists/BlockInvertedLists.h>
#include <faiss/utils/utils.h>

#include <omp.h>

#include <time.h>
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

// OpenBLAS's own thread count (its pthread build ignores OpenMP's).
extern "C" void openblas_set_num_threads(int) __attribute__((weak));

namespace faiss_bq {
namespace {

void set_blas_threads(int n) {
    if (openblas_set_num_threads) {
        openblas_set_num_threads(n);
    }
}

using idx_t = faiss::Index::idx_t;
constexpr size_t k = 10;
constexpr double min_timing_seconds = 0.3;

struct Options {
    std::string data_folder;
    size_t nlist = 4096;
    size_t ntrain = 0; ///< 0: min(nb, 64 * nlist)
    size_t nq = 0;
    std::vector<size_t> nprobes = {1, 2, 4, 8, 16, 32, 64, 128, 256};
    std::vector<std::string> methods;
    std::vector<float> k_factors = {4, 10};
    std::string tsv;
    std::string
            coarse; ///< centroids cache (.fvecs): read if present, else written
};

[[noreturn]] void usage(int status) {
    std::fprintf(
            status ? stderr : stdout,
            "usage: ivf_bench --data DIR [--nlist N] [--ntrain N] [--nq N]\n"
            "                 [--nprobes 1,2,4,...] [--methods a;b;c]\n"
            "                 [--k-factors 4,10] [--tsv FILE] [--coarse C.fvecs]\n"
            "  methods: factory strings after IVF<nlist>, separated by ';'\n"
            "  (default BQ1_fs;BQ2_fs;BQ64B_fs;Flat;PQ64x4fs;PQ128x4fs);\n"
            "  faiss_bq rows are also run with ,RFlat at each k-factor.\n");
    std::exit(status);
}

std::vector<std::string> split(const std::string& s, char sep) {
    std::vector<std::string> out;
    std::stringstream ss(s);
    for (std::string t; std::getline(ss, t, sep);) {
        if (!t.empty()) {
            out.push_back(t);
        }
    }
    return out;
}

Options parse(int argc, char** argv) {
    Options o;
    o.methods = {
            "BQ1_fs", "BQ2_fs", "BQ64B_fs", "Flat", "PQ64x4fs", "PQ128x4fs"};
    for (int i = 1; i < argc; i++) {
        const std::string a = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) {
                usage(2);
            }
            return argv[++i];
        };
        if (a == "--data") {
            o.data_folder = value();
        } else if (a == "--nlist") {
            o.nlist = std::stoul(value());
        } else if (a == "--ntrain") {
            o.ntrain = std::stoul(value());
        } else if (a == "--nq") {
            o.nq = std::stoul(value());
        } else if (a == "--nprobes") {
            o.nprobes.clear();
            for (const auto& t : split(value(), ',')) {
                o.nprobes.push_back(std::stoul(t));
            }
        } else if (a == "--methods") {
            o.methods = split(value(), ';');
        } else if (a == "--k-factors") {
            o.k_factors.clear();
            for (const auto& t : split(value(), ',')) {
                o.k_factors.push_back(std::stof(t));
            }
        } else if (a == "--coarse") {
            o.coarse = value();
        } else if (a == "--tsv") {
            o.tsv = value();
        } else if (a == "--help" || a == "-h") {
            usage(0);
        } else {
            std::fprintf(stderr, "unknown argument %s\n", a.c_str());
            usage(2);
        }
    }
    if (o.data_folder.empty()) {
        usage(2);
    }
    return o;
}

/// Bytes the lists hold per vector, ids included: FAISS's block lists pad
/// each list to whole blocks.
double list_bytes_per_vector(const faiss::IndexIVF& ivf) {
    double bytes = 0;
    const auto* blocks =
            dynamic_cast<const faiss::BlockInvertedLists*>(ivf.invlists);
    for (size_t l = 0; l < ivf.nlist; l++) {
        const size_t n = ivf.invlists->list_size(l);
        bytes += double(n) * sizeof(idx_t);
        bytes += blocks ? double((n + blocks->n_per_block - 1) /
                                 blocks->n_per_block * blocks->block_size)
                        : double(n * ivf.code_size);
    }
    return ivf.ntotal ? bytes / double(ivf.ntotal) : 0;
}

struct Row {
    std::string method;
    size_t nprobe;
    double recall, qps, bytes, train_s, add_s;
};

double thread_cpu_seconds() {
    timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

/// Searches all queries on this thread alone (OpenMP and BLAS at one
/// thread) until min_timing_seconds of its CPU time: the measure other
/// processes on the machine disturb least. (Process CPU time counted the
/// spinning of BLAS's idle threads after the coarse quantizer's product.)
Row measure(
        const Dataset& ds,
        const faiss::Index& index,
        const faiss::SearchParameters* params) {
    std::vector<float> D(ds.nq * k);
    std::vector<idx_t> I(ds.nq * k);
    size_t runs = 0;
    const double c0 = thread_cpu_seconds();
    double cpu = 0;
    do {
        index.search(ds.nq, ds.queries.data(), k, D.data(), I.data(), params);
        runs++;
        cpu = thread_cpu_seconds() - c0;
    } while (cpu < min_timing_seconds);
    Row r{};
    r.recall = recall_at_10(ds, I, k);
    r.qps = double(runs * ds.nq) / cpu;
    return r;
}

void print_row(const Row& r, FILE* tsv) {
    std::printf(
            "%-28s %6zu %8.3f %10.0f %8.1f %8.1f %8.1f\n",
            r.method.c_str(),
            r.nprobe,
            r.recall,
            r.qps,
            r.bytes,
            r.train_s,
            r.add_s);
    std::fflush(stdout);
    if (tsv) {
        std::fprintf(
                tsv,
                "%s\t%zu\t%.4f\t%.1f\t%.1f\t%.2f\t%.2f\n",
                r.method.c_str(),
                r.nprobe,
                r.recall,
                r.qps,
                r.bytes,
                r.train_s,
                r.add_s);
        std::fflush(tsv);
    }
}

int run(int argc, char** argv) {
    const Options o = parse(argc, argv);
    const Dataset ds = load_dataset(
            DatasetFiles::in_folder(o.data_folder), std::nullopt, o.nq);
    const size_t ntrain = o.ntrain ? std::min(o.ntrain, ds.nb)
                                   : std::min(ds.nb, 64 * o.nlist);
    std::printf(
            "ivf_bench: %s, %zu x %zu, %zu queries, metric %s, nlist %zu, "
            "%zu training vectors, %d threads for add, 1 for search\n",
            ds.name.c_str(),
            ds.nb,
            ds.d,
            ds.nq,
            metric_name(ds.metric),
            o.nlist,
            ntrain,
            omp_get_max_threads());
    FILE* tsv = o.tsv.empty() ? nullptr : std::fopen(o.tsv.c_str(), "w");
    if (tsv) {
        std::fprintf(
                tsv,
                "method\tnprobe\trecall10\tqps\tbytes_per_vector\ttrain_s\tadd_s\n");
    }
    // The shared coarse quantizer.
    double t0 = faiss::getmillisecs();
    faiss::IndexFlat coarse(ds.d, ds.metric);
    faiss::ClusteringParameters cp;
    // Inner product: spherical k-means (unit centroids), so that a vector
    // goes to the list of the closest direction, not of the longest
    // centroid (on vectors of varying norm, plain k-means under the inner
    // product put most of the 1M set into a few lists: 504 QPS at nprobe 1).
    cp.spherical = ds.metric == faiss::METRIC_INNER_PRODUCT;
    if (!o.coarse.empty() && file_exists(o.coarse)) {
        const VecsFile<float> c = read_fvecs(o.coarse);
        FAISS_THROW_IF_NOT_FMT(
                c.n == o.nlist && c.d == ds.d,
                "%s holds %zu x %zu centroids, not %zu x %zu",
                o.coarse.c_str(),
                c.n,
                c.d,
                o.nlist,
                ds.d);
        coarse.add(idx_t(c.n), c.data.data());
    } else {
        faiss::Clustering clus(int(ds.d), int(o.nlist), cp);
        clus.train(idx_t(ntrain), ds.base.data(), coarse);
        if (!o.coarse.empty()) {
            write_fvecs(o.coarse, o.nlist, ds.d, clus.centroids.data());
        }
    }
    std::vector<idx_t> assign(ds.nb);
    coarse.assign(idx_t(ds.nb), ds.base.data(), assign.data());
    std::vector<size_t> sizes(o.nlist);
    for (idx_t a : assign) {
        sizes[a]++;
    }
    std::sort(sizes.begin(), sizes.end());
    std::printf(
            "k-means (%zu lists, %zu vectors%s): %.1f s; list sizes: median %zu, "
            "99th percentile %zu, largest %zu\n",
            o.nlist,
            ntrain,
            cp.spherical ? ", spherical" : "",
            (faiss::getmillisecs() - t0) / 1000,
            sizes[o.nlist / 2],
            sizes[o.nlist * 99 / 100],
            sizes.back());
    std::fflush(stdout);
    // The exact store of the refine rows, shared.
    faiss::IndexFlat store(ds.d, ds.metric);
    store.add(ds.nb, ds.base.data());
    std::printf(
            "%-28s %6s %8s %10s %8s %8s %8s\n",
            "method",
            "nprobe",
            "R@10",
            "QPS",
            "B/vec",
            "train_s",
            "add_s");
    const int threads = omp_get_max_threads();
    for (const std::string& m : o.methods) {
        const std::string description =
                "IVF" + std::to_string(o.nlist) + "," + m;
        std::unique_ptr<faiss::Index> index(
                index_factory(int(ds.d), description.c_str(), ds.metric));
        auto ivf = dynamic_cast<faiss::IndexIVF*>(index.get());
        FAISS_THROW_IF_NOT_FMT(
                ivf, "%s is not an IVF index", description.c_str());
        // the shared quantizer, already trained (train() skips k-means)
        if (ivf->own_fields) {
            delete ivf->quantizer;
        }
        ivf->quantizer = new faiss::IndexFlat(coarse);
        ivf->own_fields = true;
        t0 = faiss::getmillisecs();
        index->train(idx_t(ntrain), ds.base.data());
        const double train_s = (faiss::getmillisecs() - t0) / 1000;
        t0 = faiss::getmillisecs();
        index->add(idx_t(ds.nb), ds.base.data());
        const double add_s = (faiss::getmillisecs() - t0) / 1000;
        const double bytes = list_bytes_per_vector(*ivf);
        const bool ours = dynamic_cast<IndexIVFBQ*>(index.get()) != nullptr;
        omp_set_num_threads(1);
        set_blas_threads(1);
        for (size_t nprobe : o.nprobes) {
            if (nprobe > o.nlist) {
                continue;
            }
            // FAISS 1.7.3's fast-scan IVF takes no SearchParameters: the
            // field for every row, and SearchParametersIVF too for ours.
            ivf->nprobe = nprobe;
            faiss::SearchParametersIVF p;
            p.nprobe = nprobe;
            Row r = measure(ds, *index, ours ? &p : nullptr);
            r.method = description;
            r.nprobe = nprobe;
            r.bytes = bytes;
            r.train_s = train_s;
            r.add_s = add_s;
            print_row(r, tsv);
            if (!ours) {
                continue;
            }
            IndexBQRefine refine(index.get(), &store);
            for (float kf : o.k_factors) {
                SearchParametersBQRefine rp;
                rp.k_factor = kf;
                rp.base_params = &p;
                Row rr = measure(ds, refine, &rp);
                char name[64];
                std::snprintf(name, sizeof(name), ",RFlat kf%g", kf);
                rr.method = description + name;
                rr.nprobe = nprobe;
                rr.bytes = bytes;
                rr.train_s = train_s;
                rr.add_s = add_s;
                print_row(rr, tsv);
            }
        }
        omp_set_num_threads(threads);
        set_blas_threads(threads);
    }
    if (tsv) {
        std::fclose(tsv);
    }
    return 0;
}

} // namespace
} // namespace faiss_bq

int main(int argc, char** argv) {
    try {
        return faiss_bq::run(argc, argv);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "ivf_bench: %s\n", e.what());
        return 1;
    }
}
