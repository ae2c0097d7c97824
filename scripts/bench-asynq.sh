#!/usr/bin/env bash
# The faas-versus-asynq drain comparison of docs/BENCHMARKS.md, in one sitting: one private
# redis-server, then RUNS interleaved pairs (faas local drain, asynq drain), flushed between.
# Usage: scripts/bench-asynq.sh [RUNS] [N]      (defaults 3 and 20000)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
n=${2:-20000}
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo 6390)
dir=$(mktemp -d)
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" >/dev/null &
rpid=$!
trap 'kill $rpid 2>/dev/null; wait $rpid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
go build -o "$dir/bench" ./bench
(cd bench/asynq && go build -o "$dir/asynq" .)
for i in $(seq "$runs"); do
  redis-cli -p "$port" flushall >/dev/null
  echo "run $i faas local -w 2:"
  "$dir/bench" -mode local -n "$n" -w 2 -redis "redis://127.0.0.1:$port/0" 2>&1 | tail -n 2
  redis-cli -p "$port" flushall >/dev/null
  echo "run $i asynq -c 10 (tasks/s seconds):"
  "$dir/asynq" -redis "127.0.0.1:$port" -n "$n" -c 10 2>/dev/null
done
