#!/usr/bin/env bash
# The README's first command on a really fresh machine: a minimal Debian root made with
# debootstrap (--variant=minbase, plus only git, ca-certificates and sudo), a clone of the
# commit, and `scripts/run-example.sh` run in it twice, each in a fresh copy of that root:
#   1. as root, exactly as the README says (setup installs what it needs with apt-get);
#   2. as an unprivileged user with `--no-root`, after root installed only what a GPU box
#      gives its users (g++, Python with venv): nothing else may come from root.
# Each must run the example grid to the end and print its results. Needs root (chroot, mounts).
#
#   tests/fresh_machine/run.sh [--rev REV] [--only root|no-root] [--keep]
#
# Only debootstrap's own output is cached (/var/cache/gridexp-fresh, a week): it holds nothing
# that gridexp's scripts install, so it cannot hide a missing install step. The host's pip
# configuration, CA certificates and local wheel folders are copied or bind-mounted read-only
# so that apt and pip reach the same packages as the host.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SUITE=bookworm
BASE_PACKAGES=git,ca-certificates,sudo
REV=HEAD
ONLY=""
KEEP=0
while [ $# -gt 0 ]; do
  case "$1" in
    --rev) REV="$2"; shift ;;
    --only) ONLY="$2"; shift ;;
    --keep) KEEP=1 ;;
    *) echo "fresh-machine: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
say() { echo "fresh-machine: $*"; }
[ "$(id -u)" -eq 0 ] || { say "needs root (debootstrap, chroot, mounts)" >&2; exit 2; }
commit="$(git -C "$REPO" rev-parse "$REV")"
stage_start=$SECONDS

if ! command -v debootstrap >/dev/null 2>&1; then
  say "installing debootstrap"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
fi

# The host's Debian mirror (Debian 12 or 13 host alike), for debootstrap and the root's apt.
mirror="$(grep -rhoE '^(URIs:|deb) *[^ ]*debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null |
  awk '{print $2}' | head -n 1 || true)"
mirror="${mirror:-http://deb.debian.org/debian}"
security_mirror="${mirror%/debian*}/debian-security"

cache_dir=/var/cache/gridexp-fresh
base_tar="$cache_dir/$SUITE-minbase-${BASE_PACKAGES//,/-}.tar"
if [ -z "$(find "$base_tar" -mtime -7 2>/dev/null)" ]; then
  say "debootstrap --variant=minbase --include=$BASE_PACKAGES $SUITE from $mirror"
  mkdir -p "$cache_dir"
  bootstrap_dir="$(mktemp -d /var/tmp/gridexp-debootstrap.XXXXXX)"
  debootstrap --variant=minbase --include="$BASE_PACKAGES" "$SUITE" "$bootstrap_dir" "$mirror" \
    >"$bootstrap_dir.log" 2>&1 || { tail -n 20 "$bootstrap_dir.log" >&2; exit 1; }
  tar -C "$bootstrap_dir" -cf "$base_tar.partial" .
  mv "$base_tar.partial" "$base_tar"
  rm -rf "$bootstrap_dir" "$bootstrap_dir.log"
  say "debootstrap took $((SECONDS - stage_start)) s"
else
  say "debootstrap's output from the cache: $base_tar"
fi

work="$(mktemp -d /var/tmp/gridexp-fresh.XXXXXX)"
apt_archives="$work/apt-archives"  # .deb files only, shared by the two roots of this run
mkdir -p "$apt_archives/partial"
mounted=()
cleanup() {
  local index
  for ((index = ${#mounted[@]} - 1; index >= 0; index--)); do
    umount -l "${mounted[index]}" 2>/dev/null || true
  done
  if [ "$KEEP" -eq 1 ]; then
    say "kept $work"
  elif findmnt -rn -o TARGET | grep -q "^$work/"; then
    say "something under $work is still mounted: not removing it" >&2
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT
bind() {  # bind SOURCE TARGET [ro]
  mkdir -p "$2"
  mount --bind "$1" "$2"
  mounted+=("$2")
  [ "${3:-}" != ro ] || mount -o remount,bind,ro "$2"
}

# Every local folder that the host's pip reads packages from (find-links, file:// indexes).
pip_local_folders() {
  { pip config list 2>/dev/null | cut -d= -f2- | tr -d "'"; env | grep '^PIP_' | cut -d= -f2-; } |
    tr ' ' '\n' | sed -n 's|^file://||p; /^\//p' | sed 's|/simple/*$||; s|/*$||' | sort -u |
    while read -r folder; do [ -d "$folder" ] && echo "$folder"; done
}

# A fresh root from debootstrap's output, set up as a fresh machine on the host's network.
make_root() {
  local root="$1" folder file
  mkdir -p "$root"
  tar -C "$root" -xf "$base_tar"
  chmod 755 "$root"  # tar gave it the mode of debootstrap's mktemp folder (0700)
  cat >"$root/etc/apt/sources.list" <<SOURCES
deb $mirror $SUITE main
deb $mirror $SUITE-updates main
deb $security_mirror $SUITE-security main
SOURCES
  cp /etc/resolv.conf "$root/etc/resolv.conf"
  cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
  for file in /etc/pip.conf /etc/xdg/pip "$HOME/.config/pip" "$HOME/.pip"; do
    [ -e "$file" ] || continue
    mkdir -p "$root$(dirname "$file")"
    cp -r "$file" "$root$(dirname "$file")/"
  done
  echo "builder:x:1500:1500:gridexp builder:/home/builder:/bin/bash" >>"$root/etc/passwd"
  echo "builder:x:1500:" >>"$root/etc/group"
  echo "builder:*:20000:0:99999:7:::" >>"$root/etc/shadow"
  mkdir -p "$root/home/builder/.config"
  [ ! -d "$HOME/.config/pip" ] || cp -r "$HOME/.config/pip" "$root/home/builder/.config/"
  chown -R 1500:1500 "$root/home/builder"
  bind /proc "$root/proc"
  bind /sys "$root/sys" ro
  bind /dev "$root/dev"
  bind /dev/pts "$root/dev/pts"
  mkdir -p "$root/dev/shm"
  mount -t tmpfs tmpfs "$root/dev/shm" && mounted+=("$root/dev/shm")
  bind "$apt_archives" "$root/var/cache/apt/archives"
  while read -r folder; do bind "$folder" "$root$folder" ro; done < <(pip_local_folders)
}

in_root() {  # in_root ROOT USER COMMAND: a login-like environment, only the pip settings kept
  local root="$1" user="$2" home=/root
  [ "$user" = root ] || home="/home/$user"
  chroot "$root" /usr/sbin/runuser -u "$user" -- /usr/bin/env -i HOME="$home" USER="$user" \
    LANG=C.UTF-8 PATH=/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin \
    $(env | grep -E '^PIP_' | tr '\n' ' ') /bin/bash -c "$3"
}

clone_into() {  # clone_into ROOT DIR OWNER
  git clone -q --no-hardlinks "$REPO" "$1$2"
  git -C "$1$2" -c advice.detachedHead=false checkout -q "$commit"
  chown -R "$3" "$1$2"
}

port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
failures=0
run_example() {  # run_example NAME ROOT USER DIR ARGS
  local name="$1" root="$2" user="$3" dir="$4" args="$5" started=$SECONDS log="$work/$1.log"
  say "[$name] scripts/run-example.sh $args as $user in a fresh $SUITE root (commit ${commit:0:12})"
  if in_root "$root" "$user" "cd $dir && PORT=$port scripts/run-example.sh $args" >"$log" 2>&1 &&
    grep -q "^best trial by val_accuracy" "$log"; then
    say "[$name] passed in $((SECONDS - started)) s; its last lines:"
    tail -n 16 "$log" | sed 's/^/    /'
  else
    say "[$name] FAILED after $((SECONDS - started)) s; the last 40 lines of its output:"
    tail -n 40 "$log" | sed 's/^/    /'
    failures=$((failures + 1))
  fi
}

if [ -z "$ONLY" ] || [ "$ONLY" = root ]; then
  make_root "$work/root-user"
  clone_into "$work/root-user" /root/gridexp 0:0
  run_example root "$work/root-user" root /root/gridexp ""
fi
if [ -z "$ONLY" ] || [ "$ONLY" = no-root ]; then
  make_root "$work/builder"
  started=$SECONDS
  in_root "$work/builder" root "apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends g++ python3 python3-venv >/dev/null"
  say "[no-root] root installed g++ python3 python3-venv (what a GPU box has) in $((SECONDS - started)) s"
  clone_into "$work/builder" /home/builder/gridexp 1500:1500
  run_example no-root "$work/builder" builder /home/builder/gridexp --no-root
fi
say "took $((SECONDS - stage_start)) s in all"
[ "$failures" -eq 0 ] || { say "$failures of the runs failed"; exit 1; }
