#!/usr/bin/env bash
# Runs 3 instances of the scheduled-jobs example against one Redis for about 10 s and prints,
# for each tick, which instance ran the job and how many skipped: one execution per tick.
#
# Uses the Redis at $REDIS_URL (default redis://127.0.0.1:6379) if it answers; otherwise
# starts a throwaway redis-server on a free port and stops it at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

url=${REDIS_URL:-redis://127.0.0.1:6379}
work=$(mktemp -d)
server_pid=""
cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

if ! redis-cli -u "$url" ping >/dev/null 2>&1; then
    command -v redis-server >/dev/null || { echo "no Redis at $url and no redis-server to start (apt-get install redis-server)" >&2; exit 1; }
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" --logfile "$work/redis.log" &
    server_pid=$!
    url="redis://127.0.0.1:$port"
    for _ in $(seq 100); do redis-cli -u "$url" ping >/dev/null 2>&1 && break; sleep 0.1; done
    echo "started redis-server at $url"
else
    echo "using the Redis at $url"
fi

cargo build -q -p lock-examples --bin scheduled-jobs
job="demo-$$"
for name in a b c; do
    target/debug/scheduled-jobs --redis "$url" --name "$name" --job "$job" --ticks 5 --period-ms 2000 >"$work/$name.log" &
done
wait_for=()
for pid in $(jobs -p); do [ "$pid" != "$server_pid" ] && wait_for+=("$pid"); done
wait "${wait_for[@]}"

echo
echo "what each instance printed:"
sort "$work"/[abc].log
echo
echo "summary:"
sort "$work"/[abc].log | awk '
    { tick = $2; sub(":", "", tick) }
    / ran$/ { ran[tick]++; who[tick] = $4 }
    /skipped/ { skipped[tick]++ }
    { seen[tick] = 1 }
    END { for (t in seen) printf "tick %s: %d execution(s) (by %s), %d skip(s)\n", t, ran[t], who[t], skipped[t] }
' | sort | tee "$work/summary"
if grep -qv ": 1 execution(s)" "$work/summary"; then
    echo "FAIL: a tick did not run exactly once"
    exit 1
fi
echo "every tick ran exactly once"
