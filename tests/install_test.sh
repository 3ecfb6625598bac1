#!/bin/bash
# ctest: `cmake --install` the build into a fresh prefix, then configure,
# build and run tests/install_consumer against it with find_package(faiss_bq).
#   install_test.sh BUILD_DIR SOURCE_DIR WORK_DIR
set -euo pipefail
build=$1 source=$2 work=$3
rm -rf "$work" && mkdir -p "$work"
cmake --install "$build" --prefix "$work/prefix" --component dev > "$work/install.log"
test -f "$work/prefix/include/faiss_bq/IndexBQ.h"
test -f "$work/prefix/include/faiss_bq/kernels/kernels.h"
cmake -S "$source/tests/install_consumer" -B "$work/consumer" \
    -DCMAKE_PREFIX_PATH="$work/prefix" -DCMAKE_BUILD_TYPE=Release > "$work/configure.log"
cmake --build "$work/consumer" > "$work/build.log"
"$work/consumer/consumer"
