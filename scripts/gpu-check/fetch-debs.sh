#!/usr/bin/env bash
# Fetches the Debian 12 .deb files scripts/gpu-check/short-trials.sh builds from into .gpu/debs
# (ignored by git; pass `carry: [".gpu"]` to the device tool). Run on a Debian 12 machine with
# its package lists (apt-get update); needs no root: apt-get download writes to the folder.
# Debian 12's libraries, not 13's: the GPU machine's glibc (Ubuntu 24.04: 2.39) is too old for
# Debian 13's packages.
set -eu
if ! grep -q '^12' /etc/debian_version 2>/dev/null; then
  echo "fetch-debs.sh: needs Debian 12 (this is $(cat /etc/debian_version 2>/dev/null || echo 'not Debian'))" >&2
  exit 2
fi
packages=(libcpp-httplib-dev libcpp-httplib0.11 libyaml-cpp-dev libyaml-cpp0.7 nlohmann-json3-dev
  libzip-dev libzip4 libsqlite3-dev libsqlite3-0 libssl-dev libssl3 zlib1g-dev libbrotli-dev
  libbrotli1 libbz2-dev libbz2-1.0 pkgconf pkgconf-bin libpkgconf3)
mkdir -p .gpu/debs
cd .gpu/debs
apt-get download "${packages[@]}"
ls -1 | wc -l | xargs printf '%s .deb files in .gpu/debs\n'
