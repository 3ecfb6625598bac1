// The uncentred sign-bit baseline: FAISS's own binarization in an
// IndexBinaryFlat, behind the float Index interface.
#pragma once

#include <faiss/Index.h>
#include <faiss/IndexBinaryFlat.h>
#include <faiss/utils/hamming.h>

#include <cstdint>
#include <vector>

namespace faiss_bq {

/** Bit j = x_j >= 0, LSB-first (faiss::fvecs2bitvecs), for the stored
 * vectors and the queries alike; search() returns Hamming distances.
 * The dimension is padded with zero bits to whole bytes. */
struct IndexSignBits : faiss::Index {
    faiss::IndexBinaryFlat codes;

    explicit IndexSignBits(idx_t d)
            : faiss::Index(d, faiss::METRIC_L2), codes(8 * ((d + 7) / 8)) {
        is_trained = true;
    }

    void add(idx_t n, const float* x) override {
        codes.add(n, binarize(n, x).data());
        ntotal = codes.ntotal;
    }

    void search(
            idx_t n,
            const float* x,
            idx_t k,
            float* distances,
            idx_t* labels,
            const faiss::SearchParameters* params = nullptr) const override {
        std::vector<int32_t> hamming(n * k);
        codes.search(
                n, binarize(n, x).data(), k, hamming.data(), labels, params);
        for (size_t i = 0; i < hamming.size(); i++) {
            distances[i] = float(hamming[i]);
        }
    }

    void reset() override {
        codes.reset();
        ntotal = 0;
    }

    size_t sa_code_size() const override {
        return codes.code_size;
    }

   private:
    std::vector<uint8_t> binarize(idx_t n, const float* x) const {
        std::vector<uint8_t> bits(n * codes.code_size);
        faiss::fvecs2bitvecs(x, bits.data(), d, n);
        return bits;
    }
};

} // namespace faiss_bq
