#!/usr/bin/env bash
# Sets up everything gridexp needs, idempotently:
#   - what the build needs from the system: the compiler, CMake, the C++ libraries, and the
#     headers and shared library of the Python it builds with (Debian's packages),
#   - a virtualenv in .venv with torch==2.13.0 (CPU build) and the build tools,
#   - gridexp itself (`pip install .`), which builds the C++ programs.
# Sourced by run-example.sh and run-tests.sh; safe to run on its own.
#
#   scripts/setup.sh [--tests] [--no-root]
#
# --tests    also what only the test suite needs (clang-format, GoogleTest, headless Chromium).
# --no-root  install nothing system-wide: Debian's/Ubuntu's packages are fetched with
#            `apt-get download` and unpacked into .deps/ inside the checkout, and the programs
#            are built against that prefix with a RUNPATH to it (scripts/setup-prefix.sh).
#            Needs a C++20 compiler (g++ 12+) and a Python with venv already there.
# GRIDEXP_PYTHON picks the interpreter the venv is made from (default: python3).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${GRIDEXP_VENV:-$ROOT/.venv}"
PYTHON="${GRIDEXP_PYTHON:-python3}"

WITH_TESTS=0
NO_ROOT=0
for argument in "$@"; do
  case "$argument" in
    --tests) WITH_TESTS=1 ;;
    --no-root) NO_ROOT=1 ;;
    *) echo "setup: unknown option $argument (known: --tests, --no-root)" >&2; exit 2 ;;
  esac
done

fail() {
  echo "setup: $*" >&2
  exit 2
}

# What the build needs from the system. curl is for the README's examples and the benchmarks.
LIBRARY_PACKAGES=(libcpp-httplib-dev libyaml-cpp-dev nlohmann-json3-dev libzip-dev
  libsqlite3-dev libssl-dev)
TOOL_PACKAGES=(g++ cmake ninja-build pkg-config curl)
TEST_PACKAGES=(clang-format libgtest-dev chromium slurmctld slurmd slurm-client munge)

# shellcheck source=scripts/apt.sh
source "$ROOT/scripts/apt.sh"

# A minimal Debian has no Python at all: Debian's python3 is the default one.
if [ "$PYTHON" = python3 ] && [ "$NO_ROOT" -eq 0 ] && ! command -v python3 >/dev/null 2>&1 &&
  command -v apt-get >/dev/null 2>&1; then
  apt_install python3 python3-venv
fi
command -v "$PYTHON" >/dev/null 2>&1 ||
  fail "no $PYTHON on PATH: install Python 3.9 or newer (Debian: apt-get install python3), or name one with GRIDEXP_PYTHON=/path/to/python"

# The executor embeds the venv's Python: the build needs that interpreter's headers and its
# shared library (libpythonX.Y.so). Where they come from depends on who made the interpreter.
eval "$("$PYTHON" - <<'PY'
import importlib.util, os, sys, sysconfig
config = sysconfig.get_config_var
version = f"{sys.version_info[0]}.{sys.version_info[1]}"
libdir = config("LIBDIR") or ""
multiarch = config("MULTIARCH") or ""
names = [config("INSTSONAME") or "", config("LDLIBRARY") or "", f"libpython{version}.so"]
shared = [name for name in names if ".so" in name]
found = any(os.path.exists(os.path.join(directory, name)) for name in shared
            for directory in (libdir, os.path.join(libdir, multiarch)))
print(f"PY_VERSION={version}")
print(f"PY_REAL={os.path.realpath(sys.executable)!r}")
print(f"PY_HEADERS={int(os.path.exists(os.path.join(sysconfig.get_paths()['include'], 'Python.h')))}")
print(f"PY_SHARED_LIB={int(found)}")
print(f"PY_VENV={int(importlib.util.find_spec('ensurepip') is not None)}")
PY
)"

PYTHON_PACKAGES=()
if dpkg -S "$PY_REAL" >/dev/null 2>&1; then
  # Debian's (or Ubuntu's) interpreter: headers and libpython come as packages of their own.
  PYTHON_PACKAGES+=("libpython$PY_VERSION-dev")
  [ "$PY_VENV" -eq 1 ] || PYTHON_PACKAGES+=("python$PY_VERSION-venv")
elif [ "$PY_HEADERS" -eq 0 ] || [ "$PY_SHARED_LIB" -eq 0 ]; then
  # pyenv, conda, uv and python.org builds carry their own headers; a shared libpython only
  # when built for it.
  what="a shared libpython$PY_VERSION.so"
  [ "$PY_HEADERS" -eq 1 ] || what="its headers (Python.h)"
  fail "$PYTHON ($PY_REAL, Python $PY_VERSION) lacks $what, which gridexp-executor needs to embed it.
  pyenv: reinstall it with PYTHON_CONFIGURE_OPTS=--enable-shared pyenv install --force $PY_VERSION
  or use a Python that has it (uv's and conda's do; Debian's python3 with python3-dev) through GRIDEXP_PYTHON=/path/to/python"
fi
[ "$PY_VENV" -eq 1 ] || [ "${#PYTHON_PACKAGES[@]}" -gt 0 ] ||
  fail "$PYTHON ($PY_REAL) has no venv/ensurepip module: use a Python that has it (GRIDEXP_PYTHON=...)"

if [ "$NO_ROOT" -eq 1 ]; then
  command -v g++ >/dev/null 2>&1 ||
    fail "--no-root needs a C++20 compiler (g++ 12 or newer) on PATH: ask for one, or load it (module load gcc)"
  [ "$PY_VENV" -eq 1 ] ||
    fail "--no-root: $PYTHON ($PY_REAL) cannot make a virtualenv (Debian's python$PY_VERSION-venv is missing, and installing it needs root); use a Python that has venv (uv, pyenv, conda) through GRIDEXP_PYTHON=/path/to/python"
  # shellcheck source=scripts/setup-prefix.sh
  source "$ROOT/scripts/setup-prefix.sh"
  prefix_packages=("${LIBRARY_PACKAGES[@]}" "${PYTHON_PACKAGES[@]}")
  command -v pkg-config >/dev/null 2>&1 || prefix_packages+=(pkgconf)
  setup_prefix "${prefix_packages[@]}"
else
  wanted=("${TOOL_PACKAGES[@]}" "${LIBRARY_PACKAGES[@]}" "${PYTHON_PACKAGES[@]}")
  [ "$WITH_TESTS" -eq 1 ] && wanted+=("${TEST_PACKAGES[@]}")
  apt_install "${wanted[@]}"
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating virtualenv $VENV from $PY_REAL"
  "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
# torch is pinned: an unpinned install would pull a multi-gigabyte CUDA build. numpy beside it,
# or torch warns "Failed to initialize NumPy" in every trial.
"$VENV/bin/python" -c 'import torch' 2>/dev/null || "${PIP[@]}" install torch==2.13.0
"${PIP[@]}" install "scikit-build-core>=0.10" "pybind11>=2.11" "plotly>=5" numpy
# Without root, CMake and ninja come from PyPI when the system has none.
if [ "$NO_ROOT" -eq 1 ]; then
  command -v cmake >/dev/null 2>&1 || "${PIP[@]}" install cmake
  command -v ninja >/dev/null 2>&1 || "${PIP[@]}" install ninja
  export PATH="$PATH:$VENV/bin"
fi
if [ "$WITH_TESTS" -eq 1 ]; then
  "${PIP[@]}" install "pytest>=7" "requests>=2.28" ruff "pandas>=1.5" "playwright>=1.40" \
    "prometheus-client>=0.17" "pyyaml>=6" "pyarrow>=12" "nbclient>=0.7" "nbformat>=5.7" \
    "ipykernel>=6"
fi
echo "setup: building and installing gridexp"
"${PIP[@]}" install --no-build-isolation "$ROOT"
echo "setup: ready ($("$VENV/bin/gridexp-server" --version)); the programs are in $VENV/bin:" \
  "run '. $VENV/bin/activate' to put them on PATH"
