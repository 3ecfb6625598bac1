#!/usr/bin/env bash
# quickstart.sh bench|test — the README's two commands.
#   bench: install what is missing (Debian packages), fetch the real embeddings if a
#          data script is beside the checkout, build, run the main job (bench/bq_bench).
#   test:  the same set-up, then every test through ctest: the normal build and a
#          second build under AddressSanitizer + UndefinedBehaviorSanitizer.
# Idempotent: apt-get runs only when a package is missing; data and builds are reused.
# Environment: FAISS_BQ_DATA (data folder; default ../shared/data beside the checkout),
#   JOBS (parallel build jobs), CI (set: warnings are errors).
set -euo pipefail
mode=${1:-}
case "$mode" in bench|test) ;; *) echo "usage: $0 bench|test" >&2; exit 2;; esac
shift

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
JOBS=${JOBS:-$(nproc)}
DATA=${FAISS_BQ_DATA:-$root/../shared/data}

# ------------------------------------------------------------- Debian packages
packages=(build-essential cmake libfaiss-dev libopenblas-dev liblapack-dev libgtest-dev
          swig python3 python3-dev python3-numpy python3-pytest python3-faiss
          python3-matplotlib python3-distributed)
command -v node >/dev/null 2>&1 || packages+=(nodejs npm)   # only the data script needs them
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "[quickstart] installing: ${missing[*]}"
  sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# ------------------------------------------------------------- real embeddings
# The recall tests and the bench read them; without the data script they skip and say so.
if [ -x "$DATA/get-data.sh" ] || [ -f "$DATA/get-data.sh" ]; then
  DATASETS=${DATASETS:-"minilm-sap use512-wordnet"} bash "$DATA/get-data.sh" "$DATA"
else
  echo "[quickstart] no $DATA/get-data.sh: real-data tests will skip (see docs/benchmarks.md)"
fi
export FAISS_BQ_DATA="$DATA"

# ------------------------------------------------------------- build
werror=OFF; [ -n "${CI:-}" ] && werror=ON
configure() {  # configure BUILD_DIR [extra cmake args...]
  local dir=$1; shift
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release -DFAISS_BQ_WERROR=$werror "$@" >/dev/null
  cmake --build "$dir" -j "$JOBS"
}

if [ "$mode" = bench ]; then
  configure build -DFAISS_BQ_BUILD_TESTS=OFF
  exec build/bench/bq_bench "$@"
fi

configure build
(cd build && ctest --output-on-failure -j "$JOBS")
# No Python module under the sanitizers: an ASan-built extension loads into
# /usr/bin/python3 only with libasan preloaded, and LeakSanitizer then reports
# the interpreter's own allocations. The module's C++ code is the library
# these tests check; its Python glue is tested in build/.
configure build-asan -DFAISS_BQ_SANITIZE=ON -DFAISS_BQ_BUILD_BENCH=OFF -DFAISS_BQ_BUILD_PYTHON=OFF
(cd build-asan && ctest --output-on-failure -j "$JOBS")
