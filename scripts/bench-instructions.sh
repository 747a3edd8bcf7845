#!/usr/bin/env bash
# Instructions per cached review, ours against the bare echo webhook, counted by valgrind's
# callgrind: the same binaries and requests give the same counts whatever else the machine
# is doing, so this is the figure to compare a change by (`make bench`'s requests/s move
# with the machine's load; BENCHMARKS.md).
#
# Each server runs under callgrind; one request warms it (our server: the STS call that
# fills the identity cache), the counters are zeroed, h2load sends N reviews of the one
# token (HTTP/1.1 and HTTP/2, 4 connections, 8 in flight each), and the counters are dumped.
# Reported: every thread's instructions over those N reviews, divided by N, TLS and HTTP
# included (the load generator runs outside valgrind). Under valgrind the CPU has no SHA
# extensions, so the SHA-256 of the identity cache's key runs in software: about 27k of our
# count on a 1.5 KiB token, a few thousand on a CPU with them. It is shown on its own line.
#
# Then distinct tokens, every review a miss, with the cache on (its size cut to 256 entries
# so that it is full and evicting while counted) and off (`--token-cache-ttl=0`): wrk, one
# thread, 4 connections, for DISTINCT_SECONDS after a warm-up, each review a new token; the
# server's instructions over the reviews wrk counted, divided by their number. The STS
# stand-in runs outside valgrind, so what a miss costs our process is what is counted.
#
# usage: scripts/bench-instructions.sh [BIN]   (default: the glibc release build)
# Knobs: REVIEWS (per protocol, 4000), DISTINCT_SECONDS (15), TOP (our functions by own
# cost to list, 0).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
reviews="${REVIEWS:-4000}"

# shellcheck source=scripts/lib.sh
. "$root/scripts/lib.sh"
install_tools bench-instructions valgrind:valgrind callgrind_control:valgrind h2load:nghttp2-client wrk:wrk curl:curl

echo "building (release)…" >&2
cargo build --locked --quiet --release --bin aws-iam-authenticator --example sts_emulator --example echo
bin="${1:-$target_dir/release/aws-iam-authenticator}"
client="$target_dir/release/aws-iam-authenticator"
emulator="$target_dir/release/examples/sts_emulator"
echo_bin="$target_dir/release/examples/echo"


bench_stack instructions "$client"
start_emulator "$akid,$secret,$arn,111122223333,AIDAEXAMPLEALICE"
"${base_env[@]}" AWS_ACCESS_KEY_ID="$akid" AWS_SECRET_ACCESS_KEY="$secret" \
    "$client" token -i "$cluster" --region "$region" --token-only >"$work/token"
review_body "$(cat "$work/token")" >"$work/review.json"
# Distinct tokens: a first part to warm up with, the rest to count over (none seen before).
"$emulator" --identity "$akid,$secret,$arn,111122223333,AIDAEXAMPLEALICE" \
    --write-reviews "$work/distinct.jsonl" --count 20000 --cluster-id "$cluster" --region "$region"
head -n 4000 "$work/distinct.jsonl" >"$work/warm.jsonl"
tail -n +4001 "$work/distinct.jsonl" >"$work/count.jsonl"
write_bodies_lua "$work/bodies.lua"

# dump NAME PID: dumps PID's counters (since the last zeroing) to $work/NAME.out; prints
# its total.
dump() {
    local name=$1 pid=$2 before file
    before=$(find "$work" -maxdepth 1 -name "cg.$pid.*" | wc -l)
    callgrind_control -d "$pid" >/dev/null 2>&1
    for _ in $(seq 100); do
        [ "$(find "$work" -maxdepth 1 -name "cg.$pid.*" | wc -l)" -gt "$before" ] && break
        sleep 0.1
    done
    file=$(ls -t "$work"/cg."$pid".* | head -1)
    cp "$file" "$work/$name.out"
    awk '/^summary:/ { print $2 }' "$file"
}

# per_review NAME URL PID PROTO: instructions per review of PID (under callgrind) for
# $reviews reviews of the one token over PROTO (h1 or h2).
per_review() {
    local name=$1 url=$2 pid=$3 proto=$4 h1=() total
    [ "$proto" = h1 ] && h1=(--h1)
    check_allowed "$url" "$work/review.json" 60
    callgrind_control -z "$pid" >/dev/null 2>&1
    h2load "${h1[@]}" -n "$reviews" -c 4 -m 8 -t 1 -d "$work/review.json" \
        -H 'Content-Type: application/json' "$url" >"$work/h2load.txt" 2>&1
    grep -q "$reviews succeeded" "$work/h2load.txt" || { cat "$work/h2load.txt" >&2; exit 1; }
    total=$(dump "$name-$proto" "$pid")
    awk -v t="$total" -v n="$reviews" 'BEGIN { printf "%d", t / n }'
}

# per_distinct NAME URL PID: instructions per review of a new token (every one a miss).
per_distinct() {
    local name=$1 url=$2 pid=$3 total done
    wrk -t 1 -c 4 -d 5s --timeout 20s "$url" -s "$work/bodies.lua" "$work/warm.jsonl" 1 >/dev/null 2>&1
    callgrind_control -z "$pid" >/dev/null 2>&1
    wrk -t 1 -c 4 -d "${DISTINCT_SECONDS:-15}s" --timeout 20s "$url" -s "$work/bodies.lua" \
        "$work/count.jsonl" 1 >"$work/wrk.txt" 2>&1
    total=$(dump "$name" "$pid")
    done=$(awk '/requests in/ { print $1 }' "$work/wrk.txt")
    if grep -q "Non-2xx\|Socket errors" "$work/wrk.txt" || [ "${done:-0}" -lt 100 ]; then
        echo "bench-instructions: $name: failed or too few requests" >&2
        cat "$work/wrk.txt" >&2
        exit 1
    fi
    [ "$done" -lt 16000 ] || { echo "bench-instructions: $name: more reviews than tokens" >&2; exit 1; }
    awk -v t="$total" -v n="$done" 'BEGIN { printf "%d", t / n }'
}

# own_costs DUMP: each function's own instructions per review, "COUNT<tab>NAME" lines.
own_costs() {
    awk -v n="$reviews" '
        function named(line, key,   id, name) {
            id = line; sub("^" key "=", "", id); name = id; sub(/\).*/, ")", id); sub(/^\([0-9]+\) ?/, "", name)
            if (name != "") names[id] = name
            return names[id]
        }
        /^fn=/ { cur = named($0, "fn"); call = 0; next }
        /^cfn=/ { named($0, "cfn"); next }
        /^calls=/ { call = 1; next }
        /^[0-9+*-]/ { if (call) { call = 0; next } own[cur] += $2 }
        END { for (f in own) printf "%d\t%s\n", own[f] / n, f }' "$1"
}

declare -A count
valgrind --tool=callgrind --callgrind-out-file="$work/cg.%p" "$echo_bin" "$work/state" \
    "127.0.0.1:$echo_port" >"$work/echo.out" 2>"$work/echo.err" &
echo_pid=$!
pids+=("$echo_pid")
for _ in $(seq 300); do
    grep -q listening "$work/echo.out" 2>/dev/null && break
    sleep 0.1
done
for proto in h1 h2; do
    count[echo-$proto]=$(per_review echo "https://127.0.0.1:$echo_port/authenticate" "$echo_pid" "$proto")
done

# ours [FLAGS...]: our server under callgrind, ready; sets server_pid.
ours() {
    "${base_env[@]}" valgrind --tool=callgrind --callgrind-out-file="$work/cg.%p" "$bin" server \
        -c "$work/config.yaml" --state-dir "$work/state" --generate-kubeconfig "$work/state/kubeconfig.yaml" \
        --kubeconfig-pregenerated=true --address 127.0.0.1 --health-address "127.0.0.1:$health_port" \
        "${sts[@]}" -l json "$@" >"$work/server.out" 2>"$work/server.log" &
    server_pid=$!
    pids+=("$server_pid")
    for _ in $(seq 600); do
        curl -fsS "http://127.0.0.1:$health_port/readyz" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "bench-instructions: the server did not become ready" >&2
    cat "$work/server.log" >&2
    exit 1
}
url="https://127.0.0.1:$port/authenticate"
ours --token-cache-size 256
for proto in h1 h2; do
    count[ours-$proto]=$(per_review ours "$url" "$server_pid" "$proto")
done
count[on]=$(per_distinct distinct-on "$url" "$server_pid")
kill -TERM "$server_pid"
wait "$server_pid" 2>/dev/null || true
ours --token-cache-ttl=0
count[off]=$(per_distinct distinct-off "$url" "$server_pid")
sha=$(own_costs "$work/ours-h1.out" | awk -F'\t' '$2 ~ /sha256|sha2::/ { s += $1 } END { print s + 0 }')

echo "## Instructions per cached review (callgrind, $reviews reviews per protocol)"
echo
echo "| server | HTTP/1.1 | HTTP/2 |"
echo "| --- | --- | --- |"
echo "| echo | ${count[echo-h1]} | ${count[echo-h2]} |"
echo "| ours | ${count[ours-h1]} | ${count[ours-h2]} |"
echo "| ours ÷ echo | $(awk -v a="${count[ours-h1]}" -v b="${count[echo-h1]}" 'BEGIN { printf "%.2f×", a / b }') | $(awk -v a="${count[ours-h2]}" -v b="${count[echo-h2]}" 'BEGIN { printf "%.2f×", a / b }') |"
echo
echo "- binary: $bin"
echo "- of ours over HTTP/1.1, the cache key's SHA-256 in software (see above): $sha"
echo
echo "| distinct tokens (every review a miss), HTTP/1.1 | instructions per review |"
echo "| --- | --- |"
echo "| cache on (256 entries, full) | ${count[on]} |"
echo "| cache off | ${count[off]} |"
echo "| on ÷ off | $(awk -v a="${count[on]}" -v b="${count[off]}" 'BEGIN { printf "%.3f×", a / b }') |"
if [ "${TOP:-0}" -gt 0 ]; then
    echo
    echo "Our HTTP/1.1 review's functions by own cost (instructions per review):"
    echo
    echo '```'
    own_costs "$work/ours-h1.out" | sort -rn | head -"$TOP" | awk -F'\t' '{ printf "%8d  %s\n", $1, substr($2, 1, 110) }'
    echo '```'
fi
