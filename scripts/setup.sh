#!/usr/bin/env bash
# Sets up everything gridexp needs on a Debian 12/13 machine, idempotently:
#   - the Debian packages it builds against (apt-get, only those missing),
#   - a virtualenv in .venv with torch==2.13.0 (CPU build) and the build tools,
#   - gridexp itself (`pip install .`), which builds the C++ programs.
# Sourced by run-example.sh and run-tests.sh; safe to run on its own.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${GRIDEXP_VENV:-$ROOT/.venv}"

DEBIAN_PACKAGES=(g++ cmake ninja-build pkg-config clang-format
  libcpp-httplib-dev libyaml-cpp-dev nlohmann-json3-dev libzip-dev libsqlite3-dev
  libgtest-dev libssl-dev)
# `setup.sh --tests` also brings what only the test suite needs: headless Chromium for the
# dashboard's browser tests (driven by Playwright with executable_path=/usr/bin/chromium).
WITH_TESTS=0
[ "${1:-}" = "--tests" ] && WITH_TESTS=1
[ "$WITH_TESTS" -eq 1 ] && DEBIAN_PACKAGES+=(chromium)

missing=()
for package in "${DEBIAN_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" ||
    missing+=("$package")
done
if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then missing+=(python3-venv); fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating virtualenv $VENV"
  python3 -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
# torch is pinned: an unpinned install would pull a multi-gigabyte CUDA build.
"$VENV/bin/python" -c 'import torch' 2>/dev/null || "${PIP[@]}" install torch==2.13.0
"${PIP[@]}" install "scikit-build-core>=0.10" "pybind11>=2.11" "plotly>=5"
if [ "$WITH_TESTS" -eq 1 ]; then
  "${PIP[@]}" install "pytest>=7" "requests>=2.28" ruff numpy "pandas>=1.5" "playwright>=1.40" \
    "prometheus-client>=0.17"
fi
echo "setup: building and installing gridexp"
"${PIP[@]}" install --no-build-isolation "$ROOT"
echo "setup: ready ($("$VENV/bin/gridexp-server" --version))"
