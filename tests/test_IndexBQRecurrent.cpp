// IndexBQRecurrent: recurrent binarization and its symmetric distance (SDC),
// checked against a plain scalar encoder and scorer written here from the
// model's definition (IndexBQRecurrent.h), plus training, factory strings,
// files and bad input.
#include <faiss_bq/IndexBQRecurrent.h>
#include <faiss_bq/index_factory.h>
#include <faiss_bq/index_io.h>

#include "test_util.h"

#include <faiss/IndexIDMap.h>
#include <faiss/impl/FaissException.h>
#include <faiss/impl/IDSelector.h>
#include <faiss/impl/io.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

namespace faiss_bq {
namespace {

using test::idx_t;

/// Anisotropic Gaussian data with an offset: the sigmas fall from 3 to 0.3.
std::vector<float> anisotropic(size_t n, int d, int seed) {
    std::vector<float> sigma(d), mean(d);
    for (int j = 0; j < d; j++) {
        sigma[j] = 3.0f * std::pow(0.1f, float(j) / d);
        mean[j] = 0.2f * float(j % 5);
    }
    return test::gaussian(n, size_t(d), seed, sigma, mean);
}

/// The scalar reference: the model of IndexBQRecurrent.h computed in
/// double, one coordinate at a time, from the index's trained mean, R and
/// stage scales.
struct Reference {
    const IndexBQRecurrent& index;
    int d, ns;

    explicit Reference(const IndexBQRecurrent& index)
            : index(index), d(index.d), ns(index.n_stages) {}

    std::vector<double> z(const float* x) const {
        std::vector<double> out(d, 0.0);
        for (int r = 0; r < d; r++) {
            for (int c = 0; c < d; c++) {
                out[r] += double(index.rotation[size_t(r) * d + c]) *
                        (double(x[c]) - index.mean[c]);
            }
        }
        return out;
    }

    /// signs[t][j] in {-1, +1} and scales[t] of z.
    void encode(
            const std::vector<double>& zin,
            std::vector<std::vector<int>>& signs,
            std::vector<double>& scales) const {
        std::vector<double> e = zin;
        signs.assign(ns, std::vector<int>(d));
        scales.assign(ns, 0.0);
        for (int t = 0; t < ns; t++) {
            double l1 = 0;
            for (int j = 0; j < d; j++) {
                l1 += std::fabs(e[j]);
            }
            scales[t] =
                    index.per_vector_scales ? l1 / d : index.stage_scales[t];
            for (int j = 0; j < d; j++) {
                signs[t][j] = e[j] >= 0 ? 1 : -1;
                e[j] -= signs[t][j] * scales[t];
            }
        }
    }

    /// The reconstruction sum_t a_t b_t of an index code.
    std::vector<double> decode_code(const uint8_t* code) const {
        const size_t pb = index.plane_bytes();
        std::vector<double> zh(d, 0.0);
        for (int t = 0; t < ns; t++) {
            float a = index.stage_scales[t];
            if (index.per_vector_scales) {
                std::memcpy(&a, code + ns * pb + 8 + 4 * t, 4);
            }
            for (int j = 0; j < d; j++) {
                const int bit = (code[t * pb + j / 8] >> (j % 8)) & 1;
                zh[j] += bit ? a : -a;
            }
        }
        return zh;
    }

    /// |z|^2 / <z_hat, z>
    static double correction(
            const std::vector<double>& zin,
            const std::vector<double>& zh) {
        double z2 = 0, zhz = 0;
        for (size_t j = 0; j < zin.size(); j++) {
            z2 += zin[j] * zin[j];
            zhz += zh[j] * zin[j];
        }
        return z2 / zhz;
    }

    double offset(const float* x) const {
        double o = 0;
        for (int j = 0; j < d; j++) {
            const double r = double(x[j]) - index.mean[j];
            o += index.metric_type == faiss::METRIC_L2 ? r * r
                                                       : index.mean[j] * r;
        }
        return o;
    }

    /// The score of stored vector i (its code, its original x) for query
    /// q: against the reconstruction, with the query float (asymmetric) or
    /// reconstructed from its own code (symmetric), as plain float math.
    double score(
            const float* q,
            const uint8_t* code,
            const float* x,
            bool symmetric) const {
        const std::vector<double> y = z(q);
        std::vector<double> yq = y;
        double cq = 1;
        if (symmetric) {
            std::vector<std::vector<int>> signs;
            std::vector<double> scales;
            encode(y, signs, scales);
            std::fill(yq.begin(), yq.end(), 0.0);
            for (int t = 0; t < ns; t++) {
                for (int j = 0; j < d; j++) {
                    yq[j] += scales[t] * signs[t][j];
                }
            }
            cq = correction(y, yq);
        }
        const std::vector<double> zh = decode_code(code);
        const double cx = correction(z(x), zh);
        double ip = 0, y2 = 0, qm = 0;
        for (int j = 0; j < d; j++) {
            ip += yq[j] * zh[j];
            y2 += y[j] * y[j];
            qm += double(q[j]) * index.mean[j];
        }
        ip *= cq * cx;
        return index.metric_type == faiss::METRIC_L2 ? y2 + offset(x) - 2 * ip
                                                     : qm + offset(x) + ip;
    }
};

struct Case {
    int n_stages;
    faiss::MetricType metric;
    bool per_vector_scales;
};

class RecurrentCases : public ::testing::TestWithParam<Case> {};

// The encoder agrees with the scalar one bit for bit (but for coordinates
// within float rounding of a stage's threshold), and search returns the
// scalar scorer's top k with its values, for both estimators.
TEST_P(RecurrentCases, MatchesTheScalarReference) {
    const Case c = GetParam();
    const int d = 37; // not a multiple of 8: padding bits in every plane
    const size_t nb = 600, nq = 12, k = 10;
    IndexBQRecurrent index(d, c.n_stages, c.metric, c.per_vector_scales);
    index.train_iterations = 4;
    const std::vector<float> xb = anisotropic(nb, d, 1);
    const std::vector<float> xq = anisotropic(nq, d, 2);
    index.train(nb, xb.data());
    index.add(nb, xb.data());
    ASSERT_EQ(
            index.code_size,
            size_t(c.n_stages) * 5 + 8 +
                    (c.per_vector_scales ? 4 * c.n_stages : 0));
    const Reference ref(index);

    size_t bits = 0, differ = 0;
    for (size_t i = 0; i < nb; i++) {
        std::vector<std::vector<int>> signs;
        std::vector<double> scales;
        ref.encode(ref.z(xb.data() + i * d), signs, scales);
        const uint8_t* code = index.codes.data() + i * index.code_size;
        bool same_so_far = true;
        for (int t = 0; t < c.n_stages && same_so_far; t++) {
            for (int j = 0; j < d; j++) {
                const int bit = (code[t * 5 + j / 8] >> (j % 8)) & 1;
                bits++;
                if ((bit ? 1 : -1) != signs[t][j]) {
                    differ++;
                    same_so_far = false; // later stages follow another path
                }
            }
            if (same_so_far && c.per_vector_scales) {
                float a;
                std::memcpy(&a, code + c.n_stages * 5 + 8 + 4 * t, 4);
                EXPECT_NEAR(a, scales[t], 1e-4 * (1 + scales[t]));
            }
        }
        float f[2];
        std::memcpy(f, code + c.n_stages * 5, 8);
        const double want = ref.offset(xb.data() + i * d);
        EXPECT_NEAR(f[0], want, 1e-4 * (1 + std::fabs(want)));
        const double cx = Reference::correction(
                ref.z(xb.data() + i * d), ref.decode_code(code));
        EXPECT_NEAR(f[1], cx, 1e-4 * cx);
        if (c.n_stages == 1 && c.per_vector_scales) {
            // one least-squares stage: <z_hat, z> = |z_hat|^2 <= |z|^2
            EXPECT_GE(f[1], 1.0f - 1e-6f);
        }
        for (int t = 0; t < c.n_stages; t++) {
            EXPECT_EQ(code[t * 5 + 4] >> 5, 0) << "padding bits of stage " << t;
        }
    }
    EXPECT_LE(differ, bits / 1000) << differ << " of " << bits;

    for (bool symmetric : {false, true}) {
        SearchParametersBQ params;
        params.estimator =
                symmetric ? Estimator::symmetric : Estimator::asymmetric;
        std::vector<float> D(nq * k);
        std::vector<idx_t> I(nq * k);
        index.search(nq, xq.data(), k, D.data(), I.data(), &params);
        for (size_t q = 0; q < nq; q++) {
            std::vector<double> s(nb);
            for (size_t i = 0; i < nb; i++) {
                s[i] = ref.score(
                        xq.data() + q * d,
                        index.codes.data() + i * index.code_size,
                        xb.data() + i * d,
                        symmetric);
            }
            std::vector<double> sorted = s;
            if (c.metric == faiss::METRIC_L2) {
                std::sort(sorted.begin(), sorted.end());
            } else {
                std::sort(sorted.rbegin(), sorted.rend());
            }
            for (size_t r = 0; r < k; r++) {
                const idx_t id = I[q * k + r];
                ASSERT_GE(id, 0);
                const double tol = 1e-3 * (1 + std::fabs(sorted[r]));
                // the value is the reference's score of that id, and the
                // r-th best of all (ties or rounding may swap ids only)
                EXPECT_NEAR(D[q * k + r], s[id], tol)
                        << "symmetric=" << symmetric << " q=" << q;
                EXPECT_NEAR(D[q * k + r], sorted[r], tol)
                        << "symmetric=" << symmetric << " q=" << q;
            }
        }
    }
}

INSTANTIATE_TEST_SUITE_P(
        StagesMetricsScales,
        RecurrentCases,
        ::testing::Values(
                Case{1, faiss::METRIC_L2, true},
                Case{2, faiss::METRIC_L2, true},
                Case{3, faiss::METRIC_INNER_PRODUCT, true},
                Case{4, faiss::METRIC_L2, false},
                Case{2, faiss::METRIC_INNER_PRODUCT, false}));

// SDC's popcount formula is the inner product of the two reconstructions:
// a query that is itself a stored vector scores that vector exactly as
// |z_hat|^2 - ... i.e. the decoded codes' float dot product.
TEST(IndexBQRecurrent, SdcIsTheDotProductOfTheReconstructions) {
    const int d = 64;
    const size_t nb = 300;
    IndexBQRecurrent index(d, 3, faiss::METRIC_INNER_PRODUCT);
    index.train_iterations = 2;
    const std::vector<float> xb = anisotropic(nb, d, 3);
    index.train(nb, xb.data());
    index.add(nb, xb.data());
    // decode(q) . decode(x) through sa_decode (a different code path from
    // the popcounts), times both corrections, plus the exact terms
    std::vector<float> rec(nb * d);
    index.sa_decode(nb, index.codes.data(), rec.data());
    SearchParametersBQ params;
    params.estimator = Estimator::symmetric;
    std::vector<float> D(nb);
    std::vector<idx_t> I(nb);
    index.search(1, xb.data(), nb, D.data(), I.data(), &params);
    const Reference ref(index);
    double qm = 0;
    for (int j = 0; j < d; j++) {
        qm += double(xb[j]) * index.mean[j];
    }
    for (size_t r = 0; r < nb; r++) {
        const idx_t id = I[r];
        double ip = 0; // <x_hat - mean, q_hat - mean>: R is orthogonal
        for (int j = 0; j < d; j++) {
            ip += (double(rec[id * d + j]) - index.mean[j]) *
                    (double(rec[j]) - index.mean[j]);
        }
        float cq, cx;
        std::memcpy(&cq, index.codes.data() + 3 * 8 + 4, 4);
        std::memcpy(
                &cx, index.codes.data() + id * index.code_size + 3 * 8 + 4, 4);
        const double want = qm + ref.offset(xb.data() + id * d) + cq * cx * ip;
        EXPECT_NEAR(D[r], want, 1e-3 * (1 + std::fabs(want))) << id;
    }
}

// Training: the alternating fit lowers the reconstruction error from its
// starting map, each stage lowers it further, the map stays orthogonal,
// and per-vector scales fit better than per-stage ones.
TEST(IndexBQRecurrent, TrainingLowersTheErrorAndKeepsROrthogonal) {
    const int d = 32;
    const size_t n = 2000;
    const std::vector<float> x = anisotropic(n, d, 4);
    float previous = 1;
    for (int ns = 1; ns <= 4; ns++) {
        IndexBQRecurrent index(d, ns);
        index.train_iterations = 8;
        index.train(n, x.data());
        ASSERT_EQ(index.train_errors.size(), 9u);
        EXPECT_LT(index.train_errors.back(), index.train_errors.front())
                << "n_stages=" << ns;
        EXPECT_LT(index.train_errors.back(), previous) << "n_stages=" << ns;
        previous = index.train_errors.back();
        for (int a = 0; a < d; a++) {
            for (int b = 0; b < d; b++) {
                double dot = 0;
                for (int j = 0; j < d; j++) {
                    dot += double(index.rotation[a * d + j]) *
                            index.rotation[b * d + j];
                }
                EXPECT_NEAR(dot, a == b ? 1.0 : 0.0, 1e-4);
            }
        }
        IndexBQRecurrent global(d, ns, faiss::METRIC_L2, false);
        global.train_iterations = 8;
        global.train(n, x.data());
        EXPECT_LT(index.train_errors.back(), global.train_errors.back())
                << "n_stages=" << ns;
    }
}

// More stages find more of the true neighbours (recall@10 of the
// asymmetric and the symmetric estimator), and SDC with more stages beats
// one stage, i.e. plain Hamming on sign bits.
TEST(IndexBQRecurrent, MoreStagesMoreRecall) {
    const int d = 64;
    const size_t nb = 4000, nq = 100, k = 10;
    const std::vector<float> xb = anisotropic(nb, d, 5);
    const std::vector<float> xq = anisotropic(nq, d, 6);
    const std::vector<idx_t> gt =
            test::exact_knn(d, xb, xq, k, faiss::METRIC_L2);
    double prev_asym = 0, prev_sym = 0;
    for (int ns = 1; ns <= 4; ns++) {
        IndexBQRecurrent index(d, ns);
        index.train(nb, xb.data());
        index.add(nb, xb.data());
        std::vector<float> D(nq * k);
        std::vector<idx_t> I(nq * k);
        index.search(nq, xq.data(), k, D.data(), I.data());
        const double asym = test::recall_at(nq, k, I.data(), gt.data(), k);
        SearchParametersBQ sym;
        sym.estimator = Estimator::symmetric;
        index.search(nq, xq.data(), k, D.data(), I.data(), &sym);
        const double symr = test::recall_at(nq, k, I.data(), gt.data(), k);
        EXPECT_GT(asym, prev_asym) << "n_stages=" << ns;
        EXPECT_GT(symr, prev_sym) << "n_stages=" << ns;
        EXPECT_GE(asym + 0.02, symr) << "n_stages=" << ns;
        prev_asym = asym;
        prev_sym = symr;
    }
    EXPECT_GT(prev_asym, 0.6);
}

// An IDSelector restricts the results to the selected ids: the same as
// searching an index of the selected vectors only, with the original ids;
// IndexIDMap around it and k > ntotal behave as FAISS's flat indexes.
TEST(IndexBQRecurrent, SelectorsIdMapAndMissingResults) {
    const int d = 24;
    const size_t nb = 500, nq = 5, k = 7;
    const std::vector<float> xb = anisotropic(nb, d, 7);
    const std::vector<float> xq = anisotropic(nq, d, 8);
    IndexBQRecurrent index(d, 2);
    index.train(nb, xb.data());
    index.add(nb, xb.data());
    faiss::IDSelectorRange range(100, 200);
    for (bool symmetric : {false, true}) {
        SearchParametersBQ p;
        p.sel = &range;
        p.estimator = symmetric ? Estimator::symmetric : Estimator::asymmetric;
        std::vector<float> D(nq * k), Dsub(nq * k);
        std::vector<idx_t> I(nq * k), Isub(nq * k);
        index.search(nq, xq.data(), k, D.data(), I.data(), &p);
        IndexBQRecurrent sub(d, 2);
        sub.mean = index.mean;
        sub.rotation = index.rotation;
        sub.stage_scales = index.stage_scales;
        sub.is_trained = true;
        sub.add(100, xb.data() + 100 * d);
        SearchParametersBQ ps;
        ps.estimator = p.estimator;
        sub.search(nq, xq.data(), k, Dsub.data(), Isub.data(), &ps);
        for (size_t e = 0; e < nq * k; e++) {
            EXPECT_EQ(I[e], Isub[e] + 100);
            EXPECT_FLOAT_EQ(D[e], Dsub[e]);
        }
    }
    // k > ntotal: -1 labels at the end
    IndexBQRecurrent small(d, 1);
    small.train(nb, xb.data());
    small.add(3, xb.data());
    std::vector<float> D(k);
    std::vector<idx_t> I(k);
    small.search(1, xq.data(), k, D.data(), I.data());
    for (size_t r = 0; r < k; r++) {
        EXPECT_EQ(I[r] >= 0, r < 3) << r;
    }
    // IDMap
    std::unique_ptr<faiss::Index> map(
            faiss_bq::index_factory(d, "IDMap,BQR2_sym"));
    map->train(nb, xb.data());
    std::vector<idx_t> ids(nb);
    std::iota(ids.begin(), ids.end(), 1000);
    map->add_with_ids(nb, xb.data(), ids.data());
    std::vector<float> D2(nq * k);
    std::vector<idx_t> I2(nq * k);
    map->search(nq, xq.data(), k, D2.data(), I2.data());
    for (idx_t id : I2) {
        EXPECT_GE(id, 1000);
    }
}

TEST(IndexBQRecurrent, FactoryStringsRoundTrip) {
    const int d = 16;
    for (const char* s :
         {"BQR1",
          "BQR2",
          "BQR3_sym",
          "BQR4_axis_gscale",
          "BQR2_gscale_sym",
          "IDMap,BQR2",
          "PCA8,BQR2_sym",
          "BQR2,RFlat"}) {
        std::unique_ptr<faiss::Index> index(faiss_bq::index_factory(d, s));
        EXPECT_EQ(faiss_bq::index_factory_string(index.get()), s);
    }
    std::unique_ptr<faiss::Index> index(
            faiss_bq::index_factory(d, "BQR3_axis_gscale_sym"));
    auto* r = dynamic_cast<IndexBQRecurrent*>(index.get());
    ASSERT_TRUE(r);
    EXPECT_EQ(r->n_stages, 3);
    EXPECT_FALSE(r->random_init);
    EXPECT_FALSE(r->per_vector_scales);
    EXPECT_EQ(r->estimator, Estimator::symmetric);
    EXPECT_EQ(r->code_size, 3u * 2 + 8);
    auto bad = [](const char* s, const char* needle) {
        test::expect_throw_naming(
                [s] { delete faiss_bq::index_factory(16, s); }, needle);
    };
    bad("BQR0", "stage count 0 is outside 1..4");
    bad("BQR5", "stage count 5 is outside 1..4");
    bad("BQR", "BQR takes a number of stages");
    bad("BQR2_fs", "unknown option 'fs'");
    bad("BQR2_sym_sym", "option 'sym' at position 9 is repeated");
    bad("IVF16,BQR2", "no IVF over them");
}

TEST(IndexBQRecurrent, FilesRoundTripAndBadFilesThrow) {
    const int d = 24;
    const size_t nb = 200, nq = 4, k = 5;
    const std::vector<float> xb = anisotropic(nb, d, 9);
    const std::vector<float> xq = anisotropic(nq, d, 10);
    for (const char* s : {"BQR2_sym", "BQR3_gscale", "IDMap2,BQR1"}) {
        std::unique_ptr<faiss::Index> index(faiss_bq::index_factory(d, s));
        index->train(nb, xb.data());
        std::vector<idx_t> ids(nb);
        std::iota(ids.begin(), ids.end(), 7);
        if (std::string(s).rfind("IDMap", 0) == 0) {
            index->add_with_ids(nb, xb.data(), ids.data());
        } else {
            index->add(nb, xb.data());
        }
        faiss::VectorIOWriter w;
        faiss_bq::write_index(index.get(), &w);
        faiss::VectorIOReader r;
        r.data = w.data;
        std::unique_ptr<faiss::Index> back(faiss_bq::read_index(&r));
        EXPECT_EQ(faiss_bq::index_factory_string(back.get()), s);
        std::vector<float> D1(nq * k), D2(nq * k);
        std::vector<idx_t> I1(nq * k), I2(nq * k);
        index->search(nq, xq.data(), k, D1.data(), I1.data());
        back->search(nq, xq.data(), k, D2.data(), I2.data());
        EXPECT_EQ(I1, I2) << s;
        EXPECT_EQ(D1, D2) << s;
        // the same bytes again, and every truncation throws
        faiss::VectorIOWriter w2;
        faiss_bq::write_index(back.get(), &w2);
        EXPECT_EQ(w.data, w2.data) << s;
        for (size_t cut = 0; cut < w.data.size();
             cut += 1 + w.data.size() / 97) {
            faiss::VectorIOReader t;
            t.data.assign(w.data.begin(), w.data.begin() + cut);
            EXPECT_THROW(
                    std::unique_ptr<faiss::Index>(faiss_bq::read_index(&t)),
                    faiss::FaissException)
                    << s << " cut at " << cut;
        }
    }
    // an untrained index round-trips; a flipped byte fails the checksum;
    // a future version is named
    IndexBQRecurrent untrained(d, 4);
    faiss::VectorIOWriter w;
    faiss_bq::write_index(&untrained, &w);
    faiss::VectorIOReader r;
    r.data = w.data;
    std::unique_ptr<faiss::Index> back(faiss_bq::read_index(&r));
    EXPECT_FALSE(back->is_trained);
    EXPECT_EQ(dynamic_cast<IndexBQRecurrent&>(*back).n_stages, 4);
    faiss::VectorIOReader flipped;
    flipped.data = w.data;
    flipped.data[20] ^= 1;
    test::expect_throw_naming(
            [&] { delete faiss_bq::read_index(&flipped); }, "checksum");
    faiss::VectorIOReader future;
    future.data = w.data;
    future.data[4] = 9; // the version after the fourcc
    test::expect_throw_naming(
            [&] { delete faiss_bq::read_index(&future); },
            "IndexBQRecurrent format version 9");
}

TEST(IndexBQRecurrent, BadInputNamesTheValues) {
    using test::expect_throw_naming;
    const int d = 16;
    const std::vector<float> x = anisotropic(50, d, 11);
    for (int ns : {0, 5, -1}) {
        expect_throw_naming(
                [ns] { IndexBQRecurrent index(16, ns); },
                "n_stages=" + std::to_string(ns) + " must be in 1..4");
    }
    expect_throw_naming([] { IndexBQRecurrent index(0, 2); }, "d=0");
    expect_throw_naming(
            [] { IndexBQRecurrent index(16, 2, faiss::METRIC_L1); },
            "metric=2");
    IndexBQRecurrent index(d, 2);
    std::vector<float> D(10);
    std::vector<idx_t> I(10);
    expect_throw_naming(
            [&] { index.add(50, x.data()); }, "add: the index is not trained");
    expect_throw_naming(
            [&] { index.search(1, x.data(), 5, D.data(), I.data()); },
            "not trained");
    expect_throw_naming(
            [&] { index.train(1, x.data()); }, "n=1 training vectors");
    std::vector<float> nan = x;
    nan[3 * d + 2] = std::numeric_limits<float>::quiet_NaN();
    expect_throw_naming(
            [&] { index.train(50, nan.data()); }, "row 3, column 2");
    index.n_stages = 7; // a field set out of range before training
    expect_throw_naming(
            [&] { index.train(50, x.data()); }, "n_stages=7 must be in 1..4");
    index.n_stages = 2;
    index.train(50, x.data());
    index.add(50, x.data());
    expect_throw_naming(
            [&] { index.search(1, x.data(), 0, D.data(), I.data()); }, "k=0");
    expect_throw_naming(
            [&] { index.search(-1, x.data(), 5, D.data(), I.data()); }, "n=-1");
    SearchParametersBQ q8;
    q8.query_bits = 8;
    expect_throw_naming(
            [&] { index.search(1, x.data(), 5, D.data(), I.data(), &q8); },
            "query_bits=8");
    expect_throw_naming([&] { index.add(1, nan.data() + 3 * d); }, "column 2");
    // merging needs the same model; d mismatch is named
    IndexBQRecurrent other(d + 8, 2);
    expect_throw_naming([&] { index.merge_from(other); }, "d=16/24");
}

} // namespace
} // namespace faiss_bq
