#!/usr/bin/env bash
# The figures of BENCHMARKS.md, in one run, everything on loopback: the webhook against
# the bare echo webhook (examples/echo.rs: hyper + rustls answering a fixed TokenReview,
# the physical limit on this machine), over HTTP/1.1 (wrk, 64 keep-alive connections) and
# HTTP/2 (h2load, 4 connections x 32 streams, ALPN h2), with the local STS emulator
# standing in for AWS; for the glibc `release` build and the shipped static musl build.
#
# Cases: one token repeated (a cached identity); distinct tokens with the cache on and
# off, STS answering at once and after 20 ms. Reported: requests/s, p50, p99 and max
# latency, RSS idle and peak, the ratios against the targets; `init` and server start
# to /readyz (hyperfine and a loop); the binaries' sizes.
#
# usage: scripts/bench.sh                 full run (about 20 minutes)
#        BENCH_QUICK=1 scripts/bench.sh   sanity run: short loads, glibc only
# Knobs: DURATION (s per load, 10), TOKENS (distinct tokens, 100000), ROUNDS (of the
# compared loads, 3; each ratio is the median of its per-round ratios), BUILDS ("glibc musl
# shipped"; shipped: what the extension and the image carry, `make dist`'s build),
# BENCH_PROFILE (release; `debug` only checks this script's plumbing), EXTRA_BINS (below),
# PERF=1 (profile the glibc server with `perf record -g` during the cached HTTP/1.1 load and
# the distinct-token load with the cache on, and print each profile's top entries; perf's
# sampling costs throughput, so the figures of such a run are not the ones to record).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
quick="${BENCH_QUICK:-0}"
if [ "$quick" = 1 ]; then
    duration="${DURATION:-3}" tokens="${TOKENS:-20000}" builds="${BUILDS:-glibc}" rounds="${ROUNDS:-1}"
else
    duration="${DURATION:-10}" tokens="${TOKENS:-100000}" builds="${BUILDS:-glibc musl shipped}" rounds="${ROUNDS:-3}"
fi
h1_conns=64 h2_conns=4 h2_streams=32

# The load tools come from Debian. Not hey: it sends the URL's `host:port` as the TLS server
# name, which is not a host name (RFC 6066), and rustls refuses the handshake
# (illegal_parameter); Go's net/http, kube-apiserver's client, sends the host alone.
# shellcheck source=scripts/lib.sh
. "$root/scripts/lib.sh"
install_tools bench wrk:wrk h2load:nghttp2-client hyperfine:hyperfine curl:curl

profile="${BENCH_PROFILE:-release}"
# The musl build may live in its own target dir (MUSL_TARGET_DIR), to build beside the other.
musl_target_dir="${MUSL_TARGET_DIR:-$target_dir}"
profile_flag=(--profile "$profile")
[ "$profile" = debug ] && profile_flag=()
echo "building ($profile: glibc, and musl if asked)…" >&2
cargo build --locked --quiet "${profile_flag[@]}" --bin aws-iam-authenticator --example sts_emulator --example echo
emulator="$target_dir/$profile/examples/sts_emulator"
echo_bin="$target_dir/$profile/examples/echo"
declare -A bins=([glibc]="$target_dir/$profile/aws-iam-authenticator")
if [[ " $builds " == *" musl "* ]]; then
    CARGO_TARGET_DIR="$musl_target_dir" CC_x86_64_unknown_linux_musl="${CC_x86_64_unknown_linux_musl:-musl-gcc}" \
        cargo build --locked --quiet "${profile_flag[@]}" --target x86_64-unknown-linux-musl --bin aws-iam-authenticator
    bins[musl]="$musl_target_dir/x86_64-unknown-linux-musl/$profile/aws-iam-authenticator"
fi
# The shipped build: the server-side features, musl, `dist` (fat LTO, stripped), as `make dist`.
if [[ " $builds " == *" shipped "* ]]; then
    CARGO_TARGET_DIR="$musl_target_dir" CC_x86_64_unknown_linux_musl="${CC_x86_64_unknown_linux_musl:-musl-gcc}" \
        cargo build --locked --quiet --profile dist --no-default-features --target x86_64-unknown-linux-musl --bin aws-iam-authenticator
    bins[shipped]="$musl_target_dir/x86_64-unknown-linux-musl/dist/aws-iam-authenticator"
fi
# EXTRA_BINS="NAME=PATH …": more builds of the server to measure the same way (a variant
# under test beside the two).
for pair in ${EXTRA_BINS:-}; do
    bins[${pair%%=*}]="${pair#*=}"
    builds="$builds ${pair%%=*}"
done
bin="${bins[glibc]}"


bench_stack bench "$bin"
identity="$akid,$secret,$arn,111122223333,AIDAEXAMPLEALICE"
url="https://127.0.0.1:$port/authenticate"

# The STS stand-in, answering after $1 ms; recording nothing (long runs) and checking no
# signature (--fixed: every GetCallerIdentity gets the one identity's answer, made once), so
# that it takes as little as it can of the cores it shares with the server under test, as a
# remote STS would take none. The signature checks themselves are the tests' business.
emulator_pid=
restart_emulator() {
    if [ -n "$emulator_pid" ]; then
        kill -TERM "$emulator_pid" 2>/dev/null || true
        wait "$emulator_pid" 2>/dev/null || true
    fi
    local sts_ca="$work/sts-ca.pem"
    rm -f "$work/emulator.json"
    "$emulator" --identity "$identity" --ca-file "$sts_ca" --no-record --fixed --delay-ms "$1" \
        >"$work/emulator.json" 2>"$work/emulator.log" &
    emulator_pid=$!
    pids+=("$emulator_pid")
    for _ in $(seq 100); do
        [ -s "$work/emulator.json" ] && break
        sleep 0.1
    done
    sts_addr="$(sed -n 's/.*"addr":"\([^"]*\)".*/\1/p' "$work/emulator.json")"
    [ -n "$sts_addr" ] || { cat "$work/emulator.log" >&2; exit 1; }
    sts=(--sts-resolve "$sts_host=$sts_addr" --sts-ca-file "$sts_ca")
}

# Our server ($1: the binary; then extra flags), ready when this returns. All the load
# comes from one address: wrk's 64 connections are the default per-client cap (a quarter
# of 256), and the sample request's connection may still hold its slot when wrk connects.
server() {
    local b=$1
    shift
    bin="$b" start_server "$health_port" -c "$work/config.yaml" --state-dir "$work/state" \
        --generate-kubeconfig "$work/state/kubeconfig.yaml" --kubeconfig-pregenerated=true \
        --address 127.0.0.1 --max-connections-per-client 128 "${sts[@]}" "$@"
}

stop() {
    kill -TERM "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

echo_server() {
    "$echo_bin" "$work/state" "127.0.0.1:$echo_port" >"$work/echo.out" 2>&1 &
    echo_pid=$!
    pids+=("$echo_pid")
    for _ in $(seq 100); do
        grep -q listening "$work/echo.out" 2>/dev/null && return 0
        sleep 0.05
    done
    cat "$work/echo.out" >&2
    exit 1
}

kib() { sed -n "s/^$2:[[:space:]]*\([0-9]*\) kB/\1/p" "/proc/$1/status"; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

write_bodies_lua "$work/bodies.lua"

# to_ms VALUE-WITH-UNIT (wrk's 1.23ms, 850.00us, 1.02s) in milliseconds.
to_ms() {
    awk -v v="$1" 'BEGIN {
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
        if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000
        printf "%.2f", n }'
}

results="$work/results.tsv"
: >"$results"
# record BUILD CASE PROTO RPS P50 P99 MAX PEAK_KIB
# (and the current `round`)
record() {
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" "$round" >>"$results"
    printf '| %s | %s | %s | %s | %.0f | %s | %s | %s | %s |\n' "$1" "$2" "$3" "$round" "$4" "$5" "$6" "$7" \
        "$(mib "${8:-0}")" >&2
}

# With PERF=1, `perf record` samples the glibc server ($2) for one load ($1: a label).
profiles=()
perf_start() {
    perf_pid=
    [ "${PERF:-0}" = 1 ] && [ "$build" = glibc ] && [ "$round" = 1 ] || return 0
    command -v perf >/dev/null || {
        apt-get install -y -qq linux-perf >&2
    }
    local data="$work/perf-${#profiles[@]}.data"
    profiles+=("$1")
    perf record -q -F 999 -g -p "$2" -o "$data" -- sleep "$duration" >/dev/null 2>&1 &
    perf_pid=$!
}
perf_stop() {
    [ -n "$perf_pid" ] || return 0
    wait "$perf_pid" || true
}

wrk_run() { # BUILD CASE PID URL (--body FILE | --bodies FILE)
    local build=$1 label=$2 pid=$3 target=$4 mode=$5 file=$6 out="$work/wrk.txt"
    local threads=2
    local script=(-s "$work/bodies.lua" "$file" "$threads")
    if [ "$mode" = --body ]; then
        cat >"$work/one.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = io.open("$file"):read("*a")
LUA
        script=(-s "$work/one.lua")
    fi
    case "$label" in "one token (cached)" | "distinct tokens, cache on, STS 0 ms") perf_start "$label" "$pid" ;; *) perf_pid= ;; esac
    wrk -t "$threads" -c "$h1_conns" -d "${duration}s" --timeout 10s --latency "$target" "${script[@]}" >"$out" 2>&1 || { cat "$out" >&2; exit 1; }
    perf_stop
    if grep -q "Non-2xx\|Socket errors" "$out"; then
        echo "bench: $label: failed requests:" >&2
        cat "$out" >&2
        exit 1
    fi
    local rps p50 p99 max
    rps="$(awk '/^Requests\/sec:/ { print $2 }' "$out")"
    p50="$(to_ms "$(awk '$1 == "50%" { print $2 }' "$out")")"
    p99="$(to_ms "$(awk '$1 == "99%" { print $2 }' "$out")")"
    max="$(to_ms "$(awk '$1 == "Latency" { print $4; exit }' "$out")")"
    record "$build" "$label" "h1 ${h1_conns}c" "$rps" "$p50" "$p99" "$max" "$(kib "$pid" VmHWM)"
}

h2_run() { # BUILD CASE PID URL BODY-FILE
    local build=$1 label=$2 pid=$3 target=$4 file=$5 out="$work/h2load.txt" log="$work/h2load.log"
    rm -f "$log"
    h2load -c "$h2_conns" -m "$h2_streams" -t 1 -D "$duration" --warm-up-time 1 \
        -d "$file" -H 'Content-Type: application/json' --log-file "$log" "$target" >"$out" 2>&1 \
        || { cat "$out" >&2; exit 1; }
    grep -q "Application protocol: h2" "$out" || { echo "bench: $label: not HTTP/2" >&2; cat "$out" >&2; exit 1; }
    local ok total rps
    read -r total ok < <(awk '/^requests:/ { print $6, $8 }' "$out")
    [ "$total" = "$ok" ] || { echo "bench: $label: failed requests" >&2; cat "$out" >&2; exit 1; }
    # status codes in the log: column 2; latency in microseconds: column 3.
    if awk '$2 != 200 { bad = 1 } END { exit !bad }' "$log"; then
        echo "bench: $label: non-200 answers" >&2
        exit 1
    fi
    rps="$(sed -n 's/^finished in [^,]*, \([0-9.]*\) req\/s.*/\1/p' "$out")"
    read -r p50 p99 max < <(cut -f3 "$log" | sort -n | awk '{ v[NR] = $1 } END {
        printf "%.2f %.2f %.2f\n", v[int(NR * 0.5)] / 1000, v[int(NR * 0.99)] / 1000, v[NR] / 1000 }')
    record "$build" "$label" "h2 ${h2_conns}x${h2_streams}" "$rps" "$p50" "$p99" "$max" "$(kib "$pid" VmHWM)"
}

# A fresh batch of distinct tokens (valid for 13 minutes from now).
fresh_tokens() {
    "$emulator" --identity "$identity" --write-reviews "$work/distinct.jsonl" --count "$tokens" \
        --cluster-id "$cluster" --region "$region"
}

restart_emulator 0
"${base_env[@]}" AWS_ACCESS_KEY_ID="$akid" AWS_SECRET_ACCESS_KEY="$secret" \
    "$bin" token -i "$cluster" --region "$region" --token-only >"$work/token"
review_body "$(cat "$work/token")" >"$work/review.json"

echo "| build | case | protocol | round | req/s | p50 ms | p99 ms | max ms | peak RSS MiB |" >&2
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |" >&2

# Per build, ROUNDS rounds of the loads that the targets compare: the echo's and ours next to
# each other (HTTP/1.1, then HTTP/2), then distinct tokens with the cache on and off, each
# in a fresh server. The machine's speed drifts between minutes (BENCHMARKS.md), so each
# ratio is taken within a round and the reported one is the median over the rounds.
declare -A idle after
for build in $builds; do
    b="${bins[$build]}"
    round=1
    echo_server
    check_allowed "https://127.0.0.1:$echo_port/authenticate" "$work/review.json"
    restart_emulator 0
    server "$b" -l json
    sleep 1
    idle[$build]="$(kib "$server_pid" VmRSS)"
    check_allowed "$url" "$work/review.json"
    echo_url="https://127.0.0.1:$echo_port/authenticate"
    for round in $(seq "$rounds"); do
        wrk_run "$build" "echo" "$echo_pid" "$echo_url" --body "$work/review.json"
        wrk_run "$build" "one token (cached)" "$server_pid" "$url" --body "$work/review.json"
        h2_run "$build" "echo" "$echo_pid" "$echo_url" "$work/review.json"
        h2_run "$build" "one token (cached)" "$server_pid" "$url" "$work/review.json"
    done
    stop "$server_pid"
    stop "$echo_pid"

    fresh_tokens
    for round in $(seq "$rounds"); do
        server "$b" -l json
        wrk_run "$build" "distinct tokens, cache on, STS 0 ms" "$server_pid" "$url" --bodies "$work/distinct.jsonl"
        [ "$round" = 1 ] && after[$build]="$(kib "$server_pid" VmRSS)"
        stop "$server_pid"
        server "$b" -l json --token-cache-ttl=0
        wrk_run "$build" "distinct tokens, cache off, STS 0 ms" "$server_pid" "$url" --bodies "$work/distinct.jsonl"
        stop "$server_pid"
    done

    if [ "$quick" != 1 ]; then
        round=1
        restart_emulator 20
        fresh_tokens
        server "$b" -l json
        wrk_run "$build" "distinct tokens, cache on, STS 20 ms" "$server_pid" "$url" --bodies "$work/distinct.jsonl"
        stop "$server_pid"
        server "$b" -l json --token-cache-ttl=0
        wrk_run "$build" "distinct tokens, cache off, STS 20 ms" "$server_pid" "$url" --bodies "$work/distinct.jsonl"
        stop "$server_pid"
        restart_emulator 0
    fi
done

echo >&2
echo "## Results"
echo
echo "| build | case | protocol | round | req/s | p50 ms | p99 ms | max ms | peak RSS MiB |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
awk -F'\t' '{ printf "| %s | %s | %s | %s | %.0f | %s | %s | %s | %.1f |\n", $1, $2, $3, $9, $4, $5, $6, $7, $8 / 1024 }' "$results"
echo

# The ratios the targets are stated in, per build: each taken within a round, then the
# median over the rounds.
value() { awk -F'\t' -v b="$1" -v c="$2" -v p="$3" -v f="$4" -v r="$5" '$1 == b && $2 == c && index($3, p) == 1 && $9 == r { print $f }' "$results"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
median_ratio() { # BUILD CASE-A PROTO-A CASE-B PROTO-B FIELD: median over rounds of A / B
    local r
    for r in $(seq "$rounds"); do
        ratio "$(value "$1" "$2" "$3" "$6" "$r")" "$(value "$1" "$4" "$5" "$6" "$r")"
        echo
    done | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}
verdict() { awk -v v="$1" -v t="$2" -v d="$3" 'BEGIN { ok = (d == "min") ? v >= t : v <= t; print (ok ? "met" : "MISSED") }'; }
echo "## Against the targets"
echo
echo "| build | target | measured (median of $rounds rounds) | |"
echo "| --- | --- | --- | --- |"
for build in $builds; do
    cached="one token (cached)" on="distinct tokens, cache on, STS 0 ms" off="distinct tokens, cache off, STS 0 ms"
    r1="$(median_ratio "$build" "$cached" h1 echo h1 4)"
    r2="$(median_ratio "$build" "$cached" h2 echo h2 4)"
    rp="$(median_ratio "$build" "$cached" h1 echo h1 6)"
    rd="$(median_ratio "$build" "$on" h1 echo h1 4)"
    ro="$(median_ratio "$build" "$on" h1 "$off" h1 4)"
    echo "| $build | cached, HTTP/1.1: ≥ 0.70× echo | ${r1}× | $(verdict "$r1" 0.7 min) |"
    echo "| $build | cached, HTTP/2: ≥ 0.70× echo | ${r2}× | $(verdict "$r2" 0.7 min) |"
    echo "| $build | cached p99, HTTP/1.1: ≤ 2× echo's | ${rp}× | $(verdict "$rp" 2 max) |"
    echo "| $build | distinct tokens: ≥ 0.25× echo | ${rd}× | $(verdict "$rd" 0.25 min) |"
    echo "| $build | distinct tokens: cache on ≥ cache off | ${ro}× | $(verdict "$ro" 1 min) |"
    echo "| $build | RSS idle ≤ 8 MiB | $(mib "${idle[$build]}") MiB | $(verdict "$(mib "${idle[$build]}")" 8 max) |"
    echo "| $build | RSS after $tokens distinct tokens ≤ 20 MiB | $(mib "${after[$build]}") MiB | $(verdict "$(mib "${after[$build]}")" 20 max) |"
done
echo

if [ "${#profiles[@]}" -gt 0 ]; then
    echo "## Profiles (glibc, perf record -g, self time)"
    echo
    for i in "${!profiles[@]}"; do
        echo "${profiles[$i]}, HTTP/1.1:"
        echo
        echo '```'
        perf report -i "$work/perf-$i.data" --no-children --stdio --sort dso,symbol --percent-limit 0.8 2>/dev/null |
            grep -E '^ +[0-9.]+%' | head -30 | cut -c1-150
        echo '```'
        echo
    done
fi

echo "## Start-up"
echo
hyperfine --warmup 3 --runs "$([ "$quick" = 1 ] && echo 10 || echo 50)" --style none \
    --export-markdown "$work/init.md" \
    "${base_env[*]} $bin init -i $cluster --hostname localhost --address 127.0.0.1 --state-dir $work/state --generate-kubeconfig $work/state/kubeconfig.yaml" \
    >/dev/null
sed 's/`env -i [^`]* init /`init /; s/ --state-dir [^`]*`/`/' "$work/init.md"
echo
# Server start to /readyz 200 with a MountedFile config: the first answer of a bash
# /dev/tcp poll (no process per probe), 20 starts.
readyz_ms() {
    local b=$1 t0 t1 ms=()
    for _ in $(seq 20); do
        t0=$EPOCHREALTIME
        "${base_env[@]}" "$b" server -c "$work/config.yaml" --state-dir "$work/state" \
            --generate-kubeconfig "$work/state/kubeconfig.yaml" --kubeconfig-pregenerated=true \
            --address 127.0.0.1 --health-address "127.0.0.1:$health_port" "${sts[@]}" \
            -l json -v warning >/dev/null 2>&1 &
        local pid=$!
        until { exec 3<>"/dev/tcp/127.0.0.1/$health_port"; } 2>/dev/null &&
            printf 'GET /readyz HTTP/1.0\r\n\r\n' >&3 && head -c 12 <&3 | grep -q 200; do
            exec 3>&- 2>/dev/null || true
            kill -0 "$pid" 2>/dev/null || { echo "bench: server exited" >&2; exit 1; }
        done
        exec 3>&- || true
        t1=$EPOCHREALTIME
        ms+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", (b - a) * 1000 }')")
        stop "$pid"
    done
    printf '%s\n' "${ms[@]}" | sort -n | awk '{ v[NR] = $1 } END { printf "median %.1f ms, min %.1f, max %.1f", v[int((NR + 1) / 2)], v[1], v[NR] }'
}
for build in $builds; do
    echo "- server start to /readyz 200 ($build): $(readyz_ms "${bins[$build]}") (target ≤ 100 ms)"
done
echo

echo "## Machine and binaries"
echo
echo "- $(nproc) CPU cores: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1); $(uname -sr); $(rustc --version)"
echo "- load: wrk $(wrk -v 2>&1 | head -1 | awk '{ print $2 }') (${h1_conns} connections, 2 threads), h2load $(h2load --version | awk '{ print $2 }') (${h2_conns} connections × ${h2_streams} streams), ${duration} s each, on the same cores as the servers"
size() { local b; b=$(du -b "$1" | cut -f1); echo "$b bytes ($(awk -v b="$b" 'BEGIN { printf "%.1f", b / 1048576 }') MiB)"; }
for build in $builds; do
    case $build in
        shipped) echo "- shipped binary (make dist: server-side features, musl, fat LTO, stripped): $(size "${bins[$build]}") (target ≤ 12 MiB)" ;;
        *) echo "- $build $profile binary: $(size "${bins[$build]}")" ;;
    esac
done
true
