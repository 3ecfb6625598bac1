#include <faiss_bq/codes.h>

#include <faiss_bq/kernels/kernels.h>

#include <faiss/impl/FaissAssert.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace faiss_bq {

namespace {

/// Rows per block of encode / decode: bounds the float scratch (block x d).
constexpr size_t block_rows = 1024;

void store_float(uint8_t* p, float f) {
    std::memcpy(p, &f, sizeof(f));
}

} // namespace

CodeLayout::CodeLayout(int d, int nbits) : d(d), nbits(nbits) {
    build(std::vector<uint8_t>(d, uint8_t(nbits)), nbits * ((size_t(d) + 7) / 8));
}

CodeLayout::CodeLayout(const BinarizationPlan& plan)
        : d(plan.d), nbits(plan.nbits) {
    build(plan.bits, plan.code_bytes);
}

void CodeLayout::build(const std::vector<uint8_t>& bits, size_t planes) {
    plane_bytes = (size_t(d) + 7) / 8;
    group_of.assign(d, -1);
    slot_of.assign(d, 0);
    size_t offset = 0;
    for (int b = 1; b <= 4; b++) {
        Group g;
        g.nbits = b;
        g.offset = offset;
        for (int j = 0; j < d; j++) {
            if (bits[j] == b) {
                group_of[j] = int(groups.size());
                slot_of[j] = int(g.coords.size());
                g.coords.push_back(j);
            }
        }
        if (g.coords.empty()) {
            continue;
        }
        g.plane_bytes = (g.coords.size() + 7) / 8;
        offset += b * g.plane_bytes;
        groups.push_back(std::move(g));
    }
    FAISS_THROW_IF_NOT_FMT(
            offset <= planes,
            "code layout: the groups need %zu bytes of planes, the plan "
            "gives %zu",
            offset,
            planes);
    planes_size = planes;
    code_size = planes_size + factor_bytes;
}

NibbleLayout::NibbleLayout(const BinarizationPlan& plan) {
    std::vector<int> of_bits[5];
    for (int j = 0; j < plan.d; j++) {
        of_bits[plan.bits[j]].push_back(j);
    }
    std::vector<int>& ones = of_bits[1];
    size_t next_one = 0;
    auto add_ones = [&](int shift) { // 1-bit coordinates from bit `shift` up
        for (; shift < 4 && next_one < ones.size(); shift++) {
            members.push_back({ones[next_one++], 1, shift});
        }
    };
    auto close = [&] { begin.push_back(members.size()); };
    begin.push_back(0);
    for (int j : of_bits[4]) {
        members.push_back({j, 4, 0});
        close();
    }
    for (int j : of_bits[3]) {
        members.push_back({j, 3, 0});
        if (next_one < ones.size()) {
            members.push_back({ones[next_one++], 1, 3});
        }
        close();
    }
    const std::vector<int>& twos = of_bits[2];
    for (size_t i = 0; i < twos.size(); i += 2) {
        members.push_back({twos[i], 2, 0});
        if (i + 1 < twos.size()) {
            members.push_back({twos[i + 1], 2, 2});
        } else {
            add_ones(2);
        }
        close();
    }
    while (next_one < ones.size()) {
        add_ones(0);
        close();
    }
    n_nibbles = begin.size() - 1;
    nbytes = (n_nibbles + 1) / 2;
    FAISS_ASSERT(nbytes == nibble_layout_bytes(plan.bits_histogram()));
}

size_t NibbleLayout::block_bytes() const {
    return kernels::fast_scan_block * nbytes;
}

size_t NibbleLayout::blocks_bytes(size_t n) const {
    const size_t bs = kernels::fast_scan_block;
    return (n + bs - 1) / bs * block_bytes();
}

namespace {

/// Byte of vector i that holds nibble k (in its low half when k is even).
inline size_t nibble_byte(const NibbleLayout& nl, size_t i, size_t k) {
    const size_t bs = kernels::fast_scan_block;
    return i / bs * nl.block_bytes() + k / 2 * bs + i % bs;
}

} // namespace

void NibbleLayout::pack(const CodeLayout& layout,
                        const uint8_t* code,
                        uint8_t* blocks,
                        size_t i) const {
    for (size_t k = 0; k < n_nibbles; k++) {
        unsigned v = 0;
        for (size_t m = begin[k]; m < begin[k + 1]; m++) {
            v |= unsigned(layout.level_index(code, members[m].coord))
                    << members[m].shift;
        }
        uint8_t& byte = blocks[nibble_byte(*this, i, k)];
        byte = k % 2 == 0 ? uint8_t((byte & 0xf0) | v)
                          : uint8_t((byte & 0x0f) | (v << 4));
    }
}

int NibbleLayout::nibble(const uint8_t* blocks, size_t i, size_t k) const {
    const uint8_t byte = blocks[nibble_byte(*this, i, k)];
    return k % 2 == 0 ? byte & 15 : byte >> 4;
}

void NibbleLayout::copy_vector(uint8_t* blocks, size_t from, size_t i) const {
    for (size_t k = 0; k < n_nibbles; k += 2) {
        blocks[nibble_byte(*this, i, k)] = blocks[nibble_byte(*this, from, k)];
    }
}

void NibbleLayout::clear_vector(uint8_t* blocks, size_t i) const {
    for (size_t k = 0; k < n_nibbles; k += 2) {
        blocks[nibble_byte(*this, i, k)] = 0;
    }
}

void NibbleLayout::unpack(const CodeLayout& layout,
                          const uint8_t* blocks,
                          size_t i,
                          uint8_t* code) const {
    std::memset(code, 0, layout.planes_size);
    for (size_t k = 0; k < n_nibbles; k++) {
        const int v = nibble(blocks, i, k);
        for (size_t m = begin[k]; m < begin[k + 1]; m++) {
            const Member& mb = members[m];
            layout.set_level_index(
                    code, mb.coord, (v >> mb.shift) & ((1 << mb.nbits) - 1));
        }
    }
}

size_t code_size(int d, int nbits) {
    FAISS_THROW_IF_NOT_FMT(d > 0, "d=%d: must be > 0", d);
    FAISS_THROW_IF_NOT_FMT(
            nbits == 1 || nbits == 2, "nbits=%d: must be 1 or 2", nbits);
    return CodeLayout(d, nbits).code_size;
}

void encode(const BinarizationPlan& plan, size_t n, const float* x, uint8_t* codes) {
    const CodeLayout layout(plan);
    const size_t d = plan.d;
    for (size_t i0 = 0; i0 < n; i0 += block_rows) {
        const size_t bn = std::min(block_rows, n - i0);
        std::vector<float> y(bn * d);
        plan.apply(bn, x + i0 * d, y.data());
#pragma omp parallel for if (bn > 64)
        for (size_t i = 0; i < bn; i++) {
            const float* yi = y.data() + i * d;
            uint8_t* code = codes + (i0 + i) * layout.code_size;
            std::fill(code, code + layout.code_size, 0);
            const float* xi = x + (i0 + i) * d;
            double norm2 = 0, dot = 0, rhat2 = 0, center_dot = 0;
            for (size_t j = 0; j < d; j++) {
                const int q = plan.quantize(j, yi[j]);
                layout.set_level_index(code, j, q);
                const double l = plan.level(j, q);
                norm2 += double(yi[j]) * yi[j];
                dot += l * yi[j];
                rhat2 += l * l;
                center_dot += double(xi[j] - plan.center[j]) * plan.center[j];
            }
            // A reconstruction nearly orthogonal to the residual gives no
            // usable direction (and an unbounded scale): the vector is then
            // scored as the centre. Below cos = 1e-3 only for degenerate
            // plans; real data sits near sqrt(2/pi) at 1 bit.
            const bool usable = dot > 1e-3 * std::sqrt(norm2 * rhat2);
            uint8_t* factors = code + layout.planes_size;
            store_float(factors, float(norm2));
            store_float(factors + sizeof(float), usable ? float(norm2 / dot) : 0.f);
            store_float(factors + 2 * sizeof(float), float(center_dot));
        }
    }
}

namespace {

/// r_hat (the levels of each coordinate) times a per-vector scale, for the
/// codes of rows [i0, i0 + bn); scale(code, rhat2) gives the scale.
template <typename Scale>
void scaled_levels(
        const BinarizationPlan& plan,
        const CodeLayout& layout,
        size_t bn,
        const uint8_t* codes,
        float* out,
        Scale scale) {
    const size_t d = plan.d;
#pragma omp parallel for if (bn > 64)
    for (size_t i = 0; i < bn; i++) {
        const uint8_t* code = codes + i * layout.code_size;
        float* o = out + i * d;
        double rhat2 = 0;
        for (size_t j = 0; j < d; j++) {
            o[j] = plan.level(j, layout.level_index(code, j));
            rhat2 += double(o[j]) * o[j];
        }
        const float s = scale(code, rhat2);
        for (size_t j = 0; j < d; j++) {
            o[j] *= s;
        }
    }
}

} // namespace

void decode_residuals(
        const BinarizationPlan& plan,
        size_t n,
        const uint8_t* codes,
        float* y) {
    const CodeLayout layout(plan);
    // Least-squares scale <r_hat, r> / |r_hat|^2 = |r|^2 / (a |r_hat|^2),
    // with a = estimate_scale: the reconstruction closest to the residual.
    scaled_levels(plan, layout, n, codes, y, [&](const uint8_t* code, double rhat2) {
        const float a = layout.estimate_scale(code);
        return a > 0 && rhat2 > 0
                ? float(layout.residual_norm2(code) / (a * rhat2))
                : 0.f;
    });
}

void decode(const BinarizationPlan& plan, size_t n, const uint8_t* codes, float* x) {
    const CodeLayout layout(plan);
    const size_t d = plan.d;
    std::vector<float> y;
    for (size_t i0 = 0; i0 < n; i0 += block_rows) {
        const size_t bn = std::min(block_rows, n - i0);
        y.resize(bn * d);
        decode_residuals(plan, bn, codes + i0 * layout.code_size, y.data());
        plan.apply_inverse(bn, y.data(), x + i0 * d);
    }
}

void estimate_vectors(
        const BinarizationPlan& plan,
        size_t n,
        const uint8_t* codes,
        float* e) {
    const CodeLayout layout(plan);
    scaled_levels(plan, layout, n, codes, e,
                  [&](const uint8_t* code, double) {
                      return layout.estimate_scale(code);
                  });
}

void code_values(const CodeLayout& layout, size_t n, const uint8_t* codes, float* s) {
    const int top = (1 << layout.nbits) - 1;
    for (size_t i = 0; i < n; i++) {
        const uint8_t* code = codes + i * layout.code_size;
        for (int j = 0; j < layout.d; j++) {
            s[i * layout.d + j] = float(2 * layout.level_index(code, j) - top);
        }
    }
}

} // namespace faiss_bq
