// Reading and writing faiss_bq indexes, alone or inside FAISS's containers.
//
// FAISS 1.7.3 has no registration hook for IO, so these are faiss_bq's own
// entry points. faiss_bq types have their own fourccs and a format version;
// IndexIDMap, IndexIDMap2, IndexPreTransform, IndexRefine(Flat),
// IndexBinaryIDMap and IndexBinaryIDMap2 are written in FAISS's own layout
// (so a pure-FAISS container is byte-identical to what FAISS writes); every
// other FAISS type is written and read by FAISS. A file written by FAISS
// reads unchanged through these functions.
//
// Bad files throw faiss::FaissException: truncated, wrong fourcc, future
// version, inconsistent sizes or a failed checksum (faiss_bq records carry
// one). Vectors are read in bounded chunks, so a corrupted size costs at
// most the bytes actually present, never what the size claims.
#pragma once

#include <faiss/Index.h>
#include <faiss/IndexBinary.h>
#include <faiss/impl/io.h>

#include <cstdio>

namespace faiss_bq {

void write_index(const faiss::Index* index, const char* fname);
void write_index(const faiss::Index* index, FILE* f);
void write_index(const faiss::Index* index, faiss::IOWriter* writer);

/// The caller owns the result. io_flags are FAISS's (faiss/index_io.h),
/// passed to FAISS for the parts FAISS reads.
faiss::Index* read_index(const char* fname, int io_flags = 0);
faiss::Index* read_index(FILE* f, int io_flags = 0);
faiss::Index* read_index(faiss::IOReader* reader, int io_flags = 0);

void write_index_binary(const faiss::IndexBinary* index, const char* fname);
void write_index_binary(const faiss::IndexBinary* index, FILE* f);
void write_index_binary(
        const faiss::IndexBinary* index,
        faiss::IOWriter* writer);

/// io_flag of faiss_bq's binary readers: read FAISS's IndexBinaryFlat records
/// ("IBxF") as faiss::IndexBinaryFlat. Without it they read as the drop-in
/// IndexBinaryFlatFast, which writes the same record (so FAISS reads it too).
/// A bit FAISS 1.7.3's own flags (faiss/index_io.h) leave unused.
constexpr int IO_FLAG_FAISS_BINARY_FLAT = 1 << 20;

faiss::IndexBinary* read_index_binary(const char* fname, int io_flags = 0);
faiss::IndexBinary* read_index_binary(FILE* f, int io_flags = 0);
faiss::IndexBinary* read_index_binary(
        faiss::IOReader* reader,
        int io_flags = 0);

} // namespace faiss_bq
