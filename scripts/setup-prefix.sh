#!/usr/bin/env bash
# Sourced by setup.sh --no-root: builds gridexp against Debian's/Ubuntu's packages without
# root. `setup_prefix PACKAGE...` fetches the packages and what they need that the system
# lacks with `apt-get download` (apt's own lists kept in the prefix, so no root is needed even
# for `apt-get update`), unpacks them into $GRIDEXP_PREFIX (default: .deps/ in the checkout),
# and exports what CMake and pkg-config need to build against that prefix, with a RUNPATH to
# it so the programs run without LD_LIBRARY_PATH.

GRIDEXP_PREFIX="${GRIDEXP_PREFIX:-$ROOT/.deps}"

# apt-get or apt-cache (the first argument) with lists and caches of its own; the system's
# sources and its record of what is installed.
prefix_apt() {
  local state="$GRIDEXP_PREFIX/apt" program="$1"
  shift
  mkdir -p "$state/lists/partial" "$state/cache/archives/partial"
  "$program" -q -o Debug::NoLocking=1 -o Dir::State::Lists="$state/lists" \
    -o Dir::Cache="$state/cache" -o Dir::State::status=/var/lib/dpkg/status \
    -o APT::Sandbox::User="$(id -un)" "$@"
}

# The packages to fetch: those asked for and everything they depend on that the system lacks.
prefix_closure() {
  prefix_apt apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts \
    --no-breaks --no-replaces --no-enhances "$@" 2>/dev/null |
    grep -E '^[a-z0-9][a-z0-9.+-]*$' | sort -u |
    while read -r package; do
      installed "$package" || echo "$package"
    done
}

# A -dev package's `libfoo.so` link points at the runtime library beside it; when that library
# is the system's (not fetched), point the link at the system's copy.
prefix_relink_to_system() {
  local libdir="$1" link target system_dir
  for link in "$libdir"/*.so; do
    [ -L "$link" ] && [ ! -e "$link" ] || continue
    target="$(basename "$(readlink "$link")")"
    for system_dir in "/usr/lib/$MULTIARCH" "/lib/$MULTIARCH" /usr/lib /lib; do
      if [ -e "$system_dir/$target" ]; then
        ln -sfn "$system_dir/$target" "$link"
        break
      fi
    done
  done
}

setup_prefix() {
  command -v apt-get >/dev/null 2>&1 ||
    fail "--no-root fetches Debian/Ubuntu packages with apt-get, and this system has none"
  MULTIARCH="$(gcc -print-multiarch 2>/dev/null || dpkg-architecture -qDEB_HOST_MULTIARCH)"
  local root="$GRIDEXP_PREFIX/root" stamp="$GRIDEXP_PREFIX/packages" packages deb
  local wanted="$*"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$wanted" ]; then
    echo "setup: fetching Debian packages into $GRIDEXP_PREFIX (no root): $wanted"
    prefix_apt apt-get -qq update >/dev/null
    packages=()
    while read -r package; do [ -z "$package" ] || packages+=("$package"); done \
      <<<"$(prefix_closure "$@")"
    rm -rf "$root" "$GRIDEXP_PREFIX/debs"
    mkdir -p "$root/usr" "$GRIDEXP_PREFIX/debs"
    # Nothing to fetch when the system already has every package.
    if [ ${#packages[@]} -gt 0 ]; then
      (cd "$GRIDEXP_PREFIX/debs" && prefix_apt apt-get -qq download "${packages[@]}" >/dev/null) ||
        fail "apt-get download failed for: ${packages[*]}"
    fi
    for deb in "$GRIDEXP_PREFIX"/debs/*.deb; do [ -e "$deb" ] && dpkg-deb -x "$deb" "$root"; done
    prefix_relink_to_system "$root/usr/lib/$MULTIARCH"
    # The packages' pkg-config files say /usr; these copies live in the prefix.
    find "$root/usr" -name '*.pc' -path '*/pkgconfig/*' -exec sed -i -E \
      "s#(^|[=[:space:]]|-I|-L)/usr(/|\$)#\1$root/usr\2#g" {} +
    echo "$wanted" >"$stamp"
    echo "setup: unpacked ${#packages[@]} packages: ${packages[*]}"
  fi

  local usr="$root/usr" libdir="$root/usr/lib/$MULTIARCH"
  local cmake_args=(
    "-DCMAKE_PREFIX_PATH=$usr"
    "-DOPENSSL_ROOT_DIR=$usr"
    "-DCMAKE_INSTALL_RPATH=$libdir"
    "-DCMAKE_INSTALL_RPATH_USE_LINK_PATH=ON"
    "-DCMAKE_CXX_FLAGS=-isystem $usr/include/$MULTIARCH -isystem $usr/include"
  )
  # Debian's pkgconf, when fetched, runs from the prefix through a wrapper.
  if [ -x "$usr/bin/pkgconf" ] && ! command -v pkg-config >/dev/null 2>&1; then
    mkdir -p "$GRIDEXP_PREFIX/bin"
    printf '#!/bin/sh\nLD_LIBRARY_PATH="%s" exec "%s" "$@"\n' "$libdir" "$usr/bin/pkgconf" \
      >"$GRIDEXP_PREFIX/bin/pkg-config"
    chmod +x "$GRIDEXP_PREFIX/bin/pkg-config"
    cmake_args+=("-DPKG_CONFIG_EXECUTABLE=$GRIDEXP_PREFIX/bin/pkg-config")
  fi
  # The prefix's pkg-config files first, then the system's (for what the system already had).
  export PKG_CONFIG_PATH="$libdir/pkgconfig:$usr/share/pkgconfig:$usr/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
  # Debian's libpythonX.Y-dev, when fetched, sits in the prefix: name it to FindPython.
  if [ -f "$usr/include/python$PY_VERSION/Python.h" ]; then
    cmake_args+=("-DPython_INCLUDE_DIR=$usr/include/python$PY_VERSION"
      "-DPython_LIBRARY=$libdir/libpython$PY_VERSION.so")
  fi
  # scikit-build-core splits CMAKE_ARGS as a shell would.
  CMAKE_ARGS="$(printf '%q ' "${cmake_args[@]}")"
  export CMAKE_ARGS
}
