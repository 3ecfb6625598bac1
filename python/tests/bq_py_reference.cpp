// The pipeline of test_cpp_equivalence.py, in C++ against libfaiss.a: the
// Python module must give the same plan, codes, results and file.
//
//   bq_py_reference TRAIN.fvecs BASE.fvecs QUERY.fvecs DESCRIPTION METRIC K OUT
//
// METRIC: "L2" or "IP". Writes OUT.D (float32, nq x K), OUT.I (int64),
// OUT.codes (sa_encode of the base, the core IndexBQ's), OUT.report (the
// plan's report, if the core is an IndexBQ) and OUT.index
// (faiss_bq::write_index).
#include <faiss_bq/IndexBQ.h>
#include <faiss_bq/index_factory.h>
#include <faiss_bq/index_io.h>
#include <faiss_bq/utils/vecs_io.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

namespace {

template <typename T>
void write_raw(const std::string& path, const T* x, size_t n) {
    std::ofstream f(path, std::ios::binary);
    f.write(reinterpret_cast<const char*>(x), std::streamsize(n * sizeof(T)));
}

} // namespace

int main(int argc, char** argv) {
    if (argc != 8) {
        std::fprintf(
                stderr,
                "usage: %s TRAIN BASE QUERY DESCRIPTION L2|IP K OUT\n",
                argv[0]);
        return 2;
    }
    const auto xt = faiss_bq::read_fvecs(argv[1]);
    const auto xb = faiss_bq::read_fvecs(argv[2]);
    const auto xq = faiss_bq::read_fvecs(argv[3]);
    const faiss::MetricType metric = std::strcmp(argv[5], "IP") == 0
            ? faiss::METRIC_INNER_PRODUCT
            : faiss::METRIC_L2;
    const long k = std::stol(argv[6]);
    const std::string out = argv[7];

    std::unique_ptr<faiss::Index> index(
            faiss_bq::index_factory(int(xt.d), argv[4], metric));
    index->train(faiss::Index::idx_t(xt.n), xt.data.data());
    index->add(faiss::Index::idx_t(xb.n), xb.data.data());
    std::vector<float> D(xq.n * k);
    std::vector<faiss::Index::idx_t> I(xq.n * k);
    index->search(
            faiss::Index::idx_t(xq.n), xq.data.data(), k, D.data(), I.data());
    write_raw(out + ".D", D.data(), D.size());
    write_raw(out + ".I", I.data(), I.size());
    faiss_bq::write_index(index.get(), (out + ".index").c_str());

    if (auto bq = dynamic_cast<const faiss_bq::IndexBQ*>(index.get())) {
        std::vector<uint8_t> codes(xb.n * bq->code_size);
        bq->sa_encode(faiss::Index::idx_t(xb.n), xb.data.data(), codes.data());
        write_raw(out + ".codes", codes.data(), codes.size());
        const std::string report = bq->plan.report();
        write_raw(out + ".report", report.data(), report.size());
    }
    return 0;
}
