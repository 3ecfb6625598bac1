// bq_bench, the main job: the covariance report and the chosen plans of
// IndexBQ, then a table of every method against FAISS baselines on real
// embeddings, all measured in one run (DESIGN.md, layer 8).

#include "IndexRecurrentHamming.h"
#include "IndexSignBits.h"
#include "bench_data.h"
#include "bench_tsv.h"

#include <faiss_bq/IndexBQ.h>
#include <faiss_bq/IndexBQFamily.h>
#include <faiss_bq/IndexBQFastScan.h>
#include <faiss_bq/IndexBQRecurrent.h>
#include <faiss_bq/IndexBQRefine.h>
#include <faiss_bq/IndexBQTurbo.h>
#include <faiss_bq/IndexFromBinary.h>
#include <faiss_bq/index_factory.h>
#include <faiss_bq/kernels/kernels.h>

#include <faiss/IndexBinaryHNSW.h>
#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexLSH.h>
#include <faiss/IndexPQ.h>
#include <faiss/IndexScalarQuantizer.h>
#include <faiss/impl/FaissAssert.h>
#include <faiss/utils/distances.h>
#include <faiss/utils/utils.h>

#include <omp.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

// OpenBLAS's own thread count (its pthread build ignores OpenMP's).
extern "C" void openblas_set_num_threads(int) __attribute__((weak));

namespace faiss_bq {

namespace {

constexpr size_t k_recall = 10;      // 10-recall@10
constexpr size_t k_candidates = 100; // searched for re-ranking
constexpr size_t rerank_depths[] = {40, 100};
constexpr size_t n_depths = std::size(rerank_depths);
constexpr size_t max_single_queries = 200; // the one-query-at-a-time loop
constexpr double min_timing_seconds = 0.5;
const char* const default_dataset = "use512-wordnet";

// ------------------------------------------------------------------ options

struct Options {
    std::string data_folder;
    std::string base_path;
    std::string query_path;
    std::string groundtruth_path;
    std::optional<faiss::MetricType> metric;
    size_t nq = 0; ///< 0: all queries
    std::vector<std::string> methods;
    bool skip_pq = false;
    bool skip_refine = false;
    int threads = 0;             ///< 0: OpenMP's default
    std::vector<size_t> budgets; ///< --budgets: bytes of codes per vector
    std::string tsv_path;        ///< --tsv: every row as tab-separated values
    std::string plot_path;       ///< --plot: recall against QPS (PNG)
    std::vector<std::string>
            references; ///< --reference: programs whose rows join
};

[[noreturn]] void usage(int status) {
    std::fprintf(
            status ? stderr : stdout,
            "usage: bq_bench [--data DIR | --base B.fvecs --query Q.fvecs "
            "[--gt G.ivecs]]\n"
            "                [--metric ip|l2] [--nq N] [--methods a,b,c] "
            "[--skip-pq] [--skip-refine] [--threads T]\n"
            "                [--budgets B1,B2] [--tsv FILE] [--plot FILE.png] "
            "[--reference PROGRAM]...\n"
            "  --data DIR   folder with base.fvecs, query.fvecs and "
            "groundtruth.ivecs\n"
            "               (default: $FAISS_BQ_DATA/%s, FAISS_BQ_DATA "
            "defaulting to\n"
            "               %s)\n"
            "  --metric     ip or l2 (default: info.txt's metric, else ip)\n"
            "  --methods    rows whose names hold all the words of an item, "
            "e.g.\n"
            "               BQ1,pq,flat or BQ2-auto,sign (words split at "
            "' ', '-', '_')\n"
            "  --skip-pq    no IndexPQ row (its training is the slowest)\n"
            "  --skip-refine  no two-stage rows (IndexBQRefine, IndexFromBinary)\n"
            "  --budgets    e.g. 16,32,64,128: rows at each budget of code bytes\n"
            "               (BQ<bytes>B automatic, allocated per basis, uniform,\n"
            "               IndexPQ and IndexScalarQuantizer at equal bytes);\n"
            "               select them alone with --methods B16,B32,...\n"
            "  --tsv FILE   every row as tab-separated values (bench/bench_tsv.h)\n"
            "  --plot FILE.png  10-recall@10 against QPS (log), each family's "
            "Pareto front\n"
            "               (bench/plot_recall_qps.py, Debian's "
            "python3-matplotlib)\n"
            "  --reference PROGRAM  run PROGRAM --data DIR --threads T [--nq N] "
            "after the rows\n"
            "               and add the TSV rows it prints, e.g. fast_scan_ref "
            "(FAISS's fast\n"
            "               scan, built against any FAISS: "
            "bench/build_fast_scan_ref.sh)\n",
            default_dataset,
            FAISS_BQ_DEFAULT_DATA);
    std::exit(status);
}

std::vector<std::string> split(const std::string& s, const char* separators) {
    std::vector<std::string> parts;
    size_t start = 0;
    while (start <= s.size()) {
        const size_t end = s.find_first_of(separators, start);
        const size_t stop = end == std::string::npos ? s.size() : end;
        if (stop > start) {
            parts.push_back(s.substr(start, stop - start));
        }
        start = stop + 1;
    }
    return parts;
}

size_t parse_count(const std::string& option, const std::string& value) {
    char* end = nullptr;
    const long long n = std::strtoll(value.c_str(), &end, 10);
    if (value.empty() || *end != '\0' || n <= 0) {
        std::fprintf(
                stderr,
                "bq_bench: %s needs a positive integer, got '%s'\n",
                option.c_str(),
                value.c_str());
        usage(2);
    }
    return size_t(n);
}

Options parse_options(int argc, char** argv) {
    Options opt;
    for (int i = 1; i < argc; i++) {
        const std::string arg = argv[i];
        if (arg == "--help" || arg == "-h") {
            usage(0);
        }
        if (arg == "--skip-refine") {
            opt.skip_refine = true;
            continue;
        }
        if (arg == "--skip-pq") {
            opt.skip_pq = true;
            continue;
        }
        if (i + 1 >= argc) {
            std::fprintf(
                    stderr, "bq_bench: unknown or incomplete '%s'\n", argv[i]);
            usage(2);
        }
        const std::string value = argv[++i];
        if (arg == "--data") {
            opt.data_folder = value;
        } else if (arg == "--base") {
            opt.base_path = value;
        } else if (arg == "--query") {
            opt.query_path = value;
        } else if (arg == "--gt") {
            opt.groundtruth_path = value;
        } else if (arg == "--metric" && (value == "ip" || value == "l2")) {
            opt.metric = value == "ip" ? faiss::METRIC_INNER_PRODUCT
                                       : faiss::METRIC_L2;
        } else if (arg == "--nq") {
            opt.nq = parse_count(arg, value);
        } else if (arg == "--methods") {
            opt.methods = split(value, ",");
        } else if (arg == "--threads") {
            opt.threads = int(parse_count(arg, value));
        } else if (arg == "--tsv") {
            opt.tsv_path = value;
        } else if (arg == "--plot") {
            opt.plot_path = value;
        } else if (arg == "--reference") {
            opt.references.push_back(value);
        } else if (arg == "--budgets") {
            for (const std::string& b : split(value, ",")) {
                opt.budgets.push_back(parse_count(arg, b));
            }
        } else {
            std::fprintf(
                    stderr,
                    "bq_bench: bad option '%s %s'\n",
                    arg.c_str(),
                    value.c_str());
            usage(2);
        }
    }
    if (opt.base_path.empty() != opt.query_path.empty() ||
        (!opt.base_path.empty() && !opt.data_folder.empty())) {
        std::fprintf(stderr, "bq_bench: give --data, or --base with --query\n");
        usage(2);
    }
    return opt;
}

// ------------------------------------------------------------------ dataset

std::string data_root() {
    const char* env = std::getenv("FAISS_BQ_DATA");
    return env && *env ? env : FAISS_BQ_DEFAULT_DATA;
}

std::string parent_folder(const std::string& path) {
    const size_t slash = path.rfind('/');
    return slash == std::string::npos ? "." : path.substr(0, slash);
}

/// The files the options name; nullopt (with instructions printed) when the
/// default dataset has not been fetched.
std::optional<DatasetFiles> dataset_files(const Options& opt) {
    if (!opt.base_path.empty()) {
        DatasetFiles files;
        const std::string folder = parent_folder(opt.base_path);
        files.name = folder.substr(folder.rfind('/') + 1);
        files.base = opt.base_path;
        files.query = opt.query_path;
        files.groundtruth = opt.groundtruth_path;
        files.info = folder + "/info.txt";
        return files;
    }
    if (!opt.data_folder.empty()) {
        return DatasetFiles::in_folder(opt.data_folder);
    }
    const std::string root = data_root();
    DatasetFiles files = DatasetFiles::in_folder(root + "/" + default_dataset);
    if (file_exists(files.base) && file_exists(files.query)) {
        return files;
    }
    std::fprintf(
            stderr,
            "bq_bench: no dataset in %s/%s (base.fvecs, query.fvecs).\n"
            "Build the real embeddings (about 3 minutes; needs node, npm and "
            "python3 with numpy):\n"
            "    DATASETS=\"minilm-sap use512-wordnet\" %s/get-data.sh %s\n"
            "or set FAISS_BQ_DATA to a folder that has them, or pass --data "
            "DIR or --base/--query.\n",
            root.c_str(),
            default_dataset,
            FAISS_BQ_DEFAULT_DATA,
            root.c_str());
    return std::nullopt;
}

// ------------------------------------------------------------------ methods

using IndexPtr = std::unique_ptr<faiss::Index>;

/// One row of the table. Rows with the same index_key share one trained
/// index and are listed next to each other, so each index is trained once.
struct Method {
    std::string name;
    std::string index_key;
    std::function<IndexPtr()> make;
    /// Per-search options; null: the index's defaults.
    std::shared_ptr<const faiss::SearchParameters> params;
    /// Non-null: the row measures this index made from the trained one
    /// (e.g. its fast-scan form) instead of the trained one itself.
    std::function<IndexPtr(const faiss::Index&)> derive = nullptr;
};

/// The fast-scan form of a trained IndexBQ, or of an IndexBQRefine over
/// one (sharing its refine store): same plan and codes, re-packed. Rows
/// that use it end in " fs".
IndexPtr to_fast_scan(const faiss::Index& trained) {
    if (auto rf = dynamic_cast<const IndexBQRefine*>(&trained)) {
        auto fs = std::make_unique<IndexBQRefine>(
                new IndexBQFastScan(
                        dynamic_cast<const IndexBQ&>(*rf->base_index)),
                rf->refine_index);
        fs->own_fields = true;
        fs->k_factor = rf->k_factor;
        return IndexPtr(std::move(fs));
    }
    return std::make_unique<IndexBQFastScan>(
            dynamic_cast<const IndexBQ&>(trained));
}

struct PlanChoice {
    const char* label;
    TransformChoice transform;
    QuantizationChoice quantization = QuantizationChoice::automatic;
};
constexpr PlanChoice plan_choices[] = {
        {"auto", TransformChoice::automatic},
        {"axis", TransformChoice::identity},
        {"rot", TransformChoice::random_rotation},
        // EDEN (docs/rotation-quantizers.md): rotated, and without the
        // rotation as FAISS's IndexEDEN runs by default.
        {"eden", TransformChoice::random_rotation, QuantizationChoice::eden},
        {"eden axis", TransformChoice::identity, QuantizationChoice::eden},
        // TurboQuant-MSE: EDEN's codes with the MSE scale.
        {"tqmse",
         TransformChoice::random_rotation,
         QuantizationChoice::turbo_mse},
        {"tqmse axis",
         TransformChoice::identity,
         QuantizationChoice::turbo_mse},
};

/// The one spelling of a BQ row's name: "BQ1 auto asym", "BQ2 rot asym q4".
std::string bq_name(
        int nbits,
        const std::string& plan,
        Estimator estimator,
        int query_bits = 0) {
    std::string name = "BQ" + std::to_string(nbits) + " " + plan +
            (estimator == Estimator::asymmetric ? " asym" : " sym");
    return query_bits ? name + " q" + std::to_string(query_bits) : name;
}

void add_bq_methods(
        std::vector<Method>& methods,
        const Dataset& ds,
        int nbits) {
    for (const PlanChoice& plan : plan_choices) {
        for (Estimator estimator :
             {Estimator::asymmetric, Estimator::symmetric}) {
            auto make = [d = ds.d, metric = ds.metric, nbits, plan, estimator] {
                auto index = std::make_unique<IndexBQ>(d, nbits, metric);
                index->trainer.transform = plan.transform;
                index->trainer.quantization = plan.quantization;
                // The trainer decides centring for the index's estimator.
                index->estimator = estimator;
                return IndexPtr(std::move(index));
            };
            std::vector<int> query_bits = {0};
            if (plan.transform == TransformChoice::automatic &&
                estimator == Estimator::asymmetric) {
                query_bits = {0, 8, 4};
            }
            for (int bits : query_bits) {
                auto params = std::make_shared<SearchParametersBQ>();
                params->estimator = estimator;
                params->query_bits = bits;
                methods.push_back(
                        {bq_name(nbits, plan.label, estimator, bits),
                         bq_name(nbits, plan.label, estimator),
                         make,
                         std::move(params)});
            }
            if ((plan.quantization == QuantizationChoice::eden ||
                 plan.quantization == QuantizationChoice::turbo_mse) &&
                estimator == Estimator::asymmetric) {
                // EDEN's (TurboQuant-MSE's) plan re-packed for fast scan (no
                // joint twin).
                methods.push_back(
                        {bq_name(nbits, plan.label, estimator) + " fs",
                         bq_name(nbits, plan.label, estimator),
                         make,
                         nullptr,
                         to_fast_scan});
            }
            if (plan.transform == TransformChoice::automatic &&
                estimator == Estimator::asymmetric) {
                // " fs": IndexBQFastScan as a user trains it (joint
                // nibbles); " fs scalar": the IndexBQ above, re-packed.
                // (rows of one index_key stay together: each new key trains)
                const std::string name = bq_name(nbits, plan.label, estimator);
                methods.push_back(
                        {name + " fs scalar",
                         name,
                         make,
                         nullptr,
                         to_fast_scan});
                methods.push_back(
                        {name + " fs",
                         name + " fs",
                         [d = ds.d, metric = ds.metric, nbits] {
                             return IndexPtr(
                                     new IndexBQFastScan(d, nbits, metric));
                         },
                         nullptr});
            }
        }
    }
}

/// Recurrent binarization (issue 16, BEBR), n_stages bits per coordinate:
/// "BQR<u> asym" (float query), "BQR<u> sdc" (the query's own code, SDC),
/// the same bits under plain Hamming in FAISS's IndexBinaryFlat and in
/// faiss_bq's IndexBinaryFlatFast, and "BQR<u> gscale ..." with one scale
/// per stage instead of per vector (what the per-vector factors bring).
void add_recurrent_methods(std::vector<Method>& methods, const Dataset& ds) {
    for (int u = 1; u <= 4; u++) {
        for (bool per_vector : {true, false}) {
            const std::string key =
                    "BQR" + std::to_string(u) + (per_vector ? "" : " gscale");
            auto make = [d = ds.d, metric = ds.metric, u, per_vector] {
                return IndexPtr(new IndexBQRecurrent(d, u, metric, per_vector));
            };
            for (Estimator e : {Estimator::asymmetric, Estimator::symmetric}) {
                auto params = std::make_shared<SearchParametersBQ>();
                params->estimator = e;
                methods.push_back(
                        {key + (e == Estimator::symmetric ? " sdc" : " asym"),
                         key,
                         make,
                         std::move(params)});
            }
            if (!per_vector) {
                continue;
            }
            for (bool faiss_flat : {true, false}) {
                methods.push_back(
                        {key +
                                 (faiss_flat ? " hamming BinaryFlat"
                                             : " hamming BinaryFlatFast"),
                         key,
                         make,
                         nullptr,
                         [faiss_flat](const faiss::Index& trained) {
                             return IndexPtr(new IndexRecurrentHamming(
                                     dynamic_cast<const IndexBQRecurrent&>(
                                             trained),
                                     faiss_flat));
                         }});
            }
        }
    }
}

/// TurboQuant-prod (IndexBQTurbo), 2..4 bits per coordinate in all:
/// "BQT<b> rot" and "BQT<b> axis" (with and without the random rotation),
/// centred at the training mean, and the same uncentred ("... noctr"), as
/// FAISS's SQtq<b> is.
void add_turbo_methods(std::vector<Method>& methods, const Dataset& ds) {
    for (int b = 2; b <= 4; b++) {
        for (bool rotated : {true, false}) {
            for (bool centered : {true, false}) {
                const std::string name = "BQT" + std::to_string(b) +
                        (rotated ? " rot" : " axis") +
                        (centered ? "" : " noctr");
                methods.push_back(
                        {name,
                         name,
                         [d = ds.d, metric = ds.metric, b, rotated, centered] {
                             auto t = std::make_unique<IndexBQTurbo>(
                                     d, b, metric);
                             t->transform = rotated ? Transform::random_rotation
                                                    : Transform::identity;
                             t->centered = centered;
                             return IndexPtr(std::move(t));
                         },
                         nullptr});
            }
        }
    }
}

/// BlockQuant (IndexBlockQuant, docs/blockquant.md): one byte per block
/// of k rotated coordinates, "BKQ<k>x<m>" trained (centred) and "... obl"
/// (data-oblivious): k = 8 is a bit per coordinate, k = 4 two, k = 2 four.
void add_blockquant_methods(std::vector<Method>& methods, const Dataset& ds) {
    for (const char* key : {"BKQ8x8", "BKQ4x7", "BKQ2x5"}) {
        for (bool oblivious : {false, true}) {
            const std::string spec =
                    std::string(key) + (oblivious ? "_obl" : "");
            const std::string name =
                    std::string(key) + (oblivious ? " obl" : "");
            methods.push_back(
                    {name,
                     name,
                     [d = ds.d, metric = ds.metric, spec] {
                         return IndexPtr(
                                 index_factory(int(d), spec.c_str(), metric));
                     },
                     nullptr});
        }
    }
}

/// IndexPQ with 8-bit codes in the bytes of BQ1's bit plane (d / 8); the
/// largest M not above that which divides d, as IndexPQ requires.
size_t pq_subquantizers(size_t d) {
    size_t m = std::max<size_t>(1, (d + 7) / 8);
    while (d % m != 0) {
        m--;
    }
    return m;
}

void add_baseline_methods(
        std::vector<Method>& methods,
        const Dataset& ds,
        bool with_pq) {
    const idx_t d = ds.d;
    const faiss::MetricType metric = ds.metric;
    auto add = [&](const std::string& name, std::function<IndexPtr()> make) {
        methods.push_back({name, name, std::move(make), nullptr});
    };
    add("BinaryFlat sign", [d] { return std::make_unique<IndexSignBits>(d); });
    add("LSH rot+thr",
        [d] { return std::make_unique<faiss::IndexLSH>(d, d, true, true); });
    if (with_pq) {
        const size_t m = pq_subquantizers(d);
        add("PQ M=" + std::to_string(m), [d, m, metric] {
            return std::make_unique<faiss::IndexPQ>(d, m, 8, metric);
        });
    }
    add("Flat exact",
        [d, metric] { return std::make_unique<faiss::IndexFlat>(d, metric); });
}

std::string format(const char* fmt, double value) {
    char buffer[64];
    std::snprintf(buffer, sizeof(buffer), fmt, value);
    return buffer;
}

/// The per-search options of a refine row: k_factor, the error-bound skip,
/// and the first stage's estimator options (kept alive with them).
struct RefineParams : SearchParametersBQRefine {
    SearchParametersBQ first_stage;
    RefineParams(float k_factor_, float bound_sigmas_, int query_bits) {
        k_factor = k_factor_;
        bound_sigmas = bound_sigmas_;
        first_stage.query_bits = query_bits;
        base_params = &first_stage;
    }
    RefineParams(const RefineParams&) = delete;
};

/// The trained two-stage index (sharing both stages) with the k_factor its
/// plan gives for a 10-recall@10 of `recall` over its ntotal
/// (BinarizationPlan::k_factor_for): the rows "kf@<recall>" check the
/// prediction.
std::function<IndexPtr(const faiss::Index&)> k_factor_for_recall(float recall) {
    return [recall](const faiss::Index& trained) {
        const auto& rf = dynamic_cast<const IndexBQRefine&>(trained);
        const BinarizationPlan* plan = nullptr;
        if (auto bq = dynamic_cast<const IndexBQ*>(rf.base_index)) {
            plan = &bq->plan;
        } else {
            plan = &dynamic_cast<const IndexBQFastScan&>(*rf.base_index).plan;
        }
        auto out =
                std::make_unique<IndexBQRefine>(rf.base_index, rf.refine_index);
        out->k_factor = plan->k_factor_for(recall, trained.ntotal);
        return IndexPtr(std::move(out));
    };
}

/// Two-stage rows (issue 4): BQ1 / BQ2 (automatic plan, asymmetric) re-ranked
/// from exact, fp16 and SQ8 stores at several k_factors, set per search on
/// one trained index per (nbits, store); the exact store also with 8- and
/// 4-bit queries in the first stage and with the error-bound skip; and the
/// float front end over FAISS's IndexBinaryHNSW with exact refine.
void add_refine_methods(std::vector<Method>& methods, const Dataset& ds) {
    using QT = faiss::ScalarQuantizer::QuantizerType;
    struct Store {
        const char* label;
        std::function<faiss::Index*(idx_t, faiss::MetricType)> make;
    };
    const Store stores[] = {
            {"Flat",
             [](idx_t d, faiss::MetricType m) {
                 return new faiss::IndexFlat(d, m);
             }},
            {"fp16",
             [](idx_t d, faiss::MetricType m) {
                 return new faiss::IndexScalarQuantizer(d, QT::QT_fp16, m);
             }},
            {"SQ8",
             [](idx_t d, faiss::MetricType m) {
                 return new faiss::IndexScalarQuantizer(d, QT::QT_8bit, m);
             }},
    };
    for (int nbits = 1; nbits <= 2; nbits++) {
        const std::vector<float> factors = nbits == 1
                ? std::vector<float>{4, 10, 20}
                : std::vector<float>{2, 4, 10};
        for (const Store& store : stores) {
            const std::string key =
                    "BQ" + std::to_string(nbits) + " rerank-" + store.label;
            auto make = [d = ds.d, metric = ds.metric, nbits, store] {
                auto rf = std::make_unique<IndexBQRefine>(
                        new IndexBQ(d, nbits, metric), store.make(d, metric));
                rf->own_fields = rf->own_refine_index = true;
                return IndexPtr(std::move(rf));
            };
            const bool exact = std::string(store.label) == "Flat";
            for (int qbits :
                 exact ? std::vector<int>{0, 8, 4} : std::vector<int>{0}) {
                for (float kf : factors) {
                    methods.push_back(
                            {"BQ" + std::to_string(nbits) +
                                     (qbits ? " q" + std::to_string(qbits)
                                            : std::string()) +
                                     " rerank-" + store.label + " kf" +
                                     format("%g", kf),
                             key,
                             make,
                             std::make_shared<RefineParams>(kf, 0.f, qbits)});
                }
            }
            // The fast-scan first stage: trained as IndexBQFastScan (joint
            // nibbles), and the IndexBQ above re-packed (" fs scalar").
            auto make_fs = [d = ds.d, metric = ds.metric, nbits, store] {
                auto rf = std::make_unique<IndexBQRefine>(
                        new IndexBQFastScan(d, nbits, metric),
                        store.make(d, metric));
                rf->own_fields = rf->own_refine_index = true;
                return IndexPtr(std::move(rf));
            };
            const std::string fs_head = "BQ" + std::to_string(nbits) + " fs";
            auto fs_tail = [&](float kf) {
                return " rerank-" + std::string(store.label) + " kf" +
                        format("%g", kf);
            };
            for (float kf : factors) {
                methods.push_back(
                        {fs_head + " scalar" + fs_tail(kf),
                         key,
                         make,
                         std::make_shared<RefineParams>(kf, 0.f, 0),
                         to_fast_scan});
            }
            if (exact) {
                const float kf = factors.back();
                for (float sigmas : {2.f, 3.f}) {
                    methods.push_back(
                            {key + " kf" + format("%g", kf) + " skip" +
                                     format("%g", sigmas) + "sd",
                             key,
                             make,
                             std::make_shared<RefineParams>(kf, sigmas, 0)});
                }
            }
            for (float kf : factors) {
                methods.push_back(
                        {fs_head + fs_tail(kf),
                         key + " fs",
                         make_fs,
                         std::make_shared<RefineParams>(kf, 0.f, 0)});
            }
            for (float target : {0.90f, 0.95f, 0.99f}) {
                if (exact) {
                    methods.push_back(
                            {fs_head + " rerank-Flat kf@" +
                                     format("%.2f", target),
                             key + " fs",
                             make_fs,
                             nullptr,
                             k_factor_for_recall(target)});
                }
            }
        }
    }
    // FAISS's binary HNSW (M = 32, efSearch = 256) as the first stage,
    // through the float front end.
    auto make_hnsw = [d = ds.d, metric = ds.metric] {
        auto hnsw = new faiss::IndexBinaryHNSW(8 * int((d + 7) / 8), 32);
        hnsw->hnsw.efSearch = 256;
        auto fb = new IndexFromBinary(hnsw, d, 1, metric);
        fb->own_fields = true;
        auto rf = std::make_unique<IndexBQRefine>(fb);
        rf->own_fields = rf->own_refine_index = true;
        return IndexPtr(std::move(rf));
    };
    for (float kf : {10.f, 20.f}) {
        methods.push_back(
                {"BQ1(BHNSW32) rerank-Flat kf" + format("%g", kf),
                 "BQ1(BHNSW32) rerank-Flat",
                 make_hnsw,
                 std::make_shared<RefineParams>(kf, 0.f, 0)});
    }
}

// ------------------------------------------------------------ budget rows

/// The one spelling of a budget row's name: "B64 auto", "B64 alloc pca".
std::string budget_name(size_t bytes, const std::string& what) {
    return "B" + std::to_string(bytes) + " " + what;
}

/// Rows at a budget of code bytes (issue 8): the trainer's choice, the
/// allocated plan forced in each basis, the uniform plans that fit, and
/// FAISS's IndexPQ / IndexScalarQuantizer where their codes have those bytes.
void add_budget_methods(
        std::vector<Method>& methods,
        const Dataset& ds,
        size_t bytes,
        bool with_pq) {
    const idx_t d = ds.d;
    const faiss::MetricType metric = ds.metric;
    auto add_bq = [&](const std::string& what,
                      AllocationChoice allocation,
                      TransformChoice transform,
                      QuantizationChoice quantization =
                              QuantizationChoice::automatic) {
        // The fast-scan rows are trained as IndexBQFastScan trains (the
        // allocation fits the nibble layout; " fs" also with joint nibbles,
        // its default; " fs scalar" without), then re-packed.
        auto make = [d, metric, bytes, allocation, transform, quantization](
                            bool fast_scan, bool joint) {
            auto index =
                    std::make_unique<IndexBQ>(d, CodeBudget{bytes}, metric);
            index->trainer.allocation = allocation;
            index->trainer.transform = transform;
            index->trainer.quantization = quantization;
            index->trainer.fast_scan_layout = fast_scan;
            index->trainer.joint_nibbles = joint;
            return IndexPtr(std::move(index));
        };
        const std::string name = budget_name(bytes, what);
        methods.push_back(
                {name, name, [make] { return make(false, false); }, nullptr});
        methods.push_back(
                {name + " fs",
                 name + " fs",
                 [make] { return make(true, true); },
                 nullptr,
                 to_fast_scan});
        methods.push_back(
                {name + " fs scalar",
                 name + " fs scalar",
                 [make] { return make(true, false); },
                 nullptr,
                 to_fast_scan});
    };
    add_bq("auto", AllocationChoice::automatic, TransformChoice::automatic);
    add_bq("alloc axis",
           AllocationChoice::allocated,
           TransformChoice::identity);
    add_bq("alloc rot",
           AllocationChoice::allocated,
           TransformChoice::random_rotation);
    add_bq("alloc pca", AllocationChoice::allocated, TransformChoice::pca);
    if ((size_t(d) + 7) / 8 <= bytes) {
        add_bq("uniform axis",
               AllocationChoice::uniform,
               TransformChoice::identity);
        add_bq("uniform rot",
               AllocationChoice::uniform,
               TransformChoice::random_rotation);
        add_bq("uniform eden",
               AllocationChoice::uniform,
               TransformChoice::random_rotation,
               QuantizationChoice::eden);
    }
    auto add = [&](const std::string& what, std::function<IndexPtr()> make) {
        const std::string name = budget_name(bytes, what);
        methods.push_back({name, name, std::move(make), nullptr});
    };
    if (with_pq && size_t(d) % bytes == 0) {
        add("PQ M=" + std::to_string(bytes), [d, bytes, metric] {
            return std::make_unique<faiss::IndexPQ>(d, bytes, 8, metric);
        });
    }
    for (auto [qtype, qname, qbytes] :
         {std::make_tuple(
                  faiss::ScalarQuantizer::QT_4bit, "SQ4", size_t(d + 1) / 2),
          std::make_tuple(
                  faiss::ScalarQuantizer::QT_6bit,
                  "SQ6",
                  size_t(3 * d + 3) / 4),
          std::make_tuple(faiss::ScalarQuantizer::QT_8bit, "SQ8", size_t(d))}) {
        if (qbytes == bytes) {
            add(qname, [d, qtype = qtype, metric] {
                return std::make_unique<faiss::IndexScalarQuantizer>(
                        d, qtype, metric);
            });
        }
    }
}

std::string lowercase(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) {
        return char(std::tolower(c));
    });
    return s;
}

/// A --methods item selects the rows whose name holds all its words.
bool selected(const std::string& name, const std::vector<std::string>& items) {
    if (items.empty()) {
        return true;
    }
    const char* separators = " -_";
    const std::vector<std::string> words = split(lowercase(name), separators);
    return std::any_of(
            items.begin(), items.end(), [&](const std::string& item) {
                const std::vector<std::string> wanted =
                        split(lowercase(item), separators);
                return !wanted.empty() &&
                        std::all_of(wanted.begin(), wanted.end(), [&](auto& w) {
                            return std::find(words.begin(), words.end(), w) !=
                                    words.end();
                        });
            });
}

/// The choice among families (IndexBQFamily, docs/family.md): "BQ1 family",
/// "BQ2 family" and "B<bytes> family" at each --budgets value; the note under
/// the table names the chosen candidate and every candidate's held-out
/// recall.
void add_family_methods(
        std::vector<Method>& methods,
        const Dataset& ds,
        const std::vector<size_t>& budgets) {
    std::vector<std::pair<std::string, std::string>> rows = {
            {"BQ1 family", "BQ1_family"}, {"BQ2 family", "BQ2_family"}};
    for (size_t bytes : budgets) {
        rows.push_back(
                {budget_name(bytes, "family"),
                 "BQ" + std::to_string(bytes) + "B_family"});
    }
    for (const auto& [name, spec] : rows) {
        methods.push_back(
                {name,
                 name,
                 [d = ds.d, metric = ds.metric, spec = spec] {
                     return IndexPtr(
                             index_factory(int(d), spec.c_str(), metric));
                 },
                 nullptr});
    }
}

void add_hnsw_methods(std::vector<Method>& methods, const Dataset& ds);

std::vector<Method> methods_to_run(const Dataset& ds, const Options& opt) {
    std::vector<Method> all;
    add_bq_methods(all, ds, 1);
    add_bq_methods(all, ds, 2);
    if (!opt.skip_refine) {
        add_refine_methods(all, ds);
    }
    add_baseline_methods(all, ds, !opt.skip_pq);
    add_recurrent_methods(all, ds);
    add_turbo_methods(all, ds);
    add_blockquant_methods(all, ds);
    add_family_methods(all, ds, opt.budgets);
    for (size_t bytes : opt.budgets) {
        add_budget_methods(all, ds, bytes, !opt.skip_pq);
    }
    add_hnsw_methods(all, ds);
    std::vector<Method> chosen;
    std::copy_if(
            all.begin(),
            all.end(),
            std::back_inserter(chosen),
            [&](const Method& m) { return selected(m.name, opt.methods); });
    if (chosen.empty()) {
        std::string names;
        for (const Method& m : all) {
            names += "\n  " + m.name;
        }
        FAISS_THROW_FMT(
                "--methods selects no row; the rows are:%s", names.c_str());
    }
    return chosen;
}

// ------------------------------------------------------------------ measures

/// Exact distance to base vector `id`, smaller is closer for either metric.
float exact_distance(const Dataset& ds, const float* query, idx_t id) {
    const float* x = ds.base.data() + id * ds.d;
    return ds.metric == faiss::METRIC_INNER_PRODUCT
            ? -faiss::fvec_inner_product(query, x, ds.d)
            : faiss::fvec_L2sqr(query, x, ds.d);
}

/// The k_recall best of each query's first `depth` candidates (rows of
/// k_candidates) under the exact metric on the original floats.
std::vector<idx_t> rerank(
        const Dataset& ds,
        const std::vector<idx_t>& candidates,
        size_t depth) {
    std::vector<idx_t> best(ds.nq * k_recall, -1);
#pragma omp parallel for
    for (int64_t q = 0; q < int64_t(ds.nq); q++) {
        const float* query = ds.queries.data() + q * ds.d;
        std::vector<std::pair<float, idx_t>> scored;
        for (size_t i = 0; i < depth; i++) {
            const idx_t id = candidates[q * k_candidates + i];
            if (id >= 0) {
                scored.emplace_back(exact_distance(ds, query, id), id);
            }
        }
        const size_t keep = std::min(k_recall, scored.size());
        std::partial_sort(scored.begin(), scored.begin() + keep, scored.end());
        for (size_t i = 0; i < keep; i++) {
            best[q * k_recall + i] = scored[i].second;
        }
    }
    return best;
}

std::vector<idx_t> search_labels(
        const faiss::Index& index,
        const Method& method,
        size_t n,
        const float* x,
        size_t k) {
    std::vector<float> distances(n * k);
    std::vector<idx_t> labels(n * k);
    index.search(n, x, k, distances.data(), labels.data(), method.params.get());
    return labels;
}

double seconds_since(double start_ms) {
    return (faiss::getmillisecs() - start_ms) / 1000.0;
}

struct TrainedIndex {
    IndexPtr index;
    double train_seconds = 0;
    double add_seconds = 0;
};

/// Trains on all base vectors and adds them all.
TrainedIndex train_and_add(const Method& method, const Dataset& ds) {
    TrainedIndex trained;
    trained.index = method.make();
    double start = faiss::getmillisecs();
    trained.index->train(ds.nb, ds.base.data());
    trained.train_seconds = seconds_since(start);
    start = faiss::getmillisecs();
    trained.index->add(ds.nb, ds.base.data());
    trained.add_seconds = seconds_since(start);
    return trained;
}

struct Row {
    std::string name;
    size_t bytes_per_vector = 0;
    double recall = 0; ///< stage 1
    double recall_reranked[n_depths] = {};
    double qps_batch = 0;
    double qps_single = 0;
    double train_seconds = 0;
    double add_seconds = 0;
    std::string error;  ///< non-empty: the method failed, the rest is unset
    std::string note;   ///< printed under the table
    std::string family; ///< the plot's families (family_of, or the reference's)
    std::string build;  ///< the library that measured it
    bool reranked = true; ///< recall_reranked measured (not by a reference)
};

/// The plot's family of a row of this bench, from its name: faiss_bq's
/// one-stage rows, fast-scan rows and two-stage rows apart, FAISS's
/// baselines, sign bits the common way, and the graphs.
std::string family_of(const std::string& name) {
    auto has = [&](const char* w) { return name.find(w) != std::string::npos; };
    if (name.rfind("HNSW", 0) == 0) {
        return has("BQ") ? "faiss_bq HNSW" : "FAISS HNSW";
    }
    if (has("BinaryFlat sign")) {
        return "sign bits (the common way)";
    }
    if (has("PQ M=") || has("SQ4") || has("SQ6") || has("SQ8") || has("LSH") ||
        name == "Flat exact") {
        return "FAISS " FAISS_BQ_FAISS_VERSION;
    }
    if (has("rerank")) {
        return "faiss_bq two-stage";
    }
    return has(" fs") ? "faiss_bq fast scan" : "faiss_bq";
}

/// Bytes stored per vector: the codes, or for a two-stage index the first
/// stage's plus the refine store's.
size_t memory_per_vector(const faiss::Index& index) {
    if (auto rf = dynamic_cast<const IndexBQRefine*>(&index)) {
        return memory_per_vector(*rf->base_index) +
                memory_per_vector(*rf->refine_index);
    }
    if (auto fs = dynamic_cast<const IndexBQFastScan*>(&index)) {
        return fs->nibble_layout().nbytes + CodeLayout::factor_bytes;
    }
    if (auto fb = dynamic_cast<const IndexFromBinary*>(&index)) {
        const size_t codes = size_t(fb->index->code_size);
        if (auto hnsw =
                    dynamic_cast<const faiss::IndexBinaryHNSW*>(fb->index)) {
            // the graph: the 2 M level-0 links of 4 bytes (upper levels add
            // about 1 / M of that)
            return codes + size_t(hnsw->hnsw.nb_neighbors(0)) * 4;
        }
        return codes;
    }
    if (auto hnsw = dynamic_cast<const faiss::IndexHNSW*>(&index)) {
        // the storage's vectors, then the graph's links at every level
        return memory_per_vector(*hnsw->storage) +
                hnsw->hnsw.neighbors.size() *
                sizeof(faiss::HNSW::storage_idx_t) /
                size_t(std::max<idx_t>(1, hnsw->ntotal));
    }
    return index.sa_code_size();
}

Row measure(
        const Method& method,
        const TrainedIndex& trained,
        const Dataset& ds) {
    const IndexPtr derived =
            method.derive ? method.derive(*trained.index) : nullptr;
    const faiss::Index& index = derived ? *derived : *trained.index;
    Row row;
    row.name = method.name;
    row.family = family_of(method.name);
    row.bytes_per_vector = memory_per_vector(index);
    row.train_seconds = trained.train_seconds;
    row.add_seconds = trained.add_seconds;

    std::vector<idx_t> top;
    row.qps_batch = queries_per_second(
            ds.nq,
            [&] {
                top = search_labels(
                        index, method, ds.nq, ds.queries.data(), k_recall);
            },
            min_timing_seconds);
    row.recall = recall_at_10(ds, top, k_recall);
    if (auto fam = dynamic_cast<const IndexBQFamily*>(&index)) {
        row.note = "chose " + fam->candidates[fam->chosen].key +
                "; held-out 10-recall@10:";
        for (const FamilyCandidateReport& c : fam->candidates) {
            row.note += " " + c.key + " " +
                    (c.left_out.empty() ? format("%.3f", c.heldout_recall)
                                        : std::string("left out"));
        }
    }
    auto rf = dynamic_cast<const IndexBQRefine*>(&index);
    if (rf && !method.params) {
        row.note = "k_factor " + format("%.2f", rf->k_factor);
    }
    if (rf && rf->last_stats.skipped > 0) {
        const auto& st = rf->last_stats;
        row.note = format("%.0f", double(st.candidates - st.skipped)) + " of " +
                format("%.0f", double(st.candidates)) +
                " candidates re-scored (" +
                format("%.1f",
                       100.0 * st.skipped /
                               std::max<size_t>(1, st.candidates)) +
                "% skipped by the error bound)";
    }

    const size_t n_single = std::min(ds.nq, max_single_queries);
    row.qps_single = queries_per_second(
            n_single,
            [&] {
                for (size_t q = 0; q < n_single; q++) {
                    search_labels(
                            index,
                            method,
                            1,
                            ds.queries.data() + q * ds.d,
                            k_recall);
                }
            },
            min_timing_seconds);

    const std::vector<idx_t> candidates = search_labels(
            index, method, ds.nq, ds.queries.data(), k_candidates);
    for (size_t i = 0; i < n_depths; i++) {
        row.recall_reranked[i] = recall_at_10(
                ds, rerank(ds, candidates, rerank_depths[i]), k_recall);
    }
    return row;
}

// ------------------------------------------------------------------ reports

/// What the trainer saw and chose: in full for automatic plans, the first
/// line of the plan report for forced ones.
class PlanReporter {
   public:
    void report(const std::string& key, const faiss::Index& index) {
        const auto* bq = dynamic_cast<const IndexBQ*>(&index);
        if (!bq) {
            return;
        }
        const std::string plan = bq->plan.report();
        if (bq->trainer.transform != TransformChoice::automatic ||
            (bq->budget_bytes > 0 &&
             bq->trainer.allocation != AllocationChoice::automatic)) {
            // the first line, and an allocation's histogram line
            const size_t first = plan.find('\n') + 1;
            const size_t end =
                    bq->plan.is_uniform() ? first : plan.find('\n', first) + 1;
            std::printf("%s: %s", key.c_str(), plan.substr(0, end).c_str());
            return;
        }
        std::printf("\n==== %s: covariance report\n", key.c_str());
        const std::string analysis = bq->plan.analysis.report();
        if (analysis == last_analysis_) {
            std::printf("(identical to the one above: same training data)\n");
        } else {
            std::printf("%s", analysis.c_str());
            last_analysis_ = analysis;
        }
        std::printf("\n==== %s: chosen plan\n%s\n", key.c_str(), plan.c_str());
    }

   private:
    std::string last_analysis_;
};

const Row* find_row(const std::vector<Row>& rows, const std::string& name) {
    for (const Row& row : rows) {
        if (row.name == name && row.error.empty()) {
            return &row;
        }
    }
    return nullptr;
}

// ------------------------------------------------------------ HNSW rows

constexpr int hnsw_M = 32;
constexpr int hnsw_ef_search = 128;

/// FAISS's HNSW graph over BQ1 codes, as a user builds it
/// (faiss_bq::index_factory "HNSW32_BQ1", trained then added), next to
/// faiss::IndexHNSWFlat of the same M: issue 14's add-time comparison.
/// Both searched at hnsw_ef_search.
void add_hnsw_methods(std::vector<Method>& methods, const Dataset& ds) {
    auto params = std::make_shared<faiss::SearchParametersHNSW>();
    params->efSearch = hnsw_ef_search;
    const std::string ef = " ef" + std::to_string(hnsw_ef_search);
    const std::string bq_key = "HNSW" + std::to_string(hnsw_M) + "_BQ1";
    methods.push_back(
            {"HNSW" + std::to_string(hnsw_M) + " BQ1" + ef,
             bq_key,
             [d = ds.d, metric = ds.metric, bq_key] {
                 return IndexPtr(index_factory(int(d), bq_key.c_str(), metric));
             },
             params});
    methods.push_back(
            {"HNSW" + std::to_string(hnsw_M) + " Flat" + ef,
             "HNSWFlat",
             [d = ds.d, metric = ds.metric] {
                 return IndexPtr(
                         new faiss::IndexHNSWFlat(int(d), hnsw_M, metric));
             },
             params});
}

/// The HNSW rows' add times (issue 14's target: BQ1 within 3x of Flat).
std::string hnsw_summary(const std::vector<Row>& rows, const Dataset& ds) {
    const std::string ef = " ef" + std::to_string(hnsw_ef_search);
    const std::string m = "HNSW" + std::to_string(hnsw_M);
    const Row* bq = find_row(rows, m + " BQ1" + ef);
    const Row* flat = find_row(rows, m + " Flat" + ef);
    if (!bq || !flat) {
        return "";
    }
    const double ratio = bq->add_seconds / std::max(1e-9, flat->add_seconds);
    return "HNSW (M=" + std::to_string(hnsw_M) +
            ", efSearch=" + std::to_string(hnsw_ef_search) + "): adding the " +
            std::to_string(ds.nb) + " base vectors took " +
            format("%.2f", bq->add_seconds) + " s over BQ1 codes vs " +
            format("%.2f", flat->add_seconds) + " s for IndexHNSWFlat (" +
            format("%.2f", ratio) +
            "x; target <= 3x: " + (ratio <= 3 ? "met" : "NOT met") +
            "); 10-recall@10 " + format("%.3f", bq->recall) + " vs " +
            format("%.3f", flat->recall) + "; " +
            std::to_string(bq->bytes_per_vector) + " vs " +
            std::to_string(flat->bytes_per_vector) + " bytes per vector.";
}

size_t name_width(const std::vector<Row>& rows) {
    size_t width = 6; // "method"
    for (const Row& row : rows) {
        width = std::max(width, row.name.size());
    }
    return width;
}

void print_table(const std::vector<Row>& rows) {
    const int w = int(name_width(rows));
    std::printf(
            "\n%-*s %9s %7s %7s %7s %10s %10s %8s %7s\n",
            w,
            "method",
            "bytes/vec",
            "R@10",
            "rr40",
            "rr100",
            "QPS batch",
            "QPS 1-by-1",
            "train s",
            "add s");
    for (const Row& row : rows) {
        if (!row.error.empty()) {
            std::printf(
                    "%-*s  FAILED: %s\n",
                    w,
                    row.name.c_str(),
                    row.error.c_str());
            continue;
        }
        std::printf(
                "%-*s %9zu %7.3f %7s %7s %10.0f %10.0f %8.2f %7.2f\n",
                w,
                row.name.c_str(),
                row.bytes_per_vector,
                row.recall,
                row.reranked ? format("%.3f", row.recall_reranked[0]).c_str()
                             : "-",
                row.reranked ? format("%.3f", row.recall_reranked[1]).c_str()
                             : "-",
                row.qps_batch,
                row.qps_single,
                row.train_seconds,
                row.add_seconds);
    }
    std::printf(
            "R@10: 10-recall@10 of the method alone; rr40 / rr100: after exact "
            "float re-ranking of its top 40 / 100.\n"
            "Two-stage rows: kf = k_factor (k * kf candidates re-scored from the "
            "store after rerank-); q8 / q4 = 8- / 4-bit query in the first stage; skipN = error-"
            "bound skip at N standard deviations. bytes/vec counts both stages.\n");
    for (const Row& row : rows) {
        if (!row.note.empty()) {
            std::printf("  %s: %s\n", row.name.c_str(), row.note.c_str());
        }
    }
}

void print_markdown(const std::vector<Row>& rows) {
    std::printf(
            "\n| method | bytes/vector | 10-recall@10 | re-rank 40 | "
            "re-rank 100 | QPS batch | QPS 1-by-1 | train s | add s |\n"
            "|---|--:|--:|--:|--:|--:|--:|--:|--:|\n");
    for (const Row& row : rows) {
        if (!row.error.empty()) {
            std::printf(
                    "| %s | failed: %s | | | | | | | |\n",
                    row.name.c_str(),
                    row.error.c_str());
            continue;
        }
        std::printf(
                "| %s | %zu | %.3f | %s | %s | %.0f | %.0f | %.2f | %.2f |\n",
                row.name.c_str(),
                row.bytes_per_vector,
                row.recall,
                row.reranked ? format("%.3f", row.recall_reranked[0]).c_str()
                             : "-",
                row.reranked ? format("%.3f", row.recall_reranked[1]).c_str()
                             : "-",
                row.qps_batch,
                row.qps_single,
                row.train_seconds,
                row.add_seconds);
    }
}

/// Whether each BQ width meets its target, and whether the automatic plan is
/// within 0.02 of the best forced plan for each (nbits, estimator).
std::string summary(const std::vector<Row>& rows, const Dataset& ds) {
    const double targets[] = {0.70, 0.85}; // BQ1, BQ2 auto asym stage 1
    const double tolerance = 0.02;
    std::string s = "Summary (" + ds.name +
            (ds.name == default_dataset
                     ? "):"
                     : std::string("; the targets are set for ") +
                             default_dataset + "):");
    for (int nbits = 1; nbits <= 2; nbits++) {
        const double target = targets[nbits - 1];
        const std::string main_row =
                bq_name(nbits, "auto", Estimator::asymmetric);
        const Row* row = find_row(rows, main_row);
        s += " " + main_row + " target " + format("%.2f", target) + ": " +
                (!row ? "not run."
                      : format("%.3f", row->recall) +
                                 (row->recall >= target ? ", met."
                                                        : ", NOT met."));
        std::string meeting;
        for (const Row& r : rows) {
            if (r.error.empty() &&
                r.name.rfind("BQ" + std::to_string(nbits) + " ", 0) == 0 &&
                r.recall >= target) {
                meeting += (meeting.empty() ? "" : ", ") + r.name;
            }
        }
        s += " BQ" + std::to_string(nbits) + " rows at or above it: " +
                (meeting.empty() ? "none" : meeting) + ".";
    }
    for (int nbits = 1; nbits <= 2; nbits++) {
        for (Estimator e : {Estimator::asymmetric, Estimator::symmetric}) {
            const Row* automatic = find_row(rows, bq_name(nbits, "auto", e));
            const Row* best = nullptr;
            for (const char* plan : {"axis", "rot"}) {
                const Row* r = find_row(rows, bq_name(nbits, plan, e));
                if (r && (!best || r->recall > best->recall)) {
                    best = r;
                }
            }
            s += " " + bq_name(nbits, "auto", e) + " vs best forced: ";
            if (!automatic || !best) {
                s += "not run.";
                continue;
            }
            s += format("%.3f", automatic->recall) + " vs " +
                    format("%.3f", best->recall) + " (" + best->name + "), " +
                    (automatic->recall >= best->recall - tolerance
                             ? "within 0.02."
                             : "NOT within 0.02.");
        }
    }
    return s;
}

void print_wrapped(const std::string& text, size_t width) {
    std::istringstream words(text);
    std::string word;
    size_t column = 0;
    while (words >> word) {
        if (column > 0 && column + 1 + word.size() > width) {
            std::printf("\n");
            column = 0;
        }
        std::printf("%s%s", column ? " " : "", word.c_str());
        column += (column ? 1 : 0) + word.size();
    }
    std::printf("\n");
}

/// Per budget: the trainer's choice against the best forced plan of IndexBQ
/// rows (within 0.01?), the best allocated plan against the best uniform one
/// (recall, batch QPS) at the same scan (IndexBQ rows with IndexBQ rows, " fs"
/// rows with " fs" rows), and issue 8's targets on use512-wordnet.
std::string budget_summary(
        const std::vector<Row>& rows,
        const Dataset& ds,
        const std::vector<size_t>& budgets) {
    // 0: IndexBQ, 1: fast scan (joint nibbles), 2: fast scan, scalar levels
    auto scan_kind = [](const std::string& name) {
        auto ends = [&](const char* tail) {
            const size_t n = std::strlen(tail);
            return name.size() > n &&
                    name.compare(name.size() - n, n, tail) == 0;
        };
        return ends(" fs") ? 1 : ends(" fs scalar") ? 2 : 0;
    };
    const char* kind_label[3] = {
            "IndexBQ", "fast scan", "fast scan, scalar levels"};
    std::string s = "Budgets (" + ds.name + "):";
    for (size_t bytes : budgets) {
        const std::string prefix = "B" + std::to_string(bytes) + " ";
        const Row* automatic = find_row(rows, budget_name(bytes, "auto"));
        const Row *best[3] = {}, *best_alloc[3] = {}, *best_uniform[3] = {};
        for (const Row& r : rows) {
            if (!r.error.empty() || r.name.rfind(prefix, 0) != 0) {
                continue;
            }
            const int fs = scan_kind(r.name);
            auto better = [&](const Row* b) {
                return !b || r.recall > b->recall;
            };
            const bool alloc = r.name.find(" alloc ") != std::string::npos;
            const bool uniform = r.name.find(" uniform ") != std::string::npos;
            if ((alloc || uniform) && better(best[fs])) {
                best[fs] = &r;
            }
            if (alloc && better(best_alloc[fs])) {
                best_alloc[fs] = &r;
            }
            if (uniform && better(best_uniform[fs])) {
                best_uniform[fs] = &r;
            }
        }
        s += " " + prefix + "auto";
        if (!automatic || !best[0]) {
            s += ": not run.";
            continue;
        }
        s += " " + format("%.3f", automatic->recall) + " vs best forced " +
                format("%.3f", best[0]->recall) + " (" + best[0]->name + "), " +
                (automatic->recall >= best[0]->recall - 0.01
                         ? "within 0.01."
                         : "NOT within 0.01.");
        for (int fs = 0; fs < 3; fs++) {
            const Row *a = best_alloc[fs], *u = best_uniform[fs];
            if (a && u) {
                s += std::string(" ") + kind_label[fs] + ": best allocated " +
                        a->name + " " + format("%.3f", a->recall) + " at " +
                        format("%.0f", a->qps_batch) + " QPS vs best uniform " +
                        u->name + " " + format("%.3f", u->recall) + " at " +
                        format("%.0f", u->qps_batch) + " QPS (" +
                        format("%.2f", a->qps_batch / u->qps_batch) + "x).";
            } else if (a && fs == 0) {
                s += " No uniform plan fits.";
            }
        }
        const double target = bytes == 64 ? 0.75 : bytes == 128 ? 0.88 : 0;
        if (target > 0 && ds.name == default_dataset) {
            s += " Target " + format("%.2f", target) + ": IndexBQ " +
                    (automatic->recall >= target ? "met" : "NOT met");
            if (const Row* fs = find_row(rows, budget_name(bytes, "auto fs"))) {
                s += format(", fast scan %.3f ", fs->recall) +
                        (fs->recall >= target ? "met" : "NOT met");
            }
            s += ".";
        }
    }
    return s;
}

// ------------------------------------------------------------------ run

/// The 1-minute load average (Linux; -1 if unknown): other work on the cores
/// stalls OpenMP barriers, so the timings below are only as good as this.
double load_average() {
    std::ifstream in("/proc/loadavg");
    double load = -1;
    in >> load;
    return load;
}

std::vector<Row> run_methods(
        const std::vector<Method>& methods,
        const Dataset& ds) {
    std::vector<Row> rows;
    const double start = faiss::getmillisecs();
    PlanReporter plans;
    TrainedIndex trained;
    std::string trained_key;
    std::string train_error;
    for (const Method& method : methods) {
        if (method.index_key != trained_key) {
            trained = TrainedIndex(); // frees the previous index first
            trained_key = method.index_key;
            train_error.clear();
            std::fprintf(
                    stderr, "[bq_bench] training %s\n", trained_key.c_str());
            try {
                trained = train_and_add(method, ds);
                plans.report(trained_key, *trained.index);
                std::fflush(stdout);
            } catch (const std::exception& e) {
                train_error = e.what();
            }
        }
        Row row;
        if (!train_error.empty()) {
            row.error = train_error;
        } else {
            try {
                row = measure(method, trained, ds);
            } catch (const std::exception& e) {
                row.error = e.what();
            }
        }
        row.name = method.name;
        // progress: rows done, time elapsed, and left at this pace
        const double elapsed = seconds_since(start);
        const double left = elapsed / double(rows.size() + 1) *
                double(methods.size() - rows.size() - 1);
        std::fprintf(
                stderr,
                "[bq_bench %zu/%zu, %.0f s, ~%.0f s left] %s: %s\n",
                rows.size() + 1,
                methods.size(),
                elapsed,
                left,
                row.name.c_str(),
                row.error.empty()
                        ? format("10-recall@10 %.3f", row.recall).c_str()
                        : ("FAILED: " + row.error).c_str());
        rows.push_back(std::move(row));
    }
    return rows;
}

/// A shell word: the text in single quotes.
std::string shell_quote(const std::string& word) {
    std::string q = "'";
    for (char c : word) {
        q += c == '\'' ? std::string("'\\''") : std::string(1, c);
    }
    return q + "'";
}

/// The rows of a reference program (--reference): it is run on the same
/// dataset folder, threads and query count, and prints bench_tsv.h rows.
std::vector<Row> reference_rows(
        const std::string& program,
        const std::string& data_folder,
        const Options& opt) {
    std::string cmd =
            shell_quote(program) + " --data " + shell_quote(data_folder);
    if (opt.threads > 0) {
        cmd += " --threads " + std::to_string(opt.threads);
    }
    if (opt.nq > 0) {
        cmd += " --nq " + std::to_string(opt.nq);
    }
    std::fprintf(stderr, "[bq_bench] reference: %s\n", cmd.c_str());
    std::string text;
    FILE* pipe = popen(cmd.c_str(), "r");
    FAISS_THROW_IF_NOT_FMT(
            pipe, "--reference %s: cannot run it", program.c_str());
    char buffer[4096];
    for (size_t got; (got = std::fread(buffer, 1, sizeof(buffer), pipe)) > 0;) {
        text.append(buffer, got);
    }
    const int status = pclose(pipe);
    FAISS_THROW_IF_NOT_FMT(
            status == 0,
            "--reference %s: exit status %d (command: %s)",
            program.c_str(),
            status,
            cmd.c_str());
    std::vector<Row> rows;
    try {
        for (const bench::TsvRow& t : bench::parse_tsv(text)) {
            Row row;
            row.name = t.name;
            row.family = t.family + " (" + t.build + ")";
            row.build = t.build;
            row.bytes_per_vector = size_t(std::lround(t.bytes_per_vector));
            row.recall = t.recall;
            row.qps_batch = t.qps_batch;
            row.qps_single = t.qps_single;
            row.train_seconds = t.train_seconds;
            row.add_seconds = t.add_seconds;
            row.reranked = false;
            rows.push_back(row);
        }
    } catch (const std::exception& e) {
        FAISS_THROW_FMT("--reference %s: %s", program.c_str(), e.what());
    }
    FAISS_THROW_IF_NOT_FMT(
            !rows.empty(), "--reference %s printed no rows", program.c_str());
    return rows;
}

void write_tsv(
        const std::string& path,
        const std::vector<Row>& rows,
        const Dataset& ds) {
    std::ofstream out(path);
    FAISS_THROW_IF_NOT_FMT(
            out, "--tsv %s: cannot write the file", path.c_str());
    out << "# bq_bench " << ds.name << ", d=" << ds.d << ", " << ds.nb
        << " base, " << ds.nq << " queries, " << metric_name(ds.metric) << ", "
        << omp_get_max_threads() << " threads\n"
        << bench::tsv_header();
    for (const Row& row : rows) {
        if (!row.error.empty()) {
            continue;
        }
        out << bench::tsv_line(
                {row.name,
                 row.family,
                 double(row.bytes_per_vector),
                 row.recall,
                 row.qps_batch,
                 row.qps_single,
                 row.train_seconds,
                 row.add_seconds,
                 row.build});
    }
    FAISS_THROW_IF_NOT_FMT(out.good(), "--tsv %s: write failed", path.c_str());
}

/// --plot: bench/plot_recall_qps.py on the rows' TSV, with Debian's Python.
void draw_plot(
        const std::string& png,
        const std::string& tsv,
        const Dataset& ds) {
    const std::string title = ds.name + " (" + std::to_string(ds.nb) + " x " +
            std::to_string(ds.d) + ", " + std::to_string(ds.nq) + " queries, " +
            std::to_string(omp_get_max_threads()) + " thread(s), batch)";
    const std::string cmd = shell_quote(FAISS_BQ_PYTHON) + " " +
            shell_quote(FAISS_BQ_PLOT_SCRIPT) + " " + shell_quote(png) + " " +
            shell_quote(tsv) + " --title " + shell_quote(title);
    const int status = std::system(cmd.c_str());
    FAISS_THROW_IF_NOT_FMT(
            status == 0,
            "--plot %s: the plot script failed (exit status %d; it needs "
            "python3-matplotlib): %s",
            png.c_str(),
            status,
            cmd.c_str());
}

int run(const Options& opt) {
    if (opt.threads > 0) {
        omp_set_num_threads(opt.threads);
        // the batch transform's sgemm: its threads would spin on the cores
        // the timed rows leave free
        if (openblas_set_num_threads) {
            openblas_set_num_threads(opt.threads);
        }
    }
    const std::optional<DatasetFiles> files = dataset_files(opt);
    if (!files) {
        return 1;
    }
    const Dataset ds = load_dataset(*files, opt.metric, opt.nq);
    std::printf(
            "bq_bench: %s, d=%zu, %zu base, %zu queries, %s, ground truth %s\n"
            "%d threads on %d cores, load average %.2f before the run, "
            "faiss_bq kernels: %s\n",
            ds.name.c_str(),
            ds.d,
            ds.nb,
            ds.nq,
            metric_name(ds.metric),
            ds.groundtruth_computed ? "computed (faiss::IndexFlat)"
                                    : "from groundtruth.ivecs",
            omp_get_max_threads(),
            omp_get_num_procs(),
            load_average(),
            kernels::simd_level_name(kernels::simd_level()));
    std::fflush(stdout);

    std::vector<Row> rows = run_methods(methods_to_run(ds, opt), ds);
    const std::string build = std::string("faiss_bq ") +
            kernels::simd_level_name(kernels::simd_level()) + " (FAISS " +
            FAISS_BQ_FAISS_VERSION + ")";
    for (Row& row : rows) {
        row.build = row.family.rfind("FAISS", 0) == 0 ||
                        row.family.rfind("sign", 0) == 0
                ? std::string("FAISS ") + FAISS_BQ_FAISS_VERSION
                : build;
    }
    for (const std::string& program : opt.references) {
        const std::vector<Row> more =
                reference_rows(program, parent_folder(files->base), opt);
        rows.insert(rows.end(), more.begin(), more.end());
    }
    print_table(rows);
    print_markdown(rows);
    std::printf("\n");
    print_wrapped(summary(rows, ds), 78);
    if (const std::string hnsw = hnsw_summary(rows, ds); !hnsw.empty()) {
        std::printf("\n");
        print_wrapped(hnsw, 78);
    }
    if (!opt.budgets.empty()) {
        std::printf("\n");
        print_wrapped(budget_summary(rows, ds, opt.budgets), 78);
    }
    const std::string tsv = !opt.tsv_path.empty() ? opt.tsv_path
            : !opt.plot_path.empty()              ? opt.plot_path + ".tsv"
                                                  : "";
    if (!tsv.empty()) {
        write_tsv(tsv, rows, ds);
        std::printf("\nrows written to %s\n", tsv.c_str());
    }
    if (!opt.plot_path.empty()) {
        draw_plot(opt.plot_path, tsv, ds);
    }

    const auto failed =
            std::count_if(rows.begin(), rows.end(), [](const Row& r) {
                return !r.error.empty();
            });
    if (failed > 0) {
        std::fprintf(
                stderr, "bq_bench: %zu method(s) failed\n", size_t(failed));
        return 1;
    }
    return 0;
}

} // namespace

} // namespace faiss_bq

int main(int argc, char** argv) {
    try {
        return faiss_bq::run(faiss_bq::parse_options(argc, argv));
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bq_bench: %s\n", e.what());
        return 1;
    }
}
