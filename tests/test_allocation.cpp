// Bit allocation (issue 8): fit_allocated_plan, the grouped layout, the
// estimators on it, the trainer at a byte budget, IO and factory forms.
#include <faiss_bq/IndexBQ.h>
#include <faiss_bq/codes.h>
#include <faiss_bq/estimators.h>
#include <faiss_bq/index_factory.h>
#include <faiss_bq/index_io.h>
#include <faiss_bq/plan.h>
#include <faiss_bq/trainer.h>

#include "test_util.h"

#include <faiss/impl/FaissException.h>
#include <faiss/impl/io.h>

#include <gtest/gtest.h>

#include <cfloat>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <random>

namespace faiss_bq {
namespace {

using test::dot;

/// Rows z A with z ~ N(0, I_r) and a seeded Gaussian A (r x d): rank r.
std::vector<float> low_rank(size_t n, size_t d, size_t r, int seed) {
    const std::vector<float> z = test::gaussian(n, r, seed);
    const std::vector<float> a = test::gaussian(r, d, seed + 1);
    std::vector<float> x(n * d, 0.f);
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < r; k++) {
            for (size_t j = 0; j < d; j++) {
                x[i * d + j] += z[i * r + k] * a[k * d + j];
            }
        }
    }
    return x;
}

/// Sigmas 2^(-j / 6): a spectrum spanning 4 bits of log2 sigma over 24
/// coordinates, repeated.
std::vector<float> decaying_sigma(size_t d) {
    std::vector<float> s(d);
    for (size_t j = 0; j < d; j++) {
        s[j] = std::pow(2.f, -float(j % 24) / 6);
    }
    return s;
}

// Reverse water-filling (Cover & Thomas 10.3.3) gives a Gaussian component of
// variance s^2 the rate max(0, log2(s^2 / theta) / 2), theta set by the total
// rate; here clamped to [0, 4] like the plan. The greedy allocation differs
// by (a) integer bits (rounding, up to 1/2 bit), and (b) the gap between
// Lloyd-Max quantizers and the Shannon bound, which changes slowly with the
// bit count (0.27 bit at 1 bit, ~0.4 at 4 bits), so it shifts every
// component by nearly the same amount and only its variation (< 1/2 bit)
// moves an allocation. Together: within one bit per component.
TEST(Allocation, MatchesReverseWaterFilling) {
    const size_t n = 20000, d = 48;
    const std::vector<float> sigma = decaying_sigma(d);
    const std::vector<float> x =
            test::gaussian(n, d, 5, sigma, std::vector<float>(d, 0.f));
    for (size_t budget : {6, 12, 18}) {
        const BinarizationPlan p = fit_allocated_plan(
                n, d, x.data(), Transform::identity, budget, 1);
        ASSERT_LE(grouped_plane_bytes(p.bits_histogram()), budget);
        int total = 0;
        for (uint8_t b : p.bits) {
            total += b;
        }
        // Solve for theta: the clamped rates sum to the bits spent.
        auto rate = [&](double theta, size_t j) {
            const double r =
                    0.5 * std::log2(double(sigma[j]) * sigma[j] / theta);
            return std::min(4.0, std::max(0.0, r));
        };
        double lo = 1e-12, hi = 10;
        for (int it = 0; it < 200; it++) {
            const double mid = std::sqrt(lo * hi);
            double sum = 0;
            for (size_t j = 0; j < d; j++) {
                sum += rate(mid, j);
            }
            (sum > total ? lo : hi) = mid;
        }
        for (size_t j = 0; j < d; j++) {
            EXPECT_LE(std::abs(p.bits[j] - rate(lo, j)), 1.0)
                    << "budget " << budget << " component " << j << " sigma "
                    << sigma[j] << ": greedy " << int(p.bits[j])
                    << " water-filling " << rate(lo, j);
        }
        // The byte layout wastes at most a byte's padding per group.
        EXPECT_GT(total, int(8 * budget) - 4 * 8) << "budget " << budget;
        EXPECT_GT(p.energy_kept, 0.f);
        EXPECT_LT(p.predicted_distortion, 1.f);
        // Predicted on the fit equals measured on the same rows (no rescale).
        EXPECT_NEAR(
                p.distortion(n, x.data()),
                p.predicted_distortion,
                1e-4 + 1e-3 * p.predicted_distortion);
    }
}

// In the PCA basis, rank-r data has no variance past component r: nothing to
// remove there, so no bits, while the r live components take what fits.
TEST(Allocation, RankRDataGetsNoBitsBeyondComponentR) {
    const size_t n = 3000, d = 40, r = 5;
    const std::vector<float> x = low_rank(n, d, r, 9);
    for (size_t budget : {2, 10, 20}) {
        const BinarizationPlan p =
                fit_allocated_plan(n, d, x.data(), Transform::pca, budget, 1);
        for (size_t j = r; j < d; j++) {
            EXPECT_EQ(p.bits[j], 0)
                    << "budget " << budget << " component " << j;
        }
        for (size_t j = 0; j < r; j++) {
            EXPECT_GT(p.bits[j], 0)
                    << "budget " << budget << " component " << j;
        }
        EXPECT_NEAR(p.energy_kept, 1.0, 1e-4);
    }
}

/// Equal sizes and bytes (memcmp: == would let -0 equal +0).
bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() &&
            (a.empty() ||
             std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

TEST(Allocation, SameDataAndSeedGiveTheSamePlanBitForBit) {
    const size_t n = 2000, d = 24;
    const std::vector<float> x = test::gaussian(
            n, d, 3, decaying_sigma(d), std::vector<float>(d, 0.5f));
    for (Transform t :
         {Transform::identity, Transform::random_rotation, Transform::pca}) {
        const BinarizationPlan a = fit_allocated_plan(n, d, x.data(), t, 7, 11);
        const BinarizationPlan b = fit_allocated_plan(n, d, x.data(), t, 7, 11);
        EXPECT_EQ(a.bits, b.bits) << transform_name(t);
        EXPECT_EQ(a.nbits, b.nbits);
        EXPECT_TRUE(same_bits(a.center, b.center)) << transform_name(t);
        EXPECT_TRUE(same_bits(a.rotation, b.rotation)) << transform_name(t);
        EXPECT_TRUE(same_bits(a.levels, b.levels)) << transform_name(t);
        EXPECT_TRUE(same_bits(a.thresholds, b.thresholds)) << transform_name(t);
    }
}

// Every coordinate at the same count is the foundation's layout: one group,
// coordinates in order, planes from byte 0, factors after nbits * ceil(d/8).
TEST(Allocation, EqualBitsGiveTheUniformLayout) {
    const size_t n = 4000, d = 64;
    const std::vector<float> x = test::gaussian(n, d, 21);
    // Isotropic: every first bit gains more than any second bit.
    const BinarizationPlan p =
            fit_allocated_plan(n, d, x.data(), Transform::identity, d / 8, 1);
    ASSERT_TRUE(p.is_uniform());
    ASSERT_EQ(p.nbits, 1);
    const CodeLayout a(p), u(int(d), 1);
    ASSERT_EQ(a.groups.size(), 1u);
    EXPECT_EQ(a.groups[0].offset, 0u);
    EXPECT_EQ(a.groups[0].plane_bytes, u.plane_bytes);
    EXPECT_EQ(a.code_size, code_size(int(d), 1));
    for (size_t j = 0; j < d; j++) {
        EXPECT_EQ(a.slot_of[j], int(j));
    }
    // The bytes are the sign planes of the spec: bit j % 8 of byte j / 8.
    std::vector<uint8_t> code(a.code_size);
    encode(p, 1, x.data(), code.data());
    for (size_t j = 0; j < d; j++) {
        EXPECT_EQ(
                (code[j / 8] >> (j % 8)) & 1,
                p.quantize(j, x[j] - p.center[j]));
    }
}

/// An allocated plan with every bit count 0..4 present.
struct AllocFixture {
    size_t n = 400, d;
    BinarizationPlan plan;
    std::vector<float> x, q, decoded;
    std::vector<uint8_t> codes;
    CodeLayout layout;

    AllocFixture(size_t d, Transform t) : d(d) {
        std::vector<float> sigma(d), mean(d);
        for (size_t j = 0; j < d; j++) {
            sigma[j] = j % 7 == 6 ? 0.f
                                  : std::pow(2.f, -float(j % 7)); // some dead
            mean[j] = 0.3f * std::cos(float(j));
        }
        x = test::gaussian(n, d, 17, sigma, mean);
        q = test::gaussian(10, d, 18, sigma, mean);
        plan = fit_allocated_plan(
                n, d, x.data(), t, std::max<size_t>(1, d / 4), 4);
        layout = CodeLayout(plan);
        codes.resize(n * layout.code_size);
        encode(plan, n, x.data(), codes.data());
        decoded.resize(n * d);
        decode(plan, n, codes.data(), decoded.data());
    }
};

TEST(Allocation, EncodeStoresEachCoordinatesLevelIndex) {
    for (size_t d : {9, 64, 130}) {
        AllocFixture f(d, Transform::identity);
        const std::vector<int> h = f.plan.bits_histogram();
        if (d >= 64) {
            // the fixture's purpose: mixed groups, and dead coordinates at 0
            EXPECT_GE(
                    std::count_if(
                            h.begin() + 1,
                            h.end(),
                            [](int c) { return c > 0; }),
                    2)
                    << "d " << d;
        }
        for (size_t j = 6; j < d; j += 7) {
            EXPECT_EQ(f.plan.bits[j], 0) << "dead coordinate " << j;
        }
        std::vector<float> y(f.n * d);
        f.plan.apply(f.n, f.x.data(), y.data());
        for (size_t i = 0; i < f.n; i++) {
            const uint8_t* code = f.codes.data() + i * f.layout.code_size;
            for (size_t j = 0; j < d; j++) {
                ASSERT_EQ(
                        f.layout.level_index(code, j),
                        f.plan.quantize(j, y[i * d + j]));
            }
            // padding after the groups stays zero
            for (size_t b = grouped_plane_bytes(h); b < f.layout.planes_size;
                 b++) {
                ASSERT_EQ(code[b], 0);
            }
            ASSERT_TRUE(std::isfinite(f.layout.estimate_scale(code)));
        }
    }
}

// As in test_estimators.cpp: the float-query estimate is <c, q> + <x - c, c>
// + |x-c|^2 / |x~-c|^2 <x~ - c, q - c> on decoded vectors x~; tolerance: the
// scorer sums d float products through table entries and a float sum per
// group, a rounding below ~(d + 8) FLT_EPSILON times the magnitude of the
// terms (times 4 for the per-group sums).
TEST(Allocation, EstimatorsMatchDecodedVectors) {
    for (size_t d : {9, 64, 130}) {
        for (Transform t : {Transform::identity, Transform::pca}) {
            AllocFixture f(d, t);
            const float* c = f.plan.center.data();
            for (faiss::MetricType m :
                 {faiss::METRIC_INNER_PRODUCT, faiss::METRIC_L2}) {
                QueryScorer scorer(f.plan, m, Estimator::asymmetric, 0);
                QueryScorer quant(f.plan, m, Estimator::asymmetric, 8);
                for (size_t qi = 0; qi < 10; qi++) {
                    const float* q = f.q.data() + qi * d;
                    scorer.set_query(q);
                    quant.set_query(q);
                    std::vector<float> qc(d);
                    for (size_t j = 0; j < d; j++) {
                        qc[j] = q[j] - c[j];
                    }
                    double err_q = 0, mag_sum = 0;
                    for (size_t i = 0; i < f.n; i++) {
                        const float* x = f.x.data() + i * d;
                        const float* xt = f.decoded.data() + i * d;
                        std::vector<float> xc(d), xtc(d);
                        for (size_t j = 0; j < d; j++) {
                            xc[j] = x[j] - c[j];
                            xtc[j] = xt[j] - c[j];
                        }
                        const double xtc2 = dot(xtc.data(), xtc.data(), d);
                        const double ratio = xtc2 > 0
                                ? dot(xc.data(), xc.data(), d) / xtc2
                                : 0;
                        const double est =
                                ratio * dot(xtc.data(), qc.data(), d);
                        const double want = m == faiss::METRIC_INNER_PRODUCT
                                ? dot(c, q, d) + dot(xc.data(), c, d) + est
                                : dot(xc.data(), xc.data(), d) +
                                        dot(qc.data(), qc.data(), d) - 2 * est;
                        const double mag =
                                std::sqrt(
                                        ratio * ratio * xtc2 *
                                        dot(qc.data(), qc.data(), d)) +
                                std::abs(dot(c, q, d)) +
                                dot(xc.data(), xc.data(), d) +
                                dot(qc.data(), qc.data(), d);
                        const uint8_t* code =
                                f.codes.data() + i * f.layout.code_size;
                        ASSERT_NEAR(
                                scorer(code),
                                want,
                                16 * (d + 8) * FLT_EPSILON * mag)
                                << "d " << d << " " << transform_name(t)
                                << " metric " << m;
                        err_q += std::abs(quant(code) - scorer(code));
                        mag_sum += mag;
                    }
                    // 8-bit query planes: the grid error (1/255 of each
                    // term's weight range per coordinate) stays a small share.
                    EXPECT_LT(err_q, 0.05 * mag_sum) << "d " << d;
                }
            }
        }
    }
}

TEST(Allocation, BadInputNamesTheValues) {
    const size_t n = 200, d = 16;
    std::vector<float> x = test::gaussian(n, d, 2);
    test::expect_throw_naming(
            [&] {
                fit_allocated_plan(n, d, x.data(), Transform::identity, 0, 1);
            },
            "budget of 0 bytes for d=16");
    test::expect_throw_naming(
            [&] {
                fit_allocated_plan(n, d, x.data(), Transform::identity, 9, 1);
            },
            "budget of 9 bytes for d=16");
    test::expect_throw_naming(
            [&] { fit_allocated_plan(10, d, x.data(), Transform::pca, 4, 1); },
            "n=10 training vectors < d=16");
    x[5 * d + 3] = std::numeric_limits<float>::quiet_NaN();
    test::expect_throw_naming(
            [&] {
                fit_allocated_plan(n, d, x.data(), Transform::identity, 4, 1);
            },
            "row 5, column 3");
    x[5 * d + 3] = std::numeric_limits<float>::infinity();
    test::expect_throw_naming(
            [&] { fit_allocated_plan(n, d, x.data(), Transform::pca, 4, 1); },
            "value inf at row 5");
    test::expect_throw_naming(
            [&] { IndexBQ(d, CodeBudget{0}); }, "budget of 0 bytes");
    test::expect_throw_naming(
            [&] { IndexBQ(d, CodeBudget{9}); }, "budget of 9 bytes for d=16");
    test::expect_throw_naming(
            [&] { delete index_factory(int(d), "BQ9B", faiss::METRIC_L2); },
            "budget of 9 bytes for d=16");
    test::expect_throw_naming(
            [&] { delete index_factory(int(d), "BQ0B", faiss::METRIC_L2); },
            "budget of code bytes must be >= 1");
    test::expect_throw_naming(
            [&] {
                delete index_factory(int(d), "BQ2_alloc", faiss::METRIC_L2);
            },
            "needs a budget");
}

// Constant and all-zero coordinates: no bits, finite levels and codes.
TEST(Allocation, ZeroVarianceComponentsGetNoBits) {
    const size_t n = 500, d = 12;
    std::vector<float> sigma(d, 1.f), mean(d, 0.f);
    sigma[2] = sigma[7] = 0;
    mean[7] = 3;
    const std::vector<float> x = test::gaussian(n, d, 4, sigma, mean);
    for (Transform t : {Transform::identity, Transform::pca}) {
        const BinarizationPlan p = fit_allocated_plan(n, d, x.data(), t, 6, 1);
        if (t == Transform::identity) {
            EXPECT_EQ(p.bits[2], 0);
            EXPECT_EQ(p.bits[7], 0);
        } else {
            EXPECT_EQ(p.bits[d - 1], 0); // the two null components come last
            EXPECT_EQ(p.bits[d - 2], 0);
        }
        for (float v : p.levels) {
            ASSERT_TRUE(std::isfinite(v));
        }
        std::vector<uint8_t> codes(n * CodeLayout(p).code_size);
        encode(p, n, x.data(), codes.data());
        std::vector<float> back(n * d);
        decode(p, n, codes.data(), back.data());
        for (float v : back) {
            ASSERT_TRUE(std::isfinite(v));
        }
    }
    // All coordinates constant: nothing to allocate, still a valid plan.
    const std::vector<float> flat(n * d, 1.5f);
    const BinarizationPlan p =
            fit_allocated_plan(n, d, flat.data(), Transform::identity, 6, 1);
    EXPECT_EQ(p.bits_histogram()[0], int(d));
    EXPECT_EQ(p.predicted_distortion, 0.f);
}

/// The trainer's record of the candidates that decided.
void expect_allocated_never_worse(const BinarizationPlan& p) {
    if (p.is_uniform() && p.candidates.empty()) {
        return;
    }
    float chosen = -1, best_uniform = -1;
    for (const CandidateReport& c : p.candidates) {
        if (c.estimator != Estimator::asymmetric) {
            continue;
        }
        if (!c.allocated) {
            best_uniform = std::max(best_uniform, c.heldout_recall);
        } else if (c.transform == p.transform && !p.is_uniform()) {
            chosen = c.heldout_recall;
        }
    }
    if (chosen >= 0) {
        EXPECT_GE(chosen, best_uniform) << p.report();
    }
}

TEST(Allocation, TrainerChoosesAmongUniformAndAllocatedAtABudget) {
    const size_t n = 3000, d = 64;
    // Low rank plus small isotropic noise: allocation has something to find.
    std::vector<float> x = low_rank(n, d, 8, 31);
    const std::vector<float> noise = test::gaussian(n, d, 32);
    for (size_t i = 0; i < x.size(); i++) {
        x[i] += 0.05f * noise[i];
    }
    const std::vector<float> iso = test::gaussian(n, d, 33);
    for (const std::vector<float>* data :
         {static_cast<const std::vector<float>*>(&x), &iso}) {
        TrainerOptions o;
        o.budget_bytes = 8;
        o.metric = faiss::METRIC_INNER_PRODUCT;
        const BinarizationPlan p = train_plan(n, d, data->data(), o);
        EXPECT_EQ(p.code_bytes, 8u);
        int n_alloc = 0, n_uniform = 0, n_eden = 0;
        for (const CandidateReport& c : p.candidates) {
            (c.allocated                                    ? n_alloc
                     : c.quantization == Quantization::eden ? n_eden
                                                            : n_uniform)++;
            EXPECT_EQ(c.estimator, Estimator::asymmetric);
        }
        EXPECT_EQ(n_alloc, 3);   // identity, rotation, PCA
        EXPECT_EQ(n_uniform, 4); // identity, rotation; centred or not
        EXPECT_EQ(n_eden, 4);    // the same with EDEN's levels
        expect_allocated_never_worse(p);
        if (data == &x) {
            EXPECT_FALSE(p.is_uniform()) << p.report();
            EXPECT_GE(p.heldout_distortion, 0.f);
            EXPECT_NE(
                    p.report().find("components at 0/1/2/3/4 bits"),
                    std::string::npos);
        }
    }
    // Fewer fitting rows than d: PCA is left out, and the reason says so.
    TrainerOptions o;
    o.budget_bytes = 16;
    const size_t d2 = 160;
    const std::vector<float> small = test::gaussian(150, d2, 3);
    const BinarizationPlan p = train_plan(150, d2, small.data(), o);
    for (const CandidateReport& c : p.candidates) {
        EXPECT_NE(c.transform, Transform::pca);
    }
    EXPECT_NE(p.reason.find("PCA candidates left out"), std::string::npos)
            << p.reason;
    // Forced allocated PCA: one candidate.
    o.budget_bytes = 8;
    o.allocation = AllocationChoice::allocated;
    o.transform = TransformChoice::pca;
    const BinarizationPlan forced = train_plan(n, d, x.data(), o);
    ASSERT_EQ(forced.candidates.size(), 1u);
    EXPECT_TRUE(forced.candidates[0].allocated);
    EXPECT_EQ(forced.transform, Transform::pca);
    EXPECT_TRUE(forced.forced);
}

std::vector<uint8_t> bytes_of(const faiss::Index* index) {
    faiss::VectorIOWriter w;
    faiss_bq::write_index(index, &w);
    return w.data;
}

faiss::Index* index_of(const std::vector<uint8_t>& bytes) {
    faiss::VectorIOReader r;
    r.data = bytes;
    return faiss_bq::read_index(&r);
}

TEST(Allocation, FactoryAndIORoundTripEveryField) {
    const size_t n = 2000, d = 64;
    std::vector<float> x = low_rank(n, d, 8, 41);
    const std::vector<float> noise = test::gaussian(n, d, 42);
    for (size_t i = 0; i < x.size(); i++) {
        x[i] += 0.05f * noise[i];
    }
    std::unique_ptr<faiss::Index> index(index_factory(
            int(d), "BQ12B_alloc_pca", faiss::METRIC_INNER_PRODUCT));
    auto bq = dynamic_cast<IndexBQ*>(index.get());
    ASSERT_NE(bq, nullptr);
    EXPECT_EQ(bq->code_size, 12 + CodeLayout::factor_bytes);
    EXPECT_EQ(index_factory_string(index.get()), "BQ12B_alloc_pca");
    index->train(n, x.data());
    index->add(n, x.data());
    ASSERT_FALSE(bq->plan.is_uniform());
    ASSERT_EQ(bq->plan.transform, Transform::pca);

    const std::vector<uint8_t> bytes = bytes_of(index.get());
    std::unique_ptr<faiss::Index> back(index_of(bytes));
    auto b = dynamic_cast<IndexBQ*>(back.get());
    ASSERT_NE(b, nullptr);
    EXPECT_EQ(bytes_of(back.get()), bytes);
    EXPECT_EQ(b->budget_bytes, 12u);
    EXPECT_EQ(b->nbits, 0);
    EXPECT_EQ(b->trainer.allocation, AllocationChoice::allocated);
    EXPECT_EQ(b->trainer.transform, TransformChoice::pca);
    const BinarizationPlan &p = bq->plan, &q = b->plan;
    EXPECT_EQ(q.bits, p.bits);
    EXPECT_EQ(q.code_bytes, p.code_bytes);
    EXPECT_EQ(q.nbits, p.nbits);
    EXPECT_EQ(q.levels, p.levels);
    EXPECT_EQ(q.thresholds, p.thresholds);
    EXPECT_EQ(q.rotation, p.rotation);
    EXPECT_EQ(q.center, p.center);
    EXPECT_EQ(q.energy_kept, p.energy_kept);
    EXPECT_EQ(q.predicted_distortion, p.predicted_distortion);
    EXPECT_EQ(q.heldout_distortion, p.heldout_distortion);
    ASSERT_EQ(q.candidates.size(), p.candidates.size());
    for (size_t i = 0; i < p.candidates.size(); i++) {
        EXPECT_EQ(q.candidates[i].allocated, p.candidates[i].allocated);
        EXPECT_EQ(q.candidates[i].nbits, p.candidates[i].nbits);
        EXPECT_EQ(
                q.candidates[i].heldout_distortion,
                p.candidates[i].heldout_distortion);
        EXPECT_EQ(
                q.candidates[i].predicted_distortion,
                p.candidates[i].predicted_distortion);
    }
    EXPECT_EQ(b->codes, bq->codes);
    const size_t k = 5;
    std::vector<float> D0(10 * k), D1(10 * k);
    std::vector<faiss::Index::idx_t> I0(10 * k), I1(10 * k);
    index->search(10, x.data(), k, D0.data(), I0.data());
    back->search(10, x.data(), k, D1.data(), I1.data());
    EXPECT_EQ(I0, I1);
    EXPECT_EQ(D0, D1);

    // "BQ64B" alone: automatic; its string has no options.
    std::unique_ptr<faiss::Index> automatic(
            index_factory(128, "BQ64B", faiss::METRIC_L2));
    EXPECT_EQ(index_factory_string(automatic.get()), "BQ64B");
    EXPECT_EQ(automatic->sa_code_size(), 64 + CodeLayout::factor_bytes);
}

/// 64-bit FNV-1a, the checksum of faiss_bq records (index_io.cpp).
uint64_t fnv1a(const uint8_t* p, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ p[i]) * 0x100000001b3ull;
    }
    return h;
}

// Version 1 records (before the allocation) still read, as uniform plans;
// version 3 records (before trainer.fast_scan_layout) too. The old bytes are
// the current record without the fields they lacked, their version, the
// checksum recomputed.
TEST(Allocation, ReadsVersion1Records) {
    const size_t n = 300, d = 24;
    const std::vector<float> x = test::gaussian(n, d, 8);
    std::unique_ptr<faiss::Index> index(
            index_factory(int(d), "BQ2_lm", faiss::METRIC_L2));
    index->train(n, x.data());
    index->add(n, x.data());
    auto bq = dynamic_cast<IndexBQ*>(index.get());
    // Trained with fitted levels (version 1 has no EDEN plans); the choice
    // is then reset to the default, which records before 6 read as.
    bq->trainer.quantization = QuantizationChoice::automatic;
    const std::vector<uint8_t> cur =
            bytes_of(index.get()); // the current version
    // allocation block: budgets (8 + 8), allocation choice (1), matryoshka
    // (1, version 3), fast_scan_layout (1, version 4), joint_nibbles (1,
    // version 5), quantization (1, version 7), bits (8 + d), code_bytes
    // (8), three floats; per candidate int, bool, bool (prefix, version 3),
    // bool (joint, version 5), quantization (1, version 7), two floats; joint
    // levels (8 + 0 floats here, version 5); the recall profile (version 6):
    // base rows (8), three float vectors (8 + 4 each); the plan's
    // quantization (1, version 7)
    const size_t ncand = bq->plan.candidates.size();
    const size_t ncounts = bq->plan.recall_profile.candidates.size();
    ASSERT_GT(ncounts, 1u);
    const size_t profile_bytes = 8 + 3 * (8 + 4 * ncounts);
    const size_t block = 8 + 8 + 1 + 1 + 1 + 1 + 1 + 8 + d + 8 + 12 +
            16 * ncand + 8 + profile_bytes + 1;
    const size_t codes_bytes = 8 + n * bq->code_size;
    const size_t end = cur.size() - 8; // checksum
    const size_t block_at = end - codes_bytes - block;
    const size_t flags_at = block_at + 8 + 8 + 1; // matryoshka
    const size_t joint_at =
            block_at + block - 1 - profile_bytes - 8; // joint levels' size
    const size_t cand_at =
            block_at + 8 + 8 + 1 + 1 + 1 + 1 + 1 + 8 + d + 8 + 12;
    // The record without the byte ranges cut (ascending), as `version`.
    auto downgrade = [&](const std::vector<uint8_t>& v,
                         uint32_t version,
                         std::vector<std::pair<size_t, size_t>> cuts) {
        std::vector<uint8_t> out;
        size_t at = 0;
        for (auto [from, len] : cuts) {
            out.insert(out.end(), v.begin() + at, v.begin() + from);
            at = from + len;
        }
        out.insert(out.end(), v.begin() + at, v.end() - 8);
        std::memcpy(out.data() + 4, &version, 4);
        const uint64_t sum = fnv1a(out.data() + 4, out.size() - 4);
        out.insert(
                out.end(),
                reinterpret_cast<const uint8_t*>(&sum),
                reinterpret_cast<const uint8_t*>(&sum) + 8);
        return out;
    };
    std::unique_ptr<faiss::Index> back(
            index_of(downgrade(cur, 1, {{block_at, block}})));
    auto b = dynamic_cast<IndexBQ*>(back.get());
    ASSERT_NE(b, nullptr);
    EXPECT_EQ(b->plan.bits, std::vector<uint8_t>(d, 2));
    EXPECT_EQ(b->plan.code_bytes, 2 * ((d + 7) / 8));
    EXPECT_TRUE(b->plan.recall_profile.empty());
    // Written back as the current version, with an empty profile.
    const RecallProfile profile = bq->plan.recall_profile;
    bq->plan.recall_profile = RecallProfile();
    EXPECT_EQ(bytes_of(back.get()), bytes_of(index.get()));
    bq->plan.recall_profile = profile;

    // Versions 3 to 6: the current record without the flags they did not
    // have (after matryoshka), the joint levels (3, 4), the recall profile
    // (3 to 5) nor the quantization fields (version 7); the flags read as
    // false, the quantization as automatic / lloyd_max.
    bq->trainer.fast_scan_layout = true;
    bq->trainer.joint_nibbles = true;
    const std::vector<uint8_t> flagged = bytes_of(index.get());
    ASSERT_EQ(flagged[flags_at + 1], 1);
    ASSERT_EQ(flagged[flags_at + 2], 1);
    ASSERT_EQ(flagged[flags_at + 3], uint8_t(QuantizationChoice::automatic));
    for (uint32_t version : {3u, 4u, 5u, 6u}) {
        // trainer flags from fast_scan_layout (3), joint_nibbles (4) or the
        // quantization (5, 6) on
        const size_t keep = std::min<size_t>(version - 3, 2);
        std::vector<std::pair<size_t, size_t>> cuts = {
                {flags_at + 1 + keep, 3 - keep}};
        for (size_t c = 0; c < ncand; c++) {
            // candidate.joint (3, 4) and candidate.quantization
            cuts.push_back(
                    version >= 5 ? std::make_pair(cand_at + 16 * c + 7, 1)
                                 : std::make_pair(cand_at + 16 * c + 6, 2));
        }
        // joint levels (3, 4), the recall profile (3 to 5), the plan's
        // quantization
        if (version == 6) {
            cuts.push_back({joint_at + 8 + profile_bytes, 1});
        } else if (version == 5) {
            cuts.push_back({joint_at + 8, profile_bytes + 1});
        } else {
            cuts.push_back({joint_at, 8 + profile_bytes + 1});
        }
        std::unique_ptr<faiss::Index> old(
                index_of(downgrade(flagged, version, cuts)));
        auto bo = dynamic_cast<IndexBQ*>(old.get());
        ASSERT_NE(bo, nullptr);
        EXPECT_EQ(bo->trainer.fast_scan_layout, version >= 4);
        EXPECT_EQ(bo->trainer.joint_nibbles, version >= 5);
        EXPECT_EQ(bo->plan.recall_profile.empty(), version < 6);
        EXPECT_EQ(bo->trainer.quantization, QuantizationChoice::automatic);
        EXPECT_EQ(bo->plan.quantization, Quantization::lloyd_max);
        EXPECT_FALSE(bo->plan.is_joint());
        EXPECT_EQ(bo->codes, bq->codes);
    }
}

} // namespace
} // namespace faiss_bq

namespace faiss_bq {
namespace {

/// Matryoshka-like data: the information sits in the leading coordinates
/// (standard deviation 1 for the first 24, 0.05 after), each coordinate
/// heavy-tailed along its axis, as such models' features are.
std::vector<float> matryoshka_like(size_t n, size_t d, int seed) {
    std::vector<float> sigma(d), mean(d, 0.f);
    for (size_t j = 0; j < d; j++) {
        sigma[j] = j < 24 ? 1.f : 0.05f;
    }
    std::vector<float> x = test::gaussian(n, d, seed, sigma, mean);
    for (float& v : x) {
        v = v * std::fabs(v); // heavy tails on the axes
    }
    return x;
}

TEST(Allocation, MatryoshkaPrefixPlan) {
    const size_t n = 3000, d = 64;
    const std::vector<float> x = matryoshka_like(n, d, 51);
    for (int b : {1, 2}) {
        // 6 bytes: the first 48 / 24 coordinates at 1 / 2 bits
        const BinarizationPlan p = fit_allocated_plan(
                n, d, x.data(), Transform::identity, 6, 7, b);
        const size_t m = 48 / size_t(b);
        for (size_t j = 0; j < d; j++) {
            ASSERT_EQ(p.bits[j], j < m ? b : 0) << "coordinate " << j;
        }
        EXPECT_EQ(p.code_bytes, 6u);
        EXPECT_EQ(CodeLayout(p).code_size, 6 + CodeLayout::factor_bytes);
        EXPECT_EQ(p.transform, Transform::identity);
    }
    // a prefix longer than d stops at d
    const BinarizationPlan all =
            fit_allocated_plan(n, d, x.data(), Transform::identity, 16, 7, 2);
    EXPECT_EQ(all.bits, std::vector<uint8_t>(d, 2));
    // only on the axes, with at least b bytes
    test::expect_throw_naming(
            [&] {
                fit_allocated_plan(
                        n, d, x.data(), Transform::random_rotation, 6, 7, 1);
            },
            "basis random_rotation");
    test::expect_throw_naming(
            [&] {
                fit_allocated_plan(
                        n, d, x.data(), Transform::identity, 1, 7, 2);
            },
            "prefix of 2 bits");
    test::expect_throw_naming(
            [&] {
                fit_allocated_plan(
                        n, d, x.data(), Transform::identity, 6, 7, 5);
            },
            "prefix of 5 bits");
}

// With matryoshka set, the prefix plans are candidates beside the allocated
// and uniform ones, labelled in the report, and the held-out recall decides:
// the winner is never worse than any candidate by more than its noise.
TEST(Allocation, TrainerWeighsMatryoshkaPrefixes) {
    const size_t n = 3000, d = 64;
    const std::vector<float> x = matryoshka_like(n, d, 52);
    TrainerOptions o;
    o.budget_bytes = 6;
    o.metric = faiss::METRIC_INNER_PRODUCT;
    o.matryoshka = true;
    const BinarizationPlan p = train_plan(n, d, x.data(), o);
    int prefixes = 0;
    float best = 0;
    for (const CandidateReport& c : p.candidates) {
        prefixes += c.prefix;
        best = std::max(best, c.heldout_recall);
        if (c.prefix) {
            EXPECT_TRUE(c.allocated);
            EXPECT_EQ(c.transform, Transform::identity);
        }
    }
    EXPECT_EQ(prefixes, 2);
    EXPECT_NE(p.report().find("prefix1"), std::string::npos) << p.report();
    EXPECT_NE(p.report().find("prefix2"), std::string::npos);
    // the choice is the best held-out recall
    float chosen = -1;
    for (const CandidateReport& c : p.candidates) {
        if (c.transform == p.transform && c.allocated == !p.is_uniform() &&
            (!c.allocated ||
             c.prefix ==
                     (p.bits.back() == 0 && p.bits.front() != 0 &&
                      p.transform == Transform::identity))) {
            chosen = std::max(chosen, c.heldout_recall);
        }
    }
    EXPECT_GE(chosen, best - 1e-6f) << p.report();
    // a budget is required
    TrainerOptions no_budget;
    no_budget.matryoshka = true;
    test::expect_throw_naming(
            [&] { train_plan(n, d, x.data(), no_budget); }, "matryoshka");
}

TEST(Allocation, MatryoshkaFactoryAndIO) {
    const size_t n = 2000, d = 64;
    const std::vector<float> x = matryoshka_like(n, d, 53);
    std::unique_ptr<faiss::Index> index(faiss_bq::index_factory(
            d, "BQ8B_mrl", faiss::METRIC_INNER_PRODUCT));
    auto bq = dynamic_cast<IndexBQ*>(index.get());
    ASSERT_TRUE(bq);
    EXPECT_TRUE(bq->trainer.matryoshka);
    EXPECT_EQ(faiss_bq::index_factory_string(index.get()), "BQ8B_mrl");
    index->train(n, x.data());
    index->add(n, x.data());
    faiss::VectorIOWriter w;
    faiss_bq::write_index(index.get(), &w);
    faiss::VectorIOReader r;
    r.data = w.data;
    std::unique_ptr<faiss::Index> back(faiss_bq::read_index(&r));
    auto bq2 = dynamic_cast<IndexBQ*>(back.get());
    ASSERT_TRUE(bq2);
    EXPECT_TRUE(bq2->trainer.matryoshka);
    ASSERT_EQ(bq2->plan.candidates.size(), bq->plan.candidates.size());
    for (size_t i = 0; i < bq->plan.candidates.size(); i++) {
        EXPECT_EQ(
                bq2->plan.candidates[i].prefix, bq->plan.candidates[i].prefix);
    }
    faiss::VectorIOWriter w2;
    faiss_bq::write_index(back.get(), &w2);
    EXPECT_EQ(w2.data, w.data);
    test::expect_throw_naming(
            [&] { delete faiss_bq::index_factory(d, "BQ1_mrl"); },
            "needs a budget");
    test::expect_throw_naming(
            [&] { delete faiss_bq::index_factory(d, "BQ8B_mrl_mrl"); },
            "conflicts with an earlier option");
}

} // namespace
} // namespace faiss_bq
