#!/usr/bin/env bash
# Benchmarks recorded in BENCHMARKS.md, all on loopback against the local STS emulator:
# `token` start-to-exit time (hyperfine), the webhook's throughput and latency with and
# without the verified-identity cache (hey), its memory, and the binary's size.
#
# usage: scripts/bench.sh            (REQUESTS=20000 CONCURRENCY=32 by default)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
bin="$target_dir/release/aws-iam-authenticator"
emulator="$target_dir/release/examples/sts_emulator"
requests="${REQUESTS:-20000}"
concurrency="${CONCURRENCY:-32}"

for tool in hey hyperfine; do
    command -v "$tool" >/dev/null || {
        echo "bench: $tool is missing (apt-get install $tool)" >&2
        exit 1
    }
done

cluster=bench-cluster
region=us-west-2
sts_host="sts.$region.amazonaws.com"
akid=AKIAIOSFODNN7EXAMPLE
secret=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY
arn=arn:aws:iam::111122223333:user/alice

# shellcheck source=scripts/lib.sh
. "$root/scripts/lib.sh"

echo "building (release)…" >&2
cargo build --locked --quiet --release --bin aws-iam-authenticator --example sts_emulator

make_workdir bench

base_env=(env -i "PATH=$PATH" "HOME=$work/home" "AWS_EC2_METADATA_DISABLED=true")
key_env=("${base_env[@]}" "AWS_ACCESS_KEY_ID=$akid" "AWS_SECRET_ACCESS_KEY=$secret")
mkdir -p "$work/home"

start_emulator "$akid,$secret,$arn,111122223333,AIDAEXAMPLEALICE"
read -r port health_port < <(free_ports 2)
"${base_env[@]}" "$bin" init -i "$cluster" --hostname localhost --address 127.0.0.1 --port "$port" \
    --state-dir "$work/state" --generate-kubeconfig "$work/state/kubeconfig.yaml" >/dev/null 2>&1
cat >"$work/config.yaml" <<CONFIG
clusterID: $cluster
server:
  port: $port
  mapUsers:
  - userarn: $arn
    username: alice
    groups: [system:masters]
CONFIG
webhook_endpoint "$work/state/kubeconfig.yaml"

echo "## Environment"
echo
echo "- $(nproc) CPU cores: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
echo "- $(uname -sr), $(rustc --version)"
echo "- binary measured: $(du -b "$bin" | cut -f1) bytes (release profile, host build)"
echo

echo "## token: process start to ExecCredential"
echo
hyperfine --warmup 5 --runs 100 --export-markdown "$work/token.md" --style none \
    "${key_env[*]} $bin token -i $cluster --region $region" >/dev/null
sed 's/`env -i .*token -i/`token -i/' "$work/token.md"
echo

rss() { sed -n "s/^$2:[[:space:]]*//p" "/proc/$1/status"; }

# hey's summary: requests/sec and the latency distribution.
load() { # label, then hey's arguments
    local label=$1
    shift
    # The kubeconfig names `localhost`, which may resolve to ::1 first; the server is on
    # 127.0.0.1. `-host` also gives hey a valid TLS server name: without it, hey sends its
    # URL's `host:port` as SNI, which rustls rightly refuses.
    hey -n "$requests" -c "$concurrency" -t 10 -m POST -T application/json -host localhost "$@" \
        "${url/localhost/127.0.0.1}" >"$work/hey.txt"
    if grep -q "Error distribution" "$work/hey.txt"; then
        echo "bench: requests failed:" >&2
        cat "$work/hey.txt" >&2
        exit 1
    fi
    local rps p50 p99 codes
    rps="$(sed -n 's/^ *Requests\/sec:[[:space:]]*//p' "$work/hey.txt")"
    p50="$(sed -n 's/^ *50% in \([0-9.]*\) secs/\1/p' "$work/hey.txt")"
    p99="$(sed -n 's/^ *99% in \([0-9.]*\) secs/\1/p' "$work/hey.txt")"
    codes="$(sed -n '/Status code distribution/,/^$/p' "$work/hey.txt" | sed -n 's/^ *\[\([0-9]*\)\][[:space:]]*\([0-9]*\) responses/\1×\2/p' | paste -sd' ')"
    awk -v l="$label" -v c="$concurrency" -v r="$rps" -v a="$p50" -v b="$p99" -v s="$codes" \
        -v m="$(rss "$server_pid" VmHWM)" \
        'BEGIN { printf "| %s | %s | %.0f | %.2f | %.2f | %s | %s |\n", l, c, r, a * 1000, b * 1000, s, m }'
}

token="$("${key_env[@]}" "$bin" token -i "$cluster" --region "$region" --token-only)"
review_body "$token" >"$work/review.json"
review_body "k8s-aws-v1.not-a-presigned-url" >"$work/bad.json"

echo "## server: POST /authenticate over TLS, $requests requests, keep-alive"
echo
echo "| case | concurrency | requests/s | p50 ms | p99 ms | statuses | peak RSS |"
echo "| --- | --- | --- | --- | --- | --- | --- |"

start_server "$health_port" -c "$work/config.yaml" --state-dir "$work/state" \
    --generate-kubeconfig "$work/state/kubeconfig.yaml" --kubeconfig-pregenerated=true \
    --address 127.0.0.1 "${sts[@]}" -l json -v warning
idle_rss="$(rss "$server_pid" VmRSS)"
load "valid token, cached identity" -D "$work/review.json"
load "malformed token (denied before STS)" -D "$work/bad.json"
kill -TERM "$server_pid"
wait "$server_pid" || true

start_server "$health_port" -c "$work/config.yaml" --state-dir "$work/state" \
    --generate-kubeconfig "$work/state/kubeconfig.yaml" --kubeconfig-pregenerated=true \
    --address 127.0.0.1 "${sts[@]}" -l json -v warning --token-cache-ttl=0
load "valid token, cache off (every request calls STS)" -D "$work/review.json"
kill -TERM "$server_pid"
wait "$server_pid" || true
echo
echo "Server RSS when idle, after start-up: $idle_rss."
