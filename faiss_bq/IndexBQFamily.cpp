#include <faiss_bq/IndexBQFamily.h>

#include <faiss_bq/impl/heldout.h>
#include <faiss_bq/impl/validate.h>
#include <faiss_bq/index_factory.h>
#include <faiss_bq/plan.h>
#include <faiss_bq/trainer.h>

#include <faiss/impl/FaissAssert.h>
#include <faiss/utils/utils.h>

#include <cmath>
#include <cstdio>
#include <memory>

namespace faiss_bq {

namespace {

/// The measured mechanism behind a winning family, for the reason.
const char* why_family(const std::string& key) {
    if (key.rfind("BQR", 0) == 0) {
        return "recurrent stages (BEBR) fit a rotation to the sample and "
               "binarize each stage's residual with a scale per vector";
    }
    if (key.rfind("BKQ", 0) == 0) {
        return "BlockQuant codes each block of rotated coordinates jointly, "
               "a direction on the sphere and a norm, where per-coordinate "
               "levels spend bits on each coordinate alone";
    }
    if (key.rfind("BQT", 0) == 0) {
        return "TurboQuant-prod's sign sketch of the residual makes its "
               "inner-product estimate unbiased";
    }
    return "";
}

} // namespace

std::vector<std::string> family_candidates(
        int d,
        int nbits,
        size_t budget_bytes) {
    FAISS_THROW_IF_NOT_FMT(d > 0, "family_candidates: d=%d must be > 0", d);
    const size_t plane = (size_t(d) + 7) / 8;
    std::vector<std::string> keys;
    size_t planes_bytes;
    if (budget_bytes > 0) {
        FAISS_THROW_IF_NOT_FMT(
                budget_bytes <= max_budget_bytes(size_t(d)),
                "IndexBQFamily: budget of %zu bytes for d=%d: must be at "
                "least 1 byte and at most 4 bits per coordinate (%zu bytes)",
                budget_bytes,
                d,
                max_budget_bytes(size_t(d)));
        keys.push_back("BQ" + std::to_string(budget_bytes) + "B");
        planes_bytes = budget_bytes;
    } else {
        FAISS_THROW_IF_NOT_FMT(
                nbits == 1 || nbits == 2,
                "IndexBQFamily: nbits=%d must be 1 or 2 (or a budget of bytes)",
                nbits);
        keys.push_back("BQ" + std::to_string(nbits));
        planes_bytes = size_t(nbits) * plane;
    }
    const int b = int(planes_bytes / plane);
    if (b >= 1) {
        keys.push_back("BQR" + std::to_string(b));
    }
    if (b == 1 || b == 2 || b == 4) {
        const int direction_bits = b == 1 ? 8 : b == 2 ? 7 : 5;
        keys.push_back(
                "BKQ" + std::to_string(8 / b) + "x" +
                std::to_string(direction_bits));
    }
    if (b >= 2) {
        keys.push_back("BQT" + std::to_string(b));
    }
    return keys;
}

IndexBQFamily::IndexBQFamily() {
    is_trained = false;
}

IndexBQFamily::IndexBQFamily(idx_t d, int nbits, faiss::MetricType metric)
        : faiss::Index(d, metric), nbits(nbits) {
    check_settings(d, nbits, 0, metric);
    is_trained = false;
}

IndexBQFamily::IndexBQFamily(
        idx_t d,
        CodeBudget budget,
        faiss::MetricType metric)
        : faiss::Index(d, metric), nbits(0), budget_bytes(budget.bytes) {
    FAISS_THROW_IF_NOT_FMT(
            budget.bytes >= 1,
            "IndexBQFamily: budget of %zu bytes must be at least 1",
            budget.bytes);
    check_settings(d, 0, budget.bytes, metric);
    is_trained = false;
}

void IndexBQFamily::check_settings(
        idx_t d,
        int nbits,
        size_t budget_bytes,
        faiss::MetricType metric) {
    FAISS_THROW_IF_NOT_FMT(
            budget_bytes == 0 || nbits == 0,
            "IndexBQFamily: nbits=%d with a budget of %zu bytes (one or the "
            "other)",
            nbits,
            budget_bytes);
    check_index_args("IndexBQFamily", d, budget_bytes > 0 ? 1 : nbits, metric);
    family_candidates(int(d), nbits, budget_bytes); // the budget's range
}

IndexBQFamily::~IndexBQFamily() {
    delete index;
}

std::string IndexBQFamily::head() const {
    return budget_bytes > 0 ? "BQ" + std::to_string(budget_bytes) + "B"
                            : "BQ" + std::to_string(nbits);
}

const faiss::Index& IndexBQFamily::chosen_index() const {
    FAISS_THROW_IF_NOT_MSG(
            index, "IndexBQFamily: not trained (no family chosen yet)");
    return *index;
}

faiss::Index& IndexBQFamily::chosen_index() {
    FAISS_THROW_IF_NOT_MSG(
            index, "IndexBQFamily: not trained (no family chosen yet)");
    return *index;
}

void IndexBQFamily::train(idx_t n, const float* x) {
    FAISS_THROW_IF_NOT_FMT(
            ntotal == 0,
            "IndexBQFamily::train: the index holds %ld vectors of the chosen "
            "family; reset() first",
            long(ntotal));
    FAISS_THROW_IF_NOT_FMT(
            n >= idx_t(TrainerOptions::min_train_points),
            "IndexBQFamily::train: n=%ld vectors; the held-out check needs "
            "at least %zu",
            long(n),
            TrainerOptions::min_train_points);
    FAISS_THROW_IF_NOT_FMT(
            heldout_fraction > 0 && heldout_fraction < 1,
            "IndexBQFamily: heldout_fraction=%g must be in (0, 1)",
            heldout_fraction);
    FAISS_THROW_IF_NOT_FMT(
            max_heldout_base >= 2 * heldout_recall_k &&
                    max_heldout_queries >= 1 &&
                    max_fit_rows >= TrainerOptions::min_train_points,
            "IndexBQFamily: max_heldout_base=%zu (>= %zu), "
            "max_heldout_queries=%zu (>= 1), max_fit_rows=%zu (>= %zu)",
            max_heldout_base,
            2 * heldout_recall_k,
            max_heldout_queries,
            max_fit_rows,
            TrainerOptions::min_train_points);
    check_finite("training", size_t(n), size_t(d), x);
    const std::vector<std::string> keys =
            family_candidates(int(d), nbits, budget_bytes);

    const HeldOut h(
            size_t(n),
            size_t(d),
            x,
            metric_type,
            seed,
            heldout_fraction,
            max_heldout_base,
            max_heldout_queries,
            max_fit_rows);
    FAISS_THROW_IF_NOT_FMT(
            h.n_fit >= TrainerOptions::min_train_points,
            "IndexBQFamily::train: n=%ld leaves %zu fitting rows beside the "
            "%zu held out; each candidate trains on at least %zu",
            long(n),
            h.n_fit,
            h.n_heldout,
            TrainerOptions::min_train_points);
    const std::vector<float> fit = h.fit_rows(x);
    const double t_start = faiss::getmillisecs();
    auto say = [&](const char* fmt, auto... args) {
        if (verbose) {
            std::printf(
                    "[faiss_bq family %6.2f s] ",
                    (faiss::getmillisecs() - t_start) / 1000);
            std::printf(fmt, args...);
            std::printf("\n");
            std::fflush(stdout);
        }
    };
    say("%ld rows, d=%ld: %zu held out (%zu as queries among %zu), %zu to "
        "fit; candidates of %s",
        long(n),
        long(d),
        h.n_heldout,
        h.nq,
        h.nb,
        h.n_fit,
        head().c_str());

    std::vector<FamilyCandidateReport> reports(keys.size());
    std::vector<std::vector<float>> recalls(keys.size());
    for (size_t i = 0; i < keys.size(); i++) {
        FamilyCandidateReport& rep = reports[i];
        rep.key = keys[i];
        try {
            std::unique_ptr<faiss::Index> c(
                    index_factory(int(d), keys[i].c_str(), metric_type));
            const double t0 = faiss::getmillisecs();
            c->train(idx_t(h.n_fit), fit.data());
            rep.train_seconds = (faiss::getmillisecs() - t0) / 1000;
            c->add(idx_t(h.nb), h.x.data());
            rep.code_size = c->sa_code_size();
            recalls[i] = h.recalls(*c);
        } catch (const faiss::FaissException& e) {
            if (i == 0) {
                throw; // the IndexBQ candidate's errors are the caller's
            }
            rep.left_out = e.what();
            say("candidate %s left out: %s", keys[i].c_str(), e.what());
            continue;
        }
        rep.heldout_recall = mean_of(recalls[i]);
        rep.heldout_recall_stderr = stderr_of(recalls[i]);
        say("candidate %s (%zu B): held-out 10-recall@10 %.3f +- %.3f, "
            "trained in %.1f s",
            keys[i].c_str(),
            rep.code_size,
            rep.heldout_recall,
            rep.heldout_recall_stderr,
            rep.train_seconds);
    }

    // The best measured recall; the IndexBQ candidate when tied with it.
    size_t best = 0;
    for (size_t i = 1; i < keys.size(); i++) {
        if (reports[i].left_out.empty() &&
            reports[i].heldout_recall > reports[best].heldout_recall) {
            best = i;
        }
    }
    const bool keep_bq = best != 0 && tied_or_better(recalls[0], recalls[best]);
    const size_t choice = keep_bq ? 0 : best;

    char buf[1024];
    snprintf(
            buf,
            sizeof(buf),
            "%s has the best held-out 10-recall@10: %.4f +- %.4f (%zu B; "
            "%zu queries among %zu vectors)",
            keys[best].c_str(),
            reports[best].heldout_recall,
            reports[best].heldout_recall_stderr,
            reports[best].code_size,
            h.nq,
            h.nb);
    std::string why = buf;
    if (keep_bq) {
        snprintf(
                buf,
                sizeof(buf),
                "; %s (%.4f, %zu B) is within two standard errors of it and "
                "is kept: IndexBQ also has IVF, HNSW, fast scan, the "
                "symmetric estimator and a refine error bound",
                keys[0].c_str(),
                reports[0].heldout_recall,
                reports[0].code_size);
        why += buf;
    } else if (best != 0) {
        snprintf(
                buf,
                sizeof(buf),
                "; it beats %s (%.4f, %zu B) by more than two standard "
                "errors: %s. Its index is flat (no IVF, HNSW or fast scan)",
                keys[0].c_str(),
                reports[0].heldout_recall,
                reports[0].code_size,
                why_family(keys[best]));
        why += buf;
    }
    for (size_t i = 1; i < keys.size(); i++) {
        if (!reports[i].left_out.empty()) {
            why += "; " + keys[i] + " left out: " + reports[i].left_out;
        }
    }
    if (reports[choice].heldout_recall < 0.5f) {
        snprintf(
                buf,
                sizeof(buf),
                ". WARNING: the best of these codes keeps few of the true "
                "neighbours (held-out 10-recall@10 %.2f among %zu vectors, "
                "less among more): these embeddings binarize poorly (not "
                "contrastive-trained, or too few dimensions). Re-rank with "
                "floats (\",RFlat\") or give more bits",
                reports[choice].heldout_recall,
                h.nb);
        why += buf;
    }
    say("chosen %s: %s", keys[choice].c_str(), why.c_str());

    // The winner, trained on all of x.
    std::unique_ptr<faiss::Index> winner(
            index_factory(int(d), keys[choice].c_str(), metric_type));
    winner->verbose = verbose;
    winner->train(n, x);
    delete index;
    index = winner.release();
    candidates = std::move(reports);
    chosen = choice;
    reason = std::move(why);
    is_trained = true;
}

void IndexBQFamily::add(idx_t n, const float* x) {
    chosen_index().add(n, x);
    ntotal = index->ntotal;
}

void IndexBQFamily::add_with_ids(idx_t n, const float* x, const idx_t* xids) {
    chosen_index().add_with_ids(n, x, xids);
    ntotal = index->ntotal;
}

void IndexBQFamily::search(
        idx_t n,
        const float* x,
        idx_t k,
        float* distances,
        idx_t* labels,
        const faiss::SearchParameters* params) const {
    chosen_index().search(n, x, k, distances, labels, params);
}

void IndexBQFamily::range_search(
        idx_t n,
        const float* x,
        float radius,
        faiss::RangeSearchResult* result,
        const faiss::SearchParameters* params) const {
    chosen_index().range_search(n, x, radius, result, params);
}

void IndexBQFamily::reset() {
    if (index) {
        index->reset();
    }
    ntotal = 0;
}

size_t IndexBQFamily::remove_ids(const faiss::IDSelector& sel) {
    const size_t removed = chosen_index().remove_ids(sel);
    ntotal = index->ntotal;
    return removed;
}

void IndexBQFamily::reconstruct(idx_t key, float* recons) const {
    chosen_index().reconstruct(key, recons);
}

void IndexBQFamily::reconstruct_n(idx_t i0, idx_t ni, float* recons) const {
    chosen_index().reconstruct_n(i0, ni, recons);
}

faiss::DistanceComputer* IndexBQFamily::get_distance_computer() const {
    return chosen_index().get_distance_computer();
}

size_t IndexBQFamily::sa_code_size() const {
    return chosen_index().sa_code_size();
}

void IndexBQFamily::sa_encode(idx_t n, const float* x, uint8_t* bytes) const {
    chosen_index().sa_encode(n, x, bytes);
}

void IndexBQFamily::sa_decode(idx_t n, const uint8_t* bytes, float* x) const {
    chosen_index().sa_decode(n, bytes, x);
}

void IndexBQFamily::check_compatible_for_merge(
        const faiss::Index& other) const {
    auto o = dynamic_cast<const IndexBQFamily*>(&other);
    FAISS_THROW_IF_NOT_MSG(
            o, "IndexBQFamily: merges only another IndexBQFamily");
    FAISS_THROW_IF_NOT_FMT(
            index && o->index,
            "IndexBQFamily: merging needs both trained (this %s, other %s)",
            index ? "trained" : "not trained",
            o->index ? "trained" : "not trained");
    FAISS_THROW_IF_NOT_FMT(
            o->candidates.size() == candidates.size() && o->chosen == chosen,
            "IndexBQFamily: the other index chose %s, this one %s",
            o->chosen < o->candidates.size()
                    ? o->candidates[o->chosen].key.c_str()
                    : "?",
            chosen < candidates.size() ? candidates[chosen].key.c_str() : "?");
    index->check_compatible_for_merge(*o->index);
}

void IndexBQFamily::merge_from(faiss::Index& other, idx_t add_id) {
    check_compatible_for_merge(other);
    auto& o = dynamic_cast<IndexBQFamily&>(other);
    index->merge_from(*o.index, add_id);
    ntotal = index->ntotal;
    o.ntotal = o.index->ntotal;
}

} // namespace faiss_bq
