// index_io: every faiss_bq index alone and inside FAISS's containers
// round-trips field for field and search for search; FAISS files read
// unchanged; corrupted files throw without crashing or over-allocating.
#include <faiss_bq/IndexBQ.h>
#include <faiss_bq/IndexBQFastScan.h>
#include <faiss_bq/IndexIVFBQ.h>
#include <faiss_bq/clone_index.h>
#include <faiss_bq/index_factory.h>
#include <faiss_bq/index_io.h>

#include "alloc_tracker.h"
#include "test_util.h"

#include <faiss/IndexBinaryFlat.h>
#include <faiss/IndexBinaryFromFloat.h>
#include <faiss/IndexBinaryHNSW.h>
#include <faiss/IndexBinaryIVF.h>
#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIDMap.h>
#include <faiss/IndexIVF.h>
#include <faiss/IndexPreTransform.h>
#include <faiss/IndexRefine.h>
#include <faiss/impl/FaissException.h>
#include <faiss/impl/io.h>
#include <faiss/index_factory.h>
#include <faiss/index_io.h>
#include <faiss/invlists/OnDiskInvertedLists.h>
#include <faiss_bq/IndexBQRefine.h>
#include <faiss_bq/IndexBinaryFlatFast.h>

#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace faiss_bq {
namespace {

using Bytes = std::vector<uint8_t>;

Bytes to_bytes(const faiss::Index* index) {
    faiss::VectorIOWriter w;
    faiss_bq::write_index(index, &w);
    return w.data;
}

Bytes to_bytes(const faiss::IndexBinary* index) {
    faiss::VectorIOWriter w;
    faiss_bq::write_index_binary(index, &w);
    return w.data;
}

faiss::Index* from_bytes(const Bytes& bytes) {
    faiss::VectorIOReader r;
    r.data = bytes;
    return faiss_bq::read_index(&r);
}

faiss::IndexBinary* binary_from_bytes(const Bytes& bytes) {
    faiss::VectorIOReader r;
    r.data = bytes;
    return faiss_bq::read_index_binary(&r);
}

IndexBQ* find_bq(faiss::Index* index) {
    if (auto bq = dynamic_cast<IndexBQ*>(index)) {
        return bq;
    }
    if (auto m = dynamic_cast<faiss::IndexIDMap*>(index)) {
        return find_bq(m->index);
    }
    if (auto rf = dynamic_cast<IndexBQRefine*>(index)) {
        return find_bq(rf->base_index);
    }
    if (auto pt = dynamic_cast<faiss::IndexPreTransform*>(index)) {
        return find_bq(pt->index);
    }
    if (auto h = dynamic_cast<faiss::IndexHNSW*>(index)) {
        return find_bq(h->storage);
    }
    return nullptr;
}

/// Every option away from its default (the factory string sets nbits and
/// the choices it names; the rest is set here).
void set_non_defaults(IndexBQ& bq) {
    bq.trainer.nbits = 2;
    bq.trainer.transform = TransformChoice::random_rotation;
    bq.trainer.centering = CenteringChoice::centered;
    bq.trainer.estimator = Estimator::symmetric;
    bq.trainer.metric = faiss::METRIC_INNER_PRODUCT;
    bq.trainer.seed = 77;
    bq.trainer.heldout_fraction = 0.25f;
    bq.trainer.max_heldout_base = 4000;
    bq.trainer.max_heldout_queries = 123;
    bq.trainer.max_fit_rows = 15000;
    bq.estimator = Estimator::symmetric;
    bq.query_bits = 6;
}

void expect_same_analysis(const DatasetAnalysis& a, const DatasetAnalysis& b) {
    EXPECT_EQ(a.n, b.n);
    EXPECT_EQ(a.d, b.d);
    EXPECT_EQ(a.mean, b.mean);
    EXPECT_EQ(a.sigma, b.sigma);
    EXPECT_EQ(a.cv_sigma, b.cv_sigma);
    EXPECT_EQ(a.mean_offset_ratio, b.mean_offset_ratio);
    EXPECT_EQ(a.positive_fraction, b.positive_fraction);
    EXPECT_EQ(a.positive_fraction_centered, b.positive_fraction_centered);
    EXPECT_EQ(a.sign_entropy_bits, b.sign_entropy_bits);
    EXPECT_EQ(a.sign_entropy_centered_bits, b.sign_entropy_centered_bits);
    EXPECT_EQ(a.eigenvalues, b.eigenvalues);
    EXPECT_EQ(a.effective_rank, b.effective_rank);
    EXPECT_EQ(a.offdiag_energy, b.offdiag_energy);
    EXPECT_EQ(a.excess_kurtosis, b.excess_kurtosis);
    EXPECT_EQ(a.mean_excess_kurtosis, b.mean_excess_kurtosis);
    EXPECT_EQ(a.n_constant, b.n_constant);
}

void expect_same_bq(const IndexBQ& a, const IndexBQ& b) {
    EXPECT_EQ(a.d, b.d);
    EXPECT_EQ(a.ntotal, b.ntotal);
    EXPECT_EQ(a.is_trained, b.is_trained);
    EXPECT_EQ(a.metric_type, b.metric_type);
    EXPECT_EQ(a.nbits, b.nbits);
    EXPECT_EQ(a.code_size, b.code_size);
    EXPECT_EQ(a.codes, b.codes);
    EXPECT_EQ(a.estimator, b.estimator);
    EXPECT_EQ(a.query_bits, b.query_bits);
    const TrainerOptions &s = a.trainer, &t = b.trainer;
    EXPECT_EQ(s.nbits, t.nbits);
    EXPECT_EQ(s.transform, t.transform);
    EXPECT_EQ(s.centering, t.centering);
    EXPECT_EQ(s.estimator, t.estimator);
    EXPECT_EQ(s.metric, t.metric);
    EXPECT_EQ(s.seed, t.seed);
    EXPECT_EQ(s.heldout_fraction, t.heldout_fraction);
    EXPECT_EQ(s.max_heldout_base, t.max_heldout_base);
    EXPECT_EQ(s.max_heldout_queries, t.max_heldout_queries);
    EXPECT_EQ(s.max_fit_rows, t.max_fit_rows);
    const BinarizationPlan &p = a.plan, &q = b.plan;
    EXPECT_EQ(p.d, q.d);
    EXPECT_EQ(p.nbits, q.nbits);
    EXPECT_EQ(p.transform, q.transform);
    EXPECT_EQ(p.centered, q.centered);
    EXPECT_EQ(p.seed, q.seed);
    EXPECT_EQ(p.center, q.center);
    EXPECT_EQ(p.rotation, q.rotation);
    EXPECT_EQ(p.thresholds, q.thresholds);
    EXPECT_EQ(p.levels, q.levels);
    EXPECT_EQ(p.quantization, q.quantization);
    expect_same_analysis(p.analysis, q.analysis);
    ASSERT_EQ(p.candidates.size(), q.candidates.size());
    for (size_t i = 0; i < p.candidates.size(); i++) {
        const CandidateReport &c = p.candidates[i], &e = q.candidates[i];
        EXPECT_EQ(c.transform, e.transform);
        EXPECT_EQ(c.centered, e.centered);
        EXPECT_EQ(c.estimator, e.estimator);
        EXPECT_EQ(c.quantization, e.quantization);
        EXPECT_EQ(c.predicted_loss, e.predicted_loss);
        EXPECT_EQ(c.heldout_recall, e.heldout_recall);
        EXPECT_EQ(c.heldout_recall_stderr, e.heldout_recall_stderr);
    }
    EXPECT_EQ(p.decided_for, q.decided_for);
    EXPECT_EQ(p.forced, q.forced);
    EXPECT_EQ(p.reason, q.reason);
}

/// An index built from a factory string, with every field away from its
/// default, trained and filled.
std::unique_ptr<faiss::Index> build(
        const std::string& description,
        size_t d,
        size_t nb,
        faiss::MetricType metric) {
    std::unique_ptr<faiss::Index> index(
            faiss_bq::index_factory(d, description.c_str(), metric));
    if (IndexBQ* bq = find_bq(index.get())) {
        set_non_defaults(*bq);
    }
    if (auto h = dynamic_cast<faiss::IndexHNSW*>(index.get())) {
        h->hnsw.efConstruction = 24;
    }
    const auto xt = test::gaussian(300, d, 11);
    index->train(300, xt.data());
    const auto xb = test::gaussian(nb, d, 12);
    if (dynamic_cast<faiss::IndexIDMap*>(index.get())) {
        std::vector<idx_t> ids(nb);
        for (size_t i = 0; i < nb; i++) {
            ids[i] = 1000 + 7 * idx_t(i);
        }
        index->add_with_ids(nb, xb.data(), ids.data());
    } else {
        index->add(nb, xb.data());
    }
    if (auto rf = dynamic_cast<IndexBQRefine*>(index.get())) {
        rf->k_factor = 3.5f;
        rf->bound_sigmas = 2.5f;
    }
    if (auto h = dynamic_cast<faiss::IndexHNSW*>(index.get())) {
        h->hnsw.efSearch = 50;
    }
    return index;
}

void expect_same_search(
        const faiss::Index& a,
        const faiss::Index& b,
        size_t d) {
    const size_t nq = 7;
    const idx_t k = 5;
    const auto xq = test::gaussian(nq, d, 13);
    std::vector<float> Da(nq * k), Db(nq * k);
    std::vector<idx_t> Ia(nq * k), Ib(nq * k);
    a.search(nq, xq.data(), k, Da.data(), Ia.data());
    b.search(nq, xq.data(), k, Db.data(), Ib.data());
    EXPECT_EQ(Ia, Ib);
    EXPECT_EQ(0, std::memcmp(Da.data(), Db.data(), Da.size() * sizeof(float)));
}

const char* const kRoundTrips[] = {
        "BQ2",
        "BQ1_axis_noctr",
        "IDMap,BQ2",
        "IDMap2,BQ1",
        "PCA16,BQ2",
        "L2norm,BQ1",
        "BQ2,RFlat",
        "BQ1,Refine(SQ8)",
        "HNSW8_BQ2",
        "IDMap2,PCA16,BQ2,RFlat",
        "IDMap,HNSW8_BQ1",
};

TEST(IndexIO, EveryIndexRoundTripsAloneAndInContainers) {
    const size_t d = 24, nb = 150;
    // Each container with one metric, IndexBQ alone with both (the metric
    // changes no field the containers write).
    for (size_t c = 0; c < std::size(kRoundTrips); c++) {
        const char* description = kRoundTrips[c];
        for (faiss::MetricType m :
             {faiss::METRIC_INNER_PRODUCT, faiss::METRIC_L2}) {
            if (c > 0 && int(m) != int(c % 2)) {
                continue;
            }
            SCOPED_TRACE(
                    std::string(description) + " metric " +
                    std::to_string(int(m)));
            auto index = build(description, d, nb, m);
            const Bytes bytes = to_bytes(index.get());
            std::unique_ptr<faiss::Index> back(from_bytes(bytes));
            // Written again, the copy gives the same bytes: every field that
            // is written came back.
            EXPECT_EQ(to_bytes(back.get()), bytes);
            EXPECT_EQ(
                    faiss_bq::index_factory_string(back.get()),
                    faiss_bq::index_factory_string(index.get()));
            EXPECT_EQ(back->ntotal, index->ntotal);
            EXPECT_EQ(back->metric_type, m);
            expect_same_bq(*find_bq(index.get()), *find_bq(back.get()));
            expect_same_search(*index, *back, d);
            if (auto rf = dynamic_cast<IndexBQRefine*>(back.get())) {
                EXPECT_EQ(rf->k_factor, 3.5f);
                EXPECT_EQ(rf->bound_sigmas, 2.5f);
            }
            if (auto map = dynamic_cast<faiss::IndexIDMap*>(back.get())) {
                EXPECT_EQ(
                        map->id_map,
                        dynamic_cast<faiss::IndexIDMap*>(index.get())->id_map);
            }
            // Searches with per-search options see the same plan and codes.
            SearchParametersBQ params;
            params.estimator = Estimator::asymmetric;
            params.query_bits = 0;
            const auto xq = test::gaussian(3, find_bq(back.get())->d, 14);
            std::vector<float> D1(9), D2(9);
            std::vector<idx_t> I1(9), I2(9);
            find_bq(index.get())
                    ->search(3, xq.data(), 3, D1.data(), I1.data(), &params);
            find_bq(back.get())
                    ->search(3, xq.data(), 3, D2.data(), I2.data(), &params);
            EXPECT_EQ(D1, D2);
            EXPECT_EQ(I1, I2);
        }
    }
}

TEST(IndexIO, FileNameAndFileHandleAndClone) {
    const size_t d = 24;
    auto index = build("IDMap2,PCA16,BQ2,RFlat", d, 100, faiss::METRIC_L2);
    const Bytes bytes = to_bytes(index.get());
    const std::string path =
            ::testing::TempDir() + "faiss_bq_io_" + std::to_string(::getpid());
    faiss_bq::write_index(index.get(), path.c_str());
    {
        FILE* f = std::fopen(path.c_str(), "rb");
        ASSERT_TRUE(f);
        std::unique_ptr<faiss::Index> back(faiss_bq::read_index(f));
        std::fclose(f);
        EXPECT_EQ(to_bytes(back.get()), bytes);
    }
    {
        FILE* f = std::fopen(path.c_str(), "wb");
        faiss_bq::write_index(index.get(), f);
        std::fclose(f);
        std::unique_ptr<faiss::Index> back(faiss_bq::read_index(path.c_str()));
        EXPECT_EQ(to_bytes(back.get()), bytes);
        expect_same_search(*index, *back, d);
    }
    std::remove(path.c_str());

    std::unique_ptr<faiss::Index> copy(faiss_bq::clone_index(index.get()));
    EXPECT_EQ(to_bytes(copy.get()), bytes);
    const auto more = test::gaussian(5, d, 20);
    const std::vector<idx_t> ids = {1, 2, 3, 4, 5};
    copy->add_with_ids(5, more.data(), ids.data());
    EXPECT_EQ(copy->ntotal, index->ntotal + 5);
    EXPECT_EQ(to_bytes(index.get()), bytes) << "the clone shares state";
}

TEST(IndexIO, FaissFilesReadUnchangedAndContainersKeepFaissLayout) {
    const size_t d = 16, nb = 50, nt = 700;
    const auto xt = test::gaussian(nt, d, 1);
    for (const char* description :
         {"Flat",
          "IDMap2,PCA8,Flat",
          "IDMap,SQ8",
          "SQ8,RFlat",
          "HNSW8",
          "PCA8,SQ4"}) {
        SCOPED_TRACE(description);
        std::unique_ptr<faiss::Index> index(faiss::index_factory(
                d, description, faiss::METRIC_INNER_PRODUCT));
        index->train(nt, xt.data());
        if (dynamic_cast<faiss::IndexIDMap*>(index.get())) {
            std::vector<idx_t> ids(nb);
            for (size_t i = 0; i < nb; i++) {
                ids[i] = 5 * idx_t(i) + 3;
            }
            index->add_with_ids(nb, xt.data(), ids.data());
        } else {
            index->add(nb, xt.data());
        }
        faiss::VectorIOWriter w;
        faiss::write_index(index.get(), &w);
        // faiss_bq writes FAISS's types exactly as FAISS does...
        EXPECT_EQ(to_bytes(index.get()), w.data);
        // ...and reads FAISS's files into the same index.
        std::unique_ptr<faiss::Index> back(from_bytes(w.data));
        faiss::VectorIOWriter w2;
        faiss::write_index(back.get(), &w2);
        EXPECT_EQ(w2.data, w.data);
        expect_same_search(*index, *back, d);
    }
}

/// FAISS's own index for a binary description: FAISS 1.7.3's binary factory
/// has no "IDMap," prefix, so the id maps are wrapped here.
faiss::IndexBinary* faiss_binary_equivalent(
        int d,
        const std::string& description) {
    for (const char* prefix : {"IDMap2,", "IDMap,"}) {
        const std::string p(prefix);
        if (description.compare(0, p.size(), p) == 0) {
            faiss::IndexBinary* inner = faiss::index_binary_factory(
                    d, description.c_str() + p.size());
            auto map = p == "IDMap2," ? new faiss::IndexBinaryIDMap2(inner)
                                      : new faiss::IndexBinaryIDMap(inner);
            map->own_fields = true;
            return map;
        }
    }
    return faiss::index_binary_factory(d, description.c_str());
}

TEST(IndexIO, BinaryFlatReadsBothWaysWithFaiss) {
    const int d = 64;
    const size_t nb = 40;
    std::vector<uint8_t> xb(nb * d / 8);
    std::mt19937 rng(3);
    for (auto& b : xb) {
        b = uint8_t(rng());
    }
    for (const char* description :
         {"BFlat", "IDMap,BFlat", "IDMap2,BFlat", "BHNSW8"}) {
        SCOPED_TRACE(description);
        // BFlat builds the drop-in, which FAISS cannot write: FAISS writes its
        // own equivalent, built from the same string and codes. Other strings
        // build FAISS's classes (an HNSW graph is built by threads, so only
        // the same object gives the same bytes).
        std::unique_ptr<faiss::IndexBinary> index(
                faiss_bq::index_binary_factory(d, description));
        const bool drop_in =
                std::string(description).find("BFlat") != std::string::npos;
        std::unique_ptr<faiss::IndexBinary> faiss_index(
                drop_in ? faiss_binary_equivalent(d, description) : nullptr);
        for (faiss::IndexBinary* x : {index.get(), faiss_index.get()}) {
            if (!x) {
                continue;
            }
            if (dynamic_cast<faiss::IndexBinaryIDMap*>(x)) {
                std::vector<idx_t> ids(nb);
                for (size_t i = 0; i < nb; i++) {
                    ids[i] = 100 + idx_t(i);
                }
                x->add_with_ids(nb, xb.data(), ids.data());
            } else {
                x->add(nb, xb.data());
            }
        }
        const Bytes ours = to_bytes(index.get());
        faiss::VectorIOWriter w;
        faiss::write_index_binary(
                drop_in ? faiss_index.get() : index.get(), &w);
        EXPECT_EQ(ours, w.data);
        // FAISS reads what faiss_bq wrote, faiss_bq reads what FAISS wrote.
        faiss::VectorIOReader r;
        r.data = ours;
        std::unique_ptr<faiss::IndexBinary> by_faiss(
                faiss::read_index_binary(&r));
        std::unique_ptr<faiss::IndexBinary> by_us(binary_from_bytes(w.data));
        EXPECT_EQ(faiss_bq::index_factory_string(by_us.get()), description);
        EXPECT_EQ(faiss_bq::index_factory_string(by_faiss.get()), description);
        const idx_t k = 4;
        std::vector<int32_t> D0(3 * k), D1(3 * k), D2(3 * k);
        std::vector<idx_t> I0(3 * k), I1(3 * k), I2(3 * k);
        index->search(3, xb.data(), k, D0.data(), I0.data());
        by_faiss->search(3, xb.data(), k, D1.data(), I1.data());
        by_us->search(3, xb.data(), k, D2.data(), I2.data());
        EXPECT_EQ(D0, D1);
        EXPECT_EQ(I0, I1);
        EXPECT_EQ(D0, D2);
        EXPECT_EQ(I0, I2);
        std::unique_ptr<faiss::IndexBinary> copy(
                faiss_bq::clone_index_binary(index.get()));
        EXPECT_EQ(to_bytes(copy.get()), ours);
    }
}

// A FAISS IndexBinaryFlat file reads into the drop-in replacement (default)
// or, with IO_FLAG_FAISS_BINARY_FLAT, as FAISS's own class; the replacement
// writes FAISS's record byte for byte.
// FAISS's binary containers with a faiss_bq part, which FAISS's writer
// rejects: an IndexBinaryIVF over an IndexBinaryFlatFast quantizer (with
// each direct map type) and an IndexBinaryFromFloat over an IndexBQ. Their
// records are FAISS's layouts: a FAISS-only IndexBinaryIVF gives FAISS's
// bytes, and FAISS reads the IVF file with its own flat quantizer.
TEST(IndexIO, BinaryContainersWithFaissBqParts) {
    const int d = 64;
    const size_t nb = 3000, nq = 10, k = 5;
    std::vector<uint8_t> xb(nb * d / 8);
    std::mt19937 rng(4);
    for (auto& b : xb) {
        b = uint8_t(rng());
    }
    auto same_search = [&](faiss::IndexBinary& a, faiss::IndexBinary& b) {
        std::vector<int32_t> Da(nq * k), Db(nq * k);
        std::vector<idx_t> Ia(nq * k), Ib(nq * k);
        a.search(nq, xb.data(), k, Da.data(), Ia.data());
        b.search(nq, xb.data(), k, Db.data(), Ib.data());
        EXPECT_EQ(Da, Db);
        EXPECT_EQ(Ia, Ib);
    };
    for (auto type :
         {faiss::DirectMap::NoMap,
          faiss::DirectMap::Array,
          faiss::DirectMap::Hashtable}) {
        SCOPED_TRACE(int(type));
        faiss::IndexBinaryIVF ivf(new IndexBinaryFlatFast(d), d, 16);
        ivf.own_fields = true;
        ivf.train(nb, xb.data());
        ivf.add(nb, xb.data());
        ivf.nprobe = 3;
        ivf.set_direct_map_type(type);
        EXPECT_THROW(faiss::VectorIOWriter w;
                     faiss::write_index_binary(&ivf, &w),
                     faiss::FaissException);
        faiss::VectorIOWriter w;
        faiss_bq::write_index_binary(&ivf, &w);
        faiss::VectorIOReader r;
        r.data = w.data;
        std::unique_ptr<faiss::IndexBinary> back(
                faiss_bq::read_index_binary(&r));
        auto* bivf = dynamic_cast<faiss::IndexBinaryIVF*>(back.get());
        ASSERT_TRUE(bivf);
        EXPECT_TRUE(dynamic_cast<IndexBinaryFlatFast*>(bivf->quantizer));
        EXPECT_EQ(bivf->nprobe, 3u);
        EXPECT_EQ(bivf->direct_map.type, type);
        same_search(ivf, *back);
        if (type != faiss::DirectMap::NoMap) {
            std::vector<uint8_t> want(d / 8), got(d / 8);
            ivf.reconstruct(1234, want.data());
            back->reconstruct(1234, got.data());
            EXPECT_EQ(got, want);
        }
        faiss::VectorIOReader theirs_r;
        theirs_r.data = w.data;
        std::unique_ptr<faiss::IndexBinary> theirs(
                faiss::read_index_binary(&theirs_r));
        EXPECT_TRUE(dynamic_cast<faiss::IndexBinaryFlat*>(
                dynamic_cast<faiss::IndexBinaryIVF&>(*theirs).quantizer));
        same_search(ivf, *theirs);
        // a FAISS-only one: the same bytes as FAISS's writer
        faiss::IndexBinaryIVF plain(new faiss::IndexBinaryFlat(d), d, 16);
        plain.own_fields = true;
        plain.train(nb, xb.data());
        plain.add(nb, xb.data());
        plain.set_direct_map_type(type);
        faiss::VectorIOWriter ours, faiss_w;
        faiss_bq::write_index_binary(&plain, &ours);
        faiss::write_index_binary(&plain, &faiss_w);
        if (type !=
            faiss::DirectMap::Hashtable) { // a hash map's order is its own
            EXPECT_EQ(ours.data, faiss_w.data);
        }
        // every truncation throws
        for (size_t cut : {size_t(3), w.data.size() / 3, w.data.size() - 1}) {
            faiss::VectorIOReader t;
            t.data.assign(w.data.begin(), w.data.begin() + cut);
            EXPECT_THROW(
                    std::unique_ptr<faiss::IndexBinary>(
                            faiss_bq::read_index_binary(&t)),
                    faiss::FaissException)
                    << "cut at " << cut;
        }
    }
    // IndexBinaryFromFloat over a faiss_bq float index (it feeds the codes
    // to it as +-1 floats)
    faiss::IndexBinaryFromFloat ff(new IndexBQ(d, 1, faiss::METRIC_L2));
    ff.own_fields = true;
    ff.train(nb, xb.data());
    ff.add(nb, xb.data());
    faiss::VectorIOWriter w;
    faiss_bq::write_index_binary(&ff, &w);
    faiss::VectorIOReader r;
    r.data = w.data;
    std::unique_ptr<faiss::IndexBinary> back(faiss_bq::read_index_binary(&r));
    auto* bff = dynamic_cast<faiss::IndexBinaryFromFloat*>(back.get());
    ASSERT_TRUE(bff);
    EXPECT_TRUE(dynamic_cast<IndexBQ*>(bff->index));
    EXPECT_EQ(bff->ntotal, ff.ntotal);
    same_search(ff, *back);
}

TEST(IndexIO, BinaryFlatReadsIntoEitherClass) {
    const int d = 48;
    const size_t nb = 30;
    std::vector<uint8_t> xb(nb * d / 8);
    std::mt19937 rng(5);
    for (auto& b : xb) {
        b = uint8_t(rng());
    }
    faiss::IndexBinaryFlat faiss_flat(d);
    faiss_flat.add(nb, xb.data());
    faiss::VectorIOWriter w;
    faiss::write_index_binary(&faiss_flat, &w);
    for (int flags : {0, IO_FLAG_FAISS_BINARY_FLAT}) {
        faiss::VectorIOReader r;
        r.data = w.data;
        std::unique_ptr<faiss::IndexBinary> back(
                faiss_bq::read_index_binary(&r, flags));
        if (flags) {
            EXPECT_TRUE(dynamic_cast<faiss::IndexBinaryFlat*>(back.get()));
        } else {
            auto fast = dynamic_cast<IndexBinaryFlatFast*>(back.get());
            ASSERT_TRUE(fast);
            EXPECT_EQ(fast->xb, faiss_flat.xb);
        }
        EXPECT_EQ(to_bytes(back.get()), w.data);
        std::vector<int32_t> D0(5), D1(5);
        std::vector<idx_t> I0(5), I1(5);
        faiss_flat.search(1, xb.data() + 6, 5, D0.data(), I0.data());
        back->search(1, xb.data() + 6, 5, D1.data(), I1.data());
        EXPECT_EQ(D0, D1);
        EXPECT_EQ(I0, I1);
    }
}

/// Reads bytes, expecting a faiss::FaissException whose message holds
/// needle, and records the largest allocation made meanwhile.
size_t expect_read_throws(const Bytes& bytes, const std::string& needle) {
    test::start_tracking_allocations();
    size_t largest = 0;
    try {
        delete from_bytes(bytes);
        largest = test::stop_tracking_allocations();
        ADD_FAILURE() << "no exception; expected one naming '" << needle << "'";
    } catch (const faiss::FaissException& e) {
        largest = test::stop_tracking_allocations();
        EXPECT_NE(std::string(e.what()).find(needle), std::string::npos)
                << e.what();
    }
    return largest;
}

template <class T>
void poke(Bytes& bytes, size_t at, T value) {
    ASSERT_LE(at + sizeof(T), bytes.size());
    std::memcpy(bytes.data() + at, &value, sizeof(T));
}

TEST(IndexIO, BadFilesThrow) {
    const size_t d = 16;
    auto bq = build("BQ1", d, 30, faiss::METRIC_L2);
    const Bytes good = to_bytes(bq.get());

    Bytes wrong_fourcc = good;
    std::memcpy(wrong_fourcc.data(), "ZZZZ", 4);
    expect_read_throws(wrong_fourcc, "not recognized");

    Bytes future = good;
    poke<uint32_t>(future, 4, 9);
    expect_read_throws(future, "format version 9");

    // fourcc, version, d, ntotal, two unused words, is_trained: the metric.
    Bytes bad_metric = good;
    poke<int32_t>(bad_metric, 4 + 4 + 4 + 8 + 8 + 8 + 1, 99);
    expect_read_throws(bad_metric, "metric_type=99 is not a FAISS metric");

    // A byte of the codes (the record's last 30 x 14 bytes before the
    // checksum): nothing but the checksum can tell.
    Bytes flipped = good;
    flipped[good.size() - 8 - 100] ^= 0x10;
    expect_read_throws(flipped, "checksum");

    expect_read_throws(Bytes(), "ends early");

    // IDMap's id_map is the last vector: its length sits just before it.
    auto map = build("IDMap,BQ1", d, 30, faiss::METRIC_L2);
    Bytes ids = to_bytes(map.get());
    const size_t length_at = ids.size() - 30 * sizeof(idx_t) - sizeof(uint64_t);
    poke<uint64_t>(ids, length_at, uint64_t(1) << 36);
    const size_t largest = expect_read_throws(ids, "ends early");
    EXPECT_LE(largest, ids.size() + (size_t(2) << 20))
            << "the claimed 512 GiB were allocated up front";
    poke<uint64_t>(ids, length_at, uint64_t(1) << 62);
    expect_read_throws(ids, "absurd");
    poke<uint64_t>(ids, length_at, 29);
    expect_read_throws(ids, "IndexIDMap");
}

// A faiss_bq fourcc changed in any one byte names no FAISS type, so the file
// never reaches one of FAISS's readers (which trust what they read).
TEST(IndexIO, EveryOneByteChangeOfAFourccThrows) {
    for (const char* description : {"BQ1", "HNSW4_BQ1"}) {
        SCOPED_TRACE(description);
        const Bytes good =
                to_bytes(build(description, 16, 12, faiss::METRIC_L2).get());
        for (size_t at = 0; at < 4; at++) {
            for (int x = 1; x < 256; x++) {
                Bytes bad = good;
                bad[at] ^= uint8_t(x);
                expect_read_throws(bad, "");
            }
        }
    }
}

// Files with a valid checksum whose values do not fit together (as a buggy
// writer or a hand-made file would give): the reader checks what search
// would index without checking.
TEST(IndexIO, InconsistentValuesThrow) {
    const size_t d = 16;
    auto expect_rejected = [](faiss::Index* index, const char* needle) {
        expect_read_throws(to_bytes(index), needle);
    };
    auto bq = build("BQ2", d, 20, faiss::METRIC_L2);
    IndexBQ* b = find_bq(bq.get());
    b->plan.levels.pop_back();
    expect_rejected(bq.get(), "does not fit an index of d=16 nbits=2");

    bq = build("BQ1", d, 20, faiss::METRIC_L2);
    find_bq(bq.get())->plan.analysis.sigma.resize(3);
    expect_rejected(bq.get(), "analysis of d=16 holds a vector of size 3");

    bq = build("BQ1", d, 20, faiss::METRIC_L2);
    find_bq(bq.get())->codes.resize(5);
    expect_rejected(bq.get(), "holds 5 code bytes");

    bq = build("BQ1", d, 20, faiss::METRIC_L2);
    find_bq(bq.get())->query_bits = 3;
    expect_rejected(bq.get(), "query_bits=3");

    auto hnsw = build("HNSW4_BQ1", d, 20, faiss::METRIC_L2);
    static_cast<faiss::IndexHNSW*>(hnsw.get())->hnsw.neighbors[0] = 20;
    expect_rejected(hnsw.get(), "inconsistent HNSW graph");
    hnsw = build("HNSW4_BQ1", d, 20, faiss::METRIC_L2);
    static_cast<faiss::IndexHNSW*>(hnsw.get())->hnsw.efSearch = 1 << 30;
    expect_rejected(hnsw.get(), "inconsistent HNSW graph");

    auto rf = build("BQ1,RFlat", d, 20, faiss::METRIC_L2);
    static_cast<IndexBQRefine*>(rf.get())->k_factor = 0;
    expect_rejected(rf.get(), "k_factor=0");

    auto map = build("IDMap,BQ1", d, 20, faiss::METRIC_L2);
    static_cast<faiss::IndexIDMap*>(map.get())->id_map.pop_back();
    expect_rejected(map.get(), "holds 19 ids");

    auto pt = build("PCA8,BQ1", d, 20, faiss::METRIC_L2);
    static_cast<faiss::IndexPreTransform*>(pt.get())->chain[0]->d_out = 9;
    expect_rejected(pt.get(), "inconsistent vector transform");
}

TEST(IndexIO, UntrainedAndEmptyIndexesRoundTrip) {
    const size_t d = 24;
    const auto xt = test::gaussian(300, d, 3);
    for (const char* description :
         {"BQ2_rot_ctr", "HNSW8_BQ1", "IDMap2,PCA16,BQ2_sym,RFlat"}) {
        SCOPED_TRACE(description);
        std::unique_ptr<faiss::Index> index(
                faiss_bq::index_factory(d, description));
        set_non_defaults(*find_bq(index.get()));
        for (int trained = 0; trained < 2; trained++) {
            if (trained) {
                index->train(300, xt.data());
            }
            const Bytes bytes = to_bytes(index.get());
            std::unique_ptr<faiss::Index> back(from_bytes(bytes));
            EXPECT_EQ(to_bytes(back.get()), bytes);
            EXPECT_EQ(back->is_trained, bool(trained));
            EXPECT_EQ(back->ntotal, 0);
            expect_same_bq(*find_bq(index.get()), *find_bq(back.get()));
        }
    }
}

// IndexBQFastScan, alone, in containers and under refine, trained or not:
// the copy writes the same bytes and searches the same; every truncation and
// every flipped byte of a fast-scan record throws (it is fully checksummed).
TEST(IndexIO, FastScanRoundTripsAndCorruptionThrows) {
    const size_t d = 24, nb = 150;
    const char* const descriptions[] = {
            "BQ1_fs",
            "BQ8B_alloc_fs",
            "IDMap2,BQ2_rot_fs",
            "BQ1_fs,RFlat",
            "PCA16,BQ2_fs"};
    for (size_t c = 0; c < std::size(descriptions); c++) {
        const faiss::MetricType m =
                c % 2 ? faiss::METRIC_L2 : faiss::METRIC_INNER_PRODUCT;
        SCOPED_TRACE(descriptions[c]);
        std::unique_ptr<faiss::Index> empty(
                faiss_bq::index_factory(d, descriptions[c], m));
        const Bytes untrained = to_bytes(empty.get());
        std::unique_ptr<faiss::Index> back(from_bytes(untrained));
        EXPECT_EQ(to_bytes(back.get()), untrained);
        EXPECT_FALSE(back->is_trained);
        auto index = build(descriptions[c], d, nb, m);
        const Bytes bytes = to_bytes(index.get());
        back.reset(from_bytes(bytes));
        EXPECT_EQ(to_bytes(back.get()), bytes);
        EXPECT_EQ(
                faiss_bq::index_factory_string(back.get()),
                faiss_bq::index_factory_string(index.get()));
        EXPECT_EQ(back->ntotal, index->ntotal);
        expect_same_search(*index, *back, d);
    }
    auto index = build("BQ8B_alloc_fs", 16, 70, faiss::METRIC_L2);
    const Bytes good = to_bytes(index.get());
    for (size_t len = 0; len < good.size(); len++) {
        expect_read_throws(Bytes(good.begin(), good.begin() + len), "");
    }
    for (size_t at = 0; at < good.size(); at += 3) {
        Bytes bad = good;
        bad[at] ^= uint8_t(1 + at % 255);
        expect_read_throws(bad, "");
    }
}

/// Small files of each kind, truncated at every byte and with random bytes
/// flipped (fixed seed): always a faiss::FaissException or an index that
/// searches; never a crash (the sanitizer build runs this too) nor an
/// allocation out of proportion to the file.
TEST(IndexIO, CorruptedFilesThrowAndNeverCrash) {
    const size_t d = 16, nb = 12;
    struct Case {
        const char* description;
        bool fully_checksummed; ///< every byte is a faiss_bq record's
    };
    const Case cases[] = {
            {"BQ2_rot", true},
            {"HNSW4_BQ1", true},
            {"IDMap2,BQ1", false},
            {"PCA8,BQ1", false},
            {"BQ1,RFlat", true},
    };
    std::mt19937 rng(20261123);
    const auto xq = test::gaussian(2, d, 9);
    for (const Case& c : cases) {
        SCOPED_TRACE(c.description);
        auto index = build(c.description, d, nb, faiss::METRIC_L2);
        const Bytes good = to_bytes(index.get());
        const size_t allowed = 2 * good.size() + (size_t(2) << 20);
        for (size_t len = 0; len < good.size(); len++) {
            const size_t largest = expect_read_throws(
                    Bytes(good.begin(), good.begin() + len), "");
            ASSERT_LE(largest, allowed) << "truncated at " << len;
        }
        size_t accepted = 0;
        for (int trial = 0; trial < 300; trial++) {
            Bytes bad = good;
            const size_t at = rng() % bad.size();
            bad[at] ^= uint8_t(1 + rng() % 255);
            test::start_tracking_allocations();
            std::unique_ptr<faiss::Index> back;
            try {
                back.reset(from_bytes(bad));
            } catch (const faiss::FaissException&) {
            }
            ASSERT_LE(test::stop_tracking_allocations(), allowed)
                    << "byte " << at;
            if (!back) {
                continue;
            }
            EXPECT_FALSE(c.fully_checksummed) << "byte " << at << " accepted";
            accepted++;
            std::vector<float> D(2 * 3);
            std::vector<idx_t> I(2 * 3);
            try {
                back->search(2, xq.data(), 3, D.data(), I.data());
            } catch (const faiss::FaissException&) {
            }
        }
        // Containers accept flips in fields FAISS's layout cannot check (ids,
        // refine vectors, unused header words); most flips still throw.
        EXPECT_LT(accepted, 300u);
    }
}

// The binary side's files: FAISS's IndexBinaryFlat and the id maps around
// it, read by faiss_bq's bounded reader.
TEST(IndexIO, CorruptedBinaryFilesThrowAndNeverCrash) {
    const int d = 32;
    const size_t nb = 10;
    std::vector<uint8_t> xb(nb * d / 8);
    std::mt19937 rng(7);
    for (auto& b : xb) {
        b = uint8_t(rng());
    }
    for (const char* description : {"BFlat", "IDMap2,BFlat"}) {
        SCOPED_TRACE(description);
        std::unique_ptr<faiss::IndexBinary> index(
                faiss_bq::index_binary_factory(d, description));
        std::vector<idx_t> ids(nb);
        for (size_t i = 0; i < nb; i++) {
            ids[i] = 50 + idx_t(i);
        }
        if (dynamic_cast<faiss::IndexBinaryIDMap*>(index.get())) {
            index->add_with_ids(nb, xb.data(), ids.data());
        } else {
            index->add(nb, xb.data());
        }
        const Bytes good = to_bytes(index.get());
        const size_t allowed = 2 * good.size() + (size_t(2) << 20);
        for (size_t len = 0; len < good.size(); len++) {
            test::start_tracking_allocations();
            try {
                delete binary_from_bytes(
                        Bytes(good.begin(), good.begin() + len));
                ADD_FAILURE() << "truncated at " << len << " and accepted";
            } catch (const faiss::FaissException&) {
            }
            ASSERT_LE(test::stop_tracking_allocations(), allowed);
        }
        for (int trial = 0; trial < 200; trial++) {
            Bytes bad = good;
            bad[rng() % bad.size()] ^= uint8_t(1 + rng() % 255);
            test::start_tracking_allocations();
            std::unique_ptr<faiss::IndexBinary> back;
            try {
                back.reset(binary_from_bytes(bad));
            } catch (const faiss::FaissException&) {
            }
            ASSERT_LE(test::stop_tracking_allocations(), allowed);
            if (back) {
                std::vector<int32_t> D(3);
                std::vector<idx_t> I(3);
                back->search(1, xb.data(), 3, D.data(), I.data());
            }
        }
    }
}

// IndexIVFBQ and IndexIVFBQFastScan: round trips (alone, in containers,
// untrained), every truncation and flipped byte of a record throws (the
// lists are inside the checksum), and OnDiskInvertedLists: FAISS's list
// format, the data file mapped on read, a truncated data file named.
std::unique_ptr<faiss::Index> build_ivf(
        const char* description,
        size_t d,
        size_t nb,
        faiss::MetricType m) {
    std::unique_ptr<faiss::Index> index(
            faiss_bq::index_factory(d, description, m));
    const auto xt = test::gaussian(400, d, 11);
    index->train(400, xt.data());
    const auto xb = test::gaussian(nb, d, 12);
    std::vector<idx_t> ids(nb);
    for (size_t i = 0; i < nb; i++) {
        ids[i] = 1000 + 7 * idx_t(i);
    }
    index->add_with_ids(nb, xb.data(), ids.data());
    return index;
}

IndexIVFBQ* find_ivf(faiss::Index* index) {
    if (auto rf = dynamic_cast<IndexBQRefine*>(index)) {
        return find_ivf(rf->base_index);
    }
    if (auto m = dynamic_cast<faiss::IndexIDMap*>(index)) {
        return find_ivf(m->index);
    }
    return dynamic_cast<IndexIVFBQ*>(index);
}

TEST(IndexIO, IVFRoundTripsAndCorruptionThrows) {
    const size_t d = 16, nb = 200;
    const char* const descriptions[] = {
            "IVF4,BQ1",
            "IVF4,BQ2_fs",
            "IVF4,BQ8B_fs",
            "IDMap2,IVF4,BQ1_fs,RFlat",
            "IVF4_HNSW4,BQ2_q8"};
    for (size_t c = 0; c < std::size(descriptions); c++) {
        for (faiss::MetricType m :
             {faiss::METRIC_INNER_PRODUCT, faiss::METRIC_L2}) {
            SCOPED_TRACE(
                    std::string(descriptions[c]) + " metric " +
                    std::to_string(int(m)));
            std::unique_ptr<faiss::Index> empty(
                    faiss_bq::index_factory(d, descriptions[c], m));
            const Bytes untrained = to_bytes(empty.get());
            std::unique_ptr<faiss::Index> back(from_bytes(untrained));
            EXPECT_EQ(to_bytes(back.get()), untrained);
            EXPECT_FALSE(back->is_trained);
            auto index = build_ivf(descriptions[c], d, nb, m);
            IndexIVFBQ* ivf = find_ivf(index.get());
            ivf->nprobe = 3;
            ivf->set_direct_map_type(faiss::DirectMap::Hashtable);
            const Bytes bytes = to_bytes(index.get());
            back.reset(from_bytes(bytes));
            EXPECT_EQ(to_bytes(back.get()), bytes);
            EXPECT_EQ(
                    faiss_bq::index_factory_string(back.get()),
                    faiss_bq::index_factory_string(index.get()));
            EXPECT_EQ(find_ivf(back.get())->nprobe, 3u);
            EXPECT_FALSE(find_ivf(back.get())->direct_map.no());
            expect_same_search(*index, *back, d);
            std::unique_ptr<faiss::Index> cloned(
                    faiss_bq::clone_index(index.get()));
            expect_same_search(*index, *cloned, d);
        }
    }
    auto index = build_ivf("IVF2,BQ1_fs", 8, 40, faiss::METRIC_L2);
    const Bytes good = to_bytes(index.get());
    // every length near the ends (headers, lists, checksum), every 5th between
    for (size_t len = 0; len < good.size();
         len += len < 512 || len + 512 > good.size() ? 1 : 5) {
        expect_read_throws(Bytes(good.begin(), good.begin() + len), "");
    }
    for (size_t at = 4; at < good.size(); at += 3) {
        Bytes bad = good;
        bad[at] ^= uint8_t(1 + at % 255);
        expect_read_throws(bad, "");
    }
}

TEST(IndexIO, IVFOnDiskListsAreFaissListsMemoryMapped) {
    const size_t d = 16, nb = 300;
    for (const char* description : {"IVF4,BQ1", "IVF4,BQ1_fs"}) {
        SCOPED_TRACE(description);
        auto index = build_ivf(description, d, nb, faiss::METRIC_L2);
        IndexIVFBQ* ivf = find_ivf(index.get());
        ivf->nprobe = 4;
        const std::string base = ::testing::TempDir() + "faiss_bq_ivf_" +
                std::to_string(::getpid());
        const std::string data = base + ".ivfdata", file = base + ".index";
        // As faiss.contrib.ondisk.merge_ondisk does: the lists merged into
        // an OnDiskInvertedLists file, then the index written.
        auto od = new faiss::OnDiskInvertedLists(
                ivf->nlist, ivf->code_size, data.c_str());
        const faiss::InvertedLists* from[] = {ivf->invlists};
        od->merge_from(from, 1);
        std::unique_ptr<faiss::Index> copy(faiss_bq::clone_index(index.get()));
        find_ivf(copy.get())->replace_invlists(od, true);
        faiss_bq::write_index(copy.get(), file.c_str());
        copy.reset();
        std::unique_ptr<faiss::Index> mapped(
                faiss_bq::read_index(file.c_str()));
        EXPECT_TRUE(dynamic_cast<faiss::OnDiskInvertedLists*>(
                find_ivf(mapped.get())->invlists));
        expect_same_search(*index, *mapped, d);
        mapped.reset();
        // Inline lists are read into memory under IO_FLAG_MMAP (the flag
        // merge_ondisk passes); skipping them is refused by name.
        const Bytes bytes = to_bytes(index.get());
        faiss::VectorIOReader reader;
        reader.data = bytes;
        std::unique_ptr<faiss::Index> loaded(
                faiss_bq::read_index(&reader, faiss::IO_FLAG_MMAP));
        expect_same_search(*index, *loaded, d);
        reader.rp = 0;
        test::expect_throw_naming(
                [&] {
                    delete faiss_bq::read_index(
                            &reader, faiss::IO_FLAG_SKIP_IVF_DATA);
                },
                "not skipped");
        // A truncated data file is named, not a fault when a list is read.
        ASSERT_EQ(::truncate(data.c_str(), 100), 0);
        test::expect_throw_naming(
                [&] { delete faiss_bq::read_index(file.c_str()); }, data);
        std::remove(data.c_str());
        std::remove(file.c_str());
    }
}

/// An IVF index of `description` whose lists are an OnDiskInvertedLists at
/// data (merged as faiss.contrib.ondisk.merge_ondisk does), written to file.
std::unique_ptr<faiss::Index> write_ondisk_ivf(
        const faiss::Index& index,
        const std::string& data,
        const std::string& file) {
    std::unique_ptr<faiss::Index> copy(faiss_bq::clone_index(&index));
    IndexIVFBQ* ivf = find_ivf(copy.get());
    auto od = new faiss::OnDiskInvertedLists(
            ivf->nlist, ivf->code_size, data.c_str());
    const faiss::InvertedLists* from[] = {ivf->invlists};
    od->merge_from(from, 1);
    ivf->replace_invlists(od, true);
    faiss_bq::write_index(copy.get(), file.c_str());
    return copy;
}

/// FAISS's "ilod" record read by faiss_bq: bounded reads, the data file
/// checked before it is mapped, IO_FLAG_ONDISK_SAME_DIR through faiss_bq's
/// checksumming reader, IO_FLAG_MMAP mapping on-disk lists (merge_ondisk
/// passes it for its shards), IO_FLAG_READ_ONLY, unallocated lists.
TEST(IndexIO, IVFOnDiskListsReadBoundedAndFoundBesideTheIndex) {
    const size_t d = 16, nb = 300;
    auto index = build_ivf("IVF4,BQ1_fs", d, nb, faiss::METRIC_L2);
    find_ivf(index.get())->nprobe = 4;
    const std::string tag = std::to_string(::getpid());
    const std::string dir_a = ::testing::TempDir() + "faiss_bq_od_a" + tag;
    const std::string dir_b = ::testing::TempDir() + "faiss_bq_od_b" + tag;
    ASSERT_EQ(::mkdir(dir_a.c_str(), 0700), 0);
    ASSERT_EQ(::mkdir(dir_b.c_str(), 0700), 0);
    const std::string data_a = dir_a + "/lists.ivfdata",
                      file_a = dir_a + "/x.index";
    const std::string data_b = dir_b + "/lists.ivfdata",
                      file_b = dir_b + "/x.index";
    auto written = write_ondisk_ivf(*index, data_a, file_a);
    const Bytes good = to_bytes(written.get());
    written.reset();

    // Every truncation and flipped byte throws; a corrupted size costs at
    // most the bytes present (FAISS's reader allocates what it claims).
    const size_t allowed = 2 * good.size() + (size_t(2) << 20);
    for (size_t len = 0; len < good.size(); len++) {
        EXPECT_LE(
                expect_read_throws(Bytes(good.begin(), good.begin() + len), ""),
                allowed);
    }
    for (size_t at = 4; at < good.size(); at++) {
        Bytes bad = good;
        bad[at] ^= uint8_t(1 + at % 255);
        EXPECT_LE(expect_read_throws(bad, ""), allowed) << "byte " << at;
    }
    // the count of list entries, just after "ilod", nlist and code_size
    const uint32_t ilod = faiss::fourcc("ilod");
    size_t at = 0;
    while (std::memcmp(good.data() + at, &ilod, 4) != 0) {
        ASSERT_LT(++at + 4, good.size());
    }
    Bytes huge = good;
    const uint64_t claimed = uint64_t(1) << 35; // 800 GB of list entries
    std::memcpy(huge.data() + at + 4 + 16, &claimed, 8);
    EXPECT_LE(expect_read_throws(huge, ""), allowed);

    // Moved elsewhere: the data file is named as missing, found with
    // IO_FLAG_ONDISK_SAME_DIR beside the index file.
    ASSERT_EQ(std::rename(data_a.c_str(), data_b.c_str()), 0);
    ASSERT_EQ(std::rename(file_a.c_str(), file_b.c_str()), 0);
    test::expect_throw_naming(
            [&] { delete faiss_bq::read_index(file_b.c_str()); },
            data_a + " (named by " + file_b + ") is missing");
    std::unique_ptr<faiss::Index> moved(faiss_bq::read_index(
            file_b.c_str(), faiss::IO_FLAG_ONDISK_SAME_DIR));
    auto od = dynamic_cast<faiss::OnDiskInvertedLists*>(
            find_ivf(moved.get())->invlists);
    ASSERT_TRUE(od);
    EXPECT_EQ(od->filename, data_b);
    EXPECT_FALSE(od->read_only);
    expect_same_search(*index, *moved, d);
    moved.reset();
    faiss::VectorIOReader unnamed;
    unnamed.data = good;
    test::expect_throw_naming(
            [&] {
                delete faiss_bq::read_index(
                        &unnamed, faiss::IO_FLAG_ONDISK_SAME_DIR);
            },
            "named file");

    // IO_FLAG_MMAP maps on-disk lists (FAISS's reader leaves them unmapped:
    // a merge of merged indexes would read null lists); IO_FLAG_READ_ONLY
    // maps a read-only data file; IO_FLAG_SKIP_IVF_DATA alone reads the
    // layout without the data file.
    const int flags[] = {
            faiss::IO_FLAG_MMAP | faiss::IO_FLAG_ONDISK_SAME_DIR,
            faiss::IO_FLAG_READ_ONLY | faiss::IO_FLAG_ONDISK_SAME_DIR};
    ASSERT_EQ(::chmod(data_b.c_str(), 0400), 0);
    for (int io_flags : flags) {
        SCOPED_TRACE(io_flags);
        std::unique_ptr<faiss::Index> back(
                faiss_bq::read_index(file_b.c_str(), io_flags));
        expect_same_search(*index, *back, d);
    }
    ASSERT_EQ(::chmod(data_b.c_str(), 0600), 0);
    ASSERT_EQ(std::remove(data_b.c_str()), 0);
    std::unique_ptr<faiss::Index> layout(
            faiss_bq::read_index(file_b.c_str(), faiss::IO_FLAG_SKIP_IVF_DATA));
    for (size_t l = 0; l < 4; l++) {
        EXPECT_EQ(
                find_ivf(layout.get())->invlists->list_size(l),
                find_ivf(index.get())->invlists->list_size(l));
    }
    layout.reset();
    std::remove(file_b.c_str());

    // Lists never written to have no storage (offset -1): valid, and read.
    {
        IndexIVFBQ* ivf = find_ivf(index.get());
        std::unique_ptr<faiss::Index> copy(faiss_bq::clone_index(index.get()));
        auto sparse = new faiss::OnDiskInvertedLists(
                ivf->nlist, ivf->code_size, data_a.c_str());
        faiss::InvertedLists::ScopedCodes codes(ivf->invlists, 1);
        faiss::InvertedLists::ScopedIds ids(ivf->invlists, 1);
        const size_t n1 = ivf->invlists->list_size(1);
        ASSERT_GT(n1, 0u);
        sparse->add_entries(1, n1, ids.get(), codes.get());
        find_ivf(copy.get())->replace_invlists(sparse, true);
        copy->ntotal = find_ivf(copy.get())->ntotal = idx_t(n1);
        faiss_bq::write_index(copy.get(), file_a.c_str());
        std::unique_ptr<faiss::Index> back(
                faiss_bq::read_index(file_a.c_str()));
        expect_same_search(*copy, *back, d);
    }
    std::remove(data_a.c_str());
    std::remove(file_a.c_str());
    ::rmdir(dir_a.c_str());
    ::rmdir(dir_b.c_str());
}

// A FAISS record read from a file by faiss_bq is read by FAISS from that
// file: IO_FLAG_MMAP maps its inline lists (merge_ondisk reads its shards so)
// and IO_FLAG_ONDISK_SAME_DIR finds its data file, both of which FAISS
// supports only through its own FileIOReader.
TEST(IndexIO, FaissIVFFileReadWithFaissFileFlags) {
    const size_t d = 16, nb = 300;
    std::unique_ptr<faiss::Index> index(
            faiss::index_factory(int(d), "IVF4,SQ8", faiss::METRIC_L2));
    const auto xb = test::gaussian(nb, d, 12);
    index->train(nb, xb.data());
    index->add(nb, xb.data());
    dynamic_cast<faiss::IndexIVF*>(index.get())->nprobe = 4;
    const std::string file = ::testing::TempDir() + "faiss_bq_faiss_ivf_" +
            std::to_string(::getpid()) + ".index";
    faiss::write_index(index.get(), file.c_str());
    std::unique_ptr<faiss::Index> mapped(
            faiss_bq::read_index(file.c_str(), faiss::IO_FLAG_MMAP));
    EXPECT_TRUE(dynamic_cast<faiss::OnDiskInvertedLists*>(
            dynamic_cast<faiss::IndexIVF*>(mapped.get())->invlists));
    expect_same_search(*index, *mapped, d);
    std::remove(file.c_str());
}

} // namespace
} // namespace faiss_bq
