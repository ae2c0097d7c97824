#!/usr/bin/env bash
# Installs the system packages faas needs when they are missing: libzmq (cgo, for the
# ZeroMQ modes), pkg-config (to find it) and, with --with-redis, redis-server and
# redis-sentinel (for the tests and a real deployment; `faas dev` embeds its own Redis);
# with --with-browser, chromium (the dashboard's browser test drives it; it fails under
# CI=true without one and skips elsewhere).
# Uses sudo when not root.
set -euo pipefail

missing=()
pkg-config --exists libzmq 2>/dev/null || missing+=(libzmq3-dev)
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
with_redis=false with_browser=false
for a in "$@"; do
  case "$a" in
    --with-redis) with_redis=true ;;
    --with-browser) with_browser=true ;;
    *) echo "deps: unknown option $a (want --with-redis, --with-browser)" >&2; exit 2 ;;
  esac
done
if $with_browser; then
  command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 ||
    command -v google-chrome >/dev/null 2>&1 || missing+=(chromium)
fi
if $with_redis; then
  # The Sentinel failover test (e2e) runs redis-sentinel, else redis-server --sentinel (the
  # same binary): a machine with redis-server already can run it and gets nothing new.
  command -v redis-server >/dev/null 2>&1 || missing+=(redis-server redis-sentinel)
  # With them, wat2wasm, for the WAT case of the authoring test (e2e TestAuthoring): 1.5 MB. The C
  # toolchain (clang lld wasi-libc libclang-rt-14-dev-wasm32) is ~60 MB of LLVM, not
  # installed here: its case skips, saying so, where it is missing.
  command -v wat2wasm >/dev/null 2>&1 || missing+=(wabt)
fi
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq "${missing[@]}" >/dev/null
