// make_scale_data: N vectors drawn from a model of a real set (scale_model.h),
// 1,000 queries drawn the same way and their exact inner-product ground
// truth, as TEXMEX files. Generation and ground truth are streamed by blocks,
// so 10M x 512 (20 GB of floats) never sits in memory.
#include "scale_model.h"

#include <faiss_bq/utils/vecs_io.h>

#include <faiss/impl/FaissAssert.h>
#include <faiss/impl/FaissException.h>
#include <faiss/utils/Heap.h>
#include <faiss/utils/distances.h>

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

namespace fs = std::filesystem;
using namespace faiss_bq;

namespace {

// Rows generated, written and searched at a time: 128 MiB of floats at
// d = 512, enough for BLAS to run at full speed.
constexpr size_t kBlockRows = 65536;

const char* const kUsage =
        "usage: make_scale_data --source DIR --out DIR [--n 1000000] "
        "[--nq 1000] [--k 100] [--seed 1234] [--clusters 1024]\n"
        "  --source  a real set's folder (its base.fvecs is the model's fit)\n"
        "  --out     folder for base.fvecs, query.fvecs, groundtruth.ivecs,\n"
        "            model.txt (created; must not be the source)\n"
        "  --n       base vectors, 1 .. 2^31-1\n"
        "  --nq      queries (a separate stream of the same model)\n"
        "  --k       neighbours per query in the ground truth, 1 .. n\n"
        "  --seed    the base and queries depend on it only (not on threads)\n"
        "  --clusters  k-means components of the model, 1 .. source rows\n"
        "            (1: a single scale mixture, the model before them)\n";

struct Options {
    std::string source, out;
    size_t n = 1000000, nq = 1000, k = 100;
    uint64_t seed = 1234;
    // Enough for IVF lists as balanced as the real set's (docs/benchmarks.md).
    size_t clusters = 1024;
};

struct UsageError {
    std::string message;
};

uint64_t parse_count(const std::string& flag, const std::string& value) {
    const bool digits = !value.empty() && value.size() <= 19 &&
            std::all_of(value.begin(), value.end(), [](char c) {
                return c >= '0' && c <= '9';
            });
    if (!digits) {
        throw UsageError{
                flag + " needs a non-negative integer, got '" + value + "'"};
    }
    return std::strtoull(value.c_str(), nullptr, 10);
}

Options parse(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; i++) {
        const std::string flag = argv[i];
        if (flag == "-h" || flag == "--help") {
            std::fputs(kUsage, stdout);
            std::exit(0);
        }
        if (i + 1 >= argc) {
            throw UsageError{"missing value after " + flag};
        }
        const std::string value = argv[++i];
        if (flag == "--source") {
            o.source = value;
        } else if (flag == "--out") {
            o.out = value;
        } else if (flag == "--n") {
            o.n = parse_count(flag, value);
        } else if (flag == "--nq") {
            o.nq = parse_count(flag, value);
        } else if (flag == "--k") {
            o.k = parse_count(flag, value);
        } else if (flag == "--seed") {
            o.seed = parse_count(flag, value);
        } else if (flag == "--clusters") {
            o.clusters = parse_count(flag, value);
        } else {
            throw UsageError{"unknown argument " + flag};
        }
    }
    if (o.source.empty() || o.out.empty()) {
        throw UsageError{"--source and --out are required"};
    }
    return o;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
            .count();
}

/// A file written under a temporary name in the output folder and renamed
/// into place once complete; removed if the run fails before that.
struct PartialFile {
    std::string final_path, temp_path;

    PartialFile(const std::string& dir, const std::string& name)
            : final_path(dir + "/" + name),
              temp_path(dir + "/." + name + ".partial") {}
    ~PartialFile() {
        if (!temp_path.empty()) {
            std::error_code ignored;
            fs::remove(temp_path, ignored);
        }
    }
    void commit() {
        fs::rename(temp_path, final_path);
        temp_path.clear();
    }
};

/// Keeps the k largest inner products seen so far for each query.
struct TopK {
    size_t nq, k;
    std::vector<float> scores;
    std::vector<int64_t> ids;

    TopK(size_t nq, size_t k) : nq(nq), k(k), scores(nq * k), ids(nq * k) {
        for (size_t q = 0; q < nq; q++) {
            faiss::minheap_heapify(
                    k, scores.data() + q * k, ids.data() + q * k);
        }
    }

    /// The block's own top k (FAISS's BLAS search, all cores) merged in;
    /// its ids are offset to the block's first row.
    void add_block(
            const float* queries,
            size_t d,
            const float* block,
            size_t rows,
            size_t row0) {
        std::vector<float> block_scores(nq * k);
        std::vector<int64_t> block_ids(nq * k);
        faiss::knn_inner_product(
                queries,
                block,
                d,
                nq,
                rows,
                k,
                block_scores.data(),
                block_ids.data());
#pragma omp parallel for schedule(static)
        for (int64_t q = 0; q < int64_t(nq); q++) {
            float* heap_scores = scores.data() + q * k;
            int64_t* heap_ids = ids.data() + q * k;
            for (size_t j = 0; j < k; j++) {
                const int64_t id = block_ids[q * k + j];
                const float s = block_scores[q * k + j];
                // Best first: the rest of the block cannot enter either. A
                // tie keeps the earlier (lower) id.
                if (id < 0 || !(s > heap_scores[0])) {
                    break;
                }
                faiss::minheap_replace_top(
                        k, heap_scores, heap_ids, s, int64_t(row0) + id);
            }
        }
    }

    /// Ids best first, as int32 (ivecs).
    std::vector<int32_t> finish() {
        std::vector<int32_t> out(nq * k);
        for (size_t q = 0; q < nq; q++) {
            faiss::minheap_reorder(
                    k, scores.data() + q * k, ids.data() + q * k);
            for (size_t j = 0; j < k; j++) {
                out[q * k + j] = int32_t(ids[q * k + j]);
            }
        }
        return out;
    }
};

std::string format(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
std::string format(const char* fmt, ...) {
    char buf[1024];
    va_list args;
    va_start(args, fmt);
    std::vsnprintf(buf, sizeof(buf), fmt, args);
    va_end(args);
    return buf;
}

std::string kurtosis_line(const MardiaKurtosis& k) {
    return format(
            "Mardia b2 %.0f over rank %zu (Gaussian %zu): ratio %.4f "
            "+- %.4f on %zu rows",
            k.b2,
            k.rank,
            k.rank * (k.rank + 2),
            k.ratio(),
            k.ratio_standard_error(),
            k.n);
}

/// Per-coordinate (marginal) excess kurtosis, which the model does not fit:
/// a scale mixture gives every direction 3 (E[w^2] - 1).
std::string marginal_kurtosis_line(size_t n, size_t d, const float* x) {
    std::vector<float> k = analyze(n, d, x).excess_kurtosis;
    std::sort(k.begin(), k.end());
    double sum = 0;
    for (float v : k) {
        sum += v;
    }
    return format(
            "per-coordinate excess kurtosis: mean %.3f, median %.3f, "
            "max %.2f",
            sum / d,
            k[d / 2],
            k.back());
}

std::string norms_line(const NormStats& s) {
    return format(
            "mean %.4f, sd %.4f, min %.4f, max %.4f",
            s.mean(),
            s.sd(),
            s.min,
            s.max);
}

void run(const Options& o) {
    FAISS_THROW_IF_NOT_FMT(
            o.n >= 1 && o.n <= size_t(INT32_MAX),
            "--n %zu: need 1 .. %d (ids are int32 in .ivecs)",
            o.n,
            INT32_MAX);
    FAISS_THROW_IF_NOT_FMT(
            o.nq >= 1 && o.nq <= size_t(INT32_MAX),
            "--nq %zu: need at least 1",
            o.nq);
    FAISS_THROW_IF_NOT_FMT(
            o.k >= 1 && o.k <= o.n, "--k %zu: need 1 .. n = %zu", o.k, o.n);
    const std::string source_base = o.source + "/base.fvecs";
    FAISS_THROW_IF_NOT_FMT(
            fs::is_regular_file(source_base),
            "--source %s: no base.fvecs there",
            o.source.c_str());
    std::error_code ec;
    fs::create_directories(o.out, ec);
    FAISS_THROW_IF_NOT_FMT(
            !ec && fs::is_directory(o.out),
            "--out %s: cannot create the folder: %s",
            o.out.c_str(),
            ec.message().c_str());
    FAISS_THROW_IF_NOT_FMT(
            !fs::equivalent(o.out, o.source),
            "--out %s is the source folder %s",
            o.out.c_str(),
            o.source.c_str());

    const auto t_fit = std::chrono::steady_clock::now();
    const VecsFile<float> src = read_fvecs(source_base);
    FAISS_THROW_IF_NOT_FMT(
            src.n > src.d,
            "%s: %zu vectors of d=%zu: need more than d to fit "
            "a covariance",
            source_base.c_str(),
            src.n,
            src.d);
    FAISS_THROW_IF_NOT_FMT(
            o.clusters >= 1 && o.clusters <= src.n,
            "--clusters %zu: need 1 .. %zu (the source's rows)",
            o.clusters,
            src.n);
    const size_t d = src.d;
    const ScaleMixtureModel model =
            ScaleMixtureModel::fit(src.n, d, src.data.data(), o.clusters);
    const NormStats source_norms = row_norms(src.n, d, src.data.data());
    const double fit_seconds = seconds_since(t_fit);

    std::string report;
    auto say = [&report](const std::string& line) {
        std::printf("%s\n", line.c_str());
        std::fflush(stdout);
        report += line + "\n";
    };
    say("# make_scale_data: scale data drawn from a model of a real set");
    say(format("source: %s (%zu x %zu)", o.source.c_str(), src.n, d));
    say("source kurtosis: " + kurtosis_line(model.source_kurtosis));
    say("source norms: " + norms_line(source_norms));
    say("source " + marginal_kurtosis_line(src.n, d, src.data.data()));
    if (model.components() == 1) {
        say("model: x = mu + sqrt(w) A z, z ~ N(0, I), A = V diag(sqrt("
            "lambda)) from the source's mean mu and covariance S = V "
            "diag(lambda) V^T (divisor n, float ssyrk + ssyevd)");
    } else {
        std::vector<uint64_t> rows(model.components());
        for (size_t c = 0; c < rows.size(); c++) {
            rows[c] = model.cumulative_rows[c] -
                    (c ? model.cumulative_rows[c - 1] : 0);
        }
        std::sort(rows.begin(), rows.end());
        double within_trace = 0, total_trace = 0;
        for (size_t j = 0; j < d; j++) {
            within_trace += model.within.eigenvalues[j];
            total_trace += model.source.eigenvalues[j];
        }
        say(format(
                "model: x = mu_c + sqrt(w) A z, z ~ N(0, I), component c "
                "drawn with its share of the source's rows; mu_c the mean "
                "of the source's rows nearest the c-th of %zu k-means "
                "centres (faiss::Clustering, L2, 25 iterations, all %zu "
                "rows); A = V diag(sqrt(lambda)) from the pooled "
                "within-component covariance W = V diag(lambda) V^T of "
                "the residuals x - mu_c (divisor n, float ssyrk + "
                "ssyevd). Mean sum_c p_c mu_c = the source's; covariance "
                "between + E[w] W = the source's S",
                o.clusters,
                src.n));
        say(
                format("components: %zu with rows (of %zu asked); rows per "
                       "component: min %" PRIu64 ", median %" PRIu64
                       ", max %" PRIu64 "; tr W / tr S = %.4f",
                       model.components(),
                       o.clusters,
                       rows.front(),
                       rows[rows.size() / 2],
                       rows.back(),
                       within_trace / total_trace));
    }
    if (model.clamped) {
        say(format(
                "radial law: w = 1. The source's ratio %.4f is at or "
                "below that of w = 1 (%.4f), and no scale mixture can "
                "lower it; clamped there",
                model.source_kurtosis.ratio(),
                model.components() > 1 ? model.unit_radial_kurtosis.ratio()
                                       : 1.0));
    } else if (model.components() == 1) {
        say(format(
                "radial law: w ~ Gamma(shape %.4f, scale %.6f): E[w] = 1, "
                "E[w^2] = %.4f, calibrated so that %zu generated rows "
                "measure the source's ratio (Gamma(%.4f), E[w^2] = the "
                "source's ratio, measured %.4f +- %.4f: the sample "
                "covariance's shortfall)",
                model.gamma_shape,
                1 / model.gamma_shape,
                model.model_kurtosis_ratio(),
                src.n,
                1 / (model.source_kurtosis.ratio() - 1),
                model.calibration_kurtosis.ratio(),
                model.calibration_kurtosis.ratio_standard_error()));
    } else {
        say(format(
                "radial law: w ~ Gamma(shape %.4f, scale %.6f): E[w] = 1, "
                "E[w^2] = %.4f, calibrated on %zu generated rows (the "
                "source's count) by one secant step: ratio %.4f +- %.4f "
                "with w = 1, %.4f +- %.4f with Gamma(%.4f) (same c and "
                "z); the source's %.4f lies on that line",
                model.gamma_shape,
                1 / model.gamma_shape,
                model.model_kurtosis_ratio(),
                src.n,
                model.unit_radial_kurtosis.ratio(),
                model.unit_radial_kurtosis.ratio_standard_error(),
                model.calibration_kurtosis.ratio(),
                model.calibration_kurtosis.ratio_standard_error(),
                1 / (model.source_kurtosis.ratio() - 1),
                model.source_kurtosis.ratio()));
    }
    say("norms: not constrained. The model reproduces mu and S, so "
        "E|x|^2 = |mu|^2 + tr S equals the source's mean squared norm, but "
        "norms spread with w and z where the source's may not (USE vectors "
        "are unit norm); nothing is renormalized, and inner-product "
        "neighbours favour long vectors");
    say(
            format("seed %" PRIu64 ", n %zu, nq %zu, k %zu, clusters %zu, "
                   "block %zu rows, %d threads",
                   o.seed,
                   o.n,
                   o.nq,
                   o.k,
                   o.clusters,
                   kBlockRows,
                   omp_get_max_threads()));

    std::vector<float> queries(o.nq * d);
    model.generate(o.seed, 1, 0, o.nq, queries.data());

    PartialFile base_file(o.out, "base.fvecs");
    PartialFile query_file(o.out, "query.fvecs");
    PartialFile gt_file(o.out, "groundtruth.ivecs");
    PartialFile model_file(o.out, "model.txt");

    VecsWriter<float> base_out(base_file.temp_path, d);
    TopK top(o.nq, o.k);
    std::vector<float> block(std::min(o.n, kBlockRows) * d);
    std::vector<float> norms(o.n);
    // The generated kurtosis is measured on as many rows as the source's,
    // so that both carry the same estimator's bias and noise.
    const size_t n_sample = std::min(o.n, src.n);
    std::vector<float> sample(n_sample * d);
    NormStats base_norms;
    double generate_seconds = 0, write_seconds = 0, groundtruth_seconds = 0;
    const auto t_all = std::chrono::steady_clock::now();
    size_t next_progress = 0;
    for (size_t row0 = 0; row0 < o.n; row0 += kBlockRows) {
        const size_t rows = std::min(kBlockRows, o.n - row0);
        auto t = std::chrono::steady_clock::now();
        model.generate(o.seed, 0, row0, rows, block.data());
        row_norms(rows, d, block.data(), norms.data() + row0);
        generate_seconds += seconds_since(t);
        for (size_t i = 0; i < rows; i++) {
            base_norms.add(norms[row0 + i]);
        }
        if (row0 < n_sample) {
            std::copy_n(
                    block.data(),
                    std::min(rows, n_sample - row0) * d,
                    sample.data() + row0 * d);
        }
        t = std::chrono::steady_clock::now();
        base_out.write(rows, block.data());
        write_seconds += seconds_since(t);
        t = std::chrono::steady_clock::now();
        top.add_block(queries.data(), d, block.data(), rows, row0);
        groundtruth_seconds += seconds_since(t);
        if (row0 + rows >= next_progress) {
            std::fprintf(
                    stderr,
                    "  %zu / %zu rows, %.1f s (generate %.1f, write "
                    "%.1f, ground truth %.1f)\n",
                    row0 + rows,
                    o.n,
                    seconds_since(t_all),
                    generate_seconds,
                    write_seconds,
                    groundtruth_seconds);
            next_progress += std::max<size_t>(o.n / 10, 1);
        }
    }
    auto t = std::chrono::steady_clock::now();
    base_out.close();
    write_fvecs(query_file.temp_path, o.nq, d, queries.data());
    write_seconds += seconds_since(t);
    t = std::chrono::steady_clock::now();
    const std::vector<int32_t> gt = top.finish();
    groundtruth_seconds += seconds_since(t);
    write_ivecs(gt_file.temp_path, o.nq, o.k, gt.data());

    const NormStats query_norms = row_norms(o.nq, d, queries.data());
    NormStats top10_norms;
    for (size_t q = 0; q < o.nq; q++) {
        for (size_t j = 0; j < std::min<size_t>(o.k, 10); j++) {
            top10_norms.add(norms[gt[q * o.k + j]]);
        }
    }
    say("base norms: " + norms_line(base_norms));
    say("query norms: " + norms_line(query_norms));
    say("norms of each query's 10 nearest (inner product): " +
        norms_line(top10_norms));
    if (n_sample > d) {
        const CovarianceSpectrum spectrum =
                covariance_spectrum(n_sample, d, sample.data());
        say("generated kurtosis (first rows of base): " +
            kurtosis_line(mardia_kurtosis(spectrum, n_sample, sample.data())));
        say("generated " + marginal_kurtosis_line(n_sample, d, sample.data()) +
            format(" (the model matches the multivariate kurtosis, not the "
                   "marginals%s)",
                   model.components() == 1
                           ? format(": 3 (E[w^2] - 1) = %.3f in every "
                                    "direction",
                                    3 * (model.model_kurtosis_ratio() - 1))
                                     .c_str()
                           : ""));
    } else {
        say(
                format("generated kurtosis: not measured (%zu rows <= d = %zu)",
                       n_sample,
                       d));
    }
    say(
            format("times: fit %.1f s, generate %.1f s, write %.1f s, ground "
                   "truth %.1f s (faiss::knn_inner_product per block of %zu "
                   "rows, %d threads)",
                   fit_seconds,
                   generate_seconds,
                   write_seconds,
                   groundtruth_seconds,
                   kBlockRows,
                   omp_get_max_threads()));
    {
        std::ofstream m(model_file.temp_path);
        m << report;
        FAISS_THROW_IF_NOT_FMT(
                m.good(), "%s: write failed", model_file.temp_path.c_str());
    }
    // model.txt is the last file in place: a folder without it is not a
    // complete set (an old one's model.txt goes first).
    fs::remove(model_file.final_path, ec);
    base_file.commit();
    query_file.commit();
    gt_file.commit();
    model_file.commit();
    std::printf(
            "wrote %s/{base.fvecs,query.fvecs,groundtruth.ivecs,"
            "model.txt}\n",
            o.out.c_str());
}

} // namespace

int main(int argc, char** argv) {
    Options options;
    try {
        options = parse(argc, argv);
    } catch (const UsageError& e) {
        std::fprintf(
                stderr, "make_scale_data: %s\n%s", e.message.c_str(), kUsage);
        return 2;
    }
    try {
        run(options);
    } catch (const faiss::FaissException& e) {
        std::fprintf(stderr, "make_scale_data: %s\n", e.what());
        return 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "make_scale_data: %s\n", e.what());
        return 1;
    }
    return 0;
}
