// Plain Hamming over the bits of recurrent codes: the baseline of SDC at
// equal bits (bq_bench's "BQR<u> hamming" rows).
#pragma once

#include <faiss/Index.h>
#include <faiss/IndexBinaryFlat.h>
#include <faiss_bq/IndexBQRecurrent.h>
#include <faiss_bq/IndexBinaryFlatFast.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

namespace faiss_bq {

/** The n_stages sign planes of a trained IndexBQRecurrent's codes (no
 * scales, no offset) in a binary flat index, FAISS's IndexBinaryFlat or
 * faiss_bq's IndexBinaryFlatFast; queries are encoded by the same model and
 * search() returns Hamming distances over all their bits, every stage
 * weighted alike (what SDC's scales replace). */
struct IndexRecurrentHamming : faiss::Index {
    const IndexBQRecurrent& model;
    std::unique_ptr<faiss::IndexBinary> codes;

    IndexRecurrentHamming(const IndexBQRecurrent& model, bool faiss_flat)
            : faiss::Index(model.d, faiss::METRIC_L2), model(model) {
        const int bits = int(8 * plane_bits_bytes());
        codes.reset(
                faiss_flat ? static_cast<faiss::IndexBinary*>(
                                     new faiss::IndexBinaryFlat(bits))
                           : new IndexBinaryFlatFast(bits));
        codes->add(
                model.ntotal, planes(model.ntotal, model.codes.data()).data());
        ntotal = model.ntotal;
        is_trained = true;
    }

    void add(idx_t, const float*) override {
        FAISS_THROW_MSG("IndexRecurrentHamming: built from a trained model");
    }

    void search(
            idx_t n,
            const float* x,
            idx_t k,
            float* distances,
            idx_t* labels,
            const faiss::SearchParameters* params = nullptr) const override {
        std::vector<uint8_t> full(size_t(n) * model.code_size);
        model.sa_encode(n, x, full.data());
        std::vector<int32_t> hamming(size_t(n) * k);
        codes->search(
                n,
                planes(n, full.data()).data(),
                k,
                hamming.data(),
                labels,
                params);
        for (size_t i = 0; i < hamming.size(); i++) {
            distances[i] = float(hamming[i]);
        }
    }

    void reset() override {
        FAISS_THROW_MSG("IndexRecurrentHamming: built from a trained model");
    }

    size_t sa_code_size() const override {
        return plane_bits_bytes();
    }

   private:
    size_t plane_bits_bytes() const {
        return size_t(model.n_stages) * model.plane_bytes();
    }
    std::vector<uint8_t> planes(idx_t n, const uint8_t* full) const {
        const size_t pb = plane_bits_bytes();
        std::vector<uint8_t> out(size_t(n) * pb);
        for (size_t i = 0; i < size_t(n); i++) {
            std::memcpy(out.data() + i * pb, full + i * model.code_size, pb);
        }
        return out;
    }
};

} // namespace faiss_bq
