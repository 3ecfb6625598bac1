// Kernels against bit-by-bit definitions, for code sizes that hit every tail,
// and every SIMD level the CPU has against the scalar reference, bit for bit.
#include <faiss_bq/kernels/kernels.h>

#include <faiss/impl/FaissException.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

namespace faiss_bq {
namespace {

std::vector<size_t> sizes() {
    std::vector<size_t> s;
    for (size_t b = 1; b <= 33; b++) {
        s.push_back(b);
    }
    for (size_t b : {48, 64, 96, 128, 129}) {
        s.push_back(b);
    }
    return s;
}

std::vector<uint8_t> random_bytes(size_t n, std::mt19937& rng) {
    std::vector<uint8_t> v(n);
    for (uint8_t& b : v) {
        b = uint8_t(rng());
    }
    return v;
}

int bit(const uint8_t* a, size_t i) {
    return (a[i / 8] >> (i % 8)) & 1;
}

TEST(Kernels, PopcountsMatchBitByBit) {
    std::mt19937 rng(1);
    for (size_t nb : sizes()) {
        const auto a = random_bytes(nb, rng), b = random_bytes(nb, rng);
        uint64_t pa = 0, pand = 0, ham = 0;
        for (size_t i = 0; i < 8 * nb; i++) {
            pa += bit(a.data(), i);
            pand += bit(a.data(), i) & bit(b.data(), i);
            ham += bit(a.data(), i) ^ bit(b.data(), i);
        }
        EXPECT_EQ(kernels::popcount(a.data(), nb), pa) << nb;
        EXPECT_EQ(kernels::popcount_and(a.data(), b.data(), nb), pand) << nb;
        EXPECT_EQ(kernels::hamming(a.data(), b.data(), nb), ham) << nb;
    }
}

TEST(Kernels, WeightedPopcountIsAnIntegerInnerProduct) {
    std::mt19937 rng(2);
    for (size_t nb : sizes()) {
        for (int np : {1, 4, 8}) {
            const auto planes = random_bytes(np * nb, rng);
            const auto code = random_bytes(nb, rng);
            uint64_t want = 0;
            for (size_t i = 0; i < 8 * nb; i++) {
                int u = 0;
                for (int p = 0; p < np; p++) {
                    u |= bit(planes.data() + p * nb, i) << p;
                }
                want += u * bit(code.data(), i);
            }
            EXPECT_EQ(
                    kernels::weighted_popcount(
                            planes.data(), np, code.data(), nb),
                    want)
                    << nb << " bytes, " << np << " planes";
        }
    }
}

// lut_scan with tables holding 1 at one chosen entry per group counts the
// groups whose code bits select it; with random tables it equals the direct
// sum over groups of the entry indexed by the group's bits.
TEST(Kernels, LutScanSumsTheEntriesSelectedByEachGroup) {
    std::mt19937 rng(3);
    std::uniform_real_distribution<float> u(-1, 1);
    for (size_t nb : sizes()) {
        for (int nbits : {1, 2, 3, 4}) {
            // coordinates per table: 8, 4, then 2 (3 and 4 bits)
            const int group = nbits == 1 ? 8 : nbits == 2 ? 4 : 2;
            const size_t ng = kernels::lut_groups(nb, nbits);
            ASSERT_EQ(ng, nb * 8 / group);
            std::vector<float> lut(ng * kernels::lut_entries);
            for (float& v : lut) {
                v = u(rng);
            }
            const auto planes = random_bytes(nbits * nb, rng);
            double want = 0;
            for (size_t g = 0; g < ng; g++) {
                unsigned index = 0;
                for (int i = 0; i < group; i++) {
                    const size_t j = g * group + i;
                    for (int p = 0; p < nbits; p++) {
                        index |= bit(planes.data() + p * nb, j)
                                << (p * group + i);
                    }
                }
                want += lut[g * kernels::lut_entries + index];
            }
            EXPECT_NEAR(
                    kernels::lut_scan(planes.data(), nb, nbits, lut.data()),
                    want,
                    1e-5 * ng)
                    << nb << " bytes, nbits " << nbits;
        }
    }
}

/// Nibble k of vector v of a fast-scan block (kernels.h): column k / 2,
/// low half for even k.
int block_nibble(const uint8_t* block, size_t v, size_t k) {
    const uint8_t byte = block[k / 2 * kernels::fast_scan_block + v];
    return k % 2 == 0 ? byte & 15 : byte >> 4;
}

/// Tables in the kernels' form (kernels.h: each 16-entry table four times)
/// of ncols columns with entries up to max_entry; table k's entries are at
/// the returned vector + 128 (k / 2) + 64 (k % 2).
std::vector<uint8_t> fast_scan_luts(
        size_t ncols,
        unsigned max_entry,
        std::mt19937& rng) {
    std::vector<uint8_t> luts(ncols * kernels::fast_scan_lut_bytes);
    for (size_t k = 0; k < 2 * ncols; k++) {
        uint8_t* t = luts.data() + kernels::fast_scan_lut_bytes * (k / 2) +
                64 * (k % 2);
        for (int v = 0; v < 16; v++) {
            t[v] = uint8_t(rng() % (max_entry + 1));
        }
        for (int copy = 1; copy < 4; copy++) {
            std::copy(t, t + 16, t + 16 * copy);
        }
    }
    return luts;
}

TEST(Kernels, FastScanSumsOneTableEntryPerNibble) {
    std::mt19937 rng(9);
    const size_t bs = kernels::fast_scan_block;
    for (size_t nbytes : {1, 2, 7, 64, 128}) {
        const size_t nblocks = 3;
        const auto codes = random_bytes(nblocks * bs * nbytes, rng);
        const auto luts =
                fast_scan_luts(nbytes, kernels::fast_scan_max_entry, rng);
        std::vector<uint32_t> got(nblocks * bs, 5); // sums are added to it
        kernels::FastScanQuery q;
        q.lut = luts.data();
        q.out = got.data();
        q.add = true;
        kernels::fast_scan_accumulate(
                codes.data(), nblocks, bs * nbytes, 0, nbytes, 1, &q);
        for (size_t b = 0; b < nblocks; b++) {
            for (size_t v = 0; v < bs; v++) {
                uint32_t want = 5;
                for (size_t k = 0; k < 2 * nbytes; k++) {
                    want +=
                            luts[kernels::fast_scan_lut_bytes * (k / 2) +
                                 64 * (k % 2) +
                                 block_nibble(
                                         codes.data() + b * bs * nbytes, v, k)];
                }
                ASSERT_EQ(got[b * bs + v], want)
                        << nbytes << " bytes, block " << b << ", vector " << v;
            }
        }
    }
}

// ------------------------------------------------ every level vs the reference

using kernels::KernelTable;
using kernels::SimdLevel;

class KernelLevel : public ::testing::TestWithParam<SimdLevel> {
   protected:
    void SetUp() override {
        if (!kernels::cpu_supports(GetParam())) {
            GTEST_SKIP() << "this CPU lacks SIMD level "
                         << kernels::simd_level_name(GetParam());
        }
    }
    const KernelTable& level() const {
        return kernels::kernel_table(GetParam());
    }
    const KernelTable& ref() const {
        return kernels::kernel_table(SimdLevel::ref);
    }
};

TEST_P(KernelLevel, PopcountsEqualTheReference) {
    std::mt19937 rng(4);
    for (size_t nb : sizes()) {
        for (int np : {1, 2, 5, 8}) {
            const auto a = random_bytes(np * nb, rng),
                       b = random_bytes(nb, rng);
            const uint8_t *pa = a.data(), *pb = b.data();
            EXPECT_EQ(level().popcount(pa, nb), ref().popcount(pa, nb)) << nb;
            EXPECT_EQ(
                    level().popcount_and(pa, pb, nb),
                    ref().popcount_and(pa, pb, nb))
                    << nb;
            EXPECT_EQ(level().hamming(pa, pb, nb), ref().hamming(pa, pb, nb))
                    << nb;
            EXPECT_EQ(
                    level().weighted_popcount(pa, np, pb, nb),
                    ref().weighted_popcount(pa, np, pb, nb))
                    << nb << " bytes, " << np << " planes";
        }
    }
}

TEST_P(KernelLevel, HammingBlockEqualsTheReference) {
    std::mt19937 rng(5);
    const size_t n = 37; // groups of 8 codes and a remainder
    for (size_t nb : sizes()) {
        for (size_t stride : {nb, nb + 12}) {
            const auto q = random_bytes(nb, rng);
            const auto codes = random_bytes(n * stride, rng);
            std::vector<int32_t> got(n), want(n);
            level().hamming_block(
                    q.data(), codes.data(), n, nb, stride, got.data());
            ref().hamming_block(
                    q.data(), codes.data(), n, nb, stride, want.data());
            EXPECT_EQ(got, want) << nb << " bytes, stride " << stride;
            // the reference is the per-code Hamming distance
            EXPECT_EQ(
                    uint64_t(want[n - 1]),
                    ref().hamming(
                            q.data(), codes.data() + (n - 1) * stride, nb));
        }
    }
}

TEST_P(KernelLevel, SelectLessEqualsTheReference) {
    std::mt19937 rng(6);
    for (size_t n : {0, 1, 7, 8, 15, 16, 17, 100, 1000}) {
        std::vector<int32_t> v(n);
        for (int32_t& x : v) {
            x = int32_t(rng() % 200) - 100;
        }
        for (int32_t bound : {-101, -50, 0, 99, 101}) {
            std::vector<uint32_t> got(n), want(n);
            const size_t ng =
                    level().select_less(v.data(), n, bound, got.data());
            const size_t nw =
                    ref().select_less(v.data(), n, bound, want.data());
            got.resize(ng);
            want.resize(nw);
            EXPECT_EQ(got, want) << n << " values, bound " << bound;
        }
    }
}

TEST_P(KernelLevel, PlaneProductsEqualTheReference) {
    std::mt19937 rng(7);
    const size_t n = 11;
    for (size_t nb : sizes()) {
        const size_t stride = 4 * nb + 12; // four planes and the factors
        const auto codes = random_bytes(n * stride, rng);
        for (int nq : {1, 3, 9, 20}) { // 20: the AVX-512 path for > 16 planes
            const auto q = random_bytes(nq * nb, rng);
            for (int mask = 1; mask < 16; mask++) {
                std::vector<uint32_t> got(n * nq), want(n * nq);
                level().plane_products_block(
                        q.data(),
                        nq,
                        codes.data(),
                        n,
                        stride,
                        nb,
                        mask,
                        got.data());
                ref().plane_products_block(
                        q.data(),
                        nq,
                        codes.data(),
                        n,
                        stride,
                        nb,
                        mask,
                        want.data());
                EXPECT_EQ(got, want)
                        << nb << " bytes, " << nq << " planes, mask " << mask;
                // the reference against popcount_and of the planes
                if (mask == 1 || mask == 2) {
                    const uint8_t* x =
                            codes.data() + 3 * stride + (mask >> 1) * nb;
                    EXPECT_EQ(
                            uint64_t(want[3 * nq + nq - 1]),
                            ref().popcount_and(
                                    q.data() + (nq - 1) * nb, x, nb));
                }
            }
        }
    }
}

TEST_P(KernelLevel, LutScanEqualsTheReferenceBitForBit) {
    std::mt19937 rng(8);
    std::uniform_real_distribution<float> u(-1, 1);
    const size_t n = 37; // blocks of 16 codes and a remainder
    for (size_t nb : sizes()) {
        for (int nbits : {1, 2, 3, 4}) {
            std::vector<float> lut(
                    kernels::lut_groups(nb, nbits) * kernels::lut_entries);
            for (float& v : lut) {
                v = u(rng);
            }
            const size_t stride = nbits * nb + 12;
            const auto codes = random_bytes(n * stride, rng);
            std::vector<float> got(n), want(n);
            level().lut_scan_block(
                    codes.data(), n, stride, nb, nbits, lut.data(), got.data());
            ref().lut_scan_block(
                    codes.data(),
                    n,
                    stride,
                    nb,
                    nbits,
                    lut.data(),
                    want.data());
            EXPECT_EQ(
                    0, std::memcmp(got.data(), want.data(), n * sizeof(float)))
                    << nb << " bytes, nbits " << nbits;
            const float one = level().lut_scan(
                    codes.data() + stride, nb, nbits, lut.data());
            EXPECT_EQ(0, std::memcmp(&one, &want[1], sizeof(float)));
        }
    }
}

TEST_P(KernelLevel, FastScanEqualsTheReference) {
    std::mt19937 rng(10);
    const size_t bs = kernels::fast_scan_block;
    // 128 columns are the most a call adds in 16-bit lanes; all-127 tables
    // are the worst case of the 16-bit sums (256 x 127); 1..5 queries (a
    // group of 4 and one more); calls that write and calls that add; column
    // runs [t0, t1) that start inside.
    for (size_t nbytes : {1, 2, 3, 31, 64, 127, 128, 300}) {
        for (bool saturated : {false, true}) {
            for (size_t nq : {1, 2, 3, 4, 5}) {
                const size_t nblocks = 5;
                const auto codes = random_bytes(nblocks * bs * nbytes, rng);
                std::vector<std::vector<uint8_t>> luts;
                std::vector<std::vector<uint32_t>> got, want;
                for (size_t q = 0; q < nq; q++) {
                    luts.push_back(fast_scan_luts(
                            nbytes, kernels::fast_scan_max_entry, rng));
                    if (saturated) {
                        std::fill(
                                luts[q].begin(),
                                luts[q].end(),
                                kernels::fast_scan_max_entry);
                    }
                    got.emplace_back(nblocks * bs, uint32_t(7 + q));
                    want.emplace_back(nblocks * bs, uint32_t(7 + q));
                }
                // both levels from the same arguments
                auto run = [&](size_t t0, size_t t1, bool add) {
                    std::vector<kernels::FastScanQuery> g(nq), w(nq);
                    for (size_t q = 0; q < nq; q++) {
                        g[q].lut = w[q].lut = luts[q].data();
                        g[q].out = got[q].data();
                        w[q].out = want[q].data();
                        g[q].add = w[q].add = add;
                    }
                    level().fast_scan_accumulate(
                            codes.data(),
                            nblocks,
                            bs * nbytes,
                            t0,
                            t1,
                            nq,
                            g.data());
                    ref().fast_scan_accumulate(
                            codes.data(),
                            nblocks,
                            bs * nbytes,
                            t0,
                            t1,
                            nq,
                            w.data());
                };
                for (size_t t0 = 0; t0 < nbytes;
                     t0 += kernels::fast_scan_max_columns) {
                    const size_t t1 = std::min(
                            nbytes, t0 + kernels::fast_scan_max_columns);
                    run(t0, t1, t0 > 0);
                }
                EXPECT_EQ(got, want) << nbytes << " bytes, saturated "
                                     << saturated << ", " << nq << " queries";
                if (saturated) {
                    EXPECT_EQ(
                            want[0][0],
                            2 * nbytes * kernels::fast_scan_max_entry);
                }
                // a run of columns [t0, t1) inside, added to the sums above
                const size_t t0 = nbytes / 3, t1 = std::min(nbytes, t0 + 100);
                run(t0, t1, true);
                EXPECT_EQ(got, want)
                        << nbytes << " bytes, columns " << t0 << ".." << t1;
            }
        }
    }
}

TEST_P(KernelLevel, FastScanScoresEqualTheReference) {
    std::mt19937 rng(12);
    std::uniform_real_distribution<float> u(-2, 2);
    const size_t bs = kernels::fast_scan_block, nblocks = 3;
    std::vector<uint32_t> hi(nblocks * bs), lo(nblocks * bs);
    std::vector<float> factors(nblocks * 3 * bs);
    for (size_t i = 0; i < hi.size(); i++) {
        hi[i] = rng() % 40000;
        lo[i] = rng() % 40000;
    }
    for (float& f : factors) {
        f = u(rng);
    }
    kernels::FastScanAffine a;
    a.step_hi = 0.003f;
    a.step_lo = 0.0007f;
    a.bias = -3.5f;
    for (int metric = 0; metric < 2; metric++) {
        a.c = metric ? 1.25f : -0.5f;
        a.w0 = metric ? 1.f : 0.f;
        a.w1 = metric ? -2.f : 1.f;
        a.w2 = metric ? 0.f : 1.f;
        for (bool with_hi : {false, true}) {
            for (bool larger : {false, true}) {
                std::vector<float> got(nblocks * bs), want(nblocks * bs);
                std::vector<uint32_t> got_better(nblocks * bs),
                        want_better(nblocks * bs);
                const uint32_t* h = with_hi ? hi.data() : nullptr;
                // no threshold: every position, in order
                const float none = larger ? -HUGE_VALF : HUGE_VALF;
                ASSERT_EQ(
                        level().fast_scan_scores(
                                h,
                                lo.data(),
                                factors.data(),
                                nblocks,
                                a,
                                none,
                                larger,
                                got.data(),
                                got_better.data()),
                        nblocks * bs);
                for (size_t i = 0; i < got.size(); i++) {
                    ASSERT_EQ(got_better[i], i);
                }
                ref().fast_scan_scores(
                        h,
                        lo.data(),
                        factors.data(),
                        nblocks,
                        a,
                        none,
                        larger,
                        want.data(),
                        want_better.data());
                for (size_t i = 0; i < got.size(); i++) {
                    // fused multiply-adds round once where the reference rounds
                    // twice
                    ASSERT_NEAR(
                            got[i], want[i], 1e-5f * (1 + std::fabs(want[i])))
                            << "vector " << i << ", metric " << metric
                            << ", hi " << with_hi;
                }
                // a threshold: the positions strictly better than it, in order
                std::vector<float> sorted = got;
                std::sort(sorted.begin(), sorted.end());
                const float worst = sorted[sorted.size() / 3];
                const size_t n = level().fast_scan_scores(
                        h,
                        lo.data(),
                        factors.data(),
                        nblocks,
                        a,
                        worst,
                        larger,
                        got.data(),
                        got_better.data());
                std::vector<uint32_t> expect;
                for (size_t i = 0; i < got.size(); i++) {
                    if (larger ? got[i] > worst : got[i] < worst) {
                        expect.push_back(uint32_t(i));
                    }
                }
                got_better.resize(n);
                EXPECT_EQ(got_better, expect)
                        << "metric " << metric << ", larger " << larger;
            }
        }
    }
}

TEST_P(KernelLevel, HammingScoresEqualTheReference) {
    std::mt19937 rng(13);
    std::uniform_real_distribution<float> u(-2, 2);
    // 300 codes: blocks of 16 and 256 and a tail; 64-byte planes (one
    // 512-bit load) and 13 (d = 100, the generic path)
    const size_t n = 300;
    for (size_t nbytes : {size_t(64), size_t(13)}) {
        const size_t stride = nbytes + 12;
        std::vector<uint8_t> codes(n * stride), query(nbytes);
        for (uint8_t& b : query) {
            b = uint8_t(rng());
        }
        for (size_t i = 0; i < n; i++) {
            for (size_t b = 0; b < nbytes; b++) {
                codes[i * stride + b] = uint8_t(rng());
            }
            const float f[3] = {u(rng), u(rng), u(rng)};
            std::memcpy(codes.data() + i * stride + nbytes, f, sizeof(f));
        }
        for (bool has_f2 : {false, true}) {
            for (bool larger : {false, true}) {
                kernels::HammingAffine a;
                a.c = larger ? 1.25f : -0.5f;
                a.alpha = 3.f;
                a.beta = -0.0625f;
                a.has_f2 = has_f2;
                std::vector<float> got(n);
                std::vector<uint32_t> got_better(n);
                const float none = larger ? -HUGE_VALF : HUGE_VALF;
                ASSERT_EQ(
                        level().hamming_scores(
                                query.data(),
                                codes.data(),
                                n,
                                nbytes,
                                stride,
                                a,
                                none,
                                larger,
                                got.data(),
                                got_better.data()),
                        n);
                // the definition, in double
                for (size_t i = 0; i < n; i++) {
                    ASSERT_EQ(got_better[i], i);
                    const uint8_t* c = codes.data() + i * stride;
                    float f[3];
                    std::memcpy(f, c + nbytes, sizeof(f));
                    int h = 0;
                    for (size_t b = 0; b < nbytes; b++) {
                        h += __builtin_popcount(unsigned(c[b] ^ query[b]));
                    }
                    const double w = double(a.c) + f[0] +
                            double(f[1]) * (has_f2 ? f[2] : 1.) *
                                    (a.alpha + double(a.beta) * h);
                    ASSERT_NEAR(got[i], w, 1e-5 * (1 + std::fabs(w)))
                            << nbytes << " bytes, code " << i << ", f2 "
                            << has_f2;
                }
                // a threshold: the positions strictly better, in order
                std::vector<float> sorted = got;
                std::sort(sorted.begin(), sorted.end());
                const float worst = sorted[n / 3];
                const size_t nc = level().hamming_scores(
                        query.data(),
                        codes.data(),
                        n,
                        nbytes,
                        stride,
                        a,
                        worst,
                        larger,
                        got.data(),
                        got_better.data());
                std::vector<uint32_t> expect;
                for (size_t i = 0; i < n; i++) {
                    if (larger ? got[i] > worst : got[i] < worst) {
                        expect.push_back(uint32_t(i));
                    }
                }
                got_better.resize(nc);
                EXPECT_EQ(got_better, expect)
                        << nbytes << " bytes, larger " << larger;
            }
        }
    }
}

TEST_P(KernelLevel, RowsToBlockEqualsTheReference) {
    std::mt19937 rng(11);
    const size_t bs = kernels::fast_scan_block;
    for (size_t ncols : {1, 15, 16, 17, 40, 64, 96}) {
        for (size_t stride : {ncols, ncols + 3, ncols + 16, ncols + 40}) {
            for (size_t nrows : {1, 15, 16, 33, 64}) {
                // the rows end where the buffer ends: a load past it faults
                // under the sanitizers
                auto rows = random_bytes(nrows * stride, rng);
                std::vector<uint8_t> got(bs * ncols, 7), want(bs * ncols, 9);
                level().rows_to_block(
                        rows.data(), stride, nrows, ncols, got.data());
                ref().rows_to_block(
                        rows.data(), stride, nrows, ncols, want.data());
                EXPECT_EQ(got, want) << ncols << " columns, stride " << stride
                                     << ", " << nrows << " rows";
                EXPECT_EQ(
                        want[bs * (ncols - 1) + nrows - 1],
                        rows[(nrows - 1) * stride + ncols - 1]);
            }
        }
    }
}

INSTANTIATE_TEST_SUITE_P(
        Levels,
        KernelLevel,
        ::testing::Values(SimdLevel::ref, SimdLevel::avx2, SimdLevel::avx512),
        [](const ::testing::TestParamInfo<SimdLevel>& info) {
            return std::string(kernels::simd_level_name(info.param));
        });

// ------------------------------------------------ the choice of level

/// In a fresh process (the level is chosen once): sets FAISS_BQ_SIMD, makes
/// the first kernel call, prints the level or the exception, exits 0 or 3.
void first_call_with(const char* value) {
    setenv("FAISS_BQ_SIMD", value, 1);
    try {
        std::fprintf(
                stderr,
                "level=%s\n",
                kernels::simd_level_name(kernels::simd_level()));
        std::exit(0);
    } catch (const faiss::FaissException& e) {
        std::fprintf(stderr, "%s\n", e.what());
        std::exit(3);
    }
}

TEST(KernelDispatch, EnvironmentForcesTheLevel) {
    GTEST_FLAG_SET(death_test_style, "threadsafe");
    EXPECT_EXIT(
            first_call_with("ref"), ::testing::ExitedWithCode(0), "level=ref");
    EXPECT_EXIT(
            first_call_with("avx9000"),
            ::testing::ExitedWithCode(3),
            "FAISS_BQ_SIMD=avx9000: unknown SIMD level");
    if (kernels::cpu_supports(SimdLevel::avx512)) {
        EXPECT_EXIT(
                first_call_with("avx512"),
                ::testing::ExitedWithCode(0),
                "level=avx512");
    }
}

TEST(KernelDispatch, LevelNamesAndTheDefaultChoice) {
    EXPECT_STREQ(kernels::simd_level_name(SimdLevel::avx2), "avx2");
    if (!std::getenv("FAISS_BQ_SIMD")) {
        // without the variable, the best level the CPU has
        const SimdLevel best = kernels::cpu_supports(SimdLevel::avx512)
                ? SimdLevel::avx512
                : kernels::cpu_supports(SimdLevel::avx2) ? SimdLevel::avx2
                                                         : SimdLevel::ref;
        EXPECT_EQ(kernels::simd_level(), best);
    }
}

} // namespace
} // namespace faiss_bq
