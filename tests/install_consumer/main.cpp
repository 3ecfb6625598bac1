// Trains, fills and searches an IndexBQ through the installed headers and
// library; exits 0 when the nearest neighbour of each base vector is itself.
#include <faiss_bq/IndexBQ.h>
#include <faiss_bq/index_factory.h>

#include <cstdio>
#include <memory>
#include <random>
#include <vector>

int main() {
    const int d = 64;
    const size_t n = 2000;
    std::mt19937 rng(1);
    std::normal_distribution<float> g;
    std::vector<float> x(n * d);
    for (float& v : x) {
        v = g(rng);
    }
    std::unique_ptr<faiss::Index> index(
            faiss_bq::index_factory(d, "BQ2,RFlat", faiss::METRIC_L2));
    index->train(n, x.data());
    index->add(n, x.data());
    std::vector<float> D(10);
    std::vector<faiss::Index::idx_t> I(10);
    index->search(10, x.data(), 1, D.data(), I.data());
    for (int q = 0; q < 10; q++) {
        if (I[q] != q) {
            std::printf("query %d: nearest %ld\n", q, long(I[q]));
            return 1;
        }
    }
    std::printf("consumer: faiss_bq found each vector itself\n");
    return 0;
}
