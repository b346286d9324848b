#!/usr/bin/env bash
# The whole test suite: set everything up, check formatting and lint, run the C++ unit tests
# under AddressSanitizer + UndefinedBehaviorSanitizer, fuzz every parser for a bounded time
# (libFuzzer), then the system tests (pytest, the kill -9 soak included) against
# the installed gridexp-server, the benchmarks' smoke check, and (in CI, or with
# GRIDEXP_FRESH_MACHINE=1) README command 1 on fresh debootstrap roots. Extra arguments go to
# pytest.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${GRIDEXP_VENV:-$ROOT/.venv}"
"$ROOT/scripts/setup.sh" --tests
cd "$ROOT"

echo "== format and lint"
mapfile -t cpp_files < <(git ls-files 'cpp/*.cpp' 'cpp/*.h' 'tests/cpp/*.cpp' 'tests/cpp/*.h')
clang-format --dry-run --Werror "${cpp_files[@]}"
"$VENV/bin/ruff" check python tests/python
"$VENV/bin/ruff" format --check python tests/python

echo "== C++ unit tests (ASan + UBSan)"
cmake -S . -B build/asan -G Ninja -DGRIDEXP_BUILD_TESTS=ON -DGRIDEXP_SANITIZE=ON \
  -DPython_EXECUTABLE="$VENV/bin/python" \
  -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build/asan
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build/asan --output-on-failure -j 2 | tee build/asan/ctest.log
# In CI a test that could not run (GTEST_SKIP: numpy or torch missing) is a failure.
if [ "${CI:-}" = true ] && grep -q "(Skipped)" build/asan/ctest.log; then
  echo "CI: GoogleTest cases were skipped, which CI counts as failures:" >&2
  grep "(Skipped)" build/asan/ctest.log >&2
  exit 1
fi

echo "== fuzzing (libFuzzer: every target 20 s from its seed corpus; scripts/run-fuzz.sh)"
bash scripts/run-fuzz.sh "${GRIDEXP_FUZZ_SECONDS:-20}"

echo "== system tests (pytest, real gridexp-server on loopback)"
PATH="$VENV/bin:$PATH" "$VENV/bin/python" -m pytest tests/python "$@"

echo "== benchmark smoke check (python -m bench --quick: checks that every scenario runs, never a speed)"
"$VENV/bin/python" -m pip --disable-pip-version-check -q install optuna
PATH="$VENV/bin:$PATH" "$VENV/bin/python" -m bench --quick

echo "== fresh machine (README command 1 in minimal Debian 12 roots: as root, and --no-root as a user)"
if [ "${CI:-}" = true ] || [ "${GRIDEXP_FRESH_MACHINE:-0}" = 1 ]; then
  bash tests/fresh_machine/run.sh
else
  echo "NOT RUN here: it needs root and about 10 minutes; CI runs it (CI=true), and"
  echo "GRIDEXP_FRESH_MACHINE=1 scripts/run-tests.sh runs it here"
fi
