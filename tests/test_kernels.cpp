// Kernels against bit-by-bit definitions, for code sizes that hit every tail.
#include <faiss_bq/kernels/kernels.h>

#include <gtest/gtest.h>

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
            EXPECT_EQ(kernels::weighted_popcount(planes.data(), np, code.data(), nb),
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
        for (int nbits : {1, 2}) {
            const size_t ng = kernels::lut_groups(nb, nbits);
            ASSERT_EQ(ng, nb * nbits);
            std::vector<float> lut(ng * kernels::lut_entries);
            for (float& v : lut) {
                v = u(rng);
            }
            const auto planes = random_bytes(nbits * nb, rng);
            double want = 0;
            const int group = 8 / nbits;
            for (size_t g = 0; g < ng; g++) {
                unsigned index = 0;
                for (int i = 0; i < group; i++) {
                    const size_t j = g * group + i;
                    index |= bit(planes.data(), j) << i;
                    if (nbits == 2) {
                        index |= bit(planes.data() + nb, j) << (4 + i);
                    }
                }
                want += lut[g * kernels::lut_entries + index];
            }
            EXPECT_NEAR(kernels::lut_scan(planes.data(), nb, nbits, lut.data()),
                        want, 1e-5 * ng)
                    << nb << " bytes, nbits " << nbits;
        }
    }
}

} // namespace
} // namespace faiss_bq
