// IndexBlockQuant: codes and scores against a scalar encoder and scorer in
// double written here from the model (IndexBlockQuant.h); the spherical
// code and the oblivious norm levels against their definitions; modes,
// selectors, factory strings, files and bad input; recall on real data.
#include <faiss_bq/IndexBQFastScan.h>
#include <faiss_bq/IndexBlockQuant.h>
#include <faiss_bq/index_factory.h>
#include <faiss_bq/index_io.h>

#include "test_util.h"

#include <faiss/impl/FaissException.h>
#include <faiss/impl/IDSelector.h>
#include <faiss/impl/io.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
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

/// The scalar reference: the model of IndexBlockQuant.h in double, from
/// the index's center, rotation, codebook and norm levels.
struct Reference {
    const IndexBlockQuant& index;
    int d, D, k, m;

    explicit Reference(const IndexBlockQuant& index)
            : index(index),
              d(index.d),
              D(index.padded_d),
              k(index.block_size),
              m(index.direction_bits) {}

    std::vector<double> y(const float* x) const {
        std::vector<double> out(D, 0.0);
        for (int r = 0; r < D; r++) {
            for (int c = 0; c < d; c++) {
                out[r] += double(index.rotation[size_t(r) * d + c]) *
                        (double(x[c]) - index.center[c]);
            }
        }
        return out;
    }

    double ip_code(int j, const double* v) const {
        double s = 0;
        for (int t = 0; t < k; t++) {
            s += double(index.codebook[size_t(j) * k + t]) * v[t];
        }
        return s;
    }

    /// Checks the code bytes of x: each the nearest codeword and nearest
    /// level (a near-tie may go either way in float), and its factors.
    void check_code(const float* x, const uint8_t* code) const {
        const std::vector<double> yv = y(x);
        double n2 = 0;
        for (double v : yv) {
            n2 += v * v;
        }
        const double norm = std::sqrt(n2);
        double yhat_y = 0;
        for (int b = 0; b < D / k; b++) {
            const double* yb = yv.data() + b * k;
            const int j = code[b] & ((1 << m) - 1), l = code[b] >> m;
            double best = -1e300, rb2 = 0;
            for (int c = 0; c < (1 << m); c++) {
                best = std::max(best, ip_code(c, yb));
            }
            for (int t = 0; t < k; t++) {
                rb2 += yb[t] * yb[t];
            }
            const double rb = std::sqrt(rb2);
            EXPECT_GE(ip_code(j, yb), best - 1e-5 * (rb + 1e-30))
                    << "block " << b << ": codeword " << j << " not nearest";
            const double rho = rb / norm;
            double best_gap = 1e300;
            for (float level : index.norm_levels) {
                best_gap = std::min(best_gap, std::fabs(level - rho));
            }
            EXPECT_LE(std::fabs(index.norm_levels[l] - rho), best_gap + 1e-6)
                    << "block " << b << ": level " << l << " not nearest";
            yhat_y += index.norm_levels[l] * ip_code(j, yb);
        }
        float f[2];
        std::memcpy(f, code + D / k, sizeof(f));
        double offset = 0;
        for (int c = 0; c < d; c++) {
            const double r = double(x[c]) - index.center[c];
            offset += index.metric_type == faiss::METRIC_L2
                    ? r * r
                    : index.center[c] * r;
        }
        const double scale = index.unbiased ? n2 / yhat_y : norm;
        EXPECT_NEAR(f[0], offset, 1e-4 * (std::fabs(offset) + 1));
        EXPECT_NEAR(f[1], scale, 1e-4 * scale);
    }

    /// The score of a stored code for query q (as search() returns it).
    double score(const float* q, const uint8_t* code) const {
        const std::vector<double> yq = y(q);
        float f[2];
        std::memcpy(f, code + D / k, sizeof(f));
        double s = 0;
        for (int b = 0; b < D / k; b++) {
            const int j = code[b] & ((1 << m) - 1), l = code[b] >> m;
            s += index.norm_levels[l] * ip_code(j, yq.data() + b * k);
        }
        double qc = 0;
        if (index.metric_type == faiss::METRIC_L2) {
            for (double v : yq) {
                qc += v * v;
            }
            return qc + f[0] - 2 * double(f[1]) * s;
        }
        for (int c = 0; c < d; c++) {
            qc += double(q[c]) * index.center[c];
        }
        return qc + f[0] + double(f[1]) * s;
    }
};

TEST(IndexBlockQuant, CodesAndScoresMatchTheScalarReference) {
    struct Case {
        int d, k, m;
        bool oblivious;
        faiss::MetricType metric;
    };
    for (const Case& c :
         {Case{32, 8, 6, true, faiss::METRIC_L2},
          Case{30, 4, 5, false, faiss::METRIC_INNER_PRODUCT},
          Case{20, 8, 8, false, faiss::METRIC_L2},
          Case{48, 16, 4, true, faiss::METRIC_INNER_PRODUCT},
          Case{12, 2, 3, false, faiss::METRIC_L2}}) {
        SCOPED_TRACE(
                "d=" + std::to_string(c.d) + " k=" + std::to_string(c.k) +
                " m=" + std::to_string(c.m));
        const size_t nb = 300, nq = 4;
        const std::vector<float> xb = anisotropic(nb, c.d, 1);
        const std::vector<float> xq = anisotropic(nq, c.d, 2);
        IndexBlockQuant index(c.d, c.k, c.m, c.metric, c.oblivious);
        index.train(nb, xb.data());
        index.add(nb, xb.data());
        ASSERT_EQ(index.code_size, size_t(index.padded_d / c.k) + 8);
        const Reference ref(index);
        for (size_t i = 0; i < nb; i++) {
            ref.check_code(
                    xb.data() + i * c.d,
                    index.codes.data() + i * index.code_size);
        }
        std::vector<float> D(nq * nb);
        std::vector<idx_t> I(nq * nb);
        index.search(nq, xq.data(), idx_t(nb), D.data(), I.data());
        for (size_t q = 0; q < nq; q++) {
            for (size_t r = 0; r < nb; r++) {
                const idx_t id = I[q * nb + r];
                ASSERT_GE(id, 0);
                const double want = ref.score(
                        xq.data() + q * c.d,
                        index.codes.data() + size_t(id) * index.code_size);
                EXPECT_NEAR(D[q * nb + r], want, 1e-4 * (std::fabs(want) + 10));
                if (r > 0) {
                    EXPECT_TRUE(
                            c.metric == faiss::METRIC_L2
                                    ? D[q * nb + r - 1] <= D[q * nb + r]
                                    : D[q * nb + r - 1] >= D[q * nb + r]);
                }
            }
        }
    }
}

// The codebook: unit rows, distinct, and each point of a fresh sample on
// the sphere assigned to its truly nearest codeword; more direction bits,
// smaller angles.
TEST(IndexBlockQuant, SphericalCodeIsNearestAndImprovesWithBits) {
    for (int k : {2, 4, 8, 16}) {
        double previous = 2;
        for (int m = 1; m <= 8; m++) {
            const std::vector<float> code =
                    IndexBlockQuant::spherical_code(k, m, 1234);
            ASSERT_EQ(code.size(), size_t(k) << m);
            for (int j = 0; j < (1 << m); j++) {
                EXPECT_NEAR(test::dot(&code[j * k], &code[j * k], k), 1, 1e-5);
            }
            std::vector<float> u = test::gaussian(2000, size_t(k), 77);
            double distortion = 0;
            for (size_t i = 0; i < 2000; i++) {
                const float* ui = &u[i * k];
                const double norm = std::sqrt(test::dot(ui, ui, k));
                double best = -2;
                for (int j = 0; j < (1 << m); j++) {
                    best = std::max(
                            best, test::dot(&code[j * k], ui, k) / norm);
                }
                distortion += 1 - best;
            }
            distortion /= 2000;
            EXPECT_LT(distortion, previous) << "k=" << k << " m=" << m;
            previous = distortion;
        }
    }
    // the same arguments, the same bytes; another seed, another code
    EXPECT_EQ(
            IndexBlockQuant::spherical_code(8, 6, 5),
            IndexBlockQuant::spherical_code(8, 6, 5));
    EXPECT_NE(
            IndexBlockQuant::spherical_code(8, 6, 5),
            IndexBlockQuant::spherical_code(8, 6, 6));
}

// The oblivious norm levels model the block norms of any vector after a
// random rotation: they match the levels trained on isotropic data.
TEST(IndexBlockQuant, ObliviousNormLevelsMatchTrainedOnIsotropicData) {
    for (int m : {4, 6}) {
        for (int d : {64, 256}) {
            const std::vector<float> x = test::gaussian(16000, size_t(d), 3);
            IndexBlockQuant trained(d, 8, m, faiss::METRIC_L2, false);
            trained.train(16000, x.data());
            IndexBlockQuant obl(d, 8, m);
            ASSERT_EQ(trained.norm_levels.size(), obl.norm_levels.size());
            for (size_t l = 0; l < obl.norm_levels.size(); l++) {
                // the extreme levels are tail means: more sampling noise
                const bool tail = l == 0 || l + 1 == obl.norm_levels.size();
                EXPECT_NEAR(
                        trained.norm_levels[l],
                        obl.norm_levels[l],
                        (tail ? 0.03 : 0.015) * obl.norm_levels[l])
                        << "d=" << d << " m=" << m << " level " << l;
            }
        }
    }
}

// A streaming writer: the oblivious index is trained at construction,
// train() with any n changes nothing, and two writers' codes agree.
TEST(IndexBlockQuant, ObliviousModeNeedsNoTraining) {
    const int d = 40;
    const std::vector<float> x = anisotropic(200, d, 4);
    IndexBlockQuant a(d, 8, 6, faiss::METRIC_INNER_PRODUCT);
    EXPECT_TRUE(a.is_trained);
    a.add(200, x.data());
    IndexBlockQuant b(d, 8, 6, faiss::METRIC_INNER_PRODUCT);
    b.train(0, nullptr);
    b.train(200, x.data());
    for (size_t i = 0; i < 200; i += 50) {
        b.add(50, x.data() + i * d);
    }
    EXPECT_EQ(a.codes, b.codes);
    EXPECT_EQ(a.center, std::vector<float>(d, 0.f));
    IndexBlockQuant c(d, 8, 6, faiss::METRIC_INNER_PRODUCT, true, 99);
    c.add(200, x.data());
    EXPECT_NE(a.codes, c.codes);
    b.merge_from(a);
    EXPECT_EQ(b.ntotal, 400);
    EXPECT_THROW(b.merge_from(c), faiss::FaissException);
}

// The unbiasing scale: on isotropic data the estimate of <q, x> regressed
// on the true value has slope ~1 with it and below 1 without (the
// quantized directions shrink inner products).
TEST(IndexBlockQuant, UnbiasingScaleRemovesTheShrinkage) {
    const int d = 128;
    const size_t nb = 2000, nq = 20;
    const std::vector<float> xb = test::gaussian(nb, size_t(d), 5);
    const std::vector<float> xq = test::gaussian(nq, size_t(d), 6);
    auto slope = [&](bool unbiased) {
        IndexBlockQuant index(d, 8, 5, faiss::METRIC_INNER_PRODUCT);
        index.unbiased = unbiased;
        index.add(nb, xb.data());
        std::vector<float> D(nq * nb);
        std::vector<idx_t> I(nq * nb);
        index.search(nq, xq.data(), idx_t(nb), D.data(), I.data());
        double sxy = 0, sxx = 0;
        for (size_t e = 0; e < nq * nb; e++) {
            const double t = test::dot(
                    &xq[(e / nb) * d], &xb[size_t(I[e]) * d], size_t(d));
            sxy += t * D[e];
            sxx += t * t;
        }
        return sxy / sxx;
    };
    const double with = slope(true), without = slope(false);
    EXPECT_NEAR(with, 1.0, 0.03);
    EXPECT_LT(without, 0.97);
}

TEST(IndexBlockQuant, DecodeIsTheVectorTheScoresUse) {
    const int d = 24;
    const std::vector<float> x = anisotropic(50, d, 8);
    const std::vector<float> q = anisotropic(1, d, 9);
    IndexBlockQuant index(d, 4, 6, faiss::METRIC_INNER_PRODUCT);
    index.add(50, x.data());
    std::vector<float> xh(50 * d);
    index.sa_decode(50, index.codes.data(), xh.data());
    std::vector<float> D(50);
    std::vector<idx_t> I(50);
    index.search(1, q.data(), 50, D.data(), I.data());
    for (size_t r = 0; r < 50; r++) {
        // center 0, offset 0: the score is <q, x_hat>
        EXPECT_NEAR(
                D[r],
                test::dot(q.data(), &xh[size_t(I[r]) * d], size_t(d)),
                1e-3);
    }
}

TEST(IndexBlockQuant, SelectorsAndMissingResults) {
    const int d = 24;
    const size_t nb = 500, nq = 5, k = 7;
    const std::vector<float> xb = anisotropic(nb, d, 7);
    const std::vector<float> xq = anisotropic(nq, d, 8);
    IndexBlockQuant index(d, 8, 6);
    index.add(nb, xb.data());
    faiss::IDSelectorRange range(100, 200);
    faiss::SearchParameters p;
    p.sel = &range;
    std::vector<float> D(nq * k), Dsub(nq * k);
    std::vector<idx_t> I(nq * k), Isub(nq * k);
    index.search(nq, xq.data(), k, D.data(), I.data(), &p);
    IndexBlockQuant sub(d, 8, 6);
    sub.add(100, xb.data() + 100 * d);
    sub.search(nq, xq.data(), k, Dsub.data(), Isub.data());
    for (size_t e = 0; e < nq * k; e++) {
        EXPECT_EQ(I[e], Isub[e] + 100);
        EXPECT_FLOAT_EQ(D[e], Dsub[e]);
    }
    IndexBlockQuant small(d, 8, 6);
    small.add(3, xb.data());
    std::vector<float> D1(k);
    std::vector<idx_t> I1(k);
    small.search(1, xq.data(), k, D1.data(), I1.data());
    for (size_t r = 0; r < k; r++) {
        EXPECT_EQ(I1[r] >= 0, r < 3) << r;
    }
}

TEST(IndexBlockQuant, FactoryStringsRoundTrip) {
    const int d = 32;
    for (const char* s :
         {"BKQ8x6",
          "BKQ8x6_obl",
          "BKQ4x4_nocorr",
          "BKQ16x8_obl_nocorr",
          "IDMap,BKQ8x5_obl",
          "PCA16,BKQ8x6",
          "BKQ2x1,RFlat"}) {
        std::unique_ptr<faiss::Index> index(faiss_bq::index_factory(d, s));
        EXPECT_EQ(faiss_bq::index_factory_string(index.get()), s);
    }
    std::unique_ptr<faiss::Index> index(
            faiss_bq::index_factory(d, "BKQ4x5_nocorr_obl"));
    auto* b = dynamic_cast<IndexBlockQuant*>(index.get());
    ASSERT_TRUE(b);
    EXPECT_EQ(b->block_size, 4);
    EXPECT_EQ(b->direction_bits, 5);
    EXPECT_TRUE(b->oblivious);
    EXPECT_FALSE(b->unbiased);
    EXPECT_TRUE(b->is_trained);
    EXPECT_EQ(b->code_size, 8u + 8);
    auto bad = [](int dim, const char* s, const char* needle) {
        test::expect_throw_naming(
                [dim, s] { delete faiss_bq::index_factory(dim, s); }, needle);
    };
    bad(32, "BKQ1x4", "block size 1 is outside 2..32");
    bad(32, "BKQ64x4", "block size 64 is outside 2..32");
    bad(32, "BKQ8x0", "direction bits 0 are outside 1..8");
    bad(32, "BKQ8x9", "direction bits 9 are outside 1..8");
    bad(32, "BKQ8", "BKQ takes a block size and direction bits");
    bad(32, "BKQ8x6_fs", "unknown option 'fs'");
    bad(32, "BKQ8x6_obl_obl", "option 'obl' at position 11 is repeated");
    bad(32, "IVF16,BKQ8x6", "no IVF over them");
    bad(100,
        "BKQ16x6",
        "block_size=16 does not divide the padded dimension 104 (d=100");
}

TEST(IndexBlockQuant, FilesRoundTripAndBadFilesThrow) {
    const int d = 20;
    const size_t nb = 200, nq = 4, k = 5;
    const std::vector<float> xb = anisotropic(nb, d, 9);
    const std::vector<float> xq = anisotropic(nq, d, 10);
    for (const char* s : {"BKQ8x6", "BKQ4x3_obl_nocorr", "IDMap2,BKQ8x6_obl"}) {
        std::unique_ptr<faiss::Index> index(
                faiss_bq::index_factory(d, s, faiss::METRIC_INNER_PRODUCT));
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
        EXPECT_EQ(
                std::memcmp(w.data.data(), s[0] == 'I' ? "IxM2" : "BQbk", 4),
                0);
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
    // an untrained (trained-mode) index round-trips; a flipped byte fails
    // the checksum; a future version is named
    IndexBlockQuant untrained(d, 4, 7, faiss::METRIC_L2, false);
    faiss::VectorIOWriter w;
    faiss_bq::write_index(&untrained, &w);
    faiss::VectorIOReader r;
    r.data = w.data;
    std::unique_ptr<faiss::Index> back(faiss_bq::read_index(&r));
    EXPECT_FALSE(back->is_trained);
    EXPECT_EQ(dynamic_cast<IndexBlockQuant&>(*back).direction_bits, 7);
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
            "IndexBlockQuant format version 9");
}

TEST(IndexBlockQuant, BadInputNamesTheValues) {
    using test::expect_throw_naming;
    expect_throw_naming(
            [] { IndexBlockQuant index(100, 16, 6); },
            "block_size=16 does not divide the padded dimension 104 (d=100 "
            "rounded up to a multiple of 8)");
    expect_throw_naming(
            [] { IndexBlockQuant index(24, 5, 6); },
            "block_size=5 does not divide the padded dimension 24");
    for (int m : {0, 9, -1}) {
        expect_throw_naming(
                [m] { IndexBlockQuant index(32, 8, m); },
                "direction_bits=" + std::to_string(m) + " must be in 1..8");
    }
    expect_throw_naming(
            [] { IndexBlockQuant index(32, 1, 1); },
            "block_size=1 must be in 2..32");
    expect_throw_naming([] { IndexBlockQuant index(0, 8, 6); }, "d=0");
    expect_throw_naming(
            [] { IndexBlockQuant index(32, 8, 6, faiss::METRIC_L1); },
            "metric=2");
    const int d = 16;
    const std::vector<float> x = anisotropic(50, d, 11);
    IndexBlockQuant index(d, 8, 6, faiss::METRIC_L2, false);
    std::vector<float> D(10);
    std::vector<idx_t> I(10);
    expect_throw_naming(
            [&] { index.add(50, x.data()); },
            "IndexBlockQuant::add: the index is not trained");
    expect_throw_naming(
            [&] { index.search(1, x.data(), 5, D.data(), I.data()); },
            "IndexBlockQuant::search: the index is not trained");
    expect_throw_naming(
            [&] { index.train(1, x.data()); }, "n=1 training vectors");
    std::vector<float> nan = x;
    nan[3 * d + 2] = std::numeric_limits<float>::quiet_NaN();
    expect_throw_naming(
            [&] { index.train(50, nan.data()); }, "row 3, column 2");
    index.train(50, x.data());
    index.add(50, x.data());
    expect_throw_naming(
            [&] { index.search(1, x.data(), 0, D.data(), I.data()); }, "k=0");
    expect_throw_naming([&] { index.add(1, nan.data() + 3 * d); }, "column 2");
    IndexBlockQuant other(d + 8, 8, 6);
    expect_throw_naming([&] { index.merge_from(other); }, "d=16/24");
}

// Recall on real embeddings: BlockQuant at one byte per 8 coordinates
// against the joint nibbles of fast scan at the same budget of code bytes
// (the bench has the full tables, docs/blockquant.md).
TEST(IndexBlockQuant, RealDataMiniLM) {
    FAISS_BQ_REQUIRE_DATA("minilm-sap", data);
    const idx_t k = 10;
    auto recall = [&](faiss::Index& index) {
        index.train(idx_t(data.nb), data.base.data());
        index.add(idx_t(data.nb), data.base.data());
        std::vector<float> D(data.nq * k);
        std::vector<idx_t> I(data.nq * k);
        index.search(
                idx_t(data.nq), data.queries.data(), k, D.data(), I.data());
        return test::recall_at(
                data.nq, size_t(k), I.data(), data.gt.data(), data.gt_k);
    };
    IndexBlockQuant obl(int(data.d), 8, 6, faiss::METRIC_INNER_PRODUCT);
    IndexBlockQuant trained(
            int(data.d), 8, 6, faiss::METRIC_INNER_PRODUCT, false);
    std::unique_ptr<faiss::Index> nibbles(faiss_bq::index_factory(
            int(data.d), "BQ48B_fs", faiss::METRIC_INNER_PRODUCT));
    const double r_obl = recall(obl), r_trained = recall(trained);
    const double r_nib = recall(*nibbles);
    std::printf(
            "minilm-sap 10-recall@10: BKQ8x6_obl %.3f, BKQ8x6 %.3f (%zu B); "
            "BQ48B_fs %.3f (%zu B)\n",
            r_obl,
            r_trained,
            obl.sa_code_size(),
            r_nib,
            nibbles->sa_code_size());
    EXPECT_GE(r_obl, 0.6);
    EXPECT_GE(r_trained, 0.6);
}

} // namespace
} // namespace faiss_bq
