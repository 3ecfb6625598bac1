#include <faiss_bq/IndexBinaryFlatFast.h>

#include <faiss_bq/impl/merge_heaps.h>

#include <faiss_bq/kernels/kernels.h>

#include <faiss/impl/AuxIndexStructures.h>
#include <faiss/impl/FaissAssert.h>
#include <faiss/impl/IDSelector.h>
#include <faiss/utils/Heap.h>

#include <omp.h>

#include <algorithm>
#include <climits>
#include <cstring>

namespace faiss_bq {

namespace {

using idx_t = faiss::IndexBinary::idx_t;
using Heap = faiss::CMax<int32_t, idx_t>;

/// Codes scanned per block: about 256 KiB, so that a tile of queries reads
/// each block from L2 rather than from memory.
size_t block_codes(size_t code_size) {
    return std::max<size_t>(64, (size_t(256) << 10) / code_size);
}

/// Queries per tile in the query-parallel scan: each tile reads the whole
/// database once from memory, so the larger, the less memory traffic; small
/// enough that every thread gets tiles.
size_t tile_queries(idx_t n, int nt) {
    return size_t(std::clamp<idx_t>(n / nt, 1, 64));
}

idx_t checked_d(idx_t d) {
    FAISS_THROW_IF_NOT_FMT(
            d > 0 && d % 8 == 0,
            "IndexBinaryFlatFast: d=%ld must be a positive multiple of 8",
            long(d));
    return d;
}

/// Scratch of one scanning thread: the distances of a block and the
/// positions that may enter a heap.
struct ScanBuffers {
    std::vector<int32_t> dis;
    std::vector<uint32_t> pos;
    explicit ScanBuffers(size_t block) : dis(block), pos(block) {}
};

/** Updates the heaps (k entries each, row q - q0 of D and I) of queries
 * [q0, q1) with the codes [j0, j1). A code enters when it is smaller than
 * the heap's worst in (distance, id) order, so the heaps hold the k smallest
 * (distance, id) pairs whatever order the blocks are scanned in: FAISS's
 * rule (the smaller id wins a tie). */
void scan(
        const uint8_t* queries,
        size_t q0,
        size_t q1,
        const uint8_t* xb,
        size_t code_size,
        size_t j0,
        size_t j1,
        size_t k,
        int32_t* D,
        idx_t* I,
        const faiss::IDSelector* sel,
        ScanBuffers& buf) {
    const size_t block = buf.dis.size();
    for (size_t jb = j0; jb < j1; jb += block) {
        const size_t nb = std::min(block, j1 - jb);
        for (size_t q = q0; q < q1; q++) {
            int32_t* hd = D + (q - q0) * k;
            idx_t* hi = I + (q - q0) * k;
            kernels::hamming_block(
                    queries + q * code_size,
                    xb + jb * code_size,
                    nb,
                    code_size,
                    code_size,
                    buf.dis.data());
            const size_t m = kernels::select_less(
                    buf.dis.data(), nb, hd[0], buf.pos.data());
            for (size_t c = 0; c < m; c++) {
                const int32_t dis = buf.dis[buf.pos[c]];
                const idx_t id = idx_t(jb + buf.pos[c]);
                if (dis < hd[0] && (!sel || sel->is_member(id))) {
                    faiss::heap_replace_top<Heap>(k, hd, hi, dis, id);
                }
            }
        }
    }
}

} // namespace

IndexBinaryFlatFast::IndexBinaryFlatFast(idx_t d)
        : faiss::IndexBinary(checked_d(d)) {}

void IndexBinaryFlatFast::add(idx_t n, const uint8_t* x) {
    FAISS_THROW_IF_NOT_FMT(n >= 0, "IndexBinaryFlatFast::add: n=%ld", long(n));
    xb.insert(xb.end(), x, x + n * code_size);
    ntotal += n;
}

void IndexBinaryFlatFast::reset() {
    xb.clear();
    ntotal = 0;
}

void IndexBinaryFlatFast::search(
        idx_t n,
        const uint8_t* x,
        idx_t k,
        int32_t* distances,
        idx_t* labels,
        const faiss::SearchParameters* params) const {
    FAISS_THROW_IF_NOT_FMT(
            k > 0, "IndexBinaryFlatFast::search: k=%ld must be > 0", long(k));
    FAISS_THROW_IF_NOT_FMT(
            n >= 0, "IndexBinaryFlatFast::search: n=%ld", long(n));
    if (n == 0) {
        return;
    }
    const faiss::IDSelector* sel = params ? params->sel : nullptr;
    const size_t ks = size_t(k), cs = code_size, nb = size_t(ntotal);
    const size_t block = block_codes(cs);
    const int nt = omp_get_max_threads();

    if (n < nt && nb >= 2 * block) {
        // Few queries: threads take chunks of the database (dynamic: on a
        // shared machine a preempted thread holds back one chunk, not half
        // the scan) into per-thread heaps, merged at the end.
        const idx_t nchunks = idx_t(std::min(nb / block, size_t(8 * nt)));
        std::vector<int32_t> tD(size_t(nt) * n * ks);
        std::vector<idx_t> tI(size_t(nt) * n * ks, -1);
#pragma omp parallel num_threads(nt)
        {
            const int t = omp_get_thread_num();
            int32_t* D = tD.data() + t * n * ks;
            idx_t* I = tI.data() + t * n * ks;
            for (idx_t q = 0; q < n; q++) {
                faiss::heap_heapify<Heap>(ks, D + q * ks, I + q * ks);
            }
            ScanBuffers buf(block);
#pragma omp for schedule(dynamic)
            for (idx_t c = 0; c < nchunks; c++) {
                const size_t j0 = nb * c / nchunks;
                const size_t j1 = nb * (c + 1) / nchunks;
                scan(x, 0, n, xb.data(), cs, j0, j1, ks, D, I, sel, buf);
            }
        }
        merge_thread_heaps<Heap>(
                nt, n, ks, tD.data(), tI.data(), distances, labels);
        return;
    }

    const size_t tile = tile_queries(n, nt);
    const idx_t ntiles = idx_t((size_t(n) + tile - 1) / tile);
#pragma omp parallel if (ntiles > 1)
    {
        ScanBuffers buf(std::min(block, std::max<size_t>(nb, 1)));
#pragma omp for schedule(dynamic)
        for (idx_t ti = 0; ti < ntiles; ti++) {
            const size_t q0 = size_t(ti) * tile;
            const size_t q1 = std::min(size_t(n), q0 + tile);
            int32_t* D = distances + q0 * ks;
            idx_t* I = labels + q0 * ks;
            for (size_t q = q0; q < q1; q++) {
                faiss::heap_heapify<Heap>(
                        ks, D + (q - q0) * ks, I + (q - q0) * ks);
            }
            scan(x, q0, q1, xb.data(), cs, 0, nb, ks, D, I, sel, buf);
            for (size_t q = q0; q < q1; q++) {
                faiss::heap_reorder<Heap>(
                        ks, D + (q - q0) * ks, I + (q - q0) * ks);
            }
        }
    }
}

void IndexBinaryFlatFast::range_search(
        idx_t n,
        const uint8_t* x,
        int radius,
        faiss::RangeSearchResult* result,
        const faiss::SearchParameters* params) const {
    FAISS_THROW_IF_NOT_FMT(
            n >= 0, "IndexBinaryFlatFast::range_search: n=%ld", long(n));
    FAISS_THROW_IF_NOT_MSG(
            result, "IndexBinaryFlatFast::range_search: result is null");
    const faiss::IDSelector* sel = params ? params->sel : nullptr;
    const size_t cs = code_size, nb = size_t(ntotal);
    const size_t block = std::min(block_codes(cs), std::max<size_t>(nb, 1));
#pragma omp parallel if (n > 1)
    {
        faiss::RangeSearchPartialResult pres(result);
        ScanBuffers buf(block);
#pragma omp for schedule(dynamic)
        for (idx_t q = 0; q < n; q++) {
            faiss::RangeQueryResult& qres = pres.new_result(q);
            for (size_t jb = 0; jb < nb; jb += block) {
                const size_t m = std::min(block, nb - jb);
                kernels::hamming_block(
                        x + q * cs,
                        xb.data() + jb * cs,
                        m,
                        cs,
                        cs,
                        buf.dis.data());
                const size_t c = kernels::select_less(
                        buf.dis.data(), m, radius, buf.pos.data());
                for (size_t e = 0; e < c; e++) {
                    const idx_t id = idx_t(jb + buf.pos[e]);
                    if (!sel || sel->is_member(id)) {
                        qres.add(float(buf.dis[buf.pos[e]]), id);
                    }
                }
            }
        }
        pres.finalize();
    }
}

void IndexBinaryFlatFast::reconstruct(idx_t key, uint8_t* recons) const {
    FAISS_THROW_IF_NOT_FMT(
            key >= 0 && key < ntotal,
            "IndexBinaryFlatFast::reconstruct: key=%ld not in [0, %ld)",
            long(key),
            long(ntotal));
    std::memcpy(recons, xb.data() + key * code_size, code_size);
}

size_t IndexBinaryFlatFast::remove_ids(const faiss::IDSelector& sel) {
    idx_t j = 0;
    for (idx_t i = 0; i < ntotal; i++) {
        if (sel.is_member(i)) {
            continue;
        }
        if (i > j) {
            std::memmove(
                    xb.data() + code_size * j,
                    xb.data() + code_size * i,
                    code_size);
        }
        j++;
    }
    const size_t nremove = size_t(ntotal - j);
    ntotal = j;
    xb.resize(size_t(ntotal) * code_size);
    return nremove;
}

} // namespace faiss_bq
