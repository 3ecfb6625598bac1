// TEXMEX .fvecs / .ivecs files (the format of ../shared/data and of SIFT).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace faiss_bq {

/// Rows of a .fvecs / .ivecs file: n vectors of dimension d, row-major.
template <typename T>
struct VecsFile {
    size_t n = 0;
    size_t d = 0;
    std::vector<T> data;
};

/// Reads a whole file. Throws faiss::FaissException if it cannot be opened,
/// its size is not a whole number of rows, or the rows' dimensions differ.
VecsFile<float> read_fvecs(const std::string& path);
VecsFile<int32_t> read_ivecs(const std::string& path);

void write_fvecs(const std::string& path, size_t n, size_t d, const float* x);
void write_ivecs(const std::string& path, size_t n, size_t d, const int32_t* x);

/// Writes rows of dimension d as they come, for files too large to hold in
/// memory. Throws faiss::FaissException if the file cannot be opened or a
/// write fails; close() reports an error of the final flush.
template <typename T>
class VecsWriter {
   public:
    VecsWriter(const std::string& path, size_t d);
    ~VecsWriter();
    VecsWriter(const VecsWriter&) = delete;
    VecsWriter& operator=(const VecsWriter&) = delete;

    void write(size_t n, const T* x); ///< n rows, row-major
    void close();

   private:
    std::string path_;
    size_t d_;
    std::FILE* file_;
};

extern template class VecsWriter<float>;
extern template class VecsWriter<int32_t>;

} // namespace faiss_bq
