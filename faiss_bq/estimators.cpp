#include <faiss_bq/estimators.h>

#include <faiss_bq/kernels/kernels.h>

#include <faiss/impl/FaissAssert.h>

#include <algorithm>
#include <cmath>
#include <cstring>

namespace faiss_bq {

void QueryScorer::check(
        const BinarizationPlan& plan,
        Estimator estimator,
        int query_bits) {
    FAISS_THROW_IF_NOT_MSG(
            estimator != Estimator::symmetric || !plan.is_joint(),
            "symmetric estimator: the plan quantizes its nibbles jointly "
            "(joint_levels); its codes are scored by the asymmetric "
            "float-query estimator only");
    FAISS_THROW_IF_NOT_FMT(
            estimator != Estimator::symmetric ||
                    (plan.is_uniform() && plan.nbits <= 2),
            "symmetric estimator: needs a uniform plan of 1 or 2 bits per "
            "coordinate (this one has %s bits up to %d)",
            plan.is_uniform() ? "uniform" : "allocated",
            plan.nbits);
    FAISS_THROW_IF_NOT_FMT(
            !plan.is_joint() || query_bits == 0,
            "query_bits=%d: the plan quantizes its nibbles jointly "
            "(joint_levels), so <r_hat, y> is no sum over bit planes; use "
            "query_bits=0",
            query_bits);
}

QueryScorer::QueryScorer(
        const BinarizationPlan& plan,
        faiss::MetricType metric,
        Estimator estimator,
        int query_bits,
        size_t code_stride)
        : plan(plan),
          layout(plan),
          metric(metric),
          estimator(estimator),
          query_bits(query_bits),
          stride(code_stride ? code_stride : layout.code_size) {
    y.resize(plan.d);
    const size_t pb = layout.plane_bytes;
    check(plan, estimator, query_bits);
    if (estimator == Estimator::symmetric) {
        query_code.resize(layout.code_size);
        hamming.resize(block_codes);
        query_planes.assign((1 + plan.nbits) * pb, 0xff);
        for (int a = 0; a < plan.nbits; a++) {
            counts[a].resize(block_codes * (1 + plan.nbits));
        }
        counts[2].resize(block_codes);
        return;
    }
    residual.resize(block_codes);
    if (plan.is_joint()) {
        nibbles = NibbleLayout(plan);
        lut.resize(nibbles.n_nibbles * 16);
    } else if (query_bits == 0) {
        size_t tables = 0;
        for (const CodeLayout::Group& g : layout.groups) {
            lut_offset.push_back(tables * kernels::lut_entries);
            tables += kernels::lut_groups(g.plane_bytes, g.nbits);
        }
        lut.resize(tables * kernels::lut_entries);
        group_ips.resize(block_codes);
    } else {
        // The level polynomial's terms: one per non-empty subset of a
        // group's bits (b0; or b0, b1, b0 b1; ...).
        for (size_t g = 0; g < layout.groups.size(); g++) {
            const CodeLayout::Group& gr = layout.groups[g];
            for (int mask = 1; mask < (1 << gr.nbits); mask++) {
                Term t;
                t.group = int(g);
                t.plane_mask = mask;
                t.planes.assign((1 + query_bits) * gr.plane_bytes, 0xff);
                t.counts.resize(block_codes * (1 + query_bits));
                terms.push_back(std::move(t));
            }
        }
    }
}

void QueryScorer::set_query(const float* q, const float* yq) {
    if (estimator == Estimator::symmetric) {
        encode(plan, 1, q, query_code.data());
        // sum_j v_j and sum_j v_j^2 of the query's level indices v, from
        // popcounts of its planes (see symmetric()).
        query_sum = query_sum2 = 0;
        for (int a = 0; a < plan.nbits; a++) {
            const uint8_t* qa = layout.plane(query_code.data(), a);
            query_sum += int64_t(kernels::popcount(qa, layout.plane_bytes))
                    << a;
            query_sum2 += int64_t(kernels::weighted_popcount(
                                  query_code.data(),
                                  plan.nbits,
                                  qa,
                                  layout.plane_bytes))
                    << a;
        }
        std::copy(
                query_code.begin(),
                query_code.begin() + plan.nbits * layout.plane_bytes,
                query_planes.begin() + layout.plane_bytes);
        return;
    }
    if (yq) {
        std::copy(yq, yq + plan.d, y.begin());
    } else {
        plan.apply(1, q, y.data());
    }
    double n2 = 0, cip = 0;
    for (int j = 0; j < plan.d; j++) {
        n2 += double(y[j]) * y[j];
        cip += double(plan.center[j]) * q[j];
    }
    y_norm2 = float(n2);
    center_ip = float(cip);
    if (query_bits == 0) {
        set_query_lut();
    } else {
        set_query_quantized();
    }
}

void QueryScorer::set_query_lut() {
    // 0-bit coordinates are their constant level.
    double b = 0;
    for (int j = 0; j < plan.d; j++) {
        if (layout.group_of[j] < 0) {
            b += double(plan.level(j, 0)) * y[j];
        }
    }
    base = float(b);
    if (plan.is_joint()) {
        // One table per nibble: <codeword v, y> over its members.
        nibbles.float_tables(plan, y.data(), lut.data());
        return;
    }
    for (size_t gi = 0; gi < layout.groups.size(); gi++) {
        const CodeLayout::Group& gr = layout.groups[gi];
        const int nbits = gr.nbits;
        // coordinates per table and tables per plane byte (kernels::lut_scan)
        const int group = nbits == 1 ? 8 : nbits == 2 ? 4 : 2;
        const size_t ngroups = kernels::lut_groups(gr.plane_bytes, nbits);
        float contrib[8][16]; // [coordinate in table][level index]
        for (size_t g = 0; g < ngroups; g++) {
            for (int i = 0; i < group; i++) {
                const size_t slot = g * group + i;
                for (int v = 0; v < (1 << nbits); v++) {
                    // padding slots have zero bits and weight
                    contrib[i][v] = slot < gr.coords.size()
                            ? plan.level(gr.coords[slot], v) *
                                    y[gr.coords[slot]]
                            : 0;
                }
            }
            // index layout of kernels::lut_scan: bit i of plane p's chunk
            // at bit p * group + i; coordinate i's level index in entry m
            auto level_index = [&](unsigned m, int i) {
                int v = 0;
                for (int p = 0; p < nbits && p * group + i < 8; p++) {
                    v |= ((m >> (p * group + i)) & 1) << p;
                }
                return v;
            };
            float* table =
                    lut.data() + lut_offset[gi] + g * kernels::lut_entries;
            float s = 0;
            for (int i = 0; i < group; i++) {
                s += contrib[i][0];
            }
            table[0] = s;
            // Entry m is entry m - (its lowest bit) with one coordinate's
            // level changed: one add per entry instead of a sum over the
            // coordinates (this ran once per query, and FAISS's HNSW sets a
            // query per added vector: 3M instructions at d = 512).
            for (unsigned m = 1; m < kernels::lut_entries; m++) {
                const int bit = __builtin_ctz(m);
                const int i = bit % group;
                const unsigned prev = m & (m - 1);
                table[m] = table[prev] +
                        (contrib[i][level_index(m, i)] -
                         contrib[i][level_index(prev, i)]);
            }
        }
    }
}

void QueryScorer::set_query_quantized() {
    const int d = plan.d;
    const int top = (1 << query_bits) - 1;
    double b = 0;
    for (int j = 0; j < d; j++) {
        b += double(plan.level(j, 0)) * y[j];
    }
    base = float(b);
    std::vector<float> w;
    for (Term& t : terms) {
        const CodeLayout::Group& gr = layout.groups[t.group];
        const size_t m = gr.coords.size(), pb = gr.plane_bytes;
        w.resize(m);
        // Coefficient of the bit product "mask" in the level polynomial
        // (Moebius inversion over the subsets of mask).
        for (size_t i = 0; i < m; i++) {
            const int j = gr.coords[i];
            float coef = 0;
            for (int sub = t.plane_mask;; sub = (sub - 1) & t.plane_mask) {
                const int sign =
                        (__builtin_popcount(t.plane_mask ^ sub) & 1) ? -1 : 1;
                coef += sign * plan.level(j, sub);
                if (sub == 0) {
                    break;
                }
            }
            w[i] = coef * y[j];
        }
        const auto [lo, hi] = std::minmax_element(w.begin(), w.end());
        t.lo = *lo;
        t.delta = (*hi - *lo) / top;
        uint8_t* u_planes = t.planes.data() + pb;
        std::fill(u_planes, u_planes + query_bits * pb, 0);
        for (size_t i = 0; i < m; i++) {
            const int u =
                    t.delta > 0 ? int(std::lround((w[i] - t.lo) / t.delta)) : 0;
            for (int p = 0; p < query_bits; p++) {
                u_planes[p * pb + i / 8] |= ((u >> p) & 1) << (i % 8);
            }
        }
    }
}

void QueryScorer::residual_ips(const uint8_t* codes, size_t n) {
    const size_t cs = stride;
    if (plan.is_joint()) {
        // Each nibble's value gathered from its members' bits (a joint
        // plan's fast path is IndexBQFastScan, which stores the nibbles).
        for (size_t i = 0; i < n; i++) {
            const uint8_t* code = codes + i * cs;
            float s = base;
            for (size_t k = 0; k < nibbles.n_nibbles; k++) {
                s += lut[16 * k + nibbles.code_nibble(layout, code, k)];
            }
            residual[i] = s;
        }
        return;
    }
    if (query_bits == 0) {
        // A uniform plan is one group and no base: the kernel's sums as is.
        std::fill(residual.begin(), residual.begin() + n, base);
        for (size_t g = 0; g < layout.groups.size(); g++) {
            const CodeLayout::Group& gr = layout.groups[g];
            const bool only = layout.groups.size() == 1 && base == 0;
            kernels::lut_scan_block(
                    codes + gr.offset,
                    n,
                    cs,
                    gr.plane_bytes,
                    gr.nbits,
                    lut.data() + lut_offset[g],
                    only ? residual.data() : group_ips.data());
            if (!only) {
                for (size_t i = 0; i < n; i++) {
                    residual[i] += group_ips[i];
                }
            }
        }
        return;
    }
    // Per term: its bit count (all-ones plane) and popcounts of the u planes
    // against its bits, for the whole block in one call.
    const int np = 1 + query_bits;
    for (Term& t : terms) {
        const CodeLayout::Group& gr = layout.groups[t.group];
        kernels::plane_products_block(
                t.planes.data(),
                np,
                codes + gr.offset,
                n,
                cs,
                gr.plane_bytes,
                t.plane_mask,
                t.counts.data());
    }
    for (size_t i = 0; i < n; i++) {
        float s = base;
        for (const Term& t : terms) {
            const uint32_t* c = t.counts.data() + i * np;
            uint64_t weighted = 0; // kernels::weighted_popcount
            for (int p = 0; p < query_bits; p++) {
                weighted += uint64_t(c[1 + p]) << p;
            }
            s += t.lo * float(c[0]) + t.delta * float(weighted);
        }
        residual[i] = s;
    }
}

void QueryScorer::symmetric(const uint8_t* codes, size_t n, float* scores) {
    const int64_t d = plan.d;
    const size_t pb = layout.plane_bytes, cs = stride;
    if (plan.nbits == 1) {
        kernels::hamming_block(
                query_code.data(), codes, n, pb, cs, hamming.data());
        for (size_t i = 0; i < n; i++) {
            const int64_t h = hamming[i];
            scores[i] =
                    metric == faiss::METRIC_L2 ? float(h) : float(d - 2 * h);
        }
        return;
    }
    // Level indices v (x) and w (query) as planes: sum v = sum_a 2^a |X_a|,
    // sum v w = sum_{a,b} 2^{a+b} |X_a & Q_b|, sum v^2 = |X_0| + 4 |X_0 &
    // X_1| + 4 |X_1| (2 bits). The odd-integer values are s = 2 v - top.
    // counts[a]: |X_a|, |X_a & Q_0|, |X_a & Q_1|; counts[2]: |X_0 & X_1|.
    for (int a = 0; a < 2; a++) {
        kernels::plane_products_block(
                query_planes.data(),
                3,
                codes,
                n,
                cs,
                pb,
                1 << a,
                counts[a].data());
    }
    kernels::plane_products_block(
            query_planes.data(), 1, codes, n, cs, pb, 3, counts[2].data());
    const int64_t top = plan.n_levels() - 1;
    const int64_t nq = 4 * query_sum2 - 4 * top * query_sum + top * top * d;
    for (size_t i = 0; i < n; i++) {
        const uint32_t* c0 = counts[0].data() + 3 * i;
        const uint32_t* c1 = counts[1].data() + 3 * i;
        const int64_t sx = int64_t(c0[0]) + 2 * int64_t(c1[0]);
        const int64_t sxx =
                int64_t(c0[0]) + 4 * int64_t(counts[2][i]) + 4 * int64_t(c1[0]);
        const int64_t sxq = (int64_t(c0[1]) + 2 * int64_t(c0[2])) +
                2 * (int64_t(c1[1]) + 2 * int64_t(c1[2]));
        const int64_t ip = 4 * sxq - 2 * top * (sx + query_sum) + top * top * d;
        if (metric == faiss::METRIC_INNER_PRODUCT) {
            scores[i] = float(ip);
        } else {
            const int64_t nx = 4 * sxx - 4 * top * sx + top * top * d;
            scores[i] = float(nx + nq - 2 * ip) / 4;
        }
    }
}

void QueryScorer::score_block(const uint8_t* codes, size_t n, float* scores) {
    const size_t cs = stride;
    for (size_t i0 = 0; i0 < n; i0 += block_codes) {
        const size_t m = std::min(block_codes, n - i0);
        const uint8_t* block = codes + i0 * cs;
        float* out = scores + i0;
        if (estimator == Estimator::symmetric) {
            symmetric(block, m, out);
            continue;
        }
        residual_ips(block, m);
        for (size_t i = 0; i < m; i++) {
            const uint8_t* code = block + i * cs;
            const float ip = layout.estimate_scale(code) * residual[i];
            out[i] = metric == faiss::METRIC_INNER_PRODUCT
                    ? center_ip + layout.center_dot(code) + ip
                    : layout.residual_norm2(code) + y_norm2 - 2 * ip;
        }
    }
}

FastScanScorer::FastScanScorer(
        const BinarizationPlan& plan,
        faiss::MetricType metric)
        : nibbles(plan), plan(plan), metric(metric) {
    member_levels = nibbles.member_levels(plan);
    y.resize(plan.d);
    table.assign(nibbles.nbytes * 32, 0.f); // a padding sub-code's stays 0
    table_min.assign(nibbles.nbytes * 2, 0.f);
    column_range.resize(nibbles.nbytes);
    suffix.resize(nibbles.nbytes + 1);
    lut.assign(nibbles.nbytes * kernels::fast_scan_lut_bytes, 0);
}

void FastScanScorer::set_query(const float* q, const float* yq) {
    if (yq) {
        std::copy(yq, yq + plan.d, y.begin());
    } else {
        plan.apply(1, q, y.data());
    }
    double n2 = 0, cip = 0, b = 0;
    for (int j = 0; j < plan.d; j++) {
        n2 += double(y[j]) * y[j];
        cip += double(plan.center[j]) * q[j];
        if (plan.bits[j] == 0) {
            b += double(plan.level(j, 0)) * y[j];
        }
    }
    y_norm2 = float(n2);
    center_ip = float(cip);
    worst = metric == faiss::METRIC_INNER_PRODUCT ? -HUGE_VALF : HUGE_VALF;
    const size_t ncols = nibbles.nbytes;
    std::fill(column_range.begin(), column_range.end(), 0.f);
    nibbles.float_tables(member_levels.data(), y.data(), table.data());
    for (size_t k = 0; k < nibbles.n_nibbles; k++) {
        const float* t = table.data() + 16 * k;
        // Values of v with bits beyond the members' never occur; member_level
        // gives them the entry of v's used bits, in the table's range.
        const auto [lo, hi] = std::minmax_element(t, t + 16);
        b += *lo;
        table_min[k] = *lo;
        column_range[k / 2] = std::max(column_range[k / 2], *hi - *lo);
    }
    bias = float(b);
    // The split that minimizes the rounding variance, ncols * step^2 summed
    // over the runs (suffix maxima, then prefix maxima on the way up);
    // split = 0 (one run) unless that at least halves it.
    suffix[ncols] = 0;
    for (size_t t = ncols; t-- > 0;) {
        suffix[t] = std::max(suffix[t + 1], column_range[t]);
    }
    const double one_run = double(ncols) * suffix[0] * suffix[0];
    double best = one_run;
    float prefix = 0;
    split = 0;
    for (size_t s = 1; s < ncols; s++) {
        prefix = std::max(prefix, column_range[s - 1]);
        const double v = double(s) * prefix * prefix +
                double(ncols - s) * suffix[s] * suffix[s];
        if (v < best && v <= 0.5 * one_run) {
            best = v;
            split = s;
        }
    }
    float hi_range = 0;
    for (size_t t = 0; t < split; t++) {
        hi_range = std::max(hi_range, column_range[t]);
    }
    constexpr float levels = kernels::fast_scan_max_entry;
    step_hi = hi_range > 0 ? hi_range / levels : 1;
    step_lo = suffix[split] > 0 ? suffix[split] / levels : 1;
    // the kernels' form: each 16-entry table four times (kernels.h)
    for (size_t k = 0; k < 2 * ncols; k++) {
        const float* t = table.data() + 16 * k;
        const float inverse = 1 / (k / 2 < split ? step_hi : step_lo);
        uint8_t* to = lut.data() + kernels::fast_scan_lut_bytes * (k / 2) +
                64 * (k % 2);
        for (int v = 0; v < 16; v++) {
            // rounded to nearest (the value is >= 0); lround is a libm call
            to[v] = uint8_t(std::min(
                    int((t[v] - table_min[k]) * inverse + 0.5f),
                    int(kernels::fast_scan_max_entry)));
        }
        for (int copy = 1; copy < 4; copy++) {
            std::memcpy(to + 16 * copy, to, 16);
        }
    }
}

double FastScanScorer::max_error() const {
    const size_t ncols = nibbles.nbytes;
    return double(split) * step_hi + double(ncols - split) * step_lo;
}

double FastScanScorer::rms_error() const {
    const size_t ncols = nibbles.nbytes;
    return std::sqrt(
            (2.0 * split * step_hi * step_hi +
             2.0 * (ncols - split) * step_lo * step_lo) /
            12);
}

void FastScanScorer::scan(
        const uint8_t* blocks,
        const float* factors,
        size_t nblocks,
        float* out) {
    FastScanScorer* self = this;
    scan_group(&self, 1, blocks, factors, nblocks, &out);
}

kernels::FastScanAffine FastScanScorer::affine() const {
    kernels::FastScanAffine a;
    a.step_hi = step_hi;
    a.step_lo = step_lo;
    a.bias = bias;
    if (metric == faiss::METRIC_INNER_PRODUCT) {
        a.c = center_ip; // center_ip + f2 + f1 ip
        a.w2 = 1;
        a.w1 = 1;
    } else {
        a.c = y_norm2; // f0 + |y|^2 - 2 f1 ip
        a.w0 = 1;
        a.w1 = -2;
    }
    return a;
}

void FastScanScorer::scan_group(
        FastScanScorer* const* scorers,
        size_t nq,
        const uint8_t* blocks,
        const float* factors,
        size_t nblocks,
        float* const* out) {
    constexpr size_t bs = kernels::fast_scan_block;
    constexpr size_t max_q = kernels::fast_scan_max_queries;
    const size_t ncols = scorers[0]->nibbles.nbytes;
    const size_t bb = scorers[0]->nibbles.block_bytes();
    for (size_t q0 = 0; q0 < nq; q0 += max_q) {
        const size_t m = std::min(max_q, nq - q0);
        FastScanScorer* const* group = scorers + q0;
        // Columns per kernel call: the group's tables stay in L1 (24 KB),
        // and a run boundary (split) ends a call.
        const size_t max_cols = std::clamp<size_t>(
                24576 / (m * kernels::fast_scan_lut_bytes),
                16,
                kernels::fast_scan_max_columns);
        kernels::FastScanQuery fq[max_q];
        bool hi_written[max_q] = {}, lo_written[max_q] = {};
        for (size_t q = 0; q < m; q++) {
            FastScanScorer& s = *group[q];
            s.sums_lo.resize(nblocks * bs);
            s.sums_hi.resize(s.split > 0 ? nblocks * bs : 0);
            fq[q].lut = s.lut.data();
        }
        for (size_t t0 = 0; t0 < ncols;) {
            size_t t1 = std::min(ncols, t0 + max_cols);
            for (size_t q = 0; q < m; q++) {
                FastScanScorer& s = *group[q];
                if (s.split > t0 && s.split < t1) {
                    t1 = s.split;
                }
                // the first call of a run writes its sums, the next add
                const bool hi = t0 < s.split;
                fq[q].out = (hi ? s.sums_hi : s.sums_lo).data();
                fq[q].add = hi ? hi_written[q] : lo_written[q];
                (hi ? hi_written[q] : lo_written[q]) = true;
            }
            kernels::fast_scan_accumulate(blocks, nblocks, bb, t0, t1, m, fq);
            t0 = t1;
        }
        // set_query keeps split < ncols: every query's second run is written
        for (size_t q = 0; q < m; q++) {
            FastScanScorer& s = *group[q];
            s.better.resize(nblocks * bs);
            s.nbetter = kernels::fast_scan_scores(
                    s.split > 0 ? s.sums_hi.data() : nullptr,
                    s.sums_lo.data(),
                    factors,
                    nblocks,
                    s.affine(),
                    s.worst,
                    s.metric == faiss::METRIC_INNER_PRODUCT,
                    out[q0 + q],
                    s.better.data());
        }
    }
}

} // namespace faiss_bq
