#include <faiss_bq/codes.h>

#include <faiss_bq/kernels/kernels.h>

#include <faiss/impl/FaissAssert.h>

#include <algorithm>
#include <cmath>
#include <memory>
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
    build(std::vector<uint8_t>(d, uint8_t(nbits)),
          nbits * ((size_t(d) + 7) / 8));
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
    // Every coordinate at 1 bit: member m is coordinate m at bit m % 4 of
    // nibble m / 4, i.e. the rows are the code's single plane.
    rows_are_planes = plan.is_uniform() && plan.nbits == 1;
    for (size_t m = 0; rows_are_planes && m < members.size(); m++) {
        rows_are_planes =
                members[m].coord == int(m) && members[m].shift == int(m % 4);
    }
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

int NibbleLayout::code_nibble(
        const CodeLayout& layout,
        const uint8_t* code,
        size_t k) const {
    int v = 0;
    for (size_t m = begin[k]; m < begin[k + 1]; m++) {
        v |= layout.level_index(code, members[m].coord) << members[m].shift;
    }
    return v;
}

int NibbleLayout::used_bits(size_t k) const {
    int b = 0;
    for (size_t m = begin[k]; m < begin[k + 1]; m++) {
        b += members[m].nbits;
    }
    return b;
}

void NibbleLayout::float_tables(
        const BinarizationPlan& plan,
        const float* y,
        float* tables) const {
    float_tables(member_levels(plan).data(), y, tables);
}

std::vector<float> NibbleLayout::member_levels(
        const BinarizationPlan& plan) const {
    std::vector<float> levels(members.size() * 16);
    for (size_t m = 0; m < members.size(); m++) {
        for (int v = 0; v < 16; v++) {
            levels[16 * m + v] = member_level(plan, members[m], v);
        }
    }
    return levels;
}

void NibbleLayout::float_tables(
        const float* levels,
        const float* y,
        float* tables) const {
    for (size_t k = 0; k < n_nibbles; k++) {
        float s[16] = {};
        for (size_t m = begin[k]; m < begin[k + 1]; m++) {
            const float* level = levels + 16 * m;
            const float ym = y[members[m].coord];
            for (int v = 0; v < 16; v++) {
                s[v] += level[v] * ym;
            }
        }
        std::copy(s, s + 16, tables + 16 * k);
    }
}

void NibbleLayout::pack(
        const CodeLayout& layout,
        const uint8_t* code,
        uint8_t* blocks,
        size_t i) const {
    for (size_t k = 0; k < n_nibbles; k++) {
        const unsigned v = unsigned(code_nibble(layout, code, k));
        uint8_t& byte = blocks[nibble_byte(*this, i, k)];
        byte = k % 2 == 0 ? uint8_t((byte & 0xf0) | v)
                          : uint8_t((byte & 0x0f) | (v << 4));
    }
}

void NibbleLayout::pack_row(
        const CodeLayout& layout,
        const uint8_t* code,
        uint8_t* row) const {
    if (rows_are_planes) {
        std::memcpy(row, code, nbytes);
        return;
    }
    std::memset(row, 0, nbytes);
    for (size_t k = 0; k < n_nibbles; k++) {
        row[k / 2] |= uint8_t(code_nibble(layout, code, k) << (4 * (k % 2)));
    }
}

void NibbleLayout::unpack_row(
        const CodeLayout& layout,
        const uint8_t* row,
        uint8_t* code) const {
    std::memset(code, 0, layout.planes_size);
    for (size_t k = 0; k < n_nibbles; k++) {
        const int v = (row[k / 2] >> (4 * (k % 2))) & 15;
        for (size_t m = begin[k]; m < begin[k + 1]; m++) {
            const Member& mb = members[m];
            layout.set_level_index(
                    code, mb.coord, (v >> mb.shift) & ((1 << mb.nbits) - 1));
        }
    }
}

void NibbleLayout::rows_to_blocks(
        const uint8_t* rows,
        size_t row_stride,
        size_t n,
        uint8_t* blocks) const {
    const size_t bs = kernels::fast_scan_block;
    for (size_t b = 0; b * bs < n; b++) {
        kernels::rows_to_block(
                rows + b * bs * row_stride,
                row_stride,
                std::min(bs, n - b * bs),
                nbytes,
                blocks + b * block_bytes());
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

void NibbleLayout::unpack(
        const CodeLayout& layout,
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

namespace {

/// Lloyd iterations of a nibble's codebook at most; they stop earlier when
/// fewer than 1 point in joint_settled changes codeword (on use512-wordnet
/// at 128 B, stopping there rather than when none changes gave the same
/// recall, 0.881, in a third less training time).
constexpr int joint_max_iterations = 25;
constexpr size_t joint_settled = 1000;

/// Lloyd's k-means of n points to the K codewords c (K x dim), in place
/// from their initial values; a codeword without points keeps its place.
/// The points are stored by coordinate (p[t * n + i] is coordinate t of
/// point i), so that the nearest-codeword loop runs across points.
template <int dim>
void lloyd(size_t n, const float* p, int K, float* c) {
    std::vector<int> assign(n, -1), best(n);
    std::vector<float> best_err(n);
    std::vector<double> sums(size_t(K) * dim);
    std::vector<size_t> counts(K);
    for (int it = 0; it < joint_max_iterations; it++) {
        std::fill(best_err.begin(), best_err.end(), HUGE_VALF);
        float* be = best_err.data();
        int* bv = best.data();
        for (int v = 0; v < K; v++) {
            float cv[dim];
            for (int t = 0; t < dim; t++) {
                cv[t] = c[v * dim + t];
            }
            for (size_t i = 0; i < n; i++) {
                float err = 0;
                for (int t = 0; t < dim; t++) {
                    const float e = p[t * n + i] - cv[t];
                    err += e * e;
                }
                bv[i] = err < be[i] ? v : bv[i];
                be[i] = std::min(err, be[i]);
            }
        }
        size_t changed = 0;
        for (size_t i = 0; i < n; i++) {
            changed += assign[i] != best[i];
        }
        assign.swap(best);
        if (changed == 0 || (it > 0 && changed * joint_settled < n)) {
            break;
        }
        std::fill(sums.begin(), sums.end(), 0.0);
        std::fill(counts.begin(), counts.end(), 0);
        for (size_t i = 0; i < n; i++) {
            counts[assign[i]]++;
            for (int t = 0; t < dim; t++) {
                sums[assign[i] * dim + t] += p[t * n + i];
            }
        }
        for (int v = 0; v < K; v++) {
            for (int t = 0; t < dim && counts[v] > 0; t++) {
                c[v * dim + t] = float(sums[v * dim + t] / double(counts[v]));
            }
        }
    }
}

} // namespace

void fit_joint_codebooks(BinarizationPlan& plan, size_t n, const float* x) {
    FAISS_THROW_IF_NOT_MSG(
            plan.is_trained(), "fit_joint_codebooks: the plan is not trained");
    FAISS_THROW_IF_NOT_MSG(
            !plan.is_joint(), "fit_joint_codebooks: the plan is already joint");
    FAISS_THROW_IF_NOT_FMT(
            plan.quantization == Quantization::lloyd_max,
            "fit_joint_codebooks: quantization=%s: joint codewords are fitted "
            "on unscaled coordinates, EDEN and TurboQuant-MSE scale each "
            "vector",
            quantization_name(plan.quantization));
    FAISS_THROW_IF_NOT_FMT(
            n >= 16,
            "fit_joint_codebooks: n=%zu vectors, fewer than the 16 codewords "
            "of a nibble",
            n);
    const NibbleLayout nl(plan);
    const size_t d = plan.d;
    std::vector<float> y(n * d);
    plan.apply(n, x, y.data());
    // Start from the product of the scalar levels: codeword v of a nibble
    // is its members' levels of indices (v >> shift) & mask.
    std::vector<float> joint(d * 16, 0.f);
    for (const NibbleLayout::Member& mb : nl.members) {
        for (int v = 0; v < 16; v++) {
            joint[size_t(mb.coord) * 16 + v] =
                    NibbleLayout::member_level(plan, mb, v);
        }
    }
#pragma omp parallel for schedule(dynamic)
    for (size_t k = 0; k < nl.n_nibbles; k++) {
        const size_t m0 = nl.begin[k];
        const int dim = int(nl.begin[k + 1] - m0);
        if (dim < 2) {
            continue;
        }
        const int K = 1 << nl.used_bits(k);
        std::vector<float> p(n * dim), c(size_t(K) * dim);
        for (int t = 0; t < dim; t++) {
            const size_t j = nl.members[m0 + t].coord;
            for (size_t i = 0; i < n; i++) {
                p[t * n + i] = y[i * d + j];
            }
            for (int v = 0; v < K; v++) {
                c[v * dim + t] = joint[j * 16 + v];
            }
        }
        switch (dim) { // a nibble has 2 to 4 members
            case 2:
                lloyd<2>(n, p.data(), K, c.data());
                break;
            case 3:
                lloyd<3>(n, p.data(), K, c.data());
                break;
            default:
                lloyd<4>(n, p.data(), K, c.data());
                break;
        }
        // Values of v beyond the used bits never occur: they repeat the
        // codeword of v's used bits (as member_level does for scalar ones).
        for (int t = 0; t < dim; t++) {
            const size_t j = nl.members[m0 + t].coord;
            for (int v = 0; v < 16; v++) {
                joint[j * 16 + v] = c[(v & (K - 1)) * dim + t];
            }
        }
    }
    plan.joint_levels = std::move(joint);
    if (!plan.is_uniform()) {
        plan.predicted_distortion = float(plan.distortion(n, x));
    }
}

size_t code_size(int d, int nbits) {
    FAISS_THROW_IF_NOT_FMT(d > 0, "d=%d: must be > 0", d);
    FAISS_THROW_IF_NOT_FMT(
            nbits == 1 || nbits == 2, "nbits=%d: must be 1 or 2", nbits);
    return CodeLayout(d, nbits).code_size;
}

Quantizer::Quantizer(const BinarizationPlan& plan) : plan(plan) {
    if (!plan.is_joint()) {
        return;
    }
    nibbles = NibbleLayout(plan);
    for (size_t k = 0; k < nibbles.n_nibbles; k++) {
        offset.push_back(codewords.size());
        for (int v = 0; v < (1 << nibbles.used_bits(k)); v++) {
            for (size_t m = nibbles.begin[k]; m < nibbles.begin[k + 1]; m++) {
                codewords.push_back(
                        plan.joint_levels
                                [size_t(nibbles.members[m].coord) * 16 + v]);
            }
        }
    }
    offset.push_back(codewords.size());
}

namespace {

/// Index of the codeword (dim values each) nearest to p among n at cw.
template <int dim>
int nearest(const float* p, const float* cw, int n) {
    int best = 0;
    float best_err = HUGE_VALF;
    for (int v = 0; v < n; v++) {
        float err = 0;
        for (int t = 0; t < dim; t++) {
            const float e = p[t] - cw[v * dim + t];
            err += e * e;
        }
        if (err < best_err) {
            best_err = err;
            best = v;
        }
    }
    return best;
}

} // namespace

void Quantizer::operator()(const float* y, int* q, float* r_hat) const {
    const int d = plan.d;
    if (!plan.is_joint()) {
        const float u = plan.unit_scale(y); // EDEN: y scaled to norm sqrt(d)
        for (int j = 0; j < d; j++) {
            q[j] = plan.quantize(j, y[j] * u);
            r_hat[j] = plan.level(j, q[j]);
        }
        return;
    }
    for (int j = 0; j < d; j++) {
        if (plan.bits[j] == 0) {
            q[j] = 0;
            r_hat[j] = plan.level(j, 0);
        }
    }
    for (size_t k = 0; k < nibbles.n_nibbles; k++) {
        const NibbleLayout::Member* mb =
                nibbles.members.data() + nibbles.begin[k];
        const int dim = int(nibbles.begin[k + 1] - nibbles.begin[k]);
        float p[4];
        for (int t = 0; t < dim; t++) {
            p[t] = y[mb[t].coord];
        }
        const float* cw = codewords.data() + offset[k];
        const int n = int(offset[k + 1] - offset[k]) / dim;
        const int v = dim == 1 ? nearest<1>(p, cw, n)
                : dim == 2     ? nearest<2>(p, cw, n)
                : dim == 3     ? nearest<3>(p, cw, n)
                               : nearest<4>(p, cw, n);
        for (int t = 0; t < dim; t++) {
            q[mb[t].coord] = (v >> mb[t].shift) & ((1 << mb[t].nbits) - 1);
            r_hat[mb[t].coord] = cw[v * dim + t];
        }
    }
}

void encode(
        const BinarizationPlan& plan,
        size_t n,
        const float* x,
        uint8_t* codes) {
    const CodeLayout layout(plan);
    const Quantizer quantize(plan);
    const size_t d = plan.d;
    for (size_t i0 = 0; i0 < n; i0 += block_rows) {
        const size_t bn = std::min(block_rows, n - i0);
        std::vector<float> y(bn * d);
        plan.apply(bn, x + i0 * d, y.data());
#pragma omp parallel if (bn > 64)
        {
            std::vector<int> qs(d);
            std::vector<float> rh(d);
#pragma omp for
            for (size_t i = 0; i < bn; i++) {
                const float* yi = y.data() + i * d;
                uint8_t* code = codes + (i0 + i) * layout.code_size;
                std::fill(code, code + layout.code_size, 0);
                const float* xi = x + (i0 + i) * d;
                quantize(yi, qs.data(), rh.data());
                double norm2 = 0, dot = 0, rhat2 = 0, center_dot = 0;
                for (size_t j = 0; j < d; j++) {
                    layout.set_level_index(code, j, qs[j]);
                    const double l = rh[j];
                    norm2 += double(yi[j]) * yi[j];
                    dot += l * yi[j];
                    rhat2 += l * l;
                    center_dot +=
                            double(xi[j] - plan.center[j]) * plan.center[j];
                }
                // A reconstruction nearly orthogonal to the residual gives no
                // usable direction (and an unbounded scale): the vector is then
                // scored as the centre. Below cos = 1e-3 only for degenerate
                // plans; real data sits near sqrt(2/pi) at 1 bit.
                const bool usable = dot > 1e-3 * std::sqrt(norm2 * rhat2);
                uint8_t* factors = code + layout.planes_size;
                store_float(factors, float(norm2));
                // TurboQuant-MSE: the levels are in units of |r| / sqrt(d).
                store_float(
                        factors + sizeof(float),
                        plan.quantization == Quantization::turbo_mse
                                ? float(std::sqrt(norm2 / double(d)))
                                : usable ? float(norm2 / dot)
                                         : 0.f);
                store_float(factors + 2 * sizeof(float), float(center_dot));
            }
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
    std::unique_ptr<NibbleLayout> nl;
    if (plan.is_joint()) {
        nl.reset(new NibbleLayout(plan));
    }
#pragma omp parallel for if (bn > 64)
    for (size_t i = 0; i < bn; i++) {
        const uint8_t* code = codes + i * layout.code_size;
        float* o = out + i * d;
        if (nl) {
            for (size_t j = 0; j < d; j++) {
                o[j] = plan.level(j, 0); // 0-bit coordinates
            }
            for (size_t k = 0; k < nl->n_nibbles; k++) {
                const int v = nl->code_nibble(layout, code, k);
                for (size_t m = nl->begin[k]; m < nl->begin[k + 1]; m++) {
                    o[nl->members[m].coord] =
                            NibbleLayout::member_level(plan, nl->members[m], v);
                }
            }
        } else {
            for (size_t j = 0; j < d; j++) {
                o[j] = plan.level(j, layout.level_index(code, j));
            }
        }
        double rhat2 = 0;
        for (size_t j = 0; j < d; j++) {
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
    decode_residuals(plan, CodeLayout(plan), n, codes, y);
}

void decode_residuals(
        const BinarizationPlan& plan,
        const CodeLayout& layout,
        size_t n,
        const uint8_t* codes,
        float* y) {
    // Least-squares scale <r_hat, r> / |r_hat|^2 = |r|^2 / (a |r_hat|^2),
    // with a = estimate_scale: the reconstruction closest to the residual.
    // TurboQuant-MSE's scale is already that of the quantizer's nearest point.
    const bool mse = plan.quantization == Quantization::turbo_mse;
    scaled_levels(
            plan, layout, n, codes, y, [&](const uint8_t* code, double rhat2) {
                const float a = layout.estimate_scale(code);
                if (mse) {
                    return a;
                }
                return a > 0 && rhat2 > 0
                        ? float(layout.residual_norm2(code) / (a * rhat2))
                        : 0.f;
            });
}

void decode(
        const BinarizationPlan& plan,
        size_t n,
        const uint8_t* codes,
        float* x) {
    const CodeLayout layout(plan);
    const size_t d = plan.d;
    std::vector<float> y;
    for (size_t i0 = 0; i0 < n; i0 += block_rows) {
        const size_t bn = std::min(block_rows, n - i0);
        y.resize(bn * d);
        decode_residuals(
                plan, layout, bn, codes + i0 * layout.code_size, y.data());
        plan.apply_inverse(bn, y.data(), x + i0 * d);
    }
}

void estimate_vectors(
        const BinarizationPlan& plan,
        size_t n,
        const uint8_t* codes,
        float* e) {
    const CodeLayout layout(plan);
    scaled_levels(plan, layout, n, codes, e, [&](const uint8_t* code, double) {
        return layout.estimate_scale(code);
    });
}

void code_values(
        const CodeLayout& layout,
        size_t n,
        const uint8_t* codes,
        float* s) {
    const int top = (1 << layout.nbits) - 1;
    for (size_t i = 0; i < n; i++) {
        const uint8_t* code = codes + i * layout.code_size;
        for (int j = 0; j < layout.d; j++) {
            s[i * layout.d + j] = float(2 * layout.level_index(code, j) - top);
        }
    }
}

} // namespace faiss_bq
