#include <faiss_bq/utils/vecs_io.h>

#include <faiss/impl/FaissAssert.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

namespace faiss_bq {

namespace {

using FilePtr = std::unique_ptr<FILE, int (*)(FILE*)>;

FilePtr open_file(const std::string& path, const char* mode) {
    FILE* f = std::fopen(path.c_str(), mode);
    FAISS_THROW_IF_NOT_FMT(
            f, "cannot open %s: %s", path.c_str(), std::strerror(errno));
    return FilePtr(f, &std::fclose);
}

template <typename T>
VecsFile<T> read_vecs(const std::string& path) {
    static_assert(sizeof(T) == sizeof(int32_t), "4-byte components only");
    FilePtr f = open_file(path, "rb");
    std::fseek(f.get(), 0, SEEK_END);
    const long bytes = std::ftell(f.get());
    std::fseek(f.get(), 0, SEEK_SET);
    VecsFile<T> out;
    if (bytes == 0) {
        return out;
    }
    int32_t d = 0;
    FAISS_THROW_IF_NOT_FMT(
            std::fread(&d, sizeof(d), 1, f.get()) == 1 && d > 0 &&
                    d < (1 << 20),
            "%s: bad dimension %d in the first row",
            path.c_str(),
            d);
    const size_t row_bytes = sizeof(int32_t) * (size_t(d) + 1);
    FAISS_THROW_IF_NOT_FMT(
            size_t(bytes) % row_bytes == 0,
            "%s: %ld bytes is not a whole number of rows of d=%d",
            path.c_str(),
            bytes,
            d);
    out.n = size_t(bytes) / row_bytes;
    out.d = size_t(d);
    std::vector<int32_t> raw(out.n * (out.d + 1));
    std::fseek(f.get(), 0, SEEK_SET);
    FAISS_THROW_IF_NOT_FMT(
            std::fread(raw.data(), row_bytes, out.n, f.get()) == out.n,
            "%s: short read",
            path.c_str());
    out.data.resize(out.n * out.d);
    for (size_t i = 0; i < out.n; i++) {
        const int32_t* row = raw.data() + i * (out.d + 1);
        FAISS_THROW_IF_NOT_FMT(
                row[0] == d,
                "%s: row %zu has dimension %d, the first row %d",
                path.c_str(),
                i,
                row[0],
                d);
        std::memcpy(out.data.data() + i * out.d, row + 1, out.d * sizeof(T));
    }
    return out;
}

} // namespace

VecsFile<float> read_fvecs(const std::string& path) {
    return read_vecs<float>(path);
}
VecsFile<int32_t> read_ivecs(const std::string& path) {
    return read_vecs<int32_t>(path);
}
void write_fvecs(const std::string& path, size_t n, size_t d, const float* x) {
    VecsWriter<float> out(path, d);
    out.write(n, x);
    out.close();
}
void write_ivecs(
        const std::string& path,
        size_t n,
        size_t d,
        const int32_t* x) {
    VecsWriter<int32_t> out(path, d);
    out.write(n, x);
    out.close();
}

template <typename T>
VecsWriter<T>::VecsWriter(const std::string& path, size_t d)
        : path_(path), d_(d), file_(open_file(path, "wb").release()) {
    static_assert(sizeof(T) == sizeof(int32_t), "4-byte components only");
    FAISS_THROW_IF_NOT_FMT(
            d > 0 && d < (1 << 20), "%s: bad dimension %zu", path.c_str(), d);
}

template <typename T>
VecsWriter<T>::~VecsWriter() {
    if (file_) {
        std::fclose(file_);
    }
}

template <typename T>
void VecsWriter<T>::write(size_t n, const T* x) {
    FAISS_THROW_IF_NOT_FMT(file_, "%s: write after close", path_.c_str());
    const int32_t di = int32_t(d_);
    for (size_t i = 0; i < n; i++) {
        FAISS_THROW_IF_NOT_FMT(
                std::fwrite(&di, sizeof(di), 1, file_) == 1 &&
                        std::fwrite(x + i * d_, sizeof(T), d_, file_) == d_,
                "%s: write failed: %s",
                path_.c_str(),
                std::strerror(errno));
    }
}

template <typename T>
void VecsWriter<T>::close() {
    std::FILE* f = file_;
    file_ = nullptr;
    FAISS_THROW_IF_NOT_FMT(
            f && std::fclose(f) == 0,
            "%s: close failed: %s",
            path_.c_str(),
            f ? std::strerror(errno) : "already closed");
}

template class VecsWriter<float>;
template class VecsWriter<int32_t>;

} // namespace faiss_bq
