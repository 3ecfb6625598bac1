// TEXMEX .fvecs / .ivecs files (the format of ../shared/data and of SIFT).
#pragma once

#include <cstddef>
#include <cstdint>
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

} // namespace faiss_bq
