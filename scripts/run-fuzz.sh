#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz with clang (AddressSanitizer + UBSan, a tree of
# its own: build/fuzz) and runs each for SECONDS_PER_TARGET seconds (default 30), starting
# from its seed corpus in tests/fuzz/corpus/<target>/. Exits non-zero if any target crashed,
# leaked, ran out of memory (-rss_limit_mb) or timed out on an input, printing the input that
# reproduces it. Installs what it needs (clang and its libFuzzer runtime, the build
# dependencies) with apt-get; see docs/testing.md.
#
#   scripts/run-fuzz.sh [SECONDS_PER_TARGET]
#   GRIDEXP_FUZZ_BUILD_DIR=DIR   build tree (default build/fuzz)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${GRIDEXP_VENV:-$ROOT/.venv}"
BUILD="${GRIDEXP_FUZZ_BUILD_DIR:-$ROOT/build/fuzz}"
SECONDS_PER_TARGET="${1:-30}"
TARGETS=(config_fuzz json_parse_fuzz server_request_fuzz executor_command_fuzz archive_fuzz)

# The largest input each target is given: room for what it parses (a deeply nested JSON body,
# a zip with several entries), small enough to keep the runs fast.
max_len() {
  case "$1" in
    json_parse_fuzz) echo 131072 ;;
    server_request_fuzz | archive_fuzz) echo 65536 ;;
    *) echo 16384 ;;
  esac
}

# clang plus libclang-rt-dev, which carries libFuzzer's runtime (libclang_rt.fuzzer*.a): on
# Debian 12 both pull version 14, on Debian 13 version 19; clang alone only recommends it.
DEBIAN_PACKAGES=(clang libclang-rt-dev cmake ninja-build pkg-config
  libcpp-httplib-dev libyaml-cpp-dev nlohmann-json3-dev libzip-dev libsqlite3-dev libssl-dev)
# shellcheck source=scripts/apt.sh
source "$ROOT/scripts/apt.sh"
apt_install "${DEBIAN_PACKAGES[@]}"
# The tree configures the executor too, which needs the virtualenv's Python and pybind11.
if ! "$VENV/bin/python" -c 'import pybind11' 2>/dev/null; then
  "$ROOT/scripts/setup.sh"
fi

echo "== building the fuzz targets (clang, libFuzzer + ASan + UBSan) in $BUILD"
started=$(date +%s)
CC=clang CXX=clang++ cmake -S "$ROOT" -B "$BUILD" -G Ninja -DGRIDEXP_FUZZ=ON \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPython_EXECUTABLE="$VENV/bin/python" >/dev/null
cmake --build "$BUILD" --target fuzz_targets
echo "fuzz: built in $(($(date +%s) - started)) s"

failed=()
for target in "${TARGETS[@]}"; do
  binary="$BUILD/tests/fuzz/$target"
  # New inputs go to a scratch corpus in the build tree; the committed seeds stay as they are.
  scratch="$BUILD/corpus/$target"
  artifacts="$BUILD/artifacts/$target"
  rm -rf "$artifacts"
  mkdir -p "$scratch" "$artifacts"
  echo "== $target: ${SECONDS_PER_TARGET} s"
  if ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 "$binary" \
    -max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb=2048 -malloc_limit_mb=2048 -timeout=10 \
    -max_len="$(max_len "$target")" -print_final_stats=1 -artifact_prefix="$artifacts/" \
    "$scratch" "$ROOT/tests/fuzz/corpus/$target" >"$BUILD/$target.log" 2>&1; then
    grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb)' "$BUILD/$target.log" || true
  else
    failed+=("$target")
    tail -n 40 "$BUILD/$target.log"
    for input in "$artifacts"/*; do
      [ -e "$input" ] && echo "fuzz: $target failed; reproduce with: $binary $input"
    done
    echo "fuzz: full log: $BUILD/$target.log"
  fi
done

echo "fuzz: done in $(($(date +%s) - started)) s"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: FAILED: ${failed[*]}"
  exit 1
fi
echo "fuzz: every target ran ${SECONDS_PER_TARGET} s without a failure"
