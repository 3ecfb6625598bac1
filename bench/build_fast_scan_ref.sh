#!/bin/bash
# Builds bench/fast_scan_ref against a FAISS compiled from its source, the
# reference of issue 15 (never linked into faiss_bq, never run by CI):
#
#   git clone https://github.com/facebookresearch/faiss FAISS_SRC
#   cd FAISS_SRC && nice cmake -B build -DFAISS_OPT_LEVEL=avx512 \
#       -DFAISS_ENABLE_GPU=OFF -DFAISS_ENABLE_PYTHON=OFF -DBUILD_TESTING=OFF \
#       -DFAISS_ENABLE_EXTRAS=OFF -DFAISS_ENABLE_MKL=OFF -DBLA_VENDOR=OpenBLAS \
#       -DCMAKE_BUILD_TYPE=Release
#   nice cmake --build build -j2 --target faiss_avx512     # about 20 min on 2 cores
#
#   bench/build_fast_scan_ref.sh FAISS_SRC [OUT]   (OUT default: build/fast_scan_ref_avx512)
#   build/bench/bq_bench --threads 1 --reference build/fast_scan_ref_avx512 ...
set -euo pipefail
src=${1:?usage: build_fast_scan_ref.sh FAISS_SRC [OUT]}
here=$(cd "$(dirname "$0")" && pwd)
out=${2:-$here/../build/fast_scan_ref_avx512}
lib=$src/build/faiss/libfaiss_avx512.a
[ -f "$lib" ] || { echo "build_fast_scan_ref.sh: $lib not found (build FAISS first, see above)" >&2; exit 1; }
nice g++ -std=c++17 -O3 -mavx2 -mfma -mf16c -mavx512f -mavx512cd -mavx512vl -mavx512dq -mavx512bw -mpopcnt \
    -fopenmp -I"$src" -I"$here/.." -o "$out" \
    "$here/fast_scan_ref.cpp" "$here/bench_data.cpp" "$here/../faiss_bq/utils/vecs_io.cpp" \
    "$lib" -lopenblas -llapack
echo "built $out"
