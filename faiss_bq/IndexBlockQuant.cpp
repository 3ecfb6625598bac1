#include <faiss_bq/IndexBlockQuant.h>

#include <faiss_bq/impl/blas.h>
#include <faiss_bq/impl/merge_heaps.h>
#include <faiss_bq/impl/validate.h>
#include <faiss_bq/kernels/kernels.h>

#include <faiss/VectorTransform.h>
#include <faiss/impl/FaissAssert.h>
#include <faiss/utils/Heap.h>
#include <faiss/utils/distances.h>
#include <faiss/utils/random.h>
#include <faiss/utils/utils.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>

namespace faiss_bq {

namespace {

constexpr const char* kWho = "IndexBlockQuant";

/// Row-major Y (n x D) = X A^T for row-major X (n x d), A (D x d).
void apply_rotation(
        size_t n,
        int d,
        int D,
        const float* x,
        const float* a,
        float* y) {
    FINTEGER m = D, nn = FINTEGER(n), k = d, lda = d, ldy = D;
    float one = 1, zero = 0;
    sgemm_("T", "N", &m, &nn, &k, &one, a, &lda, x, &lda, &zero, y, &ldy);
}

/** Lloyd-Max levels (n_levels, increasing) of the empirical distribution
 * of s: from the quantile midpoints, alternate cells (midpoints between
 * levels) and levels (cell means) until no level moves. */
std::vector<float> lloyd_max_1d(std::vector<float> s, int n_levels) {
    std::sort(s.begin(), s.end());
    const size_t n = s.size();
    std::vector<double> prefix(n + 1, 0.0);
    for (size_t i = 0; i < n; i++) {
        prefix[i + 1] = prefix[i] + s[i];
    }
    std::vector<float> levels(n_levels);
    for (int l = 0; l < n_levels; l++) {
        levels[l] =
                s[std::min(n - 1, (2 * size_t(l) + 1) * n / (2 * n_levels))];
    }
    for (int it = 0; it < 200; it++) {
        bool moved = false;
        size_t begin = 0;
        for (int l = 0; l < n_levels; l++) {
            size_t end = n;
            if (l + 1 < n_levels) {
                const float t = 0.5f * (levels[l] + levels[l + 1]);
                end = size_t(
                        std::lower_bound(s.begin(), s.end(), t) - s.begin());
            }
            if (end > begin) {
                const float v = float(
                        (prefix[end] - prefix[begin]) / double(end - begin));
                moved |= v != levels[l];
                levels[l] = v;
            }
            begin = std::max(begin, end);
        }
        if (!moved) {
            break;
        }
    }
    std::sort(levels.begin(), levels.end());
    return levels;
}

/// Index of the level nearest to v (levels increasing).
int nearest_level(const std::vector<float>& levels, float v) {
    int best = 0;
    for (int l = 1; l < int(levels.size()); l++) {
        if (std::fabs(levels[l] - v) < std::fabs(levels[best] - v)) {
            best = l;
        }
    }
    return best;
}

/// <a, b> over k floats, summed in order (inlined: k is 2..32, where a
/// library call per codeword costs more than the products).
inline float dot(const float* a, const float* b, int k) {
    float s = 0;
    for (int t = 0; t < k; t++) {
        s += a[t] * b[t];
    }
    return s;
}

/// Index of the codeword of largest <c_j, v> (the nearest unit vector to
/// the direction of v), the first on ties.
int nearest_codeword(const float* codebook, int ncodes, int k, const float* v) {
    int best = 0;
    float best_ip = -HUGE_VALF;
    for (int j = 0; j < ncodes; j++) {
        const float ip = dot(codebook + j * k, v, k);
        if (ip > best_ip) {
            best_ip = ip;
            best = j;
        }
    }
    return best;
}

/// A cache of the data-free parts of the model (a pure function of their
/// arguments), so that building many indexes costs one Lloyd run each.
template <class Key>
const std::vector<float>& cached(
        const Key& key,
        std::vector<float> (*make)(const Key&)) {
    static std::mutex mutex;
    static std::map<Key, std::vector<float>> cache;
    std::lock_guard<std::mutex> lock(mutex);
    auto it = cache.find(key);
    if (it == cache.end()) {
        it = cache.emplace(key, make(key)).first;
    }
    return it->second;
}

using CodeKey = std::tuple<int, int, int>; // k, m, seed

std::vector<float> make_spherical_code(const CodeKey& key) {
    const int k = std::get<0>(key), ncodes = 1 << std::get<1>(key);
    const int seed = std::get<2>(key);
    // 64 points per codeword: each cell's mean from enough points that the
    // codebook's distortion is within a percent of its limit (measured).
    const size_t np = size_t(ncodes) * 64;
    std::vector<float> pts(np * k);
    faiss::float_randn(pts.data(), pts.size(), seed);
    faiss::fvec_renorm_L2(k, np, pts.data());
    std::vector<float> codes(pts.begin(), pts.begin() + size_t(ncodes) * k);
    std::vector<int> assign(np, -1);
    std::vector<double> sums(size_t(ncodes) * k);
    for (int it = 0; it < 40; it++) {
        bool changed = false;
        for (size_t i = 0; i < np; i++) {
            const int j =
                    nearest_codeword(codes.data(), ncodes, k, &pts[i * k]);
            changed |= j != assign[i];
            assign[i] = j;
        }
        if (!changed) {
            break;
        }
        std::fill(sums.begin(), sums.end(), 0.0);
        for (size_t i = 0; i < np; i++) {
            for (int t = 0; t < k; t++) {
                sums[size_t(assign[i]) * k + t] += pts[i * k + t];
            }
        }
        // The centroid's direction (spherical k-means); an empty cell keeps
        // its codeword.
        for (int j = 0; j < ncodes; j++) {
            double norm2 = 0;
            for (int t = 0; t < k; t++) {
                norm2 += sums[size_t(j) * k + t] * sums[size_t(j) * k + t];
            }
            if (norm2 > 0) {
                const double inv = 1 / std::sqrt(norm2);
                for (int t = 0; t < k; t++) {
                    codes[size_t(j) * k + t] =
                            float(sums[size_t(j) * k + t] * inv);
                }
            }
        }
    }
    return codes;
}

using LevelKey = std::tuple<int, int, int, int>; // D, k, n_levels, seed

std::vector<float> make_oblivious_levels(const LevelKey& key) {
    const int D = std::get<0>(key), k = std::get<1>(key);
    const int n_levels = std::get<2>(key), seed = std::get<3>(key);
    // rho^2 = G_k / (G_k + G_rest), G chi-squared: the block's and the
    // rest's squared norms of a standard Gaussian vector of R^D (whose
    // direction is uniform). G_rest by its Wilson-Hilferty cube (relative
    // error under 1e-3 beyond 32 degrees of freedom), else exactly.
    // 2^18 draws: the extreme levels (tail means) within 1% (measured
    // against 2^20).
    const size_t ns = size_t(1) << 18;
    const int rest = D - k;
    const bool exact = rest <= 32;
    const int per = k + (exact ? rest : 1);
    std::vector<float> g(ns * per);
    faiss::float_randn(g.data(), g.size(), seed + 1);
    std::vector<float> rho(ns);
    for (size_t i = 0; i < ns; i++) {
        const float* gi = g.data() + i * per;
        double block = 0, other = 0;
        for (int t = 0; t < k; t++) {
            block += double(gi[t]) * gi[t];
        }
        if (exact) {
            for (int t = k; t < per; t++) {
                other += double(gi[t]) * gi[t];
            }
        } else if (rest > 0) {
            const double v = 2.0 / (9.0 * rest);
            const double c = std::max(0.0, 1 - v + gi[k] * std::sqrt(v));
            other = rest * c * c * c;
        }
        rho[i] = float(std::sqrt(block / std::max(block + other, 1e-30)));
    }
    return lloyd_max_1d(std::move(rho), n_levels);
}

/** Encodes one rotated row y (D values): code bytes (n_blocks) and returns
 * |y| and <rho_hat c, y> (the reconstruction relative to |y|, against y). */
void encode_row(
        const IndexBlockQuant& index,
        const float* y,
        uint8_t* code,
        double& norm,
        double& yhat_y) {
    const int k = index.block_size, m = index.direction_bits;
    const int nb = index.n_blocks();
    double n2 = 0;
    for (int t = 0; t < index.padded_d; t++) {
        n2 += double(y[t]) * y[t];
    }
    norm = std::sqrt(n2);
    yhat_y = 0;
    for (int b = 0; b < nb; b++) {
        const float* yb = y + b * k;
        const int j = nearest_codeword(index.codebook.data(), 1 << m, k, yb);
        const double rb = std::sqrt(double(faiss::fvec_norm_L2sqr(yb, k)));
        const int l = nearest_level(
                index.norm_levels, norm > 0 ? float(rb / norm) : 0.f);
        code[b] = uint8_t((l << m) | j);
        yhat_y += double(index.norm_levels[l]) *
                dot(index.codebook.data() + size_t(j) * k, yb, k);
    }
}

/// The model's sizes fit its settings (fields set after construction
/// would make the scan read out of bounds). `who` names the method.
void check_model(const IndexBlockQuant& index, const char* who) {
    const int k = index.block_size, m = index.direction_bits;
    IndexBlockQuant::check_settings(index.d, k, m);
    FAISS_THROW_IF_NOT_FMT(
            index.padded_d == IndexBlockQuant::padded_dim(index.d) &&
                    index.code_size ==
                            IndexBlockQuant::code_size_for(index.d, k) &&
                    index.center.size() == size_t(index.d) &&
                    index.rotation.size() == size_t(index.padded_d) * index.d &&
                    index.codebook.size() == (size_t(k) << m) &&
                    index.norm_levels.size() == (size_t(1) << (8 - m)),
            "%s::%s: the model (padded_d=%d code_size=%zu codebook=%zu "
            "norm_levels=%zu) does not fit d=%d block_size=%d "
            "direction_bits=%d: settings changed after construction",
            kWho,
            who,
            index.padded_d,
            index.code_size,
            index.codebook.size(),
            index.norm_levels.size(),
            index.d,
            k,
            m);
}

/// One query's tables and the scores of a block of codes.
struct BlockQuantScanner {
    const IndexBlockQuant& index;
    std::vector<float> lut, sums, scores;
    float query_const = 0; ///< |yq|^2 (L2) or <q, center> (inner product)
    static constexpr size_t block = 256;

    explicit BlockQuantScanner(const IndexBlockQuant& index)
            : index(index),
              lut(size_t(index.n_blocks()) * kernels::lut_entries),
              sums(block),
              scores(block) {}

    /// q and its yq = R (q - center).
    void set_query(const float* q, const float* yq) {
        const int k = index.block_size, m = index.direction_bits;
        const int ncodes = 1 << m, nl = int(index.norm_levels.size());
        query_const = index.metric_type == faiss::METRIC_L2
                ? faiss::fvec_norm_L2sqr(yq, index.padded_d)
                : faiss::fvec_inner_product(q, index.center.data(), index.d);
        for (int b = 0; b < index.n_blocks(); b++) {
            float* l = lut.data() + size_t(b) * kernels::lut_entries;
            for (int j = 0; j < ncodes; j++) {
                const float ip = dot(
                        index.codebook.data() + size_t(j) * k, yq + b * k, k);
                for (int lv = 0; lv < nl; lv++) {
                    l[(lv << m) | j] = index.norm_levels[lv] * ip;
                }
            }
        }
    }

    void score_block(const uint8_t* codes, size_t n) {
        const size_t cs = index.code_size, nb = size_t(index.n_blocks());
        kernels::lut_scan_block(codes, n, cs, nb, 1, lut.data(), sums.data());
        const float w = index.metric_type == faiss::METRIC_L2 ? -2.f : 1.f;
        for (size_t i = 0; i < n; i++) {
            float f[2]; // offset, scale
            std::memcpy(f, codes + i * cs + nb, sizeof(f));
            scores[i] = query_const + f[0] + w * f[1] * sums[i];
        }
    }
};

} // namespace

void IndexBlockQuant::check_settings(
        int d,
        int block_size,
        int direction_bits) {
    FAISS_THROW_IF_NOT_FMT(d > 0, "%s: d=%d must be > 0", kWho, d);
    FAISS_THROW_IF_NOT_FMT(
            block_size >= 2 && block_size <= 32,
            "%s: block_size=%d must be in 2..32",
            kWho,
            block_size);
    FAISS_THROW_IF_NOT_FMT(
            padded_dim(d) % block_size == 0,
            "%s: block_size=%d does not divide the padded dimension %d (d=%d "
            "rounded up to a multiple of 8)",
            kWho,
            block_size,
            padded_dim(d),
            d);
    FAISS_THROW_IF_NOT_FMT(
            direction_bits >= 1 && direction_bits <= 8,
            "%s: direction_bits=%d must be in 1..8 (one byte per block holds "
            "the direction and the norm level)",
            kWho,
            direction_bits);
}

size_t IndexBlockQuant::code_size_for(int d, int block_size) {
    return size_t(padded_dim(d) / block_size) + 2 * sizeof(float);
}

std::vector<float> IndexBlockQuant::spherical_code(int k, int m, int seed) {
    FAISS_THROW_IF_NOT_FMT(
            k >= 2 && k <= 32 && m >= 1 && m <= 8,
            "%s::spherical_code: k=%d, m=%d (need 2..32, 1..8)",
            kWho,
            k,
            m);
    return cached(CodeKey{k, m, seed}, make_spherical_code);
}

std::vector<float> IndexBlockQuant::oblivious_norm_levels(
        int D,
        int k,
        int n_levels,
        int seed) {
    FAISS_THROW_IF_NOT_FMT(
            k >= 1 && D >= k && n_levels >= 1 && n_levels <= 128,
            "%s::oblivious_norm_levels: D=%d, k=%d, n_levels=%d",
            kWho,
            D,
            k,
            n_levels);
    return cached(LevelKey{D, k, n_levels, seed}, make_oblivious_levels);
}

IndexBlockQuant::IndexBlockQuant() : IndexBlockQuant(8, 8, 8) {}

IndexBlockQuant::IndexBlockQuant(
        idx_t d,
        int block_size,
        int direction_bits,
        faiss::MetricType metric,
        bool oblivious,
        int seed)
        : faiss::IndexFlatCodes(0, d, metric),
          block_size(block_size),
          direction_bits(direction_bits),
          oblivious(oblivious),
          seed(seed) {
    FAISS_THROW_IF_NOT_FMT(
            d > 0 && d <= (1 << 20),
            "%s: d=%ld must be in 1..2^20",
            kWho,
            long(d));
    check_settings(int(d), block_size, direction_bits);
    FAISS_THROW_IF_NOT_FMT(
            metric == faiss::METRIC_L2 || metric == faiss::METRIC_INNER_PRODUCT,
            "%s: metric=%d: only METRIC_L2 and METRIC_INNER_PRODUCT",
            kWho,
            int(metric));
    padded_d = padded_dim(int(d));
    code_size = code_size_for(int(d), block_size);
    center.assign(size_t(d), 0.f);
    faiss::RandomRotationMatrix rr(int(d), padded_d);
    rr.init(seed);
    rotation = rr.A;
    codebook = spherical_code(block_size, direction_bits, seed);
    norm_levels = oblivious_norm_levels(
            padded_d, block_size, 1 << (8 - direction_bits), seed);
    is_trained = oblivious;
}

void IndexBlockQuant::transform(idx_t n, const float* x, float* y) const {
    std::vector<float> c(size_t(n) * d);
    for (size_t i = 0; i < size_t(n); i++) {
        for (int j = 0; j < d; j++) {
            c[i * d + j] = x[i * d + j] - center[j];
        }
    }
    apply_rotation(size_t(n), d, padded_d, c.data(), rotation.data(), y);
}

void IndexBlockQuant::train(idx_t n, const float* x) {
    FAISS_THROW_IF_NOT_FMT(n >= 0, "%s::train: n=%ld", kWho, long(n));
    check_model(*this, "train");
    check_finite("training", size_t(n), size_t(d), x);
    if (oblivious) {
        return; // the model is a function of d, k, m and the seed
    }
    FAISS_THROW_IF_NOT_FMT(
            n >= 2,
            "%s::train: n=%ld training vectors (the trained mode needs >= "
            "2; the oblivious mode none)",
            kWho,
            long(n));
    size_t ns = size_t(n);
    const float* xs = faiss::fvecs_maybe_subsample(
            size_t(d), &ns, max_train_points, x, verbose, seed);
    std::unique_ptr<const float[]> owned(xs != x ? xs : nullptr);
    x = xs;
    std::vector<double> mean(d, 0.0);
    for (size_t i = 0; i < ns; i++) {
        for (int j = 0; j < d; j++) {
            mean[j] += x[i * d + j];
        }
    }
    for (int j = 0; j < d; j++) {
        center[j] = float(mean[j] / double(ns));
    }
    std::vector<float> y(ns * padded_d);
    transform(idx_t(ns), x, y.data());
    const int k = block_size, nb = n_blocks();
    std::vector<float> rho;
    rho.reserve(ns * nb);
    for (size_t i = 0; i < ns; i++) {
        const float* yi = y.data() + i * padded_d;
        const float norm = std::sqrt(faiss::fvec_norm_L2sqr(yi, padded_d));
        if (norm > 0) {
            for (int b = 0; b < nb; b++) {
                rho.push_back(
                        std::sqrt(faiss::fvec_norm_L2sqr(yi + b * k, k)) /
                        norm);
            }
        }
    }
    if (!rho.empty()) {
        norm_levels = lloyd_max_1d(std::move(rho), 1 << (8 - direction_bits));
    }
    is_trained = true;
}

void IndexBlockQuant::add(idx_t n, const float* x) {
    FAISS_THROW_IF_NOT_FMT(
            is_trained, "%s::add: the index is not trained", kWho);
    FAISS_THROW_IF_NOT_FMT(n >= 0, "%s::add: n=%ld", kWho, long(n));
    faiss::IndexFlatCodes::add(n, x);
}

void IndexBlockQuant::sa_encode(idx_t n, const float* x, uint8_t* bytes) const {
    FAISS_THROW_IF_NOT_FMT(
            is_trained, "%s::sa_encode: the index is not trained", kWho);
    FAISS_THROW_IF_NOT_FMT(n >= 0, "%s::sa_encode: n=%ld", kWho, long(n));
    check_model(*this, "sa_encode");
    check_finite("encoded", size_t(n), size_t(d), x);
    const size_t nb = size_t(n_blocks());
    constexpr idx_t chunk = 4096;
    std::vector<float> y;
    for (idx_t i0 = 0; i0 < n; i0 += chunk) {
        const idx_t m = std::min(chunk, n - i0);
        y.resize(size_t(m) * padded_d);
        transform(m, x + i0 * d, y.data());
#pragma omp parallel for if (m > 64)
        for (idx_t i = 0; i < m; i++) {
            const float* xi = x + size_t(i0 + i) * d;
            uint8_t* code = bytes + size_t(i0 + i) * code_size;
            double norm, yhat_y;
            encode_row(
                    *this, y.data() + size_t(i) * padded_d, code, norm, yhat_y);
            double offset = 0;
            for (int j = 0; j < d; j++) {
                const double r = double(xi[j]) - center[j];
                offset +=
                        metric_type == faiss::METRIC_L2 ? r * r : center[j] * r;
            }
            const double scale =
                    unbiased && yhat_y > 0 ? norm * norm / yhat_y : norm;
            const float f[2] = {float(offset), float(scale)};
            std::memcpy(code + nb, f, sizeof(f));
        }
    }
}

void IndexBlockQuant::sa_decode(idx_t n, const uint8_t* bytes, float* x) const {
    FAISS_THROW_IF_NOT_FMT(
            is_trained, "%s::sa_decode: the index is not trained", kWho);
    check_model(*this, "sa_decode");
    const int k = block_size, m = direction_bits, nb = n_blocks();
    std::vector<float> yh(padded_d);
    for (idx_t i = 0; i < n; i++) {
        const uint8_t* code = bytes + size_t(i) * code_size;
        float f[2];
        std::memcpy(f, code + nb, sizeof(f));
        for (int b = 0; b < nb; b++) {
            const int j = code[b] & ((1 << m) - 1), l = code[b] >> m;
            for (int t = 0; t < k; t++) {
                yh[b * k + t] =
                        f[1] * norm_levels[l] * codebook[size_t(j) * k + t];
            }
        }
        // x = center + R^T y_hat
        float* xi = x + size_t(i) * d;
        std::copy(center.begin(), center.end(), xi);
        for (int r = 0; r < padded_d; r++) {
            const float* row = rotation.data() + size_t(r) * d;
            for (int j = 0; j < d; j++) {
                xi[j] += row[j] * yh[r];
            }
        }
    }
}

void IndexBlockQuant::search(
        idx_t n,
        const float* x,
        idx_t k,
        float* distances,
        idx_t* labels,
        const faiss::SearchParameters* params) const {
    check_search_args("IndexBlockQuant::search", is_trained, n, d, x, k);
    check_model(*this, "search");
    const faiss::IDSelector* sel = params ? params->sel : nullptr;
    const size_t block = BlockQuantScanner::block;
    std::vector<float> ys;
    const float* xq = nullptr;
    search_flat_chunked(
            n,
            ntotal,
            k,
            metric_type,
            block,
            distances,
            labels,
            [&](idx_t i0, idx_t m) {
                xq = x + i0 * d;
                ys.resize(size_t(m) * padded_d);
                transform(m, xq, ys.data());
            },
            [&]() { return BlockQuantScanner(*this); },
            [&](BlockQuantScanner& s,
                idx_t i,
                idx_t j0,
                idx_t j1,
                float* D,
                idx_t* I,
                auto tag) {
                using C = decltype(tag);
                s.set_query(xq + i * d, ys.data() + size_t(i) * padded_d);
                for (idx_t jb = j0; jb < j1; jb += idx_t(block)) {
                    const size_t m = std::min<size_t>(block, size_t(j1 - jb));
                    s.score_block(codes.data() + size_t(jb) * code_size, m);
                    push_scores<C>(k, D, I, s.scores.data(), m, jb, sel);
                }
            });
}

void IndexBlockQuant::check_compatible_for_merge(
        const faiss::Index& other) const {
    auto o = dynamic_cast<const IndexBlockQuant*>(&other);
    FAISS_THROW_IF_NOT_MSG(o, "IndexBlockQuant: merge from another type");
    FAISS_THROW_IF_NOT_FMT(
            o->d == d && o->block_size == block_size &&
                    o->direction_bits == direction_bits &&
                    o->unbiased == unbiased && o->metric_type == metric_type &&
                    o->center == center && o->rotation == rotation &&
                    o->codebook == codebook && o->norm_levels == norm_levels,
            "IndexBlockQuant: cannot merge (d=%d/%d, block_size=%d/%d, "
            "direction_bits=%d/%d): different settings or model",
            d,
            o->d,
            block_size,
            o->block_size,
            direction_bits,
            o->direction_bits);
}

} // namespace faiss_bq
