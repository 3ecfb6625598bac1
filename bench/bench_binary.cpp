// bench_binary: IndexBinaryFlatFast against faiss::IndexBinaryFlat (Debian's
// build: generic x86-64, software popcount) on random codes, k = 10, and the
// scan rate of one query next to the memory bandwidth, all in one run.
//
//   bench_binary [--n N] [--bits 256,512,1024] [--queries 1,16,1000]
//                [--threads 1,2] [--bandwidth-mib M]

#include <faiss_bq/IndexBinaryFlatFast.h>
#include <faiss_bq/kernels/kernels.h>

#include <faiss/IndexBinaryFlat.h>
#include <faiss/impl/FaissAssert.h>
#include <faiss/utils/random.h>
#include <faiss/utils/utils.h>

#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace {

using idx_t = faiss::IndexBinary::idx_t;

std::vector<int> parse_list(const std::string& s) {
    std::vector<int> v;
    std::stringstream in(s);
    std::string item;
    while (std::getline(in, item, ',')) {
        v.push_back(std::stoi(item));
    }
    return v;
}

/// Sum of the 64-bit words of [p, p + n) (n a multiple of 128 bytes):
/// a streaming read with four independent AVX2 accumulators.
__attribute__((target("avx2"))) uint64_t read_sum(const uint8_t* p, size_t n) {
    __m256i a[4] = {
            _mm256_setzero_si256(),
            _mm256_setzero_si256(),
            _mm256_setzero_si256(),
            _mm256_setzero_si256()};
    for (size_t i = 0; i < n; i += 128) {
        for (int j = 0; j < 4; j++) {
            a[j] = _mm256_add_epi64(
                    a[j],
                    _mm256_load_si256(
                            reinterpret_cast<const __m256i*>(p + i + 32 * j)));
        }
    }
    const __m256i s = _mm256_add_epi64(
            _mm256_add_epi64(a[0], a[1]), _mm256_add_epi64(a[2], a[3]));
    uint64_t out[4];
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), s);
    return out[0] + out[1] + out[2] + out[3];
}

/// Best of 5 streaming reads of a buffer of `bytes` with `threads` threads,
/// in GB/s (1e9 bytes).
double memory_bandwidth(const uint8_t* buf, size_t bytes, int threads) {
    double best = 1e30;
    volatile uint64_t sink = 0;
    for (int rep = 0; rep < 5; rep++) {
        uint64_t sum = 0;
        const double t0 = faiss::getmillisecs();
#pragma omp parallel num_threads(threads) reduction(+ : sum)
        {
            const size_t nt = size_t(omp_get_num_threads());
            const size_t t = size_t(omp_get_thread_num());
            const size_t chunk = bytes / nt / 128 * 128;
            sum += read_sum(buf + t * chunk, chunk);
        }
        best = std::min(best, faiss::getmillisecs() - t0);
        sink = sink + sum;
    }
    return double(bytes) / (best * 1e-3) / 1e9;
}

/// Best wall time in ms of `reps` runs of f.
template <class F>
double best_ms(int reps, F f) {
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        const double t0 = faiss::getmillisecs();
        f();
        best = std::min(best, faiss::getmillisecs() - t0);
    }
    return best;
}

std::string load_average() {
    std::ifstream in("/proc/loadavg");
    std::string a, b, c;
    in >> a >> b >> c;
    return a + " " + b + " " + c;
}

} // namespace

int main(int argc, char** argv) {
    size_t n = 1000000;
    std::vector<int> bits_list = {256, 512, 1024};
    std::vector<int> nq_list = {1, 16, 1000};
    std::vector<int> threads_list = {1, 2};
    size_t bandwidth_mib = 1024;
    for (int i = 1; i < argc; i++) {
        const std::string a = argv[i];
        auto next = [&]() -> std::string {
            FAISS_THROW_IF_NOT_FMT(i + 1 < argc, "%s needs a value", a.c_str());
            return argv[++i];
        };
        if (a == "--n") {
            n = std::stoul(next());
        } else if (a == "--bits") {
            bits_list = parse_list(next());
        } else if (a == "--queries") {
            nq_list = parse_list(next());
        } else if (a == "--threads") {
            threads_list = parse_list(next());
        } else if (a == "--bandwidth-mib") {
            bandwidth_mib = std::stoul(next());
        } else {
            std::printf(
                    "usage: %s [--n N] [--bits 256,512,1024] "
                    "[--queries 1,16,1000] [--threads 1,2] "
                    "[--bandwidth-mib M]\n",
                    argv[0]);
            return a == "--help" ? 0 : 2;
        }
    }
    const int k = 10;
    std::printf(
            "bench_binary: faiss_bq::IndexBinaryFlatFast vs "
            "faiss::IndexBinaryFlat (FAISS 1.7.3 as installed), k=%d, "
            "%zu random codes\n",
            k,
            n);
    std::printf(
            "SIMD level: %s (FAISS_BQ_SIMD overrides)  load average at "
            "start: %s\n",
            faiss_bq::kernels::simd_level_name(faiss_bq::kernels::simd_level()),
            load_average().c_str());

    // Memory bandwidth, measured here: a streaming read of a buffer much
    // larger than the caches.
    double bandwidth[3] = {0, 0, 0};
    {
        const size_t bytes = bandwidth_mib << 20;
        uint8_t* buf = static_cast<uint8_t*>(std::aligned_alloc(64, bytes));
        FAISS_THROW_IF_NOT_MSG(buf, "cannot allocate the bandwidth buffer");
        std::memset(buf, 1, bytes);
        for (int t : {1, 2}) {
            bandwidth[t] = memory_bandwidth(buf, bytes, t);
        }
        std::free(buf);
    }
    std::printf(
            "memory bandwidth (streaming read of %zu MiB, best of 5): "
            "%.1f GB/s with 1 thread, %.1f GB/s with 2 threads\n\n",
            bandwidth_mib,
            bandwidth[1],
            bandwidth[2]);

    std::printf(
            "| bits | queries | threads | FAISS ms | fast ms | speed-up | "
            "fast scan GB/s | scan / bandwidth | same results |\n");
    std::printf("|---:|---:|---:|---:|---:|---:|---:|---:|:---:|\n");
    const int saved_threads = omp_get_max_threads();
    for (int bits : bits_list) {
        const size_t cs = size_t(bits) / 8;
        std::vector<uint8_t> codes(n * cs);
        faiss::byte_rand(codes.data(), codes.size(), 1234 + bits);
        faiss::IndexBinaryFlat faiss_index(bits);
        faiss_index.add(n, codes.data());
        faiss_bq::IndexBinaryFlatFast fast_index(bits);
        fast_index.add(n, codes.data());
        codes = std::vector<uint8_t>(); // both indexes hold a copy
        for (int nq : nq_list) {
            std::vector<uint8_t> queries(size_t(nq) * cs);
            faiss::byte_rand(queries.data(), queries.size(), 99 + bits + nq);
            for (int t : threads_list) {
                omp_set_num_threads(t);
                std::vector<int32_t> fd(size_t(nq) * k), gd(size_t(nq) * k);
                std::vector<idx_t> fi(size_t(nq) * k), gi(size_t(nq) * k);
                // few repetitions of the slow baseline on big batches
                const int reps_faiss = nq >= 100 ? 1 : 3;
                const int reps_fast = nq >= 100 ? 2 : 5;
                const double faiss_ms = best_ms(reps_faiss, [&] {
                    faiss_index.search(
                            nq, queries.data(), k, fd.data(), fi.data());
                });
                const double fast_ms = best_ms(reps_fast, [&] {
                    fast_index.search(
                            nq, queries.data(), k, gd.data(), gi.data());
                });
                const bool same = fd == gd && fi == gi;
                // bytes of codes scanned per second (each query scans all)
                const double gbs = double(n) * cs * nq / (fast_ms * 1e-3) / 1e9;
                std::printf(
                        "| %d | %d | %d | %.1f | %.2f | %.1fx | %.1f | "
                        "%.0f%% | %s |\n",
                        bits,
                        nq,
                        t,
                        faiss_ms,
                        fast_ms,
                        faiss_ms / fast_ms,
                        gbs,
                        100 * gbs / bandwidth[std::min(t, 2)],
                        same ? "yes" : "NO");
                std::fflush(stdout);
            }
        }
    }
    omp_set_num_threads(saved_threads);
    std::printf(
            "\nscan / bandwidth: GB/s of codes scanned (all queries) over "
            "the streaming-read bandwidth with the same threads; above "
            "100%% the codes came from the caches (many queries per "
            "block).\nload average at end: %s\n",
            load_average().c_str());
    return 0;
}
