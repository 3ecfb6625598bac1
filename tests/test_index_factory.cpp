// Factory strings: each builds the expected types, the reverse function gives
// the canonical string back, and bad strings name the token and position.
#include <faiss_bq/IndexBQ.h>
#include <faiss_bq/IndexBQFastScan.h>
#include <faiss_bq/IndexIVFBQ.h>
#include <faiss_bq/IndexIVFBQFastScan.h>
#include <faiss_bq/clone_index.h>
#include <faiss_bq/index_factory.h>

#include "test_util.h"

#include <faiss/IndexBinaryFlat.h>
#include <faiss/IndexBinaryHNSW.h>
#include <faiss/IndexBinaryHash.h>
#include <faiss/IndexBinaryIVF.h>
#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIDMap.h>
#include <faiss/IndexPreTransform.h>
#include <faiss/IndexScalarQuantizer.h>
#include <faiss/VectorTransform.h>
#include <faiss_bq/IndexBQRefine.h>
#include <faiss_bq/IndexBinaryFlatFast.h>
#include <faiss_bq/IndexFromBinary.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <set>
#include <string>

namespace faiss_bq {
namespace {

/// The nesting of an index as type names, outermost first, e.g.
/// "IDMap2/RefineFlat/PreTransform[PCA]/BQ" (the test's independent view of
/// what was built).
std::string shape(const faiss::Index* index) {
    if (dynamic_cast<const faiss::IndexIDMap2*>(index)) {
        return "IDMap2/" +
                shape(static_cast<const faiss::IndexIDMap*>(index)->index);
    }
    if (auto m = dynamic_cast<const faiss::IndexIDMap*>(index)) {
        return "IDMap/" + shape(m->index);
    }
    if (auto rf = dynamic_cast<const IndexBQRefine*>(index)) {
        const bool flat = typeid(*rf->refine_index) == typeid(faiss::IndexFlat);
        return std::string(flat ? "RefineFlat/" : "Refine[") +
                (flat ? "" : shape(rf->refine_index) + "]/") +
                shape(rf->base_index);
    }
    if (auto fb = dynamic_cast<const IndexFromBinary*>(index)) {
        const faiss::IndexBinary* b = fb->index;
        return std::string("FromBinary[") +
                (dynamic_cast<const IndexBinaryFlatFast*>(b) ? "BFlat"
                         : dynamic_cast<const faiss::IndexBinaryHNSW*>(b)
                         ? "BHNSW"
                         : dynamic_cast<const faiss::IndexBinaryIVF*>(b)
                         ? "BIVF"
                         : dynamic_cast<const faiss::IndexBinaryHash*>(b)
                         ? "BHash"
                         : "?") +
                "," + std::to_string(b->d) + "]";
    }
    if (auto pt = dynamic_cast<const faiss::IndexPreTransform*>(index)) {
        std::string s = "PreTransform[";
        for (auto vt : pt->chain) {
            s += dynamic_cast<const faiss::PCAMatrix*>(vt)      ? "PCA"
                    : dynamic_cast<const faiss::OPQMatrix*>(vt) ? "OPQ"
                    : dynamic_cast<const faiss::RandomRotationMatrix*>(vt)
                    ? "RR"
                    : dynamic_cast<const faiss::NormalizationTransform*>(vt)
                    ? "L2norm"
                    : "?";
        }
        return s + "]/" + shape(pt->index);
    }
    if (auto h = dynamic_cast<const faiss::IndexHNSW*>(index)) {
        return std::string(
                       dynamic_cast<const faiss::IndexHNSWFlat*>(index)
                               ? "HNSWFlat/"
                               : "HNSW/") +
                shape(h->storage);
    }
    if (auto ivf = dynamic_cast<const IndexIVFBQ*>(index)) {
        return std::string(
                       dynamic_cast<const IndexIVFBQFastScan*>(index)
                               ? "IVFBQfs["
                               : "IVFBQ[") +
                shape(ivf->quantizer) + "," + std::to_string(ivf->nlist) + "]";
    }
    if (dynamic_cast<const IndexBQ*>(index)) {
        return "BQ";
    }
    if (dynamic_cast<const IndexBQFastScan*>(index)) {
        return "BQfs";
    }
    if (dynamic_cast<const faiss::IndexFlat*>(index)) {
        return "Flat";
    }
    if (dynamic_cast<const faiss::IndexScalarQuantizer*>(index)) {
        return "SQ";
    }
    return "?";
}

struct Row {
    const char* description;
    const char* shape;
    const char* canonical; ///< nullptr: the description itself
};

TEST(IndexFactory, StringsBuildTypesAndReverseToCanonical) {
    const int d = 32;
    const Row rows[] = {
            {"BQ1", "BQ", nullptr},
            {"BQ2", "BQ", nullptr},
            {"BQ2_rot", "BQ", nullptr},
            {"BQ1_axis_ctr", "BQ", nullptr},
            {"BQ1_noctr_axis", "BQ", "BQ1_axis_noctr"},
            {"BQ1_sym", "BQ", nullptr},
            {"BQ2_q8", "BQ", nullptr},
            {"BQ2_q4_axis", "BQ", "BQ2_axis_q4"},
            {"PCA16,BQ1", "PreTransform[PCA]/BQ", nullptr},
            {"PCAW16,BQ1", "PreTransform[PCA]/BQ", nullptr},
            {"PCAR16,BQ2", "PreTransform[PCA]/BQ", nullptr},
            {"L2norm,BQ2_sym", "PreTransform[L2norm]/BQ", nullptr},
            {"L2Norm,BQ2", "PreTransform[L2norm]/BQ", "L2norm,BQ2"},
            {"OPQ4_16,BQ1", "PreTransform[OPQ]/BQ", nullptr},
            {"RR32,L2norm,BQ1", "PreTransform[RRL2norm]/BQ", nullptr},
            {"IDMap,BQ1", "IDMap/BQ", nullptr},
            {"IDMap2,BQ2_rot", "IDMap2/BQ", nullptr},
            {"BQ1,RFlat", "RefineFlat/BQ", nullptr},
            {"BQ1,Refine(Flat)", "RefineFlat/BQ", "BQ1,RFlat"},
            {"BQ2,Refine(SQ8)", "Refine[SQ]/BQ", nullptr},
            {"BQ1,Refine(PCA16,Flat)",
             "Refine[PreTransform[PCA]/Flat]/BQ",
             nullptr},
            {"IDMap2,L2norm,BQ1_q6,RFlat",
             "IDMap2/RefineFlat/PreTransform[L2norm]/BQ",
             nullptr},
            {"HNSW16_BQ1", "HNSW/BQ", nullptr},
            // fast scan: the same plans, re-packed
            {"BQ1_fs", "BQfs", nullptr},
            {"BQ2_fs_rot", "BQfs", "BQ2_rot_fs"},
            {"BQ8B_alloc_pca_fs", "BQfs", nullptr},
            {"BQ1_fs_scalar", "BQfs", nullptr},
            {"BQ2_scalar_fs_axis", "BQfs", "BQ2_axis_fs_scalar"},
            {"IDMap2,PCA16,BQ1_fs,RFlat",
             "IDMap2/RefineFlat/PreTransform[PCA]/BQfs",
             nullptr},
            // float front ends over binary indexes of the plan's code bits
            {"BQ1(BFlat)", "FromBinary[BFlat,32]", nullptr},
            {"BQ2_axis(BHNSW8)", "FromBinary[BHNSW,64]", nullptr},
            {"BQ1_rot_noctr(BIVF4)", "FromBinary[BIVF,32]", nullptr},
            {"BQ1(BHash8)", "FromBinary[BHash,32]", nullptr},
            {"IDMap2,PCA16,BQ2(BFlat),RFlat",
             "IDMap2/RefineFlat/PreTransform[PCA]/FromBinary[BFlat,32]",
             nullptr},
            {"HNSW_BQ2_axis", "HNSW/BQ", "HNSW32_BQ2_axis"},
            {"IDMap,PCA16,HNSW8_BQ2,RFlat",
             "IDMap/RefineFlat/PreTransform[PCA]/HNSW/BQ",
             nullptr},
            // inverted files over BQ codes of residuals
            {"IVF16,BQ1_fs", "IVFBQfs[Flat,16]", nullptr},
            {"IVF16,BQ2", "IVFBQ[Flat,16]", nullptr},
            {"IVF16,BQ8B_fs", "IVFBQfs[Flat,16]", nullptr},
            {"IVF16_HNSW8,BQ1_fs", "IVFBQfs[HNSWFlat/Flat,16]", nullptr},
            {"IVF16,BQ1_fs,RFlat", "RefineFlat/IVFBQfs[Flat,16]", nullptr},
            {"IVF16,BQ2_q8,Refine(SQ8)", "Refine[SQ]/IVFBQ[Flat,16]", nullptr},
            {"IVF16,BQ8B_alloc_fs_scalar", "IVFBQfs[Flat,16]", nullptr},
            {"IDMap2,PCA16,IVF16,BQ1_axis_fs,RFlat",
             "IDMap2/RefineFlat/PreTransform[PCA]/IVFBQfs[Flat,16]",
             nullptr},
            // pure FAISS: delegated unchanged
            {"Flat", "Flat", nullptr},
            {"IDMap2,Flat", "IDMap2/Flat", nullptr},
            {"PCA16,SQ8", "PreTransform[PCA]/SQ", nullptr},
            {"HNSW16", "HNSWFlat/Flat", "HNSW16,Flat"},
    };
    for (const Row& row : rows) {
        SCOPED_TRACE(row.description);
        for (faiss::MetricType m :
             {faiss::METRIC_L2, faiss::METRIC_INNER_PRODUCT}) {
            std::unique_ptr<faiss::Index> index(
                    index_factory(d, row.description, m));
            EXPECT_EQ(shape(index.get()), row.shape);
            EXPECT_EQ(index->d, d);
            EXPECT_EQ(index->metric_type, m);
            const std::string canonical =
                    row.canonical ? row.canonical : row.description;
            EXPECT_EQ(index_factory_string(index.get()), canonical);
            // The canonical string is a fixed point.
            std::unique_ptr<faiss::Index> again(
                    index_factory(d, canonical.c_str(), m));
            EXPECT_EQ(shape(again.get()), row.shape);
            EXPECT_EQ(index_factory_string(again.get()), canonical);
        }
    }
}

const IndexBQ* find_bq(const faiss::Index* index) {
    if (auto bq = dynamic_cast<const IndexBQ*>(index)) {
        return bq;
    }
    if (auto m = dynamic_cast<const faiss::IndexIDMap*>(index)) {
        return find_bq(m->index);
    }
    if (auto rf = dynamic_cast<const IndexBQRefine*>(index)) {
        return find_bq(rf->base_index);
    }
    if (auto pt = dynamic_cast<const faiss::IndexPreTransform*>(index)) {
        return find_bq(pt->index);
    }
    if (auto h = dynamic_cast<const faiss::IndexHNSW*>(index)) {
        return find_bq(h->storage);
    }
    return nullptr;
}

TEST(IndexFactory, ReverseNamesWhatHasNoString) {
    std::unique_ptr<faiss::Index> lsh(index_factory(32, "LSH"));
    test::expect_throw_naming(
            [&] { index_factory_string(lsh.get()); }, "has no factory string");
}

TEST(IndexFactory, OptionsSetTheFields) {
    std::unique_ptr<faiss::Index> a(index_factory(
            24, "PCA16,BQ2_rot_noctr_sym", faiss::METRIC_INNER_PRODUCT));
    const IndexBQ* bq = find_bq(a.get());
    ASSERT_TRUE(bq);
    EXPECT_EQ(bq->d, 16);
    EXPECT_EQ(bq->nbits, 2);
    EXPECT_EQ(bq->code_size, code_size(16, 2));
    EXPECT_EQ(bq->metric_type, faiss::METRIC_INNER_PRODUCT);
    EXPECT_EQ(bq->trainer.transform, TransformChoice::random_rotation);
    EXPECT_EQ(bq->trainer.centering, CenteringChoice::uncentered);
    EXPECT_EQ(bq->estimator, Estimator::symmetric);
    EXPECT_EQ(bq->query_bits, 0);

    std::unique_ptr<faiss::Index> b(
            index_factory(40, "HNSW12_BQ1_axis_ctr_q6"));
    bq = find_bq(b.get());
    ASSERT_TRUE(bq);
    EXPECT_EQ(bq->nbits, 1);
    EXPECT_EQ(bq->trainer.transform, TransformChoice::identity);
    EXPECT_EQ(bq->trainer.centering, CenteringChoice::centered);
    EXPECT_EQ(bq->estimator, Estimator::asymmetric);
    EXPECT_EQ(bq->query_bits, 6);
    EXPECT_EQ(
            static_cast<faiss::IndexHNSW*>(b.get())->hnsw.nb_neighbors(1), 12);
    EXPECT_FALSE(b->is_trained) << "the graph's storage is not trained";

    std::unique_ptr<faiss::Index> c(index_factory(32, "BQ1"));
    bq = find_bq(c.get());
    EXPECT_EQ(bq->trainer.transform, TransformChoice::automatic);
    EXPECT_EQ(bq->trainer.centering, CenteringChoice::automatic);
    EXPECT_FALSE(bq->trainer.joint_nibbles);

    // fast scan trains joint nibbles unless _scalar
    for (const char* s : {"BQ1_fs", "BQ1_fs_scalar"}) {
        std::unique_ptr<faiss::Index> f(index_factory(32, s));
        auto fs = dynamic_cast<const IndexBQFastScan*>(f.get());
        ASSERT_TRUE(fs);
        EXPECT_TRUE(fs->trainer.fast_scan_layout);
        EXPECT_EQ(fs->trainer.joint_nibbles, std::string(s) == "BQ1_fs") << s;
    }
}

TEST(IndexFactory, BadStringsNameTokenAndPosition) {
    const struct {
        const char* description;
        std::vector<const char*> needles;
    } rows[] = {
            {"BQ3", {"token 'BQ3' at position 0", "1 or 2 bits"}},
            {"BQ", {"token 'BQ' at position 0"}},
            {"BQ1x",
             {"token 'BQ1x' at position 0",
              "'_' before an option at position 3"}},
            {"PCA16,BQ1_foo",
             {"token 'BQ1_foo' at position 6", "option 'foo' at position 10"}},
            {"BQ1_q9",
             {"option 'q9' at position 4", "query bits must be 4..8"}},
            {"BQ1_q", {"option 'q' at position 4"}},
            {"BQ1_rot_axis", {"option 'axis' at position 8", "conflicts"}},
            {"BQ1_sym_q8", {"token 'BQ1_sym_q8' at position 0", "asymmetric"}},
            {"BQ1,RFlatt", {"token 'RFlatt' at position 4", "RFlat or Refine"}},
            {"BQ1,RFlat,Flat", {"token 'Flat' at position 10"}},
            {"BQ1,Refine(Bogus)", {"token 'Bogus' at position 11", "FAISS"}},
            {"PCAx,BQ1", {"token 'PCAx' at position 0", "FAISS"}},
            {"Flatt", {"token 'Flatt' at position 0", "FAISS"}},
            {"IDMap,BQ1,(x", {"token '(x' at position 10", "unmatched '('"}},
            {"BQ1),RFlat",
             {"token 'BQ1)' at position 0", "unmatched ')' at position 3"}},
            {"BQ1,,RFlat", {"token '' at position 4", "empty token"}},
            {"HNSW1_BQ1", {"token 'HNSW1_BQ1' at position 0", "HNSW M"}},
            {"BQ1_fs_sym",
             {"token 'BQ1_fs_sym' at position 0", "fast scan (_fs)"}},
            {"BQ1_q4_fs",
             {"token 'BQ1_q4_fs' at position 0", "fast scan (_fs)"}},
            {"BQ1_fs_fs", {"option 'fs' at position 7", "conflicts"}},
            {"BQ1_scalar", {"token 'BQ1_scalar' at position 0", "add _fs"}},
            {"BQ1_fs_scalar_scalar",
             {"option 'scalar' at position 14", "conflicts"}},
            {"HNSW8_BQ1_fs",
             {"token 'HNSW8_BQ1_fs' at position 0", "_fs does not apply"}},
            {"BQ1_fs(BFlat)",
             {"token 'BQ1_fs(BFlat)' at position 0", "no _fs"}},
            {"IVF0,BQ1", {"token 'IVF0' at position 0", "number of lists"}},
            {"IVF16_HNSW1,BQ1",
             {"token 'IVF16_HNSW1' at position 0", "HNSW M"}},
            {"IVF16_PQ,BQ1",
             {"token 'IVF16_PQ' at position 0", "IVF<nlist>_HNSW<M>"}},
            {"IVF16,BQ1_sym", {"token 'BQ1_sym' at position 6", "asymmetric"}},
            {"IVF16,BQ1(BFlat)",
             {"token 'BQ1(BFlat)' at position 6", "no binary"}},
            {"IVF16,BQ3_fs", {"token 'BQ3_fs' at position 6", "1 or 2 bits"}},
            {"IDMap", {"token 'IDMap' at position 0", "no index after it"}},
            {"L2norm,PCA8",
             {"token 'PCA8' at position 7", "no index after it"}},
    };
    for (const auto& row : rows) {
        for (const char* needle : row.needles) {
            test::expect_throw_naming(
                    [&] { delete index_factory(32, row.description); }, needle);
        }
    }
}

TEST(IndexFactory, BinaryStrings) {
    const int d = 64;
    std::unique_ptr<faiss::IndexBinary> flat(index_binary_factory(d, "BFlat"));
    EXPECT_TRUE(dynamic_cast<IndexBinaryFlatFast*>(flat.get()));
    faiss::IndexBinaryFlat faiss_flat(d);
    EXPECT_EQ(index_factory_string(&faiss_flat), "BFlat");
    const struct {
        const char* description;
        const char* canonical;
    } rows[] = {
            {"BFlat", nullptr},
            {"IDMap,BFlat", nullptr},
            {"IDMap2,BFlat", nullptr},
            {"BHNSW16", nullptr},
            {"BIVF8", nullptr},
            {"BHash16", nullptr},
            {"BHash2x16", nullptr},
            {"IDMap2,BIVF8", nullptr},
    };
    for (const auto& row : rows) {
        SCOPED_TRACE(row.description);
        std::unique_ptr<faiss::IndexBinary> index(
                index_binary_factory(d, row.description));
        EXPECT_EQ(index->d, d);
        EXPECT_EQ(
                index_factory_string(index.get()),
                row.canonical ? row.canonical : row.description);
    }
    std::unique_ptr<faiss::IndexBinary> map2(
            index_binary_factory(d, "IDMap2,BFlat"));
    auto m = dynamic_cast<faiss::IndexBinaryIDMap2*>(map2.get());
    ASSERT_TRUE(m);
    EXPECT_TRUE(dynamic_cast<IndexBinaryFlatFast*>(m->index));

    auto bad = [&](const char* s) {
        return [s] { delete index_binary_factory(64, s); };
    };
    test::expect_throw_naming(
            bad("IDMap,BFlatt"), "token 'BFlatt' at position 6");
    test::expect_throw_naming(
            bad("BFlat,IDMap"), "token 'IDMap' at position 6");
    test::expect_throw_naming(bad("IDMap2"), "no index after it");
    test::expect_throw_naming(
            [] { delete index_binary_factory(12, "BFlat"); }, "d=12");
}

// FAISS's HNSW over IndexBQ storage: the graph search returns the scores of
// IndexBQ's own distance computer (same query, same code, same float), and
// finds most of the brute-force neighbours.
TEST(IndexFactory, HNSWOverBQStorageSearchesWithTheBQScores) {
    const size_t d = 32, nb = 400, nq = 30;
    const idx_t k = 10;
    const auto xb = test::gaussian(nb, d, 5);
    const auto xq = test::gaussian(nq, d, 6);
    for (faiss::MetricType m :
         {faiss::METRIC_L2, faiss::METRIC_INNER_PRODUCT}) {
        std::unique_ptr<faiss::Index> flat(index_factory(d, "BQ2_axis", m));
        flat->train(nb, xb.data());
        // Same plan for both: the graph's storage is a copy of the trained,
        // empty index.
        std::unique_ptr<faiss::Index> storage(clone_index(flat.get()));
        faiss::IndexHNSW hnsw(storage.release(), 16);
        hnsw.own_fields = true;
        hnsw.hnsw.efSearch = 64;
        EXPECT_EQ(index_factory_string(&hnsw), "HNSW16_BQ2_axis");
        flat->add(nb, xb.data());
        hnsw.add(nb, xb.data());

        std::vector<float> Df(nq * k), Dh(nq * k);
        std::vector<idx_t> If(nq * k), Ih(nq * k);
        flat->search(nq, xq.data(), k, Df.data(), If.data());
        hnsw.search(nq, xq.data(), k, Dh.data(), Ih.data());

        auto bq = static_cast<const IndexBQ*>(hnsw.storage);
        std::unique_ptr<faiss::FlatCodesDistanceComputer> dc(
                bq->get_FlatCodesDistanceComputer());
        size_t found = 0;
        for (size_t i = 0; i < nq; i++) {
            dc->set_query(xq.data() + i * d);
            for (idx_t r = 0; r < k; r++) {
                const idx_t id = Ih[i * k + r];
                ASSERT_GE(id, 0);
                EXPECT_EQ(Dh[i * k + r], (*dc)(id));
            }
            std::set<idx_t> truth(If.begin() + i * k, If.begin() + (i + 1) * k);
            for (idx_t r = 0; r < k; r++) {
                found += truth.count(Ih[i * k + r]);
            }
        }
        EXPECT_GE(double(found) / (nq * k), 0.9) << "metric " << int(m);
    }
}

} // namespace
} // namespace faiss_bq
