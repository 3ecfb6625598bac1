#include <faiss_bq/impl/heldout.h>

#include <faiss/impl/FaissAssert.h>
#include <faiss/utils/distances.h>
#include <faiss/utils/random.h>

#include <algorithm>
#include <cmath>
#include <numeric>

namespace faiss_bq {

using idx_t = faiss::Index::idx_t;

HeldOut::HeldOut(
        size_t n,
        size_t d_in,
        const float* data,
        faiss::MetricType metric_in,
        int seed,
        float fraction,
        size_t max_base,
        size_t max_queries,
        size_t max_fit)
        : d(d_in), perm(n), metric(metric_in) {
    faiss::rand_perm(perm.data(), n, seed);
    n_heldout = std::min(std::max<size_t>(20, size_t(n * fraction)), max_base);
    n_fit = std::min(n - n_heldout, max_fit);
    nb = std::min(n, max_base); // n_heldout <= max_base
    nq = std::min(n_heldout, max_queries);
    x = rows(data, 0, nb);
    gt = top_k_excluding_self(
            nq, nb, d, x.data(), x.data(), metric == faiss::METRIC_L2);
}

std::vector<float> HeldOut::rows(const float* data, size_t first, size_t count)
        const {
    std::vector<float> out(count * d);
    for (size_t i = 0; i < count; i++) {
        std::copy_n(data + size_t(perm[first + i]) * d, d, out.data() + i * d);
    }
    return out;
}

std::vector<float> HeldOut::recalls(const std::vector<idx_t>& found) const {
    constexpr size_t k = heldout_recall_k;
    std::vector<float> r(nq);
    for (size_t i = 0; i < nq; i++) {
        const idx_t* g = gt.data() + i * k;
        const idx_t* f = found.data() + i * k;
        int hits = 0;
        for (size_t a = 0; a < k; a++) {
            hits += g[a] >= 0 && std::find(f, f + k, g[a]) != f + k;
        }
        r[i] = hits / float(k);
    }
    return r;
}

std::vector<float> HeldOut::recalls(const faiss::Index& index) const {
    FAISS_THROW_IF_NOT_FMT(
            size_t(index.ntotal) == nb && size_t(index.d) == d,
            "held-out check: the index holds %ld vectors of d=%ld, the check "
            "%zu of d=%zu",
            long(index.ntotal),
            long(index.d),
            nb,
            d);
    const size_t k1 = std::min(heldout_recall_k + 1, nb);
    std::vector<float> dis(nq * k1);
    std::vector<idx_t> ids(nq * k1);
    index.search(idx_t(nq), x.data(), idx_t(k1), dis.data(), ids.data());
    return recalls(drop_self(nq, k1, ids));
}

std::vector<idx_t> drop_self(
        size_t nq,
        size_t k,
        const std::vector<idx_t>& ids) {
    std::vector<idx_t> top(nq * heldout_recall_k, -1);
    for (size_t i = 0; i < nq; i++) {
        size_t o = 0;
        for (size_t r = 0; r < k && o < heldout_recall_k; r++) {
            if (ids[i * k + r] != idx_t(i)) {
                top[i * heldout_recall_k + o++] = ids[i * k + r];
            }
        }
    }
    return top;
}

std::vector<idx_t> top_k_excluding_self(
        size_t nq,
        size_t nb,
        size_t dim,
        const float* vq,
        const float* vb,
        bool l2) {
    const size_t k1 = std::min(heldout_recall_k + 1, nb);
    std::vector<float> dis(nq * k1);
    std::vector<idx_t> ids(nq * k1);
    if (l2) {
        faiss::knn_L2sqr(vq, vb, dim, nq, nb, k1, dis.data(), ids.data());
    } else {
        faiss::knn_inner_product(
                vq, vb, dim, nq, nb, k1, dis.data(), ids.data());
    }
    return drop_self(nq, k1, ids);
}

float mean_of(const std::vector<float>& v) {
    return v.empty()
            ? 0.f
            : float(std::accumulate(v.begin(), v.end(), 0.0) / v.size());
}

float stderr_of(const std::vector<float>& v) {
    if (v.size() < 2) {
        return 0;
    }
    const double m = mean_of(v);
    double s2 = 0;
    for (float x : v) {
        s2 += (x - m) * (x - m);
    }
    return float(std::sqrt(s2 / (v.size() - 1) / v.size()));
}

bool tied_or_better(const std::vector<float>& a, const std::vector<float>& b) {
    std::vector<float> diff(a.size());
    for (size_t q = 0; q < a.size(); q++) {
        diff[q] = b[q] - a[q];
    }
    return mean_of(diff) <= 2 * stderr_of(diff);
}

} // namespace faiss_bq
