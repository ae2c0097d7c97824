#!/usr/bin/env bash
# Rebuilds every sample .wasm from its source, installing the toolchains it lacks:
#   Debian: wabt (wat2wasm), clang, lld, wasi-libc, libclang-rt-14-dev-wasm32
#   npm:    assemblyscript, @assemblyscript/wasi-shim (locally, in double/as/node_modules)
#   Go:     the go command already building this module (GOOS=wasip1 GOARCH=wasm)
# Usage: samples/build.sh        (from anywhere; run as root or with sudo available)
set -euo pipefail
cd "$(dirname "$0")"

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi

need_apt=()
command -v wat2wasm >/dev/null || need_apt+=(wabt)
command -v clang >/dev/null || need_apt+=(clang)
command -v wasm-ld >/dev/null || need_apt+=(lld)
[ -f /usr/lib/wasm32-wasi/libc.a ] || need_apt+=(wasi-libc)
ls /usr/lib/llvm-*/lib/clang/*/lib/wasi/libclang_rt.builtins-wasm32.a >/dev/null 2>&1 ||
	need_apt+=(libclang-rt-14-dev-wasm32)
if [ ${#need_apt[@]} -gt 0 ]; then
	echo "installing ${need_apt[*]}" >&2
	$SUDO apt-get update -qq
	$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
fi
if ! command -v npm >/dev/null; then
	echo "installing npm" >&2
	$SUDO apt-get update -qq
	$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm
fi

# WAT
wat() { wat2wasm "$1" -o "$2"; }
wat noop/noop.wat noop/noop.wasm
wat double/double.wat double/double_wat.wasm
wat spin/spin.wat spin/spin.wasm
for f in hostile/*.wat reactor/*.wat; do wat "$f" "${f%.wat}.wasm"; done

# C (wasi-libc)
cc() { clang --target=wasm32-wasi -O2 -Wl,--strip-debug -o "$2" "$1"; }
cc double/double.c double/double_c.wasm
clang --target=wasm32-wasi -mexec-model=reactor -O2 -Wl,--strip-debug -o double/double_c_reactor.wasm double/double_reactor.c
for f in echo wordcount fib sleep sort; do cc "$f/$f.c" "$f/$f.wasm"; done
for f in hostile/*.c; do cc "$f" "${f%.c}.wasm"; done

# Go (wasip1)
GOOS=wasip1 GOARCH=wasm go build -trimpath -ldflags="-s -w" -o double/double_go.wasm ./double/go
# Go reactors (faas/fn; Go 1.24+): exports run and _initialize
reactor() { GOOS=wasip1 GOARCH=wasm go build -trimpath -ldflags="-s -w" -buildmode=c-shared -o "$2" "$1"; }
reactor ./double/go-reactor double/double_go_reactor.wasm
reactor ./reactor/gomap reactor/gomap.wasm

# AssemblyScript (with the WASI shim, so the module imports only wasi_snapshot_preview1)
(
	cd double/as
	[ -x node_modules/.bin/asc ] && [ -d node_modules/@assemblyscript/wasi-shim ] ||
		npm install --no-audit --no-fund
	npx asc double.ts --config asconfig.json -o ../double_as.wasm
	# the reactor: the start-up exported as _initialize instead of _start
	npx asc double_reactor.ts --config asconfig.reactor.json -o ../double_as_reactor.wasm
)

echo "samples built:" >&2
find . -name '*.wasm' -not -path '*/node_modules/*' | sort >&2
