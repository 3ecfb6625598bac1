#include <faiss_bq/IndexFromBinary.h>

#include <faiss_bq/IndexBinaryFlatFast.h>
#include <faiss_bq/codes.h>
#include <faiss_bq/impl/validate.h>

#include <faiss/impl/FaissAssert.h>
#include <faiss/impl/IDSelector.h>

#include <algorithm>
#include <limits>
#include <vector>

namespace faiss_bq {

namespace {

/// Rows binarized per block (bounds the scratch of full codes).
constexpr size_t block_rows = 4096;

int checked_code_bits(idx_t d, int nbits, faiss::MetricType metric) {
    check_index_args("IndexFromBinary", d, nbits, metric);
    const CodeLayout layout(int(d), nbits);
    return int(8 * (layout.code_size - CodeLayout::factor_bytes));
}

void check_binary_index(const faiss::IndexBinary* index, int code_bits) {
    FAISS_THROW_IF_NOT_MSG(index, "IndexFromBinary: null binary index");
    FAISS_THROW_IF_NOT_FMT(
            index->d == code_bits,
            "IndexFromBinary: the binary index has d=%d bits but the plan's "
            "codes have %d bits (8 * nbits * ceil(d / 8))",
            int(index->d),
            code_bits);
}

} // namespace

IndexFromBinary::IndexFromBinary() {
    is_trained = false;
}

IndexFromBinary::IndexFromBinary(
        faiss::IndexBinary* index,
        idx_t d,
        int nbits,
        faiss::MetricType metric)
        : faiss::Index(d, metric), nbits(nbits), index(index) {
    check_binary_index(index, checked_code_bits(d, nbits, metric));
    ntotal = index->ntotal;
    is_trained = false;
}

IndexFromBinary::IndexFromBinary(
        faiss::IndexBinary* index,
        const BinarizationPlan& plan,
        faiss::MetricType metric)
        : IndexFromBinary(index, plan.d, plan.nbits, metric) {
    FAISS_THROW_IF_NOT_MSG(
            plan.is_trained(), "IndexFromBinary: the plan is not trained");
    this->plan = plan;
    is_trained = index->is_trained;
}

IndexFromBinary::~IndexFromBinary() {
    if (own_fields) {
        delete index;
    }
}

int IndexFromBinary::code_bits() const {
    return checked_code_bits(d, nbits, metric_type);
}

void IndexFromBinary::binarize(idx_t n, const float* x, uint8_t* bits) const {
    FAISS_THROW_IF_NOT_MSG(
            plan.is_trained(), "IndexFromBinary: the plan is not trained");
    const CodeLayout layout(int(d), nbits);
    const size_t bytes = layout.code_size - CodeLayout::factor_bytes;
    std::vector<uint8_t> codes;
    for (size_t i0 = 0; i0 < size_t(n); i0 += block_rows) {
        const size_t bn = std::min(block_rows, size_t(n) - i0);
        codes.resize(bn * layout.code_size);
        encode(plan, bn, x + i0 * d, codes.data());
        for (size_t i = 0; i < bn; i++) {
            std::copy_n(
                    codes.data() + i * layout.code_size,
                    bytes,
                    bits + (i0 + i) * bytes);
        }
    }
}

void IndexFromBinary::train(idx_t n, const float* x) {
    FAISS_THROW_IF_NOT_FMT(n >= 0, "IndexFromBinary::train: n=%ld", long(n));
    check_binary_index(index, code_bits());
    if (!plan.is_trained()) {
        FAISS_THROW_IF_NOT_FMT(
                ntotal == 0,
                "IndexFromBinary::train: the index holds %ld vectors; "
                "reset() first",
                long(ntotal));
        TrainerOptions options = trainer;
        options.nbits = nbits;
        options.metric = metric_type;
        options.verbose = verbose;
        options.estimator = Estimator::symmetric;
        plan = train_plan(size_t(n), size_t(d), x, options);
    }
    if (!index->is_trained) {
        check_finite("training", size_t(n), size_t(d), x);
        std::vector<uint8_t> bits(size_t(n) * code_bits() / 8);
        binarize(n, x, bits.data());
        index->train(n, bits.data());
    }
    is_trained = index->is_trained;
}

void IndexFromBinary::add(idx_t n, const float* x) {
    FAISS_THROW_IF_NOT_MSG(
            plan.is_trained(),
            "IndexFromBinary::add: the plan is not trained (train() first, "
            "or construct with a trained plan)");
    FAISS_THROW_IF_NOT_MSG(
            index->is_trained,
            "IndexFromBinary::add: the binary index is not trained");
    FAISS_THROW_IF_NOT_FMT(n >= 0, "IndexFromBinary::add: n=%ld", long(n));
    if (n == 0) {
        return;
    }
    check_finite("added", size_t(n), size_t(d), x);
    std::vector<uint8_t> bits(size_t(n) * code_bits() / 8);
    binarize(n, x, bits.data());
    index->add(n, bits.data());
    ntotal = index->ntotal;
}

void IndexFromBinary::reset() {
    index->reset();
    ntotal = 0;
}

size_t IndexFromBinary::remove_ids(const faiss::IDSelector& sel) {
    const size_t removed = index->remove_ids(sel);
    ntotal = index->ntotal;
    return removed;
}

void IndexFromBinary::search_binary(
        idx_t n,
        const uint8_t* bits,
        idx_t k,
        int32_t* distances,
        idx_t* labels,
        faiss::IDSelector* sel) const {
    if (!sel) {
        index->search(n, bits, k, distances, labels);
        return;
    }
    if (dynamic_cast<const IndexBinaryFlatFast*>(index)) {
        faiss::SearchParameters params;
        params.sel = sel;
        index->search(n, bits, k, distances, labels, &params);
        return;
    }
    // FAISS's binary indexes take no IDSelector: filter, growing k.
    const size_t code_bytes = size_t(index->code_size);
    for (idx_t q = 0; q < n; q++) {
        int32_t* D = distances + q * k;
        idx_t* I = labels + q * k;
        std::fill(D, D + k, std::numeric_limits<int32_t>::max());
        std::fill(I, I + k, idx_t(-1));
        std::vector<int32_t> cD;
        std::vector<idx_t> cI;
        for (idx_t kk = std::min(4 * k, std::max<idx_t>(ntotal, 1));;
             kk = std::min(4 * kk, ntotal)) {
            cD.resize(kk);
            cI.resize(kk);
            index->search(1, bits + q * code_bytes, kk, cD.data(), cI.data());
            idx_t found = 0;
            for (idx_t j = 0; j < kk && found < k; j++) {
                if (cI[j] >= 0 && sel->is_member(cI[j])) {
                    D[found] = cD[j];
                    I[found] = cI[j];
                    found++;
                }
            }
            if (found == k || kk >= ntotal) {
                break;
            }
        }
    }
}

void IndexFromBinary::search(
        idx_t n,
        const float* x,
        idx_t k,
        float* distances,
        idx_t* labels,
        const faiss::SearchParameters* params) const {
    check_search_args(
            "IndexFromBinary::search",
            is_trained && plan.is_trained(),
            n,
            d,
            x,
            k);
    if (n == 0) {
        return;
    }
    const int bits_per_code = code_bits();
    std::vector<uint8_t> bits(size_t(n) * bits_per_code / 8);
    binarize(n, x, bits.data());
    std::vector<int32_t> hamming(size_t(n) * k);
    search_binary(
            n,
            bits.data(),
            k,
            hamming.data(),
            labels,
            params ? params->sel : nullptr);
    const bool ip = metric_type == faiss::METRIC_INNER_PRODUCT;
    const float missing = ip ? -std::numeric_limits<float>::max()
                             : std::numeric_limits<float>::max();
    for (size_t i = 0; i < hamming.size(); i++) {
        distances[i] = labels[i] < 0 ? missing
                : ip                 ? float(bits_per_code - 2 * hamming[i])
                                     : float(hamming[i]);
    }
}

} // namespace faiss_bq
