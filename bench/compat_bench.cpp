// compat_bench: compatible versions (issue 16, BEBR). A map fitted on paired
// embeddings of the same words takes a new model's queries into an old
// model's index, which is searched without re-encoding. Measured: 10-recall@10
// of the new model's queries, mapped, against the old model's ground truth,
// beside the old model's own queries, on a flat index and on BQ codes.
//
//   compat_bench --old DIR --new DIR      (default: use512-wordnet,
//   glove100-wink)
//
// Each folder has base.fvecs / query.fvecs with base_words.txt /
// query_words.txt naming their rows (../shared/data). The map is fitted on the
// old base words that the new model also embeds; the test queries are the old
// queries whose word the new model embeds (never in the fit: the old base and
// query words are disjoint).

#include "bench_data.h"

#include <faiss_bq/IndexBQ.h>
#include <faiss_bq/IndexBQFastScan.h>
#include <faiss_bq/compat_map.h>
#include <faiss_bq/utils/vecs_io.h>

#include <faiss/IndexFlat.h>
#include <faiss/impl/FaissAssert.h>
#include <faiss/utils/utils.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace faiss_bq {
namespace {

constexpr size_t k = 10;

std::vector<std::string> read_words(const std::string& path, size_t expect) {
    std::ifstream in(path);
    FAISS_THROW_IF_NOT_FMT(in, "%s: cannot read it", path.c_str());
    std::vector<std::string> words;
    for (std::string w; std::getline(in, w);) {
        words.push_back(w);
    }
    FAISS_THROW_IF_NOT_FMT(
            words.size() == expect,
            "%s: %zu words for %zu vectors",
            path.c_str(),
            words.size(),
            expect);
    return words;
}

struct Model {
    std::string name;
    VecsFile<float> base, query;
    std::vector<std::string> base_words, query_words;
    /// word -> (is query, row)
    std::unordered_map<std::string, std::pair<bool, size_t>> row_of;

    explicit Model(const std::string& dir) {
        name = dir.substr(dir.find_last_of('/') + 1);
        base = read_fvecs(dir + "/base.fvecs");
        query = read_fvecs(dir + "/query.fvecs");
        base_words = read_words(dir + "/base_words.txt", base.n);
        query_words = read_words(dir + "/query_words.txt", query.n);
        for (size_t i = 0; i < base.n; i++) {
            row_of.emplace(base_words[i], std::make_pair(false, i));
        }
        for (size_t i = 0; i < query.n; i++) {
            row_of.emplace(query_words[i], std::make_pair(true, i));
        }
    }
    const float* vector(const std::pair<bool, size_t>& at) const {
        return (at.first ? query.data.data() : base.data.data()) +
                at.second * d();
    }
    size_t d() const {
        return base.d;
    }
};

double recall(
        const std::vector<int64_t>& labels,
        const std::vector<size_t>& rows,
        const VecsFile<int32_t>& gt) {
    size_t hits = 0;
    for (size_t q = 0; q < rows.size(); q++) {
        const int32_t* truth = gt.data.data() + rows[q] * gt.d;
        for (size_t i = 0; i < k; i++) {
            hits += std::find(truth, truth + k, int32_t(labels[q * k + i])) !=
                    truth + k;
        }
    }
    return double(hits) / double(rows.size() * k);
}

int run(int argc, char** argv) {
    const char* env = std::getenv("FAISS_BQ_DATA");
    const std::string root = env && *env ? env : FAISS_BQ_DEFAULT_DATA;
    std::string old_dir = root + "/use512-wordnet",
                new_dir = root + "/glove100-wink";
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string a = argv[i];
        if (a == "--old") {
            old_dir = argv[i + 1];
        } else if (a == "--new") {
            new_dir = argv[i + 1];
        } else {
            std::fprintf(
                    stderr, "usage: compat_bench [--old DIR] [--new DIR]\n");
            return 2;
        }
    }
    const Model old_model(old_dir), new_model(new_dir);
    const VecsFile<int32_t> gt = read_ivecs(old_dir + "/groundtruth.ivecs");

    // pairs: the old base words the new model embeds
    std::vector<float> fit_new, fit_old;
    for (size_t i = 0; i < old_model.base.n; i++) {
        const auto it = new_model.row_of.find(old_model.base_words[i]);
        if (it == new_model.row_of.end()) {
            continue;
        }
        const float* v = new_model.vector(it->second);
        fit_new.insert(fit_new.end(), v, v + new_model.d());
        const float* o = old_model.base.data.data() + i * old_model.d();
        fit_old.insert(fit_old.end(), o, o + old_model.d());
    }
    const size_t npairs = fit_new.size() / new_model.d();
    // test queries: the old queries whose word the new model embeds
    std::vector<size_t> rows;
    std::vector<float> q_old, q_new;
    for (size_t i = 0; i < old_model.query.n; i++) {
        const auto it = new_model.row_of.find(old_model.query_words[i]);
        if (it == new_model.row_of.end()) {
            continue;
        }
        rows.push_back(i);
        const float* o = old_model.query.data.data() + i * old_model.d();
        q_old.insert(q_old.end(), o, o + old_model.d());
        const float* v = new_model.vector(it->second);
        q_new.insert(q_new.end(), v, v + new_model.d());
    }
    const size_t nq = rows.size();
    std::printf(
            "compat_bench: old %s (d=%zu, %zu base), new %s (d=%zu); %zu paired base "
            "words fit the map; %zu of %zu old queries have a new embedding\n",
            old_model.name.c_str(),
            old_model.d(),
            old_model.base.n,
            new_model.name.c_str(),
            new_model.d(),
            npairs,
            nq,
            old_model.query.n);

    const int d_old = int(old_model.d()), d_new = int(new_model.d());
    const size_t nb = old_model.base.n;
    std::vector<std::pair<std::string, std::unique_ptr<faiss::Index>>> indexes;
    indexes.emplace_back(
            "IndexFlatIP (exact)", std::make_unique<faiss::IndexFlatIP>(d_old));
    indexes.emplace_back(
            "BQ1 (IndexBQ)",
            std::make_unique<IndexBQ>(d_old, 1, faiss::METRIC_INNER_PRODUCT));
    indexes.emplace_back(
            "BQ1_fs",
            std::make_unique<IndexBQFastScan>(
                    d_old, 1, faiss::METRIC_INNER_PRODUCT));
    indexes.emplace_back(
            "BQ2_fs",
            std::make_unique<IndexBQFastScan>(
                    d_old, 2, faiss::METRIC_INNER_PRODUCT));
    for (auto& [name, index] : indexes) {
        index->train(int64_t(nb), old_model.base.data.data());
        index->add(int64_t(nb), old_model.base.data.data());
    }

    struct QuerySet {
        std::string name;
        std::vector<float> x;
        double seconds = 0;
    };
    std::vector<QuerySet> sets;
    sets.push_back({"old model's own queries", q_old});
    for (bool centre : {true, false})
        for (MapFit fit : {MapFit::orthogonal, MapFit::least_squares}) {
            const double t0 = faiss::getmillisecs();
            std::unique_ptr<faiss::LinearTransform> map(fit_compatible_map(
                    npairs,
                    d_new,
                    fit_new.data(),
                    npairs,
                    d_old,
                    fit_old.data(),
                    fit,
                    centre));
            const double seconds = (faiss::getmillisecs() - t0) / 1000;
            std::vector<float> mapped(nq * size_t(d_old));
            map->apply_noalloc(int64_t(nq), q_new.data(), mapped.data());
            // the fit's residual on its own pairs, as a share of the old norm
            std::vector<float> on_pairs(npairs * size_t(d_old));
            map->apply_noalloc(
                    int64_t(npairs), fit_new.data(), on_pairs.data());
            double res = 0, norm = 0;
            for (size_t i = 0; i < on_pairs.size(); i++) {
                res += double(on_pairs[i] - fit_old[i]) *
                        (on_pairs[i] - fit_old[i]);
                norm += double(fit_old[i]) * fit_old[i];
            }
            sets.push_back(
                    {std::string("new model's queries, ") + map_fit_name(fit) +
                             (centre ? ", centred" : ", raw rows") + " (fit " +
                             std::to_string(seconds).substr(0, 5) +
                             " s, residual " +
                             std::to_string(res / norm).substr(0, 5) +
                             " of the norm)",
                     std::move(mapped),
                     seconds});
        }

    std::printf(
            "\n| queries | %s | %s | %s | %s |\n|---|--:|--:|--:|--:|\n",
            indexes[0].first.c_str(),
            indexes[1].first.c_str(),
            indexes[2].first.c_str(),
            indexes[3].first.c_str());
    for (const QuerySet& s : sets) {
        std::printf("| %s |", s.name.c_str());
        for (auto& [name, index] : indexes) {
            std::vector<float> D(nq * k);
            std::vector<int64_t> I(nq * k);
            index->search(int64_t(nq), s.x.data(), k, D.data(), I.data());
            std::printf(" %.3f |", recall(I, rows, gt));
        }
        std::printf("\n");
    }
    std::printf(
            "\n10-recall@10 against the old model's exact neighbours of each query "
            "word (%zu queries).\n",
            nq);
    return 0;
}

} // namespace
} // namespace faiss_bq

int main(int argc, char** argv) {
    try {
        return faiss_bq::run(argc, argv);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "compat_bench: %s\n", e.what());
        return 1;
    }
}
